"""2206/2207 by reference (SPEC §6.6): the lines are those of the visit's batch uploaded by 2204, and a batch
settles at most once while live. The claim ties the batch to this 2207's msgid before the core is asked; it is
live while the journal row is PENDING and while the settlement is UNKNOWN, POSTED or CANCELLING, so the journal,
unknown-outcome and reversal machinery of every 2207 also frees the batch (CANCELLED, REVERSED)."""

from __future__ import annotations

import asyncio

from gateway.domain.codes import ResultCode
from gateway.domain.envelope import Envelope
from gateway.domain.errors import Declined
from gateway.domain.inputs import SettleInput
from gateway.domain.money import fen_to_wire
from gateway.domain.visits import Batch, BatchChanged, BatchSettled, Holder, VisitClosed
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.visits import open_visit, settled, visit_of
from rules.pricing import FeeLine, PricedLine, UnknownItem, price_lines
from rules.split import Split

WAIT_STEP_S = 0.05  # how often a 2207 that lost the claim looks whether the winner's answer is in


async def load(d: Deps, txn: Txn, env: Envelope, inp: SettleInput) -> tuple[Batch, list[PricedLine]]:
    """The batch to settle, priced; BATCH_SETTLED first, then NO_FEES, AMOUNT_MISMATCH and the visit's med_type.

    Raises:
        Declined: VISIT_NOT_FOUND, MALFORMED (psn_no), VISIT_STATE, BATCH_SETTLED, NO_FEES, AMOUNT_MISMATCH,
        ITEM_UNKNOWN.
    """
    assert inp.mdtrt_id is not None
    assert inp.chrg_bchno is not None
    v = await visit_of(d, env.fixmedins_code, inp.mdtrt_id, inp.psn_no)
    open_visit(v)
    b = await d.visits.batch(env.fixmedins_code, inp.mdtrt_id, inp.chrg_bchno)
    if b is not None and b.holder is not None:
        raise settled(BatchSettled(b.chrg_bchno, await _answered(d, env, inp, b.holder)))
    if b is None or not b.lines:
        raise Declined(ResultCode.NO_FEES, f"batch {inp.chrg_bchno} of visit {inp.mdtrt_id} has no fee lines")
    if b.total != inp.medfee_sumamt:
        raise Declined(
            ResultCode.AMOUNT_MISMATCH,
            f"batch {b.chrg_bchno} sums to {fen_to_wire(b.total)}"
            f" but medfee_sumamt is {fen_to_wire(inp.medfee_sumamt)}",
        )
    if v.med_type is not None and v.med_type != inp.med_type:
        raise Declined(ResultCode.VISIT_STATE, f"med_type {inp.med_type} is not the visit's ({v.med_type}, by 2203)")
    try:
        lines = price_lines([FeeLine(x.feedetl_sn, x.med_list_codg, x.amount, x.cnt) for x in b.lines], d.catalogue)
    except UnknownItem as exc:  # the catalogue changed since the upload
        raise Declined(ResultCode.ITEM_UNKNOWN, f"med_list_codg {exc.code} is not in the catalogue") from None
    return b, lines


def check_totals(inp: SettleInput, result: Split) -> None:
    """The four totals the HIS may send must be the gateway's split.

    Raises:
        Declined: AMOUNT_MISMATCH naming the total.
    """
    for name, sent in inp.his_totals:
        mine = getattr(result, name)
        if sent != mine:
            raise Declined(
                ResultCode.AMOUNT_MISMATCH,
                f"input.data.{name}: {fen_to_wire(sent)} but the split gives {fen_to_wire(mine)}",
            )


async def claim(d: Deps, txn: Txn, env: Envelope, inp: SettleInput, b: Batch) -> None:
    """Tie the batch to this 2207 before the core is asked.

    Raises:
        Declined: BATCH_SETTLED naming the live settlement (waited for while still at the core), VISIT_STATE,
        AMOUNT_MISMATCH when the batch changed since it was read.
    """
    assert inp.mdtrt_id is not None
    try:
        await d.visits.claim_batch(env.fixmedins_code, inp.mdtrt_id, b.chrg_bchno, env.msgid, b.version)
    except BatchSettled as exc:
        raise settled(BatchSettled(exc.chrg_bchno, await _answered(d, env, inp, exc.holder))) from None
    except BatchChanged:
        why = f"batch {b.chrg_bchno} changed while settling: send it again"
        raise Declined(ResultCode.AMOUNT_MISMATCH, why) from None
    except VisitClosed as exc:
        raise Declined(ResultCode.VISIT_STATE, f"visit {inp.mdtrt_id} is {exc.state}") from None
    txn.trace.append("batch claimed")


async def _answered(d: Deps, env: Envelope, inp: SettleInput, holder: Holder) -> Holder:
    """The holder once the core has answered it (a 2207 still at the core has no setl_id yet), waiting at
    most the core's timeout; the holder as it was when the wait ran out."""
    if not holder.pending or not env.tx.records_settlement:
        return holder
    assert inp.mdtrt_id is not None
    assert inp.chrg_bchno is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + d.settings.core_timeout_s + 1.0
    while loop.time() < deadline:
        await asyncio.sleep(WAIT_STEP_S)
        b = await d.visits.batch(env.fixmedins_code, inp.mdtrt_id, inp.chrg_bchno)
        now = None if b is None else b.holder
        if now is None or now.msgid != holder.msgid:
            return holder
        if not now.pending:
            return now
    return holder
