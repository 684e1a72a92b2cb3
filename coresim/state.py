"""The simulated core's ledger: pure, in-memory, synchronous.

Every method runs without awaiting, so under asyncio each call is atomic: two concurrent postings
against one person's version cannot both pass the version and balance checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from coresim.records import (
    CANCEL_INFNOS,
    SETTLE_INFNOS,
    CancelReceipt,
    CancelRecord,
    CancelRequest,
    Person,
    PostReceipt,
    PostRequest,
    Refusal,
    ReversalRecord,
    ReverseReceipt,
    ReverseRequest,
    SetlState,
    Settlement,
)
from coresim.world import WorldError, person_from_world

# The national platform keeps Beijing time; a fixed offset needs no tz database.
CST = timezone(timedelta(hours=8), "CST")


def local_now() -> datetime:
    """The core's clock: Beijing time."""
    return datetime.now(CST)


class CoreState:
    """Persons, settlements, cancellations and reversals, keyed by the sender's msgid."""

    def __init__(self, persons: Iterable[Person] = (), *, clock: Callable[[], datetime] = local_now) -> None:
        self._clock = clock
        self.persons: dict[str, Person] = {p.psn_no: p for p in persons}
        self.settlements: dict[str, Settlement] = {}  # by the posting's msgid
        self.cancellations: dict[str, CancelRecord] = {}  # by the cancel's msgid
        self.reversals: dict[str, ReversalRecord] = {}  # by the reversal's msgid
        self.reversed: dict[str, ReverseReceipt] = {}  # by omsgid: each original is undone once
        self.tombstones: dict[str, ReverseRequest] = {}  # reversed before they arrived
        self._by_setl_id: dict[str, str] = {}  # setl_id -> msgid of the settlement
        self._seq = 0

    @classmethod
    def from_world(cls, world: dict[str, Any], *, clock: Callable[[], datetime] = local_now) -> CoreState:
        """A ledger seeded from a world dict (`world["persons"]`); raises WorldError naming the field."""
        state = cls(clock=clock)
        state.upsert_persons(world.get("persons", []))
        return state

    def upsert_persons(self, raw: object) -> int:
        """Insert or replace persons (world format); all or nothing. Replacing bumps the version."""
        if not isinstance(raw, list):
            raise WorldError("persons must be a list")
        year = self._clock().year
        parsed = [person_from_world(item, year=year, index=i) for i, item in enumerate(raw)]
        for person in parsed:
            old = self.persons.get(person.psn_no)
            if old is not None:
                person.version = old.version + 1
            self.persons[person.psn_no] = person
        return len(parsed)

    def person(self, psn_no: str) -> Person:
        """The person, accumulators rolled over to the current year; refuses PERSON_NOT_FOUND."""
        person = self.persons.get(psn_no)
        if person is None:
            raise Refusal("PERSON_NOT_FOUND", "no such person")
        year = self._clock().year
        if person.acc_year != year:
            person.acc_year, person.inscp_ytd, person.fund_paid_ytd = year, 0, 0
        return person

    def post(self, msgid: str, req: PostRequest) -> PostReceipt:
        """Post a settlement once per msgid; a retry with the same content gets the same receipt."""
        done = self.settlements.get(msgid)
        if done is not None:
            if done.request != req:
                raise Refusal("MSGID_CONFLICT", "msgid already posted with different content")
            if done.state is SetlState.REVERSED:
                raise Refusal("REVERSED", "this settlement was reversed")
            return done.receipt
        self._fresh(msgid)
        if req.infno not in SETTLE_INFNOS:
            raise Refusal("MALFORMED", "infno must be 2207, 2102 or 2304")
        if req.acct_pay + req.psn_cash_pay + req.fund_pay_sumamt > req.medfee_sumamt:
            raise Refusal("AMOUNT_MISMATCH", "acct_pay + psn_cash_pay + fund_pay_sumamt exceed medfee_sumamt")
        if req.inscp_scp_amt > req.medfee_sumamt:
            raise Refusal("AMOUNT_MISMATCH", "inscp_scp_amt exceeds medfee_sumamt")
        person = self.person(req.psn_no)
        if not person.active:
            raise Refusal("PERSON_SUSPENDED", f"insurance suspended (reason {person.status})")
        if req.expected_version != person.version:
            raise Refusal("VERSION_CONFLICT", f"expected version {req.expected_version}, is {person.version}")
        if req.acct_pay > person.balance:
            raise Refusal("INSUFFICIENT_BALANCE", "acct_pay exceeds the personal account balance")
        now = self._clock()
        setl = Settlement(msgid, req, PostReceipt("", msgid, 0, 0), now.year, _stamp(now))
        self._apply(person, setl)
        setl.receipt = PostReceipt(self._new_setl_id(now), msgid, person.balance, person.version)
        self.settlements[msgid] = setl
        self._by_setl_id[setl.setl_id] = msgid
        return setl.receipt

    def cancel(self, msgid: str, req: CancelRequest) -> CancelReceipt:
        """Cancel a settlement of the same institution and person, restoring account and accumulators."""
        done = self.cancellations.get(msgid)
        if done is not None:
            if done.request != req:
                raise Refusal("MSGID_CONFLICT", "msgid already used with different content")
            if done.state is SetlState.REVERSED:
                raise Refusal("REVERSED", "this cancellation was reversed")
            return done.receipt
        self._fresh(msgid)
        if req.infno not in CANCEL_INFNOS:
            raise Refusal("MALFORMED", "infno must be 2208, 2103 or 2305")
        orig_msgid = self._by_setl_id.get(req.setl_id, "")
        setl = self.settlements.get(orig_msgid)
        # Another institution's settlement is indistinguishable from a missing one (no probing).
        if (
            setl is None
            or setl.request.fixmedins_code != req.fixmedins_code
            or setl.request.psn_no != req.psn_no
            or setl.state is SetlState.REVERSED
        ):
            raise Refusal("SETTLEMENT_NOT_FOUND", "no such settlement for this institution and person")
        if setl.state is SetlState.CANCELLED:
            raise Refusal("ALREADY_CANCELLED", "settlement already cancelled")
        person = self.person(req.psn_no)
        self._unapply(person, setl)
        now = self._clock()
        setl.state, setl.changed_at = SetlState.CANCELLED, _stamp(now)
        r = setl.request
        receipt = CancelReceipt(
            self._new_setl_id(now), setl.setl_id, r.medfee_sumamt, r.fund_pay_sumamt, r.acct_pay,
            r.psn_cash_pay, person.balance, person.version,
        )  # fmt: skip
        self.cancellations[msgid] = CancelRecord(msgid, req, receipt, orig_msgid, _stamp(now))
        return receipt

    def reverse(self, msgid: str, req: ReverseRequest) -> ReverseReceipt:
        """Undo the message omsgid whether or not it arrived; idempotent per msgid and per omsgid."""
        done = self.reversals.get(msgid)
        if done is not None:
            if done.request != req:
                raise Refusal("MSGID_CONFLICT", "msgid already used with different content")
            return done.receipt
        self._fresh(msgid)
        if req.oinfno not in SETTLE_INFNOS | CANCEL_INFNOS:
            raise Refusal("MALFORMED", "oinfno must be 2207, 2102, 2304, 2208, 2103 or 2305")
        receipt = self.reversed.get(req.omsgid)
        if receipt is None:
            was_posted = self._reverse_settlement(req) if req.oinfno in SETTLE_INFNOS else self._reverse_cancel(req)
            receipt = ReverseReceipt(req.omsgid, req.oinfno, was_posted)
            self.reversed[req.omsgid] = receipt
        self.reversals[msgid] = ReversalRecord(msgid, req, receipt, _stamp(self._clock()))
        return receipt

    def _reverse_settlement(self, req: ReverseRequest) -> bool:
        setl = self.settlements.get(req.omsgid)
        if setl is None:
            return self._tombstone(req)
        if setl.request.fixmedins_code != req.fixmedins_code or setl.request.psn_no != req.psn_no:
            raise Refusal("SETTLEMENT_NOT_FOUND", "no such settlement for this institution and person")
        if setl.state is SetlState.CANCELLED:
            raise Refusal("NOT_REVERSIBLE", "settlement was cancelled; reverse the cancellation instead")
        self._unapply(self.person(setl.request.psn_no), setl)
        setl.state, setl.changed_at = SetlState.REVERSED, _stamp(self._clock())
        return True

    def _reverse_cancel(self, req: ReverseRequest) -> bool:
        rec = self.cancellations.get(req.omsgid)
        if rec is None:
            return self._tombstone(req)
        if rec.request.fixmedins_code != req.fixmedins_code or rec.request.psn_no != req.psn_no:
            raise Refusal("SETTLEMENT_NOT_FOUND", "no such cancellation for this institution and person")
        setl = self.settlements[rec.orig_msgid]
        # Re-apply even past the balance: the cancel never happened, so the refund never did either.
        self._apply(self.person(setl.request.psn_no), setl)
        setl.state, setl.changed_at = SetlState.POSTED, _stamp(self._clock())
        rec.state = SetlState.REVERSED
        return True

    def _tombstone(self, req: ReverseRequest) -> bool:
        if req.omsgid in self.settlements or req.omsgid in self.cancellations or req.omsgid in self.reversals:
            raise Refusal("MSGID_CONFLICT", "omsgid names a message of another kind than oinfno")
        self.tombstones[req.omsgid] = req
        return False

    def statement(self, fixmedins_code: str, first: str, last: str) -> list[Settlement]:
        """An institution's settlements with setl_time on dates first..last (YYYY-MM-DD, inclusive), any state,
        in setl_time then msgid order (3202, the core's side of detail reconciliation)."""
        found = [
            s for s in self.settlements.values()
            if s.request.fixmedins_code == fixmedins_code and first <= s.request.setl_time[:10] <= last
        ]  # fmt: skip
        return sorted(found, key=lambda s: (s.request.setl_time, s.msgid))

    def _fresh(self, msgid: str) -> None:
        """Refuse a new message whose msgid was reversed before it arrived or names another kind."""
        if msgid in self.tombstones:
            raise Refusal("REVERSED", "this msgid was reversed before it arrived")
        if msgid in self.settlements or msgid in self.cancellations or msgid in self.reversals:
            raise Refusal("MSGID_CONFLICT", "msgid already used by another kind of message")

    def _apply(self, person: Person, setl: Settlement) -> None:
        r = setl.request
        person.balance -= r.acct_pay
        if setl.year == person.acc_year:
            person.inscp_ytd += r.inscp_scp_amt
            person.fund_paid_ytd += r.fund_pay_sumamt
        person.version += 1

    def _unapply(self, person: Person, setl: Settlement) -> None:
        r = setl.request
        person.balance += r.acct_pay
        if setl.year == person.acc_year:  # last year's settlement no longer counts this year
            person.inscp_ytd = max(0, person.inscp_ytd - r.inscp_scp_amt)
            person.fund_paid_ytd = max(0, person.fund_paid_ytd - r.fund_pay_sumamt)
        person.version += 1

    def _new_setl_id(self, now: datetime) -> str:
        self._seq += 1
        # 23 chars; the timestamp keeps ids unique across restarts of the simulator.
        return f"S{now:%Y%m%d%H%M%S}{self._seq:08d}"


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%d %H:%M:%S")
