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

import fcntl
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
import orjson
import requests
from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner
from requests.adapters import HTTPAdapter

from loadtest.check_cli import dump_traces
from loadtest.fleet import Fleet, Site
from loadtest.runner import Trace, classify, trace_of
from loadtest.scenarios import Action, Planner, parse_mix
from loadtest.terminal import CALL_SERVICE
from loadtest.world import load_world

log = logging.getLogger("onecard.locust")
ROOT = Path(__file__).resolve().parent.parent
HEADERS = {"Content-Type": "application/json"}
GATEWAY_LATENCY = "X-Gateway-Latency-Us"
PATIENCE_S = 0.05  # how long a user waits for a free terminal or card of the drawn scenario before drawing again
SIGN_IN_PARALLEL = 32
CHECK_TIMEOUT_S = 300


class SetupError(Exception):
    """This process cannot send: bad options, a world without terminals for it, a terminal that cannot sign in."""


@dataclass
class Run:
    """This Locust process's load generator: built once (counters must carry over from one test to the next)."""

    planner: Planner | None = None
    ready: bool = False  # signed in and sending (false after a failed start)
    share: tuple[int, int] = (0, 1)  # (worker index, worker count)
    traces: list[Trace] | None = None  # None: no post-run check
    skipped: Counter[str] = field(default_factory=Counter)
    checking: gevent.Greenlet | None = None  # the post-run check of the last test, awaited before exiting


RUN = Run()


# options ------------------------------------------------------------------------------------------------------
@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("onecard", "the onecard gateway's load (loadtest/locustfile.py)")
    group.add_argument("--world", default="", help="the seed world the gateway was started with (required)")
    group.add_argument("--mix", default="default", help="scenario weights name=w,... or 'default' or 'settle'")
    group.add_argument("--pg-dsn", default="", help="the gateway's database, for the post-run check")
    group.add_argument("--core-url", default="", help="the core simulator, for the post-run check")
    group.add_argument("--fresh-core", action="store_true", help="the check also compares account balances")
    group.add_argument("--state", default="", help="file keeping card ATCs and PSAM tseqs between runs")
    group.add_argument("--windows", type=int, default=0, help="counter windows sharing each PSAM (0: enough)")
    group.add_argument("--seed", type=int, default=7, help="seed of the scenario draws")


def _validate(opts: Any, *, distributed: bool) -> None:
    """Raises SetupError naming the first bad option."""
    if not opts.world:
        raise SetupError("--world is required: the seed world the gateway was started with")
    if not Path(opts.world).is_file():
        raise SetupError(f"--world {opts.world}: no such file")
    try:
        parse_mix(opts.mix)
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    if bool(opts.pg_dsn) != bool(opts.core_url):
        raise SetupError("the post-run check needs both --pg-dsn and --core-url")
    if opts.fresh_core and (distributed or not opts.pg_dsn):
        raise SetupError("--fresh-core needs --pg-dsn and --core-url and one Locust process (not --master)")
    if opts.windows < 0:
        raise SetupError("--windows must not be negative")


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return  # a worker gets the master's options with its first spawn message: checked at test start
    try:
        _validate(environment.parsed_options, distributed=isinstance(runner, MasterRunner))
        if not environment.host:
            raise SetupError("--host is required: the gateway's base URL, e.g. http://127.0.0.1:8080")
    except SetupError as exc:
        sys.stderr.write(f"locustfile {Path(__file__).name}: error: {exc}\n")
        sys.exit(2)
    if isinstance(runner, MasterRunner):
        runner.register_message("onecard_check", _on_worker_check)


# test start: the fleet, once per process, and sign-in ------------------------------------------------------------
def _share(environment: Any) -> tuple[int, int]:
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return 0, 1
    count = int(getattr(environment.parsed_options, "expect_workers", 1) or 1)
    if not 0 <= runner.worker_index < count:
        raise SetupError(
            f"this worker has index {runner.worker_index} but the master expects {count} workers: start the master"
            " with --expect-workers equal to the number of workers (each takes its own cards and PSAMs)"
        )
    return runner.worker_index, count


