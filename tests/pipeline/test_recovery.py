"""Journal recovery and the reversal worker over fakes: a claim whose process died is closed by what its entry
in the table owes; a reversal done puts each original in its final state."""

from __future__ import annotations

import hashlib

import orjson

from gateway.domain.envelope import parse_envelope
from gateway.domain.registry import SettlementState
from gateway.pipeline.recovery import JournalRecovery
from gateway.pipeline.reversals import ReversalWorker
from loadtest.terminal import Built
from tests.pipeline.conftest import CODE, World


async def crash_after_claim(w: World, b: Built) -> int:
    """Claim as the pipeline does, then 'die'."""
    env = parse_envelope(b.body)
    canonical = orjson.dumps(b.body, option=orjson.OPT_SORT_KEYS)
    claim, _ = await w.store.claim_with_card(
        env.fixmedins_code, env.msgid, env.infno, env.safe.psam_no, env.safe.card_sn,
        hashlib.sha256(canonical).digest(), canonical.decode(), None,
    )  # fmt: skip
    return claim.journal_id  # type: ignore[union-attr]


async def recover(w: World) -> int:
    w.clock.advance(w.deps.settings.journal_recovery_grace_s + 1)
    return await JournalRecovery(w.deps).run_once()


def queued(w: World) -> list[tuple[str, str]]:
    return [(j.omsgid, j.oinfno) for j in w.store.jobs.values()]


class TestRecovery:
    async def test_dead_settle(self, world: World):
        """A 2207 cut short: CORE_TIMEOUT, the settlement UNKNOWN, its 2601 queued."""
        b = world.settle("2207")
        jid = await crash_after_claim(world, b)
        assert await recover(world) == 1
        assert world.store.rows[jid].err_code == "CORE_TIMEOUT"
        assert world.store.settlements[(CODE, b.body["msgid"])].state is SettlementState.UNKNOWN
        assert queued(world) == [(b.body["msgid"], "2207")]
        assert world.metrics.counts["recovered"] == 1

    async def test_dead_cancel(self, world: World):
        """A 2208 that took the settlement and died: tied to it, and its 2601 queued."""
        s = world.settle("2207")
        r = await world.send(s)
        setl_id = r["output"]["setlinfo"]["setl_id"]
        msgid = s.body["msgid"]
        assert await world.store.transition(CODE, msgid, SettlementState.POSTED, SettlementState.CANCELLING)
        c = world.terminal.cancel("2208", setl_id, world.card.psn_no, now=world.clock.now())
        await crash_after_claim(world, c)
        await recover(world)
        assert world.store.settlements[(CODE, msgid)].cancel_msgid == c.body["msgid"]
        assert queued(world) == [(c.body["msgid"], "2208")]

    async def test_dead_reversal(self, world: World):
        """A 2601 cut short: the reversal it asked for is queued."""
        s = world.settle("2207")
        await world.send(s)
        b = world.terminal.reverse(world.card.psn_no, s.body["msgid"], "2207", now=world.clock.now())
        await crash_after_claim(world, b)
        await recover(world)
        assert queued(world) == [(s.body["msgid"], "2207")]

    async def test_dead_query_owes_nothing(self, world: World):
        """A 1101 or a pre-settlement cut short is answered CORE_TIMEOUT and owes nothing."""
        jid = await crash_after_claim(world, world.terminal.person_info(world.card, now=world.clock.now()))
        jid2 = await crash_after_claim(world, world.settle("2206"))
        assert await recover(world) == 2
        assert world.store.rows[jid].err_code == world.store.rows[jid2].err_code == "CORE_TIMEOUT"
        assert queued(world) == []

    async def test_young_claims_are_left_alone(self, world: World):
        """Inside the grace period a claim may still be worked on: the injected clock decides."""
        await crash_after_claim(world, world.settle("2207"))
        assert await JournalRecovery(world.deps).run_once() == 0


class TestReversalWorker:
    async def test_done_settlement_is_reversed(self, world: World):
        """The worker's 2601 of an UNKNOWN settlement ends it REVERSED."""
        from gateway.domain.errors import CoreTimeout

        world.core.fail["post"] = [CoreTimeout("no answer")]
        b = world.settle("2207")
        await world.send(b)
        assert await ReversalWorker(world.deps).run_once() == 1
        assert world.store.settlements[(CODE, b.body["msgid"])].state is SettlementState.REVERSED
        assert world.metrics.states["DONE"] == 1

    async def test_done_cancel_restores_posted(self, world: World):
        """The worker's 2601 of a timed-out cancel puts the settlement back to POSTED."""
        from gateway.domain.errors import CoreTimeout

        s = world.settle("2207")
        r = await world.send(s)
        world.core.fail["cancel"] = [CoreTimeout("no answer")]
        await world.send(world.terminal.cancel("2208", r["output"]["setlinfo"]["setl_id"], world.card.psn_no,
                                               now=world.clock.now()))  # fmt: skip
        await ReversalWorker(world.deps).run_once()
        assert world.store.settlements[(CODE, s.body["msgid"])].state is SettlementState.POSTED

    async def test_refused_reversal_goes_dead(self, world: World):
        """The core refusing a reversal for good: DEAD, for an operator."""
        from gateway.domain.errors import CoreRejected, CoreTimeout

        world.core.fail["post"] = [CoreTimeout("no answer")]
        await world.send(world.settle("2207"))
        world.core.fail["reverse"] = [CoreRejected("NOT_REVERSIBLE", "no")]
        await ReversalWorker(world.deps).run_once()
        assert [j.state for j in world.store.jobs.values()] == ["DEAD"]
