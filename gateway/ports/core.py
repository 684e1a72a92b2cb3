"""The insurance core port (implemented by `adapters.core_fsi.FsiCore`, guarded by `adapters.core_guard`)."""

from __future__ import annotations

from datetime import date
from typing import Protocol

from gateway.domain.core import (
    Cancellation,
    Cancelled,
    PersonRecord,
    Posted,
    Posting,
    Reversal,
    Reversed,
)
from gateway.domain.reconcile import CoreRecord


class InsuranceCore(Protocol):
    """The insurance core (ledger of record).

    Every method raises `CoreUnavailable` when nothing was sent, `CoreTimeout` when the core may have
    acted but the answer is unknown (writes only; reads raise `CoreUnavailable`), and
    `CoreRejected(reason, message)` when the core refused. Reasons the gateway acts on:
    `PERSON_NOT_FOUND`, `VERSION_CONFLICT`, `INSUFFICIENT_BALANCE`, `SETTLEMENT_NOT_FOUND`,
    `ALREADY_CANCELLED`, `NOT_REVERSIBLE`.
    """

    async def person(self, psn_no: str, *, timeout: float) -> PersonRecord:
        """Current state of a person, with the optimistic version to post against."""
        ...

    async def post_settlement(self, posting: Posting, *, timeout: float) -> Posted:
        """Post a settlement; the same msgid posted twice returns the first receipt."""
        ...

    async def cancel_settlement(self, cancel: Cancellation, *, timeout: float) -> Cancelled:
        """Cancel a posted settlement, restoring the account and the accumulators."""
        ...

    async def reverse(self, reversal: Reversal, *, timeout: float) -> Reversed:
        """Undo the message `omsgid` whether or not the core had it; idempotent."""
        ...

    async def settlements(self, fixmedins_code: str, begin: date, end: date, *, timeout: float) -> list[CoreRecord]:
        """The core's settlements of one institution whose setl_time falls on local dates begin..end (inclusive),
        each in its current state: the core's side of detail reconciliation (a read)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
