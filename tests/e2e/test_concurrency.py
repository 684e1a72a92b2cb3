"""Concurrency end to end: duplicate requests resolve to one execution (SPEC §5.2) and concurrent
settlements of one person never overdraw the personal account."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import aiohttp
import orjson

from tests.conftest import Fleet
from tests.e2e.helpers import (
    assert_identities,
    c_bill,
    core_ledger,
    core_person,
    core_settlements,
    fen,
    journal_rows,
    line,
    plain_items,
    policy_book,
    post_raw,
    settlement_rows,
    shanghai_today,
)


class TestDuplicates:
    async def test_fifty_copies_one_settlement(self, fleet: Fleet, world, core_url, settings):
        """50 concurrent copies of one 2207: one settlement at the core and in PG, 50 identical answers."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        before = await core_person(core_url, card.psn_no)
        (a,) = plain_items(world, "A", 1)
        b = t.settle("2207", card, [line(a, 3)])
        raw = orjson.dumps(b.body)
        answers = await asyncio.gather(*(post_raw(fleet, raw) for _ in range(50)))
        statuses = {s for s, _ in answers}
        bodies = {body for _, body in answers}
        assert statuses == {200}, statuses
        assert len(bodies) == 1, [orjson.loads(x)["err_code"] for x in bodies]
        resp = orjson.loads(bodies.pop())
        assert resp["infcode"] == 0, resp
        assert b.mac2_ok(resp)
        info = resp["output"]["setlinfo"]
        assert_identities(info)
        posted = await core_settlements(core_url, b.body["msgid"])
        assert len(posted) == 1
        assert posted[0]["setl_id"] == info["setl_id"]
        assert len(await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])) == 1
        assert len(await journal_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])) == 1
        after = await core_person(core_url, card.psn_no)
        assert fen(after["balance"]) == fen(before["balance"]) - fen(info["acct_pay"])
        assert fen(after["fund_paid_ytd"]) == fen(before["fund_paid_ytd"]) + fen(info["fund_pay_sumamt"])

    async def test_duplicate_cancels_one_refund(self, fleet: Fleet, world, core_url, settings):
        """10 concurrent copies of one 2208 refund once and all get the same bytes."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        before = await core_person(core_url, card.psn_no)
        s = t.settle("2207", card, c_bill(world, 5000))
        _, resp, _ = await fleet.call(s)
        assert resp["infcode"] == 0, resp
        c = t.cancel("2208", resp["output"]["setlinfo"]["setl_id"], card.psn_no)
        raw = orjson.dumps(c.body)
        answers = await asyncio.gather(*(post_raw(fleet, raw) for _ in range(10)))
        assert {st for st, _ in answers} == {200}
        assert len({body for _, body in answers}) == 1
        assert orjson.loads(answers[0][1])["infcode"] == 0
        assert fen((await core_person(core_url, card.psn_no))["balance"]) == fen(before["balance"])
        ledger = await core_ledger(core_url)
        assert [x["msgid"] for x in ledger["cancellations"]].count(c.body["msgid"]) == 1


class TestSamePerson:
    async def test_two_institutions_one_person(self, fleet: Fleet, world, core_url, settings):
        """Two PSAMs of two institutions settle for one person at once: balance never negative, exact sum."""
        t1 = await fleet.terminal("hospital", 0)
        t2 = await fleet.terminal("hospital", 1)
        assert t1.fixmedins_code != t2.fixmedins_code
        assert t1.psam_no != t2.psam_no
        card, _ = fleet.card(insutype="310", min_balance=100000)
        initial = fen((await core_person(core_url, card.psn_no))["balance"])
        # class-C bills (no fund share) of about 60 % of the starting balance: both cannot be paid in full
        items = c_bill(world, initial * 6 // 10)
        paid = 0
        ok_msgids = []
        for _ in range(3):
            b1 = t1.settle("2207", card, items)
            b2 = t2.settle("2207", card, items)
            answers = await asyncio.gather(fleet.call(b1), fleet.call(b2))
            successes = 0
            for b, (status, resp, _) in zip((b1, b2), answers, strict=True):
                assert status == 200, resp
                if resp["infcode"] == 0:
                    successes += 1
                    info = resp["output"]["setlinfo"]
                    assert_identities(info)
                    assert b.mac2_ok(resp)
                    assert fen(info["balc"]) >= 0
                    paid += fen(info["acct_pay"])
                    ok_msgids.append((b.body["fixmedins_code"], b.body["msgid"], fen(info["acct_pay"])))
                else:
                    # the only acceptable refusal: the card's later ATC arrived first (SPEC §5.1)
                    assert resp["err_code"] == "REPLAY", resp
                    assert await core_settlements(core_url, b.body["msgid"]) == []
            assert successes >= 1
            now = fen((await core_person(core_url, card.psn_no))["balance"])
            assert now >= 0
            assert now == initial - paid
        ledger = await core_ledger(core_url)
        mine = [s for s in ledger["settlements"] if s["psn_no"] == card.psn_no and s["state"] == "POSTED"]
        assert sum(fen(s["acct_pay"]) for s in mine) == paid
        for code, msgid, acct in ok_msgids:
            (row,) = await settlement_rows(settings.pg_dsn, code, msgid)
            assert row["state"] == "POSTED"
            assert row["acct_pay"] == acct


class TestAnnualCap:
    async def test_two_institutions_cannot_pass_the_annual_cap(self, fleet: Fleet, world, core_url, settings):
        """A person 30.00 short of the annual fund cap settles at two hospitals at once: the fund pays at most
        30.00 in all (optimistic versions at the core, recomputed on conflict)."""
        t1 = await fleet.terminal("hospital", 0)
        t2 = await fleet.terminal("hospital", 1)
        card, person = fleet.card(insutype="310", min_balance=0)
        insts = {i["fixmedins_code"]: i for i in world["institutions"]}
        caps = set()
        for t in (t1, t2):
            inst = insts[t.fixmedins_code]
            policy = policy_book().select(
                inst["region"], shanghai_today(), person["insutype"], person["psn_type"], "11", int(inst["level"])
            )
            caps.add(policy.annual_cap)
        assert len(caps) == 1, "both hospitals must share the annual cap for this proof"
        cap = caps.pop()
        left = 3000
        record = {**person, "fund_paid_ytd": str(D(cap - left) / 100), "inscp_ytd": "200000.00", "balance": "0.00"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{core_url}/sim/persons", data=orjson.dumps([record])) as r,
        ):
            assert r.status == 200, await r.text()
        items = [line(plain_items(world, "A", 1, min_price="50")[0], 20)]  # well over 30.00 of fund share each
        b1 = t1.settle("2207", card, items, acct_used_flag="0")
        b2 = t2.settle("2207", card, items, acct_used_flag="0")
        answers = await asyncio.gather(fleet.call(b1), fleet.call(b2))
        fund = 0
        for _status, resp, _ in answers:
            if resp["infcode"] == 0:
                assert_identities(resp["output"]["setlinfo"])
                fund += fen(resp["output"]["setlinfo"]["fund_pay_sumamt"])
            else:
                assert resp["err_code"] == "REPLAY", resp  # the card's later ATC may arrive first
        assert 0 < fund <= left
        after = await core_person(core_url, card.psn_no)
        assert fen(after["fund_paid_ytd"]) == cap - left + fund
        assert fen(after["fund_paid_ytd"]) <= cap
