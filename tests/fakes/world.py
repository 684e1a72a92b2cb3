"""The small things every pipeline test needs: a movable clock, a metrics sink that counts, blacklist
lookups, a node id, and `make_deps` wiring them with `InMemoryStore` and `InMemoryCore`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from gateway.domain.keys import DEV_KEYS, CardKeyCache, MasterKeys
from gateway.pipeline.context import Deps
from gateway.ports import BlacklistCache, Clock, ListLookup, MetricsSink
from gateway.settings import Settings
from rules.catalogue import Catalogue
from rules.policy import PolicyBook
from tests.fakes.core import InMemoryCore
from tests.fakes.stays import InMemoryStays
from tests.fakes.store import InMemoryStore
from tests.fakes.visits import InMemoryVisits

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class FakeClock:
    """A clock that stands still until a test moves it."""

    at: datetime
    tz: tzinfo = SHANGHAI

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass
class CountingMetrics:
    """Counts what the pipeline reports, by name and first argument."""

    counts: Counter[str] = field(default_factory=Counter)
    states: dict[str, int] = field(default_factory=dict)

    def request(self, infno: str, code: str, total_s: float, own_s: float) -> None:
        self.counts[f"request:{infno}:{code}"] += 1

    def core_call(self, op: str, seconds: float) -> None:
        self.counts[f"core:{op}"] += 1

    def reversal_queued(self) -> None:
        self.counts["reversal_queued"] += 1

    def reversal_states(self, counts: Mapping[str, int]) -> None:
        self.states = dict(counts)

    def blacklist_lookup(self, where: str) -> None:
        self.counts[f"lookup:{where}"] += 1

    def blacklist_unloaded(self) -> None:
        self.counts["unloaded"] += 1

    def rate_limited(self, scope: str) -> None:
        self.counts[f"rate_limited:{scope}"] += 1

    def claim_recovered(self) -> None:
        self.counts["recovered"] += 1

    def claim_abandoned(self, outcome: str) -> None:
        self.counts[f"abandoned:{outcome}"] += 1


@dataclass
class UnsureCache:
    """An in-process blacklist that can prove nothing clear (every key goes to the lookup)."""

    def card_clear(self, card_sn: str) -> bool:
        return False

    def person_clear(self, psn_no: str) -> bool:
        return False


@dataclass
class DictLookup:
    """Redis's answer from dicts; `loaded = False` answers "not loaded" (None)."""

    cards: dict[str, str] = field(default_factory=dict)
    persons: dict[str, str] = field(default_factory=dict)
    loaded: bool = True

    async def reasons(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str] | None:
        if not self.loaded:
            return None
        return self.cards.get(card_sn or "", ""), self.persons.get(psn_no or "", "")


@dataclass
class FixedNode:
    """A node id that is always held."""

    node_id: int | None = 1
    lapsed: bool = False


def reference() -> tuple[PolicyBook, Catalogue]:
    """The shipped demo policy and catalogue (pure data)."""
    import json

    policy = (resources.files("rules") / "data" / "policy.toml").read_text(encoding="utf-8")
    records = json.loads((resources.files("rules") / "data" / "catalogue.json").read_text(encoding="utf-8"))
    return PolicyBook.from_toml(policy), Catalogue.from_records(records)


def make_deps(clock: FakeClock, **over: Any) -> Deps:
    """Deps over fakes; any collaborator can be replaced by keyword."""
    policies, catalogue = reference()
    store = over.pop("store", None) or InMemoryStore(clock)
    visits = InMemoryVisits(store)
    parts: dict[str, Any] = {
        "settings": Settings(dev_mode=True),
        "clock": clock,
        "registry": store,
        "journal": store,
        "settlements": store,
        "reversals": store,
        "lists_of_record": store,
        "lists": DictLookup(),
        "blacklist": UnsureCache(),
        "core": InMemoryCore(),
        "keys": CardKeyCache(MasterKeys(dict(DEV_KEYS))),
        "policies": policies,
        "catalogue": catalogue,
        "metrics": CountingMetrics(),
        "node": FixedNode(),
        "visits": visits,  # issue 12
        "stays": InMemoryStays(visits),  # issue 12, inpatient
    }
    parts.update(over)
    return Deps(**parts)


_c: Clock = FakeClock(datetime.now(SHANGHAI))
_m: MetricsSink = CountingMetrics()
_b: BlacklistCache = UnsureCache()
_l: ListLookup = DictLookup()
