"""Per-transaction `input` objects of SPEC §6 and their parsers, parsed into typed values (amounts in fen).
Which parser an infno uses is the transaction table's business (`gateway.domain.txtypes`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway.domain.fields import amount, decimal_field, malformed, opt_str, req_match, req_obj, req_str
from gateway.domain.money import Fen
from gateway.domain.statement_input import StatementDetail, StatementInput
from gateway.domain.stays import AdmitInput, StayChange, StayFeeCancel, StayUploadInput
from gateway.domain.visit_inputs import FeeUploadInput, RegisterInput, VisitInfoInput, VisitRef

if TYPE_CHECKING:
    from gateway.domain.envelope import Envelope

__all__ = ["StatementDetail", "StatementInput"]

_CARD_NO = re.compile(r"[0-9A-Za-z]{9}")
_MSGID = re.compile(r"[0-9A-Za-z]{12}[0-9]{14}[0-9A-Za-z]{4}")
_FLAG = re.compile(r"[01]")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
MAX_LINES = 2000
ZERO = Fen(0)


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
    # issue 12 (SPEC §6.6): by reference (no feedetail), the totals the HIS sent, to be matched when present
    his_totals: tuple[tuple[str, Fen], ...] = ()
    # issue 12 (SPEC §6.7): 2303/2304 of an inpatient stay, "0" final or "1" mid-stay; None for the others
    mid_setl_flag: str | None = None

    @property
    def by_reference(self) -> bool:
        """No feedetail: the lines are those of the batch (mdtrt_id, chrg_bchno) uploaded by 2204."""
        return not self.items and self.mid_setl_flag is None


@dataclass(frozen=True, slots=True)
class CancelInput:
    """2208/2103 input.data."""

    setl_id: str
    psn_no: str
    mdtrt_id: str | None = None  # issue 12: 2208 of a visit's batch names the visit (SPEC §6.6)


@dataclass(frozen=True, slots=True)
class ReverseInput:
    """2601 input.data."""

    psn_no: str
    omsgid: str
    oinfno: str


@dataclass(frozen=True, slots=True)
class EntitlementInput:
    """2001 input.data (SPEC §6.2.1): may this person settle today, here, for this med_type?"""

    psn_no: str = field(repr=False)
    insutype: str
    med_type: str
    begntime: datetime
    card_no: str = field(repr=False)
    card_sn: str = field(repr=False)


Input = (
    SignIn | SignOut | PersonQuery | EntitlementInput | SettleInput | CancelInput | ReverseInput | StatementInput
    | RegisterInput | VisitRef | VisitInfoInput | FeeUploadInput
    | AdmitInput | StayChange | StayUploadInput | StayFeeCancel
)  # fmt: skip
HIS_TOTALS = ("fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt")


def parse_cert(data: dict[str, Any], card_sn_block: str | None) -> tuple[str, str]:
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


def parse_sign_in(env: Envelope) -> SignIn:
    """9001 input.signIn."""
    s = req_obj(env.input, "signIn", "input.")
    return SignIn(
        req_str(s, "opter_no", "input.signIn.", max_len=30),
        req_str(s, "mac", "input.signIn.", max_len=30),
        req_str(s, "ip", "input.signIn.", max_len=45),
    )


def parse_sign_out(env: Envelope) -> SignOut:
    """9002 input.signOut."""
    s = req_obj(env.input, "signOut", "input.")
    return SignOut(
        req_str(s, "sign_no", "input.signOut.", max_len=30),
        req_str(s, "opter_no", "input.signOut.", max_len=30),
    )


def parse_person(env: Envelope) -> PersonQuery:
    """1101 input.data."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    card_no, card_sn = parse_cert(data, env.safe.card_sn)
    certno, name = opt_str(data, "certno", p, max_len=18), opt_str(data, "psn_name", p, max_len=50)
    return PersonQuery(card_no, card_sn, certno, name)


def parse_entitlement(env: Envelope) -> EntitlementInput:
    """2001 input.data."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    card_no, card_sn = parse_cert(data, env.safe.card_sn)
    psn_no = req_str(data, "psn_no", p, max_len=30)
    insutype = req_str(data, "insutype", p, max_len=6)
    med_type = req_str(data, "med_type", p, max_len=6)
    text = req_match(data, "begntime", p, _DATETIME, "a date-time yyyy-MM-dd HH:mm:ss")
    try:
        begntime = datetime.fromisoformat(text)
    except ValueError:
        raise malformed(p + "begntime", "is not a calendar date and time") from None
    return EntitlementInput(psn_no, insutype, med_type, begntime, card_no, card_sn)


def parse_settle(env: Envelope) -> SettleInput:
    """2206/2207/2101/2102 input.data and input.feedetail."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    card_no, card_sn = parse_cert(data, env.safe.card_sn)
    flag = req_match(data, "acct_used_flag", p, _FLAG, '"0" or "1"')
    mdtrt_id, chrg_bchno = opt_str(data, "mdtrt_id", p, max_len=30), opt_str(data, "chrg_bchno", p, max_len=30)
    if "feedetail" not in env.input and env.tx.infno in ("2206", "2207"):  # by reference (SPEC §6.6)
        for name, value in (("mdtrt_id", mdtrt_id), ("chrg_bchno", chrg_bchno)):
            if value is None:
                raise malformed(p + name, "missing: without input.feedetail the batch is settled by reference")
        items: tuple[FeeItem, ...] = ()
    else:
        items = _items(env.input)
    totals = tuple((k, amount(data, k, p)) for k in HIS_TOTALS if data.get(k) is not None)
    return SettleInput(
        psn_no=req_str(data, "psn_no", p, max_len=30),
        card_no=card_no,
        card_sn=card_sn,
        med_type=req_str(data, "med_type", p, max_len=6),
        medfee_sumamt=amount(data, "medfee_sumamt", p),
        insutype=req_str(data, "insutype", p, max_len=6),
        acct_used_flag=flag == "1",
        mdtrt_id=mdtrt_id,
        chrg_bchno=chrg_bchno,
        items=items,
        his_totals=totals if not items else (),
    )


def parse_cancel(env: Envelope) -> CancelInput:
    """2208/2103 input.data."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    return CancelInput(
        req_str(data, "setl_id", p, max_len=30),
        req_str(data, "psn_no", p, max_len=30),
        opt_str(data, "mdtrt_id", p, max_len=30),
    )


def parse_reverse(env: Envelope, reversible: tuple[str, ...]) -> ReverseInput:
    """2601 input.data; `reversible` are the infnos a reversal may name (SPEC §6.4)."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    oinfno = data.get("oinfno")
    if oinfno not in reversible:
        raise malformed(p + "oinfno", f"must be one of {', '.join(reversible)}")
    return ReverseInput(
        req_str(data, "psn_no", p, max_len=30),
        req_match(data, "omsgid", p, _MSGID, "a 30-char msgid"),
        oinfno,
    )
