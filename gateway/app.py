"""The composition root: the ONLY place that names adapters. `create_app(settings)` builds a gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from redis.exceptions import RedisError

from adapters.core_fsi import FsiCore
from adapters.core_guard import GuardedCore
from adapters.pg_changelog import PgChangeLog
from adapters.pg_claims import PgJournal
from adapters.pg_distribution import PgDistribution
from adapters.pg_feed_writer import PgFeedWriter
from adapters.pg_journal_chain import run_sealer
from adapters.pg_list_snapshots import PgListSnapshots
from adapters.pg_lists import PgListsOfRecord
from adapters.pg_migrate import ensure_database, migrate
from adapters.pg_nodes import NodeLease
from adapters.pg_pool import RETRYABLE, UNAVAILABLE, open_pg, open_pg_for
from adapters.pg_registry import PgRegistry
from adapters.pg_reversal_queue import PgReversalQueue
from adapters.pg_settlements import PgSettlements
from adapters.pg_world import load_world
from adapters.system_clock import SystemClock
from blacklist_cache.errors import RebuildInterrupted
from blacklist_cache.follower import Follower
from blacklist_cache.local import LocalBlacklist
from blacklist_cache.publisher import Publisher, sync_once
from blacklist_cache.redis_blacklist import RedisBlacklist
from blacklist_cache.redis_codec import decode_ops
from blacklist_cache.redis_lookup import RedisLookup, connect_redis
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.keys import CardKeyCache
from gateway.exits import DependencyDown, redis_down
from gateway.http.admin import admin_routes
from gateway.http.distribution import distribution_routes
from gateway.http.errors import error_middleware
from gateway.http.feeds import FEED_AFTER_COMMIT, FEED_BATCH_S, FEED_NUDGE, feed_routes
from gateway.http.metrics import Metrics
from gateway.http.routes import latency_middleware, routes
from gateway.keys import (
    DISTRIBUTION,
    FEED_WRITER,
    GATEWAY,
    LIST_LOOKUP,
    LIST_WRITER,
    LOCAL_BLACKLIST,
    MASTER_KEYS,
    METRICS,
    NODE,
    PG_BULK,
    PG_POOL,
    SETTINGS,
    STATUS,
)
from gateway.keystore import load_keys
from gateway.pipeline.context import Deps
from gateway.pipeline.reversals import ReversalWorker
from gateway.pipeline.service import Gateway
from gateway.ports.blacklist import ChangeLog, FeedWriter
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
    app = web.Application(
        middlewares=[latency_middleware, error_middleware(unavailable=(*UNAVAILABLE, RedisError))],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[STATUS] = {}
    app.cleanup_ctx.append(_resources)
    app.router.add_routes(routes)
    app.router.add_routes(admin_routes)
    app.router.add_routes(distribution_routes)
    app.router.add_routes(feed_routes)
    return app


@asynccontextmanager
async def feed_writer_for(settings: Settings) -> AsyncIterator[FeedWriter]:
    """The feed writer of a command (`onecard blacklist import`): a small pool of its own, the bulk deadline."""
    pg = await open_pg_for(settings)
    try:
        yield PgFeedWriter(pg.bulk)
    finally:
        await pg.close()


async def _prune_forever(changes: ChangeLog, keep_days: int, every_s: float = 3600.0) -> None:
    """Drop change-log rows past the retention window (the delta API then answers with the full list)."""
    while True:
        try:
            removed = await changes.prune(keep_days)
            if removed:
                log.info("blacklist change log: %d rows past %d days pruned", removed, keep_days)
        except UNAVAILABLE as exc:
            log.warning("blacklist prune: %s", type(exc).__name__)
        await asyncio.sleep(every_s)


async def _redis_answers(s: Settings) -> None:
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


async def _stop(tasks: list[asyncio.Task[None]], grace_s: float = 10.0) -> None:
    """Cancel the background tasks and wait for them, but not forever: shutdown must end even if a task were to
    swallow its cancellation (as Python 3.11's asyncio.wait_for can); that one is named in the log. A task that
    had died of an error raises it here, as before: a background loop must never die quietly."""
    for task in tasks:
        task.cancel()
    done, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in pending:
        log.error("background task %s did not stop within %g s of its cancellation", task.get_coro(), grace_s)
    for task in done:
        if not task.cancelled() and (exc := task.exception()) is not None:
            raise exc


async def _resources(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    keys = load_keys(s)
    app[MASTER_KEYS] = keys
    app[STATUS]["keys"] = "ok" if keys.ids else "missing"
    world = None
    if s.world_file:
        world = json.loads(await asyncio.to_thread(Path(s.world_file).read_text, encoding="utf-8"))
    policies, catalogue = load_reference(s, world)
    await _redis_answers(s)
    await ensure_database(s.pg_dsn, s.pg_connect_timeout_s)
    pg = await open_pg(
        s.pg_dsn,
        min_size=s.pg_pool_min,
        max_size=s.pg_pool_max,
        timeout_s=s.pg_timeout_s,
        bulk_timeout_s=s.pg_bulk_timeout_s,
        connect_timeout_s=s.pg_connect_timeout_s,
    )
    lease = NodeLease(pg, wanted=s.node_id, lease_s=s.node_lease_s)
    renewing: asyncio.Task[None] | None = None
    try:
        async with pg.bulk.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
        await lease.acquire()
        renewing = asyncio.create_task(lease.run())  # at once: a long world load must not let the lease lapse
        await pg.measure_clock()
        if world is not None:
            counts = await load_world(pg.bulk, world)
            log.info("world loaded: %s", counts)
        redis = connect_redis(s.redis_url, s.redis_timeout_s)
        core = GuardedCore(
            FsiCore(s.core_url, pool_size=s.core_pool_size),
            failure_threshold=s.core_breaker_failures,
            reset_timeout_s=s.core_breaker_reset_s,
            max_in_flight=s.core_max_in_flight,
            queue_wait_s=s.core_queue_wait_s,
            on_short_circuit=lambda reason: app[METRICS].core_short_circuits.labels(reason).inc(),
        )
        app[METRICS].watch_core(core)
        try:
            lookup = RedisLookup(redis, s.redis_prefix, s.redis_timeout_s)
            bulk_log = PgChangeLog(pg.bulk)
            redis_bl = RedisBlacklist(redis, s.redis_prefix, bulk_log, PgListSnapshots(pg.bulk))
            try:
                await sync_once(redis_bl)
            except (*UNAVAILABLE, RedisError, RebuildInterrupted) as exc:  # the publisher retries; PostgreSQL answers
                log.warning("blacklist not in Redis at start-up (%s): the publisher retries", type(exc).__name__)
            local = LocalBlacklist(max_staleness_s=s.blacklist_staleness_s)
            follower = Follower(
                local, PgChangeLog(pg), PgListSnapshots(pg.bulk), redis, redis_bl.stream_key, decode_ops,
                retryable=RETRYABLE, block_ms=int(min(500, s.redis_timeout_s * 500)),
            )  # fmt: skip
            app[METRICS].watch_blacklist(local)
            app[PG_POOL] = pg
            app[PG_BULK] = pg.bulk
            app[NODE] = lease
            app[LIST_LOOKUP] = lookup
            app[LOCAL_BLACKLIST] = local
            app[FEED_WRITER] = PgFeedWriter(pg.with_timeout(FEED_BATCH_S))
            app[LIST_WRITER] = PgFeedWriter(pg)
            app[DISTRIBUTION] = PgDistribution(pg)

            async def publish() -> None:
                # Push to Redis (and so to every process's stream) and apply here at once: the process that
                # accepted a change never answers from a cache that lacks it.
                await redis_bl.catch_up()
                if local.version is not None:  # still loading: the load will include it
                    await follower.catch_up_pg()

            app[FEED_AFTER_COMMIT] = publish
            publisher = Publisher(redis_bl, app[METRICS].blacklist_loaded.set, retryable=RETRYABLE)
            app[FEED_NUDGE] = publisher.nudge
            deps = Deps(
                settings=s,
                clock=SystemClock(ZoneInfo(s.timezone)),
                registry=PgRegistry(pg),
                journal=PgJournal(pg, batch_slots=s.journal_batch_slots, batch_max=s.journal_batch_max),
                settlements=PgSettlements(pg),
                reversals=PgReversalQueue(pg),
                lists_of_record=PgListsOfRecord(pg),
                lists=lookup,
                blacklist=local,
                core=core,
                keys=CardKeyCache(keys),
                policies=policies,
                catalogue=catalogue,
                metrics=app[METRICS],
                node=lease,
            )
            gateway = app[GATEWAY] = Gateway(deps)
            if s.dev_mode:
                log.warning(
                    "DEVELOPMENT MODE: development keys accepted%s",
                    "; admin API open without a token" if s.admin_token is None else "",
                )
            worker = ReversalWorker(deps)
            await worker.refresh_metrics()
            recovery = gateway.recovery
            try:  # before serving, so a retry of an abandoned msgid finds its answer
                await recovery.run_once()
            except (*UNAVAILABLE, DependencyUnavailable) as exc:
                log.warning("journal recovery at start-up: %s (retried periodically)", type(exc).__name__)
            tasks = [
                asyncio.create_task(publisher.run()),
                asyncio.create_task(follower.run()),
                asyncio.create_task(_prune_forever(bulk_log, s.blacklist_retention_days)),
                asyncio.create_task(worker.run_forever()),
                asyncio.create_task(run_sealer(pg)),
                asyncio.create_task(recovery.run_forever()),
            ]
            yield
            await _stop(tasks)
        finally:
            await core.close()
            await redis.aclose()
    finally:
        if renewing is not None:
            await _stop([renewing])
        with contextlib.suppress(*RETRYABLE):  # a database gone by now: the lease expires by itself
            await lease.release()
        await pg.close()
