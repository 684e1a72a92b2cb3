"""What an auditor reads of the journal: its side of operator reconciliation (`onecard reconcile`; PostgreSQL:
`adapters.pg_reconcile`) and its hash chain recomputed (`onecard journal verify`; `adapters.pg_journal_verify`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, tzinfo
from typing import Protocol

from gateway.domain.chain import VerifyResult
from gateway.domain.registry import Settlement


class ReconcileReads(Protocol):
    """An institution's settlements and the reversals queued for them."""

    async def settlements(self, fixmedins_code: str, begin: datetime, end: datetime) -> list[Settlement]:
        """Settlements with setl_time in [begin, end): the very rows 3201/3202 count."""
        ...

    async def reversal_states(self, fixmedins_code: str, omsgids: Collection[str]) -> dict[str, str]:
        """omsgid -> state (QUEUED, DONE, DEAD) of the gateway's 2601 owed for it."""
        ...


class JournalVerifier(Protocol):
    """The journal's hash chain recomputed (issue 11 item 5: the auditor's journal verification)."""

    async def verify(self, *, day: date | None, tz: tzinfo, stale_s: float) -> VerifyResult:
        """All of the chain, or the stretch of the rows completed on local `day` in `tz`; within the bulk deadline."""
        ...
