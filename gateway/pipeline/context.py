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
from gateway.pipeline.reply import NodeId
from gateway.ports import (
    BlacklistCache,
    Clock,
    InsuranceCore,
    Journal,
    ListLookup,
    ListsOfRecord,
    MetricsSink,
    RateLimiter,
    Registry,
    ReversalQueue,
    Settlements,
)
from gateway.ports.stays import Stays
from gateway.ports.visits import Visits
from gateway.settings import Settings
from rules.catalogue import Catalogue
from rules.policy import PolicyBook

T = TypeVar("T")
I = TypeVar("I", bound=Input)  # noqa: E741 - the input type of a flow


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
    person_reason: str = ""  # the person list's reason, for the infnos that report it instead of refusing
    journal_id: int | None = None
    replay: str | None = None  # what the claim found already used: 'TSEQ', 'ATC' (SPEC §5.1)
    effects: list[Effect] = field(default_factory=list)
    core_s: float = 0.0
    trace: list[str] = field(default_factory=list)

    def request(self, kind: type[I]) -> tuple[Envelope, I]:
        """The envelope and the parsed input of a flow's own type (the transaction table routed it here)."""
        env, inp = self.env, self.inp
        assert env is not None
        assert isinstance(inp, kind), f"{env.infno} routed to a flow of {kind.__name__}"
        return env, inp


@dataclass(slots=True)
class Deps:
    """The ports and reference data a flow may use (injected by the composition root)."""

    settings: Settings
    clock: Clock
    registry: Registry
    journal: Journal
    settlements: Settlements
    reversals: ReversalQueue
    lists_of_record: ListsOfRecord
    lists: ListLookup
    blacklist: BlacklistCache
    core: InsuranceCore
    keys: CardKeyCache
    policies: PolicyBook
    catalogue: Catalogue
    metrics: MetricsSink
    node: NodeId
    visits: Visits  # issue 12: outpatient visits, batches and fee lines (SPEC §6.6)
    stays: Stays  # issue 12: inpatient stays over the same tables (SPEC §6.7)
    limiter: RateLimiter | None = None  # issue 11 item 7: None when no rate limits are configured

    @property
    def tz(self) -> tzinfo:
        """The deployment's zone."""
        return self.clock.tz

    def now(self) -> datetime:
        """The gateway's clock in the deployment's zone."""
        return self.clock.now()

    async def core_call(self, txn: Txn, op: str, aw: Awaitable[T]) -> T:
        """Await a core call, charging its time to the core (excluded from X-Gateway-Latency-Us)."""
        t0 = time.perf_counter()
        try:
            return await aw
        finally:
            dt = time.perf_counter() - t0
            txn.core_s += dt
            self.metrics.core_call(op, dt)
