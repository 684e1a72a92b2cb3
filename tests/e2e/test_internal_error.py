"""A bug inside a money transaction: INTERNAL with a trace id, the answer journaled, a reversal owed."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.domain.core import Posted, Posting
from gateway.keys import GATEWAY
from gateway.ports import InsuranceCore
from tests.conftest import Fleet
from tests.e2e.helpers import c_bill, journal_rows, pg_rows


class ExplodingAfterPost:
    """A fake of our own core port: posts through the real adapter, then fails like a bug would."""

    def __init__(self, real: InsuranceCore) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def post_settlement(self, posting: Posting, *, timeout: float) -> Posted:
        await self.real.post_settlement(posting, timeout=timeout)
        raise RuntimeError("simulated bug after posting")


class TestInternalError:
    async def test_bug_after_post_is_journaled_and_reversed(self, fleet: Fleet, world, client, settings, core_url):
        """The terminal gets -1 INTERNAL (HTTP 500) with a trace id; the journal holds it; the posting is undone."""
        deps = client.server.app[GATEWAY].d
        real = deps.core
        t = await fleet.terminal("hospital", 1)
        card, _ = fleet.card(insutype="310", min_balance=20000)
        b = t.settle("2207", card, c_bill(world, 1500))
        deps.core = ExplodingAfterPost(real)  # type: ignore[assignment]
        try:
            status, resp, _ = await fleet.call(b)
        finally:
            deps.core = real
        assert status == 500
        assert resp["infcode"] == -1
        assert resp["err_code"] == "INTERNAL"
        assert "trace id" in resp["err_msg"]
        assert card.card_sn not in resp["err_msg"]
        (j,) = await journal_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])
        assert j["state"] == "DONE"
        assert j["err_code"] == "INTERNAL"
        status2, again, _ = await fleet.call(b)
        assert status2 == 500
        assert again == resp  # a retry is answered from the journal, not executed again
        for _ in range(100):
            (q,) = await pg_rows(settings.pg_dsn, "SELECT state FROM reversal_queue WHERE omsgid = $1", b.body["msgid"])
            if q["state"] == "DONE":
                break
            await asyncio.sleep(0.1)
        assert q["state"] == "DONE"
        async with fleet.client.session.get(f"{core_url}/sim/settlements") as r:
            ledger = await r.json()
        mine = [s for s in ledger["settlements"] if s.get("msgid") == b.body["msgid"]]
        assert [s["state"] for s in mine] == ["REVERSED"]
