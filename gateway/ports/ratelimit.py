"""The rate-limit port (issue 11 item 7): may this PSAM and its institution send one more request now?
The in-process adapter is `adapters.local_rate_limiter.LocalRateLimiter`.

Synchronous on purpose: the hot path asks it for every authenticated request, and the in-process answer needs
no I/O. A limiter shared by hosts (Redis) would need an await and a round trip per request: measure first.
"""

from __future__ import annotations

from typing import Protocol

from gateway.domain.buckets import RateRefusal


class RateLimiter(Protocol):
    """Token buckets per PSAM and per institution (rate and burst from `rules.limits.RateLimits`)."""

    def take(self, fixmedins_code: str, psam_no: str) -> RateRefusal | None:
        """Count one request of this PSAM of this institution: None when both buckets had a token (both are
        taken), else which one is empty and when to retry (nothing taken)."""
        ...

    def give_back(self, fixmedins_code: str, psam_no: str) -> None:
        """Undo an admitted `take`: the request was a retry of a msgid already claimed, which never counts twice."""
        ...
