"""One worker process of `onecard serve --workers N`, started by onecard/supervisor.py: a whole gateway on the
shared port (SO_REUSEPORT), reporting "ready" or why it could not start on its status pipe, stopping gracefully
on SIGTERM/SIGINT or when its supervisor goes (EOF on stdin)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from gateway.bootstrap.exits import DependencyDown, needs_postgres
from gateway.domain.errors import ConfigError
from gateway.settings import Settings
from onecard.serve import admin_listener_tls, freeze_startup_objects, new_event_loop, reload_on_sighup, terminal_tls

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("onecard.serve")

SAMPLE_S = 1.0  # how often a worker writes its scrape-time gauges for the others' scrapes
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def main() -> int:
    """Run one worker from the spec on stdin; its exit code (2 configuration, 3 dependency, as the CLI's)."""
    # A SIGHUP (TLS reload, forwarded by the supervisor) before this worker's loop handles it changes nothing:
    # the files are read after it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    spec = json.loads(sys.stdin.buffer.readline())
    logging.basicConfig(level=spec["log_level"], format=_LOG_FORMAT)
    status = os.fdopen(spec["status_fd"], "w", encoding="utf-8")

    def report(line: str) -> None:
        if not status.closed:
            status.write(" ".join(line.split()) + "\n")
            status.close()

    settings = Settings(**spec["settings"])
    try:
        with needs_postgres(settings.pg_dsn):
            _run_worker(settings, spec["host"], spec["port"], lambda: report("ready"))
    except ConfigError as exc:
        report(f"config {exc}")  # the supervisor prints it once, for all workers
        return 2
    except DependencyDown as exc:
        report(f"dependency {exc}")
        return 3
    except KeyboardInterrupt:  # Ctrl-C before the worker's own handlers were installed: stopping anyway
        return 130
    except Exception as exc:
        if status.closed:
            log.exception("worker failed")
        else:
            report(f"error {type(exc).__name__}: {exc}")
            if not isinstance(exc, OSError):  # an unreachable server is the supervisor's one line; this is a bug
                log.exception("start-up failed")
        return 1
    finally:
        status.close()
    return 0


def _run_worker(
    settings: Settings, host: str, port: int, on_ready: Callable[[], None], *, supervised: bool = True
) -> None:
    """Serve until SIGTERM/SIGINT; `supervised`: a worker (SO_REUSEPORT, EOF on stdin stops it); else the
    single process of `onecard serve`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_worker(settings, host, port, on_ready, supervised=supervised))


async def _worker(
    settings: Settings, host: str, port: int, on_ready: Callable[[], None], *, supervised: bool = True
) -> None:
    """Start the gateway, report ready, serve until SIGTERM/SIGINT, shut down gracefully.

    Not `web.run_app`: its signal handlers raise, and a signal arriving while it cleans up after a failed start
    would break off that clean-up. Here a signal cancels this task once, and only before clean-up begins.
    """
    from gateway.app import create_app
    from gateway.keys import METRICS
    from onecard.listener import raise_open_file_limit, start_terminal_site, terminal_runner

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopping = False
    # Set with the cancel: Python 3.11's asyncio.wait_for (asyncpg's pool.acquire uses it) can swallow a
    # cancellation that lands as its inner await completes, and a worker then finished its start-up and served
    # on, deaf to the one SIGTERM it got. The event cannot be lost.
    stop_requested = asyncio.Event()

    def stop() -> None:
        nonlocal stopping
        if not stopping:  # later signals (the terminal's Ctrl-C forwarded by the supervisor too) change nothing
            stopping = True
            stop_requested.set()
            task.cancel()

    def supervisor_gone() -> None:
        with contextlib.suppress(BlockingIOError):
            if not os.read(0, 4096):  # EOF: the supervisor died; nobody would restart or stop this worker
                loop.remove_reader(0)
                log.warning("supervisor gone: stopping")
                stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    if supervised:
        loop.add_reader(0, supervisor_gone)
    fd_limit = raise_open_file_limit()  # issue 11, "10,000 idle connections": README "Connections"
    tls = terminal_tls(settings)
    admin_tls = admin_listener_tls(settings)  # issue 11 item 4
    reload_on_sighup(loop, tls, admin_tls)
    app = create_app(settings, admin_tls=admin_tls)
    app.cleanup_ctx.append(_sample_metrics)
    app.on_startup.append(freeze_startup_objects)
    runner = terminal_runner(app, settings)
    try:
        await runner.setup()
        ssl_context = tls.context if tls is not None else None
        site = await start_terminal_site(
            runner,
            settings,
            app[METRICS],
            host,
            port,
            ssl_context=ssl_context,
            reuse_port=supervised,
            fd_limit=fd_limit,
        )
        s = settings
        log.info(
            "serving on %s: at most %d connections (open-file limit %d), request head within %g s, keep-alive %g s",
            site.name, site.guard.max_connections, fd_limit, s.idle_request_timeout_s, s.keepalive_timeout_s,
        )  # fmt: skip
        if not stop_requested.is_set():
            on_ready()
        await stop_requested.wait()  # until stop() cancels this task (or, its cancel swallowed, sets the event)
    except asyncio.CancelledError:
        if not stopping:
            raise
    finally:
        stopping = True
        await runner.cleanup()  # graceful: in-flight requests finish (shutdown_timeout), then the resources


async def _sample_metrics(app: web.Application) -> AsyncIterator[None]:
    """Write this worker's scrape-time gauges every SAMPLE_S, for scrapes that another worker answers."""
    from gateway.keys import METRICS

    metrics = app[METRICS]

    async def forever() -> None:
        while True:
            metrics.sample()
            await asyncio.sleep(SAMPLE_S)

    task = asyncio.create_task(forever())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    sys.exit(main())
