"""The reversal queue port: 2601s owed to the core (PostgreSQL: `adapters.pg_reversal_queue.PgReversalQueue`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.domain.effects import Effect
from gateway.domain.journal import ReversalJob


class ReversalQueue(Protocol):
    """Reversals owed to the core, leased for one attempt at a time."""

    async def lease_reversals(self, limit: int, lease_s: float) -> list[ReversalJob]: ...
    async def finish_reversal(
        self, job_id: int, state: str, error: str | None, effects: Sequence[Effect] = ()
    ) -> None: ...
    async def retry_reversal(self, job_id: int, delay_s: float, error: str) -> None: ...
    async def reversal_counts(self) -> dict[str, int]: ...
