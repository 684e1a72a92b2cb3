"""Embedded PostgreSQL and Redis from onecard.localinfra: start, use, stop."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from onecard.localinfra import (
    LOCAL_PG_DSN,
    LOCAL_REDIS_URL,
    InfraUnavailable,
    ensure_database,
    ensure_postgres,
    ensure_redis,
    mask_url,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short work directory, so socket paths stay well under the AF_UNIX limit."""
    with tempfile.TemporaryDirectory(prefix="onecard-li-") as d:
        yield Path(d)


class TestEmbeddedPostgres:
    async def test_starts_serves_and_stops(self, workdir: Path) -> None:
        """With allow_local=False an embedded server starts under workdir/pg and takes DDL and queries."""
        began = time.perf_counter()
        pg = await ensure_postgres(None, workdir, allow_local=False)
        started = time.perf_counter() - began
        try:
            assert pg.source == "embedded"
            assert await asyncio.to_thread((workdir / "pg" / "PG_VERSION").exists)
            assert started < 30
            conn = await asyncpg.connect(pg.dsn)
            try:
                await conn.execute("CREATE TABLE probe (id int PRIMARY KEY, note text)")
                await conn.execute("INSERT INTO probe VALUES (1, '宁波')")
                assert await conn.fetchval("SELECT note FROM probe WHERE id = 1") == "宁波"
            finally:
                await conn.close()
        finally:
            await pg.stop()
        with pytest.raises((OSError, asyncpg.PostgresError)):
            await asyncpg.connect(pg.dsn, timeout=2)

    async def test_ensure_database_creates_once(self, workdir: Path) -> None:
        """ensure_database creates a missing database, tolerates an existing one and returns its DSN."""
        pg = await ensure_postgres(None, workdir, allow_local=False)
        try:
            dsn = await ensure_database(pg.dsn, "onecard_t1")
            assert await ensure_database(pg.dsn, "onecard_t1") == dsn
            conn = await asyncpg.connect(dsn)
            try:
                assert await conn.fetchval("SELECT current_database()") == "onecard_t1"
            finally:
                await conn.close()
            with pytest.raises(ValueError, match="database name"):
                await ensure_database(pg.dsn, 'x"; DROP')
        finally:
            await pg.stop()

    async def test_stop_twice_is_harmless(self, workdir: Path) -> None:
        """A second stop() does nothing."""
        pg = await ensure_postgres(None, workdir, allow_local=False)
        await pg.stop()
        await pg.stop()


class TestEmbeddedRedis:
    async def test_starts_serves_and_stops(self, workdir: Path) -> None:
        """With allow_local=False an embedded redis-server answers SET/GET on a unix socket."""
        handle = await ensure_redis(None, workdir, allow_local=False)
        try:
            assert handle.source == "embedded"
            assert handle.url.startswith("unix://")
            assert len(handle.url.removeprefix("unix://")) < 100
            client = aioredis.from_url(handle.url)
            try:
                await client.set("onecard:probe", "宁波")
                assert (await client.get("onecard:probe")).decode() == "宁波"
            finally:
                await client.aclose()
        finally:
            await handle.stop()
        assert not await asyncio.to_thread(Path(handle.url.removeprefix("unix://")).exists)

    async def test_long_workdir_gets_short_socket(self, workdir: Path) -> None:
        """A work directory too deep for AF_UNIX still yields a socket path under 100 characters."""
        deep = workdir / ("d" * 60) / ("e" * 60)
        handle = await ensure_redis(None, deep, allow_local=False)
        try:
            sock = handle.url.removeprefix("unix://")
            assert len(sock) < 100
            client = aioredis.from_url(handle.url)
            try:
                assert await client.ping()
            finally:
                await client.aclose()
        finally:
            await handle.stop()
        assert not await asyncio.to_thread(Path(sock).parent.exists)


class TestConfigured:
    async def test_dead_postgres_dsn_fails_clearly(self, workdir: Path) -> None:
        """A configured DSN that does not answer raises InfraUnavailable naming it, password masked."""
        dsn = "postgresql://app:secret@127.0.0.1:1/onecard"
        with pytest.raises(InfraUnavailable, match=r"configured PostgreSQL .*app:\*\*\*@127\.0\.0\.1:1") as err:
            await ensure_postgres(dsn, workdir)
        assert "secret" not in str(err.value)
        assert not await asyncio.to_thread((workdir / "pg").exists)

    async def test_dead_redis_url_fails_clearly(self, workdir: Path) -> None:
        """A configured Redis URL that does not answer raises InfraUnavailable naming it."""
        with pytest.raises(InfraUnavailable, match=r"configured Redis redis://127\.0\.0\.1:1/0"):
            await ensure_redis("redis://127.0.0.1:1/0", workdir)

    async def test_configured_embedded_dsn_is_used_as_is(self, workdir: Path) -> None:
        """A DSN that answers is used as configured, and stopping that handle leaves the server running."""
        pg = await ensure_postgres(None, workdir, allow_local=False)
        try:
            configured = await ensure_postgres(pg.dsn, workdir / "other")
            assert configured.source == "configured"
            await configured.stop()
            conn = await asyncpg.connect(pg.dsn)
            await conn.close()
        finally:
            await pg.stop()

    async def test_local_servers_are_preferred(self, workdir: Path) -> None:
        """With allow_local=True, servers answering on 127.0.0.1's default ports are used and left running."""
        pg = await ensure_postgres(None, workdir)
        cache = await ensure_redis(None, workdir)
        try:
            if pg.source != "local" and cache.source != "local":
                pytest.skip("no local PostgreSQL or Redis on this machine")
            if pg.source == "local":
                assert pg.dsn == LOCAL_PG_DSN
            if cache.source == "local":
                assert cache.url == LOCAL_REDIS_URL
        finally:
            await pg.stop()
            await cache.stop()
        if pg.source == "local":
            conn = await asyncpg.connect(LOCAL_PG_DSN, timeout=2)
            await conn.close()

    def test_mask_url_hides_password(self) -> None:
        """mask_url replaces the password and leaves password-less URLs alone."""
        assert mask_url("postgresql://u:pw@h:5/db") == "postgresql://u:***@h:5/db"
        assert mask_url("redis://h:6379/0") == "redis://h:6379/0"
