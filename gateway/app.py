"""The composition root: the ONLY place that names adapters. `create_app(settings)` builds a gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from adapters.core_fsi import FsiCore
from adapters.pg_migrate import ensure_database, migrate
from adapters.pg_registry import blacklist_rows, load_world
from adapters.pg_store import PgStore
from blacklist_cache.redis_guard import RedisGuard
from gateway.domain.keys import CardKeyCache
from gateway.http.admin import admin_routes
from gateway.http.metrics import Metrics
from gateway.http.routes import latency_middleware, routes
from gateway.keys import GATEWAY, GUARD, MASTER_KEYS, METRICS, PG_POOL, SETTINGS, STATUS
from gateway.keystore import load_keys
from gateway.pipeline.context import Deps
from gateway.pipeline.reversals import ReversalWorker
from gateway.pipeline.service import Gateway
from gateway.settings import Settings
from rules.catalogue import Catalogue
from rules.policy import PolicyBook

log = logging.getLogger("onecard.app")


def load_reference(settings: Settings, world: dict[str, Any] | None) -> tuple[PolicyBook, Catalogue]:
    """Policy (settings file or the shipped demo policy) and catalogue (settings file, world, or shipped)."""
    if settings.policy_file:
        policy_text = Path(settings.policy_file).read_text(encoding="utf-8")
    else:
        policy_text = (resources.files("rules") / "data" / "policy.toml").read_text(encoding="utf-8")
    if settings.catalogue_file:
        records = json.loads(Path(settings.catalogue_file).read_text(encoding="utf-8"))
    elif world is not None and world.get("catalogue"):
        records = world["catalogue"]
    else:
        records = json.loads((resources.files("rules") / "data" / "catalogue.json").read_text(encoding="utf-8"))
    return PolicyBook.from_toml(policy_text), Catalogue.from_records(records)


def create_app(settings: Settings) -> web.Application:
    """A gateway application; resources are opened on start-up and closed in reverse on clean-up."""
    app = web.Application(middlewares=[latency_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[STATUS] = {}
    app.cleanup_ctx.append(_resources)
    app.router.add_routes(routes)
    app.router.add_routes(admin_routes)
    return app


async def rebuild_blacklist(pool: asyncpg.Pool, guard: RedisGuard) -> None:
    """Load both lists of record into Redis."""
    cards, persons = await blacklist_rows(pool)
    await guard.load(cards, persons)
    log.info("blacklist loaded into Redis: %d cards, %d persons", len(cards), len(persons))


async def _watch_blacklist(pool: asyncpg.Pool, guard: RedisGuard, metrics: Metrics) -> None:
    """Reload the lists whenever Redis lost them (a restart): requests are refused until then."""
    while True:
        try:
            if not await guard.is_loaded():
                await rebuild_blacklist(pool, guard)
            metrics.blacklist_loaded.set(1)
        except Exception as exc:  # noqa: BLE001 - keep watching; readiness reports the failure
            metrics.blacklist_loaded.set(0)
            log.warning("blacklist watch: %s", type(exc).__name__)
        await asyncio.sleep(1.0)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    keys = load_keys(s)
    app[MASTER_KEYS] = keys
    app[STATUS]["keys"] = "ok" if keys.ids else "missing"
    world = None
    if s.world_file:
        world = json.loads(await asyncio.to_thread(Path(s.world_file).read_text, encoding="utf-8"))
    policies, catalogue = load_reference(s, world)
    await ensure_database(s.pg_dsn)
    async with asyncpg.create_pool(s.pg_dsn, min_size=s.pg_pool_min, max_size=s.pg_pool_max) as pool:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
        if world is not None:
            counts = await load_world(pool, world)
            log.info("world loaded: %s", counts)
        redis = Redis.from_url(s.redis_url)
        core = FsiCore(s.core_url, pool_size=s.core_pool_size)
        try:
            guard = RedisGuard(redis, s.redis_prefix, 2 * s.freshness_s + 60)
            if world is not None or not await guard.is_loaded():
                await rebuild_blacklist(pool, guard)
            app[PG_POOL] = pool
            app[GUARD] = guard
            deps = Deps(
                settings=s,
                tz=ZoneInfo(s.timezone),
                store=PgStore(pool),
                guard=guard,
                core=core,
                keys=CardKeyCache(keys),
                policies=policies,
                catalogue=catalogue,
                metrics=app[METRICS],
            )
            app[GATEWAY] = Gateway(deps)
            if s.dev_mode:
                log.warning(
                    "DEVELOPMENT MODE: development keys accepted%s",
                    "; admin API open without a token" if s.admin_token is None else "",
                )
            worker = ReversalWorker(deps)
            await worker.refresh_metrics()
            tasks = [
                asyncio.create_task(_watch_blacklist(pool, guard, app[METRICS])),
                asyncio.create_task(worker.run_forever()),
            ]
            yield
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await core.close()
            await redis.aclose()
