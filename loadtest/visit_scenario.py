"""The outpatient-visit scenario (SPEC §6.6): one visit at a time per card, 2201 → 2204 → 2206 → 2207 by
reference, each step one planned request at a terminal of the visit's institution. The card stays leased for
the whole visit; a step that is not answered OK ends the visit."""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from loadtest.fleet import Fleet, Site
from loadtest.terminal import Built, SimCard

STEPS = ("2201", "2204", "2206", "2207")
BATCH = "B1"


@dataclass(eq=False)
class VisitRun:
    """One visit in progress: its next step, and what the earlier steps answered."""

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
        return sum(int((Decimal(c) * Decimal(p) * 100).to_integral_value()) for _, c, p in self.lines)

    def build(self, site: Site) -> Built:
        """The request of the visit's next step."""
        t, infno = site.terminal, STEPS[self.step]
        if infno == "2201":
            return t.register(self.card, self.ipt_otp_no, insutype=self.insutype)
        assert self.mdtrt_id is not None
        if infno == "2204":
            return t.upload_fees(self.card.psn_no, self.mdtrt_id, BATCH, self.lines)
        return t.settle_by_reference(infno, self.card, self.mdtrt_id, BATCH, self.total, insutype=self.insutype)


class Visits:
    """Visits waiting for their next step; new ones start when none is waiting."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.waiting: deque[VisitRun] = deque()

    def next(self, lines: list[tuple[str, str, str]]) -> tuple[Site, VisitRun, Built] | None:
        """A terminal, the visit and its next request; None when no terminal or card is free."""
        f = self.fleet
        for _ in range(min(len(self.waiting), 8)):
            v = self.waiting.popleft()
            site = f.lease_site(institution=v.fixmedins_code)
            if site is not None:
                return site, v, v.build(site)
            self.waiting.append(v)  # every terminal of its institution busy: try another visit
        card = f.verified.lease()
        if card is None:
            return None
        site = f.lease_site("hospital")
        if site is None:
            f.verified.release(card)
            return None
        v = VisitRun(site.terminal.fixmedins_code, card, f.insutype(card), lines, "LT" + uuid.uuid4().hex[:20])
        return site, v, v.build(site)

    def answered(self, v: VisitRun, response: dict[str, Any] | None) -> None:
        """Move the visit on after an OK answer; end it (the card is free again) after the last step or any other."""
        ok = response is not None and response.get("infcode") == 0
        if ok and STEPS[v.step] == "2201":
            v.mdtrt_id = ((response or {}).get("output") or {}).get("data", {}).get("mdtrt_id")
        v.step += 1
        if ok and v.mdtrt_id and v.step < len(STEPS):
            self.waiting.append(v)
        else:
            self.fleet.verified.release(v.card)
