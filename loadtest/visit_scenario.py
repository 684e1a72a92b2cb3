"""The outpatient-visit scenario (SPEC §6.6): one visit at a time per card, 2201 → 2204 → 2206 → 2207 by
reference, each step one planned request at a terminal of the visit's institution. The card stays leased for
the whole visit; a step that is not answered OK ends the visit. `Visits` moves any such run of steps on."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

from loadtest.fleet import Fleet, Site
from loadtest.terminal import Built, SimCard

STEPS = ("2201", "2204", "2206", "2207")
BATCH = "B1"


def lines_fen(lines: list[tuple[str, str, str]]) -> int:
    """The lines' sum in fen, as 2204/2301 store it."""
    return sum(int((Decimal(c) * Decimal(p) * 100).to_integral_value()) for _, c, p in lines)


@dataclass(eq=False)
class VisitRun:
    """One visit in progress: its next step, and what the earlier steps answered."""

    STEPS: ClassVar[tuple[str, ...]] = STEPS
    fixmedins_code: str
    card: SimCard
    insutype: str
    lines: list[tuple[str, str, str]]
    ipt_otp_no: str
    step: int = 0
    mdtrt_id: str | None = None

    @property
    def total(self) -> int:
        """The batch's sum in fen, as 2204 stores it."""
        return lines_fen(self.lines)

    def build(self, site: Site) -> Built:
        """The request of the visit's next step."""
        t, infno = site.terminal, STEPS[self.step]
        if infno == "2201":
            return t.register(self.card, self.ipt_otp_no, insutype=self.insutype)
        assert self.mdtrt_id is not None
        if infno == "2204":
            return t.upload_fees(self.card.psn_no, self.mdtrt_id, BATCH, self.lines)
        return t.settle_by_reference(infno, self.card, self.mdtrt_id, BATCH, self.total, insutype=self.insutype)

    def opened(self, output: dict[str, Any]) -> str | None:
        """The mdtrt_id the first step's answer opened (2201: output.data)."""
        return (output.get("data") or {}).get("mdtrt_id")

    def advance(self, response: dict[str, Any] | None) -> bool:
        """Take the answer of the current step; True when another step is due."""
        ok = response is not None and response.get("infcode") == 0
        if ok and self.step == 0:
            self.mdtrt_id = self.opened((response or {}).get("output") or {})
        self.step += 1
        return ok and bool(self.mdtrt_id) and self.step < len(self.STEPS)


R = TypeVar("R", bound=VisitRun)


class Visits(Generic[R]):
    """Runs (visits, or stays) waiting for their next step; new ones start when none is waiting."""

    def __init__(self, fleet: Fleet, make: Callable[..., R]) -> None:
        self.fleet = fleet
        self.make = make
        self.waiting: deque[R] = deque()

    def next(self, lines: list[tuple[str, str, str]]) -> tuple[Site, R, Built] | None:
        """A terminal, the run and its next request; None when no terminal or card is free."""
        f = self.fleet
        for _ in range(min(len(self.waiting), 8)):
            v = self.waiting.popleft()
            site = f.lease_site(institution=v.fixmedins_code)
            if site is not None:
                return site, v, v.build(site)
            self.waiting.append(v)  # every terminal of its institution busy: try another run
        card = f.verified.lease()
        if card is None:
            return None
        site = f.lease_site("hospital")
        if site is None:
            f.verified.release(card)
            return None
        v = self.make(site.terminal.fixmedins_code, card, f.insutype(card), lines, "LT" + uuid.uuid4().hex[:20])
        return site, v, v.build(site)

    def answered(self, v: R, response: dict[str, Any] | None) -> None:
        """Move the run on after an OK answer; end it (the card is free again) after the last step or any other."""
        if v.advance(response):
            self.waiting.append(v)
        else:
            self.fleet.verified.release(v.card)
