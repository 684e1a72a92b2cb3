"""The journal's idempotency keys and answers (SPEC §5.2) in PostgreSQL, implementing
`gateway.ports.journal.Journal`; claims and completions are group-committed (adapters/pg_journal.py).
With a data key ring (issue 11 item 9), bodies are sealed here, bound to their row (adapters/journal_sealing.py);
rows stored in clear (before the upgrade, or with journal_encryption = false) stay readable."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import date
from typing import Any

from adapters.journal_sealing import JournalSealing
from adapters.pg_errors import map_unavailable
from adapters.pg_journal import ClaimIn, JournalWriter
from adapters.pg_pool import Pg
from gateway.domain.effects import Effect
from gateway.domain.journal import Claimed, ClaimResult, Existing, StaleClaim
from gateway.domain.registry import Card
from gateway.domain.sealed import UnreadableRecord

log = logging.getLogger("onecard.journal")

_CLAIM_COLS = "id AS journal_id, fixmedins_code, msgid, infno, request::text AS request_json, request_enc, received_at"
_SEALED_KEYS_KEPT = 100_000  # sealed claims awaiting completion whose key this process remembers


@map_unavailable
class PgJournal:
    """Claims, completions and the answers of record.

    `sealing` opens sealed rows and, with `seal_new`, seals new ones; None: no data keys (clear rows only)."""

    def __init__(
        self,
        pool: Pg,
        *,
        batch_slots: int = 4,
        batch_max: int = 128,
        sealing: JournalSealing | None = None,
        seal_new: bool = True,
    ) -> None:
        self.pool = pool
        self.writer = JournalWriter(pool, slots=batch_slots, max_batch=batch_max)
        self.sealing = sealing
        self.seal_new = seal_new and sealing is not None
        # journal id -> (fixmedins_code, msgid) of a sealed claim not completed yet: its response is sealed for
        # that row. Filled by claims and by recovery's reads; a miss is read from the row (one query).
        self._sealed_rows: OrderedDict[int, tuple[str, str]] = OrderedDict()

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
        clear: str | None = request_json
        version = blob = None
        if self.seal_new:
            assert self.sealing is not None
            version, blob = self.sealing.seal_request(fixmedins_code, msgid, request_json)
            clear = None
        got = await self.writer.claim(
            ClaimIn(
                fixmedins_code,
                msgid,
                infno,
                psam_no,
                card_sn,
                content_hash,
                clear,
                card_day,
                tseq,
                atc,
                fresh,
                blob,
                version,
            )
        )
        if got.journal_id is None:
            return await self.existing(fixmedins_code, msgid, content_hash), None
        if blob is not None:
            self._remember(got.journal_id, fixmedins_code, msgid)
        return Claimed(got.journal_id, got.replay), got.card

    def _remember(self, journal_id: int, fixmedins_code: str, msgid: str) -> None:
        self._sealed_rows[journal_id] = (fixmedins_code, msgid)
        if len(self._sealed_rows) > _SEALED_KEYS_KEPT:
            self._sealed_rows.popitem(last=False)

    def _sealing(self, msgid: str) -> JournalSealing:
        if self.sealing is None:
            raise UnreadableRecord(f"journal row of msgid {msgid} is sealed, and no journal data keys are configured")
        return self.sealing

    def _response(self, r: Any) -> bytes | None:
        """The answer of a row as sent, opened when sealed."""
        if r["response_enc"] is not None:
            return self._sealing(r["msgid"]).open_response(r["fixmedins_code"], r["msgid"], bytes(r["response_enc"]))
        return None if r["response"] is None else bytes(r["response"])

    def _claim(self, r: Any) -> StaleClaim:
        row = dict(r)
        blob = row.pop("request_enc")
        if blob is not None:
            row["request_json"] = self._sealing(row["msgid"]).open_request(row["fixmedins_code"], row["msgid"], blob)
            self._remember(row["journal_id"], row["fixmedins_code"], row["msgid"])
        return StaleClaim(**row)

    async def existing(self, fixmedins_code: str, msgid: str, content_hash: bytes) -> Existing:
        """The state of a used idempotency key."""
        ex = await self.lookup(fixmedins_code, msgid, content_hash)
        assert ex is not None, "claim lost a committed row"
        return ex

    async def lookup(self, fixmedins_code: str, msgid: str, content_hash: bytes) -> Existing | None:
        """The state of an idempotency key without claiming it; None when it was never used."""
        r = await self.pool.fetchrow(
            "SELECT fixmedins_code, msgid, content_hash, state, response, response_enc, http_status, err_code"
            " FROM journal WHERE fixmedins_code = $1 AND msgid = $2",
            fixmedins_code,
            msgid,
        )
        if r is None:
            return None
        return Existing(
            bytes(r["content_hash"]) == content_hash,
            r["state"] == "DONE",
            self._response(r),
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
        key = self._sealed_rows.pop(journal_id, None)
        if key is None and self.sealing is not None:
            r = await self.pool.fetchrow(
                "SELECT fixmedins_code, msgid FROM journal WHERE id = $1 AND data_key_version IS NOT NULL", journal_id
            )
            key = None if r is None else (r["fixmedins_code"], r["msgid"])
        if key is not None:
            response = self._sealing(key[1]).seal_response(key[0], key[1], response)
        return await self.writer.complete(journal_id, response, http_status, err_code, effects)

    async def reply_of(self, journal_id: int) -> Existing:
        """The journaled state and answer of a claim."""
        r = await self.pool.fetchrow(
            "SELECT fixmedins_code, msgid, state, response, response_enc, http_status, err_code FROM journal"
            " WHERE id = $1",
            journal_id,
        )
        assert r is not None, "a claimed journal row vanished"
        return Existing(True, r["state"] == "DONE", self._response(r), r["http_status"], r["err_code"])

    async def pending_claim(self, journal_id: int) -> StaleClaim | None:
        """The claim `journal_id` while it is still PENDING (None once completed)."""
        r = await self.pool.fetchrow(
            f"SELECT {_CLAIM_COLS} FROM journal WHERE id = $1 AND state = 'PENDING'",  # noqa: S608 - constant
            journal_id,
        )
        return None if r is None else self._claim(r)

    async def stale_claims(self, older_than_s: float, limit: int) -> list[StaleClaim]:
        """Claims still PENDING `older_than_s` after they were taken (the database's clock), oldest first."""
        rows = await self.pool.fetch(
            f"SELECT {_CLAIM_COLS} FROM journal"  # noqa: S608 - constant columns
            " WHERE state = 'PENDING' AND received_at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2",
            older_than_s,
            limit,
        )
        out = []
        for r in rows:
            try:
                out.append(self._claim(r))
            except UnreadableRecord as exc:  # left PENDING for an operator; the others are still recovered
                log.error("journal recovery skips claim id %d: %s", r["journal_id"], exc)
        return out
