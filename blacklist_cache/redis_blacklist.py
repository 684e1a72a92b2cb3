"""The blacklist in Redis (layout: `blacklist_cache.redis_scripts`): reads, and following the change log of
PostgreSQL, which it reaches only through the `ChangeLog` and `ListSnapshots` ports. Rebuilds are in
`blacklist_cache.redis_rebuild`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import Any, cast

from redis.asyncio import Redis

from blacklist_cache import redis_rebuild
from blacklist_cache.errors import BlacklistUnloaded, RebuildInterrupted
from blacklist_cache.redis_codec import MEAN_BUCKET, encode_ops, field_of, hi, reason_code, reason_int
from blacklist_cache.redis_scripts import APPLY, LOAD, LOCK_FREE, LOCK_KEEP, LOOKUP, SWITCH, UNLOAD
from gateway.domain.feeds import LoggedChange
from gateway.ports.blacklist import ChangeLog, ListSnapshots

log = logging.getLogger("onecard.blacklist")

CHUNK = 1000  # changes per atomic apply
STREAM_MAXLEN = 100_000


class RedisBlacklist:
    """Builds, follows and reads the Redis-resident blacklist. Needs decode_responses=False.

    `changes` and `lists` are PostgreSQL's change log and lists of record (give them the bulk deadline).
    """

    def __init__(self, redis: Redis, prefix: str, changes: ChangeLog, lists: ListSnapshots) -> None:
        self.redis = redis
        self.prefix = prefix
        self.changes = changes
        self.lists = lists
        self.base = f"{prefix}bl:"
        self.meta_key = f"{prefix}bl:meta"
        self.stream_key = f"{prefix}bl:stream"
        self._apply = redis.register_script(APPLY)
        self.load_script = redis.register_script(LOAD)
        self.switch_script = redis.register_script(SWITCH)
        self._unload = redis.register_script(UNLOAD)
        self._lookup = redis.register_script(LOOKUP)
        self.keep_script = redis.register_script(LOCK_KEEP)
        self.free_script = redis.register_script(LOCK_FREE)

    async def version(self) -> int | None:
        """The version Redis reflects, or None when unloaded."""
        v = await cast("Awaitable[bytes | None]", self.redis.hget(self.meta_key, "version"))
        return None if v is None else int(v)

    async def lookup(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str]:
        """(card reason, person reason), '' when not listed.

        Raises:
            BlacklistUnloaded: Redis holds no blacklist.
        """
        cf = field_of("C", card_sn) if card_sn else None
        pf = field_of("P", psn_no) if psn_no else None
        args: list[str | bytes | int] = [self.prefix, cf or b"", hi(cf), pf or b"", hi(pf)]
        res = await self._lookup(keys=[self.meta_key], args=args)
        if res == -1:
            raise BlacklistUnloaded("the blacklist is not loaded in Redis")
        return reason_code(res[0]), reason_code(res[1])

    async def stats(self) -> dict[str, Any]:
        """gen, bits, version, bucket counts, entries and mean bucket fill; {'loaded': False} when unloaded."""
        raw = await cast("Awaitable[dict[bytes, bytes]]", self.redis.hgetall(self.meta_key))
        if not raw:
            return {"loaded": False}
        m = {k.decode(): int(v) for k, v in raw.items()}
        cb, pb = 1 << m["cbits"], 1 << m["pbits"]
        fill = max(m.get("ccount", 0) / cb, m.get("pcount", 0) / pb)
        return {
            "loaded": True,
            "gen": m["gen"],
            "cbits": m["cbits"],
            "pbits": m["pbits"],
            "version": m["version"],
            "card_buckets": cb,
            "person_buckets": pb,
            "cards": m.get("ccount", 0),
            "persons": m.get("pcount", 0),
            "max_mean_fill": round(fill, 1),
            "rebuild_advised": fill > 1.5 * MEAN_BUCKET,
        }

    async def catch_up(self) -> int:
        """Apply the change log after meta.version; returns the version Redis reflects, -1 when unloaded.

        Safe to run from many processes at once: each chunk applies only on top of the version it follows.
        When the log no longer reaches back to meta.version (pruned), or Redis claims a version PostgreSQL never
        reached, the state is unknown: meta is dropped (→ UNLOADED, requests refused) and -1 returned.
        """
        return await self.follow(self.meta_key, publish=True)

    async def rebuild(self) -> int:
        """Build a new generation from the lists of record, make it live, drop the old; returns the version.

        One rebuild at a time (a Redis lock); a caller that finds one running waits for it and catches up. The
        old generation keeps serving (and following the log) until the switch. Returns the version Redis
        reflects afterwards (≥ the snapshot's version).
        """
        return await redis_rebuild.rebuild(self)

    async def follow(self, meta_key: str, *, publish: bool) -> int:
        """Apply the change log to the generation of `meta_key` (live, or staging without publishing).

        Raises:
            RebuildInterrupted: a staging generation whose log does not continue (never unloaded, given up).
        """
        while True:
            gen, ver = await cast("Awaitable[list[bytes | None]]", self.redis.hmget(meta_key, ["gen", "version"]))
            if gen is None or ver is None:
                return -1
            v = int(ver)
            head = await self.changes.version()
            if head == v:
                return v
            rows = [] if head < v else await self.changes.changes_since(v, CHUNK)
            if not rows or rows[0].version != v + 1:
                if not publish:
                    raise RebuildInterrupted(f"blacklist change log does not continue version {v}")
                log.error("blacklist in Redis at version %d cannot follow PostgreSQL (%d): unloading", v, head)
                await self._unload(keys=[meta_key], args=[gen, ver])
                continue
            rows = [r for i, r in enumerate(rows) if r.version == v + 1 + i]  # gap-free by construction
            await self._apply_rows(meta_key, rows, publish)

    async def _apply_rows(self, meta_key: str, rows: Sequence[LoggedChange], publish: bool) -> int:
        changes = [(r.list, r.op, r.key, r.reason) for r in rows]
        args: list[Any] = [self.prefix, rows[0].version, rows[-1].version, "1" if publish else "0"]
        args += [encode_ops(changes), STREAM_MAXLEN]
        for list_, op, key, reason in changes:
            field = field_of(list_, key)
            if field is None or (op != "D" and not reason_int(reason)):
                log.warning("blacklist change of an invalid %s key or reason skipped in Redis", list_)
                continue
            args += ["c" if list_ == "C" else "p", hi(field), field, reason_int(reason) if op != "D" else ""]
        return int(await self._apply(keys=[meta_key, self.stream_key], args=args))
