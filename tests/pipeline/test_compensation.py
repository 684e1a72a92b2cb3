"""What each money transaction owes the core when its outcome is unknown (the table's `owes`), in the flow,
after a bug mid-flow, and when the database fails: every branch of the compensation."""

from __future__ import annotations

from gateway.domain.effects import NewSettlement, QueueReversal
from gateway.domain.errors import CoreRejected, CoreTimeout, CoreUnavailable
from gateway.domain.registry import SettlementState
from tests.pipeline.conftest import CODE, World


async def posted(w: World) -> tuple[str, str]:
    b = w.settle("2207")
    r = await w.send(b)
    assert r["infcode"] == 0
    return b.body["msgid"], r["output"]["setlinfo"]["setl_id"]


def queued(w: World) -> list[tuple[str, str]]:
    return [(j.omsgid, j.oinfno) for j in w.store.jobs.values()]


class TestSettleUnknown:
    async def test_timeout_records_unknown_and_owes_its_reversal(self, world: World):
        """2207 timing out at the core: -1 CORE_TIMEOUT, the settlement UNKNOWN, a 2601 of it queued."""
        world.core.fail["post"] = [CoreTimeout("no answer")]
        b = world.settle("2207")
        r = await world.send(b)
        assert (r["infcode"], r["err_code"]) == (-1, "CORE_TIMEOUT")
        s = world.store.settlements[(CODE, b.body["msgid"])]
        assert s.state is SettlementState.UNKNOWN
        assert queued(world) == [(b.body["msgid"], "2207")]
        assert world.metrics.counts["reversal_queued"] == 1

    async def test_rejection_owes_nothing(self, world: World):
        """A refusal by the core moved nothing: no settlement, no reversal."""
        world.core.fail["post"] = [CoreRejected("NOT_REVERSIBLE", "refused")]
        await world.send(world.settle("2207"))
        assert world.store.settlements == {}
        assert queued(world) == []

    async def test_unavailable_core_owes_nothing(self, world: World):
        """Nothing was sent: nothing to reverse."""
        world.core.fail["post"] = [CoreUnavailable("breaker open")]
        r = await world.send(world.settle("2207"))
        assert r["infcode"] == -1
        assert queued(world) == []

    async def test_presettle_timeout_owes_nothing(self, world: World):
        """A pre-settlement's person read failing is never a debt to the core."""
        world.core.fail["person"] = [CoreUnavailable("down")]
        await world.send(world.settle("2206"))
        assert queued(world) == []


class TestCancelUnknown:
    async def test_timeout_ties_the_settlement_and_owes_its_reversal(self, world: World):
        """2208 timing out: the settlement stays CANCELLING tied to the cancel, whose 2601 is queued."""
        msgid, setl_id = await posted(world)
        world.core.fail["cancel"] = [CoreTimeout("no answer")]
        b = world.terminal.cancel("2208", setl_id, world.card.psn_no, now=world.clock.now())
        r = await world.send(b)
        assert r["err_code"] == "CORE_TIMEOUT"
        s = world.store.settlements[(CODE, msgid)]
        assert (s.state, s.cancel_msgid) == (SettlementState.CANCELLING, b.body["msgid"])
        assert queued(world) == [(b.body["msgid"], "2208")]

    async def test_cancel_then_again(self, world: World):
        """A cancelled settlement cancelled again is ALREADY_CANCELLED."""
        msgid, setl_id = await posted(world)
        r = await world.send(world.terminal.cancel("2208", setl_id, world.card.psn_no, now=world.clock.now()))
        assert r["infcode"] == 0
        assert world.store.settlements[(CODE, msgid)].state is SettlementState.CANCELLED
        r = await world.send(world.terminal.cancel("2208", setl_id, world.card.psn_no, now=world.clock.now()))
        assert r["err_code"] == "ALREADY_CANCELLED"

    async def test_failure_restores_posted(self, world: World):
        """A cancel the core refused puts the settlement back to POSTED."""
        msgid, setl_id = await posted(world)
        world.core.fail["cancel"] = [CoreRejected("SETTLEMENT_NOT_FOUND", "gone")]
        await world.send(world.terminal.cancel("2208", setl_id, world.card.psn_no, now=world.clock.now()))
        assert world.store.settlements[(CODE, msgid)].state is SettlementState.POSTED


