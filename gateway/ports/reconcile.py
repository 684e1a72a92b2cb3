"""The journal's side of operator reconciliation (`onecard reconcile`; PostgreSQL: `adapters.pg_reconcile`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from gateway.domain.registry import Settlement


class ReconcileReads(Protocol):
    """An institution's settlements and the reversals queued for them."""

    async def settlements(self, fixmedins_code: str, begin: datetime, end: datetime) -> list[Settlement]:
        """Settlements with setl_time in [begin, end): the very rows 3201/3202 count."""
        ...

    async def reversal_states(self, fixmedins_code: str, omsgids: Collection[str]) -> dict[str, str]:
        """omsgid -> state (QUEUED, DONE, DEAD) of the gateway's 2601 owed for it."""
        ...
