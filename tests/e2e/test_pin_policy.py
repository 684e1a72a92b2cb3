"""SPEC §7 PIN policy end to end: VERIFIED, DEFAULT on PIN and DEFAULT-mode cards (per-transaction, daily
and count caps read from rules/data/policy.toml), NONE and acct_used_flag "0"."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.terminal import SimCard, Terminal
from tests.conftest import Fleet
from tests.e2e.helpers import (
    assert_declined,
    assert_identities,
    assert_ok,
    assert_split,
    bill_total,
    c_bill,
    core_person,
    core_settlements,
    expected_split,
    fen,
    line,
    money_state,
    pg_rows,
    pin_caps,
    plain_items,
    settlement_rows,
    shanghai_today,
)


async def settle(
    fleet: Fleet,
    world: dict[str, Any],
    core_url: str,
    t: Terminal,
    card: SimCard,
    items: list[tuple[str, str, str]],
    *,
    pin: str,
    acct_limit: int | None,
    acct_used_flag: str = "1",
) -> dict[str, Any]:
    """A successful 2207 checked against the independent split with the given account limit."""
    before = await core_person(core_url, card.psn_no)
    b = t.settle("2207", card, items, pin=pin, acct_used_flag=acct_used_flag)
    status, resp, _ = await fleet.call(b)
    assert_ok(status, resp)
    assert b.mac2_ok(resp)
    info = resp["output"]["setlinfo"]
    assert_identities(info)
    assert_split(info, expected_split(world, t, before, items, med_type="11", acct_limit=acct_limit))
    after = await core_person(core_url, card.psn_no)
    assert fen(after["balance"]) == fen(before["balance"]) - fen(info["acct_pay"])
    assert fen(after["fund_paid_ytd"]) == fen(before["fund_paid_ytd"]) + fen(info["fund_pay_sumamt"])
    assert resp["output"]["pin_settlement"]["pin"] == pin
    return resp


async def usage(dsn: str, card_sn: str) -> tuple[int, int]:
    """(count, acct_sum) of today's default-PIN usage of a card."""
    rows = await pg_rows(
        dsn, "SELECT count, acct_sum FROM default_pin_usage WHERE card_sn = $1 AND day = $2", card_sn,
        shanghai_today(),
    )  # fmt: skip
    return (rows[0]["count"], rows[0]["acct_sum"]) if rows else (0, 0)


class TestVerified:
    @pytest.mark.parametrize("mode", ["PIN", "DEFAULT"])
    async def test_verified_allowed(self, fleet: Fleet, world, core_url, mode):
        """pin VERIFIED pays from the account without caps in both pin modes."""
        t = await fleet.terminal()
        card, _ = fleet.card(pin_mode=mode, insutype="310", min_balance=100000)
        caps = pin_caps(card.card_sn)
        items = c_bill(world, caps.per_txn + 10000)  # above the default-PIN cap: VERIFIED is not capped
        resp = await settle(fleet, world, core_url, t, card, items, pin="VERIFIED", acct_limit=None)
        assert fen(resp["output"]["setlinfo"]["acct_pay"]) > caps.per_txn
        ps = resp["output"]["pin_settlement"]
        assert ps["pin_mode"] == mode
        assert ps["acct_pay_capped"] is False


