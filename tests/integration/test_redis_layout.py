"""RedisBlacklist and RedisLookup against the real Redis and PostgreSQL: rebuild, catch-up, stream, wipe."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from redis.asyncio import Redis

from adapters.pg_changelog import PgChangeLog
from adapters.pg_list_snapshots import PgListSnapshots
from adapters.pg_migrate import migrate
from adapters.pg_pool import RETRYABLE, Pg
from blacklist_cache.errors import BlacklistUnloaded, RebuildInterrupted
from blacklist_cache.fingerprint import card_field
from blacklist_cache.publisher import keep_current
from blacklist_cache.redis_blacklist import RedisBlacklist
from blacklist_cache.redis_codec import decode_ops, encode_ops
from blacklist_cache.redis_lookup import RedisLookup, connect_redis
from gateway.domain.errors import DependencyUnavailable

PG_ADMIN = os.environ.get("ONECARD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ONECARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

Change = tuple[str, str, str, str | None]  # list 'C'|'P', op 'A'|'D', key, reason


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    """A fresh migrated database for this module, dropped at the end."""
    name = f"onecard_layout_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        async with asyncpg.create_pool(f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", min_size=1, max_size=8) as p:
            async with p.acquire() as conn:
                await migrate(conn)
            yield p
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    r = Redis.from_url(REDIS_URL)
    yield r
    await r.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A Redis key prefix for one test; its keys are deleted at the end."""
    p = f"onecard-layout-{uuid.uuid4().hex[:8]}:"
    yield p
    await wipe(redis, p)


async def wipe(redis: Redis, prefix: str) -> None:
    keys = [k async for k in redis.scan_iter(match=prefix + "*", count=1000)]
    for i in range(0, len(keys), 1000):
        await redis.unlink(*keys[i : i + 1000])


def card(rng: random.Random) -> str:
    return f"3302{rng.randrange(100):02d}D156000005{rng.getrandbits(64):016X}"


def person(rng: random.Random) -> str:
    return f"330200{rng.randrange(10**8):08d}{rng.randrange(10**6):06d}"


def record(pool: asyncpg.Pool) -> tuple[PgChangeLog, PgListSnapshots]:
    """The change log and lists of record of the scratch database, as the gateway wires them (bulk deadline)."""
    pg = Pg(pool, timeout_s=60.0)
    return PgChangeLog(pg), PgListSnapshots(pg)


def layout(redis: Redis, prefix: str, pool: asyncpg.Pool) -> RedisBlacklist:
    """The Redis blacklist under `prefix`, following the scratch database."""
    return RedisBlacklist(redis, prefix, *record(pool))


async def write(pool: asyncpg.Pool, changes: Sequence[Change]) -> int:
    """Commit changes as a writer does: take the versions, log them, update the lists; returns the last version."""
    async with pool.acquire() as conn, conn.transaction():
        sql = "UPDATE blacklist_meta SET version = version + $1 RETURNING version"
        last = int(await conn.fetchval(sql, len(changes)))
        rows = [(last - len(changes) + 1 + i, *c) for i, c in enumerate(changes)]
        await conn.executemany(
            "INSERT INTO blacklist_changes (version, list, op, key, reason, source) VALUES ($1, $2, $3, $4, $5, 't')",
            rows,
        )
        for (list_, op), run in itertools.groupby(rows, key=lambda r: (r[1], r[2])):  # in version order
            table, col = ("blacklist_cards", "card_sn") if list_ == "C" else ("blacklist_persons", "psn_no")
            if op == "A":
                await conn.executemany(
                    f"INSERT INTO {table} ({col}, reason, source, version) VALUES ($1, $2, 't', $3)"  # noqa: S608
                    f" ON CONFLICT ({col}) DO UPDATE SET reason = EXCLUDED.reason, version = EXCLUDED.version",
                    [(key, reason, v) for v, _, _, key, reason in run],
                )
            else:
                await conn.executemany(f"DELETE FROM {table} WHERE {col} = $1", [(r[3],) for r in run])  # noqa: S608
    return last


