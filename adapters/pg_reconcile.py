"""PostgreSQL reads for operator reconciliation (`gateway.ports.reconcile.ReconcileReads`): an institution's
settlements and its queued reversals."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import asyncpg

from adapters.pg_pool import Pg
from adapters.pg_settlements import settlements_between
from gateway.domain.registry import Settlement


class PgReconcileReads:
    """The journal's side of `onecard reconcile`."""

    def __init__(self, pool: Pg | asyncpg.Pool) -> None:
        self.pool = pool

    async def settlements(self, fixmedins_code: str, begin: datetime, end: datetime) -> list[Settlement]:
        """Settlements with setl_time in [begin, end): the very rows 3201/3202 count."""
        return await settlements_between(self.pool, fixmedins_code, begin, end)

    async def reversal_states(self, fixmedins_code: str, omsgids: Collection[str]) -> dict[str, str]:
        """omsgid -> state (QUEUED, DONE, DEAD) of the gateway's 2601 owed for it."""
        rows = await self.pool.fetch(
            "SELECT omsgid, state FROM reversal_queue WHERE fixmedins_code = $1 AND omsgid = ANY($2::text[])",
            fixmedins_code,
            list(omsgids),
        )
        return {r["omsgid"]: r["state"] for r in rows}
