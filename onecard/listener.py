"""The terminal listener's bound on connections (issue 11, bad input "10,000 idle connections"): at most
`max_connections` open per process (room made by closing the oldest idle one, else a new one is answered 503 and
closed), a deadline for each connection's TLS handshake and first request head, the open-file limit raised."""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from collections.abc import Callable
from typing import Protocol, cast

from aiohttp import web

from gateway.settings import Settings

log = logging.getLogger("onecard.serve")

# Descriptors kept out of the terminal connections' share: the PostgreSQL and core pools are counted from the
# settings, this covers Redis, the admin listener, logs, metric files, the status pipe and the like.
FD_RESERVE = 128
WARN_EVERY_S = 10.0  # a refusal is logged at most this often (each is counted)
_HEAD_END = b"\r\n\r\n"
# What a connection past the cap reads before it is closed: it has sent no request yet, so there is no route
# to shape the answer by; the admin routes' JSON error shape (README "Errors").
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: 71\r\n\r\n"
    b'{"err_code":"OVERLOADED","err_msg":"too many open connections: retry"}\n'
)


class ConnectionCounts(Protocol):
    """Where the guard counts what it does (gateway/http/metrics.py)."""

    def connection_refused(self) -> None: ...
    def connection_dropped(self, reason: str) -> None: ...
    def watch_connections(self, guard: ConnectionGuard) -> None: ...


def raise_open_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (capped at 1,048,576); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1 << 20 if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:  # e.g. above the kernel's nr_open
        log.warning("open-file limit stays %d (could not raise it to %d: %s)", soft, target, exc)
        return soft
    return target


def connection_cap(settings: Settings, fd_limit: int) -> int:
    """max_connections, lowered (with a warning) to what the open-file limit leaves after the pools."""
    room = fd_limit - settings.pg_pool_max - settings.core_pool_size - FD_RESERVE
    if settings.max_connections <= room:
        return settings.max_connections
    cap = max(room, 1)
    log.warning("max_connections %d lowered to %d: the open-file limit is %d", settings.max_connections, cap, fd_limit)
    return cap


class ConnectionGuard:
    """The listener's protocol factory. A connection is admitted once connected (on the TLS port: once its
    handshake is done) and counted in `open` until it closes. Until its first request head is complete it is
    *waiting*: closed at the deadline (which runs from accept, so the handshake spends it too), and the oldest
    waiting one is closed to make room for a newcomer past the cap; with none waiting, a newcomer is answered
    503 and closed. TLS handshakes under way are counted in `handshaking`, bounded by the same deadline (the
    loop's handshake timeout)."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        max_connections: int,
        head_timeout_s: float,
        counts: ConnectionCounts,
        *,
        tls: bool = False,
    ) -> None:
        self.factory = factory
        self.max_connections = max_connections
        self.head_timeout_s = head_timeout_s
        self.counts = counts
        self.tls = tls
        self.open = 0
        self.handshaking = 0
        self.refused = 0
        self.waiting: dict[_Guarded, None] = {}  # oldest first (dicts keep insertion order)
        self.loop = asyncio.get_running_loop()
        self._warned_at = -WARN_EVERY_S

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self, self.factory())

    def admit(self, conn: _Guarded) -> bool:
        """Count a connection in, making room if need be; False: refused (none waiting to make room)."""
        if self.open >= self.max_connections:
            oldest = next(iter(self.waiting), None)
            if oldest is None:
                self._refused()
                return False
            oldest.drop("evicted")
        self.open += 1
        self.waiting[conn] = None
        return True

    def _refused(self) -> None:
        self.refused += 1
        self.counts.connection_refused()
        now = self.loop.time()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "max_connections %d reached, none idle: new connections answered 503 and closed (%d so far)",
                self.max_connections, self.refused,
            )  # fmt: skip


class _Guarded(asyncio.Protocol):
    """One connection, handing every event to aiohttp's handler once admitted."""

    __slots__ = ("_guard", "_handshaking", "_head_seen", "_inner", "_state", "_tail", "_timer", "_transport")

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._state = "new"  # new (TLS: handshaking) → open → closed; or new → refused | closed
        self._head_seen = False
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = guard.loop.call_later(guard.head_timeout_s, self.drop, "head_timeout")
        self._handshaking = guard.tls
        guard.handshaking += guard.tls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)  # (uvloop's transports are not asyncio's classes)
        if self._state == "closed":  # the deadline passed as the TLS handshake finished
            tcp.close()
            return
        self._end_handshake()
        if not self._guard.admit(self):
            self._state = "refused"
            self._cancel_timer()
            tcp.write(REFUSAL)
            tcp.close()
            return
        self._state = "open"
        self._transport = tcp
        self._inner.connection_made(tcp)

    def data_received(self, data: bytes) -> None:
        if not self._head_seen:
            seen = self._tail + data
            if _HEAD_END in seen:
                self._head_seen = True
                self._guard.waiting.pop(self, None)
                self._cancel_timer()
            else:
                self._tail = seen[-3:]
        if self._state == "open":
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._state == "open" else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        admitted = self._transport is not None
        self._close()
        if admitted:
            self._inner.connection_lost(exc)

    def drop(self, reason: str) -> None:
        """Close this connection if it is still waiting for its first request head (`head_timeout`: at the
        deadline, `evicted`: to make room)."""
        if reason == "head_timeout":
            self._timer = None
        if self._head_seen or self._state in ("closed", "refused"):
            return
        self._guard.counts.connection_dropped(reason)
        transport = self._transport
        self._close()  # counted closed now; the socket goes as the loop closes it
        if transport is not None:
            transport.close()  # the client sees EOF
        # else: still in its TLS handshake, which the loop aborts at this same deadline (ssl_handshake_timeout)

    def _end_handshake(self) -> None:
        if self._handshaking:
            self._handshaking = False
            self._guard.handshaking -= 1

    def _close(self) -> None:
        self._end_handshake()
        if self._state == "open":
            self._guard.open -= 1
            self._guard.waiting.pop(self, None)
        self._state = "closed"
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class TerminalSite(web.BaseSite):
    """The terminal port: aiohttp's TCP site with the guard as its protocol factory and the TLS handshake bound
    by the request-head deadline."""

    __slots__ = ("_host", "_port", "_reuse_port", "guard")

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=1024)
        self.guard = guard
        self._host = host
        self._port = port
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self.guard.head_timeout_s if self._ssl_context else None,
            backlog=self._backlog,
            reuse_port=self._reuse_port or None,
        )


def terminal_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The terminal application's runner: keep-alive connections idle past keepalive_timeout_s are closed."""
    return web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=settings.keepalive_timeout_s)


async def start_terminal_site(
    runner: web.AppRunner,
    settings: Settings,
    counts: ConnectionCounts,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    reuse_port: bool = False,
    fd_limit: int | None = None,
) -> TerminalSite:
    """Listen on host:port with the connection guard (after `runner.setup()`); the started site."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    limit = fd_limit if fd_limit is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cap = connection_cap(settings, limit)
    guard = ConnectionGuard(server, cap, settings.idle_request_timeout_s, counts, tls=ssl_context is not None)
    counts.watch_connections(guard)
    site = TerminalSite(runner, guard, host, port, ssl_context=ssl_context, reuse_port=reuse_port)
    await site.start()
    return site
