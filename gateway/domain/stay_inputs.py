"""Inputs of the inpatient stay transactions 2401–2405 and 2301/2302/2305 (SPEC §6.7) and their parsers;
2303/2304 parse into `SettleInput` (with `mid_setl_flag`). Fields the gateway does not read are stored as sent."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway.domain.fields import amount, decimal_field, malformed, opt_str, req_match, req_obj, req_str
from gateway.domain.inputs import CancelInput, SettleInput, parse_cert
from gateway.domain.money import Fen
from gateway.domain.stays import AdmitInput, StayChange, StayFeeCancel, StayLine, StayUploadInput
from gateway.domain.visit_inputs import MAX_UPLOAD_LINES, UploadLine, parse_datetime, parse_mdtrt_id

if TYPE_CHECKING:
    from gateway.domain.envelope import Envelope

_FLAG = re.compile(r"[01]")
_LINE_KEYS = frozenset({"feedetl_sn", "mdtrt_id", "psn_no", "med_list_codg", "cnt", "pric", "det_item_fee_sumamt",
                        "init_feedetl_sn"})  # fmt: skip


def _dise(env: Envelope) -> list[Any]:
    dise = env.input.get("diseinfo", [])
    if not isinstance(dise, list):
        raise malformed("input.diseinfo", "must be an array")
    return dise


def parse_admit(env: Envelope) -> AdmitInput:
    """2401 input.mdtrtinfo; ipt_no is also accepted as ipt_otp_no."""
    m = req_obj(env.input, "mdtrtinfo", "input.")
    p = "input.mdtrtinfo."
    req_str(m, "mdtrt_cert_type", p, max_len=3)
    req_str(m, "mdtrt_cert_no", p, max_len=50)
    ipt_no = opt_str(m, "ipt_no", p, max_len=30) or req_str(m, "ipt_otp_no", p, max_len=30)
    info = {k: v for k, v in m.items() if k not in ("psn_no", "insutype", "begntime", "med_type")}
    info["diseinfo"] = _dise(env)
    return AdmitInput(
        req_str(m, "psn_no", p, max_len=30),
        req_str(m, "insutype", p, max_len=6),
        parse_datetime(m, "begntime", p),
        req_str(m, "med_type", p, max_len=6),
        ipt_no,
        info,
    )


def _change(env: Envelope, *keys: str) -> StayChange:
    for key in keys:
        if isinstance(env.input.get(key), dict):
            obj, p = env.input[key], f"input.{key}."
            break
    else:
        raise malformed(f"input.{keys[0]}", "missing")
    info = {k: v for k, v in obj.items() if k not in ("psn_no", "mdtrt_id")}
    if "diseinfo" in env.input:
        info["diseinfo"] = _dise(env)
    return StayChange(req_str(obj, "psn_no", p, max_len=30), parse_mdtrt_id(obj, p), info)


def parse_discharge(env: Envelope) -> StayChange:
    """2402 input.dscginfo (endtime checked) and diseinfo[]."""
    change = _change(env, "dscginfo")
    parse_datetime(env.input["dscginfo"], "endtime", "input.dscginfo.")
    return change


def parse_adm_change(env: Envelope) -> StayChange:
    """2403 input.adminfo or input.mdtrtinfo."""
    return _change(env, "adminfo", "mdtrtinfo")


def parse_stay_ref(env: Envelope) -> StayChange:
    """2404/2405 input.data."""
    return _change(env, "data")


def _signed(line: dict[str, Any], key: str, p: str, parse: Any) -> tuple[Any, bool]:
    """A number parsed by `parse`, which refuses negatives; returns (its magnitude, whether it was negative)."""
    v: Any = line.get(key)
    neg = (isinstance(v, int | float) and not isinstance(v, bool) and v < 0) or (isinstance(v, str) and v[:1] == "-")
    if neg:
        v = -v if not isinstance(v, str) else v[1:]
    return parse({key: v}, key, p), neg


def _stay_line(line: dict[str, Any], p: str) -> StayLine:
    cnt, neg_cnt = _signed(line, "cnt", p, lambda o, k, q: decimal_field(o, k, q, places=4))
    amt, neg_amt = _signed(line, "det_item_fee_sumamt", p, amount)
    init = opt_str(line, "init_feedetl_sn", p, max_len=30)
    if cnt == 0:
        raise malformed(p + "cnt", "must not be 0")
    if neg_cnt != neg_amt:
        raise malformed(p + "det_item_fee_sumamt", "must have the sign of cnt")
    if neg_cnt and init is None:
        raise malformed(p + "init_feedetl_sn", "missing: a refund line (negative cnt) names the line it refunds")
    if not neg_cnt and init is not None:
        raise malformed(p + "cnt", "must be negative on a refund line (init_feedetl_sn)")
    sign = -1 if neg_cnt else 1
    up = UploadLine(
        req_str(line, "feedetl_sn", p, max_len=30),
        req_str(line, "med_list_codg", p, max_len=50),
        Decimal(sign) * cnt,
        decimal_field(line, "pric", p, places=6),
        Fen(sign * amt),
        {k: v for k, v in line.items() if k not in _LINE_KEYS},
    )
    return StayLine(up, init)


def parse_stay_upload(env: Envelope) -> StayUploadInput:
    """2301 input.feedetail[]: every line names the same stay and person."""
    raw = env.input.get("feedetail")
    if not isinstance(raw, list) or not raw:
        raise malformed("input.feedetail", "must be a non-empty array")
    if len(raw) > MAX_UPLOAD_LINES:
        raise malformed("input.feedetail", f"{len(raw)} lines: at most {MAX_UPLOAD_LINES} lines per call")
    lines, head = [], None
    for i, line in enumerate(raw):
        p = f"input.feedetail[{i}]."
        if not isinstance(line, dict):
            raise malformed(f"input.feedetail[{i}]", "must be an object")
        key = (req_str(line, "psn_no", p, max_len=30), parse_mdtrt_id(line, p))
        head = head or key
        for name, got, want in zip(("psn_no", "mdtrt_id"), key, head, strict=True):
            if got != want:
                raise malformed(p + name, f"{got!r} differs from line 0's {want!r}: one call is one stay")
        lines.append(_stay_line(line, p))
    assert head is not None
    return StayUploadInput(head[0], head[1], tuple(lines))


def parse_stay_fee_cancel(env: Envelope) -> StayFeeCancel:
    """2302: input.data as an object or an array, or input.feeinfo; feedetl_sn a list, one, or "0000"."""
    raw = env.input.get("data", env.input.get("feeinfo"))
    where = "input.data" if "data" in env.input else "input.feeinfo"
    rows: list[Any] = raw if isinstance(raw, list) else [raw]
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise malformed(where, "must be an object or a non-empty array of objects")
    p = f"{where}."
    first: dict[str, Any] = rows[0]
    psn_no, mdtrt_id = req_str(first, "psn_no", p, max_len=30), parse_mdtrt_id(first, p)
    sns: list[str] = []
    for r in rows:
        if (r.get("psn_no"), r.get("mdtrt_id")) != (psn_no, mdtrt_id):
            raise malformed(p + "mdtrt_id", "every entry must name the same stay and person")
        v = r.get("feedetl_sn")
        vals: list[Any] = v if isinstance(v, list) else [v]
        if not vals or not all(isinstance(x, str) and 0 < len(x) <= 30 for x in vals):
            raise malformed(p + "feedetl_sn", 'must be a feedetl_sn, a list of them, or "0000"')
        sns += vals
    return StayFeeCancel(psn_no, mdtrt_id, None if "0000" in sns else tuple(sns))


def parse_stay_settle(env: Envelope) -> SettleInput:
    """2303/2304 input.data: the stay's unsettled lines are settled (no feedetail); med_type is the stay's."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    card_no, card_sn = parse_cert(data, env.safe.card_sn)
    return SettleInput(
        psn_no=req_str(data, "psn_no", p, max_len=30),
        card_no=card_no,
        card_sn=card_sn,
        med_type=opt_str(data, "med_type", p, max_len=6) or "",
        medfee_sumamt=amount(data, "medfee_sumamt", p),
        insutype=req_str(data, "insutype", p, max_len=6),
        acct_used_flag=req_match(data, "acct_used_flag", p, _FLAG, '"0" or "1"') == "1",
        mdtrt_id=parse_mdtrt_id(data, p),
        mid_setl_flag=req_match(data, "mid_setl_flag", p, _FLAG, '"0" final or "1" mid-stay'),
    )


def parse_stay_cancel(env: Envelope) -> CancelInput:
    """2305 input.data: mdtrt_id, setl_id, psn_no."""
    data = req_obj(env.input, "data", "input.")
    p = "input.data."
    return CancelInput(req_str(data, "setl_id", p, max_len=30), req_str(data, "psn_no", p, max_len=30),
                       parse_mdtrt_id(data, p))  # fmt: skip
