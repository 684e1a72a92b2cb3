"""The reversal worker: drives every queued 2601 (behind each -1 CORE_TIMEOUT) to a final state.

Backoff doubles from 1 s up to 5 min; a reversal older than `max_age_s` or past `max_attempts` goes DEAD,
visible to operators through `onecard_reversals{state="DEAD"}`. Every gateway process runs one worker; the
queue is leased with SKIP LOCKED, and the core's reversal is idempotent anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from gateway.domain.core import Reversal
from gateway.domain.effects import Effect, SetSettlementState
from gateway.domain.errors import BackendError, CoreRejected, DependencyUnavailable
from gateway.domain.journal import ReversalJob
from gateway.domain.registry import SettlementState
from gateway.domain.txtypes import Kind, txtype
from gateway.pipeline.context import Deps, Txn

log = logging.getLogger("onecard.reversals")


def reversal_msgid(job: ReversalJob) -> str:
    """The 2601's own msgid: derived from what it undoes, so every retry sends the same one and no two originals
    share one, even across databases (a row id restarts at 1 in a new or restored database, and the core
    remembers msgids for good: reusing one is MSGID_CONFLICT)."""
    digest = hashlib.sha256(f"{job.fixmedins_code}|{job.omsgid}|{job.oinfno}".encode()).hexdigest()
    return f"RV{digest[:28].upper()}"


class ReversalWorker:
    """Works the reversal queue until cancelled."""

    def __init__(self, deps: Deps, *, max_attempts: int = 40, max_age_s: float = 86_400.0) -> None:
        self.d = deps
        self.max_attempts = max_attempts
        self.max_age_s = max_age_s

    async def run_once(self, limit: int = 50) -> int:
        """One pass over due reversals; returns how many were attempted."""
        jobs = await self.d.reversals.lease_reversals(limit, lease_s=2 * self.d.settings.core_timeout_s + 5)
        for job in jobs:
            await self._attempt(job)
        if jobs:
            await self.refresh_metrics()
        return len(jobs)

    async def refresh_metrics(self) -> None:
        """Publish the queue's size by state."""
        counts = await self.d.reversals.reversal_counts()
        self.d.metrics.reversal_states({state: counts.get(state, 0) for state in ("QUEUED", "DONE", "DEAD")})

    async def run_forever(self, interval_s: float = 1.0) -> None:
        """Poll the queue; errors are logged and retried, never fatal."""
        while True:
            try:
                if await self.run_once() == 0:
                    await asyncio.sleep(interval_s)
            except asyncio.CancelledError:
                raise
            except DependencyUnavailable as exc:  # the database is away: expected, said without a traceback
                log.warning("reversal worker: %s; retrying", exc)
                await asyncio.sleep(interval_s)
            except Exception:
                log.exception("reversal worker pass failed")
                await asyncio.sleep(interval_s)

    async def _attempt(self, job: ReversalJob) -> None:
        d = self.d
        msgid = reversal_msgid(job)
        req = Reversal(msgid, job.fixmedins_code, job.psn_no, job.omsgid, job.oinfno)
        txn = Txn(received=d.now())
        try:
            await d.core_call(txn, "reverse", d.core.reverse(req, timeout=d.settings.core_timeout_s))
        except CoreRejected as exc:
            # The core refuses for good (e.g. cancelled in the meantime): an operator must look.
            log.error("reversal %s of %s refused by the core: %s", job.id, job.omsgid, exc.reason)
            await d.reversals.finish_reversal(job.id, "DEAD", f"core refused: {exc.reason}")
            return
        except BackendError as exc:
            if job.attempts >= self.max_attempts or job.age_s >= self.max_age_s:
                log.error("reversal %s of %s dead after %d attempts", job.id, job.omsgid, job.attempts)
                await d.reversals.finish_reversal(job.id, "DEAD", f"gave up: {type(exc).__name__}")
            else:
                delay = min(2.0 ** (job.attempts - 1), 300.0)
                await d.reversals.retry_reversal(job.id, delay, type(exc).__name__)
            return
        effects: list[Effect] = []
        kind = txtype(job.oinfno).kind
        if kind is Kind.SETTLE:
            effects.append(SetSettlementState(job.fixmedins_code, job.omsgid, SettlementState.REVERSED))
        elif kind is Kind.CANCEL:  # the cancel is undone: the settlement it had taken is live again
            s = await d.settlements.settlement_by_cancel_msgid(job.fixmedins_code, job.omsgid)
            if s is not None and s.state == SettlementState.CANCELLING:
                effects.append(SetSettlementState(job.fixmedins_code, s.msgid, SettlementState.POSTED))
        await d.reversals.finish_reversal(job.id, "DONE", None, effects)
        log.info("reversal %s of %s done", job.id, job.omsgid)
