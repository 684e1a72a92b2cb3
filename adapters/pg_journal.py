"""The journal's hot path: claims (with the card row read alongside) and completions, group-committed.

One claim is `INSERT ... ON CONFLICT DO NOTHING` of the PENDING row plus, for a fresh request, the replay state
of record (migration 0005), plus the card and its default-PIN usage; one completion is `journal_complete()`
(migrations 0004 and 0005: it refuses to commit past its caller's deadline). Concurrent requests' claims, and
completions, share a statement and a commit (adapters/pg_batch.py); each request waits for its own batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import date
from typing import Any, NamedTuple

from adapters.pg_batch import MIN_BUDGET_S, Batcher
from adapters.pg_effects import effects_json
from adapters.pg_pool import Pg
from gateway.domain.effects import Effect
from gateway.domain.pin import DefaultPinUsage
from gateway.domain.registry import Card

_CARD_COLS = (
    "c.card_sn, c.card_no, c.psn_no, c.pin_mode, c.status, c.alg, c.kv, c.valid_from, c.valid_until,"
    " coalesce(u.count, 0) AS count, coalesce(u.acct_sum, 0) AS acct_sum"
)


def card_sql(day: str) -> str:
    """SELECT of a card with its default-PIN usage on the day `day` (an SQL expression); callers add WHERE."""
    return (
        f"SELECT {_CARD_COLS} FROM cards c"  # noqa: S608 - constant columns; `day` is a parameter or column
        f" LEFT JOIN default_pin_usage u ON u.card_sn = c.card_sn AND u.day = {day}"
    )


def card_of(r: Any) -> Card:
    """A Card from a row of `card_sql`."""
    return Card(
        r["card_sn"],
        r["card_no"],
        r["psn_no"],
        r["pin_mode"],
        r["status"],
        r["alg"],
        r["kv"],
        r["valid_from"],
        r["valid_until"],
        usage=DefaultPinUsage(r["count"], r["acct_sum"]),
    )


# Constant text; every value is a bind parameter. The claim, and for a fresh request that got it, the replay
# state of record (SPEC §5.1): the (psam_no, tseq) pair, then (only when the pair was free) the card's highest
# accepted atc, raised only upwards. All in the claim's transaction, so they commit, or not, together.
_CLAIM_BATCH = (
    "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[],"  # noqa: S608
    " $7::text[], $8::date[], $9::bigint[], $10::integer[], $11::boolean[], $12::bytea[], $13::integer[])"
    " WITH ORDINALITY AS"
    " i(code, msgid, infno, psam_no, card_sn, content_hash, request, day, tseq, atc, fresh, request_enc, key_version,"
    " ord)),"
    " claimed AS (INSERT INTO journal (fixmedins_code, msgid, infno, psam_no, card_sn, content_hash, request,"
    " request_enc, data_key_version)"
    " SELECT code, msgid, infno, psam_no, card_sn, content_hash, request::jsonb, request_enc, key_version"
    " FROM input ORDER BY ord"
    " ON CONFLICT (fixmedins_code, msgid) DO NOTHING RETURNING id, fixmedins_code, msgid),"
    " mine AS (SELECT i.*, cl.id AS journal_id FROM input i"
    " JOIN claimed cl ON cl.fixmedins_code = i.code AND cl.msgid = i.msgid),"
    " tseq_taken AS (INSERT INTO psam_tseq (psam_no, tseq, journal_id)"
    " SELECT psam_no, tseq, journal_id FROM mine WHERE fresh ORDER BY ord"
    " ON CONFLICT (psam_no, tseq) DO NOTHING RETURNING journal_id),"
    " atc_taken AS (INSERT INTO card_atc AS a (card_sn, atc)"
    " SELECT m.card_sn, m.atc FROM mine m JOIN tseq_taken t ON t.journal_id = m.journal_id WHERE m.atc IS NOT NULL"
    " ON CONFLICT (card_sn) DO UPDATE SET atc = excluded.atc WHERE a.atc < excluded.atc RETURNING card_sn)"
    " SELECT i.ord, m.journal_id, t.journal_id IS NOT NULL AS tseq_ok, x.card_sn IS NOT NULL AS atc_ok, k.*"
    " FROM input i LEFT JOIN mine m ON m.ord = i.ord"
    " LEFT JOIN tseq_taken t ON t.journal_id = m.journal_id"
    " LEFT JOIN atc_taken x ON x.card_sn = i.card_sn AND t.journal_id IS NOT NULL"
    f" LEFT JOIN LATERAL ({card_sql('i.day')} WHERE i.day IS NOT NULL AND c.card_sn = i.card_sn) k ON true"
)


class ClaimIn(NamedTuple):
    """One claim: the idempotency key, what the row records, the day of the card's usage to read, and the
    replay state to take (`atc` None for a card-less request; nothing is taken unless `fresh`). The request is
    in clear (`request_json`) or sealed (`request_enc` under data key `data_key_version`, request_json None)."""

    fixmedins_code: str
    msgid: str
    infno: str
    psam_no: str
    card_sn: str | None
    content_hash: bytes
    request_json: str | None
    card_day: date | None
    tseq: int = 0
    atc: int | None = None
    fresh: bool = False
    request_enc: bytes | None = None
    data_key_version: int | None = None


class ClaimOut(NamedTuple):
    """The new journal id (None: the key was taken before), the replay verdict ('TSEQ', 'ATC' or None) and the
    card row (when asked for and known)."""

    journal_id: int | None
    replay: str | None
    card: Card | None


class CompleteIn(NamedTuple):
    """One completion: the answer and the effects applied with it."""

    journal_id: int
    response: bytes
    http_status: int
    err_code: str | None
    effects_json: str


# A completion's deadline in the database's clock is this much before its caller gives up: time for the commit
# and the answer to travel back. The rest of the budget, at least MIN_BUDGET_S, is the statement's.
def _commit_margin(budget: float) -> float:
    return min(0.5, budget / 4)


class JournalWriter:
    """Claims and completions of the journal, group-committed, each within the pool's deadline."""

    def __init__(self, pool: Pg, *, slots: int = 4, max_batch: int = 128) -> None:
        self.pool = pool
        self.claims: Batcher[ClaimIn, ClaimOut] = Batcher(
            self._claim_batch, slots=slots, max_batch=max_batch, timeout_s=pool.timeout_s
        )
        self.completions: Batcher[CompleteIn, bool] = Batcher(
            self._complete_batch, slots=slots, max_batch=max_batch, timeout_s=pool.timeout_s
        )

    async def claim(self, item: ClaimIn) -> ClaimOut:
        """Claim the key, take the replay state, read the card."""
        return await self.claims.submit(item)

    async def complete(
        self, journal_id: int, response: bytes, http_status: int, err_code: str | None, effects: Sequence[Effect]
    ) -> bool:
        """Complete a PENDING row with its effects; False when it was no longer PENDING."""
        return await self.completions.submit(
            CompleteIn(journal_id, response, http_status, err_code, effects_json(effects))
        )

    async def _claim_batch(self, items: Sequence[ClaimIn], budget: float) -> list[ClaimOut]:
        # One statement cannot decide two uses of one key, one (psam_no, tseq) or one card against each other:
        # such items go to a later round, a statement of their own that sees the earlier round committed.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        out: list[ClaimOut] = [ClaimOut(None, None, None)] * len(items)
        todo = list(range(len(items)))
        while todo:
            round_: list[int] = []
            later: list[int] = []
            keys: set[tuple[str, str, str]] = set()
            for k in todo:
                it = items[k]
                mine = {("m", it.fixmedins_code, it.msgid), ("t", it.psam_no, str(it.tseq))}
                if it.card_sn is not None:
                    mine.add(("c", it.card_sn, ""))
                if keys & mine:
                    later.append(k)
                else:
                    keys |= mine
                    round_.append(k)
            cols = list(zip(*(items[k] for k in round_), strict=True))
            rows = await self.pool.fetch(_CLAIM_BATCH, *cols, timeout=max(MIN_BUDGET_S, deadline - loop.time()))
            for r in rows:
                k = round_[r["ord"] - 1]
                jid = r["journal_id"]
                replay = None
                if jid is not None and items[k].fresh:
                    if not r["tseq_ok"]:
                        replay = "TSEQ"
                    elif items[k].atc is not None and not r["atc_ok"]:
                        replay = "ATC"
                out[k] = ClaimOut(jid, replay, card_of(r) if r["card_sn"] is not None else None)
            todo = later
        return out

    async def _complete_batch(self, items: Sequence[CompleteIn], budget: float) -> list[bool]:
        db_deadline = self.pool.db_deadline(time.time() + budget - _commit_margin(budget))
        if len(items) == 1:
            it = items[0]
            done = await self.pool.fetchval(
                "SELECT journal_complete($1, $2, $3, $4, $5::jsonb, $6)",
                it.journal_id,
                it.response,
                it.http_status,
                it.err_code,
                it.effects_json,
                db_deadline,
                timeout=budget,
            )
            return [bool(done)]
        ids, responses, statuses, errs, effects = zip(*items, strict=True)
        flags = await self.pool.fetchval(
            "SELECT journal_complete_batch($1::bigint[], $2::bytea[], $3::smallint[], $4::text[], $5::text[], $6)",
            list(ids),
            list(responses),
            list(statuses),
            list(errs),
            list(effects),
            db_deadline,
            timeout=budget,
        )
        return [bool(f) for f in flags]
