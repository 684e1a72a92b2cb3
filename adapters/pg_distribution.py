"""Reads for distributing the card blacklist to terminals (SPEC §8.2): versions, deltas, snapshots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adapters.pg_changelog import read_version
from adapters.pg_pool import Pg
from gateway.domain.feeds import Delta


async def current_version(pool: Pg) -> int:
    """The global blacklist version."""
    return await read_version(pool)


async def card_delta(pool: Pg, since: int) -> tuple[Delta | None, int, int]:
    """The delta since `since` (None when the log no longer reaches back), the version, and the list size.

    One REPEATABLE READ transaction, so the delta, the version and the size agree.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        version = await read_version(conn)
        size = int(await conn.fetchval("SELECT count(*) FROM blacklist_cards"))
        oldest = await conn.fetchval("SELECT min(version) FROM blacklist_changes")
        # The log must hold every version after `since`; an empty log is complete only up to `version`.
        if since < version and (oldest is None or oldest > since + 1):
            return None, version, size
        rows = await conn.fetch(
            "SELECT DISTINCT ON (key) key, op, reason FROM blacklist_changes"
            " WHERE list = 'C' AND version > $1 AND version <= $2 ORDER BY key, version DESC",
            since,
            version,
        )
    adds = [(r["key"], r["reason"]) for r in rows if r["op"] != "D"]
    dels = [r["key"] for r in rows if r["op"] == "D"]
    return Delta(version, adds, dels), version, size


@asynccontextmanager
async def card_snapshot(
    pool: Pg, chunk: int = 10_000
) -> AsyncIterator[tuple[int, AsyncIterator[list[tuple[str, str]]]]]:
    """The version and the whole card list sorted by card_sn, in chunks, read consistently."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        version = await read_version(conn)

        async def chunks() -> AsyncIterator[list[tuple[str, str]]]:
            cur = await conn.cursor("SELECT card_sn, reason FROM blacklist_cards ORDER BY card_sn")
            while rows := await cur.fetch(chunk):
                yield [(r[0], r[1]) for r in rows]

        yield version, chunks()


class PgDistribution:
    """`gateway.ports.DistributionReads` on PostgreSQL: versions and deltas under the request deadline of `pg`,
    snapshots under its bulk deadline."""

    def __init__(self, pg: Pg, chunk: int = 10_000) -> None:
        self.pg = pg
        self.chunk = chunk

    async def version(self) -> int:
        """The global blacklist version."""
        return await current_version(self.pg)

    async def card_delta(self, since: int) -> tuple[Delta | None, int, int]:
        """The delta since `since`, the version and the list size (`card_delta`)."""
        return await card_delta(self.pg, since)

    @asynccontextmanager
    async def card_snapshot(self) -> AsyncIterator[tuple[int, AsyncIterator[list[tuple[str, str]]]]]:
        """The version and the whole card list in chunks (`card_snapshot`), under the bulk deadline."""
        async with card_snapshot(self.pg.bulk, self.chunk) as snap:
            yield snap
