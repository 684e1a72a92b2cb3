"""SPEC §6 transactions end to end: sign-in/out, 1101, pre-settle, settle, cancel, reversal, reconciliation.

Every expectation is computed here (catalogue prices, policy parameters, the person's state at the core read
before the call) or is an invariant; state is checked at the core simulator and in PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from loadtest.terminal import SHANGHAI, Built, SimCard, Terminal, yuan
from tests.conftest import Fleet
from tests.e2e.helpers import (
    assert_declined,
    assert_identities,
    assert_ok,
    assert_split,
    core_ledger,
    core_person,
    core_settlements,
    expected_split,
    fen,
    journal_rows,
    line,
    money_state,
    own_terminal,
    pg_rows,
    plain_items,
    settlement_rows,
    shanghai_today,
)


def bill(world: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Two A lines and one C line at catalogue prices."""
    a1, a2 = plain_items(world, "A", 2)
    (c,) = plain_items(world, "C", 1)
    return [line(a1, 3), line(a2, 1), line(c, 2)]


async def settle_ok(
    fleet: Fleet,
    world: dict[str, Any],
    core_url: str,
    dsn: str,
    t: Terminal,
    card: SimCard,
    items: list[tuple[str, str, str]],
    infno: str = "2207",
) -> tuple[Built, dict[str, Any], dict[str, Any]]:
    """Settle, check the split, identities, MAC2, the core and PostgreSQL; returns (built, response, before)."""
    before = await core_person(core_url, card.psn_no)
    b = t.settle(infno, card, items)
    status, resp, _ = await fleet.call(b)
    assert_ok(status, resp)
    assert b.mac2_ok(resp)
    info = resp["output"]["setlinfo"]
    assert_identities(info)
    med_type = b.body["input"]["data"]["med_type"]
    exp = expected_split(world, t, before, items, med_type=med_type)
    assert_split(info, exp)
    assert info["medins_setl_id"] == b.body["msgid"]
    after = await core_person(core_url, card.psn_no)
    m0, m1 = money_state(before), money_state(after)
    assert m1["balance"] == m0["balance"] - fen(info["acct_pay"])
    assert m1["fund_paid_ytd"] == m0["fund_paid_ytd"] + fen(info["fund_pay_sumamt"])
    assert m1["inscp_ytd"] == m0["inscp_ytd"] + fen(info["inscp_scp_amt"])
    assert fen(info["balc"]) == m1["balance"]
    posted = await core_settlements(core_url, b.body["msgid"])
    assert len(posted) == 1
    assert posted[0]["setl_id"] == info["setl_id"]
    assert posted[0]["state"] == "POSTED"
    assert fen(posted[0]["acct_pay"]) == fen(info["acct_pay"])
    rows = await settlement_rows(dsn, t.fixmedins_code, b.body["msgid"])
    assert len(rows) == 1
    row = rows[0]
    assert row["state"] == "POSTED"
    assert row["setl_id"] == info["setl_id"]
    assert row["infno"] == infno
    assert (row["medfee_sumamt"], row["fund_pay_sumamt"], row["acct_pay"], row["psn_cash_pay"]) == (
        fen(info["medfee_sumamt"]),
        fen(info["fund_pay_sumamt"]),
        fen(info["acct_pay"]),
        fen(info["psn_cash_pay"]),
    )
    return b, resp, before


