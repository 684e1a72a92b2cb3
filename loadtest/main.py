"""`onecard loadtest` and `onecard bench gateway`.

    onecard loadtest --duration 30 --concurrency 32                 # closed model, default mix, own stack
    onecard loadtest --model open --ramp 50:400 --duration 60       # open model, rising rate
    onecard loadtest --target http://gw:8080 --world world.json --pg-dsn ... --core-url ...
    onecard bench gateway --duration 60 --workers 2                 # pass-through baseline, then the gateway

Without `--target`, everything the run needs is started here (core simulator, `onecard serve --workers N` on a
fresh database and Redis prefix) and stopped afterwards. Results go to `--out` (result.json, plot.png).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import platform
import ssl
import sys
import tempfile
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

from coresim.app import new_event_loop
from gateway.domain.errors import ConfigError
from loadtest import report
from loadtest.check import check_run
from loadtest.fleet import Fleet
from loadtest.runner import Recorder, Sender, parse_rate, run_closed, run_open
from loadtest.scenarios import Planner, parse_mix
from loadtest.stack import start_stack
from loadtest.world import generate, load_world, write_world


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds sent first and left out of the figures")
    ap.add_argument("--concurrency", type=int, default=32, help="closed model: terminals sending back to back")
    ap.add_argument("--workers", type=int, default=1, help="gateway processes when this run starts the gateway")
    ap.add_argument("--windows", type=int, default=0, help="counter windows sharing each PSAM (0: enough for the load)")
    ap.add_argument("--persons", type=int, default=5000, help="size of the generated world (without --world)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the generated world and of the scenario draws")
    ap.add_argument("--out", default="loadtest-report", help="folder for result.json and plot.png")
    ap.add_argument("--workdir", default="onecard-work/loadtest", help="logs and embedded servers' data")


def _check_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.duration <= 0 or args.warmup < 0:
        ap.error("--duration must be positive and --warmup not negative")
    if args.concurrency < 1 or args.workers < 1 or args.windows < 0 or args.persons < 10:
        ap.error("--concurrency and --workers must be at least 1, --windows not negative, --persons at least 10")


def _machine() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _world(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], Path]:
    if getattr(args, "world", None):
        path = Path(args.world)
        return load_world(path), path
    world = generate(persons=args.persons, seed=args.seed)
    return world, write_world(world, Path(tempfile.mkdtemp(prefix="world-", dir=workdir)))


async def _freeze_kept_objects(every_s: float = 1.0) -> None:
    """Keep the samples and traces a run accumulates (hundreds of thousands of objects) out of the garbage
    collector's full collections, which otherwise grow with the run and stall the generator: a second phase
    of `bench gateway` measured 20% lower than the same load on its own. The cost is that a cycle of garbage
    caught by a freeze is never freed; the generator makes few."""
    gc.collect()
    while True:
        gc.freeze()
        await asyncio.sleep(every_s)


async def drive(
    url: str,
    world: dict[str, Any],
    mix: dict[str, int],
    args: argparse.Namespace,
    *,
    rate: Any = None,
    state: dict[str, Any] | None = None,
    sign_in: bool = True,
    tls_for: Callable[[str], ssl.SSLContext] | None = None,
) -> tuple[Recorder, Fleet]:
    """Sign the fleet in (unless `sign_in` is false: the pass-through has no sessions), then run the model for
    warm-up + duration seconds."""
    fleet = Fleet(world, seed=args.seed)
    peak = (
        args.concurrency
        if rate is None
        else max(rate(i * 0.5) for i in range(int(2 * args.warmup + 2 * args.duration) + 1)) * 0.2
    )
    fleet.set_windows(args.windows, int(peak))
    if state:
        fleet.load_state(state)
    planner = Planner(fleet, world, mix, seed=args.seed)
    total = args.warmup + args.duration
    sender = Sender(url, connections=max(int(peak), args.concurrency, 64) * 2, tls_for=tls_for)
    try:
        if sign_in:
            await sender.sign_in_all(fleet.all_sites)
        else:
            for site in fleet.all_sites:
                site.terminal.sign_no = "0" * 30
        rec = Recorder()
        freezer = asyncio.create_task(_freeze_kept_objects())
        try:
            if rate is None:
                await run_closed(sender, planner, rec, concurrency=args.concurrency, seconds=total)
            else:
                await run_open(sender, planner, rec, rate=rate, seconds=total)
        finally:
            freezer.cancel()
    finally:
        await sender.close()
    return rec, fleet


async def _session(
    args: argparse.Namespace, world: dict[str, Any], world_path: Path, rate: Any, state: dict[str, Any] | None
) -> tuple[Recorder, Fleet, dict[str, Any], str]:
    """Start (or reach) the stack, drive it, check the run; returns the recording, fleet, check and the URL."""
    async with AsyncExitStack() as exits:
        if args.target:
            url, pg_dsn, core_url, fresh = args.target, args.pg_dsn, args.core_url, False
        else:
            stack = await start_stack(exits, world_path, Path(args.workdir), workers=args.workers)
            url, pg_dsn, core_url, fresh = stack.gateway_url, stack.pg_dsn, stack.core_url, True
            print(f"started: gateway {url} ({args.workers} workers), core {core_url}, PostgreSQL {stack.pg_kind}")
        rec, fleet = await drive(url, world, parse_mix(args.mix), args, rate=rate, state=state)
        if pg_dsn and core_url and not args.no_check:
            check = (await check_run(rec.traces, pg_dsn, core_url, world=world, fresh_core=fresh)).as_dict()
        else:
            why = "--no-check" if args.no_check else "needs --pg-dsn and --core-url with --target"
            check = {"ok": None, "skipped": why}
    return rec, fleet, check, url


def run_loadtest(args: argparse.Namespace, rate: Any) -> int:
    """A whole run: world, stack, load, check, report. Exit code 1 when the check found problems."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    world, world_path = _world(args, workdir)
    state_file = Path(args.state) if args.state else None
    state = json.loads(state_file.read_text()) if state_file and state_file.exists() else None
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        rec, fleet, check, url = runner.run(_session(args, world, world_path, rate, state))
    if state_file:
        state_file.write_text(json.dumps(fleet.state()))
    meta = {
        "command": " ".join(sys.argv),
        "model": args.model,
        "concurrency": args.concurrency if rate is None else None,
        "rate": args.rate or args.ramp or args.steps,
        "mix": parse_mix(args.mix),
        "workers": None if args.target else args.workers,
        "target": url,
        "skipped_plans": rec.skipped,
        "open_model_max_lag_s": round(rec.late_s, 4),
        "machine": _machine(),
    }
    result = report.summarize(rec.samples, warmup_s=args.warmup, duration_s=args.duration, meta=meta)
    result["check"] = check
    out = Path(args.out)
    report.write_json(result, out / "result.json")
    report.plot(rec.samples, out / "plot.png", warmup_s=args.warmup, title=f"onecard loadtest ({args.model})")
    print(report.render_text(result))
    print(f"check: {check_line(check)}")
    print(f"wrote {out / 'result.json'} and {out / 'plot.png'}")
    if result["mac2"]["failures"]:
        print(f"MAC2 wrong on {result['mac2']['failures']} answers: the gateway's answers are not authentic")
    return 0 if check.get("ok") is not False and not result["mac2"]["failures"] else 1


