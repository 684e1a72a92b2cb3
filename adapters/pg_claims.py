"""The journal's idempotency keys and answers (SPEC §5.2) in PostgreSQL, implementing
`gateway.ports.journal.Journal`; claims and completions are group-committed (adapters/pg_journal.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import date

from adapters.pg_errors import map_unavailable
from adapters.pg_journal import ClaimIn, JournalWriter
from adapters.pg_pool import Pg
from gateway.domain.effects import Effect
from gateway.domain.journal import Claimed, ClaimResult, Existing, StaleClaim
from gateway.domain.registry import Card


@map_unavailable
class PgJournal:
    """Claims, completions and the answers of record."""

    def __init__(self, pool: Pg, *, batch_slots: int = 4, batch_max: int = 128) -> None:
        self.pool = pool
        self.writer = JournalWriter(pool, slots=batch_slots, max_batch=batch_max)

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
        got = await self.writer.claim(
            ClaimIn(
                fixmedins_code, msgid, infno, psam_no, card_sn, content_hash, request_json, card_day, tseq, atc, fresh
            )
        )
        if got.journal_id is None:
            return await self.existing(fixmedins_code, msgid, content_hash), None
        return Claimed(got.journal_id, got.replay), got.card

    async def existing(self, fixmedins_code: str, msgid: str, content_hash: bytes) -> Existing:
        """The state of a used idempotency key."""
        ex = await self.lookup(fixmedins_code, msgid, content_hash)
        assert ex is not None, "claim lost a committed row"
        return ex

    async def lookup(self, fixmedins_code: str, msgid: str, content_hash: bytes) -> Existing | None:
        """The state of an idempotency key without claiming it; None when it was never used."""
        r = await self.pool.fetchrow(
            "SELECT content_hash, state, response, http_status, err_code FROM journal"
            " WHERE fixmedins_code = $1 AND msgid = $2",
            fixmedins_code,
            msgid,
        )
        if r is None:
            return None
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
        return await self.writer.complete(journal_id, response, http_status, err_code, effects)

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
