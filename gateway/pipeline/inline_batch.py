"""An inline 2206/2207 naming a visit (`mdtrt_id` with `input.feedetail`, SPEC §6.6): an implicit 2204 of a
fresh batch. 2206 only checks the visit; 2207 stores its lines as batch `IL` + 26 hex digits of their SHA-256
(so a retry of the same lines names the same batch) and claims it exactly as a 2207 by reference does."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from gateway.domain.codes import ResultCode
from gateway.domain.envelope import Envelope
from gateway.domain.errors import Declined
from gateway.domain.inputs import SettleInput
from gateway.domain.visits import BatchSettled, LineDuplicate, StoredLine, Visit, VisitClosed
from gateway.pipeline import by_reference
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.fees import chrgitm_lv, visit_policy
from gateway.pipeline.visits import open_visit, settled, visit_of
from rules.pricing import PricedLine
from rules.split import line_parts

PREFIX = "IL"  # the gateway's batches; 2204 batches are the HIS's own names


def applies(env: Envelope, inp: SettleInput) -> bool:
    """An inline 2206/2207 with mdtrt_id; pharmacy 2101/2102 and inline requests without one are untouched."""
    return env.infno in ("2206", "2207") and not inp.by_reference and inp.mdtrt_id is not None


def mint(inp: SettleInput) -> str:
    """The batch's chrg_bchno: the same lines (feedetl_sn, code, cnt, pric, amount) always give the same one."""
    h = hashlib.sha256()
    for x in inp.items:
        h.update(
            f"{x.feedetl_sn}\x1f{x.med_list_codg}\x1f{x.cnt.normalize()}\x1f{x.pric.normalize()}\x1f{x.amount}\x1e".encode()
        )
    return PREFIX + h.hexdigest()[:26]


async def visit(d: Deps, env: Envelope, inp: SettleInput) -> Visit:
    """The open visit of this institution and person, whose med_type (by 2203) the request must send.

    Raises:
        Declined: VISIT_NOT_FOUND, MALFORMED (psn_no), VISIT_STATE.
    """
    assert inp.mdtrt_id is not None
    v = await visit_of(d, env.fixmedins_code, inp.mdtrt_id, inp.psn_no)
    open_visit(v)
    if v.med_type is not None and v.med_type != inp.med_type:
        raise Declined(ResultCode.VISIT_STATE, f"med_type {inp.med_type} is not the visit's ({v.med_type}, by 2203)")
    return v


async def store_and_claim(
    d: Deps, txn: Txn, env: Envelope, inp: SettleInput, v: Visit, lines: list[PricedLine]
) -> SettleInput:
    """Store the lines as the minted batch (unless a 2207 of the same lines already did) and claim it; the
    input now names the batch.

    Raises:
        Declined: BATCH_SETTLED (the same lines settled already), FEE_LINE_DUPLICATE (a feedetl_sn of another
        batch of the visit), VISIT_STATE, AMOUNT_MISMATCH (the batch changed while settling).
    """
    inp = replace(inp, chrg_bchno=mint(inp))
    assert inp.chrg_bchno is not None
    b = await d.visits.batch(env.fixmedins_code, v.mdtrt_id, inp.chrg_bchno)
    if b is None or not b.lines:
        parts = line_parts(lines, visit_policy(d, txn, v, inp.med_type).b_selfpay)
        stored = [
            StoredLine(
                x.feedetl_sn, inp.chrg_bchno, x.med_list_codg, x.cnt, x.pric, x.amount, part.fulamt_ownpay_amt,
                part.overlmt_selfpay, part.preselfpay_amt, part.inscp_scp_amt, chrgitm_lv(p.cls),
            )
            for x, p, part in zip(inp.items, lines, parts, strict=True)
        ]  # fmt: skip
        try:
            await d.visits.add_lines(env.fixmedins_code, v.mdtrt_id, inp.chrg_bchno, stored)
        except BatchSettled as exc:
            raise settled(exc) from None
        except VisitClosed as exc:
            raise Declined(ResultCode.VISIT_STATE, f"visit {v.mdtrt_id} is {exc.state}") from None
        except LineDuplicate as exc:
            b = await d.visits.batch(env.fixmedins_code, v.mdtrt_id, inp.chrg_bchno)
            if b is None or not b.lines:  # not a twin 2207 of the same lines storing them first
                why = f"{exc}: it is in another batch of visit {v.mdtrt_id}; settle that batch by reference"
                raise Declined(ResultCode.FEE_LINE_DUPLICATE, why) from None
        else:
            txn.trace.append("inline lines stored")
            b = await d.visits.batch(env.fixmedins_code, v.mdtrt_id, inp.chrg_bchno)
        assert b is not None
    await by_reference.claim(d, txn, env, inp, b)
    return inp
