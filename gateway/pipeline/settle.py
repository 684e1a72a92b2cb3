"""Pre-settlement (2206/2101) and settlement (2207/2102): PIN policy, rules, posting with optimistic
versioning, default-PIN reservations, and the journal effects of every outcome (SPEC §6.3, §7, §9)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.domain import pin as pin_policy
from gateway.domain.codes import ResultCode
from gateway.domain.core import PersonRecord, Posting
from gateway.domain.effects import Effect, NewSettlement, ReleaseDefaultPin
from gateway.domain.envelope import Envelope
from gateway.domain.errors import CoreRejected, CoreTimeout, Declined
from gateway.domain.inputs import SettleInput
from gateway.domain.journal import StaleClaim
from gateway.domain.money import fen_to_wire
from gateway.domain.registry import Settlement, SettlementState
from gateway.domain.txtypes import Kind
from gateway.pipeline import by_reference, inline_batch, stay_settle
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.line_check import check_line
from gateway.pipeline.owed import owed_effects
from gateway.pipeline.reply import Outcome
from rules.policy import NoPolicy
from rules.pricing import FeeLine, PricedLine, UnknownItem, price_lines
from rules.split import PersonYear, Split, fund_details, split

_RETRYABLE = frozenset({"VERSION_CONFLICT", "INSUFFICIENT_BALANCE"})
MAX_POST_ATTEMPTS = 3


def check_amounts(inp: SettleInput) -> None:
    """Line items must sum to medfee_sumamt, and each line's cnt × pric must match its amount to the fen.

    Raises:
        Declined: AMOUNT_MISMATCH naming the line.
    """
    for i, item in enumerate(inp.items):
        check_line(f"input.feedetail[{i}]", item.cnt, item.pric, item.amount)
    total = sum(item.amount for item in inp.items)
    if total != inp.medfee_sumamt:
        raise Declined(
            ResultCode.AMOUNT_MISMATCH,
            f"feedetail sums to {fen_to_wire(total)} but medfee_sumamt is {fen_to_wire(inp.medfee_sumamt)}",
        )


def priced(d: Deps, inp: SettleInput) -> list[PricedLine]:
    """Catalogue classes and caps for every line."""
    try:
        return price_lines([FeeLine(i.feedetl_sn, i.med_list_codg, i.amount, i.cnt) for i in inp.items], d.catalogue)
    except UnknownItem as exc:
        raise Declined(ResultCode.ITEM_UNKNOWN, f"med_list_codg {exc.code} is not in the catalogue") from None


def compute(
    d: Deps,
    txn: Txn,
    inp: SettleInput,
    person: PersonRecord,
    lines: list[PricedLine],
    allowance: pin_policy.AccountAllowance,
    stay_inscp: int = 0,
) -> Split:
    """The SPEC §9 split under the policy of (institution region and level, person, med_type); `stay_inscp`,
    the in-scope cost an inpatient stay already settled, takes a per-visit deductible once per stay."""
    inst = txn.institution
    assert inst is not None
    try:
        policy = d.policies.select(
            inst.region, txn.received.date(), person.insutype, person.psn_type, inp.med_type, inst.level
        )
    except NoPolicy as exc:
        raise Declined(ResultCode.PERSON_NOT_ENTITLED, f"no benefit policy applies: {exc}") from None
    if stay_inscp and policy.deductible_scope == "visit":  # issue 12: once per stay (SPEC §6.7)
        policy = replace(policy, deductible=max(0, policy.deductible - stay_inscp))
    year = PersonYear(person.inscp_ytd, person.fund_paid_ytd, person.balance)
    return split(lines, policy, year, acct_limit=allowance.limit)


async def settle(d: Deps, txn: Txn) -> Outcome:
    """Pre-settlement (2206/2101) answers the split; settlement (2207/2102) also posts it, journaled before the
    answer."""
    env, inp = txn.request(SettleInput)
    card = txn.card
    assert card is not None
    s = d.settings
    person = await d.core_call(txn, "person", d.core.person(inp.psn_no, timeout=s.core_read_timeout_s))
    if person.insutype != inp.insutype:
        raise Declined(ResultCode.PERSON_NOT_ENTITLED, f"person is not insured under insutype {inp.insutype}")
    caps = d.policies.pin_caps(card.card_sn[:6])
    allowance = pin_policy.allowance(env.safe.pin, card.pin_mode, inp.acct_used_flag, caps, card.usage)
    batch, stay, stay_inscp, visit = None, None, 0, None
    if inp.mid_setl_flag is not None:  # issue 12: an inpatient stay's unsettled lines (SPEC §6.7)
        inp, stay, lines, stay_inscp = await stay_settle.load(d, txn, env, inp)
    elif inp.by_reference:  # issue 12: the lines of a visit's batch (SPEC §6.6)
        batch, lines = await by_reference.load(d, txn, env, inp)
    else:
        check_amounts(inp)
        lines = priced(d, inp)
        if inline_batch.applies(env, inp):  # issue 12: inline with mdtrt_id, an implicit 2204 (SPEC §6.6)
            visit = await inline_batch.visit(d, env, inp)
    result = compute(d, txn, inp, person, lines, allowance, stay_inscp)
    by_reference.check_totals(inp, result)
    if env.tx.kind is not Kind.SETTLE:
        return _outcome(txn, inp, person, result, None, person.balance - result.acct_pay, allowance.default_pin)
    if batch is not None:
        await by_reference.claim(d, txn, env, inp, batch)
    elif visit is not None:
        inp = await inline_batch.store_and_claim(d, txn, env, inp, visit, lines)
    elif stay is not None:
        await stay_settle.claim(d, txn, env, inp, stay)
    day = txn.received.date()
    reserved: int | None = None
    for attempt in range(1, MAX_POST_ATTEMPTS + 1):
        if allowance.default_pin:
            if reserved is not None:  # a retry: give back the previous attempt's reservation first
                await d.settlements.release_default_pin(card.card_sn, day, reserved)
            if not await d.settlements.reserve_default_pin(
                card.card_sn, day, result.acct_pay, caps.per_day, caps.per_day_count
            ):
                raise Declined(ResultCode.DEFAULT_PIN_LIMIT, "default-PIN daily limit reached for this card")
            reserved = result.acct_pay
        posting = Posting(
            env.msgid,
            env.infno,
            env.fixmedins_code,
            inp.psn_no,
            result.medfee_sumamt,
            result.inscp_scp_amt,
            result.fund_pay_sumamt,
            result.acct_pay,
            result.psn_cash_pay,
            person.version,
            f"{txn.received:%Y-%m-%d %H:%M:%S}",
        )
        record = Settlement(
            env.fixmedins_code,
            env.msgid,
            None,
            env.infno,
            inp.psn_no,
            card.card_sn,
            SettlementState.UNKNOWN,
            env.safe.pin,
            allowance.default_pin,
            result.medfee_sumamt,
            result.inscp_scp_amt,
            result.fund_pay_sumamt,
            result.acct_pay,
            result.psn_cash_pay,
            txn.received,
        )
        try:
            posted = await d.core_call(txn, "post", d.core.post_settlement(posting, timeout=s.core_timeout_s))
        except CoreTimeout:
            # Outcome unknown: journal it and owe the core a reversal before the terminal hears -1 (SPEC §5).
            txn.effects += [NewSettlement(record), *owed_effects(env, inp)]
            d.metrics.reversal_queued()
            raise
        except CoreRejected as exc:
            if exc.reason in _RETRYABLE and attempt < MAX_POST_ATTEMPTS:
                # Another settlement for this person moved the account on: recompute against fresh state.
                try:
                    person = await d.core_call(txn, "person", d.core.person(inp.psn_no, timeout=s.core_read_timeout_s))
                    result = compute(d, txn, inp, person, lines, allowance, stay_inscp)
                except BaseException:
                    _release(txn, card.card_sn, day, reserved)
                    raise
                continue
            _release(txn, card.card_sn, day, reserved)
            raise
        except Exception:
            _release(txn, card.card_sn, day, reserved)
            raise
        txn.effects.append(NewSettlement(replace(record, setl_id=posted.setl_id, state=SettlementState.POSTED)))
        return _outcome(txn, inp, person, result, posted.setl_id, posted.balc, allowance.default_pin)
    raise AssertionError("unreachable")  # pragma: no cover


async def recover(d: Deps, claim: StaleClaim, env: Envelope, inp: SettleInput) -> list[Effect]:
    """What `settle`'s CORE_TIMEOUT branch would have journaled, for a settlement whose process died; a
    pre-settlement posts nothing and owes nothing."""
    effects: list[Effect] = [*owed_effects(env, inp)]
    if effects and await d.settlements.settlement_by_msgid(claim.fixmedins_code, claim.msgid) is None:
        # Only the request is known: the split was computed from the core's state of that moment.
        record = Settlement(
            claim.fixmedins_code, claim.msgid, None, claim.infno, inp.psn_no, inp.card_sn, SettlementState.UNKNOWN,
            env.safe.pin, False, inp.medfee_sumamt, 0, 0, 0, 0, claim.received_at,
        )  # fmt: skip
        effects.insert(0, NewSettlement(record))
    return effects


def _release(txn: Txn, card_sn: str, day: Any, reserved: int | None) -> None:
    if reserved is not None:
        txn.effects.append(ReleaseDefaultPin(card_sn, day, reserved))


def _outcome(
    txn: Txn, inp: SettleInput, person: PersonRecord, r: Split, setl_id: str | None, balc: int, default_pin: bool
) -> Outcome:
    env = txn.env
    assert env is not None
    w = fen_to_wire
    setlinfo: dict[str, Any] = {}
    if setl_id is not None:
        setlinfo["setl_id"] = setl_id
    setlinfo.update(
        psn_no=person.psn_no,
        psn_name=person.psn_name,
        insutype=person.insutype,
        psn_type=person.psn_type,
        med_type=inp.med_type,
        setl_time=f"{txn.received:%Y-%m-%d %H:%M:%S}",
        medfee_sumamt=w(r.medfee_sumamt),
        fulamt_ownpay_amt=w(r.fulamt_ownpay_amt),
        overlmt_selfpay=w(r.overlmt_selfpay),
        preselfpay_amt=w(r.preselfpay_amt),
        inscp_scp_amt=w(r.inscp_scp_amt),
        act_pay_dedc=w(r.act_pay_dedc),
        hifp_pay=w(r.hifp_pay),
        fund_pay_sumamt=w(r.fund_pay_sumamt),
        psn_part_amt=w(r.psn_part_amt),
        acct_pay=w(r.acct_pay),
        psn_cash_pay=w(r.psn_cash_pay),
        hosp_part_amt=w(r.hosp_part_amt),
        balc=w(balc),
        medins_setl_id=env.msgid,
    )
    if inp.mdtrt_id:
        setlinfo["mdtrt_id"] = inp.mdtrt_id
    minted = inline_batch.applies(env, inp) and env.tx.kind is Kind.SETTLE  # the batch an inline 2207 stored
    if inp.chrg_bchno and (inp.by_reference or minted):
        setlinfo["chrg_bchno"] = inp.chrg_bchno
    output = {
        "setlinfo": setlinfo,
        "setldetail": [
            {"fund_pay_type": kind, "fund_payamt": w(amt)} for kind, amt in fund_details(r, person.insutype)
        ],
        "pin_settlement": {
            "pin_mode": txn.card.pin_mode if txn.card else None,
            "pin": env.safe.pin,
            # SPEC §7: true when the default-PIN caps held part of the account payment back into cash.
            "acct_pay_capped": default_pin and r.acct_pay_capped,
        },
    }
    return Outcome(output=output, acct=r.acct_pay, cash=r.psn_cash_pay, fund=r.fund_pay_sumamt)