class TestSignInOut:
    async def test_sign_in_gives_30_char_sign_no(self, fleet: Fleet, settings):
        """9001 answers a 30-char sign_no bound to the PSAM, with MAC2, and records the session."""
        t = await own_terminal(fleet, "hospital", 0, 1, sign_in=False)
        b = t.sign_in()
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        out = resp["output"]["signinoutb"]
        assert isinstance(out["sign_no"], str)
        assert len(out["sign_no"]) == 30
        assert out["sign_time"]
        t.sign_no = out["sign_no"]
        rows = await pg_rows(settings.pg_dsn, "SELECT * FROM sign_sessions WHERE sign_no = $1", out["sign_no"])
        assert len(rows) == 1
        assert rows[0]["psam_no"] == t.psam_no
        assert rows[0]["signed_out_at"] is None

    async def test_sign_out_ends_the_session(self, fleet: Fleet):
        """9002 ends the session; the next request with that sign_no is NOT_SIGNED_IN (with MAC2)."""
        t = await own_terminal(fleet, "hospital", 0, 2)
        sign_no = t.sign_no
        b = t.sign_out()
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        assert resp["output"]["signoutoutb"]["sign_no"] == sign_no
        card, _ = fleet.card()
        b = t.person_info(card)
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "NOT_SIGNED_IN")
        # sign-in precedes MAC verification (SPEC §5 order): nothing to answer MAC2 with
        t.sign_no = None
        await own_terminal(fleet, "hospital", 0, 2)  # sign in again for later tests
        assert t.sign_no != sign_no

    async def test_sign_no_of_another_psam_refused(self, fleet: Fleet):
        """A sign_no of another PSAM of the same institution is NOT_SIGNED_IN."""
        t = await fleet.terminal()
        other = await own_terminal(fleet, "hospital", 0, 1)
        card, _ = fleet.card()
        saved = t.sign_no
        t.sign_no = other.sign_no
        try:
            b = t.person_info(card)
        finally:
            t.sign_no = saved
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "NOT_SIGNED_IN")


class TestPersonInfo:
    @pytest.mark.parametrize("alg", ["3DES", "SM4"])
    async def test_1101_output(self, fleet: Fleet, core_url, alg):
        """1101 returns baseinfo, insuinfo and cardinfo (with pin_mode) for both card algorithms."""
        t = await fleet.terminal()
        card, person = fleet.card(alg=alg)
        world_card = next(c for c in fleet.world["cards"] if c["card_sn"] == card.card_sn)
        before = await core_person(core_url, card.psn_no)
        b = t.person_info(card)
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        assert b.body["dev_safe_info"]["alg"] == alg
        out = resp["output"]
        base = out["baseinfo"]
        for k in ("psn_no", "certno", "psn_name", "gend", "brdy"):
            assert base[k] == person[k], k
        today = shanghai_today()
        by, bm, bd = (int(x) for x in person["brdy"].split("-"))
        assert base["age"] == today.year - by - ((today.month, today.day) < (bm, bd))
        (insu,) = out["insuinfo"]
        assert insu["insutype"] == person["insutype"]
        assert insu["psn_type"] == person["psn_type"]
        assert insu["insuplc_admdvs"] == person["insuplc_admdvs"]
        assert fen(insu["balc"]) == fen(before["balance"])
        ci = out["cardinfo"]
        assert ci["card_sn"] == card.card_sn
        assert ci["card_no"] == card.card_no
        assert ci["pin_mode"] == world_card["pin_mode"]
        assert ci["card_stas"] == "ACTIVE"
        assert money_state(await core_person(core_url, card.psn_no)) == money_state(before)


class TestPreSettle:
    async def test_2206_posts_nothing(self, fleet: Fleet, world, core_url, settings):
        """2206 answers the split but changes no balance, accumulator, core ledger or settlements row."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=50000)
        before = await core_person(core_url, card.psn_no)
        items = bill(world)
        b = t.settle("2206", card, items)
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        info = resp["output"]["setlinfo"]
        assert "setl_id" not in info
        assert_identities(info)
        assert_split(info, expected_split(world, t, before, items, med_type="11"))
        assert money_state(await core_person(core_url, card.psn_no)) == money_state(before)
        assert await core_settlements(core_url, b.body["msgid"]) == []
        assert await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"]) == []

    async def test_b_share_rounds_half_up_per_line(self, fleet: Fleet, world, core_url):
        """SPEC §9: a class-B line's self-pay share is rounded half-up to the fen (pre-settle)."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310")
        before = await core_person(core_url, card.psn_no)
        b_items = [
            i for i in plain_items(world, "B", 76) if fen(i["price"]) % 10 == 5
        ]  # x.x5 × 0.10 leaves exactly half a fen
        assert b_items, "no B item with a half-fen share"
        items = [line(b_items[0], 1)]
        b = t.settle("2206", card, items)
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        info = resp["output"]["setlinfo"]
        assert_identities(info)
        exp = expected_split(world, t, before, items, med_type="11")
        assert fen(info["preselfpay_amt"]) == exp.pre
        assert_split(info, exp)