async def lists_of_record(pool: asyncpg.Pool) -> tuple[dict[str, str], dict[str, str]]:
    cards = {r[0]: r[1] for r in await pool.fetch("SELECT card_sn, reason FROM blacklist_cards")}
    persons = {r[0]: r[1] for r in await pool.fetch("SELECT psn_no, reason FROM blacklist_persons")}
    return cards, persons


async def redis_contents(redis: Redis, prefix: str) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """Every field of the live generation, by list."""
    meta = {k.decode(): int(v) for k, v in (await redis.hgetall(f"{prefix}bl:meta")).items()}
    out: tuple[dict[bytes, int], dict[bytes, int]] = ({}, {})
    for kind, bits, into in (("c", meta["cbits"], out[0]), ("p", meta["pbits"], out[1])):
        for b in range(1 << bits):
            into.update({f: int(v) for f, v in (await redis.hgetall(f"{prefix}bl:{meta['gen']}:{kind}:{b}")).items()})
    return out


async def assert_mirrors(redis: Redis, prefix: str, pool: asyncpg.Pool) -> None:
    cards, persons = await lists_of_record(pool)
    rc, rp = await redis_contents(redis, prefix)
    assert rc == {card_field(k): int(v) for k, v in cards.items()}
    assert rp == {k.encode(): int(v) for k, v in persons.items()}


async def test_rebuild_then_lookup(pool: asyncpg.Pool, redis: Redis, prefix: str) -> None:
    rng = random.Random(1)
    cards = {card(rng): f"0{rng.randint(1, 7)}" for _ in range(500)}
    persons = {person(rng): rng.choice(["11", "12"]) for _ in range(20)}
    changes = [("C", "A", k, r) for k, r in cards.items()] + [("P", "A", k, r) for k, r in persons.items()]
    head = await write(pool, changes)
    bl = layout(redis, prefix, pool)
    assert await bl.version() is None
    assert await bl.rebuild() == head
    assert await bl.version() == head
    for k, r in list(cards.items())[:50]:
        assert await bl.lookup(k, None) == (r, "")
    for k, r in list(persons.items())[:5]:
        assert await bl.lookup(None, k) == ("", r)
    assert await bl.lookup(card(rng), person(rng)) == ("", "")
    stats = await bl.stats()
    all_cards, all_persons = await lists_of_record(pool)
    assert (stats["cards"], stats["persons"]) == (len(all_cards), len(all_persons))
    assert stats["cbits"] >= 3
    assert stats["version"] == head
    await assert_mirrors(redis, prefix, pool)


async def test_buckets_are_listpacks(pool: asyncpg.Pool, redis: Redis, prefix: str) -> None:
    rng = random.Random(2)
    await write(pool, [("C", "A", card(rng), "01") for _ in range(3000)])
    bl = layout(redis, prefix, pool)
    await bl.rebuild()
    s = await bl.stats()
    sizes = []
    for b in range(s["card_buckets"]):
        key = f"{prefix}bl:{s['gen']}:c:{b}"
        sizes.append(await redis.hlen(key))
        if sizes[-1]:
            assert await redis.object("ENCODING", key) == b"listpack"
    assert sum(sizes) == s["cards"]
    assert 32 < sum(sizes) / len(sizes) <= 64
    assert max(sizes) < 128


