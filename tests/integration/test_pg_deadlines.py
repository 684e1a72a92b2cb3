"""Deadlines on PostgreSQL against the real server: a stalled backend (SIGSTOP) costs a call its budget and no
more, and the pool serves again on fresh connections; a journal completion sent with a deadline that has
passed commits nothing; a claim takes its replay state only when fresh, and only what was free."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from adapters.pg_claims import PgJournal
from adapters.pg_pool import Pg, PgTimeout
from adapters.pg_reversal_queue import PgReversalQueue
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.journal import Claimed

CODE = "H33020000017"
CARD = "330200D156000005" + "00000000000000CD"
_n = itertools.count(1)


@pytest.fixture
async def tight(pool: Pg) -> AsyncIterator[Pg]:
    """The module's database through a pool of its own with a 0.5 s budget."""
    raw = await asyncpg.create_pool(pool.raw._connect_args[0], min_size=1, max_size=2)  # the module's DSN
    pg = Pg(raw, timeout_s=0.5)
    await pg.measure_clock()
    try:
        yield pg
    finally:
        raw.terminate()


async def _frozen_backend(pg: Pg) -> int:
    """The pid of the backend behind the pool's next connection, stopped."""
    pid = int(await pg.fetchval("SELECT pg_backend_pid()"))
    os.kill(pid, signal.SIGSTOP)
    return pid


class TestStall:
    async def test_a_stalled_backend_costs_the_budget_then_the_pool_recovers(self, tight: Pg):
        """A SIGSTOPped backend: the statement fails PgTimeout after about its budget (the connection is
        terminated, not left waiting for a cancel it cannot acknowledge); the next call, on a new connection,
        answers; the stalled backend is let go."""
        pid = await _frozen_backend(tight)
        try:
            t0 = time.monotonic()
            results = await asyncio.gather(*(tight.fetchval("SELECT 1") for _ in range(2)), return_exceptions=True)
            took = time.monotonic() - t0
            assert any(isinstance(r, PgTimeout) for r in results), results
            assert took < 3.0, took  # the budget (0.5 s), not the stall
            assert await tight.fetchval("SELECT 2") == 2
        finally:
            os.kill(pid, signal.SIGCONT)

    async def test_a_stalled_transaction_block_is_bounded_too(self, tight: Pg):
        """A block of statements in a transaction on a stalled backend: PgTimeout at its budget, no hang in the
        rollback."""
        pids: list[int] = []

        async def block() -> None:
            async with tight.acquire() as conn, conn.transaction():
                pids.append(int(await conn.fetchval("SELECT pg_backend_pid()")))
                os.kill(pids[0], signal.SIGSTOP)
                await conn.execute("SELECT 1")

        t0 = time.monotonic()
        try:
            with pytest.raises(PgTimeout):
                await block()
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        assert time.monotonic() - t0 < 3.0

    async def test_the_store_says_dependency_unavailable(self, tight: Pg):
        """Through the store (the pipeline's port) a stall is DependencyUnavailable naming the operation."""
        store = PgReversalQueue(tight)
        pid = await _frozen_backend(tight)
        try:
            with pytest.raises(DependencyUnavailable, match="did not answer in time"):
                await asyncio.gather(store.reversal_counts(), store.reversal_counts())
        finally:
            os.kill(pid, signal.SIGCONT)


async def _claim(store: PgJournal, msgid: str, *, tseq: int, atc: int | None, fresh: bool = True) -> Claimed | None:
    digest = hashlib.sha256(msgid.encode()).digest()
    res, _ = await store.claim_with_card(
        CODE, msgid, "1101", "330200000017", CARD if atc is not None else None, digest, f'{{"m": "{msgid}"}}',
        None, tseq=tseq, atc=atc, fresh=fresh,
    )  # fmt: skip
    return res if isinstance(res, Claimed) else None


