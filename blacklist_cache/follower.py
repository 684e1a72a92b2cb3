"""Keeps a process's `LocalBlacklist` current: a snapshot from PostgreSQL, then the change stream.

Two sources, one rule. The Redis stream (written by `RedisBlacklist.catch_up`) brings changes within
milliseconds; PostgreSQL, the system of record, is asked for its version every `heartbeat_s`. The cache is
confirmed current as of a heartbeat's time only when it has applied at least that heartbeat's version, so
a lost stream message, a Redis restart or a lagging publisher can never make it claim more than it knows:
it then catches up from the change log in PostgreSQL, or reloads the snapshot when the log was pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from blacklist_cache.fingerprint import card_field, fingerprint, person_field
from blacklist_cache.local import LocalBlacklist
from gateway.ports.blacklist import ChangeLog, ListName, ListSnapshots

log = logging.getLogger("onecard.blacklist")

DecodeOps = Callable[[bytes], Sequence[tuple[str, str, str, str]]]  # -> (list, op, key, reason) per change
CATCH_UP_ROWS = 20_000


class Follower:
    """Loads and follows the blacklist for one process.

    `changes` is PostgreSQL's change log (heartbeats and catch-ups: the request deadline), `lists` its lists of
    record (the snapshot load: the bulk deadline); `retryable` the errors that mean "PostgreSQL is away".
    """

    def __init__(
        self,
        local: LocalBlacklist,
        changes: ChangeLog,
        lists: ListSnapshots,
        redis: Redis,
        stream_key: str,
        decode_ops: DecodeOps,
        *,
        retryable: tuple[type[BaseException], ...],
        heartbeat_s: float = 0.25,
        block_ms: int = 500,
    ) -> None:
        self.local = local
        self.changes = changes
        self.lists = lists
        self.retryable = retryable
        self.redis = redis
        self.stream_key = stream_key
        self.decode_ops = decode_ops
        self.heartbeat_s = heartbeat_s
        self.block_ms = block_ms
        self._beats: deque[tuple[float, int]] = deque(maxlen=64)
        self._lock = asyncio.Lock()
        self.reloads = 0

    async def load(self) -> int:
        """Replace the cache with a consistent snapshot of both lists; returns its version."""
        cards: list[int] = []
        persons: list[int] = []
        lists: tuple[tuple[ListName, list[int], Callable[[str], bytes]], ...] = (
            ("C", cards, card_field),
            ("P", persons, person_field),
        )
        async with self.lists.snapshot() as snap:
            version = snap.version
            for list_, out, field in lists:
                await snap.copy_keys(list_, _Lines(out, field))
        async with self._lock:
            self.local.replace(version, cards, persons)
            self._settle_beats()
        self.reloads += 1
        log.info("blacklist cache loaded: version %d, %d cards, %d persons", version, len(cards), len(persons))
        return version

    async def catch_up_pg(self) -> None:
        """Apply the change log after the cached version; reload when the log no longer reaches back."""
        while True:
            applied = self.local.version
            if applied is None:
                await self.load()
                continue
            rows = await self.changes.changes_since(applied, CATCH_UP_ROWS)
            if not rows:
                return
            if rows[0].version != applied + 1:
                log.warning("blacklist change log pruned past version %d: reloading", applied)
                await self.load()
                continue
            async with self._lock:
                self._apply([(r.version, r.list, r.op, r.key) for r in rows])

    def _apply(self, changes: list[tuple[int, str, str, str]]) -> None:
        applied = self.local.version or 0
        fresh = [c for c in changes if c[0] > applied]
        if fresh:
            self.local.apply(fresh)
        self._settle_beats()

    def _settle_beats(self) -> None:
        """Confirm currency as of every heartbeat whose version the cache has reached."""
        applied = self.local.version
        if applied is None:
            return
        while self._beats and self._beats[0][1] <= applied:
            t, _ = self._beats.popleft()
            self.local.synced_at = max(self.local.synced_at, t)

    async def heartbeat_once(self) -> None:
        """Ask PostgreSQL for its version; confirm, or catch up when the cache stayed behind."""
        t = time.monotonic()
        version = await self.changes.version()
        lagging = bool(self._beats) and (self.local.version or 0) < self._beats[0][1]
        self._beats.append((t, version))
        self._settle_beats()
        if lagging and (self.local.version or 0) < version:
            # Behind for a whole heartbeat: the stream missed something (or Redis is away).
            await self.catch_up_pg()

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.heartbeat_once()
            except self.retryable as exc:
                log.warning("blacklist heartbeat failed: %s", type(exc).__name__)
            await asyncio.sleep(self.heartbeat_s)

    async def _stream_loop(self) -> None:
        while True:
            applied = self.local.version or 0
            try:
                res: Any = await self.redis.xread({self.stream_key: f"{applied}-0"}, count=100, block=self.block_ms)
            except (RedisError, OSError) as exc:
                log.debug("blacklist stream unavailable: %s", type(exc).__name__)
                await asyncio.sleep(self.heartbeat_s)
                continue
            for _key, entries in res or ():
                for _id, fields in entries:
                    await self._on_entry(fields)

    async def _on_entry(self, fields: dict[bytes, bytes]) -> None:
        first, last = int(fields[b"from"]), int(fields[b"to"])
        ops = self.decode_ops(fields[b"ops"])
        if last - first + 1 != len(ops):
            log.error("blacklist stream entry %d..%d carries %d changes: ignored", first, last, len(ops))
            return
        applied = self.local.version or 0
        if first > applied + 1:
            await self.catch_up_pg()  # a gap: fill it from the system of record
            applied = self.local.version or 0
        changes = [(first + i, lst, op, key) for i, (lst, op, key, _reason) in enumerate(ops)]
        async with self._lock:
            if changes and changes[-1][0] > applied:
                self._apply(changes)

    async def run(self) -> None:
        """Load, then follow until cancelled."""
        while True:
            try:
                await self.load()
                break
            except self.retryable as exc:
                log.warning("blacklist cache load failed (%s): retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
        tasks = [asyncio.create_task(self._heartbeat_loop()), asyncio.create_task(self._stream_loop())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class _Lines:
    """COPY sink: turns text lines of keys into fingerprints without holding the text."""

    def __init__(self, out: list[int], field: Callable[[str], bytes]) -> None:
        self.out = out
        self.field = field
        self.rest = b""

    async def __call__(self, chunk: bytes) -> None:
        data = self.rest + chunk
        lines = data.split(b"\n")
        self.rest = lines.pop()
        out, field = self.out, self.field
        for line in lines:
            out.append(fingerprint(field(line.decode("ascii"))))
