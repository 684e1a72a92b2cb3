"""The separate admin listener (issue 11 item 4): with `admin_port` set, a second small aiohttp application
serving /admin/* and /metrics on `admin_host:admin_port`, started as a cleanup context of the gateway app after
its resources, sharing every one of them (the same pools, writers, metrics and identities: one composition
root), and stopped before them. Bound with SO_REUSEPORT, as the terminal port is, so that every worker of
`serve --workers N` serves it; /metrics there is the workers' sum as on the terminal port before."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.domain.errors import ConfigError
from gateway.keys import SETTINGS, STATUS
from gateway.settings import Settings

log = logging.getLogger("onecard.app")

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def admin_listener(build: Callable[[Settings], web.Application]) -> CleanupCtx:
    """A cleanup context that serves `build(settings)` on the admin address with the gateway app's resources."""

    async def serve_admin(app: web.Application) -> AsyncIterator[None]:
        s = app[SETTINGS]
        admin = build(s)
        for key in list(app):  # every resource the composition root put on the gateway app, shared
            admin[key] = app[key]
        runner = web.AppRunner(admin, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, s.admin_host, s.admin_port, reuse_port=True)
            try:
                await site.start()
            except OSError as exc:
                raise ConfigError(f"cannot listen on the admin address {s.admin_host}:{s.admin_port}: "
                                  f"{exc.strerror}") from None  # fmt: skip
            where = [f"{a[0]}:{a[1]}" for a in runner.addresses]
            app[STATUS]["admin_listener"] = where  # ("host:port", ...), e.g. for tests that asked for port 0
            log.info("admin listener on %s", ", ".join(where))
            yield
        finally:
            await runner.cleanup()

    return serve_admin
