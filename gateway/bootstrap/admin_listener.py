"""The separate admin listener (issue 11 item 4): with `admin_port` set, a second small aiohttp application
serving /admin/* and /metrics on `admin_host:admin_port`, started as a cleanup context of the gateway app after
its resources, sharing every one of them (the same pools, writers, metrics and identities: one composition
root), and stopped before them. Bound with SO_REUSEPORT, as the terminal port is, so that every worker of
`serve --workers N` serves it; /metrics there is the workers' sum as on the terminal port before. With
`admin_tls_cert` it serves HTTPS with its own certificate (gateway/tls.py, as the terminal's)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.domain.errors import ConfigError
from gateway.keys import SETTINGS, STATUS
from gateway.settings import Settings
from gateway.tls import ServerTls, admin_tls_files

log = logging.getLogger("onecard.app")

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def admin_listener(build: Callable[[Settings], web.Application], tls: ServerTls | None = None) -> CleanupCtx:
    """A cleanup context that serves `build(settings)` on the admin address with the gateway app's resources;
    over `tls` (the caller reloads it on SIGHUP), else, with admin TLS files set, a context built from them here."""

    async def serve_admin(app: web.Application) -> AsyncIterator[None]:
        s = app[SETTINGS]
        files = admin_tls_files(s)
        served = tls if tls is not None or files is None else ServerTls(files)  # ConfigError: exit 2
        admin = build(s)
        for key in list(app):  # every resource the composition root put on the gateway app, shared
            admin[key] = app[key]
        runner = web.AppRunner(admin, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            ssl_context = served.context if served is not None else None
            site = web.TCPSite(runner, s.admin_host, s.admin_port, reuse_port=True, ssl_context=ssl_context)
            try:
                await site.start()
            except OSError as exc:
                raise ConfigError(f"cannot listen on the admin address {s.admin_host}:{s.admin_port}: "
                                  f"{exc.strerror}") from None  # fmt: skip
            where = [f"{a[0]}:{a[1]}" for a in runner.addresses]
            app[STATUS]["admin_listener"] = where  # ("host:port", ...), e.g. for tests that asked for port 0
            log.info("admin listener on %s (%s)", ", ".join(where), "HTTPS" if served is not None else "plain HTTP")
            yield
        finally:
            await runner.cleanup()

    return serve_admin
