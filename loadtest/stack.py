"""Starts what a load run needs, as real processes on this machine: the insurance-core simulator, the gateway
(`onecard serve --workers N`) on a fresh database and Redis prefix, and optionally the bare pass-through
baseline. Everything started is stopped, and the database and prefix dropped, on exit.

PostgreSQL and Redis are the configured ones (ONECARD_PG_DSN / ONECARD_REDIS_URL, used as the admin DSN and
server), else the local ones, else embedded servers under the working folder (as `onecard demo` does).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from redis.asyncio import Redis

from adapters.pg_migrate import create_database
from loadtest.certs import BenchPki
from onecard.localinfra import ensure_postgres, ensure_redis

READY_S = 60.0


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """URLs and the database of a started stack."""

    gateway_url: str
    core_url: str
    pg_dsn: str
    redis_url: str
    redis_prefix: str
    pg_kind: str
    redis_kind: str
    passthrough_url: str | None = None
    pids: dict[str, int] = field(default_factory=dict)  # "gateway", "core", "passthrough" -> root pid
    tls_for: Callable[[str], ssl.SSLContext] | None = None  # with TLS: an institution's client context


async def _wait_ready(
    url: str, proc: subprocess.Popen[bytes], what: str, log: Path, ssl_context: ssl.SSLContext | None = None
) -> None:
    deadline = time.monotonic() + READY_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}; see {log}:\n{_tail(log)}")
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2), ssl=ssl_context or True) as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} not ready at {url} after {READY_S:.0f} s; see {log}:\n{_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own CLI, arguments built here
            [sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _drop(admin_dsn: str, name: str, redis_url: str, prefix: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    await drop_redis_prefix(redis_url, prefix)


async def drop_redis_prefix(redis_url: str, prefix: str) -> None:
    """Delete every Redis key under `prefix` (a run's own keys)."""
    r = Redis.from_url(redis_url)
    try:
        keys = [k async for k in r.scan_iter(match=prefix + "*", count=1000)]
        for i in range(0, len(keys), 500):
            await r.delete(*keys[i : i + 500])
    finally:
        await r.aclose()


async def start_stack(
    exits: AsyncExitStack,
    world_path: Path,
    workdir: Path,
    *,
    workers: int = 1,
    passthrough: bool = False,
    extra_env: dict[str, str] | None = None,
    tls: BenchPki | None = None,
) -> Stack:
    """Start the core simulator and the gateway (and the pass-through) and register their shutdown on `exits`.
    `workdir` (which must exist) holds their logs and any embedded server's data. With `tls` the gateway serves
    HTTPS and requires client certificates of that PKI (`stack.tls_for` gives each institution's client context).

    Raises:
        RuntimeError: a process did not become ready (with the tail of its log).
    """
    pg = await ensure_postgres(os.environ.get("ONECARD_PG_DSN"), workdir)
    exits.push_async_callback(pg.stop)
    rd = await ensure_redis(os.environ.get("ONECARD_REDIS_URL"), workdir)
    exits.push_async_callback(rd.stop)
    name = f"onecard_load_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(pg.dsn, name)
    prefix = f"onecard-load-{name}:"
    exits.push_async_callback(_drop, pg.dsn, name, rd.url, prefix)
    run_id = name.rsplit("_", 1)[-1]
    core_port, gw_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    core_log = workdir / f"core-sim-{run_id}.log"
    core = _spawn(["onecard", "core-sim", "--port", str(core_port), "--world", str(world_path)], core_log, env)
    exits.callback(_stop, core)
    core_url = f"http://127.0.0.1:{core_port}"
    await _wait_ready(core_url + "/healthz", core, "the core simulator", core_log)
    gw_env = {
        **env,
        "ONECARD_PG_DSN": dsn,
        "ONECARD_REDIS_URL": rd.url,
        "ONECARD_REDIS_PREFIX": prefix,
        "ONECARD_CORE_URL": core_url,
        **(extra_env or {}),
    }
    gw_log = workdir / f"gateway-{run_id}.log"
    args = ["onecard", "serve", "--port", str(gw_port), "--world", str(world_path), "--dev"]
    if workers != 1:
        args += ["--workers", str(workers)]
    if tls is not None:
        args += tls.serve_args()
    gw = _spawn(args, gw_log, gw_env)
    exits.callback(_stop, gw)
    gw_url = f"{'https' if tls else 'http'}://127.0.0.1:{gw_port}"
    probe = tls.client(tls.probe_code) if tls is not None else None
    await _wait_ready(gw_url + "/readyz", gw, "the gateway", gw_log, ssl_context=probe)
    stack = Stack(
        gw_url, core_url, dsn, rd.url, prefix, pg.source, rd.source, pids={"gateway": gw.pid, "core": core.pid}
    )
    stack.tls_for = tls.client if tls is not None else None
    if passthrough:
        pt_port = free_port()
        pt_log = workdir / f"passthrough-{run_id}.log"
        pt = _spawn(
            ["loadtest.passthrough", "--port", str(pt_port), "--core-url", core_url, "--workers", str(workers)],
            pt_log,
            env,
        )
        exits.callback(_stop, pt)
        stack.passthrough_url = f"http://127.0.0.1:{pt_port}"
        stack.pids["passthrough"] = pt.pid
        await _wait_ready(stack.passthrough_url + "/healthz", pt, "the pass-through", pt_log)
    return stack
