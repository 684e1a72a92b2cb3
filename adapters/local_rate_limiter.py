"""Rate limits in this process (issue 11 item 7): one token bucket per PSAM and one per institution,
implementing `gateway.ports.ratelimit.RateLimiter` with no I/O.

Across the N workers of a host (`onecard serve --workers N`, Settings.host_workers) each worker refills at
rate/N and holds the whole burst: the host admits at most rate x t + N x burst requests of one key in any t
seconds (the sustained rate is exact, the burst up to N times), and a terminal whose requests all reach one
worker (one keep-alive connection) gets its burst and then rate/N.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.domain.buckets import RateRefusal, TokenBucket
from rules.limits import Limit, RateLimits


class LocalRateLimiter:
    """Buckets by PSAM number and by fixmedins_code, made on first use (only registered, MAC-verified
    requests reach the limiter, so their number is bounded by the registry)."""

    __slots__ = ("_insts", "_now", "_psams", "limits", "share")

    def __init__(self, limits: RateLimits, *, share: int = 1, monotonic: Callable[[], float] = time.monotonic) -> None:
        if share < 1:
            raise ValueError(f"share must be at least 1 (the workers of this host), got {share}")
        self.limits = limits
        self.share = share
        self._now = monotonic
        self._psams: dict[str, TokenBucket | None] = {}
        self._insts: dict[str, TokenBucket | None] = {}

    def take(self, fixmedins_code: str, psam_no: str) -> RateRefusal | None:
        """Take a token from the PSAM's bucket, then from its institution's (returned if the second is empty)."""
        now = self._now()
        psam = self._psams.get(psam_no, _MISSING)
        if psam is _MISSING:
            psam = self._psams[psam_no] = self._bucket(self.limits.psam_limit(fixmedins_code), now)
        inst = self._insts.get(fixmedins_code, _MISSING)
        if inst is _MISSING:
            inst = self._insts[fixmedins_code] = self._bucket(self.limits.institution_limit(fixmedins_code), now)
        if psam is not None and (wait := psam.take(now)) > 0.0:
            return RateRefusal.after("psam", psam_no, wait)
        if inst is not None and (wait := inst.take(now)) > 0.0:
            if psam is not None:
                psam.give_back()
            return RateRefusal.after("institution", fixmedins_code, wait)
        return None

    def give_back(self, fixmedins_code: str, psam_no: str) -> None:
        """Return the tokens an admitted request took."""
        for bucket in (self._psams.get(psam_no), self._insts.get(fixmedins_code)):
            if isinstance(bucket, TokenBucket):
                bucket.give_back()

    def _bucket(self, limit: Limit | None, now: float) -> TokenBucket | None:
        if limit is None:
            return None
        return TokenBucket.full(limit.rate / self.share, float(limit.burst), now)


_MISSING = TokenBucket(1.0, 1.0, 0.0, 0.0)  # a sentinel: "no entry yet" (None means "not limited")
