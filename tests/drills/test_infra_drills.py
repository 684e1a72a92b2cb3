"""Drills on the gateway's own infrastructure under concurrent load: Redis restarts (losing everything, as it
keeps nothing on disk). Each is followed by the same three-way reconciliation as the core drills. (Redis
emptied, Redis and PostgreSQL frozen: test_stall_drills.py.)"""

from __future__ import annotations

import asyncio

import orjson

from loadtest.terminal import CALL_SERVICE, SimCard, Terminal
from tests.conftest import Fleet
from tests.drills.test_core_drills import TERMINALS, Drill, reconcile
from tests.e2e.helpers import core_person, fen, plain_items


class TestRedisRestart:
    async def test_redis_restarts_under_load(self, fleet: Fleet, world, core_url, settings, own_redis, gateway_on):
        """Redis dies and comes back empty mid-load: requests it was needed for are refused -1 (never 500,
        never settled), the lists are rebuilt by themselves, and the books balance."""
        drill = Drill()
        item = plain_items(world, "A", 1, min_price="5")[0]
        lanes: list[tuple[Terminal, SimCard, str]] = []
        for kind in TERMINALS:
            t = await fleet.new_terminal(kind)
            card, _ = fleet.card(insutype="310", min_balance=50_000)
            drill.cards[card.psn_no] = card
            drill.initial[card.psn_no] = fen((await core_person(core_url, card.psn_no))["balance"])
            lanes.append((t, card, "2207" if kind == "hospital" else "2102"))
        statuses: list[int] = []

        async def lane(t: Terminal, card: SimCard, infno: str) -> None:
            for _ in range(10):
                b = t.settle(infno, card, [(item["med_list_codg"], "2", item["price"])])
                drill.sent[b.body["msgid"]] = b
                r = await gateway_on.post(CALL_SERVICE, data=orjson.dumps(b.body))
                statuses.append(r.status)
                drill.told[b.body["msgid"]] = orjson.loads(await r.read())
                await asyncio.sleep(0.02)

        async def restart() -> None:
            await asyncio.sleep(0.15)
            await own_redis.kill()
            await asyncio.sleep(0.3)
            await own_redis.start()

        await asyncio.gather(restart(), *(lane(*x) for x in lanes))
        assert 500 not in statuses
        codes = {resp["err_code"] or "OK" for resp in drill.told.values()}
        assert codes <= {"OK", "OVERLOADED", "CORE_TIMEOUT", "CORE_UNAVAILABLE"}, codes
        assert "OK" in codes
        counts = await reconcile(drill, settings, core_url)
        print(f"drill: {len(drill.sent)} settlements from {len(drill.cards)} terminals; told {counts}; balanced")
        assert counts.get("OK", 0) > 0
        # and the lists are back in Redis: a listed card is refused by this gateway again
        for _ in range(100):
            r = await gateway_on.get("/readyz")
            if r.status == 200:
                break
            await asyncio.sleep(0.1)
        assert r.status == 200, await r.text()
