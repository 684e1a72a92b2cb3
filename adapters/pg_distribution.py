"""Reads for distributing the card blacklist to terminals (SPEC §8.2): versions, deltas, snapshots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Delta:
    """Card-list changes in (since, version]: the latest state of each card that changed."""

    version: int
    adds: list[tuple[str, str]]
    dels: list[str]


async def current_version(pool: asyncpg.Pool) -> int:
    """The global blacklist version."""
    return int(await pool.fetchval("SELECT version FROM blacklist_meta"))


async def card_delta(pool: asyncpg.Pool, since: int) -> tuple[Delta | None, int, int]:
    """The delta since `since` (None when the log no longer reaches back), the version, and the list size.

    One REPEATABLE READ transaction, so the delta, the version and the size agree.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        version = int(await conn.fetchval("SELECT version FROM blacklist_meta"))
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
    pool: asyncpg.Pool, chunk: int = 10_000
) -> AsyncIterator[tuple[int, AsyncIterator[list[tuple[str, str]]]]]:
    """The version and the whole card list sorted by card_sn, in chunks, read consistently."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        version = int(await conn.fetchval("SELECT version FROM blacklist_meta"))

        async def chunks() -> AsyncIterator[list[tuple[str, str]]]:
            cur = await conn.cursor("SELECT card_sn, reason FROM blacklist_cards ORDER BY card_sn")
            while rows := await cur.fetch(chunk):
                yield [(r[0], r[1]) for r in rows]

        yield version, chunks()
