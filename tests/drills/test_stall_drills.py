"""Drills for dependency loss (issue 9), each under concurrent load and each followed by the three-way
reconciliation of the core drills (what terminals were told, the journal, the core):

- Redis emptied mid-load (FLUSHALL, then a restart without persistence), then every request of the run sent
  again under fresh msgids: every one REPLAY, nothing settled twice. Replay state lives in PostgreSQL.
- Redis frozen (SIGSTOP) for longer than its deadline: ordinary cards never needed it and settle on; a listed
  card is refused from PostgreSQL's lists after the Redis deadline; /readyz names Redis; it comes back.
- PostgreSQL frozen (the whole cluster, SIGSTOP): every terminal hears -1 OVERLOADED within the deadline, not
  when the stall ends; retries with the same msgid get final answers once it is back; books balance.
- The 50-copies and the concurrent-tseq races with Redis empty.

Each prints the answer times terminals saw during the stall (`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from gateway.keys import METRICS
from loadtest.terminal import CALL_SERVICE, SHANGHAI, Built, SimCard, Terminal
from tests.conftest import Fleet
from tests.drills.conftest import PgCluster, RedisServer, served, spread
from tests.drills.test_core_drills import Drill, lanes, reconcile
from tests.e2e.helpers import core_person, core_settlements, fen, plain_items, settlement_rows

GRACE_S = 18.0  # journal recovery grace of the PostgreSQL drill (must exceed settings.longest_claim_s)


@dataclass
class Timed:
    """Answer times of the requests a drill sent, by when they were sent."""

    samples: list[tuple[float, float, str]] = field(default_factory=list)  # (sent at, seconds, err_code)

    def during(self, start: float, end: float) -> list[float]:
        """Answer times of the requests in flight at some moment of [start, end]."""
        return [s for at, s, _ in self.samples if at <= end and at + s >= start]

    def codes_during(self, start: float, end: float) -> dict[str, int]:
        out: dict[str, int] = {}
        for at, s, code in self.samples:
            if at <= end and at + s >= start:
                out[code] = out.get(code, 0) + 1
        return out


async def post(client: TestClient[Any, Any], body: bytes, timed: Timed) -> tuple[int, dict[str, Any]]:
    t0 = time.monotonic()
    r = await client.post(CALL_SERVICE, data=body)
    raw = await r.read()
    resp: dict[str, Any] = orjson.loads(raw)
    timed.samples.append((t0, time.monotonic() - t0, resp["err_code"] or "OK"))
    return r.status, resp


def item(world: dict[str, Any]) -> tuple[str, str, str]:
    a = plain_items(world, "A", 1, min_price="5")[0]
    return (a["med_list_codg"], "2", a["price"])


def listed_card(fleet: Fleet, status: str) -> SimCard:
    """A world card on the list, with the session's running ATC (shared with any other test that uses it)."""
    c = next(c for c in fleet.world["cards"] if c["status"] == status)
    return fleet.cards.setdefault(c["card_sn"], SimCard.from_world(c))


def replay_of(t: Terminal, built: Built) -> bytes:
    body = dict(built.body)
    body["msgid"] = t.next_msgid(datetime.now(SHANGHAI))
    return orjson.dumps(body)


