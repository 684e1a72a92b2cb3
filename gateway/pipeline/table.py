"""The pipeline's half of the transaction table: the flow that runs each kind of transaction and how journal
recovery closes one whose process died (`gateway.domain.txtypes` holds the rest, pure)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.domain.effects import Effect
from gateway.domain.txtypes import Kind
from gateway.pipeline import (
    cancel,
    entitlement,
    fees,
    person,
    reverse,
    session,
    settle,
    statements,
    stay_fees,
    stays,
    visits,
)
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.reply import Outcome

Flow = Callable[[Deps, Txn], Awaitable[Outcome]]
# (deps, claim, envelope, input) -> the effects the flow's unknown-outcome branch would have journaled
Recover = Callable[[Deps, Any, Any, Any], Awaitable[list[Effect]]]


@dataclass(frozen=True, slots=True)
class Handling:
    """How the pipeline runs a kind of transaction."""

    flow: Flow
    recover: Recover | None = None  # None: nothing moves at the core, recovery owes nothing


FLOWS: Mapping[Kind, Handling] = {
    Kind.SIGN_IN: Handling(session.sign_in),
    Kind.SIGN_OUT: Handling(session.sign_out),
    Kind.PERSON: Handling(person.person_info),
    Kind.ENTITLEMENT: Handling(entitlement.entitlement),
    Kind.PRESETTLE: Handling(settle.settle),
    Kind.SETTLE: Handling(settle.settle, settle.recover),
    Kind.CANCEL: Handling(cancel.cancel, cancel.recover),
    Kind.REVERSE: Handling(reverse.reverse, reverse.recover),
    Kind.STATEMENT: Handling(statements.statement),
    # issue 12: outpatient visits (SPEC §6.6); nothing of theirs moves money at the core
    Kind.VISIT_REGISTER: Handling(visits.register),
    Kind.VISIT_CANCEL: Handling(visits.cancel_registration),
    Kind.VISIT_INFO: Handling(visits.visit_info),
    Kind.FEE_UPLOAD: Handling(fees.upload),
    Kind.FEE_CANCEL: Handling(fees.cancel_fees),
    # issue 12: inpatient stays (SPEC §6.7); 2303/2304/2305 run the PRESETTLE/SETTLE/CANCEL flows above
    Kind.STAY_ADMIT: Handling(stays.admit),
    Kind.STAY_DISCHARGE: Handling(stays.discharge),
    Kind.STAY_CHANGE: Handling(stays.change_admission),
    Kind.STAY_CANCEL: Handling(stays.cancel_admission),
    Kind.STAY_UNDISCHARGE: Handling(stays.cancel_discharge),
    Kind.STAY_FEE_UPLOAD: Handling(stay_fees.upload),
    Kind.STAY_FEE_CANCEL: Handling(stay_fees.cancel_fees),
}
assert set(FLOWS) == set(Kind), "every kind of transaction needs a flow"
