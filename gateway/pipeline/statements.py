"""3201 totals and 3202 detail reconciliation of an institution against the journal (SPEC §6.5)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from gateway.domain.inputs import StatementInput
from gateway.domain.money import fen_to_wire
from gateway.domain.reconcile import institution_breaks, totals
from gateway.domain.registry import SettlementState
from gateway.domain.statement_input import CLR_TYPES
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.reply import Outcome


async def statement(d: Deps, txn: Txn) -> Outcome:
    """Compare the institution's counts with the journal's for the date range (local dates, inclusive)."""
    env, inp = txn.request(StatementInput)
    begin = datetime.combine(inp.begin, time(0), d.tz)
    end = datetime.combine(inp.end + timedelta(days=1), time(0), d.tz)
    rows = await d.settlements.settlements_between(env.fixmedins_code, begin, end)
    if inp.clr_type is not None:  # issue 12: the settlements of one kind (SPEC §6.7)
        rows = [s for s in rows if s.infno == CLR_TYPES[inp.clr_type]]
    ours = totals(rows)
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
        "unknown_cnt": sum(1 for s in rows if s.state == SettlementState.UNKNOWN),
    }
    if inp.clr_type is not None:
        info["clr_type"] = inp.clr_type
    output: dict[str, Any] = {"stmtinfo": info}
    if inp.details is not None:
        breaks = institution_breaks(rows, inp.details)
        output["breaks"] = breaks
        if breaks:
            info["stmt_rslt"] = "1"
    return Outcome(output=output)
