"""PostgreSQL through asyncpg: registry, sign-in sessions, the journal (idempotency) and settlements."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, TypeVar

import asyncpg

from adapters.pg_journal import ClaimIn, JournalWriter, card_of, card_sql
from adapters.pg_pool import UNAVAILABLE, Pg, PgTimeout
from gateway.domain.effects import (
    Effect,
    NewSettlement,
    QueueReversal,
    ReleaseDefaultPin,
    SetSettlementState,
)
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.journal import Claimed, ClaimResult, Existing, ReversalJob, StaleClaim
from gateway.domain.registry import Card, Institution, Psam, Settlement, SignSession


class _TtlCache:
    """Tiny TTL cache for registry rows that change rarely (PSAMs, institutions, sessions)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._d: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        hit = self._d.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, value: Any) -> None:
        if len(self._d) > 50_000:
            self._d.clear()
        self._d[key] = (time.monotonic() + self.ttl, value)

    def drop(self, key: str) -> None:
        self._d.pop(key, None)


_SETTLEMENT_COLS = (
    "fixmedins_code, msgid, setl_id, infno, psn_no, card_sn, state, pin, default_pin, medfee_sumamt,"
    " inscp_scp_amt, fund_pay_sumamt, acct_pay, psn_cash_pay, setl_time, cancel_msgid, cancel_setl_id"
)


def _settlement(r: asyncpg.Record) -> Settlement:
    return Settlement(**dict(r))


async def settlements_between(
    pool: Pg | asyncpg.Pool, fixmedins_code: str, begin: datetime, end: datetime
) -> list[Settlement]:
    """Settlements of an institution with setl_time in [begin, end), the rows 3201/3202 count."""
    rows = await pool.fetch(
        f"SELECT {_SETTLEMENT_COLS} FROM settlements WHERE fixmedins_code = $1"
        " AND setl_time >= $2 AND setl_time < $3 ORDER BY setl_time, msgid",
        fixmedins_code,
        begin,
        end,
    )
    return [_settlement(r) for r in rows]


T = TypeVar("T")


