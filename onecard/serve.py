"""`onecard serve`: the gateway in this process, or a supervisor of N worker processes sharing one port.

Workers bind the same host:port with SO_REUSEPORT (the kernel spreads connections) and each runs a whole
gateway (`create_app`) on uvloop. A worker reads its Settings as one JSON line on stdin, which stays open: EOF
means the supervisor died, and the worker stops rather than serve unsupervised. It reports "ready", or why it
could not start, on a status pipe. The supervisor forwards SIGTERM/SIGINT, restarts a worker that dies (with
backoff), and gives up when one cannot start at all. Metrics use prometheus_client's multi-process mode in a
private directory that lives as long as the supervisor (see gateway/http/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from gateway.domain.errors import ConfigError
from gateway.exits import DependencyDown, needs_postgres
from gateway.http.metrics import MULTIPROC_ENV
from gateway.settings import MAX_NODE_ID, Settings

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("onecard.serve")

START_TRIES = 3  # a worker that never came up is started this many times, then the supervisor gives up
BACKOFF_FIRST_S = 0.5  # delay before restarting a dead worker; doubles while it keeps dying
BACKOFF_MAX_S = 10.0
HEALTHY_S = 30.0  # a worker that served this long before it died is restarted after BACKOFF_FIRST_S again
STOP_TIMEOUT_S = 75.0  # graceful stop: aiohttp's 60 s shutdown_timeout plus clean-up, then SIGKILL
SAMPLE_S = 1.0  # how often a worker writes its scrape-time gauges for the others' scrapes
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


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
    if settings.node_id is not None and settings.node_id + workers - 1 > MAX_NODE_ID:
        raise ConfigError(f"node_id {settings.node_id} + {workers} workers passes the largest node id {MAX_NODE_ID}")
    if workers == 1:
        from aiohttp import web

        from gateway.app import create_app

        app = create_app(settings)
        app.on_startup.append(freeze_startup_objects)
        web.run_app(app, host=host, port=port, access_log=None, loop=new_event_loop())
        return 0
    spec = {"settings": _settings_dict(settings), "host": host, "port": port}
    spec["log_level"] = logging.getLogger().getEffectiveLevel()
    metrics_dir = tempfile.mkdtemp(prefix="onecard-metrics-")  # mode 0700: private to this user
    try:
        return asyncio.run(_Supervisor(spec, workers, metrics_dir).run())
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


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


def _describe(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"exit code {returncode} ({signal.Signals(-returncode).name})"
    return f"exit code {returncode}"


class _Supervisor:
    """Keeps `workers` worker processes running until told to stop."""

    def __init__(self, spec: dict[str, Any], workers: int, metrics_dir: str) -> None:
        self.spec = spec
        self.workers = workers
        self.metrics_dir = metrics_dir
        self.env = {**os.environ, MULTIPROC_ENV: metrics_dir}  # before the worker first imports prometheus_client
        self.procs: dict[int, asyncio.subprocess.Process] = {}  # by slot
        self.stopping = asyncio.Event()
        self.stop_signal = signal.SIGTERM
        self.config_error: str | None = None
        self.dependency_error: str | None = None
        self.failure: str | None = None
        self.first_ready = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop, sig)
        slots = [asyncio.create_task(self._slot(i)) for i in range(self.workers)]
        killed = False
        try:
            await self.stopping.wait()
            _, pending = await asyncio.wait(slots, timeout=STOP_TIMEOUT_S)
            if pending:
                log.error("workers still running %g s after the stop: killing them", STOP_TIMEOUT_S)
                killed = True
                for proc in self.procs.values():
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                await asyncio.wait(pending)
        finally:
            for proc in self.procs.values():  # only after a bug in this class: never leave workers behind
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if self.config_error is not None:
            raise ConfigError(self.config_error)
        if self.dependency_error is not None:
            raise DependencyDown(self.dependency_error)
        if self.failure is not None:
            print(f"onecard: {self.failure}", file=sys.stderr)
            return 1
        log.info("all workers stopped")
        return 1 if killed else 0

    def stop(self, sig: signal.Signals = signal.SIGTERM, why: str | None = None) -> None:
        """Forward `sig` to every worker once; aiohttp shuts each down gracefully."""
        if self.stopping.is_set():
            # A second Ctrl-C (or the terminal's SIGINT reaching the workers too) must not cut shutdown short.
            return
        log.info("%s: stopping the workers (%d running)", why or sig.name, len(self.procs))
        self.stop_signal = sig
        self.stopping.set()
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    def _give_up(
        self, *, failure: str | None = None, config_error: str | None = None, dependency_error: str | None = None
    ) -> None:
        if self.failure is None and self.config_error is None and self.dependency_error is None:
            self.failure, self.config_error, self.dependency_error = failure, config_error, dependency_error
        self.stop(why="giving up")

    async def _slot(self, index: int) -> None:
        try:
            await self._keep_running(index)
        except Exception:
            log.exception("supervising worker %d failed", index)
            self._give_up(failure=f"supervising worker {index} failed (see the log)")

    async def _keep_running(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        delay, tries, ever_ready = BACKOFF_FIRST_S, 0, False
        while not self.stopping.is_set():
            proc, report = await self._spawn(index)
            ready_at = loop.time() if report == "ready" else None
            if ready_at is not None:
                log.info("worker %d ready (pid %d)", index, proc.pid)
                if not ever_ready:
                    ever_ready = True
                    self.first_ready += 1
                    if self.first_ready == self.workers:
                        host, port = self.spec["host"], self.spec["port"]
                        log.info("serving on http://%s:%d with %d workers", host, port, self.workers)
            rc = await proc.wait()
            del self.procs[index]
            _mark_dead(proc.pid, self.metrics_dir)
            if self.stopping.is_set():
                if rc not in (0, -signal.SIGTERM, -signal.SIGINT):
                    log.warning("worker %d (pid %d) stopped with %s", index, proc.pid, _describe(rc))
                return
            kind, _, reason = report.partition(" ")
            if ready_at is None and not ever_ready:
                if kind == "config":  # the same settings will fail the same way: no retries
                    self._give_up(config_error=reason)
                    return
                tries += 1
                if tries >= START_TRIES:
                    if kind == "dependency":
                        self._give_up(dependency_error=f"{reason} (worker {index}, {tries} tries)")
                    else:
                        self._give_up(
                            failure=f"gave up: worker {index} failed to start {tries} times in a row"
                            f" ({reason or _describe(rc)}); see the log above"
                        )
                    return
            elif ready_at is not None and loop.time() - ready_at >= HEALTHY_S:
                delay = BACKOFF_FIRST_S
            what = "died" if ready_at is not None else f"failed to start ({reason or 'no reason given'})"
            log.warning(
                "worker %d (pid %d) %s with %s; restarting in %.1f s", index, proc.pid, what, _describe(rc), delay
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.stopping.wait()
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _spawn(self, index: int) -> tuple[asyncio.subprocess.Process, str]:
        """Start a worker and wait for its report: "ready", "config <message>", "error <message>" or ""."""
        status_r, status_w = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "onecard.serve", stdin=asyncio.subprocess.PIPE, env=self.env, pass_fds=[status_w]
            )
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        self.procs[index] = proc
        if self.stopping.is_set():  # the stop came while it was being spawned
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
        assert proc.stdin is not None
        spec = self.spec
        if spec["settings"].get("node_id") is not None:  # a configured node id: worker k takes id + k
            spec = {**spec, "settings": {**spec["settings"], "node_id": spec["settings"]["node_id"] + index}}
        proc.stdin.write(json.dumps({**spec, "status_fd": status_w}).encode() + b"\n")
        with contextlib.suppress(ConnectionError):  # it died at once: its exit code tells
            await proc.stdin.drain()
        reader = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(status_r, "rb", 0)
        )
        try:
            return proc, (await reader.readline()).decode(errors="replace").strip()
        finally:
            transport.close()


def _mark_dead(pid: int, metrics_dir: str) -> None:
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]


def _worker_main() -> int:
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


def _run_worker(settings: Settings, host: str, port: int, on_ready: Callable[[], None]) -> None:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_worker(settings, host, port, on_ready))


async def _worker(settings: Settings, host: str, port: int, on_ready: Callable[[], None]) -> None:
    """Start the gateway, report ready, serve until SIGTERM/SIGINT, shut down gracefully.

    Not `web.run_app`: its signal handlers raise, and a signal arriving while it cleans up after a failed start
    would break off that clean-up. Here a signal cancels this task once, and only before clean-up begins.
    """
    from aiohttp import web

    from gateway.app import create_app

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
    loop.add_reader(0, supervisor_gone)
    app = create_app(settings)
    app.cleanup_ctx.append(_sample_metrics)
    app.on_startup.append(freeze_startup_objects)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_port=True).start()
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
    sys.exit(_worker_main())