class TestRedisEmptied:
    async def test_redis_emptied_under_load_then_every_request_replayed(
        self, fleet: Fleet, world, core_url, settings, own_redis: RedisServer
    ):
        """FLUSHALL mid-load and a restart without persistence: ordinary cards settle on (the process cache
        clears them, its currency proved by PostgreSQL), a listed card is refused from the lists of record;
        afterwards every request of the run, sent again under a fresh msgid, is REPLAY and nothing settles
        twice; the books balance."""
        drill, timed = Drill(), Timed()
        s = dataclasses.replace(settings, redis_url=own_redis.url, world_file=None, redis_timeout_s=0.5)
        async with served(s) as gw:
            terminals = await lanes(fleet, core_url, drill)
            listed = listed_card(fleet, "02")
            watcher = await fleet.new_terminal("hospital")
            sent: list[tuple[Terminal, Built]] = []

            async def lane(t: Terminal, card: SimCard, infno: str) -> None:
                for _ in range(10):
                    b = t.settle(infno, card, [item(world)])
                    drill.sent[b.body["msgid"]] = b
                    sent.append((t, b))
                    status, drill.told[b.body["msgid"]] = await post(gw, orjson.dumps(b.body), timed)
                    assert status != 500
                    await asyncio.sleep(0.02)

            refusals: list[str] = []

            async def listed_lane() -> None:
                for _ in range(10):
                    b = watcher.person_info(listed)
                    sent.append((watcher, b))
                    _, resp = await post(gw, orjson.dumps(b.body), timed)
                    refusals.append(resp["err_code"])
                    await asyncio.sleep(0.03)

            async def lose_everything() -> None:
                await asyncio.sleep(0.15)
                await own_redis.flushall()
                await asyncio.sleep(0.2)
                await own_redis.kill()
                await asyncio.sleep(0.2)
                await own_redis.start()

            await asyncio.gather(lose_everything(), listed_lane(), *(lane(*x) for x in terminals))
            codes = {resp["err_code"] or "OK" for resp in drill.told.values()}
            assert codes == {"OK"}, codes  # no settlement needed Redis
            assert set(refusals) == {"CARD_BLACKLISTED"}, refusals  # never let through, never OVERLOADED
            # Every request of the run again, under fresh msgids, on the Redis that lost everything:
            replays = await asyncio.gather(*(post(gw, replay_of(t, b), Timed()) for t, b in sent))
            assert {resp["err_code"] for _, resp in replays} == {"REPLAY"}
        counts = await reconcile(drill, settings, core_url)
        for msgid in drill.sent:
            assert len(await core_settlements(core_url, msgid)) <= 1
        print(
            f"drill redis-emptied: {len(drill.sent)} settlements told {counts}, {len(refusals)} listed-card"
            f" refusals, {len(replays)} replays all REPLAY; answers {spread([s for _, s, _ in timed.samples])}"
        )


class TestRedisFrozen:
    async def test_redis_frozen_longer_than_its_deadline(
        self, fleet: Fleet, world, core_url, settings, own_redis: RedisServer
    ):
        """SIGSTOP for 2 s, the Redis deadline 0.3 s: settlements go on untouched; a listed card is refused
        CARD_BLACKLISTED from PostgreSQL after at most about the deadline; /readyz says Redis is down, within
        its deadline; after SIGCONT it is ready again by itself. Books balance."""
        drill, timed, listed_timed = Drill(), Timed(), Timed()
        s = dataclasses.replace(settings, redis_url=own_redis.url, world_file=None, redis_timeout_s=0.3)
        async with served(s) as gw:
            terminals = await lanes(fleet, core_url, drill)
            listed = listed_card(fleet, "07")
            watcher = await fleet.new_terminal("hospital")
            window: list[float] = []
            ready_during: list[tuple[int, float, dict[str, Any]]] = []

            async def lane(t: Terminal, card: SimCard, infno: str) -> None:
                for _ in range(14):
                    b = t.settle(infno, card, [item(world)])
                    drill.sent[b.body["msgid"]] = b
                    status, drill.told[b.body["msgid"]] = await post(gw, orjson.dumps(b.body), timed)
                    assert status != 500
                    await asyncio.sleep(0.1)

            refusals: list[str] = []

            async def listed_lane() -> None:
                for _ in range(14):
                    _, resp = await post(gw, orjson.dumps(watcher.person_info(listed).body), listed_timed)
                    refusals.append(resp["err_code"])
                    await asyncio.sleep(0.1)

            async def stall() -> None:
                await asyncio.sleep(0.3)
                own_redis.freeze()
                window.append(time.monotonic())
                await asyncio.sleep(0.5)
                t0 = time.monotonic()
                r = await gw.get("/readyz")
                ready_during.append((r.status, time.monotonic() - t0, await r.json()))
                await asyncio.sleep(1.5)
                window.append(time.monotonic())
                own_redis.thaw()

            await asyncio.gather(stall(), listed_lane(), *(lane(*x) for x in terminals))
            codes = {resp["err_code"] or "OK" for resp in drill.told.values()}
            assert codes == {"OK"}, codes
            assert set(refusals) == {"CARD_BLACKLISTED"}, refusals
            status, took, body = ready_during[0]
            assert status == 503
            assert body["checks"]["redis"].startswith("down"), body
            assert body["checks"]["postgres"] == "ok"
            assert took < 2.0  # the Redis deadline, not the stall
            for _ in range(100):  # back by itself
                r = await gw.get("/readyz")
                if r.status == 200:
                    break
                await asyncio.sleep(0.1)
            assert r.status == 200, await r.text()
            assert max(listed_timed.during(*window)) < 1.5  # deadline 0.3 s, then PostgreSQL
        counts = await reconcile(drill, settings, core_url)
        print(
            f"drill redis-frozen 2 s (deadline 0.3 s): {len(drill.sent)} settlements told {counts};"
            f" settlements sent during the stall {spread(timed.during(*window))};"
            f" listed card during the stall {spread(listed_timed.during(*window))}"
        )