class TestDefaultPin:
    async def test_default_on_pin_card_refused(self, fleet: Fleet, world, core_url, settings):
        """pin DEFAULT on a PIN-mode card is PIN_REQUIRED and posts nothing."""
        t = await fleet.terminal()
        card, _ = fleet.card(pin_mode="PIN", insutype="310", min_balance=10000)
        before = await core_person(core_url, card.psn_no)
        b = t.settle("2207", card, c_bill(world, 5000), pin="DEFAULT")
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "PIN_REQUIRED")
        assert b.mac2_ok(resp)
        assert money_state(await core_person(core_url, card.psn_no)) == money_state(before)
        assert await core_settlements(core_url, b.body["msgid"]) == []
        assert await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"]) == []
        assert await usage(settings.pg_dsn, card.card_sn) == (0, 0)

    async def test_default_capped_per_transaction(self, fleet: Fleet, world, core_url, settings):
        """pin DEFAULT on a DEFAULT-mode card: account capped at per_txn, the rest in cash, capped flag true."""
        t = await fleet.terminal()
        caps_probe = None
        card, _ = fleet.card(pin_mode="DEFAULT", insutype="310", min_balance=100000)
        caps_probe = pin_caps(card.card_sn)
        items = c_bill(world, caps_probe.per_txn + 5000)
        resp = await settle(fleet, world, core_url, t, card, items, pin="DEFAULT", acct_limit=caps_probe.per_txn)
        info = resp["output"]["setlinfo"]
        assert fen(info["acct_pay"]) == caps_probe.per_txn
        assert fen(info["psn_cash_pay"]) == bill_total(items) - caps_probe.per_txn
        assert resp["output"]["pin_settlement"] == {"pin_mode": "DEFAULT", "pin": "DEFAULT", "acct_pay_capped": True}
        assert await usage(settings.pg_dsn, card.card_sn) == (1, caps_probe.per_txn)
        (row,) = await settlement_rows(settings.pg_dsn, t.fixmedins_code, resp["output"]["setlinfo"]["medins_setl_id"])
        assert row["default_pin"] is True
        assert row["pin"] == "DEFAULT"

    async def test_default_under_cap_not_capped(self, fleet: Fleet, world, core_url):
        """pin DEFAULT for a bill below per_txn pays it all from the account, capped flag false."""
        t = await fleet.terminal()
        card, _ = fleet.card(pin_mode="DEFAULT", insutype="310", min_balance=100000)
        caps = pin_caps(card.card_sn)
        (c,) = plain_items(world, "C", 1)
        items = [line(c, 1)]
        assert bill_total(items) < caps.per_txn
        resp = await settle(fleet, world, core_url, t, card, items, pin="DEFAULT", acct_limit=caps.per_txn)
        assert fen(resp["output"]["setlinfo"]["acct_pay"]) == bill_total(items)
        assert resp["output"]["pin_settlement"]["acct_pay_capped"] is False

    async def test_daily_account_cap(self, fleet: Fleet, world, core_url, settings):
        """Default-PIN account payments of one card stop at per_day for the day; the rest goes to cash."""
        t = await fleet.terminal()
        card, _ = fleet.card(pin_mode="DEFAULT", insutype="310", min_balance=200000)
        caps = pin_caps(card.card_sn)
        assert fen((await core_person(core_url, card.psn_no))["balance"]) > caps.per_day + caps.per_txn
        items = c_bill(world, caps.per_txn + 1000)
        used = 0
        for _ in range(caps.per_day // caps.per_txn + 2):
            limit = min(caps.per_txn, caps.per_day - used)
            resp = await settle(fleet, world, core_url, t, card, items, pin="DEFAULT", acct_limit=limit)
            acct = fen(resp["output"]["setlinfo"]["acct_pay"])
            assert acct == limit
            assert resp["output"]["pin_settlement"]["acct_pay_capped"] is True
            used += acct
            assert used <= caps.per_day
        assert used == caps.per_day
        assert (await usage(settings.pg_dsn, card.card_sn))[1] == caps.per_day

    async def test_daily_count_limit(self, fleet: Fleet, world, core_url, settings):
        """After per_day_count default-PIN settlements the next is DEFAULT_PIN_LIMIT; a cancel frees one."""
        t = await fleet.terminal()
        card, _ = fleet.card(pin_mode="DEFAULT", insutype="310", min_balance=10000)
        caps = pin_caps(card.card_sn)
        cheapest = min(plain_items(world, "C", 27), key=lambda i: fen(i["price"]))
        items = [line(cheapest, 1)]
        setl_ids = []
        for _ in range(caps.per_day_count):
            b = t.settle("2207", card, items, pin="DEFAULT")
            status, resp, _ = await fleet.call(b)
            assert_ok(status, resp)
            assert_identities(resp["output"]["setlinfo"])
            setl_ids.append(resp["output"]["setlinfo"]["setl_id"])
        assert (await usage(settings.pg_dsn, card.card_sn))[0] == caps.per_day_count
        before = await core_person(core_url, card.psn_no)
        b = t.settle("2207", card, items, pin="DEFAULT")
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "DEFAULT_PIN_LIMIT")
        assert b.mac2_ok(resp)
        assert money_state(await core_person(core_url, card.psn_no)) == money_state(before)
        assert await core_settlements(core_url, b.body["msgid"]) == []
        assert await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"]) == []
        # VERIFIED is not limited by the default-PIN count
        b = t.settle("2207", card, items, pin="VERIFIED")
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        # cancelling a default-PIN settlement of today gives its slot back
        c = t.cancel("2208", setl_ids[0], card.psn_no)
        status, resp, _ = await fleet.call(c)
        assert_ok(status, resp)
        assert (await usage(settings.pg_dsn, card.card_sn))[0] == caps.per_day_count - 1
        b = t.settle("2207", card, items, pin="DEFAULT")
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)


class TestNoAccount:
    async def test_pin_none_no_account(self, fleet: Fleet, world, core_url):
        """pin NONE: acct_pay 0, the fund still pays its share, the personal part in cash."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=100000)
        before = await core_person(core_url, card.psn_no)
        (a,) = plain_items(world, "A", 1, min_price="20")
        # enough in-scope cost to pass the year's deductible whatever the person used so far
        items = [line(a, -(-150000 // fen(a["price"])) + 1)]
        resp = await settle(fleet, world, core_url, t, card, items, pin="NONE", acct_limit=0)
        info = resp["output"]["setlinfo"]
        assert fen(info["acct_pay"]) == 0
        assert fen(info["fund_pay_sumamt"]) > 0
        assert fen(info["psn_cash_pay"]) == fen(info["psn_part_amt"])
        assert fen((await core_person(core_url, card.psn_no))["balance"]) == fen(before["balance"])

    @pytest.mark.parametrize("pin", ["VERIFIED", "DEFAULT"])
    async def test_acct_used_flag_0(self, fleet: Fleet, world, core_url, pin):
        """acct_used_flag "0": acct_pay 0 whatever the PIN; balance untouched."""
        t = await fleet.terminal()
        card, _ = fleet.card(pin_mode="DEFAULT", insutype="310", min_balance=100000)
        before = await core_person(core_url, card.psn_no)
        items = c_bill(world, 5000)
        resp = await settle(fleet, world, core_url, t, card, items, pin=pin, acct_limit=0, acct_used_flag="0")
        info = resp["output"]["setlinfo"]
        assert fen(info["acct_pay"]) == 0
        assert fen(info["psn_cash_pay"]) == bill_total(items)
        assert fen((await core_person(core_url, card.psn_no))["balance"]) == fen(before["balance"])
