"""Keeps Redis equal to PostgreSQL: publishes committed changes (from any writer, in any process) and
rebuilds the Redis layout when it is missing (a Redis restart) or has outgrown its buckets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from blacklist_cache.errors import RebuildInterrupted
from blacklist_cache.redis_blacklist import RedisBlacklist

log = logging.getLogger("onecard.blacklist")


async def sync_once(bl: RedisBlacklist) -> int:
    """Publish what PostgreSQL committed; rebuild when Redis has no layout. Returns the version in Redis."""
    version = await bl.catch_up()
    if version == -1:
        log.warning("blacklist missing from Redis: rebuilding from PostgreSQL")
        version = await bl.rebuild()
    return version


class Publisher:
    """Publishes PostgreSQL's committed changes to Redis every `interval_s`, or at once when nudged.

    `retryable`: the errors that mean "PostgreSQL is away" (the publisher reports them and tries again).
    """

    def __init__(
        self,
        bl: RedisBlacklist,
        on_state: Callable[[bool], None],
        interval_s: float = 0.25,
        *,
        retryable: tuple[type[BaseException], ...],
    ) -> None:
        self.bl = bl
        self.on_state = on_state
        self.retryable = retryable
        self.interval_s = interval_s
        self._wake = asyncio.Event()

    async def nudge(self) -> None:
        """Ask for a catch-up now (a bulk import committed a batch); returns at once."""
        self._wake.set()

    async def run(self) -> None:
        """Loop until cancelled."""
        await keep_current(self.bl, self.on_state, self.interval_s, self._wake, retryable=self.retryable)


async def keep_current(
    bl: RedisBlacklist,
    on_state: Callable[[bool], None],
    interval_s: float = 0.25,
    wake: asyncio.Event | None = None,
    *,
    retryable: tuple[type[BaseException], ...],
) -> None:
    """Loop until cancelled; `on_state(loaded)` reports whether Redis holds the lists."""
    wake = wake or asyncio.Event()
    transient: tuple[type[BaseException], ...] = (RedisError, RebuildInterrupted, *retryable)
    checks = 0
    while True:
        try:
            await sync_once(bl)
            checks += 1
            if checks % 40 == 0 and (await bl.stats()).get("rebuild_advised"):
                log.info("blacklist buckets are filling up: rebuilding with more buckets")
                await bl.rebuild()
            on_state(True)
        except transient as exc:  # a wiped Redis mid-rebuild included
            on_state(False)
            log.warning("blacklist publisher: %s: %s", type(exc).__name__, exc)
        with contextlib.suppress(TimeoutError):  # asyncio.timeout, not wait_for: 3.11's can swallow a cancel
            async with asyncio.timeout(interval_s):
                await wake.wait()
        wake.clear()
