"""SPEC §8.1 blacklist and card registry end to end: listed cards and persons, the admin API taking effect on
the next request, unknown, expired and replaced cards."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.terminal import SimCard
from tests.conftest import Fleet
from tests.e2e.helpers import (
    ADMIN,
    assert_declined,
    assert_identities,
    assert_ok,
    core_person,
    core_settlements,
    fen,
    line,
    money_state,
    pg_rows,
    pick_card,
    plain_items,
    settlement_rows,
)

CARD_REASONS = ["01", "02", "03", "04", "05", "06", "07"]


def items(world: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A small A-class bill."""
    (a,) = plain_items(world, "A", 1)
    return [line(a, 2)]


async def refused_settle(fleet: Fleet, world, core_url, dsn, card: SimCard, code: str) -> dict[str, Any]:
    """A 2207 refused with `code`; MAC2 present (the MAC verified) and nothing posted."""
    t = await fleet.terminal()
    before = await core_person(core_url, card.psn_no)
    b = t.settle("2207", card, items(world))
    status, resp, _ = await fleet.call(b)
    assert_declined(status, resp, code)
    assert b.mac2_ok(resp)
    assert money_state(await core_person(core_url, card.psn_no)) == money_state(before)
    assert await core_settlements(core_url, b.body["msgid"]) == []
    assert await settlement_rows(dsn, t.fixmedins_code, b.body["msgid"]) == []
    return resp


class TestListedInWorld:
    @pytest.mark.parametrize("reason", CARD_REASONS)
    async def test_card_listed(self, fleet: Fleet, world, core_url, settings, reason):
        """A world card with a blacklist status is CARD_BLACKLISTED with output.reason, for 1101 and 2207."""
        t = await fleet.terminal()
        card, _ = pick_card(fleet, lambda c, p: c["status"] == reason)
        b = t.person_info(card)
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "CARD_BLACKLISTED")
        assert resp["output"] == {"reason": reason}
        assert reason in resp["err_msg"]
        assert b.mac2_ok(resp)
        resp = await refused_settle(fleet, world, core_url, settings.pg_dsn, card, "CARD_BLACKLISTED")
        assert resp["output"]["reason"] == reason

    @pytest.mark.parametrize("reason", ["11", "12"])
    async def test_person_listed(self, fleet: Fleet, world, core_url, settings, reason):
        """A person on the list (world status 11/12) with an active card is PERSON_NOT_ENTITLED."""
        t = await fleet.terminal()
        card, _ = pick_card(fleet, lambda c, p: c["status"] == "ACTIVE" and p["status"] == reason)
        b = t.person_info(card)
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "PERSON_NOT_ENTITLED")
        assert resp["output"] == {"reason": reason}
        assert b.mac2_ok(resp)
        await refused_settle(fleet, world, core_url, settings.pg_dsn, card, "PERSON_NOT_ENTITLED")


