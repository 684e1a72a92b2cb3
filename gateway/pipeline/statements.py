"""3201 totals and 3202 detail reconciliation of an institution against the journal (SPEC §6.5)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from gateway.domain.inputs import StatementInput
from gateway.domain.money import fen_to_wire
from gateway.domain.registry import Settlement
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.reply import Outcome

_LIVE = frozenset({"POSTED", "CANCELLING"})


def _totals(rows: list[Settlement]) -> dict[str, int]:
    live = [s for s in rows if s.state in _LIVE]
    return {
        "medfee_sumamt": sum(s.medfee_sumamt for s in live),
        "fund_pay_sumamt": sum(s.fund_pay_sumamt for s in live),
        "acct_pay": sum(s.acct_pay for s in live),
        "fixmedins_setl_cnt": len(live),
    }


def _breaks(rows: list[Settlement], inp: StatementInput) -> list[dict[str, Any]]:
    assert inp.details is not None
    ours = {s.msgid: s for s in rows if s.state != "UNKNOWN"}
    out: list[dict[str, Any]] = []

    def view(s: Settlement) -> dict[str, Any]:
        return {
            "setl_id": s.setl_id,
            "state": s.state,
            "medfee_sumamt": fen_to_wire(s.medfee_sumamt),
            "fund_pay_sumamt": fen_to_wire(s.fund_pay_sumamt),
            "acct_pay": fen_to_wire(s.acct_pay),
        }

    seen = set()
    for d in inp.details:
        seen.add(d.msgid)
        theirs = {
            "setl_id": d.setl_id,
            "refunded": d.refunded,
            "medfee_sumamt": fen_to_wire(d.medfee_sumamt),
            "fund_pay_sumamt": fen_to_wire(d.fund_pay_sumamt),
            "acct_pay": fen_to_wire(d.acct_pay),
        }
        s = ours.get(d.msgid)
        kind = None
        if s is None or s.state == "REVERSED":
            kind = "MISSING_AT_GATEWAY" if not d.refunded else None
        elif (s.medfee_sumamt, s.fund_pay_sumamt, s.acct_pay) != (d.medfee_sumamt, d.fund_pay_sumamt, d.acct_pay):
            kind = "AMOUNT_MISMATCH"
        elif (s.state not in _LIVE) != d.refunded:
            kind = "STATE_MISMATCH"
        if kind:
            out.append(
                {
                    "msgid": d.msgid,
                    "setl_id": d.setl_id or (s.setl_id if s else None),
                    "kind": kind,
                    "gateway": view(s) if s else None,
                    "institution": theirs,
                }
            )
    for msgid, s in ours.items():
        if msgid not in seen and s.state in _LIVE:
            out.append(
                {
                    "msgid": msgid,
                    "setl_id": s.setl_id,
                    "kind": "MISSING_AT_INSTITUTION",
                    "gateway": view(s),
                    "institution": None,
                }
            )
    return out


async def statement(d: Deps, txn: Txn, inp: StatementInput) -> Outcome:
    """Compare the institution's counts with the journal's for the date range (local dates, inclusive)."""
    env = txn.env
    assert env is not None
    begin = datetime.combine(inp.begin, time(0), d.tz)
    end = datetime.combine(inp.end + timedelta(days=1), time(0), d.tz)
    rows = await d.store.settlements_between(env.fixmedins_code, begin, end)
    ours = _totals(rows)
    theirs = {
        "medfee_sumamt": inp.medfee_sumamt,
        "fund_pay_sumamt": inp.fund_pay_sumamt,
        "acct_pay": inp.acct_pay,
        "fixmedins_setl_cnt": inp.setl_cnt,
    }
    balanced = ours == theirs
    info: dict[str, Any] = {
        "stmt_rslt": "0" if balanced else "1",
        "setl_optins": inp.setl_optins,
        "stmt_begndate": inp.begin.isoformat(),
        "stmt_enddate": inp.end.isoformat(),
        "medfee_sumamt": fen_to_wire(ours["medfee_sumamt"]),
        "fund_pay_sumamt": fen_to_wire(ours["fund_pay_sumamt"]),
        "acct_pay": fen_to_wire(ours["acct_pay"]),
        "fixmedins_setl_cnt": ours["fixmedins_setl_cnt"],
        "unknown_cnt": sum(1 for s in rows if s.state == "UNKNOWN"),
    }
    output: dict[str, Any] = {"stmtinfo": info}
    if inp.details is not None:
        breaks = _breaks(rows, inp)
        output["breaks"] = breaks
        if breaks:
            info["stmt_rslt"] = "1"
    return Outcome(output=output)
