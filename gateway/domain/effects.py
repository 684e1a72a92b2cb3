"""Effects the journal applies in the same transaction that completes a request (nothing half-done)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from gateway.domain.registry import Settlement, SettlementState


@dataclass(frozen=True, slots=True)
class NewSettlement:
    """Record a settlement (POSTED, or UNKNOWN when the core's answer was lost)."""

    settlement: Settlement


@dataclass(frozen=True, slots=True)
class SetSettlementState:
    """Move a settlement to a new state (cancel, reversal)."""

    fixmedins_code: str
    msgid: str
    state: SettlementState
    cancel_msgid: str | None = None
    cancel_setl_id: str | None = None
    cancelled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QueueReversal:
    """Owe the core a 2601 reversal of `omsgid` (SPEC §5: behind every -1 CORE_TIMEOUT)."""

    fixmedins_code: str
    omsgid: str
    oinfno: str
    psn_no: str


@dataclass(frozen=True, slots=True)
class ReleaseDefaultPin:
    """Give back a default-PIN reservation of a settlement that did not happen."""

    card_sn: str
    day: date
    acct: int


Effect = NewSettlement | SetSettlementState | QueueReversal | ReleaseDefaultPin
