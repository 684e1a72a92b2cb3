"""The transaction table: one entry per infno saying what the gateway must know about it (SPEC §4.1, §5, §6).

Every place that once switched on an infno reads this table instead: the envelope parser (card-bearing,
sign-in), the MAC amount, the input parser, the pipeline's flow (by `kind`), what an unknown outcome owes the
core and how journal recovery closes it (`owes`), what a cancel or reversal may name, and what reconciliation
counts. Adding a transaction is one entry here and its flow (docs/architecture.md, "Adding a transaction").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypedDict

from gateway.domain import inputs
from gateway.domain import stay_inputs as _S
from gateway.domain.fields import amount, req_obj
from gateway.domain.money import Fen
from gateway.domain.priority import Priority, peek_infno
from gateway.domain.statement_input import parse_statement
from gateway.domain.visit_inputs import (
    parse_fee_cancel,
    parse_fee_upload,
    parse_register,
    parse_visit_cancel,
    parse_visit_info,
)

if TYPE_CHECKING:
    from gateway.domain.envelope import Envelope
    from gateway.domain.inputs import Input


class Kind(StrEnum):
    """What a transaction does; the pipeline runs one flow per kind (`gateway.pipeline.table`)."""

    SIGN_IN = "sign_in"
    SIGN_OUT = "sign_out"
    PERSON = "person"
    ENTITLEMENT = "entitlement"
    PRESETTLE = "presettle"
    SETTLE = "settle"
    CANCEL = "cancel"
    REVERSE = "reverse"
    STATEMENT = "statement"
    # issue 12: outpatient visits (SPEC §6.6)
    VISIT_REGISTER = "visit_register"
    VISIT_CANCEL = "visit_cancel"
    VISIT_INFO = "visit_info"
    FEE_UPLOAD = "fee_upload"
    FEE_CANCEL = "fee_cancel"
    # issue 12: inpatient stays (SPEC §6.7); 2303/2304 are PRESETTLE/SETTLE, 2305 is CANCEL
    STAY_ADMIT = "stay_admit"
    STAY_DISCHARGE = "stay_discharge"
    STAY_CHANGE = "stay_change"
    STAY_CANCEL = "stay_cancel"
    STAY_UNDISCHARGE = "stay_undischarge"
    STAY_FEE_UPLOAD = "stay_fee_upload"
    STAY_FEE_CANCEL = "stay_fee_cancel"


class Owes(StrEnum):
    """What the core is owed when the outcome of a core call is unknown (timeout, crash, lost journal write)."""

    NOTHING = "nothing"  # nothing the core does for it moves money
    REVERSAL = "reversal"  # a 2601 of this very message (a settlement or a cancel the core may have applied)
    ITS_REVERSAL = "its_reversal"  # a 2601 itself: the reversal it asked for is queued, and retried to the end


@dataclass(frozen=True, slots=True)
class TxType:
    """One infno: its parser, its flow's kind, and the facts the pipeline, recovery and reconciliation read."""

    infno: str
    name: str
    kind: Kind
    parse: Callable[[Envelope], Input]
    card_bearing: bool = False  # MAC1/TAC over a card (SPEC §4.1): card checks, replay of the card's atc
    amount_bearing: bool = False  # AMT of MAC1/TAC is input.data.medfee_sumamt (SPEC §4.3), else 0
    owes: Owes = Owes.NOTHING
    needs_session: bool = True  # a sign_no of 9001 is required (SPEC §6.1)
    records_settlement: bool = False  # journals a settlement row, counted by 3201/3202 and `onecard reconcile`
    cancels: str | None = None  # for a cancel: the infno of the settlements it may cancel
    reversible: bool = False  # may be the oinfno of a 2601 (SPEC §6.4)
    refuses_listed_person: bool = True  # False: a listed person is reported by the flow, not refused (2001)
    priority: Priority = Priority.ESSENTIAL  # load shedding, lowest first (issue 11 item 8; never: ESSENTIAL)


def _reverse(env: Envelope) -> Input:
    return inputs.parse_reverse(env, REVERSIBLE)


_P = inputs


class _Carries(TypedDict):
    card_bearing: bool
    amount_bearing: bool


