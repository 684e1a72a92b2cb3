"""The blacklist at run time: a second gateway process follows changes; Redis loses everything and is rebuilt."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from gateway.keys import LOCAL_BLACKLIST
from loadtest.terminal import CALL_SERVICE
from tests.conftest import REDIS_URL, Fleet
from tests.e2e.helpers import ADMIN, pick_card
from tests.ports import free_port

_seq = itertools.count(int(time.time() * 1000) + 9_000_000)


def metric(text: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


@pytest.fixture(scope="module")
async def second_gateway(settings) -> AsyncIterator[str]:
    """`onecard serve` as a separate process on the same PostgreSQL, Redis prefix and core."""
    port = free_port()
    env = {
        **os.environ, "ONECARD_PG_DSN": settings.pg_dsn, "ONECARD_REDIS_URL": settings.redis_url,
        "ONECARD_REDIS_PREFIX": settings.redis_prefix, "ONECARD_ADMIN_TOKEN": "other-token",
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "onecard", "serve", "--dev", "--port", str(port), "--core-url", settings.core_url,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(url + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the second gateway did not become ready")
        yield url
    finally:
        proc.terminate()
        await proc.wait()


class TestSecondProcess:
    async def test_change_reaches_the_other_process(self, fleet: Fleet, second_gateway: str):
        """An event accepted by one process is applied by the other's own cache and refused there."""
        card, _ = fleet.card()
        t = await fleet.terminal("hospital", 1)
        async with aiohttp.ClientSession() as http:
            async with http.get(second_gateway + "/metrics") as r:
                before = metric(await r.text(), "onecard_blacklist_version")
            assert before is not None
            assert before >= 0
            event = {"source": "330200", "source_seq": next(_seq), "event": "locked", "fraud": True,
                     "card_sn": card.card_sn}  # fmt: skip
            r1 = await fleet.client.post("/admin/blacklist/events", data=orjson.dumps(event), headers=ADMIN)
            version = (await r1.json())["results"][0]["version"]
            assert version > before
            t0 = time.monotonic()
            seen = None
            while time.monotonic() - t0 < 10:
                async with http.get(second_gateway + "/metrics") as r:
                    seen = metric(await r.text(), "onecard_blacklist_version")
                if seen is not None and seen >= version:
                    break
                await asyncio.sleep(0.01)
            assert seen is not None
            assert seen >= version
            b = t.person_info(card)
            async with http.post(second_gateway + CALL_SERVICE, data=orjson.dumps(b.body)) as r:
                resp: dict[str, Any] = orjson.loads(await r.read())
            assert resp["err_code"] == "CARD_BLACKLISTED"
            assert resp["output"] == {"reason": "07"}

    async def test_clean_card_is_cleared_without_redis(self, fleet: Fleet, second_gateway: str):
        """The other process clears an ordinary card from its own cache (no blacklist lookup in Redis)."""
        card, _ = fleet.card()
        t = await fleet.terminal("hospital", 1)
        async with aiohttp.ClientSession() as http:
            async with http.get(second_gateway + "/metrics") as r:
                local0 = metric(await r.text(), "onecard_blacklist_lookups_total", '{path="local"}') or 0.0
            async with http.post(second_gateway + CALL_SERVICE, data=orjson.dumps(t.person_info(card).body)) as r:
                assert (orjson.loads(await r.read()))["infcode"] == 0
            async with http.get(second_gateway + "/metrics") as r:
                local1 = metric(await r.text(), "onecard_blacklist_lookups_total", '{path="local"}')
        assert local1 == local0 + 1


class TestRedisLoss:
    async def test_redis_wiped_and_rebuilt_without_a_gap(self, fleet: Fleet, settings):
        """Every Redis key of the gateway vanishes (a restart): listed cards are never accepted, and the
        lists come back from PostgreSQL by themselves."""
        t = await fleet.terminal("hospital", 1)
        listed, _ = pick_card(fleet, lambda c, p: c["status"] in ("02", "04"))
        local = fleet.client.app[LOCAL_BLACKLIST]
        r = Redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in r.scan_iter(match=settings.redis_prefix + "*", count=1000)]
            await r.delete(*keys)
            local.synced_at -= 10  # and this process cannot vouch for its cache either: Redis must be asked
            outcomes = []
            for _ in range(40):
                _, resp, _ = await fleet.call(t.person_info(listed))
                outcomes.append(resp["err_code"])
                if resp["err_code"] == "CARD_BLACKLISTED" and await r.exists(settings.redis_prefix + "bl:meta"):
                    break
                await asyncio.sleep(0.05)
        finally:
            await r.aclose()
        assert None not in outcomes  # never accepted
        assert set(outcomes) <= {"OVERLOADED", "CARD_BLACKLISTED"}
        assert outcomes[-1] == "CARD_BLACKLISTED"
        resp = await fleet.client.get("/readyz")
        for _ in range(50):
            if resp.status == 200:
                break
            await asyncio.sleep(0.1)
            resp = await fleet.client.get("/readyz")
        assert resp.status == 200
