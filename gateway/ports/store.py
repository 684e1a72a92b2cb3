"""The registry, sessions, journal and settlements port (PostgreSQL: `adapters.pg_store.PgStore`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol

from gateway.domain.effects import Effect
from gateway.domain.journal import ClaimResult, Existing, ReversalJob, StaleClaim
from gateway.domain.registry import Card, Institution, Psam, Settlement, SignSession


class Store(Protocol):
    """Registry, sign-in sessions, the journal and settlements (PostgreSQL: `adapters.pg_store.PgStore`)."""

    async def institution(self, code: str) -> Institution | None: ...
    async def psam(self, psam_no: str) -> Psam | None: ...
    async def card(self, card_sn: str, day: date) -> Card | None: ...
    async def create_session(
        self, sign_no: str, fixmedins_code: str, psam_no: str, opter_no: str, at: datetime, expires: datetime
    ) -> bool:
        """Record a sign-in; False when the sign_no is taken (the caller draws another)."""
        ...

    async def session(self, sign_no: str) -> SignSession | None: ...
    async def sign_out(self, sign_no: str, at: datetime) -> None: ...
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

    async def list_reasons(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str]:
        """Blacklist reasons from the lists of record ('' = not listed)."""
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

    async def settlement_by_setl_id(self, setl_id: str) -> Settlement | None: ...
    async def settlement_by_msgid(self, fixmedins_code: str, msgid: str) -> Settlement | None: ...
    async def settlement_by_cancel_msgid(self, fixmedins_code: str, cancel_msgid: str) -> Settlement | None: ...
    async def transition(self, fixmedins_code: str, msgid: str, from_state: str, to_state: str) -> bool: ...
    async def reserve_default_pin(
        self, card_sn: str, day: date, acct: int, per_day: int, per_day_count: int
    ) -> bool: ...
    async def release_default_pin(self, card_sn: str, day: date, acct: int) -> None: ...
    async def settlements_between(self, fixmedins_code: str, begin: datetime, end: datetime) -> list[Settlement]: ...
    async def lease_reversals(self, limit: int, lease_s: float) -> list[ReversalJob]: ...
    async def finish_reversal(
        self, job_id: int, state: str, error: str | None, effects: Sequence[Effect] = ()
    ) -> None: ...
    async def retry_reversal(self, job_id: int, delay_s: float, error: str) -> None: ...
    async def reversal_counts(self) -> dict[str, int]: ...
