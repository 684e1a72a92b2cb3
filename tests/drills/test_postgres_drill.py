"""PostgreSQL restarts in the middle of concurrent settlements (a cluster of the drill's own, so the rest of
the suite is untouched): every request is refused -1 or settled, never 500; retries with the same msgid get
final answers; the three-way reconciliation balances."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from loadtest.terminal import CALL_SERVICE, SimCard, Terminal
from tests.conftest import Fleet
from tests.drills.conftest import run
from tests.drills.test_core_drills import Drill, reconcile
from tests.e2e.helpers import core_person, fen, plain_items

GRACE_S = 18.0


class TestPostgresRestart:
    async def test_postgres_restarts_under_load(self, fleet: Fleet, world, core_url, settings, own_pg):
        """The database restarts mid-load: -1 while it is away, final answers on retry, books balanced."""
        version, name, dsn = own_pg.version, own_pg.name, own_pg.dsn
        drill_settings = dataclasses.replace(
            settings, pg_dsn=dsn, redis_prefix=f"{settings.redis_prefix}pgdrill:", journal_recovery_grace_s=GRACE_S,
            journal_recovery_interval_s=0.5,
        )  # fmt: skip
        async with TestClient(TestServer(create_app(drill_settings))) as gw:
            drill = Drill()
            item = plain_items(world, "A", 1, min_price="5")[0]
            lanes: list[tuple[Terminal, SimCard, str]] = []
            insts = [i for i in world["institutions"] if i["kind"] == "hospital"][:2]
            insts += [i for i in world["institutions"] if i["kind"] == "pharmacy"][:2]
            for inst in insts:
                psam = next(p for p in inst["psams"] if p["status"] == "ACTIVE")
                t = Terminal(inst["fixmedins_code"], inst["fixmedins_name"], psam["psam_no"], tseq=1_000_000)
                r = await gw.post(CALL_SERVICE, data=orjson.dumps(t.sign_in().body))
                t.sign_no = (await r.json())["output"]["signinoutb"]["sign_no"]
                card, _ = fleet.card(insutype="310", min_balance=50_000)
                drill.cards[card.psn_no] = card
                drill.initial[card.psn_no] = fen((await core_person(core_url, card.psn_no))["balance"])
                lanes.append((t, card, "2207" if inst["kind"] == "hospital" else "2102"))
            statuses: list[int] = []

            async def send(body: dict[str, Any]) -> dict[str, Any]:
                r = await gw.post(CALL_SERVICE, data=orjson.dumps(body))
                statuses.append(r.status)
                resp: dict[str, Any] = orjson.loads(await r.read())
                return resp

            async def lane(t: Terminal, card: SimCard, infno: str) -> None:
                # As a real terminal does: a refusal for lack of the database is retried with the same msgid
                # (same card ATC) until the answer is final, before the card is used again.
                for _ in range(10):
                    b = t.settle(infno, card, [(item["med_list_codg"], "2", item["price"])])
                    drill.sent[b.body["msgid"]] = b
                    resp = await send(b.body)
                    for _ in range(int(GRACE_S * 5)):
                        if resp["err_code"] != "OVERLOADED":
                            break
                        await asyncio.sleep(0.2)
                        resp = await send(b.body)
                    assert resp["err_code"] != "OVERLOADED", "no final answer after the database came back"
                    drill.told[b.body["msgid"]] = resp
                    await asyncio.sleep(0.05)

            async def restart() -> None:
                await asyncio.sleep(0.3)
                await asyncio.to_thread(
                    run, "pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "fast"
                )

            await asyncio.gather(restart(), *(lane(*x) for x in lanes))
            assert 500 not in statuses
            counts = await reconcile(drill, drill_settings, core_url)
            print(f"drill: {len(drill.sent)} settlements from {len(lanes)} terminals; told {counts}; balanced")
            assert counts.get("OK", 0) > 0
