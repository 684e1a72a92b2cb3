"""2303/2304 of an inpatient stay (SPEC §6.7): the lines are the stay's unsettled ones, refunds netted into
the lines they refund; a final settlement needs a discharged stay and happens at most once while live; the
deductible is taken once per stay. The claim ties every unsettled batch (and, for a final, the stay) to the
2304's msgid before the core is asked, and is live by the same rule as a 2207's batch claim."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

from gateway.domain.codes import ResultCode
from gateway.domain.envelope import Envelope
from gateway.domain.errors import Declined
from gateway.domain.inputs import SettleInput
from gateway.domain.money import fen_to_wire
from gateway.domain.stays import Stay
from gateway.domain.visits import BatchChanged, BatchSettled, Holder, VisitClosed
from gateway.pipeline.by_reference import WAIT_STEP_S
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.stays import state_refused, stay_of
from rules.pricing import FeeLine, PricedLine, UnknownItem, price_lines

FINAL = "0"


def final_settled(mdtrt_id: str, h: Holder) -> Declined:
    """BATCH_SETTLED naming the stay's live final settlement."""
    return Declined(
        ResultCode.BATCH_SETTLED,
        f"stay {mdtrt_id} has a live final settlement {h.setl_id or 'msgid ' + h.msgid}",
        {"setl_id": h.setl_id, "medins_setl_id": h.msgid},
    )


def netted(s: Stay) -> list[FeeLine]:
    """The unsettled lines with their refunds netted in; lines refunded in full drop out."""
    acc: dict[str, tuple[str, int, Decimal]] = {}
    for x in s.lines:
        key = x.init_feedetl_sn or x.feedetl_sn
        codg, amt, cnt = acc.get(key, (x.med_list_codg, 0, Decimal(0)))
        acc[key] = (codg if x.init_feedetl_sn else x.med_list_codg, amt + x.amount, cnt + x.cnt)
    return [FeeLine(sn, codg, amt, cnt) for sn, (codg, amt, cnt) in acc.items() if amt > 0 and cnt > 0]


async def load(d: Deps, txn: Txn, env: Envelope, inp: SettleInput) -> tuple[SettleInput, Stay, list[PricedLine], int]:
    """The stay, its netted lines priced, the input with the stay's med_type, and the in-scope cost of the
    stay's live settlements (for the deductible once per stay). BATCH_SETTLED first, then the state, NO_FEES
    and AMOUNT_MISMATCH.

    Raises:
        Declined: VISIT_NOT_FOUND, MALFORMED (psn_no), BATCH_SETTLED, VISIT_STATE, NO_FEES, AMOUNT_MISMATCH,
        ITEM_UNKNOWN.
    """
    assert inp.mdtrt_id is not None
    s = await stay_of(d, env.fixmedins_code, inp.mdtrt_id, inp.psn_no)
    if s.final is not None:
        raise final_settled(inp.mdtrt_id, await _answered(d, env, inp.mdtrt_id, s.final))
    final = inp.mid_setl_flag == FINAL
    need = "DISCHARGED" if final else "ADMITTED"
    if s.state != need:
        kind = "a final settlement (mid_setl_flag 0)" if final else "a mid-stay settlement (mid_setl_flag 1)"
        raise state_refused(inp.mdtrt_id, s.state, f"{kind} needs {need}, so it")
    lines = netted(s)
    if not lines:
        raise Declined(ResultCode.NO_FEES, f"stay {inp.mdtrt_id} has no unsettled fee lines")
    if s.total != inp.medfee_sumamt:
        raise Declined(
            ResultCode.AMOUNT_MISMATCH,
            f"the stay's unsettled lines sum to {fen_to_wire(s.total)}"
            f" but medfee_sumamt is {fen_to_wire(inp.medfee_sumamt)}",
        )
    med_type = s.visit.med_type or ""
    if inp.med_type and inp.med_type != med_type:
        raise Declined(ResultCode.VISIT_STATE, f"med_type {inp.med_type} is not the stay's ({med_type}, by 2401)")
    try:
        priced = price_lines(lines, d.catalogue)
    except UnknownItem as exc:
        raise Declined(ResultCode.ITEM_UNKNOWN, f"med_list_codg {exc.code} is not in the catalogue") from None
    before = 0
    for h in s.live:
        earlier = await d.settlements.settlement_by_msgid(env.fixmedins_code, h.msgid)
        before += 0 if earlier is None else earlier.inscp_scp_amt
    return dataclasses.replace(inp, med_type=med_type), s, priced, before


async def claim(d: Deps, txn: Txn, env: Envelope, inp: SettleInput, s: Stay) -> None:
    """Tie the stay's unsettled batches (and, final, the stay) to this 2304 before the core is asked.

    Raises:
        Declined: BATCH_SETTLED naming the live final settlement, VISIT_STATE, AMOUNT_MISMATCH when the lines
        changed since they were read.
    """
    assert inp.mdtrt_id is not None
    final = inp.mid_setl_flag == FINAL
    try:
        await d.stays.claim(env.fixmedins_code, inp.mdtrt_id, env.msgid, final, s.versions)
    except BatchSettled as exc:
        raise final_settled(inp.mdtrt_id, await _answered(d, env, inp.mdtrt_id, exc.holder)) from None
    except BatchChanged:
        raise Declined(
            ResultCode.AMOUNT_MISMATCH, f"stay {inp.mdtrt_id} changed while settling: send it again"
        ) from None
    except VisitClosed as exc:
        raise state_refused(inp.mdtrt_id, exc.state, "this settlement") from None
    txn.trace.append("stay claimed")


async def _answered(d: Deps, env: Envelope, mdtrt_id: str, holder: Holder) -> Holder:
    """The final settlement once the core has answered it (one still at the core has no setl_id yet), waiting
    at most the core's timeout, as a by-reference 2207 does; the holder as it was when the wait ran out."""
    if not holder.pending or not env.tx.records_settlement:
        return holder
    loop = asyncio.get_running_loop()
    deadline = loop.time() + d.settings.core_timeout_s + 1.0
    while loop.time() < deadline:
        await asyncio.sleep(WAIT_STEP_S)
        s = await d.stays.stay(env.fixmedins_code, mdtrt_id)
        now = None if s is None else s.final
        if now is None or now.msgid != holder.msgid:
            return holder
        if not now.pending:
            return now
    return holder
