"""2208/2103 cancel of a settlement (SPEC §6.3), and how journal recovery closes a cancel that was cut short."""

from __future__ import annotations

from gateway.domain.codes import ResultCode
from gateway.domain.core import Cancellation
from gateway.domain.effects import Effect, ReleaseDefaultPin, SetSettlementState
from gateway.domain.envelope import Envelope
from gateway.domain.errors import CoreTimeout, Declined
from gateway.domain.inputs import CancelInput
from gateway.domain.journal import StaleClaim
from gateway.domain.money import fen_to_wire
from gateway.domain.registry import CANCELLED_OR_CANCELLING
from gateway.domain.registry import SettlementState as S
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.owed import owed_effects
from gateway.pipeline.reply import Outcome


async def cancel(d: Deps, txn: Txn) -> Outcome:
    """2208/2103: cancel a settlement of this institution, restoring account and accumulators."""
    env, inp = txn.request(CancelInput)
    store = d.settlements
    s = await store.settlement_by_setl_id(inp.setl_id)
    want = env.tx.cancels
    if s is None or s.fixmedins_code != env.fixmedins_code or s.psn_no != inp.psn_no or s.infno != want:
        raise Declined(
            ResultCode.SETTLEMENT_NOT_FOUND,
            f"no {want} settlement {inp.setl_id} of this institution for this person",
        )
    if s.state in CANCELLED_OR_CANCELLING:
        raise Declined(ResultCode.ALREADY_CANCELLED, f"settlement {inp.setl_id} is already cancelled")
    if inp.mdtrt_id is not None:  # issue 12: a visit's settlement names its visit (SPEC §6.6)
        ref = await d.visits.batch_of(s.fixmedins_code, s.msgid)
        if ref is None or ref[0] != inp.mdtrt_id:
            raise Declined(ResultCode.SETTLEMENT_NOT_FOUND, f"settlement {inp.setl_id} is not of visit {inp.mdtrt_id}")
    if s.state != S.POSTED or not await store.transition(s.fixmedins_code, s.msgid, S.POSTED, S.CANCELLING):
        again = await store.settlement_by_setl_id(inp.setl_id)
        if again is not None and again.state in CANCELLED_OR_CANCELLING:
            raise Declined(ResultCode.ALREADY_CANCELLED, f"settlement {inp.setl_id} is already cancelled")
        raise Declined(ResultCode.SETTLEMENT_NOT_FOUND, f"settlement {inp.setl_id} is {s.state.lower()}")
    req = Cancellation(env.msgid, env.infno, env.fixmedins_code, inp.psn_no, inp.setl_id)
    try:
        c = await d.core_call(txn, "cancel", d.core.cancel_settlement(req, timeout=d.settings.core_timeout_s))
    except CoreTimeout:
        # The core may have cancelled: undo our cancel at the core (2601 of this msgid) before answering -1.
        # The settlement stays CANCELLING, tied to this cancel, until the reversal worker restores it.
        txn.effects += [
            SetSettlementState(s.fixmedins_code, s.msgid, S.CANCELLING, cancel_msgid=env.msgid),
            *owed_effects(env, inp),
        ]
        d.metrics.reversal_queued()
        raise
    except Exception:
        txn.effects.append(SetSettlementState(s.fixmedins_code, s.msgid, S.POSTED))
        raise
    txn.effects.append(SetSettlementState(s.fixmedins_code, s.msgid, S.CANCELLED, env.msgid, c.setl_id, txn.received))
    if s.default_pin and s.setl_time.astimezone(d.tz).date() == txn.received.date():
        txn.effects.append(ReleaseDefaultPin(s.card_sn, txn.received.date(), s.acct_pay))
    return Outcome(
        output={
            "setlinfo": {
                "setl_id": c.setl_id,
                "orig_setl_id": c.orig_setl_id,
                "medfee_sumamt": fen_to_wire(c.medfee_sumamt),
                "fund_pay_sumamt": fen_to_wire(c.fund_pay_sumamt),
                "acct_pay": fen_to_wire(c.acct_pay),
                "psn_cash_pay": fen_to_wire(c.psn_cash_pay),
                "pdn_cash_pay": fen_to_wire(c.psn_cash_pay),  # the national document's spelling (SPEC §6.6)
                "balc": fen_to_wire(c.balc),
            }
        },
        acct=c.acct_pay,
        cash=c.psn_cash_pay,
        fund=c.fund_pay_sumamt,
    )


async def recover(d: Deps, claim: StaleClaim, env: Envelope, inp: CancelInput) -> list[Effect]:
    """What `cancel`'s CORE_TIMEOUT branch would have journaled, for a cancel whose process died."""
    effects: list[Effect] = []
    code = claim.fixmedins_code
    s = await d.settlements.settlement_by_setl_id(inp.setl_id)
    if s is not None and s.fixmedins_code == code and s.state == S.CANCELLING and s.cancel_msgid is None:
        # This cancel took the settlement and died: tie it to this msgid so the reversal restores it.
        effects.append(SetSettlementState(code, s.msgid, S.CANCELLING, cancel_msgid=claim.msgid))
    return [*effects, *owed_effects(env, inp)]
