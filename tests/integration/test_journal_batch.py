"""The journal's group commit against real PostgreSQL: concurrent claims share a statement and each gets its
own row (and card); a key twice in one batch is claimed once; a completion whose effects break a constraint
fails alone while the rest of its batch commits."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from datetime import UTC, date, datetime

import asyncpg
import pytest

from adapters.pg_claims import PgJournal
from gateway.domain.effects import NewSettlement
from gateway.domain.journal import Claimed, Existing
from gateway.domain.registry import Settlement

CODE = "H33020000019"
CARD = "330200D156000005" + "00000000000000AB"
DAY = date(2026, 11, 27)
_n = itertools.count(1)


@pytest.fixture(scope="module", autouse=True)
async def card(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO cards (card_sn, card_no, psn_no, pin_mode, status, alg, kv) VALUES ($1, 'A1', 'P1', 'PIN',"
        " 'ACTIVE', 'SM4', 1)",
        CARD,
    )
    await pool.execute(
        "INSERT INTO default_pin_usage (card_sn, day, count, acct_sum) VALUES ($1, $2, 2, 500)", CARD, DAY
    )


def request(msgid: str) -> tuple[bytes, str]:
    body = f'{{"msgid": "{msgid}"}}'
    return hashlib.sha256(body.encode()).digest(), body


async def claim(store: PgJournal, msgid: str, card_day: date | None = DAY):
    digest, body = request(msgid)
    return await store.claim_with_card(CODE, msgid, "2207", "330200000001", CARD, digest, body, card_day)


def settlement(msgid: str, setl_id: str) -> Settlement:
    return Settlement(
        CODE, msgid, setl_id, "2207", "P1", CARD, "POSTED", "VERIFIED", False, 1000, 1000, 700, 300, 0,
        datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
    )  # fmt: skip


async def test_concurrent_claims_share_statements_and_each_gets_its_row_and_card(pool: asyncpg.Pool):
    store = PgJournal(pool, batch_slots=2, batch_max=64)
    msgids = [f"B{next(_n):029d}" for _ in range(30)]
    got = await asyncio.gather(*(claim(store, m, DAY if i % 2 else None) for i, m in enumerate(msgids)))
    ids = [c.journal_id for c, _ in got if isinstance(c, Claimed)]
    assert len(set(ids)) == 30
    assert store.writer.claims.batches < 30  # shared statements
    for i, (_claim, card) in enumerate(got):
        if i % 2:
            assert card is not None
            assert card.card_sn == CARD
            assert card.usage.count == 2
            assert card.usage.acct_sum == 500
        else:
            assert card is None  # not asked for
    rows = await pool.fetch("SELECT msgid, state FROM journal WHERE id = ANY($1)", ids)
    assert sorted(r["msgid"] for r in rows) == sorted(msgids)
    assert {r["state"] for r in rows} == {"PENDING"}


async def test_a_key_twice_in_one_batch_is_claimed_once(pool: asyncpg.Pool):
    store = PgJournal(pool, batch_slots=1, batch_max=64)
    msgid = f"B{next(_n):029d}"
    first, second = await asyncio.gather(claim(store, msgid), claim(store, msgid))
    assert isinstance(first[0], Claimed)
    assert isinstance(second[0], Existing)
    assert second[0].same_content
    assert not second[0].done
    assert await pool.fetchval("SELECT count(*) FROM journal WHERE msgid = $1", msgid) == 1


async def test_a_completion_that_breaks_a_constraint_fails_alone(pool: asyncpg.Pool):
    store = PgJournal(pool, batch_slots=1, batch_max=64)
    msgids = [f"B{next(_n):029d}" for _ in range(4)]
    jids = [(await claim(store, m))[0].journal_id for m in msgids]
    # The third reuses the first's setl_id: a unique violation inside the batched statement.
    setl = ["S1" + m[-10:] for m in msgids]
    setl[2] = setl[0]
    results = await asyncio.gather(
        *(
            store.complete(jid, b'{"infcode":0}', 200, None, [NewSettlement(settlement(m, s))])
            for jid, m, s in zip(jids, msgids, setl, strict=True)
        ),
        return_exceptions=True,
    )
    assert results[0] is True
    assert results[1] is True
    assert isinstance(results[2], asyncpg.UniqueViolationError)
    assert results[3] is True
    states = {
        r["msgid"]: r["state"] for r in await pool.fetch("SELECT msgid, state FROM journal WHERE id = ANY($1)", jids)
    }
    assert states == {msgids[0]: "DONE", msgids[1]: "DONE", msgids[2]: "PENDING", msgids[3]: "DONE"}
    posted = await pool.fetchval("SELECT count(*) FROM settlements WHERE msgid = ANY($1)", msgids)
    assert posted == 3


async def test_completing_twice_applies_once(pool: asyncpg.Pool):
    store = PgJournal(pool, batch_slots=1, batch_max=64)
    msgid = f"B{next(_n):029d}"
    jid = (await claim(store, msgid))[0].journal_id
    eff = [NewSettlement(settlement(msgid, "S2" + msgid[-10:]))]
    first, second = await asyncio.gather(
        store.complete(jid, b"{}", 200, None, eff), store.complete(jid, b"{}", 200, None, eff)
    )
    assert sorted([first, second]) == [False, True]
    assert await pool.fetchval("SELECT count(*) FROM settlements WHERE msgid = $1", msgid) == 1
