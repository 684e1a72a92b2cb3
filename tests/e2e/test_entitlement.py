"""2001 person entitlement check end to end (SPEC §6.2.1), the transaction added through the transaction table:
real MACs, the real core simulator, PostgreSQL and Redis. Nothing moves at the core; the answer is journaled."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.domain.feeds import CARD_REASONS
from loadtest.terminal import Built, SimCard, Terminal
from tests.conftest import Fleet
from tests.e2e.helpers import (
    assert_declined,
    assert_ok,
    core_person,
    journal_rows,
    money_state,
    pick_card,
    settlement_rows,
)


def entitlement(t: Terminal, card: SimCard, med_type: str = "11", insutype: str = "310", **over: Any) -> Built:
    data = {
        "psn_no": card.psn_no, "insutype": insutype, "med_type": med_type, "begntime": "2026-12-01 09:30:00",
        "mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no, "card_sn": card.card_sn, **over,
    }  # fmt: skip
    return t.build("2001", {"data": data}, card=card)


def flags(resp: dict[str, Any]) -> dict[str, str]:
    return {c["trt_chk_type"]: c["trt_enjymnt_flag"] for c in resp["output"]["trtinfo"]}


class TestEntitlement:
    async def test_entitled_and_nothing_moves(self, fleet: Fleet, core_url, settings):
        """An insured person with a balance: three checks entitled, MAC2 on the answer, the journal row DONE,
        no settlement, and the person's account and version at the core untouched."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=100)
        before = money_state(await core_person(core_url, card.psn_no))
        b = entitlement(t, card)
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        assert flags(resp) == {"01": "1", "02": "1", "03": "1"}
        assert money_state(await core_person(core_url, card.psn_no)) == before
        (row,) = await journal_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])
        assert row["state"] == "DONE"
        assert await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"]) == []

    async def test_listed_person_is_reported(self, fleet: Fleet):
        """A person on the list gets infcode 0 and check 01 "not entitled" naming the reason, not a refusal."""
        t = await fleet.terminal()
        card, _ = pick_card(fleet, lambda c, p: c["status"] == "ACTIVE" and p["status"] == "11")
        b = entitlement(t, card)
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert flags(resp)["01"] == "0"
        assert "reason 11" in resp["output"]["trtinfo"][0]["trt_chk_rslt"]

    async def test_other_insutype_is_not_entitled(self, fleet: Fleet):
        """Check 02 says no for an insutype the person is not insured under."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310")
        status, resp, _ = await fleet.call(entitlement(t, card, insutype="390"))
        assert_ok(status, resp)
        assert flags(resp)["02"] == "0"

    async def test_listed_card_is_refused(self, fleet: Fleet):
        """The card's own refusals stand (SPEC §6.2.1): a listed card is CARD_BLACKLISTED."""
        t = await fleet.terminal()
        card, _ = pick_card(fleet, lambda c, p: c["status"] in CARD_REASONS)
        status, resp, _ = await fleet.call(entitlement(t, card))
        assert_declined(status, resp, "CARD_BLACKLISTED")

    @pytest.mark.parametrize(
        ("over", "field"),
        [
            ({"begntime": "2026-13-01 09:30:00"}, "input.data.begntime"),
            ({"begntime": "yesterday"}, "input.data.begntime"),
            ({"med_type": None}, "input.data.med_type"),
            ({"mdtrt_cert_type": "02"}, "input.data.mdtrt_cert_type"),
        ],
    )
    async def test_bad_input_names_the_field(self, fleet: Fleet, settings, over, field):
        """Bad input is MALFORMED naming the field, and nothing is journaled."""
        t = await fleet.terminal()
        card, _ = fleet.card()
        b = entitlement(t, card, **over)
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "MALFORMED", 400)
        assert resp["err_msg"].startswith(field)
        assert await journal_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"]) == []
