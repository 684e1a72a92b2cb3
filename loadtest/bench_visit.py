"""`onecard bench visit`: sequential outpatient visits by reference (SPEC §6.6: 2201 → 2204 → 2206 → 2207) from
one terminal through the gateway and the core simulator on loopback, in this process; prints the requests sent,
the wall time and the CPU (this process: client, gateway and simulator; not PostgreSQL or Redis) per visit.

    onecard bench visit --visits 200 --lines 5

PostgreSQL and Redis come from ONECARD_PG_DSN / ONECARD_REDIS_URL (default the local services); the run uses
its own database and Redis prefix and drops them afterwards (loadtest.bench_rig). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from loadtest.bench_rig import bench_rig, print_numbers
from loadtest.visit_scenario import lines_fen


async def run(visits: int, lines: int) -> dict[str, Any]:
    """`visits` sequential visits of `lines` fee lines each; outcomes per infno and the timings."""
    wall: list[float] = []
    async with bench_rig(visits) as rig:
        t, items = rig.terminal, rig.lines(lines)
        total = lines_fen(items)
        cpu0 = time.process_time()
        for n in range(visits):
            card = rig.cards[n % len(rig.cards)]
            t0 = time.perf_counter()
            r = await rig.send(t.register(card, f"BV{n:08d}").body)
            mdtrt_id = ((r.get("output") or {}).get("data") or {}).get("mdtrt_id")
            if mdtrt_id:
                await rig.send(t.upload_fees(card.psn_no, mdtrt_id, "B1", items).body)
                for infno in ("2206", "2207"):
                    await rig.send(t.settle_by_reference(infno, card, mdtrt_id, "B1", total).body)
            wall.append((time.perf_counter() - t0) * 1e3)
        cpu = time.process_time() - cpu0
    return {
        "visits": visits,
        "lines": lines,
        "requests": rig.requests,
        "codes": dict(rig.codes),
        "wall_p50_ms": statistics.median(wall),
        "wall_mean_ms": statistics.fmean(wall),
        "cpu_ms_per_visit": cpu / visits * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    """Print the numbers; 2 on a bad option."""
    ap = argparse.ArgumentParser(prog="onecard bench visit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--visits", type=int, default=100, help="sequential visits (default 100)")
    ap.add_argument("--lines", type=int, default=5, help="fee lines per visit's batch (default 5, at most 2000)")
    args = ap.parse_args(argv)
    if not 1 <= args.visits <= 1_000_000 or not 1 <= args.lines <= 2000:
        ap.error("--visits must be 1..1000000 and --lines 1..2000")
    res = asyncio.run(run(args.visits, args.lines))
    print_numbers(res, "visit", f"{res['lines']} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
