"""Ports: the gateway's view of what it depends on, one narrow protocol per role. Implementations live in
adapters/ and blacklist_cache/ (built only by the composition root); fakes of them in tests/fakes/."""

from gateway.ports.blacklist import (
    BlacklistCache,
    CacheFreshness,
    ChangeLog,
    DistributionReads,
    FeedWriter,
    ListLookup,
    ListSnapshots,
    ReadyListLookup,
)
from gateway.ports.clock import Clock
from gateway.ports.core import InsuranceCore
from gateway.ports.journal import Journal
from gateway.ports.lists import ListsOfRecord
from gateway.ports.metrics import MetricsSink
from gateway.ports.ratelimit import RateLimiter  # issue 11 item 7
from gateway.ports.registry import Registry
from gateway.ports.reversals import ReversalQueue
from gateway.ports.settlements import Settlements

__all__ = [
    "BlacklistCache",
    "CacheFreshness",
    "ChangeLog",
    "Clock",
    "DistributionReads",
    "FeedWriter",
    "InsuranceCore",
    "Journal",
    "ListLookup",
    "ListSnapshots",
    "ListsOfRecord",
    "MetricsSink",
    "RateLimiter",
    "ReadyListLookup",
    "Registry",
    "ReversalQueue",
    "Settlements",
]
