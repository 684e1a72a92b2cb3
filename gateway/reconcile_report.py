"""An institution's reconciliation report over local dates (issue 11 item 5; `onecard reconcile` and
`GET /admin/reconcile`): the journal's SPEC §6.5 totals, its open outcomes and, given the core's ledger, every
break against it classified. Reads through the `ReconcileReads` port; the comparisons are gateway.domain.reconcile's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from gateway.domain.money import fen_to_yuan
from gateway.domain.reconcile import CoreRecord, core_breaks, core_totals, open_breaks, totals
from gateway.ports.reconcile import ReconcileReads

CORE_MARGIN = timedelta(days=1)  # the core's ledger is read a day either side: a setl_time a date off still matches


def core_dates(begin: date, end: date) -> tuple[date, date]:
    """The dates of the core's ledger to read for a report of begin..end."""
    return begin - CORE_MARGIN, end + CORE_MARGIN


@dataclass(frozen=True, slots=True)
class Report:
    """One institution and date range: gateway totals (fen), open outcomes, core totals and the breaks."""

    institution: str
    begin: date
    end: date
    gateway: dict[str, int]
    open: list[dict[str, Any]]
    core: dict[str, int] | None = None
    breaks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """No break of any kind."""
        return not self.breaks

    def to_json(self) -> dict[str, Any]:
        """The report for --json (amounts as yuan strings, exact)."""
        return {
            "institution": self.institution,
            "from": self.begin.isoformat(),
            "to": self.end.isoformat(),
            "balanced": self.balanced,
            "gateway": _yuan_totals(self.gateway),
            "open": self.open,
            "core": None if self.core is None else _yuan_totals(self.core),
            "breaks": self.breaks,
        }


def _yuan_totals(t: dict[str, int]) -> dict[str, Any]:
    return {k: (v if k.endswith("_cnt") else str(fen_to_yuan(v))) for k, v in t.items()}


async def reconcile(
    journal: ReconcileReads,
    fixmedins_code: str,
    begin: date,
    end: date,
    *,
    tz: tzinfo,
    core: list[CoreRecord] | None = None,
) -> Report:
    """Reconcile local dates begin..end (inclusive, in `tz`); against the core when its ledger is given
    (`fetch_core_ledger`; its records outside the dates count only for msgids the journal has in them)."""
    lo = datetime.combine(begin, time(0), tz)
    hi = datetime.combine(end + timedelta(days=1), time(0), tz)
    rows = await journal.settlements(fixmedins_code, lo, hi)
    omsgids = {s.msgid for s in rows} | {s.cancel_msgid for s in rows if s.cancel_msgid}
    reversals = await journal.reversal_states(fixmedins_code, omsgids)
    gw = totals(rows) | {"unknown_cnt": sum(1 for s in rows if s.state == "UNKNOWN")}
    opened = [
        {"msgid": s.msgid, "setl_id": s.setl_id, "state": s.state,
         "reversal": reversals.get(s.cancel_msgid if s.state == "CANCELLING" and s.cancel_msgid else s.msgid)}
        for s in rows if s.state in ("UNKNOWN", "CANCELLING")
    ]  # fmt: skip
    if core is None:
        return Report(fixmedins_code, begin, end, gw, opened, None, open_breaks(rows, reversals))
    ours = {s.msgid for s in rows}
    first, last = begin.isoformat(), end.isoformat()
    theirs = [
        c for c in core
        if c.fixmedins_code == fixmedins_code and (first <= c.setl_time[:10] <= last or c.msgid in ours)
    ]  # fmt: skip
    return Report(fixmedins_code, begin, end, gw, opened, core_totals(theirs), core_breaks(rows, theirs, reversals))
