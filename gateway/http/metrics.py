"""Prometheus metrics, one registry per application (no global state).

Under `onecard serve --workers N` (N > 1) every worker writes its values to files in the private directory
named by PROMETHEUS_MULTIPROC_DIR (prometheus_client's multi-process mode, chosen when the library is first
imported), and a scrape answered by any worker renders the aggregate of them all. Each gauge says how its
per-process values combine (`multiprocess_mode`); the `live*` modes drop a worker once it is reaped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class _Followed(Protocol):
    @property
    def version(self) -> int | None: ...
    @property
    def age_s(self) -> float: ...


class _GuardedCore(Protocol):
    @property
    def state(self) -> int: ...
    @property
    def in_flight(self) -> int: ...


class _Gated(Protocol):
    @property
    def in_flight(self) -> int: ...


class _Listener(Protocol):
    @property
    def open(self) -> int: ...
    @property
    def handshaking(self) -> int: ...


class Metrics:
    """The gateway's metrics in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # The same variable that switched prometheus_client to file-backed values when it was imported.
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self._watched: list[tuple[Gauge, Callable[[], float]]] = []
        r = self.registry
        self.requests = Counter(
            "onecard_requests",
            "Terminal requests by transaction and outcome",
            ["infno", "err_code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "onecard_request_seconds", "Whole request time", ["infno"], buckets=_BUCKETS, registry=r
        )
        self.gateway_seconds = Histogram(
            "onecard_gateway_seconds",
            "Gateway's own time (core excluded)",
            ["infno"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.core_seconds = Histogram(
            "onecard_core_seconds", "Insurance-core call time", ["op"], buckets=_BUCKETS, registry=r
        )
        self.reversals_queued = Counter(
            "onecard_reversals_queued", "Reversals queued after an unknown core outcome", registry=r
        )
        # Workers: the queue is counted in PostgreSQL, but a worker recounts only after it worked a job, so
        # the latest count (not the largest) is the current one.
        self.reversals = Gauge(
            "onecard_reversals",
            "Reversal queue by state (DEAD needs an operator)",
            ["state"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.blacklist_loaded = Gauge(
            "onecard_blacklist_loaded",
            "1 when the Redis blacklist is loaded from PostgreSQL (workers: 0 if any sees it unloaded)",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.blacklist_version = Gauge(
            "onecard_blacklist_version",
            "Blacklist version this process has applied (-1: not loaded; workers: the most behind)",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.blacklist_age = Gauge(
            "onecard_blacklist_age_seconds",
            "Seconds since this process last proved its blacklist current (workers: the oldest)",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.core_breaker_state = Gauge(
            "onecard_core_breaker_state",
            "Core circuit breaker: 0 closed, 1 half-open, 2 open (workers: the most open)",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.core_in_flight = Gauge(
            "onecard_core_in_flight",
            "Core calls in flight in this process (workers: the sum)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.core_short_circuits = Counter(
            "onecard_core_short_circuits",
            "Core calls refused unsent (open: breaker open; half_open: probe in flight; in_flight: no free slot)",
            ["reason"],
            registry=r,
        )
        self.journal_recovered = Counter(
            "onecard_journal_recovered", "Abandoned PENDING claims completed as -1 CORE_TIMEOUT", registry=r
        )
        self.journal_abandoned = Counter(
            "onecard_journal_abandoned",
            "Claims this process gave up on when PostgreSQL failed, by how they ended: recovered (completed -1"
            " CORE_TIMEOUT, reversal owed for money), answered (completed by someone else), settled (the"
            " completion committed infcode 0 although the terminal was told -1: its retry gets 0)",
            ["outcome"],
            registry=r,
        )
        self.background_crashes = Counter(
            "onecard_background_crashes",
            "Background loops (publisher, follower, reversal worker, recovery, sealer, pruning, node lease) that"
            " crashed and were started again",
            ["task"],
            registry=r,
        )
        self.blacklist_lookups = Counter(
            "onecard_blacklist_lookups", "Blacklist checks by where they were answered", ["path"], registry=r
        )
        # issue 11 items 7 and 8: rate limits and load shedding
        self.rate_limited_total = Counter(
            "onecard_rate_limited", "Requests refused RATE_LIMITED, by the scope over its limit", ["scope"], registry=r
        )
        self.shed_total = Counter(
            "onecard_shed",
            "Requests refused OVERLOADED unstarted by load shedding, by priority",
            ["priority"],
            registry=r,
        )
        self.in_flight = Gauge(
            "onecard_in_flight",
            "Terminal requests in flight in this process, shed ones excluded (workers: the sum)",
            registry=r,
            multiprocess_mode="livesum",
        )
        # issue 11, bad input "10,000 idle connections" (onecard/listener.py): per connection, never per request
        self.connections_open = Gauge(
            "onecard_connections_open",
            "Terminal connections open in this process (workers: the sum)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.connections_handshaking = Gauge(
            "onecard_connections_handshaking",
            "Terminal connections still in their TLS handshake, in this process (workers: the sum)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.connections_refused_total = Counter(
            "onecard_connections_refused",
            "Terminal connections answered 503 and closed: max_connections open, none of them idle",
            registry=r,
        )
        self.connections_dropped_total = Counter(
            "onecard_connections_dropped",
            "Terminal connections closed before their first request head was complete (TLS handshake included):"
            " head_timeout (idle_request_timeout_s passed), evicted (the oldest such, to make room at max_connections)",
            ["reason"],
            registry=r,
        )

    # MetricsSink (gateway.ports.metrics): what the pipeline reports, in its own words.
    def request(self, infno: str, code: str, total_s: float, own_s: float) -> None:
        """A terminal request answered."""
        self.requests.labels(infno, code).inc()
        self.request_seconds.labels(infno).observe(total_s)
        self.gateway_seconds.labels(infno).observe(own_s)

    def core_call(self, op: str, seconds: float) -> None:
        """One call to the insurance core."""
        self.core_seconds.labels(op).observe(seconds)

    def reversal_queued(self) -> None:
        """A 2601 queued behind an unknown outcome."""
        self.reversals_queued.inc()

    def reversal_states(self, counts: Mapping[str, int]) -> None:
        """The reversal queue's size by state."""
        for state, n in counts.items():
            self.reversals.labels(state).set(n)

    def blacklist_lookup(self, where: str) -> None:
        """Where a blacklist decision was made."""
        self.blacklist_lookups.labels(where).inc()

    def blacklist_unloaded(self) -> None:
        """Redis has no copy of the lists."""
        self.blacklist_loaded.set(0)

    def rate_limited(self, scope: str) -> None:
        """A request refused RATE_LIMITED (issue 11 item 7)."""
        self.rate_limited_total.labels(scope).inc()

    def claim_recovered(self) -> None:
        """Journal recovery completed an abandoned claim."""
        self.journal_recovered.inc()

    def claim_abandoned(self, outcome: str) -> None:
        """A claim this process gave up on was closed."""
        self.journal_abandoned.labels(outcome).inc()

    def watch_blacklist(self, local: _Followed) -> None:
        """Export the in-process blacklist's applied version and its age, read at scrape time."""
        self._watch(self.blacklist_version, lambda: -1 if local.version is None else local.version)
        self._watch(self.blacklist_age, lambda: local.age_s)

    def watch_core(self, core: _GuardedCore) -> None:
        """Export the core guard's breaker state and calls in flight, read at scrape time."""
        self._watch(self.core_breaker_state, lambda: core.state)
        self._watch(self.core_in_flight, lambda: core.in_flight)

    def watch_in_flight(self, gate: _Gated) -> None:
        """Export the load gate's requests in flight, read at scrape time (issue 11 item 8)."""
        self._watch(self.in_flight, lambda: gate.in_flight)

    def connection_refused(self) -> None:
        """A terminal connection past max_connections."""
        self.connections_refused_total.inc()

    def connection_dropped(self, reason: str) -> None:
        """A terminal connection closed before its first request head: `head_timeout` or `evicted`."""
        self.connections_dropped_total.labels(reason).inc()

    def watch_connections(self, listener: _Listener) -> None:
        """Export the terminal listener's open connections and TLS handshakes, read at scrape time."""
        self._watch(self.connections_open, lambda: listener.open)
        self._watch(self.connections_handshaking, lambda: listener.handshaking)

    def _watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        # A scrape-time function lives in this process only, where another worker's scrape cannot call it:
        # in multi-process mode its value is written to the shared files by `sample()` instead.
        if self.multiprocess_dir is None:
            gauge.set_function(read)
        else:
            self._watched.append((gauge, read))

    def sample(self) -> None:
        """Multi-process mode: write the watched values now (at each scrape, and periodically by each worker)."""
        for gauge, read in self._watched:
            gauge.set(read())

    def render(self) -> bytes:
        """Prometheus text: this application's registry, or in multi-process mode the aggregate over every
        worker's files (the dead ones' counters and histograms included, so totals never go backwards)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        self.sample()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]  # unannotated upstream
        return generate_latest(registry)