class TestAdmin:
    async def test_add_and_remove_card(self, fleet: Fleet, world, core_url, settings):
        """POST /admin/blacklist/cards refuses the card on the next request; DELETE restores service."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=10000)
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_ok(status, resp)
        r = await fleet.client.post(
            "/admin/blacklist/cards", json={"card_sn": card.card_sn, "reason": "02", "source": "330200"}, headers=ADMIN
        )
        assert r.status == 200, await r.text()
        assert (await r.json())["listed"] is True
        rows = await pg_rows(settings.pg_dsn, "SELECT reason FROM blacklist_cards WHERE card_sn = $1", card.card_sn)
        assert rows == [{"reason": "02"}]
        b = t.person_info(card)
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "CARD_BLACKLISTED")
        assert resp["output"] == {"reason": "02"}
        await refused_settle(fleet, world, core_url, settings.pg_dsn, card, "CARD_BLACKLISTED")
        r = await fleet.client.delete(f"/admin/blacklist/cards/{card.card_sn}", headers=ADMIN)
        assert r.status == 200
        body = await r.json()
        assert body["listed"] is False
        assert body["was_listed"] is True
        assert await pg_rows(settings.pg_dsn, "SELECT 1 FROM blacklist_cards WHERE card_sn = $1", card.card_sn) == []
        b = t.settle("2207", card, items(world))
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert_identities(resp["output"]["setlinfo"])

    async def test_loss_revoked_for_a_world_card(self, fleet: Fleet, world, settings):
        """A card loaded as lost (reason 01) works again once the loss is revoked."""
        t = await fleet.terminal()
        card, _ = pick_card(fleet, lambda c, p: c["status"] == "01" and p["status"] == "ACTIVE")
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_declined(status, resp, "CARD_BLACKLISTED")
        r = await fleet.client.delete(f"/admin/blacklist/cards/{card.card_sn}", headers=ADMIN)
        assert r.status == 200
        assert (await r.json())["was_listed"] is True
        rows = await pg_rows(settings.pg_dsn, "SELECT 1 FROM blacklist_cards WHERE card_sn = $1", card.card_sn)
        assert rows == []
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_ok(status, resp)
        assert resp["output"]["cardinfo"]["card_stas"] == "ACTIVE"

    async def test_add_and_remove_person(self, fleet: Fleet, core_url, settings):
        """POST /admin/blacklist/persons refuses the holder's card; DELETE restores service."""
        t = await fleet.terminal()
        card, _ = fleet.card()
        r = await fleet.client.post(
            "/admin/blacklist/persons", json={"psn_no": card.psn_no, "reason": "11", "source": "330200"}, headers=ADMIN
        )
        assert r.status == 200
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_declined(status, resp, "PERSON_NOT_ENTITLED")
        assert resp["output"] == {"reason": "11"}
        r = await fleet.client.delete(f"/admin/blacklist/persons/{card.psn_no}", headers=ADMIN)
        assert r.status == 200
        assert (await r.json())["was_listed"] is True
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_ok(status, resp)

    @pytest.mark.parametrize(
        "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-admin-token"}, {"X-Token": "x"}]
    )
    async def test_admin_needs_token(self, fleet: Fleet, settings, headers):
        """The admin API without the right bearer token is 401 and changes nothing."""
        card, _ = fleet.card()
        r = await fleet.client.post(
            "/admin/blacklist/cards",
            json={"card_sn": card.card_sn, "reason": "01", "source": "330200"},
            headers=headers,
        )
        assert r.status == 401
        r = await fleet.client.delete(f"/admin/blacklist/cards/{card.card_sn}", headers=headers)
        assert r.status == 401
        assert await pg_rows(settings.pg_dsn, "SELECT 1 FROM blacklist_cards WHERE card_sn = $1", card.card_sn) == []
        t = await fleet.terminal()
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_ok(status, resp)

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"reason": "00", "source": "330200"}, "reason"),
            ({"reason": "11", "source": "330200"}, "reason"),
            ({"reason": 1, "source": "330200"}, "reason"),
            ({"source": "330200"}, "reason"),
            ({"reason": "01", "source": "33020"}, "source"),
            ({"reason": "01"}, "source"),
            ({"reason": "01", "source": "330200", "card_sn": "1234"}, "card_sn"),
        ],
    )
    async def test_admin_bad_body(self, fleet: Fleet, settings, body, field):
        """A bad reason, source or card_sn is 400 naming the field, and nothing is listed."""
        card, _ = fleet.card()
        r = await fleet.client.post("/admin/blacklist/cards", json={"card_sn": card.card_sn, **body}, headers=ADMIN)
        assert r.status == 400
        assert field in (await r.json())["err_msg"]
        assert await pg_rows(settings.pg_dsn, "SELECT 1 FROM blacklist_cards WHERE card_sn = $1", card.card_sn) == []
        t = await fleet.terminal()
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_ok(status, resp)

    @pytest.mark.parametrize("raw", [b"{nope", b"[]"])
    async def test_admin_not_json(self, fleet: Fleet, raw):
        """A body that is not a JSON object is 400."""
        r = await fleet.client.post("/admin/blacklist/cards", data=raw, headers=ADMIN)
        assert r.status == 400


