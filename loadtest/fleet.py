"""The simulated fleet of a seed world: every active PSAM as a terminal, every card in a pool.

A terminal (one PSAM, shared by `set_windows` windows) has at most that many requests in flight, and a card
is in one request at a time (a card's ATC must rise in the
order the gateway sees it), so both are leased for the length of one request. Terminals of one institution
share its msgid sequence. Counters can be saved and loaded (`state`), so runs against the same long-lived
gateway continue where the last one stopped instead of being refused as replays.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from gateway.domain.keys import DEV_KEYS, KeyId
from loadtest.terminal import SHANGHAI, SimCard, Terminal


@dataclass
class Site:
    """One terminal (one PSAM) of an institution."""

    terminal: Terminal
    kind: str  # "hospital" or "pharmacy"
    in_flight: int = 0
    capacity: int = 1  # windows sharing this PSAM: requests it may have in flight at once

    @property
    def busy(self) -> bool:
        """No free window."""
        return self.in_flight >= self.capacity


@dataclass(frozen=True, slots=True)
class Settled:
    """A settlement this fleet made, which a later cancel may undo (from a terminal of the same institution)."""

    fixmedins_code: str
    infno: str
    setl_id: str
    psn_no: str


@dataclass
class Pool:
    """Cards free to use, first come first served."""

    free: deque[SimCard] = field(default_factory=deque)

    def lease(self) -> SimCard | None:
        """A free card, or None when every card of the pool is in a request."""
        return self.free.popleft() if self.free else None

    def release(self, card: SimCard) -> None:
        """The card's request is answered: it may be used again."""
        self.free.append(card)

    def __len__(self) -> int:
        return len(self.free)


class Fleet:
    """Terminals and cards of a world, leased per request."""

    def __init__(self, world: dict[str, Any], *, seed: int = 1, keys: dict[KeyId, bytes] | None = None) -> None:
        rng = random.Random(seed)
        today = date.today().isoformat()  # noqa: DTZ011 - card validity is a calendar date, as the gateway sees it
        self.persons = {p["psn_no"]: p for p in world["persons"]}
        self.sites: dict[str, deque[Site]] = {"hospital": deque(), "pharmacy": deque()}
        self.by_institution: dict[str, list[Site]] = {}
        for inst in world["institutions"]:
            seq = itertools.count(rng.randrange(10_000))
            mine: list[Site] = []
            for psam in inst["psams"]:
                if psam["status"] != "ACTIVE":
                    continue
                t = Terminal(
                    inst["fixmedins_code"],
                    inst["fixmedins_name"],
                    psam["psam_no"],
                    keys=keys or DEV_KEYS,
                    tz=SHANGHAI,
                    msg_seq=seq,
                )
                site = Site(t, inst["kind"])
                self.sites[inst["kind"]].append(site)
                mine.append(site)
            self.by_institution[inst["fixmedins_code"]] = mine
        self.all_sites = [s for kind in self.sites.values() for s in kind]
        self.sites["any"] = deque(random.Random(seed).sample(self.all_sites, len(self.all_sites)))
        self.cards: dict[str, SimCard] = {}
        self.verified = Pool()  # usable cards of entitled persons: PIN-verified settlement, person info
        self.default_pin = Pool()  # usable DEFAULT-mode cards of persons with an account balance
        self.blacklisted = Pool()  # cards on the blacklist (lost, locked, replaced, ...)
        usable: list[SimCard] = []
        default: list[SimCard] = []
        black: list[SimCard] = []
        for c in world["cards"]:
            card = SimCard.from_world(c)
            self.cards[card.card_sn] = card
            person = self.persons[c["psn_no"]]
            if c["status"] != "ACTIVE":
                black.append(card)
            elif person["status"] == "ACTIVE" and c["valid_from"] <= today <= c["valid_until"]:
                usable.append(card)
                if c["pin_mode"] == "DEFAULT" and Decimal(person["balance"]) > 0:
                    default.append(card)
        # A card is in one pool only, so two requests never hold it at once.
        default_set = {c.card_sn for c in default[: len(default) // 3]}
        for pool, cards in (
            (self.verified, [c for c in usable if c.card_sn not in default_set]),
            (self.default_pin, [c for c in default if c.card_sn in default_set]),
            (self.blacklisted, black),
        ):
            rng.shuffle(cards)
            pool.free.extend(cards)
        self.settled: deque[Settled] = deque(maxlen=100_000)

    def insutype(self, card: SimCard) -> str:
        """The card holder's insurance type (the request must name it)."""
        return str(self.persons[card.psn_no]["insutype"])

    def lease_site(self, kind: str | None = None, institution: str | None = None) -> Site | None:
        """An idle terminal of that kind (any kind when None) or of that institution; None when all are busy."""
        if institution is not None:
            site = next((x for x in self.by_institution.get(institution, ()) if not x.busy), None)
        else:
            q = self.sites[kind or "any"]
            site = None
            for _ in range(len(q)):  # round robin over the kind's terminals, skipping busy ones
                x = q[0]
                q.rotate(-1)
                if not x.busy:
                    site = x
                    break
        if site is not None:
            site.in_flight += 1
        return site

    @staticmethod
    def release_site(site: Site) -> None:
        """The terminal's request is answered."""
        site.in_flight -= 1

    def set_windows(self, per_psam: int, in_flight: int = 0) -> None:
        """Let `per_psam` windows share each PSAM (a tseq is still used once: the PSAM numbers them all).
        With `per_psam` 0, size them so that each kind of institution alone could hold `in_flight` requests."""
        for kind in ("hospital", "pharmacy"):
            sites = self.sites[kind]
            auto = max(2, -(-in_flight * 3 // (2 * max(1, len(sites)))))
            for site in sites:
                site.capacity = per_psam or auto

    # counters across runs ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Card ATCs and PSAM tseqs, to continue from in a later run against the same gateway."""
        return {
            "format": 1,
            "atc": {sn: c.atc for sn, c in self.cards.items() if c.atc},
            "tseq": {s.terminal.psam_no: s.terminal.tseq for s in self.all_sites if s.terminal.tseq},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from `state()` of an earlier run.

        Raises:
            ValueError: the state is not one this version wrote.
        """
        if not isinstance(state, dict) or state.get("format") != 1:
            raise ValueError("state file: not a onecard loadtest state (format 1)")
        for sn, atc in dict(state.get("atc", {})).items():
            if sn in self.cards:
                self.cards[sn].atc = int(atc)
        by_psam = {s.terminal.psam_no: s.terminal for s in self.all_sites}
        for psam_no, tseq in dict(state.get("tseq", {})).items():
            if psam_no in by_psam:
                by_psam[psam_no].tseq = int(tseq)