class TestSettle:
    @pytest.mark.parametrize("alg", ["3DES", "SM4"])
    async def test_2207_debits_exactly_acct_pay(self, fleet: Fleet, world, core_url, settings, alg):
        """2207 (3DES and SM4 cards): account debited by acct_pay, accumulators grow, one core and PG row."""
        t = await fleet.terminal()
        card, _ = fleet.card(alg=alg, insutype="310", min_balance=20000)
        b, resp, _ = await settle_ok(fleet, world, core_url, settings.pg_dsn, t, card, bill(world))
        assert fen(resp["output"]["setlinfo"]["acct_pay"]) > 0
        assert resp["output"]["pin_settlement"]["pin"] == "VERIFIED"
        jr = await journal_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])
        assert len(jr) == 1
        assert jr[0]["state"] == "DONE"
        assert jr[0]["err_code"] is None

    async def test_2207_past_deductible_fund_pays(self, fleet: Fleet, world, core_url, settings):
        """A bill crossing the deductible: the fund pays its ratio of the in-scope part above it."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=100000)
        (a,) = plain_items(world, "A", 1, min_price="20")
        items = [line(a, 80)]
        _, resp, _ = await settle_ok(fleet, world, core_url, settings.pg_dsn, t, card, items)
        assert fen(resp["output"]["setlinfo"]["fund_pay_sumamt"]) > 0

    async def test_2207_resident_without_account(self, fleet: Fleet, world, core_url, settings):
        """A resident (390) with a zero balance: acct_pay 0, the personal part in cash."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="390")
        items = bill(world)
        b = t.settle("2207", card, items, insutype="390")
        before = await core_person(core_url, card.psn_no)
        assert fen(before["balance"]) == 0
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        info = resp["output"]["setlinfo"]
        assert_identities(info)
        assert_split(info, expected_split(world, t, before, items, med_type="11"))
        assert fen(info["acct_pay"]) == 0

    async def test_2102_pharmacy_settle(self, fleet: Fleet, world, core_url, settings):
        """2102 at a pharmacy debits the account by acct_pay and posts once."""
        t = await fleet.terminal("pharmacy", 0)
        card, _ = fleet.card(insutype="310", min_balance=20000)
        await settle_ok(fleet, world, core_url, settings.pg_dsn, t, card, bill(world), infno="2102")

    async def test_insutype_mismatch_refused(self, fleet: Fleet, world, core_url, settings):
        """2207 naming an insutype the person does not have is refused with nothing posted."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=10000)
        before = await core_person(core_url, card.psn_no)
        b = t.settle("2207", card, bill(world), insutype="390")
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "PERSON_NOT_ENTITLED")
        assert b.mac2_ok(resp)
        assert money_state(await core_person(core_url, card.psn_no)) == money_state(before)
        assert await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"]) == []


class TestCancel:
    @pytest.mark.parametrize(("kind", "settle", "cancel"), [("hospital", "2207", "2208"), ("pharmacy", "2102", "2103")])
    async def test_cancel_restores(self, fleet: Fleet, world, core_url, settings, kind, settle, cancel):
        """2208/2103 restore balance and accumulators exactly; cancelling twice is ALREADY_CANCELLED."""
        t = await fleet.terminal(kind, 0)
        card, _ = fleet.card(insutype="310", min_balance=20000)
        b, resp, before = await settle_ok(fleet, world, core_url, settings.pg_dsn, t, card, bill(world), settle)
        info = resp["output"]["setlinfo"]
        c = t.cancel(cancel, info["setl_id"], card.psn_no)
        status, cresp, _ = await fleet.call(c)
        assert_ok(status, cresp)
        assert c.mac2_ok(cresp)
        ci = cresp["output"]["setlinfo"]
        assert ci["orig_setl_id"] == info["setl_id"]
        assert ci["setl_id"] != info["setl_id"]
        for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "psn_cash_pay"):
            assert fen(ci[k]) == fen(info[k]), k
        after = money_state(await core_person(core_url, card.psn_no))
        m0 = money_state(before)
        assert {k: after[k] for k in ("balance", "inscp_ytd", "fund_paid_ytd")} == {
            k: m0[k] for k in ("balance", "inscp_ytd", "fund_paid_ytd")
        }
        assert fen(ci["balc"]) == after["balance"]
        (row,) = await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])
        assert row["state"] == "CANCELLED"
        assert row["cancel_msgid"] == c.body["msgid"]
        assert row["cancel_setl_id"] == ci["setl_id"]
        (posted,) = await core_settlements(core_url, b.body["msgid"])
        assert posted["state"] == "CANCELLED"
        again = t.cancel(cancel, info["setl_id"], card.psn_no)
        status, aresp, _ = await fleet.call(again)
        assert_declined(status, aresp, "ALREADY_CANCELLED")
        assert again.mac2_ok(aresp)
        assert money_state(await core_person(core_url, card.psn_no)) == after

    async def test_cancel_by_another_institution(self, fleet: Fleet, world, core_url, settings):
        """Another institution cancelling a settlement gets SETTLEMENT_NOT_FOUND; nothing changes."""
        t = await fleet.terminal()
        other = await fleet.terminal("hospital", 1)
        card, _ = fleet.card(insutype="310", min_balance=20000)
        b, resp, _ = await settle_ok(fleet, world, core_url, settings.pg_dsn, t, card, bill(world))
        mid = await core_person(core_url, card.psn_no)
        c = other.cancel("2208", resp["output"]["setlinfo"]["setl_id"], card.psn_no)
        status, cresp, _ = await fleet.call(c)
        assert_declined(status, cresp, "SETTLEMENT_NOT_FOUND")
        assert c.mac2_ok(cresp)
        assert money_state(await core_person(core_url, card.psn_no)) == money_state(mid)
        (row,) = await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])
        assert row["state"] == "POSTED"

    async def test_cancel_unknown_setl_id(self, fleet: Fleet):
        """Cancelling a setl_id nobody issued is SETTLEMENT_NOT_FOUND."""
        t = await fleet.terminal()
        card, _ = fleet.card()
        c = t.cancel("2208", "S2026010100000099999999", card.psn_no)
        status, resp, _ = await fleet.call(c)
        assert_declined(status, resp, "SETTLEMENT_NOT_FOUND")
        assert c.mac2_ok(resp)

    async def test_pharmacy_cancel_of_hospital_settlement_refused(self, fleet: Fleet, world, core_url, settings):
        """2103 naming a 2207 settlement is SETTLEMENT_NOT_FOUND (only the matching cancel infno)."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        _, resp, _ = await settle_ok(fleet, world, core_url, settings.pg_dsn, t, card, bill(world))
        c = t.cancel("2103", resp["output"]["setlinfo"]["setl_id"], card.psn_no)
        status, cresp, _ = await fleet.call(c)
        assert_declined(status, cresp, "SETTLEMENT_NOT_FOUND")


