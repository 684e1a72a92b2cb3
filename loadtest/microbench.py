"""Micro-benchmarks of the hot path's pure parts, and a sequential end-to-end run against real servers.

    python -m loadtest.microbench              # pure parts only
    python -m loadtest.microbench --e2e 500    # plus 500 sequential 2207s through gateway + core simulator

Prints numbers; asserts nothing. PostgreSQL and Redis come from ONECARD_PG_DSN / ONECARD_REDIS_URL (default
the local services); the run uses its own database and Redis prefix and drops them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from gateway.domain.envelope import Envelope, parse_envelope
from gateway.domain.keys import DEV_KEYS, CardKeyCache, MasterKeys
from gateway.domain.security import verify
from gateway.domain.txtypes import mac_amount, parse_input
from loadtest.terminal import CALL_SERVICE, SimCard, Terminal
from rules.params import Policy
from rules.pricing import PricedLine
from rules.split import PersonYear, split


def per_op(fn: Callable[[], object], n: int) -> float:
    """Microseconds per call of fn over n calls (after a short warm-up)."""
    for _ in range(min(n, 200)):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def _verify_cold(env: Envelope, amount: int) -> object:
    return verify(env, amount, CardKeyCache(MasterKeys(DEV_KEYS)))


def pure(n: int) -> list[tuple[str, float]]:
    """The pure pieces of a 2207: decode and parse, MAC1+TAC verification, the settlement split."""
    out = []
    t = Terminal("H33020000013", "医院", "330200000001")
    t.sign_no = "3" * 30
    for alg in ("3DES", "SM4"):
        card = SimCard("330200D15600000500BF7C7A48FB4966", "A12345678", "33020000000000000001", alg=alg)
        body = orjson.dumps(t.settle("2207", card, [("X1", "2", "8.60"), ("X2", "1", "12.00")]).body)
        env = parse_envelope(orjson.loads(body))
        amount = mac_amount(env)
        warm = CardKeyCache(MasterKeys(DEV_KEYS))
        out.append((f"{alg} MAC1+TAC verify, key cache warm", per_op(partial(verify, env, amount, warm), n)))
        out.append(
            (
                f"{alg} MAC1+TAC verify, key cache cold",
                per_op(partial(_verify_cold, env, amount), max(n // 4, 1)),
            )
        )
    out.append(
        ("orjson decode + envelope + input parse", per_op(lambda: parse_input(parse_envelope(orjson.loads(body))), n))
    )
    policy = Policy.from_mapping(
        {
            "b_selfpay": "0.10",
            "annual_cap": "300000.00",
            "deductible_scope": "year",
            "deductible": "1000.00",
            "bands": [["20000.00", "0.75"], ["50000.00", "0.77"], [None, "0.79"]],
        }
    )
    lines = [
        PricedLine("A", 300000),
        PricedLine("B", 200000),
        PricedLine("B", 100000, cap=80000),
        PricedLine("C", 5000),
    ]
    person = PersonYear(inscp_ytd=50000, fund_paid_ytd=0, balance=200000)
    out.append(("settlement split, 4 lines, banded", per_op(lambda: split(lines, policy, person, acct_limit=None), n)))
    out += _sealing(body, n)
    return out


def _sealing(request: bytes, n: int) -> list[tuple[str, float]]:
    """Issue 11 item 9: what sealing adds per settlement (the request at its claim, the answer at completion)."""
    from adapters.journal_sealing import JournalSealing
    from gateway.domain.sealed import dev_ring

    sealing = JournalSealing(dev_ring())
    text, answer = request.decode(), b'{"infcode":0,"output":{"setlinfo":{"psn_name":"x"}}}'.ljust(1024, b" ")
    code, msgid = "H33020000018", "H33020000018202612011200000001"
    sealed = sealing.seal_response(code, msgid, answer)

    def both() -> object:
        return sealing.seal_request(code, msgid, text), sealing.seal_response(code, msgid, answer)

    return [
        (f"journal sealing: {len(request)} B request + 1 KiB answer (AES-256-GCM)", per_op(both, n)),
        ("journal opening: the 1 KiB answer (a retry)", per_op(lambda: sealing.open_response(code, msgid, sealed), n)),
    ]


async def e2e(count: int) -> dict[str, Any]:
    """`count` sequential 2207s from one terminal through the gateway and the core simulator on loopback."""
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
    world = generate(persons=max(200, count // 2), seed=11)
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
        if c["status"] == "ACTIVE"
        and c["valid_until"] > "2027"
        and persons[c["psn_no"]]["status"] == "ACTIVE"
        and persons[c["psn_no"]]["insutype"] == "310"
    ]
    inst = world["institutions"][0]
    t = Terminal(inst["fixmedins_code"], inst["fixmedins_name"], inst["psams"][0]["psam_no"])
    item = next(i for i in world["catalogue"] if i["class"] == "A" and Decimal(i["price"]) < 50)
    whole: list[float] = []
    gw_us: list[float] = []
    codes: dict[str, int] = {}
    try:
        async with ClientSession() as http:
            async with http.post(url + CALL_SERVICE, data=orjson.dumps(t.sign_in().body)) as r:
                t.sign_no = (await r.json())["output"]["signinoutb"]["sign_no"]
            for i in range(count):
                b = t.settle("2207", cards[i % len(cards)], [(item["med_list_codg"], "1", item["price"])])
                data = orjson.dumps(b.body)
                t0 = time.perf_counter()
                async with http.post(url + CALL_SERVICE, data=data) as r:
                    resp = orjson.loads(await r.read())
                    whole.append((time.perf_counter() - t0) * 1e3)
                    gw_us.append(int(r.headers["X-Gateway-Latency-Us"]) / 1e3)
                codes[resp["err_code"] or "OK"] = codes.get(resp["err_code"] or "OK", 0) + 1
    finally:
        await gw.cleanup()
        await core.cleanup()
        await drop_redis_prefix(redis_url, prefix)
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    def pct(xs: list[float], p: float) -> float:
        return statistics.quantiles(xs, n=1000)[int(p * 10) - 1] if len(xs) > 1 else xs[0]

    return {
        "count": count,
        "codes": codes,
        "whole_p50_ms": pct(whole, 50),
        "whole_p99_ms": pct(whole, 99),
        "gateway_p50_ms": pct(gw_us, 50),
        "gateway_p99_ms": pct(gw_us, 99),
        "throughput_per_s": count / (sum(whole) / 1e3),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the numbers."""
    ap = argparse.ArgumentParser(prog="onecard bench micro")
    ap.add_argument("-n", type=int, default=5000, help="iterations per pure micro-benchmark")
    ap.add_argument("--e2e", type=int, default=0, help="sequential 2207s through gateway + core simulator")
    args = ap.parse_args(argv)
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    from loadtest.bench_limits import limits  # issue 11 items 7 and 8

    for name, us in [*pure(args.n), *limits(per_op, args.n)]:
        print(f"{name:45s} {us:9.1f} µs/op")
    if args.e2e:
        res = asyncio.run(e2e(args.e2e))
        print(
            f"e2e sequential 2207 x{res['count']}: {res['throughput_per_s']:.0f}/s,"
            f" whole p50 {res['whole_p50_ms']:.2f} ms"
            f" p99 {res['whole_p99_ms']:.2f} ms, gateway-own p50 {res['gateway_p50_ms']:.2f} ms"
            f" p99 {res['gateway_p99_ms']:.2f} ms, outcomes {res['codes']}"
        )


if __name__ == "__main__":
    main()
