"""A gateway over fakes of our own ports, with a movable clock: no servers. Requests are built by the load
tester's terminal, so the MACs are real."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
import pytest

from gateway.domain.core import PersonRecord
from gateway.domain.registry import Card, Institution, Psam
from gateway.pipeline.context import Deps
from gateway.pipeline.service import Gateway
from loadtest.terminal import Built, SimCard, Terminal
from tests.fakes.core import InMemoryCore
from tests.fakes.store import InMemoryStore
from tests.fakes.world import SHANGHAI, CountingMetrics, DictLookup, FakeClock, make_deps

CODE, NAME, PSAM = "H33020000001", "测试医院", "330200000001"
CARD_SN, CARD_NO, PSN = "330200D15600000500000000000000AB", "A12345678", "33020000000000000001"
DRUG = ("XJ01CAA001A001198629941", "2", "8.60")  # class A, 17.20 yuan


@dataclass
class World:
    """A signed-in terminal at one level-2 hospital, one card and its person, all behind fakes."""

    clock: FakeClock
    deps: Deps
    gateway: Gateway
    terminal: Terminal
    card: SimCard

    @property
    def store(self) -> InMemoryStore:
        assert isinstance(self.deps.journal, InMemoryStore)
        return self.deps.journal

    @property
    def core(self) -> InMemoryCore:
        assert isinstance(self.deps.core, InMemoryCore)
        return self.deps.core

    @property
    def metrics(self) -> CountingMetrics:
        assert isinstance(self.deps.metrics, CountingMetrics)
        return self.deps.metrics

    @property
    def lookup(self) -> DictLookup:
        assert isinstance(self.deps.lists, DictLookup)
        return self.deps.lists

    async def send(self, b: Built) -> dict[str, Any]:
        """Run a request through the pipeline; the decoded response envelope."""
        reply, _core_s = await self.gateway.handle(orjson.dumps(b.body))
        out: dict[str, Any] = orjson.loads(reply.body)
        return out

    def build(self, infno: str, inp: dict[str, Any], **kw: Any) -> Built:
        return self.terminal.build(infno, inp, now=self.clock.now(), **kw)

    def settle(self, infno: str = "2207", *lines: tuple[str, str, str], pin: str = "VERIFIED") -> Built:
        return self.terminal.settle(infno, self.card, list(lines or [DRUG]), pin=pin, now=self.clock.now())

    def entitlement(self, med_type: str = "11", insutype: str = "310") -> Built:
        data = {
            "psn_no": self.card.psn_no, "insutype": insutype, "med_type": med_type,
            "begntime": f"{self.clock.now():%Y-%m-%d %H:%M:%S}", "mdtrt_cert_type": "03",
            "mdtrt_cert_no": self.card.card_no, "card_sn": self.card.card_sn,
        }  # fmt: skip
        return self.build("2001", {"data": data}, card=self.card)

    async def signed_in(self) -> World:
        r = await self.send(self.terminal.sign_in(now=self.clock.now()))
        assert r["infcode"] == 0, r
        self.terminal.sign_no = r["output"]["signinoutb"]["sign_no"]
        return self


def person(**over: Any) -> PersonRecord:
    base: dict[str, Any] = {
        "psn_no": PSN, "certno": "330203199001011234", "psn_name": "张三", "gend": "1", "brdy": "1990-01-01",
        "insutype": "310", "psn_type": "11", "insuplc_admdvs": "330200", "balance": 100_000,
        "inscp_ytd": 0, "fund_paid_ytd": 0, "version": 1,
    }  # fmt: skip
    base.update(over)
    return PersonRecord(**base)


@pytest.fixture
async def world() -> World:
    """A fresh world per test (nothing shared, nothing to clean up)."""
    clock = FakeClock(datetime(2026, 12, 1, 10, 0, 0, tzinfo=SHANGHAI))
    deps = make_deps(clock)
    store = deps.journal
    assert isinstance(store, InMemoryStore)
    store.institutions[CODE] = Institution(CODE, NAME, "HOSPITAL", 2, "330200")
    store.psams[PSAM] = Psam(PSAM, CODE, "ACTIVE")
    store.cards[CARD_SN] = Card(CARD_SN, CARD_NO, PSN, "PIN", "ACTIVE", "3DES", 1, date(2020, 1, 1), date(2030, 1, 1))
    assert isinstance(deps.core, InMemoryCore)
    deps.core.persons[PSN] = person()
    card = SimCard(CARD_SN, CARD_NO, PSN)
    w = World(clock, deps, Gateway(deps), Terminal(CODE, NAME, PSAM), card)
    return await w.signed_in()
