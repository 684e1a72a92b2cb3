"""GuardedCore: the insurance-core port behind a circuit breaker, a bound on calls in flight and a deadline.

Closed: calls pass; `failure_threshold` failures in a row (CoreUnavailable, CoreTimeout) open the breaker. A
refusal (CoreRejected) is a healthy core and counts as success. Open: every call fails at once with
CoreUnavailable and nothing is sent. After `reset_timeout_s` the next call is the one probe (half-open); callers
arriving meanwhile get CoreUnavailable. The probe's success closes the breaker, its failure re-opens it. Reads
and writes share the breaker. At most `max_in_flight` calls run; a call finding none free waits `queue_wait_s`,
then fails with CoreUnavailable (nothing sent).

Written here rather than taken from purgatory or aiobreaker: both let every half-open caller through instead of
one probe, read the wall clock (no injected clock, so tests would sleep), and purgatory adds a message bus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TypeVar

from gateway.domain.core import Cancellation, Cancelled, PersonRecord, Posted, Posting, Reversal, Reversed
from gateway.domain.errors import CoreRejected, CoreTimeout, CoreUnavailable
from gateway.domain.reconcile import CoreRecord
from gateway.ports import InsuranceCore

_T = TypeVar("_T")
CLOSED, HALF_OPEN, OPEN = 0, 1, 2  # the values of the breaker-state gauge


class GuardedCore:
    """`gateway.ports.InsuranceCore` around another one; one instance per process, shared by all calls."""

    def __init__(
        self,
        inner: InsuranceCore,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 5.0,
        max_in_flight: int = 200,
        queue_wait_s: float = 0.05,
        deadline_grace_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        on_short_circuit: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.inner = inner
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.queue_wait_s = queue_wait_s
        self.deadline_grace_s = deadline_grace_s  # the inner adapter's own deadline normally fires first
        self.clock = clock
        self._on_short_circuit = on_short_circuit
        self._slots = asyncio.Semaphore(max_in_flight)
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.in_flight = 0

    @property
    def state(self) -> int:
        """CLOSED, HALF_OPEN or OPEN (an open breaker past its cool-down stays OPEN until a call probes)."""
        return self._state

    async def person(self, psn_no: str, *, timeout: float) -> PersonRecord:
        """Raises CoreUnavailable, CoreRejected."""
        return await self._call(lambda: self.inner.person(psn_no, timeout=timeout), timeout, write=False)

    async def post_settlement(self, posting: Posting, *, timeout: float) -> Posted:
        """Raises CoreUnavailable, CoreTimeout, CoreRejected."""
        return await self._call(lambda: self.inner.post_settlement(posting, timeout=timeout), timeout, write=True)

    async def cancel_settlement(self, cancel: Cancellation, *, timeout: float) -> Cancelled:
        """Raises CoreUnavailable, CoreTimeout, CoreRejected."""
        return await self._call(lambda: self.inner.cancel_settlement(cancel, timeout=timeout), timeout, write=True)

    async def reverse(self, reversal: Reversal, *, timeout: float) -> Reversed:
        """Raises CoreUnavailable, CoreTimeout, CoreRejected."""
        return await self._call(lambda: self.inner.reverse(reversal, timeout=timeout), timeout, write=True)

    async def settlements(self, fixmedins_code: str, begin: date, end: date, *, timeout: float) -> list[CoreRecord]:
        """A read like `person`. Raises CoreUnavailable, CoreRejected."""
        return await self._call(
            lambda: self.inner.settlements(fixmedins_code, begin, end, timeout=timeout), timeout, write=False
        )

    async def close(self) -> None:
        """Release the inner adapter's connections."""
        await self.inner.close()

    async def _call(self, op: Callable[[], Awaitable[_T]], timeout: float, *, write: bool) -> _T:
        probe = self._admit()
        try:
            await self._take_slot()
        except BaseException:
            self._unprobe(probe)
            raise
        self.in_flight += 1
        try:
            async with asyncio.timeout(timeout + self.deadline_grace_s):
                result = await op()
        except TimeoutError as exc:  # the backstop deadline: the request may have been sent
            self._failed(probe)
            kind = CoreTimeout if write else CoreUnavailable
            raise kind(f"core: no answer within {timeout:g} s") from exc
        except (CoreUnavailable, CoreTimeout):
            self._failed(probe)
            raise
        except CoreRejected:
            self._succeeded(probe)
            raise
        except BaseException:  # cancelled, or a bug: proves neither health nor failure
            self._unprobe(probe)
            raise
        finally:
            self.in_flight -= 1
            self._slots.release()
        self._succeeded(probe)
        return result

    def _admit(self) -> bool:
        """Let a call through or raise CoreUnavailable; True when the call is the half-open probe."""
        if self._state == CLOSED:
            return False
        if self._state == OPEN:
            if self.clock() - self._opened_at < self.reset_timeout_s:
                self._on_short_circuit("open")
                raise CoreUnavailable("core: circuit open after repeated failures; not sent")
            self._state = HALF_OPEN
        if self._probing:
            self._on_short_circuit("half_open")
            raise CoreUnavailable("core: circuit half-open and its probe is in flight; not sent")
        self._probing = True
        return True

    async def _take_slot(self) -> None:
        if not self._slots.locked():  # the common case: no timer, no suspension
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(self.queue_wait_s):
                await self._slots.acquire()
        except TimeoutError:
            self._on_short_circuit("in_flight")
            raise CoreUnavailable("core: too many calls in flight; not sent") from None

    def _failed(self, probe: bool) -> None:
        if probe:
            self._open()
        elif self._state == CLOSED:  # a late failure of a call admitted before the breaker opened is ignored
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def _succeeded(self, probe: bool) -> None:
        if probe:
            self._state, self._probing = CLOSED, False
        if self._state == CLOSED:
            self._failures = 0

    def _unprobe(self, probe: bool) -> None:
        if probe:  # the next caller probes instead
            self._probing = False

    def _open(self) -> None:
        self._state, self._probing, self._failures = OPEN, False, 0
        self._opened_at = self.clock()
