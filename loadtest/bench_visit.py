"""`onecard bench visit`: sequential outpatient visits by reference (SPEC §6.6: 2201 → 2204 → 2206 → 2207) from
one terminal through the gateway and the core simulator on loopback, in this process; prints the requests sent,
the wall time and the CPU (this process: client, gateway and simulator; not PostgreSQL or Redis) per visit.

    onecard bench visit --visits 200 --lines 5

PostgreSQL and Redis come from ONECARD_PG_DSN / ONECARD_REDIS_URL (default the local services); the run uses
its own database and Redis prefix and drops them afterwards. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from loadtest.terminal import CALL_SERVICE, SimCard, Terminal


async def run(visits: int, lines: int) -> dict[str, Any]:
    """`visits` sequential visits of `lines` fee lines each; outcomes per infno and the timings."""
    import asyncpg
    from aiohttp import ClientSession

    from adapters.pg_migrate import create_database
    from coresim.app import start_core_sim
    from gateway.app import create_app
    from gateway.settings import Settings
    from loadtest.stack import drop_redis_prefix
    from loadtest.world import generate, write_world
    from onecard.demo import _start_site

    admin = os.environ.get("ONECARD_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("ONECARD_REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"onecard_bench_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(admin, name)
    prefix = f"onecard-bench-{name}:"
    world = generate(persons=max(200, visits), seed=12)
    path = write_world(world, Path(tempfile.mkdtemp(prefix="onecard-bench-")))
    core, core_url = await start_core_sim(world=world)
    settings = Settings(
        pg_dsn=dsn, redis_url=redis_url, redis_prefix=prefix, core_url=core_url, dev_mode=True, world_file=str(path)
    )
    gw, url = await _start_site(create_app(settings), "127.0.0.1", 0)
    persons = {p["psn_no"]: p for p in world["persons"]}
    cards = [
        SimCard.from_world(c)
        for c in world["cards"]
        if c["status"] == "ACTIVE" and c["valid_until"] > "2027" and c["pin_mode"] == "PIN"
        and persons[c["psn_no"]]["status"] == "ACTIVE" and persons[c["psn_no"]]["insutype"] == "310"
        and Decimal(persons[c["psn_no"]]["balance"]) >= 100
    ]  # fmt: skip
    inst = next(i for i in world["institutions"] if i["kind"] == "hospital")
    t = Terminal(inst["fixmedins_code"], inst["fixmedins_name"], inst["psams"][0]["psam_no"])
    plain = [i for i in world["catalogue"] if i["class"] == "A" and not i.get("price_cap") and Decimal(i["price"]) < 20]
    items = [(plain[k % len(plain)]["med_list_codg"], "1", plain[k % len(plain)]["price"]) for k in range(lines)]
    total = sum(int(Decimal(p) * 100) for _, _, p in items)
    wall: list[float] = []
    codes: Counter[str] = Counter()
    requests = 0
    try:
        async with ClientSession() as http:

            async def send(body: dict[str, Any]) -> dict[str, Any]:
                nonlocal requests
                requests += 1
                async with http.post(url + CALL_SERVICE, data=orjson.dumps(body)) as r:
                    resp: dict[str, Any] = orjson.loads(await r.read())
                codes[f"{body['infno']} {resp.get('err_code') or 'OK'}"] += 1
                return resp

            t.sign_no = (await send(t.sign_in().body))["output"]["signinoutb"]["sign_no"]
            cpu0 = time.process_time()
            for n in range(visits):
                card = cards[n % len(cards)]
                t0 = time.perf_counter()
                r = await send(t.register(card, f"BV{n:08d}").body)
                mdtrt_id = ((r.get("output") or {}).get("data") or {}).get("mdtrt_id")
                if mdtrt_id:
                    await send(t.upload_fees(card.psn_no, mdtrt_id, "B1", items).body)
                    for infno in ("2206", "2207"):
                        await send(t.settle_by_reference(infno, card, mdtrt_id, "B1", total).body)
                wall.append((time.perf_counter() - t0) * 1e3)
            cpu = time.process_time() - cpu0
    finally:
        await gw.cleanup()
        await core.cleanup()
        await drop_redis_prefix(redis_url, prefix)
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    return {
        "visits": visits,
        "lines": lines,
        "requests": requests,
        "codes": dict(codes),
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
    print(
        f"bench visit: {res['visits']} visits of {res['lines']} lines, {res['requests']} requests"
        f" ({res['requests'] / res['visits']:.1f} per visit, the 9001 sign-in included)"
    )
    print(
        f"  wall per visit: p50 {res['wall_p50_ms']:.2f} ms, mean {res['wall_mean_ms']:.2f} ms;"
        f" CPU per visit {res['cpu_ms_per_visit']:.2f} ms (this process: client, gateway, simulator)"
    )
    print(f"  outcomes: {', '.join(f'{k} x{v}' for k, v in sorted(res['codes'].items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
