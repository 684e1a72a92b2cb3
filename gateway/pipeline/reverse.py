"""2601 reversal of a settlement or a cancel (SPEC §6.4), and how journal recovery closes one cut short."""

from __future__ import annotations

from typing import Any

from gateway.domain.codes import ResultCode
from gateway.domain.core import Reversal
from gateway.domain.effects import Effect, ReleaseDefaultPin, SetSettlementState
from gateway.domain.envelope import Envelope
from gateway.domain.errors import CoreRejected, CoreTimeout, Declined
from gateway.domain.inputs import ReverseInput
from gateway.domain.journal import StaleClaim
from gateway.domain.registry import CANCELLED_OR_CANCELLING, Settlement
from gateway.domain.registry import SettlementState as S
from gateway.domain.txtypes import Kind, txtype
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.owed import owed_effects
from gateway.pipeline.reply import Outcome


async def _original(d: Deps, code: str, inp: ReverseInput) -> tuple[bool, Settlement | None]:
    """(the original is a cancel, the settlement it concerns)."""
    is_cancel = txtype(inp.oinfno).kind is Kind.CANCEL
    if is_cancel:
        return True, await d.settlements.settlement_by_cancel_msgid(code, inp.omsgid)
    return False, await d.settlements.settlement_by_msgid(code, inp.omsgid)


async def reverse(d: Deps, txn: Txn) -> Outcome:
    """2601: undo the original message at the core whether or not it got there; idempotent (SPEC §6.4)."""
    env, inp = txn.request(ReverseInput)
    code = env.fixmedins_code
    is_cancel, s = await _original(d, code, inp)
    if s is not None and s.psn_no != inp.psn_no:
        raise Declined(ResultCode.SETTLEMENT_NOT_FOUND, f"message {inp.omsgid} is not for this person")
    if s is not None and not is_cancel and s.state in CANCELLED_OR_CANCELLING:
        raise Declined(ResultCode.NOT_REVERSIBLE, f"settlement of {inp.omsgid} was cancelled: cancel wins")
    out: dict[str, Any] = {"data": {"omsgid": inp.omsgid, "oinfno": inp.oinfno, "rvs_stas": "1"}}
    if s is not None and not is_cancel and s.state == S.REVERSED:
        return Outcome(output=out)
    req = Reversal(env.msgid, code, inp.psn_no, inp.omsgid, inp.oinfno)
    try:
        await d.core_call(txn, "reverse", d.core.reverse(req, timeout=d.settings.core_timeout_s))
    except CoreRejected as exc:
        if exc.reason == "NOT_REVERSIBLE":
            raise Declined(ResultCode.NOT_REVERSIBLE, f"the core refuses to reverse {inp.omsgid}") from None
        raise
    except CoreTimeout:
        txn.effects += owed_effects(env, inp)
        d.metrics.reversal_queued()
        raise
    if s is not None:
        if is_cancel:
            txn.effects.append(SetSettlementState(code, s.msgid, S.POSTED))
        else:
            txn.effects.append(SetSettlementState(code, s.msgid, S.REVERSED))
            if s.default_pin and s.setl_time.astimezone(d.tz).date() == txn.received.date():
                txn.effects.append(ReleaseDefaultPin(s.card_sn, txn.received.date(), s.acct_pay))
    return Outcome(output=out)


async def recover(d: Deps, claim: StaleClaim, env: Envelope, inp: ReverseInput) -> list[Effect]:
    """What `reverse`'s CORE_TIMEOUT branch would have journaled, for a 2601 whose process died."""
    is_cancel, s = await _original(d, claim.fixmedins_code, inp)
    if not is_cancel and s is not None and s.state in CANCELLED_OR_CANCELLING:
        return []  # the flow refuses NOT_REVERSIBLE before sending anything
    return owed_effects(env, inp)
