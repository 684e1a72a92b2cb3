"""GuardedCore: circuit breaker, half-open probing, calls-in-flight bound and backstop deadline, against a fake
of our InsuranceCore port with an injected clock (no sleeps, no timed assertions)."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import date

import pytest

from adapters.core_guard import CLOSED, HALF_OPEN, OPEN, GuardedCore
from gateway.domain.core import Cancellation, Cancelled, PersonRecord, Posted, Posting, Reversal, Reversed
from gateway.domain.errors import CoreRejected, CoreTimeout, CoreUnavailable
from gateway.domain.reconcile import CoreRecord
from gateway.ports import InsuranceCore

PERSON = PersonRecord("P1", "c", "n", "1", "1980-01-01", "310", "11", "330200", 100, 0, 0, 1)
RECORD = CoreRecord("M1", "S1", "H33020000001", "POSTED", "2026-01-01 08:00:00", 1000, 500, 300, 200)
REVERSAL = Reversal("RV1", "H33020000001", "P1", "H33020000001202601010000000001", "2207")


class ScriptedCore:
    """The core port answering from a script: an exception to raise, or None to succeed; an optional gate
    holds the next calls until it is set."""

    def __init__(self) -> None:
        self.script: deque[BaseException | None] = deque()
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.closed = False
        self._arrived = asyncio.Event()

    async def reached(self, n: int) -> None:
        """Return once `n` calls in all have arrived."""
        while self.calls < n:
            self._arrived.clear()
            await self._arrived.wait()

    async def _answer(self) -> None:
        self.calls += 1
        self._arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.popleft() if self.script else None
        if outcome is not None:
            raise outcome

    async def person(self, psn_no: str, *, timeout: float) -> PersonRecord:
        await self._answer()
        return PERSON

    async def post_settlement(self, posting: Posting, *, timeout: float) -> Posted:
        await self._answer()
        return Posted("S1", 0, 2)

    async def cancel_settlement(self, cancel: Cancellation, *, timeout: float) -> Cancelled:
        await self._answer()
        return Cancelled("C1", "S1", 0, 0, 0, 0, 0)

    async def reverse(self, reversal: Reversal, *, timeout: float) -> Reversed:
        await self._answer()
        return Reversed(reversal.omsgid, True)

    async def settlements(self, fixmedins_code: str, begin: date, end: date, *, timeout: float) -> list[CoreRecord]:
        await self._answer()
        return [RECORD]

    async def close(self) -> None:
        self.closed = True


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_: InsuranceCore = ScriptedCore()


def guarded(
    inner: ScriptedCore, clock: Clock, *, failures: int = 3, reset: float = 5.0, slots: int = 10, wait: float = 0.0
) -> tuple[GuardedCore, list[str]]:
    refused: list[str] = []
    core = GuardedCore(
        inner,
        failure_threshold=failures,
        reset_timeout_s=reset,
        max_in_flight=slots,
        queue_wait_s=wait,
        clock=clock,
        on_short_circuit=refused.append,
    )
    port: InsuranceCore = core  # GuardedCore implements the port it wraps
    assert port is core
    return core, refused


async def trip(core: GuardedCore, inner: ScriptedCore, n: int) -> None:
    inner.script.extend(CoreUnavailable("down") for _ in range(n))
    for _ in range(n):
        with pytest.raises(CoreUnavailable):
            await core.person("P1", timeout=1.0)


class TestBreaker:
    async def test_closed_passes_calls_through(self):
        """Closed: answers and errors of the inner core pass unchanged."""
        inner, clock = ScriptedCore(), Clock()
        core, _ = guarded(inner, clock)
        assert await core.person("P1", timeout=1.0) == PERSON
        inner.script.append(CoreTimeout("lost"))
        with pytest.raises(CoreTimeout):
            await core.reverse(REVERSAL, timeout=1.0)
        assert core.state == CLOSED
        assert inner.calls == 2

    async def test_opens_after_threshold_and_sends_nothing(self):
        """N failures in a row (unavailable or timed out) open it; then calls fail at once, unsent."""
        inner, clock = ScriptedCore(), Clock()
        core, refused = guarded(inner, clock, failures=3)
        await trip(core, inner, 2)
        inner.script.append(CoreTimeout("lost"))
        with pytest.raises(CoreTimeout):
            await core.reverse(REVERSAL, timeout=1.0)
        assert core.state == OPEN
        sent = inner.calls
        clock.now += 4.9
        for _ in range(5):
            with pytest.raises(CoreUnavailable, match="not sent"):
                await core.person("P1", timeout=1.0)
            with pytest.raises(CoreUnavailable, match="not sent"):
                await core.reverse(REVERSAL, timeout=1.0)  # reads and writes share the breaker
        assert inner.calls == sent
        assert refused == ["open"] * 10

    async def test_success_resets_the_count(self):
        """Only failures in a row count: a success in between starts again from zero."""
        inner, clock = ScriptedCore(), Clock()
        core, _ = guarded(inner, clock, failures=3)
        await trip(core, inner, 2)
        await core.person("P1", timeout=1.0)
        await trip(core, inner, 2)
        assert core.state == CLOSED

    async def test_rejections_do_not_count(self):
        """A business refusal means the core is healthy: it never opens the breaker."""
        inner, clock = ScriptedCore(), Clock()
        core, _ = guarded(inner, clock, failures=2)
        inner.script.extend(CoreRejected("INSUFFICIENT_BALANCE", "no") for _ in range(5))
        for _ in range(5):
            with pytest.raises(CoreRejected):
                await core.reverse(REVERSAL, timeout=1.0)
        assert core.state == CLOSED
        assert inner.calls == 5

    async def test_half_open_lets_one_probe_and_success_closes(self):
        """After the cool-down exactly one call probes; others meanwhile are refused; its success closes."""
        inner, clock = ScriptedCore(), Clock()
        core, refused = guarded(inner, clock, failures=1)
        await trip(core, inner, 1)
        clock.now += 5.0
        inner.gate = asyncio.Event()
        probe = asyncio.create_task(core.person("P1", timeout=1.0))
        await inner.reached(2)
        assert core.state == HALF_OPEN
        for _ in range(3):
            with pytest.raises(CoreUnavailable, match="probe"):
                await core.post_settlement(
                    Posting("M", "2207", "H", "P1", 1, 1, 0, 1, 0, 1, "2026-01-01 00:00:00"), timeout=1.0
                )
        assert refused == ["half_open"] * 3
        inner.gate.set()
        assert await probe == PERSON
        assert core.state == CLOSED
        inner.gate = None
        assert await core.person("P1", timeout=1.0) == PERSON
        assert inner.calls == 3

    async def test_failed_probe_reopens(self):
        """A failed probe re-opens the breaker for another full cool-down."""
        inner, clock = ScriptedCore(), Clock()
        core, _ = guarded(inner, clock, failures=1, reset=5.0)
        await trip(core, inner, 1)
        clock.now += 5.0
        inner.script.append(CoreTimeout("lost"))
        with pytest.raises(CoreTimeout):
            await core.reverse(REVERSAL, timeout=1.0)
        assert core.state == OPEN
        clock.now += 4.9
        with pytest.raises(CoreUnavailable, match="circuit open"):
            await core.person("P1", timeout=1.0)
        assert inner.calls == 2
        clock.now += 0.1
        assert await core.person("P1", timeout=1.0) == PERSON
        assert core.state == CLOSED

    async def test_rejected_probe_closes(self):
        """A refusal answering the probe proves the core is up."""
        inner, clock = ScriptedCore(), Clock()
        core, _ = guarded(inner, clock, failures=1)
        await trip(core, inner, 1)
        clock.now += 5.0
        inner.script.append(CoreRejected("PERSON_NOT_FOUND", "no"))
        with pytest.raises(CoreRejected):
            await core.person("P1", timeout=1.0)
        assert core.state == CLOSED

    async def test_cancelled_probe_lets_the_next_call_probe(self):
        """A probe cancelled by its caller proves nothing: the next call probes instead."""
        inner, clock = ScriptedCore(), Clock()
        core, _ = guarded(inner, clock, failures=1)
        await trip(core, inner, 1)
        clock.now += 5.0
        inner.gate = asyncio.Event()
        probe = asyncio.create_task(core.person("P1", timeout=1.0))
        await inner.reached(2)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert core.state == HALF_OPEN
        inner.gate = None
        assert await core.person("P1", timeout=1.0) == PERSON
        assert core.state == CLOSED

    async def test_close_closes_the_inner_core(self):
        """close() releases the wrapped adapter."""
        inner = ScriptedCore()
        core, _ = guarded(inner, Clock())
        await core.close()
        assert inner.closed


class TestInFlight:
    async def test_full_refuses_unsent_and_does_not_trip(self):
        """With every slot taken a call is refused unsent after its short wait; that is no core failure."""
        inner, clock = ScriptedCore(), Clock()
        core, refused = guarded(inner, clock, failures=1, slots=2, wait=0.0)
        inner.gate = asyncio.Event()
        held = [asyncio.create_task(core.person("P1", timeout=1.0)) for _ in range(2)]
        await inner.reached(2)
        assert core.in_flight == 2
        with pytest.raises(CoreUnavailable, match="too many calls in flight"):
            await core.reverse(REVERSAL, timeout=1.0)
        assert inner.calls == 2
        assert refused == ["in_flight"]
        assert core.state == CLOSED
        inner.gate.set()
        assert await asyncio.gather(*held) == [PERSON, PERSON]
        assert core.in_flight == 0
        assert await core.person("P1", timeout=1.0) == PERSON

    async def test_waiter_gets_a_freed_slot(self):
        """A call waiting within its allowance proceeds as soon as a slot frees."""
        inner, clock = ScriptedCore(), Clock()
        core, refused = guarded(inner, clock, slots=1, wait=60.0)
        inner.gate = asyncio.Event()
        first = asyncio.create_task(core.person("P1", timeout=1.0))
        await inner.reached(1)
        second = asyncio.create_task(core.person("P1", timeout=1.0))
        await asyncio.sleep(0)
        assert inner.calls == 1  # the second waits for the slot
        inner.gate.set()
        assert await first == PERSON
        assert await second == PERSON
        assert refused == []
        assert core.in_flight == 0


class TestDeadline:
    async def test_backstop_deadline(self):
        """An inner call outliving its deadline: a write's outcome is unknown, a read is unavailable; both count."""
        inner, clock = ScriptedCore(), Clock()
        core, _ = guarded(inner, clock, failures=2)
        core.deadline_grace_s = 0.0
        inner.gate = asyncio.Event()  # never set: the inner core hangs
        with pytest.raises(CoreTimeout):
            await core.reverse(REVERSAL, timeout=0.0)
        with pytest.raises(CoreUnavailable):
            await core.person("P1", timeout=0.0)
        assert core.state == OPEN
        assert core.in_flight == 0


class TestSettlementsRead:
    async def test_settlements_pass_through_and_share_the_breaker(self):
        """settlements() passes through closed; it is a read: a backstop deadline is unavailable, and it counts."""
        inner, clock = ScriptedCore(), Clock()
        core, _ = guarded(inner, clock, failures=2)
        day = date(2026, 1, 1)
        assert await core.settlements("H33020000001", day, day, timeout=1.0) == [RECORD]
        core.deadline_grace_s = 0.0
        inner.gate = asyncio.Event()  # never set: the inner core hangs
        for _ in range(2):
            with pytest.raises(CoreUnavailable):
                await core.settlements("H33020000001", day, day, timeout=0.0)
        assert core.state == OPEN
        with pytest.raises(CoreUnavailable):
            await core.settlements("H33020000001", day, day, timeout=1.0)
        assert inner.calls == 3
