"""FsiCore's wire → domain decoding of callService outputs (yuan to fen). Each raises KeyError, TypeError or
ValueError on a malformed output, which `FsiCore._mapped` turns into the port's errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.domain.core import Cancelled, PersonRecord, Posted, Reversed
from gateway.domain.money import yuan_to_fen
from gateway.domain.reconcile import CoreRecord

Output = Mapping[str, Any]


def person(out: Output) -> PersonRecord:
    base, insu, accu = out["baseinfo"], out["insuinfo"][0], out["accuinfo"]
    return PersonRecord(
        psn_no=_str(base, "psn_no"),
        certno=_str(base, "certno"),
        psn_name=_str(base, "psn_name"),
        gend=_str(base, "gend"),
        brdy=_str(base, "brdy"),
        insutype=_str(insu, "insutype"),
        psn_type=_str(insu, "psn_type"),
        insuplc_admdvs=_str(insu, "insuplc_admdvs"),
        balance=_fen(insu, "balc"),
        inscp_ytd=_fen(accu, "inscp_ytd"),
        fund_paid_ytd=_fen(accu, "fund_paid_ytd"),
        version=_int(out, "version"),
        psn_insu_stas=_str(insu, "psn_insu_stas"),
    )


def posted(out: Output) -> Posted:
    info = out["setlinfo"]
    return Posted(_str(info, "setl_id"), _fen(info, "balc"), _int(info, "version"))


def cancelled(out: Output) -> Cancelled:
    info = out["setlinfo"]
    return Cancelled(
        setl_id=_str(info, "setl_id"),
        orig_setl_id=_str(info, "orig_setl_id"),
        medfee_sumamt=_fen(info, "medfee_sumamt"),
        fund_pay_sumamt=_fen(info, "fund_pay_sumamt"),
        acct_pay=_fen(info, "acct_pay"),
        psn_cash_pay=_fen(info, "psn_cash_pay"),
        balc=_fen(info, "balc"),
    )


def reversal(out: Output) -> Reversed:
    info = out["data"]
    was_posted = info["was_posted"]
    if not isinstance(was_posted, bool):
        raise TypeError("was_posted")
    return Reversed(_str(info, "omsgid"), was_posted)


def statement(out: Output) -> list[CoreRecord]:
    details = out["details"]
    if not isinstance(details, list):
        raise TypeError("details")
    return [
        CoreRecord(
            msgid=_str(d, "medins_setl_id"),
            setl_id=_str(d, "setl_id"),
            fixmedins_code=_str(d, "fixmedins_code"),
            state=_str(d, "setl_stas"),
            setl_time=_str(d, "setl_time"),
            medfee_sumamt=_fen(d, "medfee_sumamt"),
            fund_pay_sumamt=_fen(d, "fund_pay_sumamt"),
            acct_pay=_fen(d, "acct_pay"),
            psn_cash_pay=_fen(d, "psn_cash_pay"),
        )
        for d in details
    ]


def _str(obj: Output, name: str) -> str:
    value = obj[name]
    if not isinstance(value, str):
        raise TypeError(name)
    return value


def _int(obj: Output, name: str) -> int:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(name)
    return value


def _fen(obj: Output, name: str) -> int:
    return yuan_to_fen(obj[name], field=name)  # AmountError is a ValueError
