"""`onecard serve --workers N` as an operator runs it: N processes on one port (SO_REUSEPORT) under a supervisor
that restarts a dead worker and stops them all on SIGTERM; /metrics adds up every worker."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.terminal import CALL_SERVICE, SimCard, Terminal
from tests.conftest import REDIS_URL, TODAY
from tests.ports import free_port
from tests.procs import Served, gone, own_stores, run, until


class Lane:
    """One terminal and one card of the world sending 1101s, each on a fresh connection (so the kernel picks a
    worker for each); counts what it sent."""

    def __init__(self, world: dict[str, Any], url: str) -> None:
        inst = world["institutions"][0]
        psam = next(p for p in inst["psams"] if p["status"] == "ACTIVE")
        persons = {p["psn_no"]: p for p in world["persons"]}
        card = next(
            c for c in world["cards"]
            if c["status"] == "ACTIVE" and persons[c["psn_no"]]["status"] == "ACTIVE"
            and date.fromisoformat(c["valid_until"]) >= TODAY
        )  # fmt: skip
        self.terminal = Terminal(inst["fixmedins_code"], inst["fixmedins_name"], psam["psam_no"])
        self.card = SimCard.from_world(card)
        self.url = url
        self.sent = 0

    async def _call(self, http: aiohttp.ClientSession, body: dict[str, Any]) -> dict[str, Any]:
        self.sent += 1
        async with http.post(self.url + CALL_SERVICE, data=orjson.dumps(body)) as r:
            resp: dict[str, Any] = orjson.loads(await r.read())
        assert r.status == 200, resp
        assert resp["infcode"] == 0, resp
        return resp

    async def send(self, n: int) -> None:
        """Sign in if needed, then n 1101s, each answered OK with a MAC2 that verifies."""
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            if self.terminal.sign_no is None:
                resp = await self._call(http, self.terminal.sign_in().body)
                self.terminal.sign_no = resp["output"]["signinoutb"]["sign_no"]
            for _ in range(n):
                b = self.terminal.person_info(self.card)
                assert b.mac2_ok(await self._call(http, b.body))


async def scrape(url: str) -> dict[str, list[Any]]:
    """/metrics on a fresh connection (any worker): samples by name."""
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


async def served_by(served: Served, lane: Lane, pids: set[int]) -> None:
    """Send until every pid in `pids` has answered some of the requests (the kernel spreads new connections)."""

    async def spread() -> bool:
        await lane.send(5)
        by_pid = served.requests_by_pid()
        return all(by_pid.get(pid, 0) > 0 for pid in pids)

    await until(spread, f"requests answered by each of the workers {sorted(pids)}")


@pytest.fixture
async def served(world_file: Path, core_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    """`onecard serve --dev --workers 2 --world` on a database it creates and a Redis prefix of its own: both
    workers create, migrate and load the same empty database at once."""
    async with own_stores() as (dsn, prefix):
        env = {"ONECARD_PG_DSN": dsn, "ONECARD_REDIS_URL": REDIS_URL, "ONECARD_REDIS_PREFIX": prefix}
        args = ["--dev", "--workers", "2", "--world", str(world_file), "--core-url", core_url]
        s = await Served.start(args, env, free_port(), tmp_path)
        try:
            await s.ready()
            await until(lambda: len(s.workers()) == 2, "two worker processes")
            yield s
        finally:
            await s.stop()  # and its workers, before their database and keys go


class TestWorkers:
    async def test_two_workers_serve_one_port(self, served: Served, world: dict[str, Any]):
        """Both workers answer terminals on the one port; /metrics on either counts every request exactly once."""
        lane = Lane(world, served.url)
        workers = served.workers()
        await served_by(served, lane, workers)
        assert set(served.requests_by_pid()) == workers  # no other process wrote metrics
        for _ in range(4):  # each scrape lands on either worker
            samples = await scrape(served.url)
            assert sum(s.value for s in samples["onecard_requests_total"]) == lane.sent
            assert all("pid" not in s.labels for s in samples["onecard_core_in_flight"])

        async def version_seen() -> bool:  # scrape-time gauges reach the aggregate too (the world has a list)
            return (await scrape(served.url))["onecard_blacklist_version"][0].value > 0

        await until(version_seen, "blacklist version in /metrics")

    async def test_killed_worker_is_replaced(self, served: Served, world: dict[str, Any]):
        """SIGKILL one worker: the port keeps answering, the supervisor starts another, the totals keep the dead
        worker's requests."""
        lane = Lane(world, served.url)
        before = served.workers()
        await served_by(served, lane, before)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        await until(lambda: gone(victim), "the killed worker reaped")
        await lane.send(10)  # the survivor answers
        fresh = await until(lambda: served.workers() - before, "replacement worker")
        assert len(served.workers()) == 2
        await served_by(served, lane, fresh)
        samples = await scrape(served.url)
        assert sum(s.value for s in samples["onecard_requests_total"]) == lane.sent
        assert served.requests_by_pid()[victim] > 0
        assert not list(served.metrics_dir().glob(f"gauge_live*_{victim}.db"))  # marked dead: out of the gauges
        await until(lambda: served.logged(f"(pid {victim}) died with exit code -9 (SIGKILL)"), "warning in the log")

    async def test_sigterm_stops_every_process(self, served: Served):
        """SIGTERM to the supervisor: the workers shut down, the supervisor exits 0, nothing is left behind."""
        workers = served.workers()
        metrics_dir = served.metrics_dir()
        assert await served.stop(signal.SIGTERM) == 0
        assert all(gone(pid) for pid in workers)
        assert not metrics_dir.exists()
        assert served.logged("all workers stopped")
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as http, http.get(served.url + "/healthz"):
                pass


class TestRefusals:
    def test_zero_workers(self):
        """--workers 0 is a clear configuration error (exit 2) that names the flag."""
        r = run("serve", "--dev", "--workers", "0", "--port", str(free_port()), timeout=30)
        assert r.returncode == 2
        assert "--workers" in r.stderr
        assert "Traceback" not in r.stderr

    def test_config_error_in_workers(self):
        """A configuration refused at a worker's start-up stops the supervisor at once: exit 2, said once."""
        env = {"ONECARD_KEYS": "", "ONECARD_KEYS_FILE": ""}
        r = run("serve", "--workers", "2", "--port", str(free_port()), env=env, timeout=30)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("no master keys") == 1, r.stderr
        assert "Traceback" not in r.stderr

    def test_gives_up_when_workers_cannot_start(self):
        """PostgreSQL unreachable at start: a few tries with backoff, then exit 3 (a dependency) with one line
        naming it, no tracebacks."""
        port = free_port()
        env = {"ONECARD_PG_DSN": f"postgresql://postgres@127.0.0.1:{port}/nowhere"}
        r = run("serve", "--dev", "--workers", "2", "--port", str(free_port()), env=env, timeout=30)
        assert r.returncode == 3, r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("onecard: PostgreSQL at 127.0.0.1:"), last
        assert f":{port}/nowhere refused the connection" in last
        assert "3 tries" in last
        assert "Traceback" not in r.stderr
