"""The blacklists of record in PostgreSQL read whole, in one REPEATABLE READ snapshot: what a Redis rebuild and
a process's in-process cache load from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from adapters.pg_changelog import read_version
from adapters.pg_pool import Conn, Pg
from gateway.ports.blacklist import ListName

_TABLES: dict[ListName, tuple[str, str]] = {"C": ("blacklist_cards", "card_sn"), "P": ("blacklist_persons", "psn_no")}


class PgListSnapshot:
    """`gateway.ports.blacklist.ListSnapshot` on one connection inside its read-only transaction."""

    def __init__(self, conn: Conn, version: int) -> None:
        self.conn = conn
        self._version = version

    @property
    def version(self) -> int:
        """The version the snapshot reflects."""
        return self._version

    async def size(self, list_: ListName) -> int:
        """How many keys the list holds."""
        table, _ = _TABLES[list_]
        return int(await self.conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608

    async def entries(self, list_: ListName, chunk: int) -> AsyncIterator[list[tuple[str, str]]]:
        """(key, reason) of every entry, `chunk` at a time, through a cursor."""
        table, key = _TABLES[list_]
        cur = await self.conn.cursor(f"SELECT {key}, reason FROM {table}")  # noqa: S608
        while rows := await cur.fetch(chunk):
            yield [(r[0], r[1]) for r in rows]

    async def copy_keys(self, list_: ListName, sink: Callable[[bytes], Coroutine[Any, Any, None]]) -> None:
        """Every key as COPY text (one per line), handed to `sink` as PostgreSQL sends it."""
        table, key = _TABLES[list_]
        await self.conn.copy_from_query(f"SELECT {key} FROM {table}", output=sink)  # noqa: S608


class PgListSnapshots:
    """`gateway.ports.ListSnapshots` on PostgreSQL; give it the bulk deadline (a snapshot of millions of keys)."""

    def __init__(self, pg: Pg) -> None:
        self.pg = pg

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[PgListSnapshot]:
        """A consistent read of both lists and their version."""
        async with self.pg.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield PgListSnapshot(conn, await read_version(conn))