_CARD = _Carries(card_bearing=True, amount_bearing=False)
_AMOUNT = _Carries(card_bearing=True, amount_bearing=True)
_Q, _PRE = Priority.QUERY, Priority.PRESETTLE
# fmt: off
TABLE: tuple[TxType, ...] = (
    TxType("9001", "sign-in", Kind.SIGN_IN, _P.parse_sign_in, needs_session=False),
    TxType("9002", "sign-out", Kind.SIGN_OUT, _P.parse_sign_out),
    TxType("1101", "person information", Kind.PERSON, _P.parse_person, **_CARD, priority=_Q),
    TxType("2001", "person entitlement check", Kind.ENTITLEMENT, _P.parse_entitlement, **_CARD,
           refuses_listed_person=False, priority=_Q),
    TxType("2206", "outpatient pre-settlement", Kind.PRESETTLE, _P.parse_settle, **_AMOUNT, priority=_PRE),
    TxType("2207", "outpatient settlement", Kind.SETTLE, _P.parse_settle, **_AMOUNT,
           owes=Owes.REVERSAL, records_settlement=True, reversible=True),
    TxType("2101", "pharmacy pre-settlement", Kind.PRESETTLE, _P.parse_settle, **_AMOUNT, priority=_PRE),
    TxType("2102", "pharmacy settlement", Kind.SETTLE, _P.parse_settle, **_AMOUNT,
           owes=Owes.REVERSAL, records_settlement=True, reversible=True),
    TxType("2208", "outpatient cancel", Kind.CANCEL, _P.parse_cancel,
           owes=Owes.REVERSAL, cancels="2207", reversible=True),
    TxType("2103", "pharmacy cancel", Kind.CANCEL, _P.parse_cancel,
           owes=Owes.REVERSAL, cancels="2102", reversible=True),
    TxType("2601", "reversal", Kind.REVERSE, _reverse, owes=Owes.ITS_REVERSAL),
    TxType("3201", "reconciliation totals", Kind.STATEMENT, parse_statement, priority=_Q),
    TxType("3202", "reconciliation details", Kind.STATEMENT, parse_statement, priority=_Q),
    # issue 12: outpatient visits, card-less (SPEC §6.6); nothing moves money, shed with the pre-settlements
    TxType("2201", "outpatient registration", Kind.VISIT_REGISTER, parse_register, priority=_PRE),
    TxType("2202", "outpatient registration cancel", Kind.VISIT_CANCEL, parse_visit_cancel, priority=_PRE),
    TxType("2203", "outpatient visit information", Kind.VISIT_INFO, parse_visit_info, priority=_PRE),
    TxType("2204", "outpatient fee upload", Kind.FEE_UPLOAD, parse_fee_upload, priority=_PRE),
    TxType("2205", "outpatient fee upload cancel", Kind.FEE_CANCEL, parse_fee_cancel, priority=_PRE),
    # issue 12: inpatient stays (SPEC §6.7); card-less but 2303/2304, which are card-bearing as 2206/2207
    TxType("2401", "admission", Kind.STAY_ADMIT, _S.parse_admit, priority=_PRE),
    TxType("2402", "discharge", Kind.STAY_DISCHARGE, _S.parse_discharge, priority=_PRE),
    TxType("2403", "change of admission", Kind.STAY_CHANGE, _S.parse_adm_change, priority=_PRE),
    TxType("2404", "admission cancel", Kind.STAY_CANCEL, _S.parse_stay_ref, priority=_PRE),
    TxType("2405", "discharge cancel", Kind.STAY_UNDISCHARGE, _S.parse_stay_ref, priority=_PRE),
    TxType("2301", "inpatient fee upload", Kind.STAY_FEE_UPLOAD, _S.parse_stay_upload, priority=_PRE),
    TxType("2302", "inpatient fee upload cancel", Kind.STAY_FEE_CANCEL, _S.parse_stay_fee_cancel, priority=_PRE),
    TxType("2303", "inpatient pre-settlement", Kind.PRESETTLE, _S.parse_stay_settle, **_AMOUNT, priority=_PRE),
    TxType("2304", "inpatient settlement", Kind.SETTLE, _S.parse_stay_settle, **_AMOUNT,
           owes=Owes.REVERSAL, records_settlement=True, reversible=True),
    TxType("2305", "inpatient settlement cancel", Kind.CANCEL, _S.parse_stay_cancel,
           owes=Owes.REVERSAL, cancels="2304", reversible=True),
)
# fmt: on

TXTYPES: Mapping[str, TxType] = {t.infno: t for t in TABLE}
REVERSIBLE: tuple[str, ...] = tuple(t.infno for t in TABLE if t.reversible)
SETTLING: frozenset[str] = frozenset(t.infno for t in TABLE if t.records_settlement)


def txtype(infno: str) -> TxType:
    """The table's entry of a supported infno.

    Raises:
        KeyError: the infno is not a transaction of this gateway (the envelope parser refuses those first).
    """
    return TXTYPES[infno]


def parse_input(env: Envelope) -> Input:
    """Parse `input` for the envelope's infno.

    Raises:
        Declined: MALFORMED naming the first bad field.
    """
    return TXTYPES[env.infno].parse(env)


def mac_amount(env: Envelope) -> Fen:
    """AMT of MAC1/TAC: medfee_sumamt for the amount-bearing infnos, else 0 (SPEC §4.3)."""
    if TXTYPES[env.infno].amount_bearing:
        return amount(req_obj(env.input, "data", "input."), "medfee_sumamt", "input.data.")
    return Fen(0)


def priority_of(body: bytes) -> Priority:
    """The load-shedding priority of a callService body, read from its infno by a byte peek (the whole JSON
    is parsed only when the peek cannot tell); a body whose infno is unreadable or unknown is refused cheaply
    by the pipeline anyway, so it ranks with the queries."""
    infno = peek_infno(body)
    if infno is None:
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):  # not JSON (or nested past the stack): MALFORMED is cheap
            return Priority.QUERY
        infno = obj.get("infno") if isinstance(obj, dict) else None
    tx = TXTYPES.get(infno) if isinstance(infno, str) else None
    return tx.priority if tx is not None else Priority.QUERY
