"""adapters.pg_journal_chain against real PostgreSQL: the sealer appends DONE rows gap-free, in id order and
once however many sealers run; verify proves the chain and names the first row a tamperer touched."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from adapters.journal_codec import chain_hash, encode_row
from adapters.pg_claims import PgJournal
from adapters.pg_journal_chain import seal_once
from adapters.pg_journal_verify import verify
from gateway.domain.journal import Claimed

PG_ADMIN = os.environ.get("ONECARD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
CODE = "H33020000018"
_n = itertools.count(1)


async def claim(store: PgJournal, **over: Any) -> int:
    """A new journal row, PENDING, through the real claim."""
    n = next(_n)
    req = {"infno": "2207", "msgid": f"M{n:029d}", "input": {"data": {"medfee_sumamt": 12.5, "n": n, "名": "张三"}}}
    res, _card = await store.claim_with_card(
        CODE, req["msgid"], "2207", "330200000001", over.get("card_sn", "330200D156000005" + f"{n:016X}"),
        hashlib.sha256(orjson.dumps(req)).digest(), orjson.dumps(req).decode(), None,
    )  # fmt: skip
    assert isinstance(res, Claimed)
    return res.journal_id


async def done(store: PgJournal, jid: int, err: str | None = None) -> None:
    """Complete a row through the real complete."""
    await store.complete(jid, b'{"infcode":0,"jid":%d}' % jid, 200, err)


async def new_rows(store: PgJournal, n: int) -> list[int]:
    """n completed rows, in id order."""
    ids = [await claim(store) for _ in range(n)]
    for jid in ids:
        await done(store, jid, None if jid % 3 else "CORE_REJECTED")
    return ids


async def chain(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """(id, chain_seq) of every sealed row in chain order."""
    rows = await pool.fetch("SELECT id, chain_seq FROM journal WHERE chain_seq IS NOT NULL ORDER BY chain_seq")
    return [dict(r) for r in rows]


async def test_sealing_is_gap_free_and_in_id_order(pool: asyncpg.Pool):
    """Completed rows are sealed 1, 2, 3 ... in id order, and verify passes."""
    store = PgJournal(pool)
    ids = await new_rows(store, 25)
    assert await seal_once(pool, batch=7) == 25  # several batches, one call
    got = await chain(pool)
    assert [r["id"] for r in got][-25:] == ids
    assert [r["chain_seq"] for r in got] == list(range(1, len(got) + 1))
    res = await verify(pool)
    assert res.ok, res
    assert res.rows == len(got)
    assert res.head_seq == len(got)
    assert await seal_once(pool) == 0


async def test_pending_rows_wait_for_completion(pool: asyncpg.Pool):
    """A PENDING row is not sealed; once completed it joins the chain after the rows sealed meanwhile."""
    store = PgJournal(pool)
    a, b, c = await claim(store), await claim(store), await claim(store)
    await done(store, b)
    assert await seal_once(pool) == 1
    sealed = {r["id"] for r in await chain(pool)}
    assert b in sealed
    assert not {a, c} & sealed
    await done(store, c)
    await done(store, a)
    assert await seal_once(pool) == 2
    tail = [r["id"] for r in await chain(pool)][-3:]
    assert tail == [b, a, c]  # id order within a round
    assert (await verify(pool)).ok


async def test_concurrent_sealers_seal_each_row_once(pool: asyncpg.Pool):
    """Eight sealers racing writers: every row sealed exactly once, no gaps, verify passes."""
    store = PgJournal(pool)
    before = len(await chain(pool))
    stop = asyncio.Event()

    async def writer() -> None:
        await new_rows(store, 40)

    async def sealer() -> int:
        n = 0
        while not stop.is_set():
            n += await seal_once(pool, batch=5)
            await asyncio.sleep(0)
        return n

    sealers = [asyncio.create_task(sealer()) for _ in range(8)]
    await asyncio.gather(*(writer() for _ in range(4)))
    stop.set()
    counts = await asyncio.gather(*sealers)
    counts.append(await seal_once(pool))
    assert sum(counts) == 160
    got = await chain(pool)
    assert len(got) == before + 160
    assert [r["chain_seq"] for r in got] == list(range(1, len(got) + 1))
    assert len({r["id"] for r in got}) == len(got)
    assert await pool.fetchval("SELECT count(*) FROM journal WHERE state = 'DONE' AND chain_seq IS NULL") == 0
    assert (await verify(pool)).ok


async def test_unsealed_rows_are_reported_not_broken(pool: asyncpg.Pool):
    """DONE rows the sealer has not reached count as unsealed; the chain itself still verifies."""
    store = PgJournal(pool)
    ids = await new_rows(store, 2)
    res = await verify(pool, stale_s=0)
    assert res.ok, res
    assert res.unsealed == 2
    assert res.oldest_unsealed_id == ids[0]
    await seal_once(pool)
    assert (await verify(pool, stale_s=0)).unsealed == 0


async def test_verify_one_day(pool: asyncpg.Pool):
    """verify --day covers the rows completed that day, anchored on the row before them."""
    today = datetime.now(UTC).date()
    res = await verify(pool, day=today)
    assert res.ok, res
    assert res.rows == len(await chain(pool))
    empty = await verify(pool, day=today.replace(year=today.year - 1))
    assert empty.ok
    assert empty.rows == 0


async def _mid(pool: asyncpg.Pool, k: int = 5) -> list[dict[str, Any]]:
    await seal_once(pool)
    rows = await pool.fetch("SELECT * FROM journal WHERE chain_seq IS NOT NULL ORDER BY chain_seq")
    assert len(rows) > k + 4
    return [dict(r) for r in rows[k : k + 4]]


async def _restore(pool: asyncpg.Pool, rows: list[dict[str, Any]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for r in rows:
            await conn.execute("DELETE FROM journal WHERE id = $1", r["id"])
            cols, marks = ", ".join(r), ", ".join(f"${i + 1}" for i in range(len(r)))
            await conn.execute(f"INSERT INTO journal ({cols}) VALUES ({marks})", *r.values())  # noqa: S608 - our columns
    assert (await verify(pool)).ok


async def _tamper_response(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> int:
    r = rows[1]
    resp = bytearray(r["response"])
    resp[3] ^= 0x01
    await conn.execute("UPDATE journal SET response = $2 WHERE id = $1", r["id"], bytes(resp))
    return int(r["id"])


async def _tamper_err_code(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> int:
    r = rows[1]
    await conn.execute("UPDATE journal SET err_code = $2 WHERE id = $1", r["id"], "CORE_TIMEOUT")
    return int(r["id"])


async def _delete_row(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> int:
    await conn.execute("DELETE FROM journal WHERE id = $1", rows[1]["id"])
    return int(rows[2]["id"])  # the row that no longer links


async def _swap_hashes(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> int:
    a, b = rows[1], rows[3]
    await conn.execute(
        "UPDATE journal SET row_hash = CASE id WHEN $1 THEN $4::bytea ELSE $3::bytea END WHERE id IN ($1, $2)",
        a["id"], b["id"], a["row_hash"], b["row_hash"],
    )  # fmt: skip
    return int(a["id"])


async def _rehash_forward(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> int:
    """Edit a request and recompute its hash: the next row's link then names the tampering."""
    r = dict(rows[1])
    r["request"] = r["request"].replace("12.5", "99.5")
    await conn.execute(
        "UPDATE journal SET request = $2::jsonb, row_hash = $3 WHERE id = $1",
        r["id"], r["request"], chain_hash(bytes(r["prev_hash"]), r),
    )  # fmt: skip
    return int(rows[2]["id"])


