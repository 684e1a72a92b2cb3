"""The insurance-core simulator as an aiohttp app, and the ways to run it.

Separate process::

    onecard core-sim --host 127.0.0.1 --port 8090 --world world.json
    onecard core-sim ... --tls-cert core.crt --tls-key core.key [--client-ca gateways-ca.pem]   (HTTPS)
    python -c "import coresim; coresim.run('127.0.0.1', 8090, 'world.json')"

In-process (tests, demo): ``runner, base_url = await start_core_sim(world=...)``, then
``await runner.cleanup()``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from coresim import admin, protocol
from coresim.faults import FaultConfig, Faults
from coresim.keys import FAULTS, STATE
from coresim.state import CoreState, local_now
from coresim.world import load_world

CALL_SERVICE = "/fsi/api/rsfComIfsService/callService"

log = logging.getLogger("coresim")


def create_app(state: CoreState, *, faults: FaultConfig | None = None) -> web.Application:
    """The simulator app over `state` (callService plus the /healthz and /sim admin endpoints)."""
    # Large enough for POST /sim/persons with a whole seed world.
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app[STATE] = state
    app[FAULTS] = Faults(faults)
    app.router.add_post(CALL_SERVICE, protocol.call_service)
    app.router.add_routes(admin.routes)
    return app


def _state_of(world: dict[str, Any] | CoreState | None, clock: Callable[[], datetime]) -> CoreState:
    if isinstance(world, CoreState):
        return world
    return CoreState.from_world(world or {"persons": []}, clock=clock)


async def start_core_sim(
    host: str = "127.0.0.1",
    port: int = 0,
    world: dict[str, Any] | CoreState | None = None,
    *,
    faults: FaultConfig | None = None,
    clock: Callable[[], datetime] = local_now,
    shutdown_timeout: float = 1.0,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, str]:
    """Start the simulator in this event loop (port 0 = a free port); returns (runner, base_url), the URL
    https with an `ssl_context` (`coresim.tls.server_context`).

    The caller owns the runner and must `await runner.cleanup()`.
    """
    runner = web.AppRunner(create_app(_state_of(world, clock), faults=faults),
                           shutdown_timeout=shutdown_timeout, access_log=None)  # fmt: skip
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
    except BaseException:
        await runner.cleanup()
        raise
    if ":" in bound_host:
        bound_host = f"[{bound_host}]"
    scheme = "https" if ssl_context is not None else "http"
    return runner, f"{scheme}://{bound_host}:{bound_port}"


async def serve(host: str, port: int, world_path: str | None, *, ssl_context: ssl.SSLContext | None = None) -> None:
    """Run the simulator until cancelled (for a CLI that owns the event loop)."""
    world = await asyncio.to_thread(load_world, world_path) if world_path else None
    runner, base_url = await start_core_sim(host, port, world, shutdown_timeout=5.0, ssl_context=ssl_context)
    log.info("core simulator listening on %s (%d persons)", base_url, len(runner.app[STATE].persons))
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(host: str, port: int, world_path: str | None, *, ssl_context: ssl.SSLContext | None = None) -> None:
    """Blocking entry point: load the world, serve (HTTPS with an `ssl_context`) until SIGINT/SIGTERM."""
    world = load_world(world_path) if world_path else None
    web.run_app(create_app(_state_of(world, local_now)), host=host, port=port, access_log=None,
                ssl_context=ssl_context, print=lambda msg: log.info("%s", msg),
                loop=new_event_loop())  # fmt: skip


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (Linux), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