class TestCardRegistry:
    async def test_unknown_card(self, fleet: Fleet, world, core_url, settings):
        """A well-formed card_sn not in the registry is CARD_UNKNOWN (MAC verified, so MAC2)."""
        t = await fleet.terminal()
        real, _ = fleet.card(insutype="310")
        ghost = SimCard(real.card_sn[:16] + "FEDCBA9876543210", "Z00000001", real.psn_no, real.alg)
        assert all(c["card_sn"] != ghost.card_sn for c in world["cards"])
        b = t.person_info(ghost)
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "CARD_UNKNOWN")
        assert b.mac2_ok(resp)
        await refused_settle(fleet, world, core_url, settings.pg_dsn, ghost, "CARD_UNKNOWN")

    async def test_expired_card(self, fleet: Fleet, world, core_url, settings):
        """A card past its validity is CARD_EXPIRED."""
        t = await fleet.terminal()
        card, _ = fleet.card(expired=True)
        b = t.person_info(card)
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "CARD_EXPIRED")
        assert b.mac2_ok(resp)
        await refused_settle(fleet, world, core_url, settings.pg_dsn, card, "CARD_EXPIRED")

    async def test_replaced_card(self, fleet: Fleet, world, core_url, settings):
        """A card replaced (status 03) is refused with reason 03 while the holder's new card settles."""
        t = await fleet.terminal()
        active = {c["psn_no"]: c for c in world["cards"] if c["status"] == "ACTIVE"}
        old, person = pick_card(
            fleet,
            lambda c, p: (
                c["status"] == "03"
                and c["psn_no"] in active
                and active[c["psn_no"]]["card_sn"] not in fleet.used
                and p["insutype"] == "310"
            ),
        )
        new_c = active[old.psn_no]
        assert new_c["card_sn"] != old.card_sn
        assert new_c["card_sn"] not in fleet.used
        fleet.used.add(new_c["card_sn"])
        new = fleet.cards.setdefault(new_c["card_sn"], SimCard.from_world(new_c))
        b = t.person_info(old)
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "CARD_BLACKLISTED")
        assert resp["output"] == {"reason": "03"}
        await refused_settle(fleet, world, core_url, settings.pg_dsn, old, "CARD_BLACKLISTED")
        b = t.person_info(new)
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert resp["output"]["baseinfo"]["psn_no"] == person["psn_no"]
        before = await core_person(core_url, new.psn_no)
        b = t.settle("2207", new, items(world))
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        after = await core_person(core_url, new.psn_no)
        acct = fen(resp["output"]["setlinfo"]["acct_pay"])
        assert money_state(after)["balance"] == money_state(before)["balance"] - acct

    async def test_blacklist_checked_before_card_registry(self, fleet: Fleet, settings):
        """A listed card that is also unknown to the registry is CARD_BLACKLISTED (SPEC §5 order)."""
        t = await fleet.terminal()
        real, _ = fleet.card()
        ghost = SimCard(real.card_sn[:16] + "0123456789ABCDEF", "Z00000002", real.psn_no, real.alg)
        r = await fleet.client.post(
            "/admin/blacklist/cards", json={"card_sn": ghost.card_sn, "reason": "07", "source": "330200"}, headers=ADMIN
        )
        assert r.status == 200
        try:
            status, resp, _ = await fleet.call(t.person_info(ghost))
            assert_declined(status, resp, "CARD_BLACKLISTED")
            assert resp["output"] == {"reason": "07"}
        finally:
            await fleet.client.delete(f"/admin/blacklist/cards/{ghost.card_sn}", headers=ADMIN)