class TestReverse:
    async def test_reverse_marks_reversed(self, world: World):
        """2601 of a settlement: REVERSED, and the core got the reversal."""
        msgid, _ = await posted(world)
        r = await world.send(world.terminal.reverse(world.card.psn_no, msgid, "2207", now=world.clock.now()))
        assert r["infcode"] == 0
        assert world.store.settlements[(CODE, msgid)].state is SettlementState.REVERSED

    async def test_timeout_queues_the_reversal_asked_for(self, world: World):
        """2601 timing out: the reversal of the original (not of the 2601) is queued for the worker."""
        msgid, _ = await posted(world)
        world.core.fail["reverse"] = [CoreTimeout("no answer")]
        await world.send(world.terminal.reverse(world.card.psn_no, msgid, "2207", now=world.clock.now()))
        assert queued(world) == [(msgid, "2207")]

    async def test_cancel_wins(self, world: World):
        """A cancelled settlement is NOT_REVERSIBLE."""
        msgid, setl_id = await posted(world)
        await world.send(world.terminal.cancel("2208", setl_id, world.card.psn_no, now=world.clock.now()))
        r = await world.send(world.terminal.reverse(world.card.psn_no, msgid, "2207", now=world.clock.now()))
        assert r["err_code"] == "NOT_REVERSIBLE"

    async def test_reversing_a_cancel_restores_the_settlement(self, world: World):
        """2601 of a 2208: the settlement is POSTED again."""
        msgid, setl_id = await posted(world)
        c = world.terminal.cancel("2208", setl_id, world.card.psn_no, now=world.clock.now())
        await world.send(c)
        r = await world.send(world.terminal.reverse(world.card.psn_no, c.body["msgid"], "2208", now=world.clock.now()))
        assert r["infcode"] == 0
        assert world.store.settlements[(CODE, msgid)].state is SettlementState.POSTED


class BrokenPolicies:
    """Policies that crash: a bug in the middle of a flow."""

    def pin_caps(self, region: str):
        raise ZeroDivisionError("a bug")


class TestBugAndDatabase:
    async def test_bug_mid_settle_owes_a_reversal(self, world: World):
        """INTERNAL after the claim: journaled, and a settlement owes the core a 2601 (it may have posted)."""
        world.deps.policies = BrokenPolicies()  # type: ignore[assignment]
        b = world.settle("2207")
        r = await world.send(b)
        assert r["err_code"] == "INTERNAL"
        assert queued(world) == [(b.body["msgid"], "2207")]

    async def test_bug_mid_presettle_owes_nothing(self, world: World):
        """A pre-settlement moved nothing."""
        world.deps.policies = BrokenPolicies()  # type: ignore[assignment]
        r = await world.send(world.settle("2206"))
        assert r["err_code"] == "INTERNAL"
        assert queued(world) == []

    async def test_database_down_is_overloaded_and_changes_nothing(self, world: World):
        """PostgreSQL away: -1 OVERLOADED at once; nothing journaled, nothing posted."""
        world.store.down = True
        r = await world.send(world.settle("2207"))
        assert (r["infcode"], r["err_code"]) == (-1, "OVERLOADED")
        assert "post" not in world.core.calls
        world.store.down = False
        assert world.store.settlements == {}

    async def test_effects_are_applied_with_the_completion(self, world: World):
        """One completion carries the settlement and, on timeout, the reversal: nothing half-done."""
        world.core.fail["post"] = [CoreTimeout("no answer")]
        await world.send(world.settle("2207"))
        (_, effects), *_ = [c for c in world.store.completions if c[1]]
        assert [type(e) for e in effects] == [NewSettlement, QueueReversal]
