"""A terminal's day: sign in, read the person, pre-settle, settle, cancel."""

from __future__ import annotations

from tests.conftest import Fleet


class TestSmoke:
    async def test_happy_path(self, fleet: Fleet, catalogue_codes):
        """Sign-in → 1101 → 2206 → 2207 → 2208 all succeed with valid MAC2."""
        t = await fleet.terminal()
        card, _person = fleet.card(insutype="310", min_balance=10000)
        b = t.person_info(card)
        status, resp, headers = await fleet.call(b)
        assert status == 200
        assert resp["infcode"] == 0, resp
        assert b.mac2_ok(resp)
        assert "X-Gateway-Latency-Us" in headers
        items = [(catalogue_codes["A"][0]["med_list_codg"], "2", catalogue_codes["A"][0]["price"])]
        b = t.settle("2206", card, items)
        status, resp, _ = await fleet.call(b)
        assert resp["infcode"] == 0, resp
        b = t.settle("2207", card, items)
        status, resp, _ = await fleet.call(b)
        assert resp["infcode"] == 0, resp
        assert b.mac2_ok(resp)
        setl_id = resp["output"]["setlinfo"]["setl_id"]
        b = t.cancel("2208", setl_id, card.psn_no)
        status, resp, _ = await fleet.call(b)
        assert resp["infcode"] == 0, resp
