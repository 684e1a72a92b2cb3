"""`create_app(settings)`: the gateway's aiohttp application, its middlewares and routes. What it is built
from is the composition root's business (`gateway.bootstrap.server`), run as the app's cleanup context. With
`admin_port` set, the admin surface (/admin/*, /metrics) is a second application on its own listener
(`gateway.bootstrap.admin_listener`) and the terminal port answers those paths 404."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.bootstrap.admin_listener import admin_listener
from gateway.bootstrap.server import UNAVAILABLE_ERRORS, server_resources
from gateway.http.access import access_middleware
from gateway.http.admin import admin_routes
from gateway.http.audit import audit_routes
from gateway.http.auditor import auditor_routes
from gateway.http.distribution import distribution_routes
from gateway.http.errors import error_middleware
from gateway.http.feeds import feed_routes
from gateway.http.load_gate import LoadGate
from gateway.http.metrics import Metrics
from gateway.http.routes import latency_middleware, metrics_routes, routes
from gateway.http.shedding import shedding_middleware
from gateway.keys import LOAD_GATE, METRICS, SETTINGS, STATUS
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.tls import ServerTls


def create_app(settings: Settings, *, admin_tls: ServerTls | None = None) -> web.Application:
    """A gateway application; resources are opened on start-up and closed in reverse on clean-up. `admin_tls`:
    the admin listener's TLS when the caller built it (to reload it on SIGHUP); else built from the settings."""
    apart = settings.admin_port is not None
    # One listener for all (no admin port): /metrics stays open there, as before the admin listener existed.
    access = [] if apart else [access_middleware(UNAVAILABLE_ERRORS, guard_metrics=False)]
    app = web.Application(
        # shedding_middleware innermost: a shed poll is answered before the handler, with the latency header.
        middlewares=[
            latency_middleware,
            *access,
            error_middleware(unavailable=UNAVAILABLE_ERRORS),
            shedding_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[STATUS] = {}
    app[LOAD_GATE] = LoadGate(settings.max_in_flight, app[METRICS])  # issue 11 item 8
    app[METRICS].watch_in_flight(app[LOAD_GATE])
    app.cleanup_ctx.append(server_resources)
    app.router.add_routes(routes)
    app.router.add_routes(distribution_routes)
    if apart:
        app.cleanup_ctx.append(admin_listener(create_admin_app, admin_tls))
    else:
        _admin_surface(app)
    return app


def create_admin_app(settings: Settings) -> web.Application:
    """The admin listener's application: /admin/* and /metrics, every route behind its declared roles."""
    app = web.Application(
        middlewares=[
            latency_middleware,
            access_middleware(UNAVAILABLE_ERRORS, guard_metrics=True),
            error_middleware(unavailable=UNAVAILABLE_ERRORS, terminals=False),
        ],
        client_max_size=settings.max_body_bytes,
    )
    _admin_surface(app)
    return app


def _admin_surface(app: web.Application) -> None:
    app.router.add_routes(metrics_routes)
    app.router.add_routes(admin_routes)
    app.router.add_routes(feed_routes)
    app.router.add_routes(audit_routes)
    app.router.add_routes(auditor_routes)  # issue 11 item 5: journal verification and reconciliation
