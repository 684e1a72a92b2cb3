"""`create_app(settings)`: the gateway's aiohttp application, its middlewares and routes. What it is built
from is the composition root's business (`gateway.bootstrap.server`), run as the app's cleanup context."""

from __future__ import annotations

from aiohttp import web

from gateway.bootstrap.server import UNAVAILABLE_ERRORS, server_resources
from gateway.http.admin import admin_routes
from gateway.http.distribution import distribution_routes
from gateway.http.errors import error_middleware
from gateway.http.feeds import feed_routes
from gateway.http.load_gate import LoadGate
from gateway.http.metrics import Metrics
from gateway.http.routes import latency_middleware, routes
from gateway.http.shedding import shedding_middleware
from gateway.keys import LOAD_GATE, METRICS, SETTINGS, STATUS
from gateway.settings import Settings


def create_app(settings: Settings) -> web.Application:
    """A gateway application; resources are opened on start-up and closed in reverse on clean-up."""
    app = web.Application(
        # shedding_middleware innermost: a shed poll is answered before the handler, with the latency header.
        middlewares=[latency_middleware, error_middleware(unavailable=UNAVAILABLE_ERRORS), shedding_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[STATUS] = {}
    app[LOAD_GATE] = LoadGate(settings.max_in_flight, app[METRICS])  # issue 11 item 8
    app[METRICS].watch_in_flight(app[LOAD_GATE])
    app.cleanup_ctx.append(server_resources)
    app.router.add_routes(routes)
    app.router.add_routes(admin_routes)
    app.router.add_routes(distribution_routes)
    app.router.add_routes(feed_routes)
    return app