class TestPostgresFrozen:
    async def test_postgres_frozen_under_load(self, fleet: Fleet, world, core_url, settings, own_pg: PgCluster, faults):
        """The whole cluster SIGSTOPped for 4 s, the PostgreSQL deadline 0.5 s, the core slowed to 250 ms a call
        so that the stall lands while settlements are at the core: every terminal's first answer comes within
        the deadline (-1 OVERLOADED, never 500, never a hang); a settlement the core posted whose journal
        completion the stall swallowed is reversed (or, had the completion committed after all, stands: the
        retry says which); /readyz names PostgreSQL; once it is back, retries with the same msgid get final
        answers; the three-way reconciliation balances."""
        await faults({"latency_ms": 250})
        s = dataclasses.replace(
            settings, pg_dsn=own_pg.dsn, redis_prefix=f"{settings.redis_prefix}pgfreeze:", pg_timeout_s=0.5,
            journal_recovery_grace_s=GRACE_S, journal_recovery_interval_s=0.5,
        )  # fmt: skip
        drill, first = Drill(), Timed()
        window: list[float] = []
        ready_during: list[tuple[int, float, dict[str, Any]]] = []
        async with served(s) as gw:
            lanes: list[tuple[Terminal, SimCard, str]] = []
            insts = [i for i in world["institutions"] if i["kind"] == "hospital"][:2]
            insts += [i for i in world["institutions"] if i["kind"] == "pharmacy"][:2]
            for inst in insts:
                psam = next(p for p in inst["psams"] if p["status"] == "ACTIVE")
                t = Terminal(inst["fixmedins_code"], inst["fixmedins_name"], psam["psam_no"], tseq=2_000_000)
                _, resp = await post(gw, orjson.dumps(t.sign_in().body), Timed())
                t.sign_no = resp["output"]["signinoutb"]["sign_no"]
                card, _ = fleet.card(insutype="310", min_balance=50_000)
                drill.cards[card.psn_no] = card
                drill.initial[card.psn_no] = fen((await core_person(core_url, card.psn_no))["balance"])
                lanes.append((t, card, "2207" if inst["kind"] == "hospital" else "2102"))
            statuses: list[int] = []
            overloaded_first = 0

            async def lane(t: Terminal, card: SimCard, infno: str) -> None:
                nonlocal overloaded_first
                for _ in range(12):
                    b = t.settle(infno, card, [item(world)])
                    drill.sent[b.body["msgid"]] = b
                    status, resp = await post(gw, orjson.dumps(b.body), first)
                    statuses.append(status)
                    overloaded_first += resp["err_code"] == "OVERLOADED"
                    # As a real terminal does: -1 OVERLOADED is retried with the same msgid (same cryptograms)
                    # until the answer is final, before the card is used again.
                    for _ in range(int(GRACE_S * 5)):
                        if resp["err_code"] != "OVERLOADED":
                            break
                        await asyncio.sleep(0.2)
                        status, resp = await post(gw, orjson.dumps(b.body), Timed())
                        statuses.append(status)
                    assert resp["err_code"] != "OVERLOADED", "no final answer after the database came back"
                    drill.told[b.body["msgid"]] = resp
                    await asyncio.sleep(0.05)

            async def stall() -> None:
                await asyncio.sleep(0.4)
                pids = own_pg.freeze()
                window.append(time.monotonic())
                try:
                    await asyncio.sleep(1.0)
                    t0 = time.monotonic()
                    r = await gw.get("/readyz")
                    ready_during.append((r.status, time.monotonic() - t0, await r.json()))
                    await asyncio.sleep(3.0 - (time.monotonic() - t0))
                finally:
                    window.append(time.monotonic())
                    own_pg.thaw(pids)

            await asyncio.gather(stall(), *(lane(*x) for x in lanes))
            assert 500 not in statuses
            during = first.during(window[0], window[1])
            assert during, "nothing was in flight during the stall"
            assert max(during) < 3.0, spread(during)  # the 0.5 s deadline (and a queued retry), not the 4 s stall
            status, took, body = ready_during[0]
            assert status == 503
            assert body["checks"]["postgres"].startswith("down"), body
            assert took < 2.0
            await faults({})
            counts = await reconcile(drill, s, core_url)  # while this gateway's reversal worker runs
            assert counts.get("OK", 0) > 0, counts
            abandoned = gw.app[METRICS].registry.get_sample_value
            outcomes = {
                o: abandoned("onecard_journal_abandoned_total", {"outcome": o}) or 0
                for o in ("recovered", "answered", "settled")
            }
            assert outcomes["recovered"] + outcomes["settled"] > 0, outcomes  # the stall caught money in flight
        print(
            f"drill postgres-frozen 4 s (deadline 0.5 s): {len(drill.sent)} settlements, final answers {counts};"
            f" first answers during the stall {spread(during)}, codes {first.codes_during(*window)};"
            f" {overloaded_first} first answers OVERLOADED; abandoned claims {outcomes}"
        )


