"""`InMemoryCore`: the insurance core port over a dict of persons, with scripted failures per operation."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date

from gateway.domain.core import Cancellation, Cancelled, PersonRecord, Posted, Posting, Reversal, Reversed
from gateway.domain.errors import CoreRejected
from gateway.domain.reconcile import CoreRecord
from gateway.ports import InsuranceCore


@dataclass
class InMemoryCore:
    """Persons, postings, cancels and reversals; `fail[op]` holds exceptions raised by the next calls of `op`
    (`person`, `post`, `cancel`, `reverse`), one per call, before the call does anything."""

    persons: dict[str, PersonRecord] = field(default_factory=dict)
    posted: dict[str, Posting] = field(default_factory=dict)  # setl_id -> posting
    cancelled: set[str] = field(default_factory=set)
    reversed: list[Reversal] = field(default_factory=list)
    fail: dict[str, list[Exception]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _maybe_fail(self, op: str) -> None:
        self.calls.append(op)
        if self.fail.get(op):
            raise self.fail[op].pop(0)

    async def person(self, psn_no: str, *, timeout: float) -> PersonRecord:
        self._maybe_fail("person")
        p = self.persons.get(psn_no)
        if p is None:
            raise CoreRejected("PERSON_NOT_FOUND", f"no person {psn_no}")
        return p

    async def post_settlement(self, posting: Posting, *, timeout: float) -> Posted:
        self._maybe_fail("post")
        p = self.persons[posting.psn_no]
        if p.balance < posting.acct_pay:
            raise CoreRejected("INSUFFICIENT_BALANCE", "balance too low")
        setl_id = f"S{next(self._ids):08d}"
        self.posted[setl_id] = posting
        self.persons[p.psn_no] = replace(p, balance=p.balance - posting.acct_pay, version=p.version + 1)
        return Posted(setl_id, p.balance - posting.acct_pay, p.version + 1)

    async def cancel_settlement(self, cancel: Cancellation, *, timeout: float) -> Cancelled:
        self._maybe_fail("cancel")
        posting = self.posted.get(cancel.setl_id)
        if posting is None:
            raise CoreRejected("SETTLEMENT_NOT_FOUND", "no such settlement")
        if cancel.setl_id in self.cancelled:
            raise CoreRejected("ALREADY_CANCELLED", "already cancelled")
        self.cancelled.add(cancel.setl_id)
        p = self.persons[posting.psn_no]
        self.persons[p.psn_no] = replace(p, balance=p.balance + posting.acct_pay)
        return Cancelled(
            f"C{next(self._ids):08d}", cancel.setl_id, posting.medfee_sumamt, posting.fund_pay_sumamt,
            posting.acct_pay, posting.psn_cash_pay, p.balance + posting.acct_pay,
        )  # fmt: skip

    async def reverse(self, reversal: Reversal, *, timeout: float) -> Reversed:
        self._maybe_fail("reverse")
        self.reversed.append(reversal)
        return Reversed(reversal.omsgid, any(p.msgid == reversal.omsgid for p in self.posted.values()))

    async def settlements(self, fixmedins_code: str, begin: date, end: date, *, timeout: float) -> list[CoreRecord]:
        self._maybe_fail("settlements")
        return [
            CoreRecord(
                p.msgid,
                setl_id,
                p.fixmedins_code,
                "CANCELLED" if setl_id in self.cancelled else "POSTED",
                p.setl_time,
                p.medfee_sumamt,
                p.fund_pay_sumamt,
                p.acct_pay,
                p.psn_cash_pay,
            )
            for setl_id, p in self.posted.items()
            if p.fixmedins_code == fixmedins_code and begin.isoformat() <= p.setl_time[:10] <= end.isoformat()
        ]

    async def close(self) -> None:
        return None


_: InsuranceCore = InMemoryCore()