def check_line(check: dict[str, Any]) -> str:
    if check.get("ok") is None:
        return f"skipped ({check.get('skipped')})"
    head = "ok" if check["ok"] else "FAILED"
    detail = (
        f"{check['requests']} requests, {check['journal_rows']} journal rows, {check['settlements']} settlements,"
        f" {check['cancels']} cancels, {check['accounts']} accounts"
        + (f", {check['visits']} visits" if check.get("visits") else "")  # issue 12: outpatient visits
        + (f", {check['stays']} stays" if check.get("stays") else "")  # issue 12: inpatient stays
    )
    return head + " — " + detail + "".join("\n  " + p for p in check["problems"])


def loadtest_main(argv: list[str] | None = None) -> int:
    """`onecard loadtest`."""
    ap = argparse.ArgumentParser(prog="onecard loadtest", description="Load the gateway with a simulated fleet")
    _common(ap)
    ap.add_argument("--model", choices=("closed", "open"), default="closed")
    ap.add_argument("--rate", type=float, help="open model: arrivals per second")
    ap.add_argument("--ramp", help="open model: from:to arrivals per second over the run, e.g. 50:400")
    ap.add_argument("--steps", help="open model: rate x seconds, ..., e.g. 100x10,200x10,400x20")
    ap.add_argument("--mix", default="default", help="name=w,... or default, settle, outpatient, inpatient")
    ap.add_argument("--target", help="an already running gateway's base URL (default: start one here)")
    ap.add_argument("--world", help="the seed world the target was loaded with (required with --target)")
    ap.add_argument("--pg-dsn", help="with --target: the gateway's database, for the post-run check")
    ap.add_argument("--core-url", help="with --target: the core simulator, for the post-run check")
    ap.add_argument("--state", help="file keeping card ATCs and PSAM tseqs between runs against one --target")
    ap.add_argument("--no-check", action="store_true", help="skip the post-run check")
    args = ap.parse_args(argv)
    _check_args(ap, args)
    if args.target and not args.world:
        ap.error("--target needs --world (the world the gateway was loaded with)")
    if args.model == "closed" and (args.rate or args.ramp or args.steps):
        ap.error("--rate, --ramp and --steps belong to the open model: add --model open")
    try:
        parse_mix(args.mix)  # refuse a bad mix before starting anything
        rate = (
            parse_rate(args.rate, args.ramp, args.steps, args.warmup + args.duration) if args.model == "open" else None
        )
    except ValueError as exc:
        ap.error(str(exc))
    return guarded("onecard loadtest", lambda: run_loadtest(args, rate))


def guarded(prog: str, run: Callable[[], int]) -> int:
    """Run a load command; what goes wrong outside the gateway's answers is one clear line and an exit code
    (as every `onecard` command, gateway/bootstrap/exits.py): 2 for bad input (a world file, settings, a missing extra),
    3 when a server is unreachable, 1 when a process it started did not come up."""
    missing = plotting_missing()
    if missing is not None:
        print(f"{prog}: {missing}", file=sys.stderr)
        return 2
    try:
        return run()
    except (ConfigError, ValueError, OSError) as exc:
        if isinstance(exc, (ConnectionError, aiohttp.ClientError, TimeoutError)):
            print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 3
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except aiohttp.ClientError as exc:
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    except RuntimeError as exc:
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def plotting_missing() -> str | None:
    """Why the report's plot cannot be drawn (matplotlib, the `loadtest` extra, not installed), or None; said
    before a run starts, not after a minute of load."""
    if importlib.util.find_spec("matplotlib") is None:
        return "matplotlib is not installed (the `loadtest` extra): pip install -e '.[loadtest]'"
    return None
