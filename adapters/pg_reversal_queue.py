"""The queue of 2601 reversals owed to the core in PostgreSQL, implementing `gateway.ports.reversals.ReversalQueue`."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.pg_effects import apply_effects
from adapters.pg_errors import map_unavailable
from adapters.pg_pool import Pg
from gateway.domain.effects import Effect
from gateway.domain.journal import ReversalJob


@map_unavailable
class PgReversalQueue:
    """Reversals leased with SKIP LOCKED, so every gateway process can work the queue."""

    def __init__(self, pool: Pg) -> None:
        self.pool = pool

    async def lease_reversals(self, limit: int, lease_s: float) -> list[ReversalJob]:
        """Take due reversals for one attempt; SKIP LOCKED lets every gateway process work the queue."""
        rows = await self.pool.fetch(
            "UPDATE reversal_queue q SET attempts = q.attempts + 1, next_at = now() + make_interval(secs => $2)"
            " FROM (SELECT id FROM reversal_queue WHERE state = 'QUEUED' AND next_at <= now()"
            "       ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED) due WHERE q.id = due.id"
            " RETURNING q.id, q.fixmedins_code, q.omsgid, q.oinfno, q.psn_no, q.attempts,"
            " extract(epoch FROM now() - q.created_at)::float8 AS age_s",
            limit,
            lease_s,
        )
        return [ReversalJob(**dict(r)) for r in rows]

    async def finish_reversal(self, job_id: int, state: str, error: str | None, effects: Sequence[Effect] = ()) -> None:
        """Close a reversal (DONE or DEAD) with its effects, atomically."""
        async with self.pool.acquire() as conn, conn.transaction():
            await apply_effects(conn, effects)
            await conn.execute(
                "UPDATE reversal_queue SET state = $2, last_error = $3 WHERE id = $1", job_id, state, error
            )

    async def retry_reversal(self, job_id: int, delay_s: float, error: str) -> None:
        """Try again after `delay_s`."""
        await self.pool.execute(
            "UPDATE reversal_queue SET next_at = now() + make_interval(secs => $2), last_error = $3 WHERE id = $1",
            job_id,
            delay_s,
            error,
        )

    async def reversal_counts(self) -> dict[str, int]:
        """Queue size by state, for metrics."""
        rows = await self.pool.fetch("SELECT state, count(*) AS n FROM reversal_queue GROUP BY state")
        return {r["state"]: r["n"] for r in rows}
