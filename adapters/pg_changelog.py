"""The blacklist change log in PostgreSQL (SPEC §8.2): the version of record, the log after a version, pruning.

`read_version` is the one reading of `blacklist_meta.version`; every other adapter that needs it calls it.
"""

from __future__ import annotations

from typing import Any, Protocol

from adapters.pg_pool import Pg
from gateway.domain.feeds import LoggedChange


class _Reads(Protocol):
    async def fetchval(self, query: str, *args: Any, column: int = ..., timeout: float | None = ...) -> Any: ...


async def read_version(db: _Reads) -> int:
    """The last version taken (committed), read on a pool or on a connection (in its transaction)."""
    return int(await db.fetchval("SELECT version FROM blacklist_meta"))


async def current_version(pool: Pg) -> int:
    """The last version taken (committed)."""
    return await read_version(pool)


async def changes_since(pool: Pg, version: int, limit: int = 100_000) -> list[LoggedChange]:
    """(version, list, key, op, reason) of the log after `version`, in order."""
    rows = await pool.fetch(
        "SELECT version, list, key, op, reason FROM blacklist_changes WHERE version > $1 ORDER BY version LIMIT $2",
        version,
        limit,
    )
    return [LoggedChange(r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def prune_changes(pool: Pg, keep_days: int) -> int:
    """Delete change-log rows older than keep_days, never the newest one; returns how many were deleted."""
    if keep_days < 0:
        raise ValueError("keep_days must be >= 0")
    status = await pool.execute(
        "DELETE FROM blacklist_changes WHERE at < now() - make_interval(days => $1)"
        " AND version < (SELECT max(version) FROM blacklist_changes)",
        keep_days,
    )
    return int(status.split()[-1])


class PgChangeLog:
    """`gateway.ports.ChangeLog` on PostgreSQL, under the deadlines of the `Pg` it is given."""

    def __init__(self, pg: Pg) -> None:
        self.pg = pg

    async def version(self) -> int:
        """The last version taken (committed)."""
        return await read_version(self.pg)

    async def changes_since(self, version: int, limit: int = 100_000) -> list[LoggedChange]:
        """The log after `version`, in version order, at most `limit` rows."""
        return await changes_since(self.pg, version, limit)

    async def prune(self, keep_days: int) -> int:
        """Delete rows older than keep_days, never the newest one; how many were deleted."""
        return await prune_changes(self.pg, keep_days)
