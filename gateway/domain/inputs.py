"""Per-transaction `input` objects of SPEC §6, parsed into typed values (amounts in fen)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.domain.envelope import (
    AMOUNT_BEARING,
    CANCEL,
    Envelope,
    malformed,
    opt_str,
    req_match,
    req_obj,
    req_str,
)
from gateway.domain.money import AmountError, Fen, yuan_to_fen

_CARD_NO = re.compile(r"[0-9A-Za-z]{9}")
_MSGID = re.compile(r"[0-9A-Za-z]{12}[0-9]{14}[0-9A-Za-z]{4}")
_FLAG = re.compile(r"[01]")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_LINES = 2000
ZERO = Fen(0)


def amount(obj: dict[str, Any], key: str, path: str) -> Fen:
    """A required amount in yuan (≤ 2 decimals, ≥ 0) as fen."""
    if key not in obj or obj[key] is None:
        raise malformed(path + key, "missing")
    try:
        return yuan_to_fen(obj[key], field=path + key)
    except AmountError as exc:
        raise malformed(path + key, str(exc).removeprefix(path + key + " ")) from None


def decimal_field(obj: dict[str, Any], key: str, path: str, *, places: int) -> Decimal:
    """A required non-negative number with at most `places` decimals."""
    value = obj.get(key)
    if value is None:
        raise malformed(path + key, "missing")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise malformed(path + key, "must be a number")
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        raise malformed(path + key, "must be a number") from None
    if not dec.is_finite() or dec < 0 or dec > Decimal(10) ** 9:
        raise malformed(path + key, "must be a non-negative number below 10^9")
    exp = dec.as_tuple().exponent
    if isinstance(exp, int) and exp < -places:
        raise malformed(path + key, f"has more than {places} decimals")
    return dec


@dataclass(frozen=True, slots=True)
class SignIn:
    """9001 input.signIn."""

    opter_no: str
    mac: str
    ip: str


@dataclass(frozen=True, slots=True)
class SignOut:
    """9002 input.signOut."""

    sign_no: str
    opter_no: str


@dataclass(frozen=True, slots=True)
class PersonQuery:
    """1101 input.data (mdtrt_cert_type 03: the social security card)."""

    card_no: str
    card_sn: str = field(repr=False)
    certno: str | None = field(default=None, repr=False)
    psn_name: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class FeeItem:
    """One input.feedetail line."""

    feedetl_sn: str
    med_list_codg: str
    cnt: Decimal
    pric: Decimal
    amount: Fen


@dataclass(frozen=True, slots=True)
class SettleInput:
    """2206/2207/2101/2102 input.data and input.feedetail."""

    psn_no: str
    card_no: str
    card_sn: str = field(repr=False)
    med_type: str = ""
    medfee_sumamt: Fen = ZERO
    insutype: str = ""
    acct_used_flag: bool = False
    mdtrt_id: str | None = None
    chrg_bchno: str | None = None
    items: tuple[FeeItem, ...] = ()


@dataclass(frozen=True, slots=True)
class CancelInput:
    """2208/2103 input.data."""

    setl_id: str
    psn_no: str


@dataclass(frozen=True, slots=True)
class ReverseInput:
    """2601 input.data."""

    psn_no: str
    omsgid: str
    oinfno: str


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


Input = SignIn | SignOut | PersonQuery | SettleInput | CancelInput | ReverseInput | StatementInput


def _cert(data: dict[str, Any], card_sn_block: str | None) -> tuple[str, str]:
    p = "input.data."
    if data.get("mdtrt_cert_type") != "03":
        raise malformed(p + "mdtrt_cert_type", 'must be "03" (social security card)')
    card_no = req_match(data, "mdtrt_cert_no", p, _CARD_NO, "the 9-char card number")
    card_sn = req_str(data, "card_sn", p, min_len=32, max_len=32).upper()
    if card_sn != card_sn_block:
        raise malformed(p + "card_sn", "must equal dev_safe_info.card_sn")
    return card_no, card_sn


def _items(inp: dict[str, Any]) -> tuple[FeeItem, ...]:
    raw = inp.get("feedetail")
    if raw is None:
        raise malformed("input.feedetail", "missing")
    if not isinstance(raw, list) or not raw:
        raise malformed("input.feedetail", "must be a non-empty array")
    if len(raw) > MAX_LINES:
        raise malformed("input.feedetail", f"more than {MAX_LINES} lines")
    items = []
    seen: set[str] = set()
    for i, line in enumerate(raw):
        p = f"input.feedetail[{i}]."
        if not isinstance(line, dict):
            raise malformed(f"input.feedetail[{i}]", "must be an object")
        sn = req_str(line, "feedetl_sn", p, max_len=30)
        if sn in seen:
            raise malformed(p + "feedetl_sn", f"duplicate {sn!r}")
        seen.add(sn)
        code = req_str(line, "med_list_codg", p, max_len=50)
        cnt = decimal_field(line, "cnt", p, places=4)
        if cnt == 0:
            raise malformed(p + "cnt", "must be positive")
        pric = decimal_field(line, "pric", p, places=6)
        items.append(FeeItem(sn, code, cnt, pric, amount(line, "det_item_fee_sumamt", p)))
    return tuple(items)


def _statement(env: Envelope) -> StatementInput:
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
    )


def parse_input(env: Envelope) -> Input:
    """Parse `input` for the envelope's infno.

    Raises:
        Declined: MALFORMED naming the first bad field.
    """
    inp, infno = env.input, env.infno
    if infno == "9001":
        s = req_obj(inp, "signIn", "input.")
        return SignIn(
            req_str(s, "opter_no", "input.signIn.", max_len=30),
            req_str(s, "mac", "input.signIn.", max_len=30),
            req_str(s, "ip", "input.signIn.", max_len=45),
        )
    if infno == "9002":
        s = req_obj(inp, "signOut", "input.")
        return SignOut(
            req_str(s, "sign_no", "input.signOut.", max_len=30),
            req_str(s, "opter_no", "input.signOut.", max_len=30),
        )
    if infno in ("3201", "3202"):
        return _statement(env)
    data = req_obj(inp, "data", "input.")
    p = "input.data."
    if infno == "1101":
        card_no, card_sn = _cert(data, env.safe.card_sn)
        return PersonQuery(
            card_no, card_sn, opt_str(data, "certno", p, max_len=18), opt_str(data, "psn_name", p, max_len=50)
        )
    if infno in AMOUNT_BEARING:
        card_no, card_sn = _cert(data, env.safe.card_sn)
        flag = req_match(data, "acct_used_flag", p, _FLAG, '"0" or "1"')
        return SettleInput(
            psn_no=req_str(data, "psn_no", p, max_len=30),
            card_no=card_no,
            card_sn=card_sn,
            med_type=req_str(data, "med_type", p, max_len=6),
            medfee_sumamt=amount(data, "medfee_sumamt", p),
            insutype=req_str(data, "insutype", p, max_len=6),
            acct_used_flag=flag == "1",
            mdtrt_id=opt_str(data, "mdtrt_id", p, max_len=30),
            chrg_bchno=opt_str(data, "chrg_bchno", p, max_len=30),
            items=_items(inp),
        )
    if infno in CANCEL:
        return CancelInput(req_str(data, "setl_id", p, max_len=30), req_str(data, "psn_no", p, max_len=30))
    # 2601: SPEC §6.4 lists the reversible originals.
    oinfno = data.get("oinfno")
    if oinfno not in ("2207", "2102", "2208", "2103"):
        raise malformed(p + "oinfno", "must be one of 2207, 2102, 2208, 2103")
    return ReverseInput(
        req_str(data, "psn_no", p, max_len=30),
        req_match(data, "omsgid", p, _MSGID, "a 30-char msgid"),
        oinfno,
    )


def mac_amount(env: Envelope) -> Fen:
    """AMT of MAC1/TAC: medfee_sumamt for 2206/2207/2101/2102, else 0 (SPEC §4.3)."""
    if env.infno in AMOUNT_BEARING:
        return amount(req_obj(env.input, "data", "input."), "medfee_sumamt", "input.data.")
    return Fen(0)
