"""Journal recovery of the claims this process abandoned when PostgreSQL failed mid-request (a fake of our own
Journal port): a claim still PENDING is completed at once as -1 CORE_TIMEOUT with the reversal a settlement owes;
one the late completion committed after all is left standing and counted `settled`; while the database is
still away nothing is lost and the claim waits for the next attempt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.domain.effects import NewSettlement, QueueReversal
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.journal import Existing, StaleClaim
from gateway.http.metrics import Metrics
from gateway.pipeline.recovery import JournalRecovery
from loadtest.terminal import SimCard, Terminal
from tests.fakes.world import SHANGHAI, FakeClock, make_deps

CODE = "H33020000013"


class FakeStore:
    """The few Store methods recovery uses, over a dict of journal rows; `down` makes every call fail."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.down = False
        self.effects: dict[int, list[Any]] = {}

    def _check(self) -> None:
        if self.down:
            raise DependencyUnavailable("PostgreSQL did not answer in time (fake)")

    async def pending_claim(self, journal_id: int) -> StaleClaim | None:
        self._check()
        r = self.rows[journal_id]
        if r["state"] != "PENDING":
            return None
        return StaleClaim(journal_id, CODE, r["msgid"], r["infno"], r["request"], datetime.now(UTC))

    async def reply_of(self, journal_id: int) -> Existing:
        self._check()
        r = self.rows[journal_id]
        return Existing(True, r["state"] == "DONE", r.get("response"), r.get("status"), r.get("err"))

    async def complete(self, journal_id: int, response: bytes, status: int, err: str | None, effects: Any = ()) -> bool:
        self._check()
        r = self.rows[journal_id]
        if r["state"] != "PENDING":
            return False
        r.update(state="DONE", response=response, status=status, err=err)
        self.effects[journal_id] = list(effects)
        return True

    async def settlement_by_msgid(self, code: str, msgid: str) -> None:
        self._check()


class Node:
    node_id = 1
    lapsed = False


def recovery(store: FakeStore) -> JournalRecovery:
    deps = make_deps(FakeClock(datetime.now(SHANGHAI)), store=store, metrics=Metrics(), node=Node())
    return JournalRecovery(deps)


def settle_request() -> tuple[str, str]:
    t = Terminal(CODE, "医院", "330200000001")
    card = SimCard("330200D15600000500000000000000AB", "A12345678", "33020000000000000001", alg="SM4")
    b = t.settle("2207", card, [("XJ01CAA001A001198629941", "1", "8.60")])
    return b.body["msgid"], orjson.dumps(b.body, option=orjson.OPT_SORT_KEYS).decode()


def counted(rec: JournalRecovery, outcome: str) -> float:
    return rec.d.metrics.registry.get_sample_value("onecard_journal_abandoned_total", {"outcome": outcome}) or 0.0


class TestAbandoned:
    async def test_a_pending_claim_is_completed_at_once_with_its_reversal(self):
        """No grace period: CORE_TIMEOUT, an UNKNOWN settlement and the 2601 owed, journaled together."""
        store = FakeStore()
        msgid, request = settle_request()
        store.rows[1] = {"state": "PENDING", "msgid": msgid, "infno": "2207", "request": request}
        rec = recovery(store)
        rec.abandon(1, told_unknown=True)
        assert await rec.resolve_abandoned() == 0
        row = store.rows[1]
        assert row["err"] == "CORE_TIMEOUT"
        assert orjson.loads(row["response"])["infcode"] == -1
        kinds = [type(e) for e in store.effects[1]]
        assert kinds == [NewSettlement, QueueReversal]
        assert counted(rec, "recovered") == 1
        assert rec.abandoned == 0

    async def test_a_completion_that_committed_after_all_stands(self):
        """The terminal heard -1 (the confirmation was lost) but the journal says 0: the journal's answer is the
        one a retry gets; nothing is rewritten; the metric says so."""
        store = FakeStore()
        store.rows[2] = {"state": "DONE", "msgid": "M", "infno": "2207", "request": "{}", "err": None, "response": b"0"}
        rec = recovery(store)
        rec.abandon(2, told_unknown=True)
        assert await rec.resolve_abandoned() == 0
        assert store.rows[2]["response"] == b"0"
        assert counted(rec, "settled") == 1

    async def test_while_the_database_is_away_the_claim_waits(self):
        store = FakeStore()
        msgid, request = settle_request()
        store.rows[3] = {"state": "PENDING", "msgid": msgid, "infno": "2207", "request": request}
        rec = recovery(store)
        rec.abandon(3, told_unknown=False)
        store.down = True
        assert await rec.resolve_abandoned() == 1
        assert store.rows[3]["state"] == "PENDING"
        store.down = False
        assert await rec.resolve_abandoned() == 0
        assert store.rows[3]["err"] == "CORE_TIMEOUT"