class TestReversal:
    async def test_reverse_settlement(self, fleet: Fleet, world, core_url, settings):
        """2601 of a settlement restores the account, answers rvs_stas "1", and a re-run changes nothing."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        b, _, before = await settle_ok(fleet, world, core_url, settings.pg_dsn, t, card, bill(world))
        r = t.reverse(card.psn_no, b.body["msgid"], "2207")
        status, resp, _ = await fleet.call(r)
        assert_ok(status, resp)
        assert r.mac2_ok(resp)
        assert resp["output"]["data"] == {"omsgid": b.body["msgid"], "oinfno": "2207", "rvs_stas": "1"}
        m0 = money_state(before)
        after = money_state(await core_person(core_url, card.psn_no))
        for k in ("balance", "inscp_ytd", "fund_paid_ytd"):
            assert after[k] == m0[k], k
        (row,) = await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])
        assert row["state"] == "REVERSED"
        (posted,) = await core_settlements(core_url, b.body["msgid"])
        assert posted["state"] == "REVERSED"
        # idempotent: a new 2601 for the same original, and the very same 2601 again
        r2 = t.reverse(card.psn_no, b.body["msgid"], "2207")
        status, resp2, _ = await fleet.call(r2)
        assert_ok(status, resp2)
        assert r2.mac2_ok(resp2)
        assert resp2["output"]["data"]["rvs_stas"] == "1"
        raw1 = await fleet.client.post("/fsi/api/rsfComIfsService/callService", json=r.body)
        assert raw1.status == 200
        assert (await raw1.json())["inf_refmsgid"] == resp["inf_refmsgid"]
        assert money_state(await core_person(core_url, card.psn_no))["balance"] == m0["balance"]
        # a reversed settlement can no longer be cancelled
        c = t.cancel("2208", posted["setl_id"], card.psn_no)
        status, cresp, _ = await fleet.call(c)
        assert cresp["infcode"] == -2
        assert cresp["err_code"] in ("SETTLEMENT_NOT_FOUND", "ALREADY_CANCELLED")
        assert money_state(await core_person(core_url, card.psn_no))["balance"] == m0["balance"]

    async def test_reverse_never_sent(self, fleet: Fleet, world, core_url, settings):
        """2601 of a msgid never sent answers rvs_stas "1"; that msgid can then never post."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        before = await core_person(core_url, card.psn_no)
        ghost = t.next_msgid(datetime.now(SHANGHAI))
        r = t.reverse(card.psn_no, ghost, "2207")
        status, resp, _ = await fleet.call(r)
        assert_ok(status, resp)
        assert r.mac2_ok(resp)
        assert resp["output"]["data"]["rvs_stas"] == "1"
        assert ghost in (await core_ledger(core_url))["tombstones"]
        assert money_state(await core_person(core_url, card.psn_no)) == money_state(before)
        late = t.settle("2207", card, bill(world), msgid=ghost)
        status, lresp, _ = await fleet.call(late)
        assert lresp["infcode"] != 0, lresp
        assert await core_settlements(core_url, ghost) == []
        assert money_state(await core_person(core_url, card.psn_no)) == money_state(before)
        rows = await settlement_rows(settings.pg_dsn, t.fixmedins_code, ghost)
        assert all(r["state"] != "POSTED" for r in rows)

    async def test_reverse_after_cancel_refused(self, fleet: Fleet, world, core_url, settings):
        """2601 of a settlement that was cancelled is NOT_REVERSIBLE and changes nothing."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        b, resp, _ = await settle_ok(fleet, world, core_url, settings.pg_dsn, t, card, bill(world))
        c = t.cancel("2208", resp["output"]["setlinfo"]["setl_id"], card.psn_no)
        status, cresp, _ = await fleet.call(c)
        assert_ok(status, cresp)
        mid = await core_person(core_url, card.psn_no)
        r = t.reverse(card.psn_no, b.body["msgid"], "2207")
        status, rresp, _ = await fleet.call(r)
        assert_declined(status, rresp, "NOT_REVERSIBLE")
        assert r.mac2_ok(rresp)
        assert money_state(await core_person(core_url, card.psn_no)) == money_state(mid)
        (row,) = await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])
        assert row["state"] == "CANCELLED"

    async def test_reverse_cancel_reinstates_settlement(self, fleet: Fleet, world, core_url, settings):
        """2601 of a cancellation re-applies the settlement at the core and in PostgreSQL."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        b, resp, _before = await settle_ok(fleet, world, core_url, settings.pg_dsn, t, card, bill(world))
        settled = money_state(await core_person(core_url, card.psn_no))
        c = t.cancel("2208", resp["output"]["setlinfo"]["setl_id"], card.psn_no)
        status, cresp, _ = await fleet.call(c)
        assert_ok(status, cresp)
        r = t.reverse(card.psn_no, c.body["msgid"], "2208")
        status, rresp, _ = await fleet.call(r)
        assert_ok(status, rresp)
        assert rresp["output"]["data"]["rvs_stas"] == "1"
        after = money_state(await core_person(core_url, card.psn_no))
        for k in ("balance", "inscp_ytd", "fund_paid_ytd"):
            assert after[k] == settled[k], k
        (row,) = await settlement_rows(settings.pg_dsn, t.fixmedins_code, b.body["msgid"])
        assert row["state"] == "POSTED"


