"""Per-transaction state (jPOS's context, typed) and the collaborators every flow shares."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TypeVar

from gateway.domain.effects import Effect
from gateway.domain.envelope import Envelope
from gateway.domain.inputs import Input
from gateway.domain.keys import CardKeyCache
from gateway.domain.registry import Card, Institution
from gateway.domain.security import Verified
from gateway.http.metrics import Metrics
from gateway.pipeline.reply import NodeId
from gateway.ports import BlacklistCache, InsuranceCore, ListLookup, Store
from gateway.settings import Settings
from rules.catalogue import Catalogue
from rules.policy import PolicyBook

T = TypeVar("T")


@dataclass(slots=True)
class Txn:
    """One request on its way through the pipeline."""

    received: datetime
    env: Envelope | None = None
    inp: Input | None = None
    verified: Verified | None = None
    institution: Institution | None = None
    card: Card | None = None  # the card, once its checks passed
    card_row: Card | None = None  # the registry row read with the claim (None: unknown card)
    journal_id: int | None = None
    replay: str | None = None  # what the claim found already used: 'TSEQ', 'ATC' (SPEC §5.1)
    effects: list[Effect] = field(default_factory=list)
    core_s: float = 0.0
    trace: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Deps:
    """The ports and reference data a flow may use (injected by the composition root)."""

    settings: Settings
    tz: tzinfo
    store: Store
    lists: ListLookup
    blacklist: BlacklistCache
    core: InsuranceCore
    keys: CardKeyCache
    policies: PolicyBook
    catalogue: Catalogue
    metrics: Metrics
    node: NodeId

    def now(self) -> datetime:
        """The gateway's clock in the deployment's zone."""
        return datetime.now(self.tz)

    async def core_call(self, txn: Txn, op: str, aw: Awaitable[T]) -> T:
        """Await a core call, charging its time to the core (excluded from X-Gateway-Latency-Us)."""
        t0 = time.perf_counter()
        try:
            return await aw
        finally:
            dt = time.perf_counter() - t0
            txn.core_s += dt
            self.metrics.core_seconds.labels(op).observe(dt)
