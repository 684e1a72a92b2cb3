"""Per-transaction flows after authentication: sign-in/out (9001/9002), person (1101), pre-settle and settle
(2206/2101, 2207/2102), cancel (2208/2103), reversal (2601) and statements (3201/3202)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from gateway.domain.codes import ResultCode
from gateway.domain.core import Cancellation, Reversal
from gateway.domain.effects import QueueReversal, ReleaseDefaultPin, SetSettlementState
from gateway.domain.errors import CoreRejected, CoreTimeout, Declined
from gateway.domain.inputs import (
    CancelInput,
    PersonQuery,
    ReverseInput,
    SettleInput,
    SignIn,
    SignOut,
    StatementInput,
)
from gateway.domain.money import fen_to_wire
from gateway.pipeline import settle, statements
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.reply import Outcome


async def dispatch(d: Deps, txn: Txn) -> Outcome:
    """Run the flow of the request's infno."""
    inp = txn.inp
    if isinstance(inp, SignIn):
        return await sign_in(d, txn, inp)
    if isinstance(inp, SignOut):
        return await sign_out(d, txn, inp)
    if isinstance(inp, PersonQuery):
        return await person_info(d, txn)
    if isinstance(inp, SettleInput):
        return await settle.settle(d, txn, inp)
    if isinstance(inp, CancelInput):
        return await cancel(d, txn, inp)
    if isinstance(inp, ReverseInput):
        return await reverse(d, txn, inp)
    assert isinstance(inp, StatementInput)
    return await statements.statement(d, txn, inp)


async def sign_in(d: Deps, txn: Txn, inp: SignIn) -> Outcome:
    """9001: open a session binding (fixmedins_code, psam_no)."""
    env = txn.env
    assert env is not None
    now = txn.received
    # region + time + 10 random digits: unguessable, and unique by the table's key (drawn again on a clash,
    # on this host or any other sharing the database).
    for _ in range(5):
        sign_no = f"{d.settings.gateway_region}{now:%Y%m%d%H%M%S}{secrets.randbelow(10**10):010d}"
        expires = now + timedelta(seconds=d.settings.sign_ttl_s)
        if await d.store.create_session(sign_no, env.fixmedins_code, env.safe.psam_no, inp.opter_no, now, expires):
            break
    else:
        raise RuntimeError("five random sign_no values in a row were taken")
    return Outcome(output={"signinoutb": {"sign_time": f"{now:%Y-%m-%d %H:%M:%S}", "sign_no": sign_no}})


async def sign_out(d: Deps, txn: Txn, inp: SignOut) -> Outcome:
    """9002: end the session named in the envelope."""
    env = txn.env
    assert env is not None
    assert env.sign_no is not None
    if inp.sign_no != env.sign_no:
        raise Declined(ResultCode.MALFORMED, "input.signOut.sign_no: must equal the envelope's sign_no")
    await d.store.sign_out(env.sign_no, txn.received)
    return Outcome(output={"signoutoutb": {"sign_time": f"{txn.received:%Y-%m-%d %H:%M:%S}", "sign_no": inp.sign_no}})


async def person_info(d: Deps, txn: Txn) -> Outcome:
    """1101: the person behind the card, with the card's PIN mode so the terminal knows whether to prompt."""
    card = txn.card
    assert card is not None
    p = await d.core_call(txn, "person", d.core.person(card.psn_no, timeout=d.settings.core_read_timeout_s))
    return Outcome(
        output={
            "baseinfo": {
                "psn_no": p.psn_no,
                "psn_cert_type": "01",
                "certno": p.certno,
                "psn_name": p.psn_name,
                "gend": p.gend,
                "brdy": p.brdy,
                "age": _age(p.brdy, txn.received.date().isoformat()),
            },
            "insuinfo": [
                {
                    "balc": fen_to_wire(p.balance),
                    "insutype": p.insutype,
                    "psn_type": p.psn_type,
                    "psn_insu_stas": p.psn_insu_stas,
                    "insuplc_admdvs": p.insuplc_admdvs,
                }
            ],
            "cardinfo": {
                "card_sn": card.card_sn,
                "card_no": card.card_no,
                "pin_mode": card.pin_mode,
                "card_stas": "ACTIVE",  # a listed card never gets here (SPEC §8.1)
            },
        }
    )


def _age(brdy: str, today: str) -> int:
    try:
        by, bm, bd = (int(x) for x in brdy.split("-"))
        ty, tm, td = (int(x) for x in today.split("-"))
    except ValueError:
        return 0
    return ty - by - ((tm, td) < (bm, bd))


