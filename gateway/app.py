"""`create_app(settings)`: the gateway's aiohttp application, its middlewares and routes. What it is built
from is the composition root's business (`gateway.bootstrap.server`), run as the app's cleanup context."""

from __future__ import annotations

from aiohttp import web

from gateway.bootstrap.server import UNAVAILABLE_ERRORS, server_resources
from gateway.http.admin import admin_routes
from gateway.http.distribution import distribution_routes
from gateway.http.errors import error_middleware
from gateway.http.feeds import feed_routes
from gateway.http.metrics import Metrics
from gateway.http.routes import latency_middleware, routes
from gateway.keys import METRICS, SETTINGS, STATUS
from gateway.settings import Settings


def create_app(settings: Settings) -> web.Application:
    """A gateway application; resources are opened on start-up and closed in reverse on clean-up."""
    app = web.Application(
        middlewares=[latency_middleware, error_middleware(unavailable=UNAVAILABLE_ERRORS)],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[STATUS] = {}
    app.cleanup_ctx.append(server_resources)
    app.router.add_routes(routes)
    app.router.add_routes(admin_routes)
    app.router.add_routes(distribution_routes)
    app.router.add_routes(feed_routes)
    return app