def _map_unavailable(cls: type[T]) -> type[T]:
    """Wrap every public coroutine method: connection-level failures leave the adapter as
    `DependencyUnavailable` (-1 OVERLOADED), never as an asyncpg exception (STYLE §4)."""
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(fn):
            continue

        def wrap(fn: Any, name: str = name) -> Any:
            @functools.wraps(fn)
            async def mapped(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except PgTimeout as exc:
                    raise DependencyUnavailable(f"PostgreSQL did not answer in time ({name})") from exc
                except UNAVAILABLE as exc:
                    raise DependencyUnavailable(f"PostgreSQL unavailable ({type(exc).__name__} in {name})") from exc

            return mapped

        setattr(cls, name, wrap(fn))
    return cls


@_map_unavailable
class PgStore:
    """Registry, sessions, journal and settlements in one PostgreSQL database."""

    def __init__(
        self,
        pool: Pg,
        *,
        registry_ttl: float = 10.0,
        session_ttl: float = 5.0,
        batch_slots: int = 4,
        batch_max: int = 128,
    ) -> None:
        self.pool = pool
        self.journal = JournalWriter(pool, slots=batch_slots, max_batch=batch_max)
        self._inst = _TtlCache(registry_ttl)
        self._psam = _TtlCache(registry_ttl)
        self._sess = _TtlCache(session_ttl)

    # registry -------------------------------------------------------------------------------------
    async def institution(self, code: str) -> Institution | None:
        """An institution by code (cached briefly)."""
        hit: Institution | None = self._inst.get(code)
        if hit is None:
            r = await self.pool.fetchrow(
                "SELECT fixmedins_code, fixmedins_name, kind, level, region FROM institutions"
                " WHERE fixmedins_code = $1",
                code,
            )
            if r is None:
                return None
            hit = Institution(**dict(r))
            self._inst.put(code, hit)
        return hit

    async def psam(self, psam_no: str) -> Psam | None:
        """A PSAM by number (cached briefly)."""
        hit: Psam | None = self._psam.get(psam_no)
        if hit is None:
            r = await self.pool.fetchrow(
                "SELECT psam_no, fixmedins_code, status FROM psams WHERE psam_no = $1", psam_no
            )
            if r is None:
                return None
            hit = Psam(**dict(r))
            self._psam.put(psam_no, hit)
        return hit

    async def card(self, card_sn: str, day: date) -> Card | None:
        """A card with its default-PIN usage of `day`."""
        r = await self.pool.fetchrow(f"{card_sql('$2')} WHERE c.card_sn = $1", card_sn, day)
        return None if r is None else card_of(r)

    # sessions -------------------------------------------------------------------------------------
    async def create_session(
        self, sign_no: str, fixmedins_code: str, psam_no: str, opter_no: str, at: datetime, expires: datetime
    ) -> bool:
        """Record a sign-in; False (nothing written) when `sign_no` is taken already."""
        return bool(
            await self.pool.fetchval(
                "INSERT INTO sign_sessions (sign_no, fixmedins_code, psam_no, opter_no, signed_in_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sign_no) DO NOTHING RETURNING true",
                sign_no,
                fixmedins_code,
                psam_no,
                opter_no,
                at,
                expires,
            )
        )

    async def session(self, sign_no: str) -> SignSession | None:
        """A sign-in session (cached for a few seconds; sign-out in this process drops it at once)."""
        hit: SignSession | None = self._sess.get(sign_no)
        if hit is None:
            r = await self.pool.fetchrow(
                "SELECT sign_no, fixmedins_code, psam_no, expires_at, signed_out_at IS NOT NULL AS signed_out"
                " FROM sign_sessions WHERE sign_no = $1",
                sign_no,
            )
            if r is None:
                return None
            hit = SignSession(**dict(r))
            self._sess.put(sign_no, hit)
        return hit

    async def sign_out(self, sign_no: str, at: datetime) -> None:
        """End a session."""
        self._sess.drop(sign_no)
        await self.pool.execute(
            "UPDATE sign_sessions SET signed_out_at = $2 WHERE sign_no = $1 AND signed_out_at IS NULL",
            sign_no,
            at,
        )

    # journal --------------------------------------------------------------------------------------
    async def claim_with_card(
        self,
        fixmedins_code: str,
        msgid: str,
        infno: str,
        psam_no: str,
        card_sn: str | None,
        content_hash: bytes,
        request_json: str,
        card_day: date | None,
        *,
        tseq: int = 0,
        atc: int | None = None,
        fresh: bool = False,
    ) -> tuple[ClaimResult, Card | None]:
        """Take the idempotency key (SPEC §5.2) or report who has it, and in the same round trip the card
        `card_sn` with its default-PIN usage of `card_day` (None when `card_day` is None, or the card is unknown,
        or the key was already taken). The row is committed PENDING before any effect, so a crash leaves
        evidence to recover from. With `fresh`, the claim also takes the replay state of record (SPEC §5.1):
        (psam_no, tseq), then the card's `atc` when given; `Claimed.replay` says which one was already used.
        Group-committed with concurrent claims (adapters/pg_journal.py)."""
        got = await self.journal.claim(
            ClaimIn(
                fixmedins_code, msgid, infno, psam_no, card_sn, content_hash, request_json, card_day, tseq, atc, fresh
            )
        )
        if got.journal_id is None:
            return await self.existing(fixmedins_code, msgid, content_hash), None
        return Claimed(got.journal_id, got.replay), got.card

    async def existing(self, fixmedins_code: str, msgid: str, content_hash: bytes) -> Existing:
        """The state of a used idempotency key."""
        r = await self.pool.fetchrow(
            "SELECT content_hash, state, response, http_status, err_code FROM journal"
            " WHERE fixmedins_code = $1 AND msgid = $2",
            fixmedins_code,
            msgid,
        )
        assert r is not None, "claim lost a committed row"
        return Existing(
            bytes(r["content_hash"]) == content_hash,
            r["state"] == "DONE",
            None if r["response"] is None else bytes(r["response"]),
            r["http_status"],
            r["err_code"],
        )

    async def wait_done(self, fixmedins_code: str, msgid: str, content_hash: bytes, max_wait: float) -> Existing:
        """Poll a PENDING key until its owner completes it or `max_wait` passes."""
        deadline = time.monotonic() + max_wait
        delay = 0.005
        while True:
            ex = await self.existing(fixmedins_code, msgid, content_hash)
            if ex.done or time.monotonic() >= deadline:
                return ex
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def complete(
        self,
        journal_id: int,
        response: bytes,
        http_status: int,
        err_code: str | None,
        effects: Sequence[Effect] = (),
    ) -> bool:
        """Store the response and apply the effects in one statement and commit before the answer leaves:
        `journal_complete()` of migration 0004, group-committed with concurrent completions.

        The row is completed only while PENDING, and first: its row lock orders a late owner and recovery
        (or two recovering processes), and whoever finds it DONE applies nothing and returns False.
        """
        return await self.journal.complete(journal_id, response, http_status, err_code, effects)

    async def reply_of(self, journal_id: int) -> Existing:
        """The journaled state and answer of a claim."""
        r = await self.pool.fetchrow(
            "SELECT state, response, http_status, err_code FROM journal WHERE id = $1", journal_id
        )
        assert r is not None, "a claimed journal row vanished"
        response = None if r["response"] is None else bytes(r["response"])
        return Existing(True, r["state"] == "DONE", response, r["http_status"], r["err_code"])

    async def pending_claim(self, journal_id: int) -> StaleClaim | None:
        """The claim `journal_id` while it is still PENDING (None once completed)."""
        r = await self.pool.fetchrow(
            "SELECT id AS journal_id, fixmedins_code, msgid, infno, request::text AS request_json, received_at"
            " FROM journal WHERE id = $1 AND state = 'PENDING'",
            journal_id,
        )
        return None if r is None else StaleClaim(**dict(r))

    async def list_reasons(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str]:
        """Blacklist reasons ('' = not listed) from the lists of record, for when Redis cannot answer."""
        r = await self.pool.fetchrow(
            "SELECT (SELECT reason FROM blacklist_cards WHERE card_sn = $1) AS card,"
            " (SELECT reason FROM blacklist_persons WHERE psn_no = $2) AS person",
            card_sn,
            psn_no,
        )
        assert r is not None
        return r["card"] or "", r["person"] or ""

    async def stale_claims(self, older_than_s: float, limit: int) -> list[StaleClaim]:
        """Claims still PENDING `older_than_s` after they were taken (the database's clock), oldest first."""
        rows = await self.pool.fetch(
            "SELECT id AS journal_id, fixmedins_code, msgid, infno, request::text AS request_json, received_at"
            " FROM journal WHERE state = 'PENDING' AND received_at < now() - make_interval(secs => $1)"
            " ORDER BY id LIMIT $2",
            older_than_s,
            limit,
        )
        return [StaleClaim(**dict(r)) for r in rows]

    # settlements ----------------------------------------------------------------------------------
    async def settlement_by_setl_id(self, setl_id: str) -> Settlement | None:
        """A settlement by the core's setl_id."""
        r = await self.pool.fetchrow(f"SELECT {_SETTLEMENT_COLS} FROM settlements WHERE setl_id = $1", setl_id)
        return None if r is None else _settlement(r)

    async def settlement_by_msgid(self, fixmedins_code: str, msgid: str) -> Settlement | None:
        """A settlement by the institution's msgid."""
        r = await self.pool.fetchrow(
            f"SELECT {_SETTLEMENT_COLS} FROM settlements WHERE fixmedins_code = $1 AND msgid = $2",
            fixmedins_code,
            msgid,
        )
        return None if r is None else _settlement(r)

    async def settlement_by_cancel_msgid(self, fixmedins_code: str, cancel_msgid: str) -> Settlement | None:
        """The settlement a cancel message cancelled."""
        r = await self.pool.fetchrow(
            f"SELECT {_SETTLEMENT_COLS} FROM settlements WHERE fixmedins_code = $1 AND cancel_msgid = $2",
            fixmedins_code,
            cancel_msgid,
        )
        return None if r is None else _settlement(r)

    async def transition(self, fixmedins_code: str, msgid: str, from_state: str, to_state: str) -> bool:
        """Compare-and-set a settlement's state; False when it was not in `from_state`."""
        done = await self.pool.fetchval(
            "UPDATE settlements SET state = $4 WHERE fixmedins_code = $1 AND msgid = $2 AND state = $3 RETURNING true",
            fixmedins_code,
            msgid,
            from_state,
            to_state,
        )
        return bool(done)

    async def reserve_default_pin(self, card_sn: str, day: date, acct: int, per_day: int, per_day_count: int) -> bool:
        """Atomically count one default-PIN settlement and its account debit, within the day's caps."""
        ok = await self.pool.fetchval(
            "INSERT INTO default_pin_usage AS u (card_sn, day, count, acct_sum) VALUES ($1, $2, 1, $3)"
            " ON CONFLICT (card_sn, day) DO UPDATE SET count = u.count + 1, acct_sum = u.acct_sum + $3"
            " WHERE u.count < $5 AND u.acct_sum + $3 <= $4 RETURNING true",
            card_sn,
            day,
            acct,
            per_day,
            per_day_count,
        )
        return bool(ok)

    async def release_default_pin(self, card_sn: str, day: date, acct: int) -> None:
        """Give back one default-PIN reservation at once (a retried posting re-reserves)."""
        await _apply(self.pool, ReleaseDefaultPin(card_sn, day, acct))

    async def settlements_between(self, fixmedins_code: str, begin: datetime, end: datetime) -> list[Settlement]:
        """Settlements of an institution with setl_time in [begin, end)."""
        return await settlements_between(self.pool, fixmedins_code, begin, end)

    # reversal queue -------------------------------------------------------------------------------
    async def lease_reversals(self, limit: int, lease_s: float) -> list[ReversalJob]:
        """Take due reversals for one attempt; SKIP LOCKED lets every gateway process work the queue."""
        rows = await self.pool.fetch(
            "UPDATE reversal_queue q SET attempts = q.attempts + 1, next_at = now() + make_interval(secs => $2)"
            " FROM (SELECT id FROM reversal_queue WHERE state = 'QUEUED' AND next_at <= now()"
            "       ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED) due WHERE q.id = due.id"
            " RETURNING q.id, q.fixmedins_code, q.omsgid, q.oinfno, q.psn_no, q.attempts,"
            " extract(epoch FROM now() - q.created_at)::float8 AS age_s",
            limit,
            lease_s,
        )
        return [ReversalJob(**dict(r)) for r in rows]

    async def finish_reversal(self, job_id: int, state: str, error: str | None, effects: Sequence[Effect] = ()) -> None:
        """Close a reversal (DONE or DEAD) with its effects, atomically."""
        async with self.pool.acquire() as conn, conn.transaction():
            for eff in effects:
                await _apply(conn, eff)
            await conn.execute(
                "UPDATE reversal_queue SET state = $2, last_error = $3 WHERE id = $1", job_id, state, error
            )

    async def retry_reversal(self, job_id: int, delay_s: float, error: str) -> None:
        """Try again after `delay_s`."""
        await self.pool.execute(
            "UPDATE reversal_queue SET next_at = now() + make_interval(secs => $2), last_error = $3 WHERE id = $1",
            job_id,
            delay_s,
            error,
        )

    async def reversal_counts(self) -> dict[str, int]:
        """Queue size by state, for metrics."""
        rows = await self.pool.fetch("SELECT state, count(*) AS n FROM reversal_queue GROUP BY state")
        return {r["state"]: r["n"] for r in rows}


async def _apply(conn: asyncpg.Connection | Pg, eff: Effect) -> None:
    if isinstance(eff, NewSettlement):
        s = eff.settlement
        await conn.execute(
            f"INSERT INTO settlements ({_SETTLEMENT_COLS}) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            s.fixmedins_code,
            s.msgid,
            s.setl_id,
            s.infno,
            s.psn_no,
            s.card_sn,
            s.state,
            s.pin,
            s.default_pin,
            s.medfee_sumamt,
            s.inscp_scp_amt,
            s.fund_pay_sumamt,
            s.acct_pay,
            s.psn_cash_pay,
            s.setl_time,
            s.cancel_msgid,
            s.cancel_setl_id,
        )
    elif isinstance(eff, SetSettlementState):
        await conn.execute(
            "UPDATE settlements SET state = $3, cancel_msgid = coalesce($4, cancel_msgid),"
            " cancel_setl_id = coalesce($5, cancel_setl_id), cancelled_at = coalesce($6, cancelled_at)"
            " WHERE fixmedins_code = $1 AND msgid = $2",
            eff.fixmedins_code,
            eff.msgid,
            eff.state,
            eff.cancel_msgid,
            eff.cancel_setl_id,
            eff.cancelled_at,
        )
    elif isinstance(eff, QueueReversal):
        await conn.execute(
            "INSERT INTO reversal_queue (fixmedins_code, omsgid, oinfno, psn_no) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (fixmedins_code, omsgid) DO NOTHING",
            eff.fixmedins_code,
            eff.omsgid,
            eff.oinfno,
            eff.psn_no,
        )
    else:
        await conn.execute(
            "UPDATE default_pin_usage SET count = greatest(count - 1, 0), acct_sum = greatest(acct_sum - $3, 0)"
            " WHERE card_sn = $1 AND day = $2",
            eff.card_sn,
            eff.day,
            eff.acct,
        )
