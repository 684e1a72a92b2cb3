"""`InMemoryStore`: the registry, journal, settlements, reversal queue and lists of record as dicts, with the
semantics of the PostgreSQL adapters (claims, replay state, completion only while PENDING, effects applied
with the completion). `down = True` makes every call fail as an unreachable database does."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from gateway.domain.effects import Effect, NewSettlement, QueueReversal, ReleaseDefaultPin, SetSettlementState
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.journal import Claimed, ClaimResult, Existing, ReversalJob, StaleClaim
from gateway.domain.pin import DefaultPinUsage
from gateway.domain.registry import Card, Institution, Psam, Settlement, SignSession
from gateway.ports import Clock, Journal, ListsOfRecord, Registry, ReversalQueue, Settlements


@dataclass
class Row:
    """A journal row."""

    id: int
    fixmedins_code: str
    msgid: str
    infno: str
    content_hash: bytes
    request_json: str
    received_at: datetime
    state: str = "PENDING"
    response: bytes | None = None
    http_status: int | None = None
    err_code: str | None = None


@dataclass
class Job:
    """A reversal owed."""

    id: int
    fixmedins_code: str
    omsgid: str
    oinfno: str
    psn_no: str
    created_at: datetime
    next_at: datetime
    state: str = "QUEUED"
    attempts: int = 0
    last_error: str | None = None


@dataclass
class InMemoryStore:
    """One fake database behind every storage port of the pipeline."""

    clock: Clock
    institutions: dict[str, Institution] = field(default_factory=dict)
    psams: dict[str, Psam] = field(default_factory=dict)
    cards: dict[str, Card] = field(default_factory=dict)
    sessions: dict[str, SignSession] = field(default_factory=dict)
    rows: dict[int, Row] = field(default_factory=dict)
    keys: dict[tuple[str, str], int] = field(default_factory=dict)
    tseqs: set[tuple[str, int]] = field(default_factory=set)
    atcs: dict[str, int] = field(default_factory=dict)
    settlements: dict[tuple[str, str], Settlement] = field(default_factory=dict)
    pin_usage: dict[tuple[str, date], DefaultPinUsage] = field(default_factory=dict)
    jobs: dict[int, Job] = field(default_factory=dict)
    card_list: dict[str, str] = field(default_factory=dict)
    person_list: dict[str, str] = field(default_factory=dict)
    down: bool = False
    completions: list[tuple[int, list[Effect]]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def _up(self) -> None:
        if self.down:
            raise DependencyUnavailable("PostgreSQL unavailable (fake)")

    # Registry
    async def institution(self, code: str) -> Institution | None:
        self._up()
        return self.institutions.get(code)

    async def psam(self, psam_no: str) -> Psam | None:
        self._up()
        return self.psams.get(psam_no)

    async def card(self, card_sn: str, day: date) -> Card | None:
        self._up()
        card = self.cards.get(card_sn)
        if card is None:
            return None
        return dataclasses.replace(card, usage=self.pin_usage.get((card_sn, day), DefaultPinUsage()))

    async def create_session(
        self, sign_no: str, fixmedins_code: str, psam_no: str, opter_no: str, at: datetime, expires: datetime
    ) -> bool:
        self._up()
        if sign_no in self.sessions:
            return False
        self.sessions[sign_no] = SignSession(sign_no, fixmedins_code, psam_no, expires, False)
        return True

    async def session(self, sign_no: str) -> SignSession | None:
        self._up()
        return self.sessions.get(sign_no)

    async def sign_out(self, sign_no: str, at: datetime) -> None:
        self._up()
        if (s := self.sessions.get(sign_no)) is not None:
            self.sessions[sign_no] = dataclasses.replace(s, signed_out=True)

    # Journal
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
        self._up()
        if (jid := self.keys.get((fixmedins_code, msgid))) is not None:
            r = self.rows[jid]
            return Existing(
                r.content_hash == content_hash, r.state == "DONE", r.response, r.http_status, r.err_code
            ), None
        jid = next(self._ids)
        self.keys[(fixmedins_code, msgid)] = jid
        self.rows[jid] = Row(jid, fixmedins_code, msgid, infno, content_hash, request_json, self.clock.now())
        replay = None
        if fresh:
            if (psam_no, tseq) in self.tseqs:
                replay = "TSEQ"
            else:
                self.tseqs.add((psam_no, tseq))
                if atc is not None and card_sn is not None:
                    if self.atcs.get(card_sn, -1) >= atc:
                        replay = "ATC"
                    else:
                        self.atcs[card_sn] = atc
        card = await self.card(card_sn, card_day) if card_sn is not None and card_day is not None else None
        return Claimed(jid, replay), card

    async def pending_claim(self, journal_id: int) -> StaleClaim | None:
        self._up()
        r = self.rows[journal_id]
        return None if r.state != "PENDING" else self._stale(r)

    def _stale(self, r: Row) -> StaleClaim:
        return StaleClaim(r.id, r.fixmedins_code, r.msgid, r.infno, r.request_json, r.received_at)

    async def lookup(self, fixmedins_code: str, msgid: str, content_hash: bytes) -> Existing | None:
        self._up()
        jid = self.keys.get((fixmedins_code, msgid))
        if jid is None:
            return None
        r = self.rows[jid]
        return Existing(r.content_hash == content_hash, r.state == "DONE", r.response, r.http_status, r.err_code)

    async def wait_done(self, fixmedins_code: str, msgid: str, content_hash: bytes, max_wait: float) -> Existing:
        self._up()
        r = self.rows[self.keys[(fixmedins_code, msgid)]]
        return Existing(r.content_hash == content_hash, r.state == "DONE", r.response, r.http_status, r.err_code)

    async def complete(
        self, journal_id: int, response: bytes, http_status: int, err_code: str | None, effects: Sequence[Effect] = ()
    ) -> bool:
        self._up()
        r = self.rows[journal_id]
        if r.state != "PENDING":
            return False
        r.state, r.response, r.http_status, r.err_code = "DONE", response, http_status, err_code
        self.apply(effects)
        self.completions.append((journal_id, list(effects)))
        return True

    async def reply_of(self, journal_id: int) -> Existing:
        self._up()
        r = self.rows[journal_id]
        return Existing(True, r.state == "DONE", r.response, r.http_status, r.err_code)

    async def stale_claims(self, older_than_s: float, limit: int) -> list[StaleClaim]:
        self._up()
        cut = self.clock.now() - timedelta(seconds=older_than_s)
        return [self._stale(r) for r in self.rows.values() if r.state == "PENDING" and r.received_at < cut][:limit]

    def apply(self, effects: Sequence[Effect]) -> None:
        """The journal's effects, as `apply_effects()` (migration 0006) applies them."""
        for e in effects:
            if isinstance(e, NewSettlement):
                s = e.settlement
                self.settlements[(s.fixmedins_code, s.msgid)] = s
            elif isinstance(e, SetSettlementState):
                key = (e.fixmedins_code, e.msgid)
                if (old := self.settlements.get(key)) is not None:
                    self.settlements[key] = dataclasses.replace(
                        old,
                        state=e.state,
                        cancel_msgid=e.cancel_msgid or old.cancel_msgid,
                        cancel_setl_id=e.cancel_setl_id or old.cancel_setl_id,
                    )
            elif isinstance(e, QueueReversal):
                if not any(j.fixmedins_code == e.fixmedins_code and j.omsgid == e.omsgid for j in self.jobs.values()):
                    jid = next(self._ids)
                    now = self.clock.now()
                    self.jobs[jid] = Job(jid, e.fixmedins_code, e.omsgid, e.oinfno, e.psn_no, now, now)
            elif isinstance(e, ReleaseDefaultPin):
                u = self.pin_usage.get((e.card_sn, e.day))
                if u is not None:
                    self.pin_usage[(e.card_sn, e.day)] = DefaultPinUsage(
                        max(u.count - 1, 0), max(u.acct_sum - e.acct, 0)
                    )

    # Settlements
    async def settlement_by_setl_id(self, setl_id: str) -> Settlement | None:
        self._up()
        return next((s for s in self.settlements.values() if s.setl_id == setl_id), None)

    async def settlement_by_msgid(self, fixmedins_code: str, msgid: str) -> Settlement | None:
        self._up()
        return self.settlements.get((fixmedins_code, msgid))

    async def settlement_by_cancel_msgid(self, fixmedins_code: str, cancel_msgid: str) -> Settlement | None:
        self._up()
        return next(
            (
                s
                for s in self.settlements.values()
                if (s.fixmedins_code, s.cancel_msgid) == (fixmedins_code, cancel_msgid)
            ),
            None,
        )

    async def transition(self, fixmedins_code: str, msgid: str, from_state: str, to_state: str) -> bool:
        self._up()
        s = self.settlements.get((fixmedins_code, msgid))
        if s is None or s.state != from_state:
            return False
        self.settlements[(fixmedins_code, msgid)] = dataclasses.replace(s, state=to_state)  # type: ignore[arg-type]
        return True

    async def reserve_default_pin(self, card_sn: str, day: date, acct: int, per_day: int, per_day_count: int) -> bool:
        self._up()
        u = self.pin_usage.get((card_sn, day), DefaultPinUsage())
        if (card_sn, day) in self.pin_usage and (u.count >= per_day_count or u.acct_sum + acct > per_day):
            return False
        self.pin_usage[(card_sn, day)] = DefaultPinUsage(u.count + 1, u.acct_sum + acct)
        return True

    async def release_default_pin(self, card_sn: str, day: date, acct: int) -> None:
        self._up()
        self.apply([ReleaseDefaultPin(card_sn, day, acct)])

    async def settlements_between(self, fixmedins_code: str, begin: datetime, end: datetime) -> list[Settlement]:
        self._up()
        rows = [
            s for s in self.settlements.values() if s.fixmedins_code == fixmedins_code and begin <= s.setl_time < end
        ]
        return sorted(rows, key=lambda s: (s.setl_time, s.msgid))

    # ReversalQueue
    async def lease_reversals(self, limit: int, lease_s: float) -> list[ReversalJob]:
        self._up()
        now = self.clock.now()
        due = sorted(
            (j for j in self.jobs.values() if j.state == "QUEUED" and j.next_at <= now), key=lambda j: j.next_at
        )
        out = []
        for j in due[:limit]:
            j.attempts += 1
            j.next_at = now + timedelta(seconds=lease_s)
            age = (now - j.created_at).total_seconds()
            out.append(ReversalJob(j.id, j.fixmedins_code, j.omsgid, j.oinfno, j.psn_no, j.attempts, age))
        return out

    async def finish_reversal(self, job_id: int, state: str, error: str | None, effects: Sequence[Effect] = ()) -> None:
        self._up()
        self.apply(effects)
        self.jobs[job_id].state, self.jobs[job_id].last_error = state, error

    async def retry_reversal(self, job_id: int, delay_s: float, error: str) -> None:
        self._up()
        j = self.jobs[job_id]
        j.next_at, j.last_error = self.clock.now() + timedelta(seconds=delay_s), error

    async def reversal_counts(self) -> dict[str, int]:
        self._up()
        counts: dict[str, int] = {}
        for j in self.jobs.values():
            counts[j.state] = counts.get(j.state, 0) + 1
        return counts

    # ListsOfRecord
    async def list_reasons(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str]:
        self._up()
        return self.card_list.get(card_sn or "", ""), self.person_list.get(psn_no or "", "")


def _checked(store: InMemoryStore) -> None:
    """mypy checks the fake against every protocol it stands in for."""
    _r: Registry = store
    _j: Journal = store
    _s: Settlements = store
    _q: ReversalQueue = store
    _l: ListsOfRecord = store
