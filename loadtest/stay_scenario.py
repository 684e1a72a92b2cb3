"""The inpatient-stay scenario (SPEC §6.7), a run of `loadtest.visit_scenario`: 2401 admission → 2301 (a day's
lines) → 2402 discharge → 2303 pre-settle → 2304 final settlement, each step one planned request at a terminal
of the stay's institution, the card leased for the whole stay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from loadtest.fleet import Site
from loadtest.terminal import Built
from loadtest.visit_scenario import VisitRun

STAY_STEPS = ("2401", "2301", "2402", "2303", "2304")


@dataclass(eq=False)
class StayRun(VisitRun):
    """One stay in progress (`ipt_otp_no` is its ipt_no)."""

    STEPS: ClassVar[tuple[str, ...]] = STAY_STEPS

    def build(self, site: Site) -> Built:
        """The request of the stay's next step."""
        t, infno = site.terminal, STAY_STEPS[self.step]
        if infno == "2401":
            return t.admit(self.card, self.ipt_otp_no, insutype=self.insutype)
        assert self.mdtrt_id is not None
        if infno == "2301":
            return t.upload_stay_fees(self.card.psn_no, self.mdtrt_id, list(self.lines))
        if infno == "2402":
            return t.discharge(self.card.psn_no, self.mdtrt_id, insutype=self.insutype)
        return t.settle_stay(infno, self.card, self.mdtrt_id, self.total, insutype=self.insutype)

    def opened(self, output: dict[str, Any]) -> str | None:
        """2401 answers output.result.mdtrt_id."""
        return (output.get("result") or {}).get("mdtrt_id")
