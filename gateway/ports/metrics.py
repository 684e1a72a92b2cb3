"""The metrics sink port: what the pipeline reports, in its own words; Prometheus is one implementation
(`gateway.http.metrics.Metrics`), so the pipeline imports no metrics library."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class MetricsSink(Protocol):
    """Counters and timings of the pipeline, the journal recovery and the reversal worker."""

    def request(self, infno: str, code: str, total_s: float, own_s: float) -> None:
        """A terminal request answered with `code` after `total_s`, of which `own_s` was the gateway's own time."""
        ...

    def core_call(self, op: str, seconds: float) -> None:
        """One call to the insurance core (`person`, `post`, `cancel`, `reverse`) and how long it took."""
        ...

    def reversal_queued(self) -> None:
        """A 2601 was queued behind an unknown outcome."""
        ...

    def reversal_states(self, counts: Mapping[str, int]) -> None:
        """The reversal queue's size by state (QUEUED, DONE, DEAD)."""
        ...

    def blacklist_lookup(self, where: str) -> None:
        """A blacklist decision made `local`ly, by `redis` or from `postgres`."""
        ...

    def blacklist_unloaded(self) -> None:
        """Redis answered that its copy of the lists is not loaded."""
        ...

    def rate_limited(self, scope: str) -> None:
        """A request refused RATE_LIMITED because its `psam` or its `institution` was over the limit."""
        ...

    def claim_recovered(self) -> None:
        """Journal recovery completed a claim a process abandoned."""
        ...

    def claim_abandoned(self, outcome: str) -> None:
        """A claim this process gave up on was closed: `recovered`, `answered` or `settled`."""
        ...
