"""`onecard bench gateway`: the gateway against a bare pass-through, one after the other, same machine and load.

    onecard bench gateway --duration 60 --workers 2 --concurrency 64
    onecard bench gateway --duration 60 --workers 2 --rate 1000      # open model: 1,000 arrivals per second
    onecard bench gateway --rate-limit loadtest/rate_limits.toml     # rate limits on (issue 11 item 7)
    onecard bench gateway --duration 60 --workers 2 --tls            # the gateway over HTTPS with mTLS

Starts the core simulator, `onecard serve --workers N` and the pass-through (loadtest/passthrough.py, also N
processes), then drives (a) the pass-through and (b) the gateway with the same fleet, scenario mix (2207
settlements by default) and model, and prints for each: throughput, whole-request latency percentiles, the
gateway's own latency (X-Gateway-Latency-Us), CPU seconds per request by process group, and last a line
`ratio: X` (b's throughput over a's). Results (JSON and plot per phase) go to --out. Asserts nothing.
With --tls the gateway phase runs over HTTPS with client certificates (a throwaway CA, server certificate and one
client certificate per institution under --workdir/tls); the pass-through stays plain HTTP, so TLS's cost is the
gateway phase of a --tls run against the same without it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from coresim.app import new_event_loop
from loadtest import report
from loadtest.certs import bench_pki
from loadtest.check import check_run
from loadtest.cpu import CpuMeter
from loadtest.main import _common, _machine, _world, check_line, drive, guarded
from loadtest.runner import Recorder, parse_rate
from loadtest.scenarios import parse_mix
from loadtest.stack import start_stack
from rules.limits import parse_rate_limits


def _cpu_line(used: dict[str, float], requests: int) -> str:
    busy = used.get("machine busy %", 0.0)
    groups = {g: v for g, v in used.items() if g != "machine busy %" and v > 0}
    if not requests:
        return "cpu: no requests"
    parts = [f"{g} {groups[g] / requests * 1e6:.0f}" for g in sorted(groups, key=lambda g: -groups[g])]
    total = sum(groups.values()) / requests * 1e6
    return f"cpu µs/request: {', '.join(parts)} (total {total:.0f}); machine busy {busy:.0f}%"


async def _phase(
    name: str,
    url: str,
    world: dict[str, Any],
    args: argparse.Namespace,
    rate: Any,
    meter: CpuMeter,
    sign_in: bool,
    tls_for: Callable[[str], ssl.SSLContext] | None,
) -> tuple[Recorder, dict[str, float]]:
    print(f"({name}) {url}: {args.warmup:.0f} s warm-up + {args.duration:.0f} s ...", flush=True)
    meter.start()
    rec, _fleet = await drive(url, world, parse_mix(args.mix), args, rate=rate, sign_in=sign_in, tls_for=tls_for)
    return rec, meter.stop()


async def _run(args: argparse.Namespace, world: dict[str, Any], world_path: Path, rate: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with AsyncExitStack() as exits:
        tls = None
        if args.tls:
            tls = bench_pki(Path(args.workdir) / "tls", [i["fixmedins_code"] for i in world["institutions"]])
        stack = await start_stack(
            exits,
            world_path,
            Path(args.workdir),
            workers=args.workers,
            passthrough=True,
            tls=tls,
            extra_env=_limit_env(args),
        )
        print(f"started: {args.workers} gateway and {args.workers} pass-through processes, core simulator,"
              f" PostgreSQL {stack.pg_kind}, Redis {stack.redis_kind}")  # fmt: skip
        names = {"postgres": ("postgres",), "redis": ("redis-server",)}
        for phase, url, sign_in in (
            ("pass-through", stack.passthrough_url, False),
            ("gateway", stack.gateway_url, True),
        ):
            assert url is not None
            trees = {"core": stack.pids["core"], phase: stack.pids["gateway" if sign_in else "passthrough"]}
            meter = CpuMeter(trees, names, {"load generator": os.getpid()})
            tls_for = stack.tls_for if sign_in else None
            rec, cpu = await _phase(phase, url, world, args, rate, meter, sign_in, tls_for)
            out[phase] = (rec, cpu)
        rec = out["gateway"][0]
        if not args.no_check:
            out["check"] = (
                await check_run(rec.traces, stack.pg_dsn, stack.core_url, world=world, fresh_core=True)
            ).as_dict()
        else:
            out["check"] = {"ok": None, "skipped": "--no-check"}
    return out


def _limit_env(args: argparse.Namespace) -> dict[str, str]:
    """The gateway's environment for --rate-limit and --max-in-flight (issue 11 items 7 and 8)."""
    env = {}
    if args.rate_limit:
        env["ONECARD_RATE_LIMITS_FILE"] = str(Path(args.rate_limit).resolve())
    if args.max_in_flight:
        env["ONECARD_MAX_IN_FLIGHT"] = str(args.max_in_flight)
    return env


