"""SPEC §5.1 replay protection, held in PostgreSQL: a captured request sent again under a fresh msgid is REPLAY
for every card-bearing and card-less infno, before AND after this gateway's Redis lost everything (its keys
wiped, as a restart without persistence leaves it); an atc not above the card's last is REPLAY; a replay posts
nothing and is journaled as its refusal; concurrent requests with one tseq, or one card atc, resolve to one
acceptance; a stale request takes no tseq."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from loadtest.terminal import SHANGHAI, Built, SimCard, Terminal, yuan
from tests.conftest import REDIS_URL, Fleet
from tests.e2e.helpers import (
    assert_declined,
    assert_ok,
    core_settlements,
    journal_rows,
    plain_items,
    settlement_rows,
    shanghai_today,
)


async def wipe_redis(prefix: str) -> int:
    """Everything this gateway keeps in Redis is gone, as after a restart without persistence (once the
    publisher has rebuilt the lists of an earlier wipe, so there is something to lose)."""
    r = Redis.from_url(REDIS_URL)
    try:
        for _ in range(100):
            if await r.exists(f"{prefix}bl:meta"):
                break
            await asyncio.sleep(0.05)
        keys = [k async for k in r.scan_iter(match=prefix + "*", count=1000)]
        for i in range(0, len(keys), 500):
            await r.delete(*keys[i : i + 500])
        return len(keys)
    finally:
        await r.aclose()


def again(t: Terminal, built: Built) -> bytes:
    """The very same request (cryptograms, tseq, atc) under a msgid never used: a replay."""
    body = dict(built.body)
    body["msgid"] = t.next_msgid(datetime.now(SHANGHAI))
    return orjson.dumps(body)


async def send(fleet: Fleet, raw: bytes) -> tuple[int, dict[str, Any]]:
    resp = await fleet.client.post("/fsi/api/rsfComIfsService/callService", data=raw)
    assert resp.status != 500, await resp.text()
    return resp.status, orjson.loads(await resp.read())


def items(world: dict[str, Any]) -> list[tuple[str, str, str]]:
    a = plain_items(world, "A", 1, min_price="2")[0]
    return [(a["med_list_codg"], "1", a["price"])]


def stmt(t: Terminal) -> Built:
    day = shanghai_today() - timedelta(days=500)
    data = {
        "setl_optins": "330203", "stmt_begndate": day.isoformat(), "stmt_enddate": day.isoformat(),
        "medfee_sumamt": yuan(0), "fund_pay_sumamt": yuan(0), "acct_pay": yuan(0), "fixmedins_setl_cnt": 0,
    }  # fmt: skip
    return t.build("3201", {"data": data})


Original = Callable[[Fleet, Terminal, SimCard, dict[str, Any]], Awaitable[Built]]


async def _settled(fleet: Fleet, t: Terminal, card: SimCard, world: dict[str, Any], infno: str) -> dict[str, Any]:
    status, resp, _ = await fleet.call(t.settle(infno, card, items(world)))
    assert_ok(status, resp)
    info: dict[str, Any] = resp["output"]["setlinfo"]
    return info


async def _cancel(fleet: Fleet, t: Terminal, card: SimCard, world: dict[str, Any], infno: str) -> Built:
    settle = "2207" if infno == "2208" else "2102"
    info = await _settled(fleet, t, card, world, settle)
    return t.cancel(infno, info["setl_id"], card.psn_no)


async def _reverse(fleet: Fleet, t: Terminal, card: SimCard, world: dict[str, Any]) -> Built:
    b = t.settle("2207", card, items(world))
    assert_ok(*(await fleet.call(b))[:2])
    return t.reverse(card.psn_no, b.body["msgid"], "2207")


ORIGINALS: dict[str, Original] = {
    "1101": lambda fleet, t, card, world: _ready(t.person_info(card)),
    "2206": lambda fleet, t, card, world: _ready(t.settle("2206", card, items(world))),
    "2207": lambda fleet, t, card, world: _ready(t.settle("2207", card, items(world))),
    "2101": lambda fleet, t, card, world: _ready(t.settle("2101", card, items(world))),
    "2102": lambda fleet, t, card, world: _ready(t.settle("2102", card, items(world))),
    "2208": lambda fleet, t, card, world: _cancel(fleet, t, card, world, "2208"),
    "2103": lambda fleet, t, card, world: _cancel(fleet, t, card, world, "2103"),
    "2601": _reverse,
    "9001": lambda fleet, t, card, world: _ready(t.sign_in()),
    "3201": lambda fleet, t, card, world: _ready(stmt(t)),
}


async def _ready(b: Built) -> Built:
    return b


class TestReplayAfterRedisLoss:
    @pytest.mark.parametrize("infno", list(ORIGINALS))
    async def test_replay_under_a_fresh_msgid(self, fleet: Fleet, world, core_url, settings, infno):
        """Answered once; the same request under new msgids is REPLAY before and after Redis lost everything;
        the replays moved no money and are journaled as REPLAY with MAC2."""
        kind = "pharmacy" if infno in ("2101", "2102", "2103") else "hospital"
        t = await fleet.new_terminal(kind)
        card, _ = fleet.card(insutype="310", min_balance=20_000)
        original = await ORIGINALS[infno](fleet, t, card, world)
        status, resp, _ = await fleet.call(original)
        assert_ok(status, resp)
        replays = []
        for wipe in (False, True):
            if wipe:
                assert await wipe_redis(settings.redis_prefix) > 0
            raw = again(t, original)
            status, resp = await send(fleet, raw)
            assert_declined(status, resp, "REPLAY")
            assert f"tseq {original.body['dev_safe_info']['tseq']} of PSAM" in resp["err_msg"]  # checked first
            assert original.mac2_ok(resp)  # the very cryptograms: MAC1 verified, so MAC2 comes back
            replays.append(orjson.loads(raw)["msgid"])
        for msgid in replays:
            (row,) = await journal_rows(settings.pg_dsn, t.fixmedins_code, msgid)
            assert (row["state"], row["err_code"]) == ("DONE", "REPLAY")
            assert await settlement_rows(settings.pg_dsn, t.fixmedins_code, msgid) == []
            assert await core_settlements(core_url, msgid) == []

    async def test_a_card_atc_not_above_the_last_is_replay_after_redis_loss(self, fleet: Fleet, world, settings):
        """A fresh tseq but the card's atc equal to, or below, the last accepted: REPLAY naming the atc, Redis
        wiped in between; the next atc is accepted."""
        t = await fleet.new_terminal("hospital")
        card, _ = fleet.card(insutype="310", min_balance=20_000)
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_ok(status, resp)
        await wipe_redis(settings.redis_prefix)
        for back in (1, 2):  # equal, then lower
            card.atc -= back
            b = t.person_info(card)
            status, resp, _ = await fleet.call(b)
            assert_declined(status, resp, "REPLAY")
            assert f"atc {b.body['dev_safe_info']['atc']} is not above" in resp["err_msg"]
            card.atc += back - 1
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_ok(status, resp)

    async def test_a_used_lower_tseq_is_replay_and_an_unused_one_is_not(self, fleet: Fleet):
        """SPEC §5.1 makes a (psam_no, tseq) pair single-use, not the tseq a high-water mark: one PSAM's
        requests may arrive out of order (several windows share it), so a lower tseq never used is accepted,
        and one used before is REPLAY."""
        t = await fleet.new_terminal("hospital")
        first, second = stmt(t), stmt(t)  # tseq n+1, n+2
        assert_ok(*(await fleet.call(second))[:2])
        assert_ok(*(await fleet.call(first))[:2])  # lower, never used: accepted
        t.tseq = first.body["dev_safe_info"]["tseq"] - 1
        status, resp, _ = await fleet.call(stmt(t))  # lower and used
        assert_declined(status, resp, "REPLAY")

    async def test_a_stale_request_takes_no_tseq(self, fleet: Fleet):
        """STALE_REQUEST does not consume its tseq: the terminal's fresh request with it is accepted."""
        t = await fleet.new_terminal("hospital")
        stale = t.build("3201", stmt(t).body["input"], now=datetime.now(SHANGHAI) - timedelta(seconds=900))
        status, resp, _ = await fleet.call(stale)
        assert_declined(status, resp, "STALE_REQUEST")
        t.tseq = stale.body["dev_safe_info"]["tseq"] - 1
        fresh = stmt(t)
        assert fresh.body["dev_safe_info"]["tseq"] == stale.body["dev_safe_info"]["tseq"]
        assert_ok(*(await fleet.call(fresh))[:2])


