"""The clients every composition builds from settings: PostgreSQL (pool under deadlines, migrated), Redis
(asked once at start-up) and the insurance core (the FSI client behind its breaker and bulkhead)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from redis.exceptions import RedisError

from adapters.core_fsi import FsiCore
from adapters.core_guard import GuardedCore
from adapters.core_tls import client_context
from adapters.pg_migrate import ensure_database, migrate
from adapters.pg_pool import Pg, connect, open_pg, open_pg_for
from blacklist_cache.redis_lookup import connect_redis
from gateway.bootstrap.exits import DependencyDown, redis_down
from gateway.settings import Settings

log = logging.getLogger("onecard.app")


async def redis_answers(s: Settings) -> None:
    """At start-up, before anything is written anywhere, a Redis that does not answer is a deployment error
    (exit 3); later, while serving, the lookups it would answer fall back to PostgreSQL."""
    redis = connect_redis(s.redis_url, s.redis_timeout_s)
    try:
        async with asyncio.timeout(s.redis_timeout_s):
            await redis.ping()
    except (RedisError, OSError) as exc:
        raise DependencyDown(redis_down(s.redis_url, exc)) from None
    finally:
        await redis.aclose()


async def open_server_pg(s: Settings) -> tuple[Pg, list[str]]:
    """The serving pool, its database created if missing and migrated; the migrations applied."""
    await ensure_database(s.pg_dsn, s.pg_connect_timeout_s)
    pg = await open_pg(
        s.pg_dsn,
        min_size=s.pg_pool_min,
        max_size=s.pg_pool_max,
        timeout_s=s.pg_timeout_s,
        bulk_timeout_s=s.pg_bulk_timeout_s,
        connect_timeout_s=s.pg_connect_timeout_s,
    )
    try:
        async with pg.bulk.acquire() as conn:
            return pg, await migrate(conn)
    except BaseException:
        await pg.close()
        raise


@asynccontextmanager
async def command_pg(s: Settings) -> AsyncIterator[Pg]:
    """A small pool for an operator command, closed at the end."""
    pg = await open_pg_for(s)
    try:
        yield pg
    finally:
        await pg.close()


async def migrate_database(s: Settings) -> list[str]:
    """`onecard migrate`: create the database if missing and apply the migrations; the ones applied."""
    await ensure_database(s.pg_dsn, s.pg_connect_timeout_s)
    conn = await connect(s.pg_dsn, s.pg_connect_timeout_s)
    try:
        async with asyncio.timeout(s.pg_bulk_timeout_s):
            return await migrate(conn)
    finally:
        conn.terminate()  # done, or timed out mid-statement: the server rolls back whatever was left open


def core_tls(s: Settings, core_url: str) -> ssl.SSLContext | None:
    """The TLS context of an https core (issue 11 item 3), None for http (warned about outside dev mode).

    Raises:
        ConfigError: a CA bundle, certificate or key that cannot be used, named by its setting.
    """
    if core_url.lower().startswith("https://"):
        return client_context(s.core_ca_file, s.core_client_cert, s.core_client_key)
    if not s.dev_mode:
        log.warning("the link to the insurance core (%s) is plaintext HTTP: use an https core_url", core_url)
    return None


def guarded_core(
    s: Settings, on_short_circuit: Callable[[str], None], ssl_context: ssl.SSLContext | None = None
) -> GuardedCore:
    """The insurance core as the pipeline calls it: FSI over HTTP(S) (with `core_tls`'s context), behind the
    breaker and the bulkhead."""
    return GuardedCore(
        FsiCore(s.core_url, pool_size=s.core_pool_size, ssl_context=ssl_context),
        failure_threshold=s.core_breaker_failures,
        reset_timeout_s=s.core_breaker_reset_s,
        max_in_flight=s.core_max_in_flight,
        queue_wait_s=s.core_queue_wait_s,
        on_short_circuit=on_short_circuit,
    )


def command_core(core_url: str, s: Settings | None = None) -> FsiCore:
    """The core an operator command reads from (one call: no breaker), over TLS with `s`'s files if https."""
    context = None
    if s is not None and core_url.lower().startswith("https://"):
        context = client_context(s.core_ca_file, s.core_client_cert, s.core_client_key)
    return FsiCore(core_url, pool_size=2, ssl_context=context)
