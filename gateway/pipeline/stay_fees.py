"""2301 fee upload of an inpatient stay, refund lines included, and 2302 cancel of its fee lines (SPEC §6.7).
The per-line split is `fees.split_lines`, the code of 2204; a refund is split as its magnitude, negated."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.domain.codes import ResultCode
from gateway.domain.errors import Declined
from gateway.domain.money import Fen
from gateway.domain.stays import LineUnknown, RefundTooLarge, StayFeeCancel, StayUploadInput
from gateway.domain.visits import BatchSettled, LineDuplicate, StoredLine, VisitClosed
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.fees import split_lines, visit_policy
from gateway.pipeline.line_check import check_line
from gateway.pipeline.reply import Outcome
from gateway.pipeline.stays import state_refused, stay_of
from gateway.pipeline.visits import settled

_UPLOADS = ("ADMITTED", "DISCHARGED")
_NEGATED = ("amount", "fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt", "inscp_scp_amt")
_WIRE_NEGATED = ("det_item_fee_sumamt", "cnt", "fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt", "inscp_scp_amt")


def _negated(x: StoredLine, init: str) -> StoredLine:
    neg: dict[str, Any] = {k: -getattr(x, k) for k in _NEGATED}
    return dataclasses.replace(x, cnt=-x.cnt, init_feedetl_sn=init, **neg)


async def upload(d: Deps, txn: Txn) -> Outcome:
    """2301: price and split every line, then store them all or none; refused once the stay is SETTLED."""
    env, inp = txn.request(StayUploadInput)
    seen: set[str] = set()
    for i, sl in enumerate(inp.lines):
        line = sl.line
        if line.feedetl_sn in seen:
            raise Declined(
                ResultCode.FEE_LINE_DUPLICATE, f"input.feedetail[{i}].feedetl_sn: {line.feedetl_sn} twice in this call"
            )
        seen.add(line.feedetl_sn)
        check_line(f"input.feedetail[{i}]", abs(line.cnt), line.pric, abs(line.amount))
    s = await stay_of(d, env.fixmedins_code, inp.mdtrt_id, inp.psn_no)
    if s.state not in _UPLOADS:
        raise state_refused(inp.mdtrt_id, s.state, "a fee upload (2301)")
    magnitudes = [dataclasses.replace(x.line, cnt=abs(x.line.cnt), amount=Fen(abs(x.line.amount))) for x in inp.lines]
    stored, result = split_lines(d, visit_policy(d, txn, s.visit), "", magnitudes)
    for k, sl in enumerate(inp.lines):
        if sl.init_feedetl_sn is not None:
            stored[k] = _negated(stored[k], sl.init_feedetl_sn)
            result[k] = {key: -v if key in _WIRE_NEGATED else v for key, v in result[k].items()}
            result[k]["init_feedetl_sn"] = sl.init_feedetl_sn
    try:
        await d.stays.add_lines(env.fixmedins_code, inp.mdtrt_id, stored)
    except LineDuplicate as exc:
        raise Declined(ResultCode.FEE_LINE_DUPLICATE, str(exc)) from None
    except LineUnknown as exc:
        raise Declined(ResultCode.FEE_LINE_UNKNOWN, f"init_feedetl_sn: {exc}") from None
    except RefundTooLarge as exc:
        raise Declined(ResultCode.AMOUNT_MISMATCH, f"feedetl_sn {exc.feedetl_sn}: {exc}") from None
    except BatchSettled as exc:
        raise settled(exc) from None
    except VisitClosed as exc:
        raise state_refused(inp.mdtrt_id, exc.state, "a fee upload (2301)") from None
    return Outcome(output={"result": result})


async def cancel_fees(d: Deps, txn: Txn) -> Outcome:
    """2302: remove unsettled lines (and their refunds); settled lines stay (BATCH_SETTLED)."""
    env, inp = txn.request(StayFeeCancel)
    s = await stay_of(d, env.fixmedins_code, inp.mdtrt_id, inp.psn_no)
    if s.state not in _UPLOADS:
        raise state_refused(inp.mdtrt_id, s.state, "a fee cancel (2302)")
    try:
        n = await d.stays.remove_lines(env.fixmedins_code, inp.mdtrt_id, inp.feedetl_sns)
    except LineUnknown as exc:
        raise Declined(ResultCode.FEE_LINE_UNKNOWN, f"feedetl_sn: {exc}") from None
    except BatchSettled as exc:
        raise settled(exc) from None
    except VisitClosed as exc:
        raise state_refused(inp.mdtrt_id, exc.state, "a fee cancel (2302)") from None
    return Outcome(output={"data": {"mdtrt_id": inp.mdtrt_id, "removed": n}})
