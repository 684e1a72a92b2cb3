"""The transaction pipeline: envelope → PSAM and sign-in → MAC1/TAC → idempotency → freshness and replay →
blacklist → card and person → (per infno) PIN, rules, core → journal → response (SPEC §5 order).

Declines are values (`Declined` raised by parsers and flows becomes an `Outcome`); the journal step and the
response always run for an authenticated request. Replay state lives in PostgreSQL and is taken by the journal
claim itself (SPEC §5.1, decided there but reported after the freshness check, in SPEC order). When PostgreSQL
or Redis fails or stalls past its deadline the terminal hears -1 OVERLOADED at once; a claim this process then
abandons is handed to journal recovery, which completes it as soon as the database answers again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import NoReturn

import orjson

from gateway.domain.codes import ResultCode
from gateway.domain.envelope import Envelope, malformed, nul_path, parse_envelope
from gateway.domain.errors import Declined, DependencyUnavailable, GatewayError
from gateway.domain.journal import Claimed, Existing
from gateway.domain.registry import mask
from gateway.domain.security import DeclinedAfterMac, verify
from gateway.domain.txtypes import Owes, mac_amount, parse_input
from gateway.pipeline.checks import card_checks, registry_and_session
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.owed import owed_effects
from gateway.pipeline.recovery import JournalRecovery
from gateway.pipeline.reply import Outcome, RefIds, Reply, build_reply
from gateway.pipeline.table import FLOWS

log = logging.getLogger("onecard.txn")


class StoredReply(Exception):
    """The request was answered before: send the journaled bytes again (SPEC §5.2)."""

    def __init__(self, body: bytes, status: int, code: str | None) -> None:
        super().__init__("stored reply")
        self.reply = Reply(status, body, ResultCode(code) if code else ResultCode.OK)


class Gateway:
    """Runs one terminal request to a reply; holds no per-transaction state."""

    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self.refids = RefIds(deps.settings.gateway_region, deps.node)
        self.recovery = JournalRecovery(deps)

    async def handle(self, body: bytes, client_institution: str | None = None) -> tuple[Reply, float]:
        """Process a request body; returns the reply and the seconds spent waiting for the core.

        `client_institution`: with client certificates required, the `fixmedins_code` the verified certificate
        names ("" when it names none); a request whose envelope names another is refused first (SPEC §5).
        """
        t0 = time.perf_counter()
        txn = Txn(received=self.d.now())
        infno = "????"
        try:
            if self.d.node.lapsed:
                raise DependencyUnavailable("this gateway process holds no node id (its lease lapsed)")
            reply = await self._run(txn, body, client_institution)
        except DependencyUnavailable as exc:
            reply = self._unavailable(txn, exc)
        except Exception:  # a bug: answer INTERNAL with a trace id, never card data
            trace_id = self.refids.next(self.d.now())
            log.exception("INTERNAL trace_id=%s trace=%s", trace_id, txn.trace)
            out = Outcome(ResultCode.INTERNAL, f"internal error, trace id {trace_id}")
            reply = build_reply(out, txn.verified, trace_id, txn.received, self.d.now())
            await self._close_after_bug(txn, reply)
        if txn.env is not None:
            infno = txn.env.infno
        total = time.perf_counter() - t0
        self.d.metrics.request(infno, reply.code.value, total, max(0.0, total - txn.core_s))
        if log.isEnabledFor(logging.INFO):
            env = txn.env
            log.info(
                "txn infno=%s msgid=%s psam=%s card=%s result=%s trace=%s",
                infno,
                env.msgid if env else "-",
                env.safe.psam_no if env else "-",
                mask(env.safe.card_sn) if env else "-",
                reply.code.value,
                ",".join(txn.trace),
            )
        return reply, txn.core_s

    def _unavailable(self, txn: Txn, exc: DependencyUnavailable) -> Reply:
        """-1 OVERLOADED, not journaled, for a request PostgreSQL or Redis failed: nothing was settled, or (when
        the core already acted and only the journal's confirmation is missing) the answer is not final. A claim
        taken is abandoned to recovery, which completes it (-1 CORE_TIMEOUT with a reversal owed for money)
        once the database answers, unless the completion did commit after all: a retry with the same msgid gets
        the journal's answer either way."""
        log.warning("dependency unavailable: %s trace=%s", exc, txn.trace)
        env = txn.env
        why = "not settled"
        if txn.journal_id is not None:
            moved = bool(txn.effects) and env is not None and env.tx.owes is not Owes.NOTHING
            self.recovery.abandon(txn.journal_id, told_unknown=moved)
            if moved:
                why = "the journal did not confirm in time, so this answer is not final"
        out = Outcome(ResultCode.OVERLOADED, f"{exc}; {why}: retry with the same msgid")
        now = self.d.now()
        return build_reply(out, txn.verified, self.refids.next(now), txn.received, now)

    async def _close_after_bug(self, txn: Txn, reply: Reply) -> None:
        """Journal the INTERNAL answer of a claimed request; a money transaction may have reached the core, so
        owe it a reversal (harmless when nothing was posted: the core records that it never arrived)."""
        env = txn.env
        if txn.journal_id is None or env is None:
            return
        # A settle or a cancel may have reached the core; a 2601 cut short by a bug owes nothing more.
        effects = owed_effects(env, txn.inp) if env.tx.owes is Owes.REVERSAL else []
        try:
            await self.d.journal.complete(txn.journal_id, reply.body, reply.status, ResultCode.INTERNAL.value, effects)
        except Exception:
            log.exception("could not journal the INTERNAL answer of msgid %s", env.msgid)

    async def _run(self, txn: Txn, body: bytes, client_institution: str | None) -> Reply:
        try:
            outcome = await self._authenticate(txn, body, client_institution)
            if outcome is None:
                outcome = await self._execute(txn)
        except StoredReply as stored:
            txn.trace.append("stored")
            return stored.reply
        except Declined as exc:
            outcome = Outcome(exc.decline.code, exc.decline.message, exc.decline.output)
        except GatewayError as exc:
            outcome = Outcome(exc.code, str(exc))
        txn.trace.append(outcome.code.value)
        now = self.d.now()
        reply = build_reply(outcome, txn.verified, self.refids.next(now), txn.received, now)
        if txn.journal_id is not None and not await self.d.journal.complete(
            txn.journal_id,
            reply.body,
            reply.status,
            None if outcome.code is ResultCode.OK else outcome.code.value,
            txn.effects,
        ):
            # Recovery took this claim for a dead process's and answered it (queuing any reversal owed): a
            # msgid has one answer (SPEC §5.2), so that one is sent and this outcome is dropped.
            log.warning("msgid %s was answered by journal recovery first", txn.env.msgid if txn.env else "-")
            txn.trace.append("recovered")
            return self._journaled(await self.d.journal.reply_of(txn.journal_id))
        return reply

    @staticmethod
    def _journaled(ex: Existing) -> Reply:
        assert ex.response is not None
        return Reply(ex.http_status or 200, ex.response, ResultCode(ex.err_code) if ex.err_code else ResultCode.OK)

    async def _authenticate(self, txn: Txn, body: bytes, client_institution: str | None) -> Outcome | None:
        """Envelope, registry, sign-in, cryptograms and idempotency. Returns an outcome to stop early."""
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Declined(ResultCode.MALFORMED, "body: not valid UTF-8 JSON") from None
        if client_institution is not None:
            bound_to_certificate(obj, client_institution)
        # A NUL can only come from the escape \u0000 (orjson refuses raw control characters and lone surrogates).
        if b"\\u0000" in body and (where := nul_path(obj)) is not None:
            raise malformed(where, "contains a NUL character (\\u0000), which the journal cannot store")
        env = txn.env = parse_envelope(obj)
        txn.inp = parse_input(env)
        txn.trace.append("decode")
        await registry_and_session(self.d, txn, env)
        try:
            txn.verified = verify(env, mac_amount(env), self.d.keys)
        except DeclinedAfterMac as exc:  # MAC1 verified: the refusal carries MAC2 (SPEC §3)
            txn.verified = exc.verified
            raise
        txn.trace.append("mac")
        return await self._idempotency(txn, env, obj)

    async def _idempotency(self, txn: Txn, env: Envelope, obj: object) -> Outcome | None:
        """Claim (fixmedins_code, msgid) or answer from the journal (SPEC §5.2); a fresh request's claim also
        takes its (psam_no, tseq) and card atc (SPEC §5.1), so a retry is answered before replay is judged and
        a stale request takes nothing.

        The rate limit (issue 11 item 7) is counted here, after MAC1 (only the PSAM itself can spend its
        quota) and before the claim: a request over the limit takes no claim and is journaled nowhere, unless
        its msgid was used already, whose answer it then gets like any retry. A retry found by the claim gives
        its token back: an answered msgid never counts twice."""
        canonical = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(canonical).digest()
        store = self.d.journal
        limiter = self.d.limiter
        if limiter is not None and (refused := limiter.take(env.fixmedins_code, env.safe.psam_no)) is not None:
            seen = await store.lookup(env.fixmedins_code, env.msgid, digest)
            if seen is None:
                self.d.metrics.rate_limited(refused.scope)
                txn.trace.append("rate_limited")
                return Outcome(
                    ResultCode.RATE_LIMITED,
                    f"{refused.scope} {refused.key} is over its rate limit: retry after {refused.retry_after_s} s",
                    retry_after=refused.retry_after_s,
                )
            return await self._answered(env, seen, digest)
        # The card row rides along with the claim: one round trip instead of two on the hot path.
        claim, card = await store.claim_with_card(
            env.fixmedins_code,
            env.msgid,
            env.infno,
            env.safe.psam_no,
            env.safe.card_sn,
            digest,
            canonical.decode(),
            txn.received.date() if env.card_bearing else None,
            tseq=env.safe.tseq,
            atc=env.safe.atc if env.card_bearing else None,
            fresh=self._skew_s(txn, env) <= self.d.settings.freshness_s,
        )
        if isinstance(claim, Claimed):
            txn.journal_id = claim.journal_id
            txn.replay = claim.replay
            txn.card_row = card
            txn.trace.append("claim")
            return None
        if limiter is not None:
            limiter.give_back(env.fixmedins_code, env.safe.psam_no)
        return await self._answered(env, claim, digest)

    async def _answered(self, env: Envelope, claim: Existing, digest: bytes) -> NoReturn:
        """A msgid already used: its journaled answer (after waiting for a pending one), or MSGID_CONFLICT."""
        store = self.d.journal
        if claim.same_content and not claim.done:
            wait = 2 * self.d.settings.core_timeout_s + 2.0
            claim = await store.wait_done(env.fixmedins_code, env.msgid, digest, wait)
        if not claim.same_content:
            raise Declined(ResultCode.MSGID_CONFLICT, f"msgid {env.msgid} was already used with other content")
        if not claim.done or claim.response is None:
            raise Declined(
                ResultCode.OVERLOADED, f"msgid {env.msgid} is still being processed; retry with the same msgid"
            )
        raise StoredReply(claim.response, claim.http_status or 200, claim.err_code)

    async def _execute(self, txn: Txn) -> Outcome:
        env = txn.env
        assert env is not None
        skew = self._skew_s(txn, env)
        if skew > self.d.settings.freshness_s:
            raise Declined(
                ResultCode.STALE_REQUEST,
                f"inf_time is {int(skew)} s from the gateway's clock (window {self.d.settings.freshness_s} s)",
            )
        if txn.replay == "TSEQ":
            raise Declined(ResultCode.REPLAY, f"tseq {env.safe.tseq} of PSAM {env.safe.psam_no} was already used")
        if txn.replay == "ATC":
            raise Declined(ResultCode.REPLAY, f"atc {env.safe.atc} is not above the card's last accepted atc")
        txn.trace.append("replay")
        if env.card_bearing:
            await card_checks(self.d, txn, env)
        return await FLOWS[env.tx.kind].flow(self.d, txn)

    def _skew_s(self, txn: Txn, env: Envelope) -> float:
        return abs((txn.received - env.inf_time.replace(tzinfo=self.d.tz)).total_seconds())


def bound_to_certificate(obj: object, client_institution: str) -> None:
    """SPEC §5, checked first: the envelope's `fixmedins_code` must be the one the client certificate names, so
    nothing is checked, claimed or journaled as an institution the caller is not. An envelope without a
    string `fixmedins_code` goes on to be refused MALFORMED by the envelope check, naming the field.

    Raises:
        Declined: CLIENT_CERT_MISMATCH.
    """
    if not isinstance(obj, dict):
        return
    code = obj.get("fixmedins_code")
    if not isinstance(code, str) or code == client_institution:
        return
    if not client_institution:
        raise Declined(ResultCode.CLIENT_CERT_MISMATCH, "the client certificate names no institution")
    raise Declined(
        ResultCode.CLIENT_CERT_MISMATCH,
        f"fixmedins_code {code[:20]!r} is not the institution of the client certificate ({client_institution})",
    )