class TestCompletionDeadline:
    async def test_a_completion_past_its_deadline_commits_nothing(self, pool: Pg):
        """journal_complete() with a deadline already passed (in the database's clock) raises query_canceled and
        leaves the claim PENDING: a statement that sat in a stalled server past its caller's patience cannot
        settle behind the terminal's back."""
        store = PgJournal(pool)
        claim = await _claim(store, f"D{next(_n):029d}", tseq=10_000 + next(_n), atc=None)
        assert claim is not None
        past = datetime.now(UTC) - timedelta(seconds=5)
        with pytest.raises(asyncpg.QueryCanceledError, match="past its caller's deadline"):
            await pool.fetchval(
                "SELECT journal_complete($1, $2, $3, $4, $5::jsonb, $6)", claim.journal_id, b"{}", 200, None, "[]", past
            )
        assert await store.pending_claim(claim.journal_id) is not None
        assert await store.complete(claim.journal_id, b"{}", 200, None)  # within its deadline: completes

    async def test_a_completion_batch_past_its_deadline_commits_nothing(self, pool: Pg):
        store = PgJournal(pool)
        claims = [await _claim(store, f"D{next(_n):029d}", tseq=20_000 + next(_n), atc=None) for _ in range(2)]
        ids = [c.journal_id for c in claims if c is not None]
        past = datetime.now(UTC) - timedelta(seconds=5)
        with pytest.raises(asyncpg.QueryCanceledError):
            await pool.fetchval(
                "SELECT journal_complete_batch($1::bigint[], $2::bytea[], $3::smallint[], $4::text[], $5::text[], $6)",
                ids, [b"{}", b"{}"], [200, 200], [None, None], ["[]", "[]"], past,
            )  # fmt: skip
        assert await pool.fetchval("SELECT count(*) FROM journal WHERE id = ANY($1) AND state = 'PENDING'", ids) == 2


class TestReplayStateOfRecord:
    async def test_the_claim_takes_a_pair_once_and_raises_the_atc_only_upwards(self, pool: Pg):
        store = PgJournal(pool)
        base = 30_000 + next(_n) * 10
        first = await _claim(store, f"R{next(_n):029d}", tseq=base, atc=100)
        assert first is not None
        assert first.replay is None
        same_pair = await _claim(store, f"R{next(_n):029d}", tseq=base, atc=101)
        assert same_pair is not None
        assert same_pair.replay == "TSEQ"
        equal_atc = await _claim(store, f"R{next(_n):029d}", tseq=base + 1, atc=100)
        assert equal_atc is not None
        assert equal_atc.replay == "ATC"
        assert await pool.fetchval("SELECT atc FROM card_atc WHERE card_sn = $1", CARD) == 100
        up = await _claim(store, f"R{next(_n):029d}", tseq=base + 2, atc=101)
        assert up is not None
        assert up.replay is None
        assert await pool.fetchval("SELECT atc FROM card_atc WHERE card_sn = $1", CARD) == 101

    async def test_a_request_that_is_not_fresh_takes_nothing(self, pool: Pg):
        store = PgJournal(pool)
        tseq = 40_000 + next(_n)
        stale = await _claim(store, f"R{next(_n):029d}", tseq=tseq, atc=None, fresh=False)
        assert stale is not None
        assert stale.replay is None
        assert not await pool.fetchval("SELECT 1 FROM psam_tseq WHERE psam_no = '330200000017' AND tseq = $1", tseq)
        fresh = await _claim(store, f"R{next(_n):029d}", tseq=tseq, atc=None)
        assert fresh is not None
        assert fresh.replay is None

    async def test_one_statement_decides_one_pair_between_concurrent_claims(self, pool: Pg):
        """Twelve claims of one (psam_no, tseq) under twelve msgids, submitted at once so they share group-commit
        batches: exactly one takes the pair."""
        store = PgJournal(pool, batch_slots=1, batch_max=64)
        tseq = 50_000 + next(_n)
        got = await asyncio.gather(*(_claim(store, f"R{next(_n):029d}", tseq=tseq, atc=None) for _ in range(12)))
        assert sorted(str(c.replay) for c in got if c is not None) == ["None"] + ["TSEQ"] * 11
