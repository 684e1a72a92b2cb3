"""Fixtures for adapter tests against real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from adapters.pg_migrate import create_database, migrate

PG_ADMIN = os.environ.get("ONECARD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    """A scratch database for the test module, migrated, dropped at the end."""
    name = f"onecard_adapter_{uuid.uuid4().hex[:10]}"
    dsn = await create_database(PG_ADMIN, name)
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    async with asyncpg.create_pool(dsn, min_size=2, max_size=12) as p:
        yield p
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()
