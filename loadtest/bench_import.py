"""`onecard bench import`: a county-sized feed file through the streaming importer, timed.

Creates a scratch database with N registry cards (COPY), writes N JSON-lines events over them (loss reports,
locks, damage, PIN mode), imports the file with `gateway.feeds_import.FeedImport` exactly as the admin API and
`onecard blacklist import` do, prints lines per second, and drops the database. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import orjson
from redis.asyncio import Redis

from adapters.pg_changelog import PgChangeLog, current_version
from adapters.pg_feed_writer import PgFeedWriter
from adapters.pg_list_snapshots import PgListSnapshots
from adapters.pg_migrate import create_database, migrate
from adapters.pg_pool import Pg
from blacklist_cache.redis_blacklist import RedisBlacklist
from gateway.feeds_import import FeedImport
from onecard.importer import file_chunks

KINDS: tuple[tuple[str, dict[str, bool]], ...] = (
    ("loss_reported", {"formal": False}),
    ("loss_reported", {"formal": True}),
    ("locked", {"fraud": False}),
    ("damaged", {}),
    ("pin_set", {}),
    ("locked", {"fraud": True}),
)
BULK_S = 600.0  # the deadline of one batch or snapshot: generous, the bench measures throughput
REGIONS = ("330203", "330205", "330206", "330211", "330281", "330282")


def write_events(path: Path, sns: list[str]) -> int:
    """One event per card, a deterministic mix; returns the file's size."""
    rng = random.Random(1)
    with path.open("wb") as f:
        for i, sn in enumerate(sns):
            event, extra = KINDS[rng.randrange(len(KINDS))]
            f.write(orjson.dumps({"source": "330200", "source_seq": i + 1, "event": event, "card_sn": sn, **extra}))
            f.write(b"\n")
    return path.stat().st_size


async def run(n: int, batch: int, redis_url: str | None) -> dict[str, float | int | str]:
    """Import n events over n cards; returns the measurements."""
    admin = os.environ.get("ONECARD_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"onecard_impbench_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(admin, name)
    tmp = Path(tempfile.mkdtemp(prefix="onecard-import-"))
    path = tmp / "events.jsonl"
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        sns = [f"{REGIONS[i % 6]}D156000005{i:016X}" for i in range(n)]
        await conn.copy_records_to_table(
            "cards",
            records=[(sn, f"A{i:08d}", f"P{i:010d}", "DEFAULT", "ACTIVE", "SM4", 1) for i, sn in enumerate(sns)],
            columns=["card_sn", "card_no", "psn_no", "pin_mode", "status", "alg", "kv"],
        )
        await conn.execute("VACUUM ANALYZE cards")
        await conn.close()
        size = await asyncio.to_thread(write_events, path, sns)
        counts: dict[str, int] = {}
        async with asyncpg.create_pool(dsn, min_size=1, max_size=2) as raw:
            pool = Pg(raw, timeout_s=BULK_S)
            redis_bl = None
            if redis_url:
                redis = Redis.from_url(redis_url)
                redis_bl = RedisBlacklist(redis, f"onecard-impbench-{name}:", PgChangeLog(pool), PgListSnapshots(pool))
            if redis_bl is not None:
                await redis_bl.rebuild()
            t0 = time.perf_counter()
            run = FeedImport(PgFeedWriter(pool), fmt="jsonl", source_scope=None, batch_size=batch)
            async for r in run.results(file_chunks(str(path))):
                if "status" in r:
                    counts[r["status"]] = counts.get(r["status"], 0) + 1
            elapsed = time.perf_counter() - t0
            versions = await current_version(pool)
            publish_s = 0.0
            if redis_bl is not None:
                # The gateway's publisher pushes batches while the import runs; here it is timed on its own.
                t1 = time.perf_counter()
                await redis_bl.catch_up()
                publish_s = time.perf_counter() - t1
                in_redis = await redis_bl.version()
                keys = [k async for k in redis_bl.redis.scan_iter(match=redis_bl.prefix + "*", count=10_000)]
                for i in range(0, len(keys), 1000):
                    await redis_bl.redis.unlink(*keys[i : i + 1000])
                await redis_bl.redis.aclose()
                assert in_redis == versions, f"Redis reflects {in_redis}, PostgreSQL {versions}"
        return {
            "lines": n, "file_mb": round(size / 1e6, 1), "seconds": round(elapsed, 1),
            "lines_per_s": round(n / elapsed), "versions": versions, "redis_publish_s": round(publish_s, 1),
            "results": str(counts),
        }  # fmt: skip
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, True)
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point (`onecard bench import`)."""
    ap = argparse.ArgumentParser(prog="onecard bench import")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5000, help="events per transaction")
    ap.add_argument("--no-redis", action="store_true", help="PostgreSQL only (as `onecard blacklist import`)")
    args = ap.parse_args(argv)
    redis_url = None if args.no_redis else os.environ.get("ONECARD_REDIS_URL", "redis://127.0.0.1:6379/0")
    print(asyncio.run(run(args.lines, args.batch, redis_url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
