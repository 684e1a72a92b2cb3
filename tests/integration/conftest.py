"""Fixtures for adapter tests against real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from adapters.pg_migrate import create_database, migrate
from adapters.pg_pool import Pg

PG_ADMIN = os.environ.get("ONECARD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[Pg]:
    """A scratch database for the test module, migrated, dropped at the end; the pool under deadlines, as the
    gateway uses it (generous ones: a test's own statements are not what is measured)."""
    name = f"onecard_adapter_{uuid.uuid4().hex[:10]}"
    dsn = await create_database(PG_ADMIN, name)
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    async with asyncpg.create_pool(dsn, min_size=2, max_size=12) as p:
        pg = Pg(p, timeout_s=30.0, bulk_timeout_s=120.0)
        await pg.measure_clock()
        yield pg
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()
