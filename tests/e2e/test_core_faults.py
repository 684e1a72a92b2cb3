"""Insurance-core failures end to end (SPEC §5: -1 means not settled). Faults are global to the session's
simulator: every test resets them in a finally block, and the tests run sequentially."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Fleet
from tests.e2e.helpers import (
    assert_declined,
    assert_identities,
    assert_ok,
    c_bill,
    core_ledger,
    core_person,
    core_settlements,
    fen,
    journal_rows,
    line,
    money_state,
    pg_rows,
    plain_items,
    put_faults,
    settlement_rows,
)


@pytest.fixture
async def faults(core_url) -> AsyncIterator[Any]:
    """Set simulator faults inside the test; always reset afterwards."""

    async def set_(cfg: dict[str, Any]) -> None:
        await put_faults(core_url, cfg)

    try:
        yield set_
    finally:
        await put_faults(core_url, {})


def seed_passing_first_dropping_second(rate: float) -> int:
    """A seed whose fault stream lets the first callService through and drops the reply of the second."""
    for seed in range(10_000):
        rng = random.Random(seed)
        if rng.random() >= rate and rng.random() < rate:
            return seed
    raise AssertionError("no seed")


class TestCoreDown:
    async def test_settle_while_down(self, fleet: Fleet, world, core_url, settings, faults):
        """Core down: 2207 is -1 CORE_UNAVAILABLE (HTTP 200, MAC2), nothing posted, nothing owed."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        before = await core_person(core_url, card.psn_no)
        ledger0 = await core_ledger(core_url)
        queue0 = await pg_rows(settings.pg_dsn, "SELECT count(*) AS n FROM reversal_queue")
        (a,) = plain_items(world, "A", 1)
        await faults({"down": True})
        b = t.settle("2207", card, [line(a, 2)])
        status, resp, _ = await fleet.call(b)
        await faults({})
        assert_declined(status, resp, "CORE_UNAVAILABLE", 200, infcode=-1)
        assert b.mac2_ok(resp)
        assert money_state(await core_person(core_url, card.psn_no)) == money_state(before)
        assert {k: len(v) for k, v in (await core_ledger(core_url)).items()} == {k: len(v) for k, v in ledger0.items()}
        assert await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"]) == []
        assert await pg_rows(settings.pg_dsn, "SELECT count(*) AS n FROM reversal_queue") == queue0
        (j,) = await journal_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])
        assert j["err_code"] == "CORE_UNAVAILABLE"
        assert j["state"] == "DONE"
        # after the outage the terminal settles with a new message
        b2 = t.settle("2207", card, [line(a, 2)])
        status, resp, _ = await fleet.call(b2)
        assert_ok(status, resp)
        assert_identities(resp["output"]["setlinfo"])

    async def test_person_info_while_down(self, fleet: Fleet, core_url, faults):
        """Core down: 1101 is -1 CORE_UNAVAILABLE."""
        t = await fleet.terminal()
        card, _ = fleet.card()
        await faults({"down": True})
        b = t.person_info(card)
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "CORE_UNAVAILABLE", 200, infcode=-1)
        assert b.mac2_ok(resp)

    async def test_cancel_while_down(self, fleet: Fleet, world, core_url, settings, faults):
        """Core down: 2208 is -1 CORE_UNAVAILABLE, the settlement stays POSTED and can be cancelled later."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        before = await core_person(core_url, card.psn_no)
        s = t.settle("2207", card, c_bill(world, 3000))
        status, resp, _ = await fleet.call(s)
        assert_ok(status, resp)
        settled = money_state(await core_person(core_url, card.psn_no))
        setl_id = resp["output"]["setlinfo"]["setl_id"]
        await faults({"down": True})
        c = t.cancel("2208", setl_id, card.psn_no)
        status, cresp, _ = await fleet.call(c)
        await faults({})
        assert_declined(status, cresp, "CORE_UNAVAILABLE", 200, infcode=-1)
        assert c.mac2_ok(cresp)
        assert money_state(await core_person(core_url, card.psn_no)) == settled
        (row,) = await settlement_rows(settings.pg_dsn, t.fixmedins_code, s.body["msgid"])
        assert row["state"] == "POSTED"
        c2 = t.cancel("2208", setl_id, card.psn_no)
        status, cresp, _ = await fleet.call(c2)
        assert_ok(status, cresp)
        assert fen((await core_person(core_url, card.psn_no))["balance"]) == fen(before["balance"])


class TestReplyLost:
    async def test_drop_after_post(self, fleet: Fleet, world, core_url, settings, faults):
        """Core posts but the reply is lost: -1 CORE_TIMEOUT, settlement UNKNOWN, a reversal queued; it is undone."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        before = await core_person(core_url, card.psn_no)
        b = t.settle("2207", card, c_bill(world, 3000))
        rate = 0.5
        # callService #1 is the person read (let through), #2 the posting (acted on, reply dropped)
        await faults({"drop_after_post_rate": rate, "seed": seed_passing_first_dropping_second(rate)})
        try:
            status, resp, _ = await fleet.call(b)
        finally:
            await faults({})
        assert_declined(status, resp, "CORE_TIMEOUT", 200, infcode=-1)
        assert b.mac2_ok(resp)
        msgid = b.body["msgid"]
        # the core did act: that is exactly why a reversal is owed
        assert [s["state"] for s in await core_settlements(core_url, msgid)] in (["POSTED"], ["REVERSED"])
        (row,) = await settlement_rows(settings.pg_dsn, t.fixmedins_code, msgid)
        assert row["state"] in ("UNKNOWN", "REVERSED")
        queued = await pg_rows(
            settings.pg_dsn, "SELECT * FROM reversal_queue WHERE fixmedins_code = $1 AND omsgid = $2",
            t.fixmedins_code, msgid,
        )  # fmt: skip
        assert len(queued) == 1
        assert queued[0]["oinfno"] == "2207"
        assert queued[0]["psn_no"] == card.psn_no
        assert queued[0]["state"] in ("QUEUED", "DONE")  # QUEUED unless a reversal worker already finished it
        (j,) = await journal_rows(settings.pg_dsn, t.fixmedins_code, msgid)
        assert j["err_code"] == "CORE_TIMEOUT"
        # the retry of the same request gets the same -1 answer, never a 0 for an undurable settlement
        status, again, _ = await fleet.call(b)
        assert again == resp
        # the gateway's reversal worker drives the queued reversal to completion by itself
        for _ in range(100):
            (q,) = await pg_rows(
                settings.pg_dsn, "SELECT state FROM reversal_queue WHERE fixmedins_code = $1 AND omsgid = $2",
                t.fixmedins_code, msgid,
            )  # fmt: skip
            if q["state"] == "DONE":
                break
            await asyncio.sleep(0.1)
        assert q["state"] == "DONE"
        (row,) = await settlement_rows(settings.pg_dsn, t.fixmedins_code, msgid)
        assert row["state"] == "REVERSED"
        assert (await core_settlements(core_url, msgid))[0]["state"] == "REVERSED"
        after = money_state(await core_person(core_url, card.psn_no))
        m0 = money_state(before)
        assert {k: after[k] for k in ("balance", "inscp_ytd", "fund_paid_ytd")} == {
            k: m0[k] for k in ("balance", "inscp_ytd", "fund_paid_ytd")
        }
