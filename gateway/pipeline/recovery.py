"""Journal recovery: answers the requests a dead process claimed and never answered (SPEC §5, §5.2).

A claim still PENDING after `journal_recovery_grace_s` (longer than any live request can hold one, see
`settings.longest_claim_s`) belongs to a process killed mid-request, and the core may have acted on it. It is
completed as -1 CORE_TIMEOUT, built like every other reply, so a retry of the msgid gets one stable answer. For
a money transaction the 2601 the terminal is promised is queued in the same PostgreSQL transaction, and an
interrupted settle is recorded UNKNOWN until the reversal worker closes it. Every process runs this at start-up
and then periodically; the store completes a claim only while it is still PENDING, so the first one wins.

A claim this process itself gave up on (PostgreSQL failed or stalled mid-request, the terminal heard -1
OVERLOADED) is `abandon`ed here and completed the same way as soon as the database answers again, without
waiting for the grace period: this process knows nothing is working on it any more. When its completion
turns out to have committed after all (the journal's confirmation was what got lost), the journal's answer
stands, a retry gets it, and `onecard_journal_abandoned_total{outcome="settled"}` counts it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from gateway.domain.codes import ResultCode
from gateway.domain.effects import Effect, QueueReversal
from gateway.domain.envelope import Envelope, parse_envelope
from gateway.domain.errors import DependencyUnavailable, GatewayError
from gateway.domain.inputs import Input
from gateway.domain.journal import StaleClaim
from gateway.domain.txtypes import TXTYPES, Owes, parse_input
from gateway.pipeline.context import Deps
from gateway.pipeline.reply import Outcome, RefIds, build_reply
from gateway.pipeline.table import FLOWS

log = logging.getLogger("onecard.recovery")

_NO_MAC2 = "no MAC2: the session key died with the process"
ABANDONED_RETRY_S = (0.5, 5.0)  # first and longest wait between attempts at this process's abandoned claims


class JournalRecovery:
    """Completes abandoned claims; safe to run in every process at once."""

    def __init__(self, deps: Deps, *, batch: int = 100) -> None:
        self.d = deps
        self.batch = batch
        self.refids = RefIds(deps.settings.gateway_region, deps.node)
        self._abandoned: dict[int, bool] = {}  # journal id -> the terminal was told the outcome is not final
        self._wake = asyncio.Event()

    def abandon(self, journal_id: int, *, told_unknown: bool) -> None:
        """This process gave up on its claim `journal_id`: complete it once the database answers."""
        self._abandoned[journal_id] = self._abandoned.get(journal_id, False) or told_unknown
        self._wake.set()

    @property
    def abandoned(self) -> int:
        """Claims of this process waiting to be completed."""
        return len(self._abandoned)

    async def resolve_abandoned(self) -> int:
        """Complete this process's abandoned claims; returns how many are left (the database failed again).

        Raises nothing for an unavailable database: the rest waits for the next attempt."""
        m = self.d.metrics
        for jid, told_unknown in list(self._abandoned.items()):
            try:
                claim = await self.d.journal.pending_claim(jid)
                if claim is None:  # completed after all (the late completion committed), or by another process
                    ex = await self.d.journal.reply_of(jid)
                    outcome = "settled" if told_unknown and ex.err_code is None else "answered"
                    if outcome == "settled":
                        log.warning(
                            "journal id %d: told -1, but the completion committed infcode 0 (retries get 0)", jid
                        )
                    m.claim_abandoned(outcome)
                elif await self._complete(claim):
                    m.claim_abandoned("recovered")
                else:
                    m.claim_abandoned("answered")
            except DependencyUnavailable:
                return len(self._abandoned)
            del self._abandoned[jid]
        return 0

    async def run_once(self) -> int:
        """Complete every claim abandoned now; returns how many this process completed."""
        done = 0
        while True:
            stale = await self.d.journal.stale_claims(self.d.settings.journal_recovery_grace_s, self.batch)
            for claim in stale:
                done += await self._complete(claim)
            if len(stale) < self.batch:
                return done

    async def run_forever(self) -> None:
        """A pass every `journal_recovery_interval_s` (after the start-up pass), and this process's abandoned
        claims as soon as they come (retried with backoff while the database is away); errors are logged, never
        fatal."""
        interval = self.d.settings.journal_recovery_interval_s
        next_pass = time.monotonic() + interval
        retry = ABANDONED_RETRY_S[0]
        while True:
            wait = next_pass - time.monotonic()
            if self._abandoned:
                wait = min(wait, retry)
            self._wake.clear()
            if wait > 0:
                try:  # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                    await asyncio.sleep(retry)  # a new abandonment: give the database a moment first
                except TimeoutError:
                    pass
            try:
                if self._abandoned:
                    left = await self.resolve_abandoned()
                    retry = min(retry * 2, ABANDONED_RETRY_S[1]) if left else ABANDONED_RETRY_S[0]
                if time.monotonic() >= next_pass:
                    next_pass = time.monotonic() + interval
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except DependencyUnavailable as exc:  # the database is away: expected, said without a traceback
                log.warning("journal recovery: %s; retrying", exc)
            except Exception:
                log.exception("journal recovery pass failed")

    async def _complete(self, claim: StaleClaim) -> int:
        env, inp = _parsed(claim.request_json)
        effects = await self._owed(claim, env, inp)
        if effects:
            why = "a reversal is queued and will be completed"
        else:
            why = "no money moves in this transaction, nothing to reverse"
        out = Outcome(
            ResultCode.CORE_TIMEOUT,
            f"outcome unknown: the gateway stopped while processing this request; {why} ({_NO_MAC2})",
        )
        now = self.d.now()
        received = claim.received_at.astimezone(self.d.tz)
        # No Verified: the MAC2 key is derived per session from the request, and is not kept anywhere.
        reply = build_reply(out, None, self.refids.next(now), received, now)
        if not await self.d.journal.complete(claim.journal_id, reply.body, reply.status, out.code.value, effects):
            return 0  # its owner or another process completed it meanwhile
        self.d.metrics.claim_recovered()
        if effects:
            self.d.metrics.reversal_queued()
        log.warning("abandoned claim recovered: infno=%s msgid=%s reversal=%s", claim.infno, claim.msgid, bool(effects))
        return 1

    async def _owed(self, claim: StaleClaim, env: Envelope | None, inp: Input | None) -> list[Effect]:
        """What the interrupted flow's CORE_TIMEOUT branch would have journaled (its `recover` in the table)."""
        tx = TXTYPES.get(claim.infno)
        if tx is None or tx.owes is Owes.NOTHING:
            return []
        handling = FLOWS[tx.kind]
        if env is not None and inp is not None and handling.recover is not None:
            return await handling.recover(self.d, claim, env, inp)
        # Unreadable request (cannot happen for a claim, which follows a parse): owe the core a reversal anyway.
        log.error("abandoned claim %s: request unreadable, reversal queued without a person", claim.msgid)
        if tx.owes is Owes.REVERSAL:
            return [QueueReversal(claim.fixmedins_code, claim.msgid, claim.infno, "")]
        return []


def _parsed(request_json: str) -> tuple[Envelope | None, Input | None]:
    """The claimed request through the same parsers as at its arrival."""
    try:
        env = parse_envelope(orjson.loads(request_json))
        return env, parse_input(env)
    except (orjson.JSONDecodeError, GatewayError):
        return None, None