def share_of(world: dict[str, Any], index: int, count: int) -> dict[str, Any]:
    """Worker `index` of `count`'s part of the world: every count-th institution (with its PSAMs) and the cards of
    every count-th person, so no two workers hold the same PSAM or card. Persons and the catalogue stay whole."""
    if count == 1:
        return world
    position = {p["psn_no"]: i for i, p in enumerate(world["persons"])}
    return {
        **world,
        "institutions": [x for i, x in enumerate(world["institutions"]) if i % count == index],
        "cards": [c for c in world["cards"] if position[c["psn_no"]] % count == index],
    }


def _build(environment: Any) -> Planner:
    opts = environment.parsed_options
    index, count = RUN.share = _share(environment)
    world = load_world(Path(opts.world))
    fleet = Fleet(share_of(world, index, count), seed=opts.seed)
    if not fleet.all_sites or not len(fleet.verified):
        where = f"worker {index} of {count}" if count > 1 else "this world"
        raise SetupError(f"{where} has no active PSAM or no usable card: use fewer workers or a bigger world")
    if opts.state and Path(opts.state).exists():
        fleet.load_state(json.loads(Path(opts.state).read_text()))
    log.info(
        "fleet%s: %d PSAMs, %d cards",
        f" (worker {index} of {count})" if count > 1 else "",
        len(fleet.all_sites),
        len(fleet.cards),
    )
    return Planner(fleet, world, parse_mix(opts.mix), seed=opts.seed + index)


def sign_in_all(host: str, sites: list[Site]) -> None:
    """Sign every terminal in (9001), as `loadtest.runner.Sender.sign_in_all` does, with a client gevent can run.

    Raises:
        SetupError: a terminal could not sign in (names it and the gateway's answer).
    """
    url = host.rstrip("/") + CALL_SERVICE
    with requests.Session() as http:
        http.mount("http://", HTTPAdapter(pool_maxsize=SIGN_IN_PARALLEL))

        def one(site: Site) -> str | None:
            try:
                r = http.post(url, data=orjson.dumps(site.terminal.sign_in().body), headers=HEADERS, timeout=30)
            except requests.RequestException as exc:
                return f"PSAM {site.terminal.psam_no} could not sign in: {exc}"
            outcome, resp = classify(r.status_code, r.content)
            if resp is not None and outcome == "OK":
                site.terminal.sign_no = resp["output"]["signinoutb"]["sign_no"]
                return None
            said = f"{outcome}: {resp.get('err_msg')}" if resp is not None else repr(r.content[:200])
            hint = ""
            if outcome == "REPLAY":
                hint = (
                    " (this gateway saw the PSAM's counters before: pass the --state file of the last run against it)"
                )
            return f"PSAM {site.terminal.psam_no} could not sign in: HTTP {r.status_code} {said}{hint}"

        errors = [e for e in gevent.pool.Pool(SIGN_IN_PARALLEL).map(one, sites) if e]
    if errors:
        more = f" (and {len(errors) - 1} more terminals)" if len(errors) > 1 else ""
        raise SetupError(errors[0] + more)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return  # the master sends nothing: the workers hold the fleet
    opts = environment.parsed_options
    RUN.ready = False
    try:
        if RUN.planner is None:
            _validate(opts, distributed=isinstance(environment.runner, WorkerRunner))
            RUN.planner = _build(environment)
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


# the users ----------------------------------------------------------------------------------------------------
def _next_action(planner: Planner) -> Action | None:
    """The next planned request; waits briefly for a busy terminal or card of the drawn scenario rather than
    drawing another (which would skew the mix toward scenarios with more terminals), as the runner does."""
    name = planner.draw()
    deadline = time.monotonic() + PATIENCE_S
    while True:
        action = planner.plan(name)
        if action is not None:
            return action
        if time.monotonic() >= deadline or not planner.worth_waiting(name):
            RUN.skipped[name] += 1
            return None
        gevent.sleep(0.001)


