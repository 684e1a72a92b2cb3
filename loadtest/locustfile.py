"""Locust front end of the onecard load tester, for QA teams on Locust.

    locust -f loadtest/locustfile.py --headless -u 20 -r 10 -t 60s --host http://127.0.0.1:8080 \\
        --world world/world.json [--mix default|settle|name=w,...] [--pg-dsn DSN --core-url URL] [--state FILE]

Options of this file (besides Locust's own):
    --world FILE     the seed world the gateway was started with (`onecard serve --world`); required
    --mix MIX        scenario weights as in `onecard loadtest --mix`: `default`, `settle` or `name=w,...`
    --pg-dsn DSN     the gateway's database and
    --core-url URL   the core simulator: with both, every request is traced and the post-run check runs at test
                     stop (`python -m loadtest.check_cli`); a check that finds problems makes Locust exit 1
    --fresh-core     the core simulator started from --world for this run: the check also compares every touched
                     account's balance (one Locust process only)
    --state FILE     card ATCs and PSAM tseqs, loaded at start and saved at stop, so a later run against the same
                     long-lived gateway is not refused as a replay (same format as `onecard loadtest --state`)
    --windows N      counter windows sharing each PSAM (0: enough for the users)
    --seed N         seed of the scenario draws

It is `onecard loadtest --target HOST --world ... --pg-dsn ... --core-url ... --state ...` in Locust's clothes:
the same fleet (loadtest.fleet), the same scenario mix and request builders with real MACs (loadtest.scenarios)
and the same check (loadtest.check). Each Locust user is one terminal window sending back to back (the closed
model, `-u` for `--concurrency`); Locust has no open model or warm-up trimming of its own here. The terminals
sign in (9001) at test start.

What Locust shows: one `POST <scenario>` row per scenario with the whole round trip, failed when the outcome
(`err_code`, or OK) is not one the scenario expects or MAC2 does not verify (what `onecard loadtest` reports as
"unexpected" and "mac2 failures"); and one `gateway-own <scenario>` row per scenario with the gateway's own time
(its `X-Gateway-Latency-Us` header). Locust's "Aggregated" row adds both kinds up: read the POST rows for the
request rate. Then, with --pg-dsn and --core-url, the check's line: `check: ok — ...` or `check: FAILED — ...`.

Against `onecard serve` (see README.md):

    onecard seed --persons 10000 --seed 1 --out world
    onecard core-sim --port 8090 --world world/world.json &
    onecard serve --port 8080 --dev --world world/world.json --core-url http://127.0.0.1:8090 &
    locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:8080 \\
        --world world/world.json --pg-dsn postgresql://postgres@127.0.0.1:5432/onecard \\
        --core-url http://127.0.0.1:8090 --state locust-state.json

Distributed (`--processes N` on one machine, or `--master --expect-workers N` and N `--worker`s, each with this file
and the world at the same path): a card or a PSAM must never be used by two processes (their ATC and tseq would
collide), so worker i of N takes the institutions and the persons' cards whose position in the world is i modulo
N. The worker count is the master's `--expect-workers` (set by `--processes`); a worker whose index is beyond it
refuses to run. Each worker checks its own requests, prints `worker i of N: check: ...` and exits 1 on problems
(Locust's master exit code does not include its workers'); it also sends the line to the master, which prints it
if it is still running (web UI). Workers on one machine may share one --state file.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.event import EventHook
from locust.runners import MasterRunner, WorkerRunner

from loadtest.locust_check import run_check, save_state
from loadtest.locust_setup import SetupError, add_options, build_planner, share, sign_in_all, validate
from loadtest.locust_user import RUN, TerminalWindow
from loadtest.runner import Trace

__all__ = ["TerminalWindow"]  # the user class Locust runs

log = logging.getLogger("onecard.locust")
Handler = Callable[..., None]


def listen(hook: EventHook) -> Callable[[Handler], Handler]:
    """`hook.add_listener` as a typed decorator (Locust's own is unannotated)."""
    add: Callable[[Handler], object] = hook.add_listener

    def register(handler: Handler) -> Handler:
        add(handler)
        return handler

    return register


@listen(events.init_command_line_parser)
def _options(parser: Any) -> None:
    add_options(parser)


@listen(events.init)
def _on_init(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return  # a worker gets the master's options with its first spawn message: checked at test start
    try:
        validate(environment.parsed_options, distributed=isinstance(runner, MasterRunner))
        if not environment.host:
            raise SetupError("--host is required: the gateway's base URL, e.g. http://127.0.0.1:8080")
    except SetupError as exc:
        sys.stderr.write(f"locustfile {Path(__file__).name}: error: {exc}\n")
        sys.exit(2)
    if isinstance(runner, MasterRunner):
        runner.register_message("onecard_check", _on_worker_check)


@listen(events.test_start)
def _on_test_start(environment: Any, **_kw: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return  # the master sends nothing: the workers hold the fleet
    opts = environment.parsed_options
    RUN.ready = False
    try:
        if RUN.planner is None:
            validate(opts, distributed=isinstance(environment.runner, WorkerRunner))
            index, count = RUN.share = share(environment)
            RUN.planner = build_planner(environment, index, count)
        RUN.planner.fleet.settled.clear()  # cancel only what this test settled, so that its check can follow
        RUN.traces = [] if opts.pg_dsn and opts.core_url else None
        RUN.skipped.clear()
        sign_in_all(environment.host, RUN.planner.fleet.all_sites)
    except SetupError as exc:
        log.error("cannot start: %s", exc)
        environment.process_exit_code = 1
        gevent.spawn(environment.runner.quit)
        return
    RUN.ready = True
    log.info("signed in %d terminals", len(RUN.planner.fleet.all_sites))


@listen(events.test_stop)
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    planner = RUN.planner
    if planner is None or isinstance(environment.runner, MasterRunner):
        return
    opts = environment.parsed_options
    if opts.state:  # also after a failed start: sign-ins may have used tseqs
        save_state(planner.fleet, Path(opts.state))
    if not RUN.ready:
        return
    if RUN.skipped:
        log.info("plans skipped, nothing free at the time: %s", dict(RUN.skipped))
    if RUN.traces is None:
        return
    # In the background, so that a worker's last stats reach the master first; awaited when Locust quits.
    RUN.checking = gevent.spawn(_check_and_report, environment, RUN.traces)
    RUN.traces = None


def _check_and_report(environment: Any, traces: list[Trace]) -> None:
    try:
        ok, text = run_check(traces, environment.parsed_options)
    except (OSError, subprocess.SubprocessError) as exc:
        ok, text = False, f"check: could not run — {type(exc).__name__}: {exc}"
    index, count = RUN.share
    who = f"worker {index} of {count}: " if count > 1 else ""
    print(who + text, flush=True)
    if not ok:
        environment.process_exit_code = 1
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.send_message("onecard_check", {"ok": ok, "text": who + text})


@listen(events.quitting)
def _on_quitting(environment: Any, **_kw: Any) -> None:
    if RUN.checking is not None:
        if isinstance(environment.runner, WorkerRunner):
            # `--processes` interrupts workers that are not gone 3 s after the master: let the check finish first
            # (it is bounded by CHECK_TIMEOUT_S).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        RUN.checking.join()


def _on_worker_check(environment: Any, msg: Any, **_kw: Any) -> None:
    print(msg.data["text"], flush=True)
    if not msg.data["ok"]:
        environment.process_exit_code = 1
