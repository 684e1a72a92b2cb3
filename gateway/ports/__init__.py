"""Ports: the gateway's view of what it depends on, one module per role. Implementations live in adapters/ and
blacklist_cache/; fakes of them in tests/fakes/."""

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
from gateway.ports.core import InsuranceCore
from gateway.ports.store import Store

__all__ = [
    "BlacklistCache",
    "CacheFreshness",
    "ChangeLog",
    "DistributionReads",
    "FeedWriter",
    "InsuranceCore",
    "ListLookup",
    "ListSnapshots",
    "ReadyListLookup",
    "Store",
]
