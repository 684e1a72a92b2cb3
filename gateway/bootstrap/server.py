"""What a serving gateway is built from: `server_resources(app)` (an aiohttp cleanup context) opens PostgreSQL,
Redis and the core client, builds every adapter and the pipeline, starts the background loops, and closes it
all in reverse. Start-up order matters: Redis and PostgreSQL are asked first (exit 3 before anything is
written), migrations and the node lease next, then the world, the blacklist, recovery, and only then serving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web
from redis.exceptions import RedisError

from adapters.journal_sealing import JournalSealing
from adapters.local_rate_limiter import LocalRateLimiter
from adapters.pg_audit import PgAuditTrail
from adapters.pg_claims import PgJournal
from adapters.pg_distribution import PgDistribution
from adapters.pg_feed_writer import PgFeedWriter
from adapters.pg_journal_chain import run_sealer
from adapters.pg_journal_verify import PgJournalVerifier
from adapters.pg_lists import PgListsOfRecord
from adapters.pg_nodes import NodeLease
from adapters.pg_operators import PgOperators
from adapters.pg_pool import RETRYABLE, UNAVAILABLE, Pg
from adapters.pg_reconcile import PgReconcileReads
from adapters.pg_registry import PgRegistry
from adapters.pg_reversal_queue import PgReversalQueue
from adapters.pg_settlements import PgSettlements
from adapters.pg_stays import PgStays  # issue 12, inpatient
from adapters.pg_visits import PgVisits  # issue 12
from adapters.pg_world import load_world
from adapters.system_clock import SystemClock
from blacklist_cache.local import LocalBlacklist
from blacklist_cache.redis_lookup import RedisLookup, connect_redis
from gateway.background import Background
from gateway.bootstrap.blacklist import start_blacklist
from gateway.bootstrap.reference import load_rate_limits, load_reference
from gateway.bootstrap.stores import core_tls, guarded_core, open_server_pg, redis_answers
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.keys import CardKeyCache
from gateway.http.feeds import FEED_BATCH_S
from gateway.http.identity import Identities
from gateway.keys import (
    AUDIT_TRAIL,
    BACKGROUND,
    DATABASE,
    DISTRIBUTION,
    FEED_WRITER,
    GATEWAY,
    IDENTITIES,
    JOURNAL_VERIFIER,
    LIST_LOOKUP,
    LIST_WRITER,
    LOCAL_BLACKLIST,
    MASTER_KEYS,
    METRICS,
    NODE,
    RECONCILE_READS,
    SETTINGS,
    STATUS,
)
from gateway.keystore import load_data_keys, load_keys
from gateway.pipeline.context import Deps
from gateway.pipeline.reversals import ReversalWorker
from gateway.pipeline.service import Gateway

log = logging.getLogger("onecard.app")

# What the error middleware answers 503 for: PostgreSQL or Redis cannot be used right now.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (*UNAVAILABLE, RedisError)
_DATABASE_AWAY: tuple[type[BaseException], ...] = (*UNAVAILABLE, DependencyUnavailable)


async def server_resources(app: web.Application) -> AsyncIterator[None]:
    """Open everything, put it on the app under its typed keys, serve, and close in reverse."""
    s = app[SETTINGS]
    metrics = app[METRICS]
    keys = load_keys(s)
    app[MASTER_KEYS] = keys
    app[STATUS]["keys"] = "ok" if keys.ids else "missing"
    data_keys = load_data_keys(s)  # issue 11 item 9: refused (exit 2) before anything opens, like the keys
    sealing = JournalSealing(data_keys) if data_keys is not None else None
    app[STATUS]["journal_encryption"] = "ok" if s.journal_encryption else "disabled (journal_encryption = false)"
    core_context = core_tls(s, s.core_url)  # issue 11 item 3: TLS files checked before anything is written
    world = None
    if s.world_file:
        world = json.loads(await asyncio.to_thread(Path(s.world_file).read_text, encoding="utf-8"))
    policies, catalogue = load_reference(s, world)
    rate_limits = await asyncio.to_thread(load_rate_limits, s)  # issue 11 item 7: bad file: exit 2, nothing opened
    await redis_answers(s)
    pg, applied = await open_server_pg(s)
    if applied:
        log.info("migrations applied: %s", ", ".join(applied))
    lease = NodeLease(pg, wanted=s.node_id, lease_s=s.node_lease_s)
    background = app[BACKGROUND] = Background(lambda name: metrics.background_crashes.labels(name).inc())
    renewal = Background(lambda name: metrics.background_crashes.labels(name).inc())
    try:
        await lease.acquire()
        renewal.start("node lease", lease.run)  # at once: a long world load must not let the lease lapse
        await pg.measure_clock()
        if world is not None:
            log.info("world loaded: %s", await load_world(pg.bulk, world))
        redis = connect_redis(s.redis_url, s.redis_timeout_s)
        core = guarded_core(s, lambda reason: metrics.core_short_circuits.labels(reason).inc(), core_context)
        metrics.watch_core(core)
        try:
            local = LocalBlacklist(max_staleness_s=s.blacklist_staleness_s)
            lookup = RedisLookup(redis, s.redis_prefix, s.redis_timeout_s)
            metrics.watch_blacklist(local)
            app[DATABASE] = pg
            app[NODE] = lease
            app[LIST_LOOKUP] = lookup
            app[LOCAL_BLACKLIST] = local
            app[FEED_WRITER] = PgFeedWriter(pg.with_timeout(FEED_BATCH_S))
            app[LIST_WRITER] = PgFeedWriter(pg)
            app[DISTRIBUTION] = PgDistribution(pg)
            app[IDENTITIES] = Identities(s, PgOperators(pg))  # issue 11: named operators, env tokens
            app[AUDIT_TRAIL] = PgAuditTrail(pg)
            app[RECONCILE_READS] = PgReconcileReads(pg.bulk)  # issue 11 item 5: the auditor's reads
            app[JOURNAL_VERIFIER] = PgJournalVerifier(pg.bulk)
            await start_blacklist(app, pg, redis, local, background)
            deps = Deps(
                settings=s,
                clock=SystemClock(ZoneInfo(s.timezone)),
                registry=PgRegistry(pg),
                journal=PgJournal(
                    pg,
                    batch_slots=s.journal_batch_slots,
                    batch_max=s.journal_batch_max,
                    sealing=sealing,
                    seal_new=s.journal_encryption,
                ),
                settlements=PgSettlements(pg),
                visits=PgVisits(pg),  # issue 12: outpatient visits (SPEC §6.6)
                stays=PgStays(pg),  # issue 12: inpatient stays (SPEC §6.7)
                reversals=PgReversalQueue(pg),
                lists_of_record=PgListsOfRecord(pg),
                lists=lookup,
                blacklist=local,
                core=core,
                keys=CardKeyCache(keys),
                policies=policies,
                catalogue=catalogue,
                metrics=metrics,
                node=lease,
                limiter=None if rate_limits is None else LocalRateLimiter(rate_limits, share=s.host_workers),
            )
            gateway = app[GATEWAY] = Gateway(deps)
            if data_keys is not None:
                log.info("journal bodies sealed with data key v%d (held: %s)", data_keys.current_version,
                         ", ".join(f"v{v}" for v in data_keys.versions))  # fmt: skip
            else:
                log.warning("journal bodies stored in clear (journal_encryption = false)")
            if s.dev_mode:
                log.warning(
                    "DEVELOPMENT MODE: development keys accepted%s",
                    "; admin API open without a token" if app[IDENTITIES].open_for_development else "",
                )
            await _start_journal_loops(deps, gateway, pg, background)
            yield
            await background.stop()
        finally:
            await core.close()
            await redis.aclose()
    finally:
        await renewal.stop()
        with contextlib.suppress(*RETRYABLE):  # a database gone by now: the lease expires by itself
            await lease.release()
        await pg.close()


async def _start_journal_loops(deps: Deps, gateway: Gateway, pg: Pg, background: Background) -> None:
    """Recovery's first pass before serving (so a retry of an abandoned msgid finds its answer), then the
    reversal worker, recovery and the chain sealer in the background."""
    worker = ReversalWorker(deps)
    await worker.refresh_metrics()
    try:
        await gateway.recovery.run_once()
    except _DATABASE_AWAY as exc:
        log.warning("journal recovery at start-up: %s (retried periodically)", type(exc).__name__)
    background.start("reversal worker", worker.run_forever)
    background.start("journal recovery", gateway.recovery.run_forever)
    background.start("journal sealer", lambda: run_sealer(pg))
