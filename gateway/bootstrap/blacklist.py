"""The blacklist side of a serving gateway: Redis's copy built from PostgreSQL's lists of record, this
process's cache following the change stream, the publisher, the change-log pruning, and the hook a feed write
calls after its commit."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.pg_changelog import PgChangeLog
from adapters.pg_list_snapshots import PgListSnapshots
from adapters.pg_pool import RETRYABLE, UNAVAILABLE, Pg
from blacklist_cache.errors import RebuildInterrupted
from blacklist_cache.follower import Follower
from blacklist_cache.local import LocalBlacklist
from blacklist_cache.publisher import Publisher, sync_once
from blacklist_cache.redis_blacklist import RedisBlacklist
from blacklist_cache.redis_codec import decode_ops
from gateway.background import Background
from gateway.http.feeds import FEED_AFTER_COMMIT, FEED_NUDGE
from gateway.keys import METRICS, SETTINGS
from gateway.ports.blacklist import ChangeLog

log = logging.getLogger("onecard.app")

# Why Redis's copy may not load at start-up without that stopping the start-up.
_NOT_LOADED_YET: tuple[type[BaseException], ...] = (*UNAVAILABLE, RedisError, RebuildInterrupted)


async def prune_forever(changes: ChangeLog, keep_days: int, every_s: float = 3600.0) -> None:
    """Drop change-log rows past the retention window (the delta API then answers with the full list)."""
    while True:
        try:
            removed = await changes.prune(keep_days)
            if removed:
                log.info("blacklist change log: %d rows past %d days pruned", removed, keep_days)
        except UNAVAILABLE as exc:
            log.warning("blacklist prune: %s", type(exc).__name__)
        await asyncio.sleep(every_s)


async def start_blacklist(
    app: web.Application, pg: Pg, redis: Redis, local: LocalBlacklist, background: Background
) -> None:
    """Load Redis's copy if it can be (the publisher retries otherwise), then start the loops."""
    s, metrics = app[SETTINGS], app[METRICS]
    bulk_log = PgChangeLog(pg.bulk)
    redis_bl = RedisBlacklist(redis, s.redis_prefix, bulk_log, PgListSnapshots(pg.bulk))
    try:
        await sync_once(redis_bl)
    except _NOT_LOADED_YET as exc:  # the publisher retries; PostgreSQL answers
        log.warning("blacklist not in Redis at start-up (%s): the publisher retries", type(exc).__name__)
    follower = Follower(
        local, PgChangeLog(pg), PgListSnapshots(pg.bulk), redis, redis_bl.stream_key, decode_ops,
        retryable=RETRYABLE, block_ms=int(min(500, s.redis_timeout_s * 500)),
    )  # fmt: skip

    async def publish() -> None:
        # Push to Redis (and so to every process's stream) and apply here at once: the process that
        # accepted a change never answers from a cache that lacks it.
        await redis_bl.catch_up()
        if local.version is not None:  # still loading: the load will include it
            await follower.catch_up_pg()

    app[FEED_AFTER_COMMIT] = publish
    publisher = Publisher(redis_bl, metrics.blacklist_loaded.set, retryable=RETRYABLE)
    app[FEED_NUDGE] = publisher.nudge
    background.start("blacklist publisher", publisher.run)
    background.start("blacklist follower", follower.run)
    background.start("blacklist prune", lambda: prune_forever(bulk_log, s.blacklist_retention_days))