async def test_catch_up_applies_in_order_and_publishes(pool: asyncpg.Pool, redis: Redis, prefix: str) -> None:
    rng = random.Random(3)
    a, b, p = card(rng), card(rng), person(rng)
    await write(pool, [("C", "A", b, "04")])
    bl = layout(redis, prefix, pool)
    start = await bl.rebuild()
    changes: list[Change] = [
        ("C", "A", a, "01"),
        ("C", "A", a, "02"),
        ("C", "D", b, None),
        ("P", "A", p, "11"),
        ("C", "D", a, None),
        ("C", "A", a, "07"),
    ]
    await write(pool, changes[:2])
    await write(pool, changes[2:])
    assert await bl.catch_up() == start + 6
    assert await bl.lookup(a, p) == ("07", "11")
    assert await bl.lookup(b, None) == ("", "")
    entries = await redis.xrange(f"{prefix}bl:stream")
    assert [e[0] for e in entries] == [f"{start + 6}-0".encode()]
    fields = entries[0][1]
    assert (int(fields[b"from"]), int(fields[b"to"])) == (start + 1, start + 6)
    assert decode_ops(fields[b"ops"]) == [(lst, op, k, r or "") for lst, op, k, r in changes]
    assert await bl.catch_up() == start + 6  # nothing new: no new entry
    assert len(await redis.xrange(f"{prefix}bl:stream")) == 1
    await assert_mirrors(redis, prefix, pool)


def test_ops_round_trip_odd_keys() -> None:
    changes = [
        ("C", "A", "not-a-card", "03"),
        ("C", "D", "x" * 11, None),
        ("P", "D", "P1", None),
        ("P", "A", "p", "12"),
    ]
    assert decode_ops(encode_ops(changes)) == [(lst, op, k, r or "") for lst, op, k, r in changes]
    assert decode_ops(b"") == []


async def test_concurrent_catch_ups_apply_each_version_once(pool: asyncpg.Pool, redis: Redis, prefix: str) -> None:
    rng = random.Random(4)
    bl = layout(redis, prefix, pool)
    start = await bl.rebuild()
    keys = [card(rng) for _ in range(400)]
    for _ in range(6):
        await write(pool, [("C", rng.choice("AD"), rng.choice(keys), f"0{rng.randint(1, 7)}") for _ in range(500)])
    head = start + 3000
    others = [layout(redis, prefix, pool) for _ in range(6)]
    assert await asyncio.gather(*(o.catch_up() for o in others)) == [head] * 6
    entries = await redis.xrange(f"{prefix}bl:stream")
    expect = start + 1
    for _id, fields in entries:
        assert int(fields[b"from"]) == expect
        expect = int(fields[b"to"]) + 1
        assert len(decode_ops(fields[b"ops"])) == int(fields[b"to"]) - int(fields[b"from"]) + 1
    assert expect == head + 1
    assert (await bl.stats())["cards"] == len((await lists_of_record(pool))[0])
    await assert_mirrors(redis, prefix, pool)


async def test_rebuild_while_changes_keep_coming(pool: asyncpg.Pool, redis: Redis, prefix: str) -> None:
    rng = random.Random(5)
    await write(pool, [("C", "A", card(rng), "05") for _ in range(20_000)])
    bl = layout(redis, prefix, pool)
    await bl.rebuild()
    keys = [card(rng) for _ in range(200)]
    stop = asyncio.Event()

    async def writer() -> None:
        while not stop.is_set():
            await write(pool, [("C", rng.choice("AD"), rng.choice(keys), f"0{rng.randint(1, 7)}") for _ in range(3)])
            await asyncio.sleep(0.002)

    async def follower() -> None:  # another process following the log on the serving generation
        other = layout(redis, prefix, pool)
        while not stop.is_set():
            assert await other.catch_up() > 0
            await asyncio.sleep(0.005)

    tasks = [asyncio.create_task(writer()), asyncio.create_task(follower())]
    await asyncio.sleep(0.05)
    gen = (await bl.stats())["gen"]
    await bl.rebuild()
    stop.set()
    await asyncio.gather(*tasks)
    head = await bl.catch_up()
    assert head == int(await pool.fetchval("SELECT version FROM blacklist_meta"))
    assert (await bl.stats())["gen"] != gen
    assert not [k async for k in redis.scan_iter(match=f"{prefix}bl:{gen}:*", count=1000)]  # old generation gone
    await assert_mirrors(redis, prefix, pool)
    entries = await redis.xrange(f"{prefix}bl:stream")  # the stream stayed gap-free across the switch
    for (_a, before), (_b, after) in itertools.pairwise(entries):
        assert int(after[b"from"]) == int(before[b"to"]) + 1


