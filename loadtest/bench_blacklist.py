"""`onecard bench blacklist`: the city-scale blacklist at 10^3 .. 10^7 entries, measured.

For each size: load time (PostgreSQL COPY, Redis rebuild, a process's in-memory load), Redis bytes per card
entry (INFO used_memory before and after), lookup latency through the gateway's own path (in-process hit,
and miss = the Redis round trip of the request guard), and propagation delay from an admin change to a
SECOND gateway process that follows the blacklist on its own. Uses a scratch database and Redis prefix,
removed afterwards. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
from redis.asyncio import Redis

from adapters.pg_changelog import PgChangeLog, current_version
from adapters.pg_feed_writer import set_card_entry
from adapters.pg_list_snapshots import PgListSnapshots
from adapters.pg_migrate import create_database, migrate
from adapters.pg_pool import RETRYABLE, Pg
from blacklist_cache.follower import Follower
from blacklist_cache.local import LocalBlacklist
from blacklist_cache.redis_blacklist import RedisBlacklist
from blacklist_cache.redis_codec import decode_ops
from blacklist_cache.redis_lookup import RedisLookup

REASONS = ("01", "02", "04", "05", "06", "07")
REGIONS = ("330200", "330203", "330205", "330206", "330211", "330281", "330282")


def cards(n: int, seed: int) -> Iterator[str]:
    """n distinct card_sn values (random serials)."""
    rng = random.Random(seed)
    seen: set[int] = set()
    while len(seen) < n:
        serial = rng.getrandbits(64)
        if serial in seen:
            continue
        seen.add(serial)
        yield f"{REGIONS[serial % len(REGIONS)]}D156000005{serial:016X}"


def pct(xs: list[float], p: float) -> float:
    """The p-th percentile."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


async def _used_memory(r: Redis) -> int:
    info = await r.info("memory")
    return int(info["used_memory"])


