"""What an unknown outcome owes the core, read from the transaction table (`TxType.owes`): the one place that
builds the 2601 behind a -1 CORE_TIMEOUT, for the flows, for a bug mid-flow and for journal recovery."""

from __future__ import annotations

from gateway.domain.effects import Effect, QueueReversal
from gateway.domain.envelope import Envelope
from gateway.domain.inputs import Input, ReverseInput
from gateway.domain.txtypes import Owes


def reversal_owed(env: Envelope, inp: Input | None) -> QueueReversal | None:
    """The reversal to queue when the core may have acted on this request and its answer is unknown: a 2601
    of the message itself (settle, cancel), the reversal a 2601 asked for (retried by the worker), or None."""
    owes = env.tx.owes
    if owes is Owes.REVERSAL:
        return QueueReversal(env.fixmedins_code, env.msgid, env.infno, getattr(inp, "psn_no", ""))
    if owes is Owes.ITS_REVERSAL:
        assert isinstance(inp, ReverseInput)
        return QueueReversal(env.fixmedins_code, inp.omsgid, inp.oinfno, inp.psn_no)
    return None


def owed_effects(env: Envelope, inp: Input | None) -> list[Effect]:
    """`reversal_owed` as a list of effects."""
    owed = reversal_owed(env, inp)
    return [] if owed is None else [owed]
