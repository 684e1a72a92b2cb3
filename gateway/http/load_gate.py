"""The load gate (issue 11 item 8): this process's terminal requests in flight, and whether a request of a
given priority may start (`gateway.domain.priority.admits`); shed requests are counted by priority."""

from __future__ import annotations

from gateway.domain.priority import Priority, admits
from gateway.http.metrics import Metrics

RETRY_AFTER_S = 1  # what a shed request is told: the bound is per process and requests last milliseconds


class LoadGate:
    """Counts requests in flight (one event loop: no lock) and refuses those a level may not start."""

    __slots__ = ("in_flight", "max_in_flight", "metrics")

    def __init__(self, max_in_flight: int, metrics: Metrics) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self.metrics = metrics
        self.in_flight = 0

    def enter(self, priority: Priority) -> bool:
        """Start a request (True; the caller must `leave`), or count it shed (False)."""
        if not admits(priority, self.in_flight, self.max_in_flight):
            self.metrics.shed_total.labels(priority.name.lower()).inc()
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """A request started by `enter` has been answered."""
        self.in_flight -= 1

    def message(self, priority: Priority) -> str:
        """Why a request was shed."""
        return (
            f"shedding load: {self.in_flight} requests in flight (bound {self.max_in_flight}), "
            f"{priority.name.lower()} requests refused first; retry after {RETRY_AFTER_S} s"
        )
