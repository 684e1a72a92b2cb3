"""Outpatient visits (SPEC §6.6): 2201 registration, 2202 its cancel, 2203 visit information. Card-less; the
visit, its batches and lines live behind the visits port, never at the core."""

from __future__ import annotations

from gateway.domain.codes import ResultCode
from gateway.domain.core import PersonRecord
from gateway.domain.errors import CoreRejected, Declined
from gateway.domain.visit_inputs import RegisterInput, VisitInfoInput, VisitRef
from gateway.domain.visits import BatchSettled, Visit, VisitClosed
from gateway.pipeline.checks import lists
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.reply import Outcome


async def visit_of(d: Deps, code: str, mdtrt_id: str, psn_no: str) -> Visit:
    """The visit of this institution and person.

    Raises:
        Declined: VISIT_NOT_FOUND (unknown here, or of another institution), MALFORMED naming psn_no.
    """
    v = await d.visits.visit(code, mdtrt_id)
    if v is None:
        raise Declined(ResultCode.VISIT_NOT_FOUND, f"no visit {mdtrt_id} at this institution")
    if v.psn_no != psn_no:
        raise Declined(ResultCode.MALFORMED, f"psn_no: is not the person of visit {mdtrt_id}")
    return v


def open_visit(v: Visit) -> None:
    """Raises Declined VISIT_STATE unless the visit is registered (not cancelled)."""
    if v.state != "REGISTERED":
        raise Declined(ResultCode.VISIT_STATE, f"visit {v.mdtrt_id} is {v.state}")


def settled(exc: BatchSettled) -> Declined:
    """BATCH_SETTLED naming the live settlement (its setl_id, null while the core has not answered it yet)."""
    h = exc.holder
    return Declined(
        ResultCode.BATCH_SETTLED,
        f"batch {exc.chrg_bchno} is settled by {h.setl_id or 'msgid ' + h.msgid}",
        {"setl_id": h.setl_id, "medins_setl_id": h.msgid, "chrg_bchno": exc.chrg_bchno},
    )


async def entitled_person(d: Deps, txn: Txn, psn_no: str, insutype: str) -> PersonRecord:
    """The person, known to the core, insured under insutype and not on the person list (2201, 2401).

    Raises:
        Declined: PERSON_NOT_ENTITLED saying why.
    """
    try:
        p = await d.core_call(txn, "person", d.core.person(psn_no, timeout=d.settings.core_read_timeout_s))
    except CoreRejected as exc:
        if exc.reason != "PERSON_NOT_FOUND":
            raise
        raise Declined(ResultCode.PERSON_NOT_ENTITLED, f"person {psn_no} is not known to the core") from None
    _card, reason = await lists(d, None, psn_no)
    if reason:
        raise Declined(ResultCode.PERSON_NOT_ENTITLED, f"person is not entitled (reason {reason})", {"reason": reason})
    if p.psn_insu_stas != "1":
        raise Declined(ResultCode.PERSON_NOT_ENTITLED, f"the person's insurance is suspended ({p.psn_insu_stas})")
    if p.insutype != insutype:
        raise Declined(ResultCode.PERSON_NOT_ENTITLED, f"person is not insured under insutype {insutype}")
    return p


async def register(d: Deps, txn: Txn) -> Outcome:
    """2201: the person must be entitled (`entitled_person`); the same ipt_otp_no again answers the same
    mdtrt_id."""
    env, inp = txn.request(RegisterInput)
    p = await entitled_person(d, txn, inp.psn_no, inp.insutype)
    inst = txn.institution
    assert inst is not None
    mint = f"{inst.region}{txn.received:%Y%m%d%H%M%S}"
    v = await d.visits.register(
        env.fixmedins_code, inp.ipt_otp_no, inp.psn_no, inp.insutype, p.psn_type, inp.begntime, inp.info, mint
    )
    if v.psn_no != inp.psn_no:
        raise Declined(ResultCode.MALFORMED, f"input.data.ipt_otp_no: {inp.ipt_otp_no} is another person's visit")
    return Outcome(output={"data": {"mdtrt_id": v.mdtrt_id, "psn_no": v.psn_no, "ipt_otp_no": v.ipt_otp_no}})


async def cancel_registration(d: Deps, txn: Txn) -> Outcome:
    """2202: refused VISIT_STATE while any settlement of the visit is live."""
    env, inp = txn.request(VisitRef)
    v = await visit_of(d, env.fixmedins_code, inp.mdtrt_id, inp.psn_no)
    if v.ipt_otp_no != inp.ipt_otp_no:
        raise Declined(ResultCode.MALFORMED, f"input.data.ipt_otp_no: is not the visit's ({v.ipt_otp_no})")
    open_visit(v)
    try:
        await d.visits.cancel_visit(env.fixmedins_code, v.mdtrt_id)
    except BatchSettled as exc:
        h = exc.holder
        raise Declined(
            ResultCode.VISIT_STATE,
            f"visit {v.mdtrt_id} has a live settlement ({h.setl_id or h.msgid}): cancel it first (2208)",
            {"setl_id": h.setl_id},
        ) from None
    except VisitClosed as exc:
        raise Declined(ResultCode.VISIT_STATE, f"visit {v.mdtrt_id} is {exc.state}") from None
    return Outcome(output={"data": {"mdtrt_id": v.mdtrt_id, "psn_no": v.psn_no, "ipt_otp_no": v.ipt_otp_no}})


async def visit_info(d: Deps, txn: Txn) -> Outcome:
    """2203: sets the visit's med_type (2206/2207 must match it) and stores the rest."""
    env, inp = txn.request(VisitInfoInput)
    v = await visit_of(d, env.fixmedins_code, inp.mdtrt_id, inp.psn_no)
    open_visit(v)
    try:
        await d.visits.set_visit_info(env.fixmedins_code, v.mdtrt_id, inp.med_type, inp.info)
    except VisitClosed as exc:
        raise Declined(ResultCode.VISIT_STATE, f"visit {v.mdtrt_id} is {exc.state}") from None
    return Outcome(output={"data": {"mdtrt_id": v.mdtrt_id, "med_type": inp.med_type}})