class TestRacesWithRedisEmpty:
    async def test_fifty_copies_and_one_tseq_under_many_msgids(
        self, fleet: Fleet, world, core_url, settings, own_redis: RedisServer
    ):
        """Redis empty (FLUSHALL just before): 50 concurrent copies of one 2207 settle once with 50 identical
        answers; ten msgids carrying one tseq at once are one acceptance and nine REPLAY."""
        s = dataclasses.replace(settings, redis_url=own_redis.url, world_file=None)
        async with served(s) as gw:
            await own_redis.flushall()
            t = await fleet.new_terminal("hospital")
            card, _ = fleet.card(insutype="310", min_balance=20_000)
            b = t.settle("2207", card, [item(world)])
            raw = orjson.dumps(b.body)

            async def body_of(data: bytes) -> tuple[int, bytes]:
                r = await gw.post(CALL_SERVICE, data=data)
                return r.status, await r.read()

            answers = await asyncio.gather(*(body_of(raw) for _ in range(50)))
            assert {st for st, _ in answers} == {200}
            assert len({body for _, body in answers}) == 1
            assert orjson.loads(answers[0][1])["infcode"] == 0
            assert len(await core_settlements(core_url, b.body["msgid"])) == 1
            assert len(await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])) == 1

            await own_redis.flushall()
            one = t.settle("2207", card, [item(world)])
            raws = [orjson.dumps(one.body)] + [replay_of(t, one) for _ in range(9)]
            got = await asyncio.gather(*(body_of(x) for x in raws))
            codes = sorted(orjson.loads(body)["err_code"] or "OK" for _, body in got)
            assert codes == ["OK"] + ["REPLAY"] * 9, codes
            msgids = [orjson.loads(x)["msgid"] for x in raws]
            assert sum([len(await core_settlements(core_url, m)) for m in msgids]) == 1
