"""2001 person entitlement check (SPEC §6.2.1): may the card holder settle today, here, for this med_type?
One answer per check, infcode 0 even when the person is not entitled; nothing is posted or counted."""

from __future__ import annotations

from gateway.domain.core import PersonRecord
from gateway.domain.inputs import EntitlementInput
from gateway.domain.money import fen_to_wire
from gateway.domain.registry import Institution
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.reply import Outcome
from rules.policy import NoPolicy

PERSON_STATUS, BENEFIT_POLICY, PERSONAL_ACCOUNT = "01", "02", "03"


def _check(kind: str, entitled: bool, why: str) -> dict[str, str]:
    return {"trt_chk_type": kind, "trt_enjymnt_flag": "1" if entitled else "0", "trt_chk_rslt": why}


def _person_status(listed_reason: str, p: PersonRecord) -> dict[str, str]:
    if listed_reason:
        return _check(PERSON_STATUS, False, f"the person is on the person list (reason {listed_reason})")
    if p.psn_insu_stas != "1":
        return _check(PERSON_STATUS, False, f"the person's insurance is suspended (psn_insu_stas {p.psn_insu_stas})")
    return _check(PERSON_STATUS, True, "the person is insured and not on the person list")


def _benefit_policy(d: Deps, txn: Txn, inst: Institution, inp: EntitlementInput, p: PersonRecord) -> dict[str, str]:
    if p.insutype != inp.insutype:
        return _check(BENEFIT_POLICY, False, f"the person is not insured under insutype {inp.insutype}")
    try:
        d.policies.select(inst.region, txn.received.date(), p.insutype, p.psn_type, inp.med_type, inst.level)
    except NoPolicy as exc:
        return _check(BENEFIT_POLICY, False, f"no benefit policy applies: {exc}")
    return _check(
        BENEFIT_POLICY, True, f"a benefit policy applies for med_type {inp.med_type} at level {inst.level} today"
    )


def _personal_account(p: PersonRecord) -> dict[str, str]:
    if p.balance > 0:
        return _check(PERSONAL_ACCOUNT, True, f"the personal account is usable (balance {fen_to_wire(p.balance)})")
    return _check(PERSONAL_ACCOUNT, False, "the personal account has no balance")


async def entitlement(d: Deps, txn: Txn) -> Outcome:
    """2001: the three checks of SPEC §6.2.1 for the card holder, from the person list, the policy book and the
    core's person record."""
    _env, inp = txn.request(EntitlementInput)
    inst = txn.institution
    assert inst is not None
    p = await d.core_call(txn, "person", d.core.person(inp.psn_no, timeout=d.settings.core_read_timeout_s))
    checks = [_person_status(txn.person_reason, p), _benefit_policy(d, txn, inst, inp, p), _personal_account(p)]
    return Outcome(output={"trtinfo": checks})
