"""Supervised background loops: a crash is logged, counted and the loop started again; while it waits the
status names it; stop ends every loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.background import Background


class TestBackground:
    async def test_a_crashed_loop_is_restarted_and_counted(self, caplog: pytest.LogCaptureFixture):
        """The loop dies twice, then runs: two crashes counted and logged with the loop's name, three starts."""
        starts: list[int] = []
        crashes: list[str] = []
        running = asyncio.Event()

        async def loop() -> None:
            starts.append(1)
            if len(starts) <= 2:
                raise ValueError("boom")
            running.set()
            await asyncio.Event().wait()

        bg = Background(crashes.append, restart_s=(0.01, 0.02))
        with caplog.at_level(logging.ERROR, logger="onecard.background"):
            bg.start("sealer", loop)
            async with asyncio.timeout(5):
                await running.wait()
        assert len(starts) == 3
        assert crashes == ["sealer", "sealer"]
        assert sum("background loop sealer crashed" in r.getMessage() for r in caplog.records) == 2
        assert bg.status == "ok"
        await bg.stop()

    async def test_status_names_a_loop_waiting_to_restart(self):
        """Between a crash and the restart, readiness sees which loop and why."""
        crashed = asyncio.Event()

        async def loop() -> None:
            raise KeyError("gone")

        bg = Background(lambda name: crashed.set(), restart_s=(30.0, 30.0))
        bg.start("publisher", loop)
        async with asyncio.timeout(5):
            await crashed.wait()
        assert bg.status == "restarting: publisher (KeyError)"
        await bg.stop()

    async def test_a_loop_that_returns_is_restarted(self):
        """A loop is meant to run forever: returning is treated like a crash."""
        starts: list[int] = []
        again = asyncio.Event()

        async def loop() -> None:
            starts.append(1)
            if len(starts) > 1:
                again.set()
                await asyncio.Event().wait()

        bg = Background(restart_s=(0.01, 0.01))
        bg.start("worker", loop)
        async with asyncio.timeout(5):
            await again.wait()
        await bg.stop()
        assert len(starts) == 2

    async def test_stop_cancels_every_loop(self):
        """After stop nothing runs."""
        bg = Background()
        bg.start("a", lambda: asyncio.Event().wait())
        bg.start("b", lambda: asyncio.Event().wait())
        tasks = list(bg._tasks.values())
        await bg.stop()
        assert all(t.done() for t in tasks)