@pytest.mark.parametrize(
    "tamper", [_tamper_response, _tamper_err_code, _delete_row, _swap_hashes, _rehash_forward], ids=lambda f: f.__name__
)
async def test_tampering_names_the_first_broken_row(pool: asyncpg.Pool, tamper):
    """Each kind of tampering fails verify at the first row whose hash, link or content no longer matches."""
    store = PgJournal(pool)
    await new_rows(store, 12)
    rows = await _mid(pool)
    async with pool.acquire() as conn:
        expected = await tamper(conn, rows)
    try:
        res = await verify(pool)
        assert not res.ok
        assert res.first_broken_id == expected, res
        assert res.reason
    finally:
        await _restore(pool, rows)


async def test_deleting_the_last_sealed_row_is_caught_by_the_head(pool: asyncpg.Pool):
    """The chain's tail is anchored by the head row: deleting the newest sealed row breaks verify."""
    store = PgJournal(pool)
    await new_rows(store, 2)
    await seal_once(pool)
    last = dict(await pool.fetchrow("SELECT * FROM journal WHERE chain_seq = (SELECT max(chain_seq) FROM journal)"))
    await pool.execute("DELETE FROM journal WHERE id = $1", last["id"])
    try:
        res = await verify(pool)
        assert not res.ok
        assert res.first_broken_id == last["id"]
    finally:
        await _restore(pool, [last])


def test_canonical_encoding_is_pinned():
    """The encoding (and so every stored hash) must never change silently: a fixed row, a fixed digest."""
    row = {
        "id": 42, "fixmedins_code": CODE, "msgid": "M1", "infno": "2207", "psam_no": "330200000001",
        "card_sn": None, "content_hash": b"\x00\xff", "request": '{"b": [1, 2.50, "x\\"y"], "a": {"名": true}}',
        "err_code": None, "http_status": 200, "response": b"{}",
        "received_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "completed_at": datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
    }  # fmt: skip
    enc = encode_row(row)
    assert enc.startswith(b"OCJ1I\x00\x00\x00\x00\x00\x00\x00\x2aS\x00\x00\x00\x0c" + CODE.encode())
    assert b'J\x00\x00\x00\x26{"a":{"\xe5\x90\x8d":true},"b":[1,2.50,"x\\"y"]}' in enc
    assert chain_hash(bytes(32), row).hex() == hashlib.sha256(bytes(32) + enc).hexdigest()
    assert hashlib.sha256(enc).hexdigest() == PINNED


PINNED = "f2f314439dc51695d5b7c2d3e5d216413a302daa5c347ac462a3d37712ecda23"