class TestConcurrentReplays:
    async def test_one_tseq_under_many_msgids_at_once(self, fleet: Fleet, world, core_url, settings):
        """Ten msgids carrying one settlement's cryptograms (one tseq, one atc), sent at once, Redis wiped:
        exactly one settles, the others are REPLAY, the core has one posting."""
        await wipe_redis(settings.redis_prefix)
        t = await fleet.new_terminal("hospital")
        card, _ = fleet.card(insutype="310", min_balance=20_000)
        b = t.settle("2207", card, items(world))
        raws = [orjson.dumps(b.body)] + [again(t, b) for _ in range(9)]
        got = await asyncio.gather(*(send(fleet, raw) for raw in raws))
        codes = sorted(resp["err_code"] or "OK" for _, resp in got)
        assert codes == ["OK"] + ["REPLAY"] * 9, codes
        msgids = [orjson.loads(raw)["msgid"] for raw in raws]
        posted = [m for m in msgids if await core_settlements(core_url, m)]
        assert len(posted) == 1
        rows = [r for m in msgids for r in await settlement_rows(settings.pg_dsn, t.fixmedins_code, m)]
        assert len(rows) == 1

    async def test_one_card_atc_from_two_terminals_at_once(self, fleet: Fleet, world, settings):
        """Two PSAMs (two tseqs) present one card with the same atc at the same moment: one acceptance."""
        t1, t2 = await fleet.new_terminal("hospital"), await fleet.new_terminal("hospital")
        card, _ = fleet.card(insutype="310", min_balance=20_000)
        atc = card.atc
        b1 = t1.person_info(card)
        card.atc = atc
        b2 = t2.person_info(card)
        assert b1.body["dev_safe_info"]["atc"] == b2.body["dev_safe_info"]["atc"]
        got = await asyncio.gather(*(send(fleet, orjson.dumps(b.body)) for b in (b1, b2)))
        assert sorted(resp["err_code"] or "OK" for _, resp in got) == ["OK", "REPLAY"]
