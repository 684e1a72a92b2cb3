"""Versioned SQL migrations (gateway/migrations/NNNN_name.sql), applied in order under an advisory lock."""

from __future__ import annotations

import contextlib
import re
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from adapters.pg_pool import Conn, connect

_LOCK_ID = 0x0C0A_2D5E  # one advisory lock for every process migrating the same database
_NAME = re.compile(r"([0-9]{4})_[a-z0-9_]+\.sql")


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every shipped migration, in order."""
    out = []
    for entry in resources.files("gateway.migrations").iterdir():
        m = _NAME.fullmatch(entry.name)
        if m:
            out.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


async def migrate(conn: Conn) -> list[str]:
    """Apply pending migrations; returns the names applied. Safe to run from many processes at once."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied


_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


async def create_database(admin_dsn: str, name: str, timeout_s: float = 5.0) -> str:
    """Create database `name` on the server of `admin_dsn` unless it exists; returns the DSN that reaches it.

    Raises:
        ValueError: the name is not a plain identifier.
    """
    if not _DB_NAME.fullmatch(name):
        raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")
    conn = await connect(admin_dsn, timeout_s)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            # A concurrent creator may win the race; the database then exists, which is all we want.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))


async def ensure_database(dsn: str, timeout_s: float = 5.0) -> None:
    """Create the DSN's database when it does not exist (connecting to `postgres` on the same server).

    Raises:
        PgTimeout: the server did not answer within `timeout_s` (connection errors as asyncpg raises them).
    """
    try:
        conn = await connect(dsn, timeout_s)
    except asyncpg.InvalidCatalogNameError:
        parts = urlsplit(dsn)
        await create_database(urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/"), timeout_s)
    else:
        await conn.close()
