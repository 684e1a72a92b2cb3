"""`onecard serve`: the gateway in this process, or N worker processes sharing one port under our supervisor.

Workers bind the same host:port with SO_REUSEPORT (the kernel spreads connections) and each runs a whole
gateway (`create_app`) on uvloop: onecard/supervisor.py starts, restarts and stops them, onecard/worker.py is
one of them. Why not gunicorn: docs/serving.md (measured).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import shutil
import signal
import tempfile
from typing import TYPE_CHECKING, Any

from gateway.domain.errors import ConfigError
from gateway.settings import MAX_NODE_ID, Settings

if TYPE_CHECKING:
    from gateway.tls import ServerTls


def serve(settings: Settings, host: str, port: int, workers: int) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit code.

    Raises:
        ConfigError: `workers` below 1, or a worker's start-up refused the configuration.
        DependencyDown: workers could not start because PostgreSQL or Redis did not answer.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {workers})")
    if workers > 1 and port == 0:
        raise ConfigError("--workers above 1 needs a fixed --port: with port 0 each worker would take its own")
    if settings.admin_port is not None and settings.admin_port == port != 0:  # SO_REUSEPORT would share it
        raise ConfigError(f"--admin-port {port} is the terminal port: the admin listener needs its own")
    if settings.node_id is not None and settings.node_id + workers - 1 > MAX_NODE_ID:
        raise ConfigError(f"node_id {settings.node_id} + {workers} workers passes the largest node id {MAX_NODE_ID}")
    # issue 11 items 1 and 4: bad TLS files are exit 2 before anything starts (each process checks them again)
    terminal_tls(settings)
    admin_listener_tls(settings)
    if workers == 1:  # a worker's serving loop, unsupervised (its TLS files checked before anything starts)
        from onecard.worker import _run_worker

        _run_worker(settings, host, port, lambda: None, supervised=False)
        return 0
    settings = dataclasses.replace(settings, host_workers=workers)  # each worker takes rate/N (issue 11 item 7)
    spec = {"settings": _settings_dict(settings), "host": host, "port": port}
    spec["log_level"] = logging.getLogger().getEffectiveLevel()
    metrics_dir = tempfile.mkdtemp(prefix="onecard-metrics-")  # mode 0700: private to this user
    from onecard.supervisor import Supervisor

    try:
        return asyncio.run(Supervisor(spec, workers, metrics_dir).run())
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def terminal_tls(settings: Settings) -> ServerTls | None:
    """The terminal listener's TLS (reloaded on SIGHUP), or None for plain HTTP.

    Raises:
        ConfigError: a TLS file missing, unreadable, not PEM, or a key that is not the certificate's.
    """
    from gateway.tls import ServerTls, tls_files

    files = tls_files(settings)
    return ServerTls(files) if files is not None else None


def admin_listener_tls(settings: Settings) -> ServerTls | None:
    """The admin listener's own TLS (issue 11 item 4), or None (plain HTTP there, or no admin listener).

    Raises:
        ConfigError: as `terminal_tls`, naming the admin_tls_* setting.
    """
    from gateway.tls import ServerTls, admin_tls_files

    files = admin_tls_files(settings)
    return ServerTls(files) if files is not None else None


def reload_on_sighup(loop: asyncio.AbstractEventLoop, *listeners: ServerTls | None) -> None:
    """SIGHUP reloads every listener's TLS (one handler: a loop keeps one per signal)."""
    held = [t for t in listeners if t is not None]

    def reload() -> None:
        for t in held:
            t.reload()

    if held:
        loop.add_signal_handler(signal.SIGHUP, reload)


async def freeze_startup_objects(_app: Any) -> None:
    """After start-up (hooks run in order, so after the app's resources are loaded): move what start-up built
    out of the garbage collector's sight, so a full collection walks only what requests create instead of
    stalling every request in flight over tens of thousands of long-lived objects (seen as p99 spikes)."""
    gc.collect()
    gc.freeze()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop when uvloop is installed (not on Windows), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _settings_dict(settings: Settings) -> dict[str, Any]:
    data = dataclasses.asdict(settings)
    if Settings(**json.loads(json.dumps(data))) != settings:  # a future field JSON cannot carry
        raise TypeError("Settings do not survive a JSON round trip; workers could not receive them")
    return data
