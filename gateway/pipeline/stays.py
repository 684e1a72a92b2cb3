"""Inpatient stays (SPEC §6.7): 2401 admission, 2402 discharge, 2403 change of admission, 2404 cancel of the
admission, 2405 cancel of the discharge. Card-less; the stay lives behind the stays port, never at the core."""

from __future__ import annotations

from collections.abc import Collection

from gateway.domain.codes import ResultCode
from gateway.domain.errors import Declined
from gateway.domain.stays import AdmitInput, Stay, StayChange
from gateway.domain.visits import BatchSettled, VisitClosed
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.reply import Outcome
from gateway.pipeline.visits import entitled_person, settled


async def stay_of(d: Deps, code: str, mdtrt_id: str, psn_no: str) -> Stay:
    """The stay of this institution and person.

    Raises:
        Declined: VISIT_NOT_FOUND (unknown here, of another institution, or an outpatient visit), MALFORMED
        naming psn_no.
    """
    s = await d.stays.stay(code, mdtrt_id)
    if s is None:
        raise Declined(ResultCode.VISIT_NOT_FOUND, f"no inpatient stay {mdtrt_id} at this institution")
    if s.visit.psn_no != psn_no:
        raise Declined(ResultCode.MALFORMED, f"psn_no: is not the person of stay {mdtrt_id}")
    return s


def state_refused(mdtrt_id: str, state: str, what: str) -> Declined:
    """VISIT_STATE naming the stay's state."""
    return Declined(ResultCode.VISIT_STATE, f"stay {mdtrt_id} is {state}: {what} is not allowed")


async def admit(d: Deps, txn: Txn) -> Outcome:
    """2401: the person must be known, insured under insutype and not listed; the same ipt_no again answers
    the same mdtrt_id."""
    env, inp = txn.request(AdmitInput)
    p = await entitled_person(d, txn, inp.psn_no, inp.insutype)
    inst = txn.institution
    assert inst is not None
    mint = f"{inst.region}{txn.received:%Y%m%d%H%M%S}"
    v = await d.stays.admit(
        env.fixmedins_code, inp.ipt_no, inp.psn_no, inp.insutype, p.psn_type, inp.med_type, inp.begntime, inp.info,
        mint,
    )  # fmt: skip
    if v.psn_no != inp.psn_no:
        raise Declined(ResultCode.MALFORMED, f"input.mdtrtinfo.ipt_no: {inp.ipt_no} is another person's stay")
    return Outcome(output={"result": {"mdtrt_id": v.mdtrt_id, "psn_no": v.psn_no, "ipt_no": v.ipt_otp_no}})


async def _change(
    d: Deps, txn: Txn, allowed: Collection[str], to: str | None, what: str, empty: bool = False
) -> Outcome:
    env, inp = txn.request(StayChange)
    s = await stay_of(d, env.fixmedins_code, inp.mdtrt_id, inp.psn_no)
    if s.state not in allowed:
        raise state_refused(s.visit.mdtrt_id, s.state, what)
    try:
        await d.stays.change(env.fixmedins_code, inp.mdtrt_id, allowed, to, inp.info, empty=empty)
    except VisitClosed as exc:
        raise state_refused(s.visit.mdtrt_id, exc.state, what) from None
    except BatchSettled as exc:  # pragma: no cover - the port raises it only for a claim
        raise settled(exc) from None
    return Outcome(output={"data": {"mdtrt_id": inp.mdtrt_id, "psn_no": inp.psn_no, "stas": to or s.state}})


async def discharge(d: Deps, txn: Txn) -> Outcome:
    """2402: ADMITTED → DISCHARGED."""
    return await _change(d, txn, ("ADMITTED",), "DISCHARGED", "discharge (2402)")


async def change_admission(d: Deps, txn: Txn) -> Outcome:
    """2403: the admission's fields, while ADMITTED."""
    return await _change(d, txn, ("ADMITTED",), None, "a change of admission (2403)")


async def cancel_admission(d: Deps, txn: Txn) -> Outcome:
    """2404: refused while fee lines or a settlement exist."""
    return await _change(d, txn, ("ADMITTED",), "CANCELLED", "cancelling the admission (2404)", empty=True)


async def cancel_discharge(d: Deps, txn: Txn) -> Outcome:
    """2405: DISCHARGED → ADMITTED; refused (SETTLED) while a final settlement is live."""
    return await _change(d, txn, ("DISCHARGED",), "ADMITTED", "cancelling the discharge (2405)")
