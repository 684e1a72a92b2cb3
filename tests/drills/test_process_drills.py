"""A gateway process killed with SIGKILL in the middle of concurrent settlements, then started again: every
message gets a final answer on retry (the same msgid), every unknown outcome is reversed, and the three-way
reconciliation balances."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import aiohttp
import orjson

from loadtest.terminal import CALL_SERVICE, SimCard, Terminal
from tests.conftest import Fleet
from tests.drills.test_core_drills import Drill, lanes, reconcile
from tests.e2e.helpers import plain_items, put_faults
from tests.ports import free_port
from tests.procs import Served

GRACE_S = 18.0  # the smallest recovery grace the settings accept with 1 s core timeouts


async def start_gateway(settings: Any, port: int) -> Served:
    """`onecard serve` on the session's PostgreSQL, Redis prefix and core, ready."""
    env = {
        "ONECARD_PG_DSN": settings.pg_dsn, "ONECARD_REDIS_URL": settings.redis_url,
        "ONECARD_REDIS_PREFIX": settings.redis_prefix, "ONECARD_ADMIN_TOKEN": "drill",
        "ONECARD_CORE_TIMEOUT_S": "1", "ONECARD_CORE_READ_TIMEOUT_S": "1",
        "ONECARD_JOURNAL_RECOVERY_GRACE_S": str(GRACE_S), "ONECARD_JOURNAL_RECOVERY_INTERVAL_S": "0.5",
        "ONECARD_CORE_BREAKER_FAILURES": "1000000",
    }  # fmt: skip
    gw = await Served.start(["--dev", "--core-url", settings.core_url], env, port)
    await gw.ready(30)
    return gw


class TestKill:
    async def test_sigkill_mid_load_and_restart(self, fleet: Fleet, world, core_url, settings):
        """SIGKILL while settlements are in flight; restart; retries get final answers; the books balance."""
        port = free_port()
        url = f"http://127.0.0.1:{port}{CALL_SERVICE}"
        gw = await start_gateway(settings, port)
        drill = Drill()
        item = plain_items(world, "A", 1, min_price="5")[0]
        terminals = await lanes(fleet, core_url, drill)
        lost: list[str] = []  # sent, no answer: the process died under them

        async def lane(http: aiohttp.ClientSession, t: Terminal, card: SimCard, infno: str) -> None:
            for _ in range(8):
                b = t.settle(infno, card, [(item["med_list_codg"], "2", item["price"])])
                drill.sent[b.body["msgid"]] = b
                try:
                    async with http.post(url, data=orjson.dumps(b.body)) as r:
                        drill.told[b.body["msgid"]] = orjson.loads(await r.read())
                except aiohttp.ClientError:
                    lost.append(b.body["msgid"])
                    return

        async def kill() -> None:
            await asyncio.sleep(0.6)
            await gw.stop(signal.SIGKILL)

        await put_faults(core_url, {"latency_ms": 150})  # keep settlements in flight when the blow falls
        try:
            async with aiohttp.ClientSession() as http:
                await asyncio.gather(kill(), *(lane(http, *x) for x in terminals))
        finally:
            await put_faults(core_url, {})
        assert lost, "the kill should have caught some requests in flight"
        gw = await start_gateway(settings, port)
        try:
            async with aiohttp.ClientSession() as http:
                for msgid in lost:
                    b = drill.sent[msgid]
                    for _ in range(int(GRACE_S * 4)):  # same msgid until the answer is final
                        async with http.post(url, data=orjson.dumps(b.body)) as r:
                            resp = orjson.loads(await r.read())
                        if resp["err_code"] != "OVERLOADED":
                            break
                        await asyncio.sleep(0.5)
                    drill.told[msgid] = resp
                    assert resp["err_code"] != "OVERLOADED", "a killed request never got a final answer"
            counts = await reconcile(drill, settings, core_url)
            print(f"drill: {len(drill.sent)} settlements, {len(lost)} cut by SIGKILL; told {counts}; balanced")
        finally:
            await gw.stop()
        assert counts.get("OK", 0) > 0
