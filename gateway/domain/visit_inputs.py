"""Inputs of the outpatient visit transactions 2201–2205 (SPEC §6.6) and their parsers; the fields the gateway
does not read are kept as sent (`info`, `extra`) and stored with the visit or line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway.domain.fields import amount, decimal_field, malformed, req_match, req_obj, req_str
from gateway.domain.money import Fen

if TYPE_CHECKING:
    from gateway.domain.envelope import Envelope

_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_MDTRT_ID = re.compile(r"[0-9A-Za-z]{30}")
MAX_UPLOAD_LINES = 2000  # the same bound as an inline feedetail (inputs.MAX_LINES)
_LINE_KEYS = frozenset({"feedetl_sn", "mdtrt_id", "psn_no", "chrg_bchno", "med_list_codg", "cnt", "pric",
                        "det_item_fee_sumamt"})  # fmt: skip


def parse_datetime(data: dict[str, Any], key: str, p: str) -> datetime:
    text = req_match(data, key, p, _DATETIME, "a date-time yyyy-MM-dd HH:mm:ss")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise malformed(p + key, "is not a calendar date and time") from None


def parse_mdtrt_id(data: dict[str, Any], p: str) -> str:
    return req_match(data, "mdtrt_id", p, _MDTRT_ID, "the 30-char mdtrt_id of 2201")


@dataclass(frozen=True, slots=True)
class RegisterInput:
    """2201 input.data."""

    psn_no: str = field(repr=False)
    insutype: str
    begntime: datetime
    ipt_otp_no: str
    info: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class VisitRef:
    """2202 and 2205 input.data: the visit (and for 2205 the batch, "0000" = every unsettled one)."""

    psn_no: str = field(repr=False)
    mdtrt_id: str
    chrg_bchno: str = ""
    ipt_otp_no: str = ""


@dataclass(frozen=True, slots=True)
class VisitInfoInput:
    """2203/2203A input.mdtrtinfo (and diseinfo[], stored)."""

    psn_no: str = field(repr=False)
    mdtrt_id: str
    med_type: str
    begntime: datetime
    info: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class UploadLine:
    """One 2204 feedetail line; `extra` holds its other fields."""

    feedetl_sn: str
    med_list_codg: str
    cnt: Decimal
    pric: Decimal
    amount: Fen
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeeUploadInput:
    """2204 input.feedetail[]: one visit, one chrg_bchno."""

    psn_no: str = field(repr=False)
    mdtrt_id: str
    chrg_bchno: str
    lines: tuple[UploadLine, ...]


def parse_register(env: Envelope) -> RegisterInput:
    """2201 input.data."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    req_str(data, "mdtrt_cert_type", p, max_len=3)
    req_str(data, "mdtrt_cert_no", p, max_len=50)
    return RegisterInput(
        req_str(data, "psn_no", p, max_len=30),
        req_str(data, "insutype", p, max_len=6),
        parse_datetime(data, "begntime", p),
        req_str(data, "ipt_otp_no", p, max_len=30),
        {k: v for k, v in data.items() if k not in ("psn_no", "insutype", "begntime", "ipt_otp_no")},
    )


def parse_visit_cancel(env: Envelope) -> VisitRef:
    """2202 input.data."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    return VisitRef(
        req_str(data, "psn_no", p, max_len=30),
        parse_mdtrt_id(data, p),
        ipt_otp_no=req_str(data, "ipt_otp_no", p, max_len=30),
    )


def parse_fee_cancel(env: Envelope) -> VisitRef:
    """2205 input.data."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    return VisitRef(
        req_str(data, "psn_no", p, max_len=30), parse_mdtrt_id(data, p), req_str(data, "chrg_bchno", p, max_len=30)
    )


def parse_visit_info(env: Envelope) -> VisitInfoInput:
    """2203/2203A input.mdtrtinfo and input.diseinfo[]."""
    m = req_obj(env.input, "mdtrtinfo", "input.")
    p = "input.mdtrtinfo."
    dise = env.input.get("diseinfo", [])
    if not isinstance(dise, list):
        raise malformed("input.diseinfo", "must be an array")
    info = {k: v for k, v in m.items() if k not in ("psn_no", "mdtrt_id", "med_type", "begntime")}
    info["diseinfo"] = dise
    return VisitInfoInput(
        req_str(m, "psn_no", p, max_len=30),
        parse_mdtrt_id(m, p),
        req_str(m, "med_type", p, max_len=6),
        parse_datetime(m, "begntime", p),
        info,
    )


def parse_fee_upload(env: Envelope) -> FeeUploadInput:
    """2204 input.feedetail[]: every line names the same visit, person and chrg_bchno.

    Raises:
        Declined: MALFORMED naming the line and field (duplicates within the call are FEE_LINE_DUPLICATE, told
        by the flow).
    """
    raw = env.input.get("feedetail")
    if not isinstance(raw, list) or not raw:
        raise malformed("input.feedetail", "must be a non-empty array")
    if len(raw) > MAX_UPLOAD_LINES:
        raise malformed("input.feedetail", f"{len(raw)} lines: at most {MAX_UPLOAD_LINES} lines per call")
    lines = []
    head: tuple[str, str, str] | None = None
    for i, line in enumerate(raw):
        p = f"input.feedetail[{i}]."
        if not isinstance(line, dict):
            raise malformed(f"input.feedetail[{i}]", "must be an object")
        key = (
            req_str(line, "psn_no", p, max_len=30),
            parse_mdtrt_id(line, p),
            req_str(line, "chrg_bchno", p, max_len=30),
        )
        if head is None:
            head = key
        for name, got, want in zip(("psn_no", "mdtrt_id", "chrg_bchno"), key, head, strict=True):
            if got != want:
                raise malformed(p + name, f"{got!r} differs from line 0's {want!r}: one call is one batch")
        cnt = decimal_field(line, "cnt", p, places=4)
        if cnt <= 0:
            raise malformed(p + "cnt", "must be positive")
        lines.append(
            UploadLine(
                req_str(line, "feedetl_sn", p, max_len=30),
                req_str(line, "med_list_codg", p, max_len=50),
                cnt,
                decimal_field(line, "pric", p, places=6),
                amount(line, "det_item_fee_sumamt", p),
                {k: v for k, v in line.items() if k not in _LINE_KEYS},
            )
        )
    assert head is not None
    return FeeUploadInput(head[0], head[1], head[2], tuple(lines))
