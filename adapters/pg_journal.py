"""The journal's hot path: claims (with the card row read alongside) and completions, group-committed.

One claim is `INSERT ... ON CONFLICT DO NOTHING` of the PENDING row plus the card and its default-PIN usage;
one completion is `journal_complete()` (migration 0004). Concurrent requests' claims, and completions, share a
statement and a commit (adapters/pg_batch.py); each request waits for its own batch to commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, NamedTuple

import asyncpg

from adapters.pg_batch import Batcher
from adapters.pg_effects import effects_json
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


# Constant text; every value is a bind parameter.
_CLAIM_BATCH = (
    "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[],"  # noqa: S608
    " $7::text[], $8::date[]) WITH ORDINALITY AS i(code, msgid, infno, psam_no, card_sn, content_hash, request, day,"
    " ord)),"
    " claimed AS (INSERT INTO journal (fixmedins_code, msgid, infno, psam_no, card_sn, content_hash, request)"
    " SELECT code, msgid, infno, psam_no, card_sn, content_hash, request::jsonb FROM input ORDER BY ord"
    " ON CONFLICT (fixmedins_code, msgid) DO NOTHING RETURNING id, fixmedins_code, msgid)"
    " SELECT i.ord, cl.id AS journal_id, k.* FROM input i"
    " LEFT JOIN claimed cl ON cl.fixmedins_code = i.code AND cl.msgid = i.msgid"
    f" LEFT JOIN LATERAL ({card_sql('i.day')} WHERE i.day IS NOT NULL AND c.card_sn = i.card_sn) k ON true"
)


class ClaimIn(NamedTuple):
    """One claim: the idempotency key, what the row records, and the day of the card's usage to read."""

    fixmedins_code: str
    msgid: str
    infno: str
    psam_no: str
    card_sn: str | None
    content_hash: bytes
    request_json: str
    card_day: date | None


class CompleteIn(NamedTuple):
    """One completion: the answer and the effects applied with it."""

    journal_id: int
    response: bytes
    http_status: int
    err_code: str | None
    effects_json: str


class JournalWriter:
    """Claims and completions of the journal, group-committed."""

    def __init__(self, pool: asyncpg.Pool, *, slots: int = 4, max_batch: int = 128) -> None:
        self.pool = pool
        self.claims: Batcher[ClaimIn, tuple[int | None, Card | None]] = Batcher(
            self._claim_batch, slots=slots, max_batch=max_batch
        )
        self.completions: Batcher[CompleteIn, bool] = Batcher(self._complete_batch, slots=slots, max_batch=max_batch)

    async def claim(self, item: ClaimIn) -> tuple[int | None, Card | None]:
        """The new journal id (None: the key was taken before) and the card row (when asked for and known)."""
        return await self.claims.submit(item)

    async def complete(
        self, journal_id: int, response: bytes, http_status: int, err_code: str | None, effects: Sequence[Effect]
    ) -> bool:
        """Complete a PENDING row with its effects; False when it was no longer PENDING."""
        return await self.completions.submit(
            CompleteIn(journal_id, response, http_status, err_code, effects_json(effects))
        )

    async def _claim_batch(self, items: Sequence[ClaimIn]) -> list[tuple[int | None, Card | None]]:
        # A key twice in one batch: the first occurrence claims, the others read it back as taken.
        seen: set[tuple[str, str]] = set()
        firsts = []
        for k, it in enumerate(items):
            if (it.fixmedins_code, it.msgid) not in seen:
                seen.add((it.fixmedins_code, it.msgid))
                firsts.append(k)
        cols = list(zip(*(items[k] for k in firsts), strict=True))
        rows = await self.pool.fetch(_CLAIM_BATCH, *cols)
        out: list[tuple[int | None, Card | None]] = [(None, None)] * len(items)
        for r in rows:
            out[firsts[r["ord"] - 1]] = (r["journal_id"], card_of(r) if r["card_sn"] is not None else None)
        return out

    async def _complete_batch(self, items: Sequence[CompleteIn]) -> list[bool]:
        if len(items) == 1:
            it = items[0]
            done = await self.pool.fetchval(
                "SELECT journal_complete($1, $2, $3, $4, $5::jsonb)",
                it.journal_id,
                it.response,
                it.http_status,
                it.err_code,
                it.effects_json,
            )
            return [bool(done)]
        ids, responses, statuses, errs, effects = zip(*items, strict=True)
        flags = await self.pool.fetchval(
            "SELECT journal_complete_batch($1::bigint[], $2::bytea[], $3::smallint[], $4::text[], $5::text[])",
            list(ids),
            list(responses),
            list(statuses),
            list(errs),
            list(effects),
        )
        return [bool(f) for f in flags]