def verdict(action: Action, outcome: str, resp: dict[str, Any] | None) -> str | None:
    """Why the answer is wrong for the scenario, or None when it is right."""
    if outcome not in action.expect:
        return f"{outcome}, expected {' or '.join(sorted(action.expect))}"
    if resp is not None and action.mac2 and not action.built.mac2_ok(resp):
        return "MAC2 does not verify"
    if resp is not None and not action.mac2 and (resp.get("dev_safe_info") or {}).get("mac2"):
        return "MAC2 where none is due"
    return None


class TerminalWindow(FastHttpUser):
    """One terminal window: plans a request of the mix, sends it, checks the answer, sends the next."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Size the PSAMs' windows for the users this process runs (known only as they start)."""
        if RUN.planner is not None:
            users = max(1, self.environment.runner.user_count)
            RUN.planner.fleet.set_windows(self.environment.parsed_options.windows, users)

    @task
    def send(self) -> None:
        """One request of the mix."""
        planner = RUN.planner
        if planner is None or not RUN.ready:  # the test could not start; the runner is quitting
            raise StopUser
        action = _next_action(planner)
        if action is None:  # nothing of the drawn scenario free (or nothing to cancel yet)
            gevent.sleep(0.001)
            return
        resp: dict[str, Any] | None = None
        try:
            resp = self._send(action)
        finally:  # also when the user is stopped mid-request: the terminal and the card must come back
            planner.release(action, resp)

    def _send(self, action: Action) -> dict[str, Any] | None:
        with self.client.post(
            CALL_SERVICE,
            data=orjson.dumps(action.built.body),
            headers=HEADERS,
            catch_response=True,
            name=action.scenario,
        ) as r:
            resp: dict[str, Any] | None = None
            digest: bytes | None = None
            if not r.status_code:  # no HTTP answer at all
                outcome = "CONNECT_ERROR"
            else:
                raw = r.content or b""
                digest = hashlib.sha256(raw).digest()
                outcome, resp = classify(r.status_code, raw)
            wrong = verdict(action, outcome, resp)
            if wrong is None:
                r.success()
            else:
                r.failure(wrong)
        gw_us = (r.headers or {}).get(GATEWAY_LATENCY)
        if gw_us and gw_us.isdigit():
            self.environment.events.request.fire(
                request_type="gateway-own",
                name=action.scenario,
                response_time=int(gw_us) / 1e3,
                response_length=0,
                exception=None,
                context={},
            )
        if RUN.traces is not None:
            RUN.traces.append(trace_of(action, outcome, resp, digest))
        return resp


# test stop: state and the post-run check --------------------------------------------------------------------
def save_state(fleet: Fleet, path: Path) -> None:
    """Merge this process's counters into `path` (the highest wins), so workers on one machine can share a file."""
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"format": 1}
        mine = fleet.state()
        for key in ("atc", "tseq"):
            merged = dict(state.get(key, {}))
            for name, n in mine[key].items():
                merged[name] = max(int(merged.get(name, 0)), n)
            state[key] = merged
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)


def run_check(traces: list[Trace], opts: Any) -> tuple[bool, str]:
    """Run the check in a subprocess (no asyncio under gevent); (ok, its output). Keeps the traces file when the
    check finds problems, so it can be run again by hand."""
    folder = Path(tempfile.mkdtemp(prefix="onecard-locust-"))
    path = folder / "traces.json"
    dump_traces(traces, path)
    cmd = [sys.executable, "-m", "loadtest.check_cli", str(path), "--pg-dsn", opts.pg_dsn, "--core-url", opts.core_url]
    if opts.fresh_core:
        cmd += ["--world", str(Path(opts.world).resolve()), "--fresh-core"]
    try:
        done = subprocess.run(  # noqa: S603 - our own module, arguments built here
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"check: FAILED — no result within {CHECK_TIMEOUT_S} s; traces kept in {path}"
    text = (done.stdout + done.stderr).strip()
    if done.returncode == 0:
        path.unlink()
        folder.rmdir()
        return True, text
    return False, f"{text}\n(traces kept in {path})"


@events.test_stop.add_listener
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


@events.quitting.add_listener
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
