"""Helpers for tests that run the `onecard` command as real processes: run it to completion, or start one of its
servers (`serve`, `core-sim`) with its log collected and wait for it over HTTP; a database and Redis prefix of
their own; worker processes (from /proc) and each worker's own metric files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import asyncpg
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from redis.asyncio import Redis

from tests.conftest import PG_ADMIN, REDIS_URL

ONECARD = [sys.executable, "-m", "onecard"]
T = TypeVar("T")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`onecard ARGS` to completion (blocking), with `env` over this process's environment; output captured."""
    return subprocess.run(
        [*ONECARD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


async def until(check: Callable[[], T | Awaitable[T | None] | None], what: str, seconds: float = 15.0) -> T:
    """Poll `check` until it returns something true; fail naming `what` past the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if isinstance(got, Awaitable):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds:g} s")
        await asyncio.sleep(0.05)


async def _get(url: str, timeout: float = 300.0) -> tuple[int, bytes] | None:
    """GET `url` on a fresh connection: (status, body) whatever the status, or None when nothing answers."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.get(url) as r,
        ):
            return r.status, await r.read()
    except (aiohttp.ClientError, OSError):  # refused, reset, timed out
        return None


async def wait_http(url: str, seconds: float = 30.0) -> tuple[int, bytes]:
    """The first answer from `url`, whatever its status, while a server comes up; fail past `seconds`."""
    return await until(lambda: _get(url, timeout=2), f"answer from {url}", seconds)


@contextlib.asynccontextmanager
async def own_stores() -> AsyncIterator[tuple[str, str]]:
    """(DSN of a database nobody created yet, Redis prefix nobody used); both removed afterwards."""
    name = f"onecard_procs_{uuid.uuid4().hex[:10]}"
    prefix = f"onecard-procs-{uuid.uuid4().hex[:8]}:"
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name, prefix
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        r = Redis.from_url(REDIS_URL)
        keys = [k async for k in r.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await r.delete(*keys)
        await r.aclose()


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None when there is no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def gone(pid: int) -> bool:
    """The process has exited and been reaped. (Its /proc entry turns zombie while its other threads, which share
    its sockets, may still be exiting: only reaping proves every thread, and so every socket, is gone.)"""
    return _stat(pid) is None


def children(pid: int) -> set[int]:
    """Live child processes of `pid`."""
    out = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] != "Z" and int(stat[1]) == pid:
                out.add(int(entry.name))
    return out


class Served:
    """An `onecard` server (`serve` unless told otherwise) as a process; its stderr is collected in `log`, line by
    line."""

    def __init__(self, proc: asyncio.subprocess.Process, command: str, port: int, tmpdir: Path | None) -> None:
        self.proc = proc
        self.command = command
        self.url = f"http://127.0.0.1:{port}"
        self.tmpdir = tmpdir
        self.log: list[str] = []
        self._drain = asyncio.create_task(self._read_log())

    @classmethod
    async def start(
        cls, args: list[str], env: dict[str, str], port: int, tmpdir: Path | None = None, command: str = "serve"
    ) -> Served:
        """Start `onecard COMMAND ARGS --port PORT` with `env` over this process's environment, and its temporary
        files (metrics) under `tmpdir` when given."""
        proc = await asyncio.create_subprocess_exec(
            *ONECARD, command, *args, "--port", str(port),
            env={**os.environ, **env, **({"TMPDIR": str(tmpdir)} if tmpdir is not None else {})},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc, command, port, tmpdir)

    async def _read_log(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.log.append(line.decode(errors="replace").rstrip())

    def logged(self, text: str) -> bool:
        """Some line of the log contains `text`."""
        return any(text in line for line in self.log)

    async def ready(self, seconds: float = 20.0) -> bytes:
        """Wait until /readyz answers 200 and return that answer's body. Past the deadline, or once the process has
        exited, kill it (and its workers) and fail."""

        async def ok() -> bytes | None:
            got = await _get(self.url + "/readyz")
            if got is None:
                assert self.proc.returncode is None, "\n".join(self.log)
                return None
            status, body = got
            return body if status == 200 else None

        try:
            return await until(ok, "ready gateway", seconds)
        except BaseException:
            await self.kill()
            raise

    def workers(self) -> set[int]:
        """The worker processes now."""
        return children(self.proc.pid)

    def metrics_dir(self) -> Path:
        """The supervisor's private multi-process metrics directory."""
        assert self.tmpdir is not None, "started without a tmpdir of its own"
        (found,) = self.tmpdir.glob("onecard-metrics-*")
        return found

    def requests_by_pid(self) -> dict[int, float]:
        """`onecard_requests_total` summed over labels, per worker pid (dead ones too), from its own file."""
        out = {}
        for f in self.metrics_dir().glob("counter_*.db"):
            families = MultiProcessCollector.merge([str(f)])
            out[int(f.stem.split("_")[1])] = sum(
                s.value for m in families for s in m.samples if s.name == "onecard_requests_total"
            )
        return out

    async def kill(self) -> int:
        """SIGKILL the workers and the process; reap it, read the rest of its log; its exit code."""
        for pid in self.workers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.returncode is None:
            self.proc.kill()
        rc = await self.proc.wait()
        await self._drain
        return rc

    async def stop(self, sig: signal.Signals = signal.SIGTERM, seconds: float = 20.0, *, strict: bool = True) -> int:
        """Signal the process and wait for its exit code; past the deadline kill it (and its workers), then fail
        unless not `strict`."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            rc = await asyncio.wait_for(self.proc.wait(), seconds)
        except TimeoutError:
            rc = await self.kill()
            if strict:
                pytest.fail(f"`onecard {self.command}` did not stop within {seconds:g} s on {sig.name}")
            return rc
        await self._drain
        return rc