async def cancel(d: Deps, txn: Txn, inp: CancelInput) -> Outcome:
    """2208/2103: cancel a settlement of this institution, restoring account and accumulators."""
    env = txn.env
    assert env is not None
    s = await d.store.settlement_by_setl_id(inp.setl_id)
    want = "2207" if env.infno == "2208" else "2102"
    if s is None or s.fixmedins_code != env.fixmedins_code or s.psn_no != inp.psn_no or s.infno != want:
        raise Declined(
            ResultCode.SETTLEMENT_NOT_FOUND,
            f"no {want} settlement {inp.setl_id} of this institution for this person",
        )
    if s.state in ("CANCELLED", "CANCELLING"):
        raise Declined(ResultCode.ALREADY_CANCELLED, f"settlement {inp.setl_id} is already cancelled")
    if s.state != "POSTED" or not await d.store.transition(s.fixmedins_code, s.msgid, "POSTED", "CANCELLING"):
        again = await d.store.settlement_by_setl_id(inp.setl_id)
        if again is not None and again.state in ("CANCELLED", "CANCELLING"):
            raise Declined(ResultCode.ALREADY_CANCELLED, f"settlement {inp.setl_id} is already cancelled")
        raise Declined(ResultCode.SETTLEMENT_NOT_FOUND, f"settlement {inp.setl_id} is {s.state.lower()}")
    req = Cancellation(env.msgid, env.infno, env.fixmedins_code, inp.psn_no, inp.setl_id)
    try:
        c = await d.core_call(txn, "cancel", d.core.cancel_settlement(req, timeout=d.settings.core_timeout_s))
    except CoreTimeout:
        # The core may have cancelled: undo our cancel at the core (2601 of this msgid) before answering -1.
        # The settlement stays CANCELLING, tied to this cancel, until the reversal worker restores it.
        txn.effects += [
            SetSettlementState(s.fixmedins_code, s.msgid, "CANCELLING", cancel_msgid=env.msgid),
            QueueReversal(env.fixmedins_code, env.msgid, env.infno, inp.psn_no),
        ]
        d.metrics.reversals_queued.inc()
        raise
    except Exception:
        txn.effects.append(SetSettlementState(s.fixmedins_code, s.msgid, "POSTED"))
        raise
    txn.effects.append(SetSettlementState(s.fixmedins_code, s.msgid, "CANCELLED", env.msgid, c.setl_id, txn.received))
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
                "balc": fen_to_wire(c.balc),
            }
        },
        acct=c.acct_pay,
        cash=c.psn_cash_pay,
        fund=c.fund_pay_sumamt,
    )


async def reverse(d: Deps, txn: Txn, inp: ReverseInput) -> Outcome:
    """2601: undo the original message at the core whether or not it got there; idempotent (SPEC §6.4)."""
    env = txn.env
    assert env is not None
    code = env.fixmedins_code
    is_cancel = inp.oinfno in ("2208", "2103")
    s = await (
        d.store.settlement_by_cancel_msgid(code, inp.omsgid)
        if is_cancel
        else d.store.settlement_by_msgid(code, inp.omsgid)
    )
    if s is not None and s.psn_no != inp.psn_no:
        raise Declined(ResultCode.SETTLEMENT_NOT_FOUND, f"message {inp.omsgid} is not for this person")
    if s is not None and not is_cancel and s.state in ("CANCELLED", "CANCELLING"):
        raise Declined(ResultCode.NOT_REVERSIBLE, f"settlement of {inp.omsgid} was cancelled: cancel wins")
    out: dict[str, Any] = {"data": {"omsgid": inp.omsgid, "oinfno": inp.oinfno, "rvs_stas": "1"}}
    if s is not None and not is_cancel and s.state == "REVERSED":
        return Outcome(output=out)
    req = Reversal(env.msgid, code, inp.psn_no, inp.omsgid, inp.oinfno)
    try:
        await d.core_call(txn, "reverse", d.core.reverse(req, timeout=d.settings.core_timeout_s))
    except CoreRejected as exc:
        if exc.reason == "NOT_REVERSIBLE":
            raise Declined(ResultCode.NOT_REVERSIBLE, f"the core refuses to reverse {inp.omsgid}") from None
        raise
    except CoreTimeout:
        txn.effects.append(QueueReversal(code, inp.omsgid, inp.oinfno, inp.psn_no))
        d.metrics.reversals_queued.inc()
        raise
    if s is not None:
        if is_cancel:
            txn.effects.append(SetSettlementState(code, s.msgid, "POSTED"))
        else:
            txn.effects.append(SetSettlementState(code, s.msgid, "REVERSED"))
            if s.default_pin and s.setl_time.astimezone(d.tz).date() == txn.received.date():
                txn.effects.append(ReleaseDefaultPin(s.card_sn, txn.received.date(), s.acct_pay))
    return Outcome(output=out)