async def test_wiped_redis_refuses_until_rebuilt(pool: asyncpg.Pool, redis: Redis, prefix: str) -> None:
    rng = random.Random(6)
    listed, holder = card(rng), person(rng)
    await write(pool, [("C", "A", listed, "02"), ("P", "A", holder, "12")])
    bl = layout(redis, prefix, pool)
    lookup = RedisLookup(redis, prefix)
    await bl.rebuild()
    assert await lookup.is_loaded()
    await wipe(redis, prefix)
    assert await bl.version() is None
    assert not await lookup.is_loaded()
    assert await bl.catch_up() == -1
    with pytest.raises(BlacklistUnloaded):
        await bl.lookup(listed, None)
    assert await lookup.reasons(listed, holder) is None  # unloaded: nobody may conclude "clear"
    await bl.rebuild()
    assert await lookup.reasons(listed, holder) == ("02", "12")
    assert await lookup.reasons(None, holder) == ("", "12")
    assert await lookup.reasons(card(rng), None) == ("", "")
    assert await lookup.reasons("not a card_sn", None) == ("", "")  # cannot be listed


async def test_a_stalled_redis_is_refused_within_the_deadline(pool: asyncpg.Pool, redis: Redis, prefix: str) -> None:
    """A Redis that accepts the connection but never answers (a SIGSTOPped server is the same): the lookup fails
    as DependencyUnavailable after its deadline, not after redis-py's retries with backoff."""

    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await done.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = connect_redis(f"redis://127.0.0.1:{port}/0", 0.3)
    try:
        lookup = RedisLookup(client, prefix, 0.3)
        t0 = time.monotonic()
        with pytest.raises(DependencyUnavailable, match=r"within 0\.3 s"):
            await lookup.reasons(card(random.Random(9)), None)
        assert time.monotonic() - t0 < 1.5  # the deadline, not redis-py's retries (3, with up to 10 s backoff)
    finally:
        done.set()
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_pruned_log_unloads(pool: asyncpg.Pool, redis: Redis, prefix: str) -> None:
    rng = random.Random(8)
    bl = layout(redis, prefix, pool)
    start = await bl.rebuild()
    sn = card(rng)
    await write(pool, [("C", "A", sn, "01"), ("C", "A", card(rng), "01")])
    await pool.execute("DELETE FROM blacklist_changes WHERE version = $1", start + 1)  # pruned past Redis
    assert await bl.catch_up() == -1
    assert await bl.version() is None
    assert await bl.rebuild() == start + 2
    assert await bl.lookup(sn, None) == ("01", "")
    await assert_mirrors(redis, prefix, pool)


async def test_the_publisher_survives_a_rebuild_cut_short(pool: asyncpg.Pool, redis: Redis, prefix: str) -> None:
    """Redis wiped while a rebuild is under way (the stall drills' FLUSHALL found this): the rebuild gives up
    with RebuildInterrupted, and the publisher keeps going and rebuilds again instead of dying for good."""

    class CutShortOnce(RedisBlacklist):
        cuts = 1

        async def rebuild(self) -> int:
            if self.cuts:
                self.cuts -= 1
                raise RebuildInterrupted("the blacklist generation being built was lost (test)")
            return await super().rebuild()

    await write(pool, [("C", "A", card(random.Random(10)), "05")])
    await wipe(redis, prefix)
    states: list[bool] = []
    task = asyncio.create_task(
        keep_current(CutShortOnce(redis, prefix, *record(pool)), states.append, interval_s=0.05, retryable=RETRYABLE)
    )
    try:
        for _ in range(100):
            if True in states:
                break
            await asyncio.sleep(0.05)
        assert states[0] is False  # the first rebuild was cut short: reported, not fatal
        assert True in states
        assert not task.done()
        assert await RedisLookup(redis, prefix).is_loaded()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
