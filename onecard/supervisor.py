"""The supervisor of `onecard serve --workers N`: keeps N worker processes (onecard/worker.py) running.

A worker reads its spec (Settings, address, node id = node_id + its slot) as one JSON line on stdin, which
stays open: EOF means the supervisor died. It reports "ready", or why it could not start, on a status pipe. The
supervisor forwards SIGTERM/SIGINT, restarts a worker that dies (with backoff), and gives up when one cannot
start at all: exit 2 for a configuration refused, 3 for a dependency down. Metrics use prometheus_client's
multi-process mode in a private directory that lives as long as the supervisor (gateway/http/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any

from gateway.bootstrap.exits import DependencyDown
from gateway.domain.errors import ConfigError
from gateway.http.metrics import MULTIPROC_ENV

log = logging.getLogger("onecard.serve")

START_TRIES = 3  # a worker that never came up is started this many times, then the supervisor gives up
BACKOFF_FIRST_S = 0.5  # delay before restarting a dead worker; doubles while it keeps dying
BACKOFF_MAX_S = 10.0
HEALTHY_S = 30.0  # a worker that served this long before it died is restarted after BACKOFF_FIRST_S again
STOP_TIMEOUT_S = 75.0  # graceful stop: aiohttp's 60 s shutdown_timeout plus clean-up, then SIGKILL


def _describe(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"exit code {returncode} ({signal.Signals(-returncode).name})"
    return f"exit code {returncode}"


class Supervisor:
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
        if any(self.spec["settings"].get(k) is not None for k in ("tls_cert", "admin_tls_cert")):  # issue 11 1, 4
            loop.add_signal_handler(signal.SIGHUP, self.reload_tls)
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

    def reload_tls(self) -> None:
        """SIGHUP: each worker builds its TLS context again from the files (a worker starting now reads them)."""
        log.info("SIGHUP: reloading TLS in %d workers", len(self.procs))
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGHUP)

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
                        scheme = "https" if self.spec["settings"].get("tls_cert") else "http"
                        log.info("serving on %s://%s:%d with %d workers", scheme, host, port, self.workers)
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
                sys.executable, "-m", "onecard.worker", stdin=asyncio.subprocess.PIPE, env=self.env, pass_fds=[status_w]
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
