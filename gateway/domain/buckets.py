"""Token buckets (issue 11 item 7): the arithmetic of a rate limit, pure, with time passed in (seconds of a
monotonic clock), so a test moves time by hand. The buckets per PSAM and institution live in an adapter."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate` per second; each request takes one."""

    rate: float
    burst: float
    tokens: float
    at: float  # when `tokens` was last brought up to date

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        """A bucket that has been idle long enough to hold its whole burst."""
        return cls(rate, burst, burst, now)

    def take(self, now: float) -> float:
        """Take a token: 0.0 when one was there, else the seconds until one will be (nothing taken)."""
        tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = max(self.at, now)
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate

    def give_back(self) -> None:
        """Return a token taken for a request that turned out not to count (a retry answered from the journal)."""
        self.tokens = min(self.burst, self.tokens + 1.0)


@dataclass(frozen=True, slots=True)
class RateRefusal:
    """Why a request was refused RATE_LIMITED: the scope over its limit (`psam` or `institution`), its key, and
    the whole seconds after which a retry will find a token (the `Retry-After` header)."""

    scope: str
    key: str
    retry_after_s: int

    @classmethod
    def after(cls, scope: str, key: str, wait_s: float) -> RateRefusal:
        """Round the wait up to whole seconds, at least 1 (HTTP `Retry-After` carries whole seconds)."""
        return cls(scope, key, max(1, math.ceil(wait_s)))
