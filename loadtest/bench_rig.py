"""The rig of the sequential care benchmarks (`onecard bench visit`, `onecard bench stay`): its own database
and Redis prefix, the core simulator and the gateway on loopback in this process, one signed-in hospital
terminal, PIN cards of resident employees (insutype 310) with money, and plain class-A fee lines."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientSession

from loadtest.terminal import CALL_SERVICE, SimCard, Terminal


@dataclass
class Rig:
    """What a benchmark drives: `send` posts a body and counts it by infno and outcome."""

    http: ClientSession
    url: str
    terminal: Terminal
    cards: list[SimCard]
    plain: list[dict[str, Any]]
    codes: Counter[str] = field(default_factory=Counter)
    requests: int = 0

    async def send(self, body: dict[str, Any]) -> dict[str, Any]:
        """Post one request; its answer."""
        self.requests += 1
        async with self.http.post(self.url + CALL_SERVICE, data=orjson.dumps(body)) as r:
            resp: dict[str, Any] = orjson.loads(await r.read())
        self.codes[f"{body['infno']} {resp.get('err_code') or 'OK'}"] += 1
        return resp

    def lines(self, n: int, offset: int = 0) -> list[tuple[str, str, str]]:
        """`n` fee lines of one unit each, from the plain items (starting at `offset`)."""
        p = self.plain
        return [(p[k % len(p)]["med_list_codg"], "1", p[k % len(p)]["price"]) for k in range(offset, offset + n)]


@asynccontextmanager
async def bench_rig(persons: int) -> AsyncIterator[Rig]:
    """Start everything, sign the terminal in; drop the database and the Redis prefix afterwards."""
    import asyncpg

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
    world = generate(persons=max(200, persons), seed=12)
    path = write_world(world, Path(tempfile.mkdtemp(prefix="onecard-bench-")))
    core, core_url = await start_core_sim(world=world)
    settings = Settings(
        pg_dsn=dsn, redis_url=redis_url, redis_prefix=prefix, core_url=core_url, dev_mode=True, world_file=str(path)
    )
    gw, url = await _start_site(create_app(settings), "127.0.0.1", 0)
    ps = {p["psn_no"]: p for p in world["persons"]}
    cards = [
        SimCard.from_world(c)
        for c in world["cards"]
        if c["status"] == "ACTIVE" and c["valid_until"] > "2027" and c["pin_mode"] == "PIN"
        and ps[c["psn_no"]]["status"] == "ACTIVE" and ps[c["psn_no"]]["insutype"] == "310"
        and Decimal(ps[c["psn_no"]]["balance"]) >= 100
    ]  # fmt: skip
    inst = next(i for i in world["institutions"] if i["kind"] == "hospital")
    t = Terminal(inst["fixmedins_code"], inst["fixmedins_name"], inst["psams"][0]["psam_no"])
    plain = [i for i in world["catalogue"] if i["class"] == "A" and not i.get("price_cap") and Decimal(i["price"]) < 20]
    try:
        async with ClientSession() as http:
            rig = Rig(http, url, t, cards, plain)
            t.sign_no = (await rig.send(t.sign_in().body))["output"]["signinoutb"]["sign_no"]
            yield rig
    finally:
        await gw.cleanup()
        await core.cleanup()
        await drop_redis_prefix(redis_url, prefix)
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def print_numbers(res: dict[str, Any], unit: str, shape: str) -> None:
    """The three lines a care benchmark prints: requests, wall and CPU per `unit`, outcomes."""
    n = res[unit + "s"]
    print(
        f"bench {unit}: {n} {unit}s of {shape}, {res['requests']} requests"
        f" ({res['requests'] / n:.1f} per {unit}, the 9001 sign-in included)"
    )
    print(
        f"  wall per {unit}: p50 {res['wall_p50_ms']:.2f} ms, mean {res['wall_mean_ms']:.2f} ms;"
        f" CPU per {unit} {res[f'cpu_ms_per_{unit}']:.2f} ms (this process: client, gateway, simulator)"
    )
    print(f"  outcomes: {', '.join(f'{k} x{v}' for k, v in sorted(res['codes'].items()))}")
