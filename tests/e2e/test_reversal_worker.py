"""The reversal worker: every -1 CORE_TIMEOUT is followed by a reversal driven to a final state."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.keys import GATEWAY
from gateway.pipeline.reversals import ReversalWorker
from tests.conftest import Fleet
from tests.e2e.helpers import (
    assert_declined,
    assert_ok,
    c_bill,
    core_person,
    core_settlements,
    fen,
    pg_rows,
    put_faults,
    settlement_rows,
)


async def queue_state(dsn: str, code: str, omsgid: str) -> dict[str, Any]:
    (row,) = await pg_rows(dsn, "SELECT * FROM reversal_queue WHERE fixmedins_code = $1 AND omsgid = $2", code, omsgid)
    return row


async def wait_state(dsn: str, code: str, omsgid: str, state: str, seconds: float = 10) -> dict[str, Any]:
    for _ in range(int(seconds / 0.1)):
        row = await queue_state(dsn, code, omsgid)
        if row["state"] == state:
            return row
        await asyncio.sleep(0.1)
    return await queue_state(dsn, code, omsgid)


class TestCancelLost:
    async def test_cancel_reply_lost_is_undone(self, fleet: Fleet, world, core_url, settings):
        """A cancel whose reply is lost answers -1 and is reversed: the settlement stands, the money stays paid."""
        t = await fleet.terminal("hospital", 1)
        card, _ = fleet.card(insutype="310", min_balance=20000)
        status, resp, _ = await fleet.call(t.settle("2207", card, c_bill(world, 2000)))
        assert_ok(status, resp)
        setl_id = resp["output"]["setlinfo"]["setl_id"]
        settled = await core_person(core_url, card.psn_no)
        b = t.cancel("2208", setl_id, card.psn_no)
        await put_faults(core_url, {"drop_after_post_rate": 1.0})
        try:
            status, cresp, _ = await fleet.call(b)
        finally:
            await put_faults(core_url, {})
        assert_declined(status, cresp, "CORE_TIMEOUT", 200, infcode=-1)
        row = await wait_state(settings.pg_dsn, t.fixmedins_code, b.body["msgid"], "DONE")
        assert row["state"] == "DONE"
        assert row["oinfno"] == "2208"
        (s,) = await settlement_rows(settings.pg_dsn, t.fixmedins_code, resp["output"]["setlinfo"]["medins_setl_id"])
        assert s["state"] == "POSTED"
        after = await core_person(core_url, card.psn_no)
        assert fen(after["balance"]) == fen(settled["balance"])
        assert [x["state"] for x in await core_settlements(core_url, s["msgid"])] == ["POSTED"]
        # and the settlement can still be cancelled properly afterwards
        status, again, _ = await fleet.call(t.cancel("2208", setl_id, card.psn_no))
        assert_ok(status, again)


class TestDeadLetter:
    async def test_unreachable_core_ends_in_dead_letter(self, client, settings, core_url):
        """Past its attempt limit a reversal goes DEAD, visible in the metrics, instead of retrying forever."""
        deps = client.server.app[GATEWAY].d
        code, omsgid = "H33020000013", "H33020000013" + "20260101000000" + "9999"
        await pg_rows(
            settings.pg_dsn,
            "INSERT INTO reversal_queue (fixmedins_code, omsgid, oinfno, psn_no) VALUES ($1, $2, '2207', 'P1')"
            " RETURNING id",
            code,
            omsgid,
        )
        worker = ReversalWorker(deps, max_attempts=1)
        await put_faults(core_url, {"down": True})
        try:
            for _ in range(60):
                await worker.run_once()
                row = await queue_state(settings.pg_dsn, code, omsgid)
                if row["state"] == "DEAD":
                    break
                await asyncio.sleep(0.1)
        finally:
            await put_faults(core_url, {})
        assert row["state"] == "DEAD"
        assert row["last_error"] == "gave up: CoreUnavailable"
        resp = await client.get("/metrics")
        text = await resp.text()
        assert 'onecard_reversals{state="DEAD"}' in text
        dead = [ln for ln in text.splitlines() if ln.startswith('onecard_reversals{state="DEAD"}')]
        assert float(dead[0].split()[-1]) >= 1
