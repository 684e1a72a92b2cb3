"""The journal port: idempotency keys, answers of record, claims to recover (`adapters.pg_claims.PgJournal`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol

from gateway.domain.effects import Effect
from gateway.domain.journal import ClaimResult, Existing, StaleClaim
from gateway.domain.registry import Card


class Journal(Protocol):
    """Every authenticated request is claimed here before it acts and completed here before it is answered."""

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
        """Take the idempotency key or report who has it (SPEC §5.2); with `card_day`, also the card with its
        default-PIN usage of that day, read in the same round trip. With `fresh`, the claim also takes the
        replay state of record (SPEC §5.1): (psam_no, tseq) and, when `atc` is given, the card's atc
        (`Claimed.replay` names the one already used; nothing is taken then but what was free before it)."""
        ...

    async def pending_claim(self, journal_id: int) -> StaleClaim | None:
        """A claim while it is still PENDING."""
        ...

    async def lookup(self, fixmedins_code: str, msgid: str, content_hash: bytes) -> Existing | None:
        """The state of an idempotency key, read without claiming it (None: never used). Asked only for a
        request refused RATE_LIMITED, so that a retry of a msgid already answered still gets its answer."""
        ...

    async def wait_done(self, fixmedins_code: str, msgid: str, content_hash: bytes, max_wait: float) -> Existing: ...
    async def complete(
        self,
        journal_id: int,
        response: bytes,
        http_status: int,
        err_code: str | None,
        effects: Sequence[Effect] = (),
    ) -> bool:
        """Store the response and apply the effects atomically, before the answer leaves.

        Only a PENDING claim is completed: False (nothing stored, no effect applied) when the row was already
        DONE, i.e. recovery answered for a process it took for dead; that stored answer then stands.
        """
        ...

    async def reply_of(self, journal_id: int) -> Existing:
        """The journaled state and answer of a claim."""
        ...

    async def stale_claims(self, older_than_s: float, limit: int) -> list[StaleClaim]:
        """Claims still PENDING `older_than_s` after they were taken (by the database's clock), oldest first."""
        ...