def _print(name: str, result: dict[str, Any], cpu: dict[str, float], sent: int) -> None:
    lat, gw = result["latency_ms"]["whole"], result["latency_ms"]["gateway"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    print(
        f"({name}) throughput {result['throughput_rps']:.1f}/s over {result['duration_s']:.0f} s"
        f" ({result['count'] - result['not_sent']} requests sent, {result['not_sent']} arrivals found no free terminal)"
    )
    print(f"  whole ms   p50 {ms(lat['p50'])}  p90 {ms(lat['p90'])}  p99 {ms(lat['p99'])}  p99.9 {ms(lat['p99_9'])}")
    if gw["count"]:
        print(f"  gateway ms p50 {ms(gw['p50'])}  p90 {ms(gw['p90'])}  p99 {ms(gw['p99'])}  p99.9 {ms(gw['p99_9'])}")
    print(f"  outcomes {result['outcomes']}")
    print("  " + _cpu_line(cpu, sent))


def main(argv: list[str] | None = None) -> int:
    """Run both phases and print the numbers."""
    ap = argparse.ArgumentParser(prog="onecard bench gateway", description=__doc__.split("\n\n")[0])
    _common(ap)
    ap.set_defaults(duration=60.0, concurrency=64, persons=20000, out="bench-out")
    ap.add_argument("--rate", type=float, help="open model at this many arrivals per second (default: closed)")
    ap.add_argument("--mix", default="settle", help="scenario mix (default: 2207 settlements only)")
    ap.add_argument("--no-check", action="store_true", help="skip the post-run check of the gateway phase")
    # issue 11 items 7 and 8
    ap.add_argument(
        "--rate-limit",
        metavar="FILE",
        help="rate limits TOML ([rate_limits]) for the gateway; loadtest/rate_limits.toml limits every request"
        " and refuses none, so the run measures the limiter's cost",
    )
    ap.add_argument("--max-in-flight", type=int, help="the gateway's bound on requests in flight per process")
    ap.add_argument("--tls", action="store_true", help="the gateway over HTTPS with client certificates (see above)")
    args = ap.parse_args(argv)
    if args.rate_limit:
        try:
            parse_rate_limits(Path(args.rate_limit).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            ap.error(f"--rate-limit {args.rate_limit}: {exc}")
    if args.max_in_flight is not None and args.max_in_flight < 1:
        ap.error("--max-in-flight must be at least 1")
    if args.duration <= 0 or args.warmup < 0 or args.concurrency < 1 or args.workers < 1:
        ap.error("--duration and --concurrency and --workers must be positive, --warmup not negative")
    try:
        parse_mix(args.mix)
        rate = parse_rate(args.rate, None, None, args.warmup + args.duration) if args.rate else None
    except ValueError as exc:
        ap.error(str(exc))
    args.model = "open" if rate else "closed"
    return guarded("onecard bench gateway", lambda: _bench(args, rate))


def _bench(args: argparse.Namespace, rate: Any) -> int:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    world, world_path = _world(args, workdir)
    print(f"machine: {_machine()}")
    print(
        f"settings: model={args.model} rate={args.rate} concurrency={args.concurrency} workers={args.workers}"
        f" mix={args.mix} warmup={args.warmup:.0f}s duration={args.duration:.0f}s persons={args.persons}"
        f" rate_limit={args.rate_limit} max_in_flight={args.max_in_flight}"
        f" tls={'mTLS' if args.tls else 'off'}"
    )
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        res = runner.run(_run(args, world, world_path, rate))
    out = Path(args.out)
    tput: dict[str, float] = {}
    for phase in ("pass-through", "gateway"):
        rec, cpu = res[phase]
        meta = {"command": " ".join(sys.argv), "phase": phase, "machine": _machine(), "cpu_s": cpu, **vars(args)}
        result = report.summarize(rec.samples, warmup_s=args.warmup, duration_s=args.duration, meta=meta)
        if phase == "gateway":
            result["check"] = res["check"]
        slug = phase.replace("-", "")
        report.write_json(result, out / f"{slug}.json")
        report.plot(rec.samples, out / f"{slug}.png", warmup_s=args.warmup, title=f"onecard bench gateway: {phase}")
        # CPU was metered over the whole phase: divide by every request sent in it (warm-up included).
        _print(phase, result, cpu, sum(1 for x in rec.samples if x.outcome not in report.NOT_SENT_OUTCOMES))
        tput[phase] = result["throughput_rps"] or 0.0
    print(f"check: {check_line(res['check'])}")
    print(f"wrote {out}/passthrough.json, gateway.json and their plots")
    print(f"ratio: {tput['gateway'] / tput['pass-through']:.3f}" if tput["pass-through"] else "ratio: n/a")
    return 0 if res["check"].get("ok") is not False else 1
