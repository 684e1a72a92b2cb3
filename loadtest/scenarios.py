"""The scenario mix: what a fleet of terminals sends, and which outcomes each scenario expects.

A scenario plans one request: it leases a terminal and (usually) a card from the fleet, builds the request
with real MACs (loadtest.terminal), and says which `err_code`s are right for it ("OK" for success). The load
tester, the gateway benchmark and the locustfile all plan their requests here, so every one of them sends the
same traffic. Planning is synchronous and does no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from loadtest.fleet import Fleet, Settled, Site
from loadtest.stay_scenario import StayRun
from loadtest.terminal import Built, SimCard
from loadtest.visit_scenario import VisitRun, Visits

# name -> weight. Realistic for a city's weekday: mostly settlements, some lookups, a few refusals.
DEFAULT_MIX: dict[str, int] = {
    "person_info": 15,
    "outpatient_presettle": 10,
    "outpatient_settle": 30,
    "pharmacy_presettle": 5,
    "pharmacy_settle": 20,
    "default_pin_settle": 8,
    "cancel": 5,
    "blacklisted_card": 4,
    "forged_mac": 3,
}
SETTLE_ONLY: dict[str, int] = {"outpatient_settle": 1}
# issue 12: outpatient visits by reference (loadtest.visit_scenario), `--mix outpatient`; not in the default mix
OUTPATIENT_MIX: dict[str, int] = {"outpatient_visit": 1}
# issue 12: inpatient stays (loadtest.stay_scenario), `--mix inpatient`; not in the default mix
INPATIENT_MIX: dict[str, int] = {"inpatient_stay": 1}
KNOWN = (*DEFAULT_MIX, *OUTPATIENT_MIX, *INPATIENT_MIX)

_SETTLES = {"2207", "2102"}
_CANCEL_OF = {"2207": "2208", "2102": "2103"}


@dataclass
class Action:
    """One planned request: send `built.body`, expect one of `expect`, then give back what was leased."""

    scenario: str
    site: Site
    built: Built
    expect: frozenset[str]
    card: SimCard | None = None
    mac2: bool = True  # a MAC2 must come back (MAC1 verifies)
    visit: VisitRun | None = None  # the outpatient visit (or inpatient stay) this request is a step of

    @property
    def infno(self) -> str:
        """The transaction code."""
        return str(self.built.body["infno"])

    @property
    def msgid(self) -> str:
        """The message id."""
        return str(self.built.body["msgid"])


def parse_mix(text: str) -> dict[str, int]:
    """`name=weight,name=weight` (or `default` / `settle` / `outpatient` / `inpatient`) to a mix.

    Raises:
        ValueError: an unknown scenario, a weight that is not a non-negative integer, or all weights zero.
    """
    text = text.strip()
    if text in ("", "default"):
        return dict(DEFAULT_MIX)
    if text == "settle":
        return dict(SETTLE_ONLY)
    if text == "outpatient":
        return dict(OUTPATIENT_MIX)
    if text == "inpatient":
        return dict(INPATIENT_MIX)
    mix: dict[str, int] = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if name not in KNOWN:
            raise ValueError(f"--mix: unknown scenario {name!r}; known: {', '.join(KNOWN)}")
        if not sep or not weight.strip().isdigit():
            raise ValueError(f"--mix: {name} needs a whole-number weight, as in {name}=10")
        mix[name] = int(weight)
    if not any(mix.values()):
        raise ValueError("--mix: every weight is zero")
    return mix


class Planner:
    """Draws scenarios by weight and plans them against a fleet."""

    def __init__(self, fleet: Fleet, world: dict[str, Any], mix: Mapping[str, int], *, seed: int = 1) -> None:
        self.fleet = fleet
        self.visits = Visits(fleet, VisitRun)
        self.stays = Visits(fleet, StayRun)
        self.rng = random.Random(seed)
        self.names = [n for n, w in mix.items() if w > 0]
        self.weights = [mix[n] for n in self.names]
        cheap = [
            i
            for i in world["catalogue"]
            if not i.get("price_cap") and not i.get("b_selfpay") and Decimal("1") <= Decimal(i["price"]) <= 80
        ]
        self.services = [i for i in cheap if i.get("kind") != "drug"] or cheap
        self.drugs = [i for i in cheap if i.get("kind") == "drug"] or cheap
        if not cheap:
            raise ValueError("the world's catalogue has no plain items priced 1..80 yuan")

    def draw(self) -> str:
        """The next scenario name, by weight."""
        return self.rng.choices(self.names, self.weights)[0]

    def plan(self, scenario: str) -> Action | None:
        """Lease what `scenario` needs and build its request; None when nothing is free right now."""
        build: Callable[[], Action | None] = getattr(self, "_" + scenario)
        return build()

    def worth_waiting(self, scenario: str) -> bool:
        """Whether waiting can make `scenario` plannable (False for a cancel while nothing is settled)."""
        return scenario != "cancel" or bool(self.fleet.settled)

    def release(self, action: Action, response: dict[str, Any] | None) -> None:
        """Give back the terminal and card; remember a successful settlement for a later cancel."""
        f = self.fleet
        f.release_site(action.site)
        if action.visit is not None:
            if isinstance(action.visit, StayRun):
                self.stays.answered(action.visit, response)
            else:
                self.visits.answered(action.visit, response)
            return
        if action.card is not None:
            pool = {"default_pin_settle": f.default_pin, "blacklisted_card": f.blacklisted}.get(
                action.scenario, f.verified
            )
            pool.release(action.card)
        if response is None or response.get("infcode") != 0 or action.infno not in _SETTLES:
            return
        setl = (response.get("output") or {}).get("setlinfo") or {}
        if setl.get("setl_id"):
            f.settled.append(
                Settled(action.site.terminal.fixmedins_code, action.infno, setl["setl_id"], setl["psn_no"])
            )

    # scenarios ----------------------------------------------------------------------------------------------
    def _with_card(self, kind: str | None, pool_name: str) -> tuple[Site, SimCard] | None:
        pool = getattr(self.fleet, pool_name)
        card = pool.lease()
        if card is None:
            return None
        site = self.fleet.lease_site(kind)
        if site is None:
            pool.release(card)
            return None
        return site, card

    def _lines(self, drugs: bool) -> list[tuple[str, str, str]]:
        items = self.drugs if drugs else self.services
        picked = self.rng.sample(items, k=min(len(items), self.rng.randint(1, 3)))
        return [(i["med_list_codg"], str(self.rng.randint(1, 3)), i["price"]) for i in picked]

    def _settle(self, scenario: str, kind: str, infno: str, pool: str, pin: str, expect: set[str]) -> Action | None:
        got = self._with_card(kind, pool)
        if got is None:
            return None
        site, card = got
        built = site.terminal.settle(
            infno, card, self._lines(kind == "pharmacy"), pin=pin, insutype=self.fleet.insutype(card)
        )
        return Action(scenario, site, built, frozenset(expect), card)

    def _person_info(self) -> Action | None:
        got = self._with_card(None, "verified")
        if got is None:
            return None
        site, card = got
        return Action("person_info", site, site.terminal.person_info(card), frozenset({"OK"}), card)

    def _outpatient_presettle(self) -> Action | None:
        return self._settle("outpatient_presettle", "hospital", "2206", "verified", "VERIFIED", {"OK"})

    def _outpatient_settle(self) -> Action | None:
        return self._settle("outpatient_settle", "hospital", "2207", "verified", "VERIFIED", {"OK"})

    def _pharmacy_presettle(self) -> Action | None:
        return self._settle("pharmacy_presettle", "pharmacy", "2101", "verified", "VERIFIED", {"OK"})

    def _pharmacy_settle(self) -> Action | None:
        return self._settle("pharmacy_settle", "pharmacy", "2102", "verified", "VERIFIED", {"OK"})

    def _default_pin_settle(self) -> Action | None:
        # Default-PIN caps (SPEC §7) may refuse a card that already used its daily count: that is right too.
        return self._settle(
            "default_pin_settle", "pharmacy", "2102", "default_pin", "DEFAULT", {"OK", "DEFAULT_PIN_LIMIT"}
        )

    def _cancel(self) -> Action | None:
        settled = self.fleet.settled
        for _ in range(min(len(settled), 8)):
            s = settled.popleft()
            site = self.fleet.lease_site(institution=s.fixmedins_code)
            if site is None:  # every terminal of that institution is busy: try another settlement
                settled.append(s)
                continue
            built = site.terminal.cancel(_CANCEL_OF[s.infno], s.setl_id, s.psn_no)
            return Action("cancel", site, built, frozenset({"OK"}))
        return None

    def _outpatient_visit(self) -> Action | None:
        got = self.visits.next(self._lines(False))
        if got is None:
            return None
        site, v, built = got
        return Action("outpatient_visit", site, built, frozenset({"OK"}), visit=v)

    def _inpatient_stay(self) -> Action | None:
        got = self.stays.next(self._lines(False))
        if got is None:
            return None
        site, s, built = got
        return Action("inpatient_stay", site, built, frozenset({"OK"}), visit=s)

    def _blacklisted_card(self) -> Action | None:
        got = self._with_card(None, "blacklisted")
        if got is None:
            return None
        site, card = got
        built = site.terminal.person_info(card)
        return Action("blacklisted_card", site, built, frozenset({"CARD_BLACKLISTED"}), card)

    def _forged_mac(self) -> Action | None:
        got = self._with_card(None, "verified")
        if got is None:
            return None
        site, card = got
        built = site.terminal.person_info(card)
        safe = built.body["dev_safe_info"]
        safe["mac"] = safe["mac"][:-1] + ("0" if safe["mac"][-1] != "0" else "1")
        return Action("forged_mac", site, built, frozenset({"MAC_INVALID"}), card, mac2=False)
