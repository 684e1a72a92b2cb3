"""3201/3202 reconciliation input (SPEC §6.5): the institution's totals for a date range, and 3202's details."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from gateway.domain.fields import amount, malformed, opt_str, req_match, req_obj
from gateway.domain.money import Fen

if TYPE_CHECKING:
    from gateway.domain.envelope import Envelope

_MSGID = re.compile(r"[0-9A-Za-z]{12}[0-9]{14}[0-9A-Za-z]{4}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# issue 12 (SPEC §6.7): clr_type selects the settlements of one infno; absent = all
CLR_TYPES = {"11": "2207", "21": "2304", "41": "2102"}


@dataclass(frozen=True, slots=True)
class StatementDetail:
    """One 3202 input.details line as the institution counts it."""

    msgid: str
    setl_id: str | None
    medfee_sumamt: Fen
    fund_pay_sumamt: Fen
    acct_pay: Fen
    refunded: bool


@dataclass(frozen=True, slots=True)
class StatementInput:
    """3201/3202 input: the institution's totals for a date range, plus details for 3202."""

    setl_optins: str
    begin: date
    end: date
    medfee_sumamt: Fen
    fund_pay_sumamt: Fen
    acct_pay: Fen
    setl_cnt: int
    details: tuple[StatementDetail, ...] | None
    clr_type: str | None = None  # issue 12: "11" outpatient, "21" inpatient, "41" pharmacy (CLR_TYPES)


def parse_statement(env: Envelope) -> StatementInput:
    """3201/3202 input (3202 adds the detail lines)."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    dates = []
    for key in ("stmt_begndate", "stmt_enddate"):
        text = req_match(data, key, p, _DATE, "a date yyyy-MM-dd")
        try:
            dates.append(date.fromisoformat(text))
        except ValueError:
            raise malformed(p + key, "is not a calendar date") from None
    if dates[0] > dates[1]:
        raise malformed(p + "stmt_enddate", "is before stmt_begndate")
    cnt = data.get("fixmedins_setl_cnt")
    if isinstance(cnt, bool) or not isinstance(cnt, int):
        raise malformed(p + "fixmedins_setl_cnt", "must be an integer")
    clr_type = opt_str(data, "clr_type", p, max_len=2)
    if clr_type is not None and clr_type not in CLR_TYPES:
        raise malformed(p + "clr_type", f"must be one of {', '.join(CLR_TYPES)} or absent")
    details: tuple[StatementDetail, ...] | None = None
    if env.infno == "3202":
        raw = env.input.get("details")
        if not isinstance(raw, list):
            raise malformed("input.details", "must be an array")
        out = []
        for i, d in enumerate(raw):
            dp = f"input.details[{i}]."
            if not isinstance(d, dict):
                raise malformed(f"input.details[{i}]", "must be an object")
            flag = d.get("refd_setl_flag", "0")
            if flag not in ("0", "1"):
                raise malformed(dp + "refd_setl_flag", 'must be "0" or "1"')
            out.append(
                StatementDetail(
                    req_match(d, "msgid", dp, _MSGID, "a 30-char msgid"),
                    opt_str(d, "setl_id", dp, max_len=30),
                    amount(d, "medfee_sumamt", dp),
                    amount(d, "fund_pay_sumamt", dp),
                    amount(d, "acct_pay", dp),
                    flag == "1",
                )
            )
        details = tuple(out)
    return StatementInput(
        setl_optins=opt_str(data, "setl_optins", p, max_len=6) or "",
        begin=dates[0],
        end=dates[1],
        medfee_sumamt=amount(data, "medfee_sumamt", p),
        fund_pay_sumamt=amount(data, "fund_pay_sumamt", p),
        acct_pay=amount(data, "acct_pay", p),
        setl_cnt=cnt,
        details=details,
        clr_type=clr_type,
    )
