"""`onecard reconcile`: an institution's settlements over a date range from the journal (SPEC §6.5 totals),
its open outcomes, and, given the core's URL, the gateway-against-core comparison with every break classified.

The core's side comes through the core port (3202, `InsuranceCore.settlements`); the report is
gateway/reconcile_report.py's (the same as `GET /admin/reconcile`), its comparisons gateway.domain.reconcile's,
the same code 3201/3202 answer with."""

from __future__ import annotations

from datetime import date, tzinfo
from typing import Any

import orjson

from gateway.bootstrap.commands import core_settlements, reconcile_reads
from gateway.bootstrap.exits import DependencyDown
from gateway.domain.errors import CoreRejected, CoreUnavailable
from gateway.domain.money import fen_to_yuan
from gateway.domain.reconcile import CoreRecord
from gateway.reconcile_report import Report, core_dates, reconcile
from gateway.settings import Settings

__all__ = ["Report", "fetch_core_ledger", "reconcile", "render", "run"]


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
        first, last = core_dates(begin, end)
        return await core_settlements(core_url, fixmedins_code, first, last, timeout_s=timeout_s, settings=settings)
    except CoreUnavailable as exc:
        raise DependencyDown(f"the insurance core at {core_url} is unreachable ({exc}): check --core-url") from None
    except CoreRejected as exc:
        raise DependencyDown(
            f"the insurance core at {core_url} refused the settlement download ({exc.reason})"
        ) from None


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
