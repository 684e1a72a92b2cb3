"""Rebuilding the Redis blacklist from the lists of record: a new generation built from one consistent
snapshot, caught up on the change log, switched live atomically, the old generations dropped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast

from blacklist_cache.errors import RebuildInterrupted
from blacklist_cache.fingerprint import fingerprint
from blacklist_cache.redis_codec import bits_for, field_of, reason_int
from gateway.ports.blacklist import ListName, ListSnapshot

if TYPE_CHECKING:
    from blacklist_cache.redis_blacklist import RedisBlacklist

log = logging.getLogger("onecard.blacklist")

LOAD_BATCH = 4000  # rows per bulk-load script call (a few ms of Redis time)
LOCK_MS = 30_000


async def rebuild(bl: RedisBlacklist) -> int:
    """`RedisBlacklist.rebuild`: one rebuild at a time; returns the version Redis reflects afterwards."""
    token = uuid.uuid4().hex
    lock = f"{bl.base}lock"
    while not await bl.redis.set(lock, token, nx=True, px=LOCK_MS):
        await asyncio.sleep(0.2)
        if not await cast("Awaitable[int]", bl.redis.exists(lock)) and await bl.version() is not None:
            return await bl.catch_up()
    keeper = asyncio.create_task(_keep_lock(bl, lock, token))
    try:
        gen = int(await cast("Awaitable[int]", bl.redis.incr(f"{bl.base}genseq")))
        stage = f"{bl.base}{gen}:meta"
        await _build(bl, gen, stage, token)
        await bl.follow(stage, publish=False)
        old = await _make_live(bl, stage, token)
        await _drop_gens(bl, keep=gen)
        log.info("blacklist generation %d live (replaced %s)", gen, old or "nothing")
        return await bl.catch_up()
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # a failed renewal must not mask ours
            await keeper
        await bl.free_script(keys=[lock], args=[token])


async def _keep_lock(bl: RedisBlacklist, lock: str, token: str) -> None:
    while True:
        await asyncio.sleep(LOCK_MS / 3000)
        await bl.keep_script(keys=[lock], args=[token, LOCK_MS])


async def _build(bl: RedisBlacklist, gen: int, stage: str, token: str) -> None:
    """Write generation `gen` from one consistent snapshot; its staging meta records the snapshot version."""
    lists: tuple[ListName, ListName] = ("C", "P")
    async with bl.lists.snapshot() as snap:
        version = snap.version
        bits = [bits_for(await snap.size(list_)) for list_ in lists]
        await cast("Awaitable[int]", bl.redis.hset(f"{bl.base}gens", str(gen), f"{bits[0]}:{bits[1]}"))
        await cast("Awaitable[int]", bl.redis.hset(stage, "token", token))
        added = [
            await _load_list(bl, snap, list_, (gen, b, stage, token)) for list_, b in zip(lists, bits, strict=True)
        ]
    meta = {"gen": gen, "cbits": bits[0], "pbits": bits[1], "version": version, "ccount": added[0],
            "pcount": added[1]}  # fmt: skip
    await cast("Awaitable[int]", bl.redis.hset(stage, mapping=meta))
    log.info("blacklist generation %d built at version %d: %d cards, %d persons", gen, version, *added)


async def _load_list(bl: RedisBlacklist, snap: ListSnapshot, list_: ListName, into: tuple[int, int, str, str]) -> int:
    """Stream one list into its buckets; one load script call in flight while reading on."""
    gen, bits, stage, token = into
    base = f"{bl.base}{gen}:{list_.lower()}:"
    shift = 64 - bits
    pack = struct.Struct(">IBB").pack
    added, pending = 0, None
    try:
        async for rows in snap.entries(list_, LOAD_BATCH):
            parts = []
            for key, reason in rows:
                field = field_of(list_, key)
                if field is not None and len(field) < 256:
                    parts.append(pack(fingerprint(field) >> shift, reason_int(reason), len(field)) + field)
            if pending is not None:
                added += _loaded(await pending)
            pending = asyncio.ensure_future(bl.load_script(keys=[stage], args=[base, b"".join(parts), token]))
        if pending is not None:
            added += _loaded(await pending)
            pending = None
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
    return added


async def _make_live(bl: RedisBlacklist, stage: str, token: str) -> str:
    for attempt in range(50):
        res = await bl.switch_script(keys=[bl.meta_key, stage], args=["1" if attempt >= 40 else "0", token])
        kind = res[0].decode()
        log.debug("blacklist switch attempt %d: %s", attempt, kind)
        if kind == "OK":
            return str(res[1].decode())
        if kind == "LOST":
            raise RebuildInterrupted("Redis lost the blacklist generation being built")
        if kind == "AHEAD":
            await bl.follow(stage, publish=False)
        else:
            await bl.catch_up()
    raise RebuildInterrupted("blacklist generation could not be made live")


async def _drop_gens(bl: RedisBlacklist, keep: int) -> None:
    """UNLINK every generation but `keep` (the old live one, leftovers of failed rebuilds), in batches."""
    gens_key = f"{bl.base}gens"
    for gen_b, bits_b in (await cast("Awaitable[dict[bytes, bytes]]", bl.redis.hgetall(gens_key))).items():
        gen = int(gen_b)
        if gen == keep:
            continue
        cbits, pbits = (int(x) for x in bits_b.decode().split(":"))
        keys = [f"{bl.base}{gen}:meta"]
        keys += [f"{bl.base}{gen}:c:{b}" for b in range(1 << cbits)]
        keys += [f"{bl.base}{gen}:p:{b}" for b in range(1 << pbits)]
        pipe = bl.redis.pipeline(transaction=False)
        for i in range(0, len(keys), 1000):
            pipe.unlink(*keys[i : i + 1000])
        await pipe.execute()
        await cast("Awaitable[int]", bl.redis.hdel(gens_key, gen_b.decode()))


def _loaded(res: Any) -> int:
    if int(res) < 0:
        raise RebuildInterrupted("the blacklist generation being built was lost (Redis wiped, or another rebuild)")
    return int(res)
