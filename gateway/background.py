"""The gateway's background loops (publisher, follower, reversal worker, journal recovery, sealer, pruning,
node lease), each kept running: a crash is logged with its traceback, counted, and the loop restarted after a
backoff; while one waits to restart, readiness names it. A loop must never die quietly."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("onecard.background")

RESTART_S = (1.0, 30.0)  # first and longest wait before a crashed loop is started again
HEALTHY_S = 60.0  # a loop that ran this long before crashing starts again after the first wait


class Background:
    """Named background loops under supervision."""

    def __init__(
        self, on_crash: Callable[[str], None] = lambda name: None, *, restart_s: tuple[float, float] = RESTART_S
    ):
        self._on_crash = on_crash
        self._restart_s = restart_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.failing: dict[str, str] = {}  # name -> why, while it waits to restart

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` as the loop `name`, again after every crash, until `stop`."""
        self._tasks[name] = asyncio.create_task(self._keep(name, run), name=f"onecard:{name}")

    @property
    def status(self) -> str:
        """`ok`, or which loops are waiting to restart and why (for /readyz)."""
        if not self.failing:
            return "ok"
        return "restarting: " + ", ".join(f"{name} ({why})" for name, why in sorted(self.failing.items()))

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        delay = self._restart_s[0]
        while True:
            started = time.monotonic()
            try:
                await run()
                why = "returned"
                log.error("background loop %s returned; it is started again in %g s", name, delay)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                why = type(exc).__name__
                log.exception("background loop %s crashed; it is started again in %g s", name, delay)
            self.failing[name] = why
            self._on_crash(name)
            if time.monotonic() - started >= HEALTHY_S:
                delay = self._restart_s[0]
            await asyncio.sleep(delay)
            del self.failing[name]
            delay = min(delay * 2, self._restart_s[1])

    async def stop(self, grace_s: float = 10.0) -> None:
        """Cancel every loop and wait for them, but not forever: shutdown must end even if a loop were to
        swallow its cancellation (as Python 3.11's asyncio.wait_for can); that one is named in the log."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            log.error("background loop %s did not stop within %g s of its cancellation", task.get_name(), grace_s)
        self._tasks.clear()
