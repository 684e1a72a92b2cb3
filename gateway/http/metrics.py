"""Prometheus metrics, one registry per application (no global state)."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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


class Metrics:
    """The gateway's metrics in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
        self.reversals = Gauge(
            "onecard_reversals", "Reversal queue by state (DEAD needs an operator)", ["state"], registry=r
        )
        self.blacklist_loaded = Gauge(
            "onecard_blacklist_loaded", "1 when the Redis blacklist is loaded from PostgreSQL", registry=r
        )
        self.blacklist_version = Gauge(
            "onecard_blacklist_version", "Blacklist version this process has applied (-1: not loaded)", registry=r
        )
        self.blacklist_age = Gauge(
            "onecard_blacklist_age_seconds",
            "Seconds since this process last proved its blacklist current",
            registry=r,
        )
        self.core_breaker_state = Gauge(
            "onecard_core_breaker_state", "Core circuit breaker: 0 closed, 1 half-open, 2 open", registry=r
        )
        self.core_in_flight = Gauge("onecard_core_in_flight", "Core calls in flight in this process", registry=r)
        self.core_short_circuits = Counter(
            "onecard_core_short_circuits",
            "Core calls refused unsent (open: breaker open; half_open: probe in flight; in_flight: no free slot)",
            ["reason"],
            registry=r,
        )
        self.journal_recovered = Counter(
            "onecard_journal_recovered", "Abandoned PENDING claims completed as -1 CORE_TIMEOUT", registry=r
        )
        self.blacklist_lookups = Counter(
            "onecard_blacklist_lookups", "Blacklist checks by where they were answered", ["path"], registry=r
        )

    def watch_blacklist(self, local: _Followed) -> None:
        """Export the in-process blacklist's applied version and its age, read at scrape time."""
        self.blacklist_version.set_function(lambda: -1 if local.version is None else local.version)
        self.blacklist_age.set_function(lambda: local.age_s)

    def watch_core(self, core: _GuardedCore) -> None:
        """Export the core guard's breaker state and calls in flight, read at scrape time."""
        self.core_breaker_state.set_function(lambda: core.state)
        self.core_in_flight.set_function(lambda: core.in_flight)
