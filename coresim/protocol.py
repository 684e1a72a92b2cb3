"""callService: the FSI-style envelope of the simulated core (infnos 1101, 2207/2102/2304, 2208/2103/2305, 2601, 3202).

Request ``{"infno", "msgid", "fixmedins_code", "inf_time", "input": {"data": {...}}}``; reply
``{"infcode": 0 | -2 | -1, "err_code", "err_msg", "output"}``. Amounts are yuan JSON numbers.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson
from aiohttp import web

from coresim.keys import FAULTS, STATE
from coresim.records import (
    CANCEL_INFNOS,
    SETTLE_INFNOS,
    CancelReceipt,
    CancelRequest,
    Person,
    PostReceipt,
    PostRequest,
    Refusal,
    ReverseRequest,
    Settlement,
    mask_psn_no,
)
from coresim.state import CoreState, local_now
from coresim.yuan import AmountError, fen_of, yuan_number

log = logging.getLogger("coresim")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

Reply = dict[str, Any]


def _reply(infcode: int, err_code: str | None, err_msg: str | None, output: object = None) -> Reply:
    return {
        "infcode": infcode,
        "err_code": err_code,
        "err_msg": err_msg,
        "respond_time": local_now().strftime("%Y%m%d%H%M%S%f")[:17],
        "output": output,
    }


async def call_service(request: web.Request) -> web.StreamResponse:
    """POST /fsi/api/rsfComIfsService/callService, with the configured faults applied."""
    faults = request.app[FAULTS]
    cfg = faults.config
    if cfg.down:
        return web.json_response(_reply(-1, "CORE_DOWN", "core is down"), status=503)
    if cfg.latency_ms:
        await asyncio.sleep(cfg.latency_ms / 1000)
    try:
        envelope = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return web.json_response(_reply(-2, "MALFORMED", "body is not JSON"), status=400)
    if faults.roll(cfg.error_rate):
        return _respond(_reply(-1, "SYSTEM_ERROR", "simulated system error"))
    if faults.roll(cfg.timeout_rate):
        await asyncio.sleep(cfg.hang_s)  # then act: the caller has given up, the core has not
    reply = dispatch(request.app[STATE], envelope)
    _log(envelope, reply)
    if faults.roll(cfg.drop_after_post_rate):
        # Acted, but the answer is lost: close the socket with nothing written.
        request.protocol.force_close()
        if request.transport is not None:
            request.transport.abort()
    return _respond(reply)


def _respond(reply: Reply) -> web.Response:
    return web.Response(body=orjson.dumps(reply), content_type="application/json")


def _log(envelope: object, reply: Reply) -> None:
    # One line per call at DEBUG (`onecard -v core-sim`): at benchmark rates the simulator shares the machine
    # with the gateway, and its logging was CPU the gateway then lacked. Refusals stay visible at INFO.
    if reply["infcode"] == 0 and not log.isEnabledFor(logging.DEBUG):
        return
    env = envelope if isinstance(envelope, dict) else {}
    inp = env.get("input")
    data = inp.get("data") if isinstance(inp, dict) else None
    psn_no = data.get("psn_no") if isinstance(data, dict) else None
    log.log(
        logging.DEBUG if reply["infcode"] == 0 else logging.INFO,
        "callService infno=%s msgid=%s psn=%s infcode=%s err_code=%s",
        env.get("infno"), env.get("msgid"), mask_psn_no(psn_no) if isinstance(psn_no, str) else "-",
        reply["infcode"], reply["err_code"],
    )  # fmt: skip


def dispatch(state: CoreState, envelope: object) -> Reply:
    """Decode one envelope, act on the ledger and encode the reply (never raises on bad input)."""
    try:
        if not isinstance(envelope, dict):
            raise Refusal("MALFORMED", "envelope must be a JSON object")
        infno = _text(envelope, "infno")
        data = _data(envelope)
        if infno == "1101":
            return _reply(0, None, None, _person_out(state.person(_text(data, "psn_no"))))
        msgid = _text(envelope, "msgid", max_len=40)
        fixmedins_code = _text(envelope, "fixmedins_code", max_len=20)
        if infno in SETTLE_INFNOS:
            posted = state.post(msgid, _post_request(data, fixmedins_code, infno))
            return _reply(0, None, None, _posted_out(posted))
        if infno in CANCEL_INFNOS:
            req = CancelRequest(
                fixmedins_code=_text(data, "fixmedins_code", default=fixmedins_code),
                infno=_text(data, "infno", default=infno),
                setl_id=_text(data, "setl_id"),
                psn_no=_text(data, "psn_no"),
            )
            return _reply(0, None, None, _cancelled_out(state.cancel(msgid, req)))
        if infno == "2601":
            rvs = ReverseRequest(fixmedins_code, _text(data, "psn_no"), _text(data, "omsgid", max_len=40),
                                 _text(data, "oinfno"))  # fmt: skip
            done = state.reverse(msgid, rvs)
            out = {"omsgid": done.omsgid, "oinfno": done.oinfno, "was_posted": done.was_posted}
            return _reply(0, None, None, {"data": {**out, "rvs_stas": "1"}})
        if infno == "3202":
            return _reply(0, None, None, _statement_out(state, fixmedins_code, data))
        raise Refusal("UNSUPPORTED_INFNO", "infno not supported by the core")
    except Refusal as refusal:
        return _reply(-2, refusal.code, refusal.message)


def _data(envelope: dict[str, Any]) -> dict[str, Any]:
    inp = envelope.get("input")
    data = inp.get("data") if isinstance(inp, dict) else None
    if not isinstance(data, dict):
        raise Refusal("MALFORMED", "input.data must be an object")
    return data


def _text(obj: dict[str, Any], name: str, *, max_len: int = 30, default: str | None = None) -> str:
    value = obj.get(name, default)
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise Refusal("MALFORMED", f"{name} must be a string of 1 to {max_len} characters")
    return value


def _date(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise Refusal("MALFORMED", f"{name} must be a date YYYY-MM-DD")
    return value


def _fen(obj: dict[str, Any], name: str) -> int:
    try:
        return fen_of(obj.get(name), field=name)
    except AmountError as exc:
        raise Refusal("MALFORMED", str(exc)) from None


def _post_request(data: dict[str, Any], fixmedins_code: str, infno: str) -> PostRequest:
    version = data.get("expected_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise Refusal("MALFORMED", "expected_version must be an integer")
    return PostRequest(
        fixmedins_code=fixmedins_code,
        infno=_text(data, "infno", default=infno),
        psn_no=_text(data, "psn_no"),
        medfee_sumamt=_fen(data, "medfee_sumamt"),
        inscp_scp_amt=_fen(data, "inscp_scp_amt"),
        fund_pay_sumamt=_fen(data, "fund_pay_sumamt"),
        acct_pay=_fen(data, "acct_pay"),
        psn_cash_pay=_fen(data, "psn_cash_pay"),
        expected_version=version,
        setl_time=_text(data, "setl_time"),
    )


def _person_out(p: Person) -> dict[str, Any]:
    return {
        "baseinfo": {"psn_no": p.psn_no, "psn_cert_type": "01", "certno": p.certno, "psn_name": p.psn_name,
                     "gend": p.gend, "brdy": p.brdy},
        "insuinfo": [{"balc": yuan_number(p.balance), "insutype": p.insutype, "psn_type": p.psn_type,
                      "psn_insu_stas": "1" if p.active else "2",
                      "paus_insu_rea": None if p.active else p.status,
                      "insuplc_admdvs": p.insuplc_admdvs}],
        "accuinfo": {"year": p.acc_year, "inscp_ytd": yuan_number(p.inscp_ytd),
                     "fund_paid_ytd": yuan_number(p.fund_paid_ytd)},
        "version": p.version,
    }  # fmt: skip


def _posted_out(r: PostReceipt) -> dict[str, Any]:
    return {"setlinfo": {"setl_id": r.setl_id, "medins_setl_id": r.msgid, "balc": yuan_number(r.balc),
                         "version": r.version}}  # fmt: skip


def _cancelled_out(r: CancelReceipt) -> dict[str, Any]:
    return {
        "setlinfo": {
            "setl_id": r.setl_id,
            "orig_setl_id": r.orig_setl_id,
            "medfee_sumamt": yuan_number(r.medfee_sumamt),
            "fund_pay_sumamt": yuan_number(r.fund_pay_sumamt),
            "acct_pay": yuan_number(r.acct_pay),
            "psn_cash_pay": yuan_number(r.psn_cash_pay),
            "balc": yuan_number(r.balc),
            "version": r.version,
        }
    }


def _statement_out(state: CoreState, fixmedins_code: str, data: dict[str, Any]) -> dict[str, Any]:
    """3202: the institution's settlements on stmt_begndate..stmt_enddate, in their current states."""
    first, last = _date(data, "stmt_begndate"), _date(data, "stmt_enddate")
    if last < first:
        raise Refusal("MALFORMED", "stmt_enddate is before stmt_begndate")
    return {"details": [_detail_out(s) for s in state.statement(fixmedins_code, first, last)]}


def _detail_out(s: Settlement) -> dict[str, Any]:
    r = s.request
    return {
        "medins_setl_id": s.msgid,  # the sender's msgid, as the 2207 reply names it
        "setl_id": s.setl_id,
        "fixmedins_code": r.fixmedins_code,
        "infno": r.infno,
        "setl_time": r.setl_time,
        "setl_stas": s.state.value,
        "medfee_sumamt": yuan_number(r.medfee_sumamt),
        "fund_pay_sumamt": yuan_number(r.fund_pay_sumamt),
        "acct_pay": yuan_number(r.acct_pay),
        "psn_cash_pay": yuan_number(r.psn_cash_pay),
    }
