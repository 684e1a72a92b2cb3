"""What the infrastructure drills share: a Redis server and a PostgreSQL cluster of the drill's own (so the rest
of the suite is untouched), each of which a drill may kill, restart, empty or freeze (SIGSTOP), a gateway on
them, and the answer-time statistics a drill reports."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from tests.e2e.helpers import put_faults
from tests.ports import free_port


class RedisServer:
    """A redis-server of our own, on a free port, that a drill may kill, start again, empty or freeze."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None, "redis-server is not installed"
        self.proc = await asyncio.create_subprocess_exec(
            exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                await w.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    async def kill(self) -> None:
        if self.proc is not None:
            self.thaw()
            self.proc.kill()
            await self.proc.wait()
            self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, as in a partition that drops packets."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    async def flushall(self) -> None:
        from redis.asyncio import Redis

        r = Redis.from_url(self.url)
        try:
            await r.flushall()
        finally:
            await r.aclose()


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


@pytest.fixture
async def gateway_on(own_redis: RedisServer, settings: Any) -> AsyncIterator[TestClient[Any, Any]]:
    """A second gateway on the session's PostgreSQL and core, but on a Redis the drill may restart."""
    async with served(dataclasses.replace(settings, redis_url=own_redis.url, world_file=None)) as client:
        yield client


class served:
    """A gateway app on loopback, ready (its /readyz answered 200) before the block starts."""

    def __init__(self, settings: Any) -> None:
        self.client = TestClient(TestServer(create_app(settings)))

    async def __aenter__(self) -> TestClient[Any, Any]:
        await self.client.__aenter__()
        for _ in range(200):
            r = await self.client.get("/readyz")
            if r.status == 200:
                break
            await asyncio.sleep(0.05)
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.__aexit__(None, None, None)


@pytest.fixture
async def faults(core_url: str) -> Any:
    """Set faults on the session's core simulator; always cleared afterwards."""
    try:
        yield lambda cfg: put_faults(core_url, cfg)
    finally:
        await put_faults(core_url, {})


def pg_version() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir()) if Path("/etc/postgresql").is_dir() else []
    if not versions or shutil.which("pg_createcluster") is None:
        pytest.skip("needs Debian's postgresql-common (pg_createcluster) to make a cluster of its own")
    return versions[-1]


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@dataclasses.dataclass
class PgCluster:
    """A PostgreSQL cluster of the drill's own."""

    version: str
    name: str
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/onecard"

    def processes(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, WAL writer, ...)."""
        data = Path(f"/var/lib/postgresql/{self.version}/{self.name}")
        master = int((data / "postmaster.pid").read_text().split()[0])
        pids = [master]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.append(int(stat.parent.name))
        return pids

    def freeze(self) -> list[int]:
        """SIGSTOP the whole cluster: open connections and new ones alike get no answer."""
        pids = self.processes()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    @staticmethod
    def thaw(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.fixture
async def own_pg() -> AsyncIterator[PgCluster]:
    """A PostgreSQL cluster for this drill only (trust auth, loopback), dropped afterwards."""
    cluster = PgCluster(pg_version(), f"drill{uuid.uuid4().hex[:8]}", free_port())
    await asyncio.to_thread(
        run, "pg_createcluster", cluster.version, cluster.name, "-p", str(cluster.port), "--start", "--",
        "--auth-host=trust", "--auth-local=trust",
    )  # fmt: skip
    try:
        yield cluster
    finally:
        await asyncio.to_thread(run, "pg_dropcluster", cluster.version, cluster.name, "--stop")


def spread(seconds: list[float]) -> str:
    """p50, p90, max and count of answer times, for a drill's report line."""
    if not seconds:
        return "no answers"
    xs = sorted(seconds)

    def pct(p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))]

    return f"n={len(xs)} p50 {pct(0.5) * 1000:.0f} ms, p90 {pct(0.9) * 1000:.0f} ms, max {xs[-1] * 1000:.0f} ms"