def _stmt_input(day, totals: dict[str, int], details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data = {
        "setl_optins": "330203", "stmt_begndate": day.isoformat(), "stmt_enddate": day.isoformat(),
        "medfee_sumamt": yuan(totals["medfee"]), "fund_pay_sumamt": yuan(totals["fund"]),
        "acct_pay": yuan(totals["acct"]), "fixmedins_setl_cnt": totals["cnt"],
    }  # fmt: skip
    inp: dict[str, Any] = {"data": data}
    if details is not None:
        inp["details"] = details
    return inp


class TestReconciliation:
    """Runs on the last pharmacy, which no other test settles at (a fresh institution for the day)."""

    settled: list[dict[str, Any]] = []  # noqa: RUF012 - shared by the tests of this class, in order

    @pytest.fixture
    async def recon(self, fleet: Fleet, world, core_url, settings) -> tuple[Terminal, list[dict[str, Any]]]:
        """Two live 2102 settlements and one cancelled, made once at the last pharmacy."""
        t = await fleet.terminal("pharmacy", 1)
        if not TestReconciliation.settled:
            for cancel_it in (False, True, False):
                card, _ = fleet.card(insutype="310", min_balance=20000)
                b, resp, _ = await settle_ok(fleet, world, core_url, settings.pg_dsn, t, card, bill(world), "2102")
                info = resp["output"]["setlinfo"]
                rec = {"msgid": b.body["msgid"], "info": info, "cancelled": False}
                if cancel_it:
                    c = t.cancel("2103", info["setl_id"], card.psn_no)
                    status, cresp, _ = await fleet.call(c)
                    assert_ok(status, cresp)
                    rec["cancelled"] = True
                TestReconciliation.settled.append(rec)
        return t, TestReconciliation.settled

    @staticmethod
    def totals(recs: list[dict[str, Any]]) -> dict[str, int]:
        live = [r["info"] for r in recs if not r["cancelled"]]
        return {
            "medfee": sum(fen(i["medfee_sumamt"]) for i in live), "fund": sum(fen(i["fund_pay_sumamt"]) for i in live),
            "acct": sum(fen(i["acct_pay"]) for i in live), "cnt": len(live),
        }  # fmt: skip

    async def test_3201_empty_day_balanced(self, fleet: Fleet):
        """3201 for a past day with nothing settled and zero totals is balanced."""
        t = await fleet.terminal("pharmacy", 1)
        day = shanghai_today() - timedelta(days=400)
        b = t.build("3201", _stmt_input(day, {"medfee": 0, "fund": 0, "acct": 0, "cnt": 0}))
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        assert resp["output"]["stmtinfo"]["stmt_rslt"] == "0"
        assert resp["output"]["stmtinfo"]["fixmedins_setl_cnt"] == 0

    async def test_3201_balanced(self, fleet: Fleet, recon):
        """3201 with the institution's own totals (settlements minus cancellations) is balanced."""
        t, recs = recon
        tot = self.totals(recs)
        b = t.build("3201", _stmt_input(shanghai_today(), tot))
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        si = resp["output"]["stmtinfo"]
        assert si["stmt_rslt"] == "0", si
        assert fen(si["medfee_sumamt"]) == tot["medfee"]
        assert fen(si["acct_pay"]) == tot["acct"]
        assert fen(si["fund_pay_sumamt"]) == tot["fund"]
        assert si["fixmedins_setl_cnt"] == tot["cnt"]

    @pytest.mark.parametrize("field", ["medfee", "fund", "acct", "cnt"])
    async def test_3201_unbalanced(self, fleet: Fleet, recon, field):
        """3201 off by one fen (or one settlement) in any total is not balanced."""
        t, recs = recon
        tot = dict(self.totals(recs))
        tot[field] += 1
        b = t.build("3201", _stmt_input(shanghai_today(), tot))
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        assert resp["output"]["stmtinfo"]["stmt_rslt"] == "1"

    async def test_3202_matches(self, fleet: Fleet, recon):
        """3202 with every detail (the cancelled one flagged refunded) has no breaks."""
        t, recs = recon
        details = [self.detail(r) for r in recs]
        b = t.build("3202", _stmt_input(shanghai_today(), self.totals(recs), details))
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        assert resp["output"]["breaks"] == []
        assert resp["output"]["stmtinfo"]["stmt_rslt"] == "0"

    async def test_3202_missing_detail(self, fleet: Fleet, recon):
        """3202 without one live settlement's detail breaks with MISSING_AT_INSTITUTION for it."""
        t, recs = recon
        live = [r for r in recs if not r["cancelled"]]
        missing = live[0]
        details = [self.detail(r) for r in recs if r is not missing]
        b = t.build("3202", _stmt_input(shanghai_today(), self.totals(recs), details))
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        breaks = resp["output"]["breaks"]
        assert [(x["msgid"], x["kind"]) for x in breaks] == [(missing["msgid"], "MISSING_AT_INSTITUTION")]
        assert breaks[0]["setl_id"] == missing["info"]["setl_id"]
        assert breaks[0]["institution"] is None
        assert resp["output"]["stmtinfo"]["stmt_rslt"] == "1"

    async def test_3202_amount_mismatch(self, fleet: Fleet, recon):
        """3202 with a detail one fen off breaks with AMOUNT_MISMATCH."""
        t, recs = recon
        details = [self.detail(r) for r in recs]
        target = next(d for d, r in zip(details, recs, strict=True) if not r["cancelled"])
        target["medfee_sumamt"] = yuan(fen(target["medfee_sumamt"]) + 1)
        b = t.build("3202", _stmt_input(shanghai_today(), self.totals(recs), details))
        status, resp, _ = await fleet.call(b)
        assert_ok(status, resp)
        assert [(x["msgid"], x["kind"]) for x in resp["output"]["breaks"]] == [(target["msgid"], "AMOUNT_MISMATCH")]

    @staticmethod
    def detail(r: dict[str, Any]) -> dict[str, Any]:
        i = r["info"]
        return {
            "msgid": r["msgid"], "setl_id": i["setl_id"], "medfee_sumamt": i["medfee_sumamt"],
            "fund_pay_sumamt": i["fund_pay_sumamt"], "acct_pay": i["acct_pay"],
            "refd_setl_flag": "1" if r["cancelled"] else "0",
        }  # fmt: skip


def test_decimal_helper_sanity():
    """fen() is exact on the wire's two-decimal floats and refuses three decimals."""
    assert fen(0.1) + fen(0.2) == fen(0.3)
    assert fen(Decimal("12.34")) == 1234
    with pytest.raises(AssertionError):
        fen(1.005)
