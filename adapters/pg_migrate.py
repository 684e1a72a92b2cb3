"""Versioned SQL migrations (gateway/migrations/NNNN_name.sql), applied in order under an advisory lock."""

from __future__ import annotations

import re
from importlib import resources

import asyncpg

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


async def migrate(conn: asyncpg.Connection) -> list[str]:
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


async def ensure_database(dsn: str) -> None:
    """Create the DSN's database when it does not exist (connecting to `postgres` on the same server)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return
    base, _, rest = dsn.partition("?")
    head, _, dbname = base.rpartition("/")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,63}", dbname):
        raise ValueError(f"cannot create database {dbname!r}: use letters, digits and _ only")
    admin = f"{head}/postgres" + (f"?{rest}" if rest else "")
    conn = await asyncpg.connect(admin, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{dbname}"')
    except asyncpg.DuplicateDatabaseError:
        pass
    finally:
        await conn.close()