async def load_pg(pool: asyncpg.Pool, n: int, seed: int) -> tuple[float, list[str]]:
    """COPY n listed cards into the list of record at version n; returns seconds and a sample of them."""
    t0 = time.perf_counter()
    sample: list[str] = []
    batch: list[tuple[str, str, str, int]] = []
    async with pool.acquire() as conn:
        for i, card_sn in enumerate(cards(n, seed), 1):
            batch.append((card_sn, REASONS[i % len(REASONS)], "330200", i))
            if i % max(1, n // 2000) == 0 and len(sample) < 2000:
                sample.append(card_sn)
            if len(batch) == 200_000:
                await conn.copy_records_to_table(
                    "blacklist_cards", records=batch, columns=["card_sn", "reason", "source", "version"]
                )
                batch.clear()
        if batch:
            await conn.copy_records_to_table(
                "blacklist_cards", records=batch, columns=["card_sn", "reason", "source", "version"]
            )
        # The initial load stands for history whose change log was pruned (retention): only the version.
        await conn.execute("UPDATE blacklist_meta SET version = $1", n)
    return time.perf_counter() - t0, sample


async def lookups(lookup: RedisLookup, local: LocalBlacklist, listed: list[str], count: int) -> dict[str, float]:
    """Per-check latency of the gateway's path: in-process hit (clear card) and miss (listed: Redis)."""
    clean = list(cards(count, seed=987654))
    hit: list[float] = []
    for card_sn in clean:
        t0 = time.perf_counter()
        ok = local.card_clear(card_sn)
        hit.append((time.perf_counter() - t0) * 1e6)
        assert ok, "a card that is not listed must clear locally"
    miss: list[float] = []
    for i in range(count):
        card_sn = listed[i % len(listed)]
        t0 = time.perf_counter()
        assert not local.card_clear(card_sn)
        got = await lookup.reasons(card_sn, None)
        miss.append((time.perf_counter() - t0) * 1e6)
        assert got is not None, "the lists must be loaded in Redis"
        assert got[0], "a listed card must be found in Redis"
    return {
        "hit_p50_us": pct(hit, 50),
        "hit_p99_us": pct(hit, 99),
        "miss_p50_us": pct(miss, 50),
        "miss_p99_us": pct(miss, 99),
    }


def _pg(pool: asyncpg.Pool[asyncpg.Record]) -> Pg:
    """The bench's pool under the gateway's deadline wrapper, with a generous (bulk) deadline."""
    return Pg(pool, timeout_s=600.0)


def _follower(local: LocalBlacklist, pg: Pg, redis: Redis, bl: RedisBlacklist) -> Follower:
    return Follower(local, PgChangeLog(pg), PgListSnapshots(pg), redis, bl.stream_key, decode_ops, retryable=RETRYABLE)


async def propagation(
    pool: Pg, bl: RedisBlacklist, dsn: str, redis_url: str, prefix: str, events: int
) -> dict[str, float]:
    """Admin change committed → applied in a second process (its own follower), in milliseconds."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest.bench_blacklist", "--follow", dsn, redis_url, prefix,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert child.stdout is not None
    ready = (await child.stdout.readline()).decode()
    assert ready.startswith("ready"), ready
    committed: dict[int, float] = {}
    delays: list[float] = []
    try:
        for card_sn in cards(events, seed=424242):
            stamp: list[float] = []

            async def publish(stamp: list[float] = stamp) -> None:
                stamp.append(time.time())  # committed: the change is accepted from here on
                await bl.catch_up()

            await set_card_entry(pool, card_sn, "02", "330200", after_commit=publish)
            committed[await current_version(pool)] = stamp[0]
            await asyncio.sleep(0.02)
        last = max(committed)
        while line := (await child.stdout.readline()).decode():
            version, at = line.split()
            done = [v for v in committed if v <= int(version)]
            delays.extend((float(at) - committed.pop(v)) * 1e3 for v in done)
            if int(version) >= last:
                break
    finally:
        child.terminate()
        await child.wait()
    return {
        "events": events, "prop_p50_ms": pct(delays, 50), "prop_p99_ms": pct(delays, 99), "prop_max_ms": max(delays),
    }  # fmt: skip


async def follow(dsn: str, redis_url: str, prefix: str) -> None:
    """The second process: follow the blacklist and print 'version unix-time' whenever it moves."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    redis = Redis.from_url(redis_url)
    local = LocalBlacklist()
    pg = _pg(pool)
    bl = RedisBlacklist(redis, prefix, PgChangeLog(pg), PgListSnapshots(pg))
    follower = _follower(local, pg, redis, bl)
    task = asyncio.create_task(follower.run())
    while local.version is None:  # noqa: ASYNC110 - a benchmark's child waiting for its first load
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # let the stream reader start blocking
    print("ready", flush=True)
    seen = local.version
    try:
        while True:
            if local.version != seen:
                seen = local.version
                print(f"{seen} {time.time():.6f}", flush=True)
            await asyncio.sleep(0.0005)
    finally:
        task.cancel()
        await redis.aclose()
        await pool.close()


async def one_size(admin: str, redis_url: str, n: int, lookups_n: int, events: int) -> dict[str, Any]:
    """Everything for one list size, on a scratch database and prefix."""
    name = f"onecard_blbench_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(admin, name)
    prefix = f"onecard-blbench-{name}:"
    redis = Redis.from_url(redis_url)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.close()
        pg_s, sample = await load_pg(pool, n, seed=n)
        pg = _pg(pool)
        bl = RedisBlacklist(redis, prefix, PgChangeLog(pg), PgListSnapshots(pg))
        before = await _used_memory(redis)
        t0 = time.perf_counter()
        await bl.rebuild()
        redis_s = time.perf_counter() - t0
        bytes_per = (await _used_memory(redis) - before) / n
        local = LocalBlacklist(max_staleness_s=3600)
        t0 = time.perf_counter()
        await _follower(local, pg, redis, bl).load()
        local_s = time.perf_counter() - t0
        lookup = RedisLookup(redis, prefix)
        res: dict[str, Any] = {
            "entries": n,
            "pg_load_s": round(pg_s, 2),
            "redis_rebuild_s": round(redis_s, 2),
            "process_load_s": round(local_s, 2),
            "redis_bytes_per_entry": round(bytes_per, 1),
        }
        res.update({k: round(v, 1) for k, v in (await lookups(lookup, local, sample, lookups_n)).items()})
        prop = await propagation(pg, bl, dsn, redis_url, prefix, events)
        res.update({k: round(v, 1) for k, v in prop.items()})
        return res
    finally:
        keys = [k async for k in redis.scan_iter(match=prefix + "*", count=10_000)]
        for i in range(0, len(keys), 1000):
            await redis.unlink(*keys[i : i + 1000])
        await redis.aclose()
        await pool.close()
        admin_conn = await asyncpg.connect(admin)
        await admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin_conn.close()


async def run(sizes: list[int], lookups_n: int, events: int) -> list[dict[str, Any]]:
    """All sizes, one after the other; prints a line per size as it finishes."""
    admin = os.environ.get("ONECARD_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("ONECARD_REDIS_URL", "redis://127.0.0.1:6379/0")
    out = []
    for n in sizes:
        res = await one_size(admin, redis_url, n, lookups_n, events)
        print(json.dumps(res), flush=True)
        out.append(res)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point (also `onecard bench blacklist`)."""
    import argparse

    ap = argparse.ArgumentParser(prog="onecard bench blacklist")
    ap.add_argument("--sizes", default="1000,100000,1000000,10000000", help="comma-separated entry counts")
    ap.add_argument("--lookups", type=int, default=5000, help="lookups per path and size")
    ap.add_argument("--events", type=int, default=100, help="admin changes timed for propagation")
    ap.add_argument("--follow", nargs=3, metavar=("DSN", "REDIS_URL", "PREFIX"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.follow:
        asyncio.run(follow(*args.follow))
        return 0
    sizes = [int(float(x)) for x in args.sizes.split(",") if x.strip()]
    results = asyncio.run(run(sizes, args.lookups, args.events))
    head = (
        "entries",
        "pg_load_s",
        "redis_rebuild_s",
        "process_load_s",
        "redis_bytes_per_entry",
        "hit_p50_us",
        "hit_p99_us",
        "miss_p50_us",
        "miss_p99_us",
        "prop_p50_ms",
        "prop_p99_ms",
        "prop_max_ms",
    )
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in results:
        print("| " + " | ".join(str(r.get(h, "")) for h in head) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
