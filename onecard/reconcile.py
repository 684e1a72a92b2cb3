"""`onecard reconcile`: an institution's settlements over a date range from the journal (SPEC §6.5 totals),
its open outcomes, and, given the core's URL, the gateway-against-core comparison with every break classified.

The core's side comes through the core port (3202, `InsuranceCore.settlements`); the comparisons are
gateway.domain.reconcile's, the same code 3201/3202 answer with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

import orjson

from gateway.bootstrap.commands import core_settlements, reconcile_reads
from gateway.bootstrap.exits import DependencyDown
from gateway.domain.errors import CoreRejected, CoreUnavailable
from gateway.domain.money import fen_to_yuan
from gateway.domain.reconcile import CoreRecord, core_breaks, core_totals, open_breaks, totals
from gateway.ports.reconcile import ReconcileReads
from gateway.settings import Settings

_DAY = timedelta(days=1)


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


async def fetch_core_ledger(
    core_url: str,
    fixmedins_code: str,
    begin: date,
    end: date,
    timeout_s: float = 30.0,
    *,
    settings: Settings | None = None,
) -> list[CoreRecord]:
    """The core's settlements of the institution around local dates begin..end, through the core port.

    A day either side, so that `reconcile` still sees a settlement of ours whose core setl_time is a date off.

    Raises:
        DependencyDown: the core did not answer, or refused the download.
    """
    try:
        return await core_settlements(
            core_url, fixmedins_code, begin - _DAY, end + _DAY, timeout_s=timeout_s, settings=settings
        )
    except CoreUnavailable as exc:
        raise DependencyDown(f"the insurance core at {core_url} is unreachable ({exc}): check --core-url") from None
    except CoreRejected as exc:
        raise DependencyDown(
            f"the insurance core at {core_url} refused the settlement download ({exc.reason})"
        ) from None


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


def render(r: Report) -> str:
    """The report as an operator reads it."""
    out = [f"reconcile {r.institution} {r.begin.isoformat()}..{r.end.isoformat()}"]
    out.append(f"{'':10}{'count':>8}{'medfee':>16}{'fund':>16}{'acct':>16}")
    for name, t in (("gateway", r.gateway), ("core", r.core)):
        if t is not None:
            out.append(
                f"{name:10}{t['fixmedins_setl_cnt']:>8}{fen_to_yuan(t['medfee_sumamt']):>16}"
                f"{fen_to_yuan(t['fund_pay_sumamt']):>16}{fen_to_yuan(t['acct_pay']):>16}"
            )
    out.append(f"unknown outcomes: {r.gateway['unknown_cnt']}")
    out.extend(f"  open {o['state']:10} {o['msgid']} setl_id={o['setl_id']} reversal={o['reversal']}" for o in r.open)
    if r.core is None:
        out.append("core: not compared (no --core-url)")
    if not r.breaks:
        out.append("balanced")
        return "\n".join(out)
    out.append(f"NOT BALANCED: {len(r.breaks)} break(s)")
    out.extend(
        f"  {b['kind']:20} {b['msgid']} setl_id={b['setl_id']} gateway={_side(b['gateway'])} core={_side(b['core'])}"
        for b in r.breaks
    )
    return "\n".join(out)


def _side(v: dict[str, Any] | None) -> str:
    if v is None:
        return "-"
    return f"{v['state']}/{v['medfee_sumamt']:.2f}/{v['fund_pay_sumamt']:.2f}/{v['acct_pay']:.2f}"


async def run(settings: Settings, fixmedins_code: str, begin: date, end: date, *, tz: tzinfo,
              core: list[CoreRecord] | None, as_json: bool) -> int:  # fmt: skip
    """The command: print the report (against the core's ledger when given); 0 balanced, 1 breaks."""
    async with reconcile_reads(settings) as journal:
        report = await reconcile(journal, fixmedins_code, begin, end, tz=tz, core=core)
    if as_json:
        print(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(report))
    return 0 if report.balanced else 1
