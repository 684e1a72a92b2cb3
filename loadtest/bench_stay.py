"""`onecard bench stay`: sequential inpatient stays (SPEC §6.7: 2401, one 2301 per day, 2402, 2303, 2304 final)
from one terminal through the gateway and the core simulator on loopback, in this process; prints the requests
sent, the wall time and the CPU (this process: client, gateway and simulator; not PostgreSQL or Redis) per stay.

    onecard bench stay --stays 100 --days 10 --lines 5

The rig is `onecard bench visit`'s (loadtest.bench_rig): its own database and Redis prefix, dropped afterwards.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from loadtest.bench_rig import bench_rig, print_numbers
from loadtest.visit_scenario import lines_fen


async def run(stays: int, days: int, lines: int) -> dict[str, Any]:
    """`stays` sequential stays of `days` days of `lines` fee lines each; outcomes per infno and the timings."""
    wall: list[float] = []
    async with bench_rig(stays) as rig:
        t, per_day = rig.terminal, [rig.lines(lines, d * lines) for d in range(days)]
        total = sum(lines_fen(day) for day in per_day)
        cpu0 = time.process_time()
        for n in range(stays):
            card = rig.cards[n % len(rig.cards)]
            t0 = time.perf_counter()
            r = await rig.send(t.admit(card, f"BS{n:08d}").body)
            mdtrt_id = ((r.get("output") or {}).get("result") or {}).get("mdtrt_id")
            if mdtrt_id:
                for d, day in enumerate(per_day):
                    body = t.upload_stay_fees(card.psn_no, mdtrt_id, list(day), first_sn=d * lines + 1).body
                    await rig.send(body)
                await rig.send(t.discharge(card.psn_no, mdtrt_id).body)
                for infno in ("2303", "2304"):
                    await rig.send(t.settle_stay(infno, card, mdtrt_id, total).body)
            wall.append((time.perf_counter() - t0) * 1e3)
        cpu = time.process_time() - cpu0
    return {
        "stays": stays,
        "days": days,
        "lines": lines,
        "requests": rig.requests,
        "codes": dict(rig.codes),
        "wall_p50_ms": statistics.median(wall),
        "wall_mean_ms": statistics.fmean(wall),
        "cpu_ms_per_stay": cpu / stays * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    """Print the numbers; 2 on a bad option."""
    ap = argparse.ArgumentParser(prog="onecard bench stay", description=__doc__.split("\n\n")[0])
    ap.add_argument("--stays", type=int, default=50, help="sequential stays (default 50)")
    ap.add_argument("--days", type=int, default=5, help="days per stay, one 2301 each (default 5, at most 365)")
    ap.add_argument("--lines", type=int, default=5, help="fee lines per day's 2301 (default 5, at most 200)")
    args = ap.parse_args(argv)
    if not 1 <= args.stays <= 1_000_000 or not 1 <= args.days <= 365 or not 1 <= args.lines <= 200:
        ap.error("--stays must be 1..1000000, --days 1..365 and --lines 1..200")
    res = asyncio.run(run(args.stays, args.days, args.lines))
    print_numbers(res, "stay", f"{res['days']} days x {res['lines']} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
