"""The core simulator's ledger semantics, over its real HTTP interface on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coresim import CALL_SERVICE, CoreState, WorldError
from tests.integration.conftest_core import (  # noqa: F401 - fixtures are registered by import
    HOSPITAL,
    PHARMACY,
    POOR,
    RICH,
    SUSPENDED,
    WORLD,
    Msgids,
    Sim,
    _msgids,
    _sim,
    posting_data,
)


async def post(sim: Sim, msgid: str, **kw: Any) -> dict[str, Any]:
    return await sim.call("2207", msgid, posting_data(**kw))


class TestPersonQuery:
    async def test_1101_returns_person_balance_accumulators_and_version(self, sim: Sim, msgids: Msgids) -> None:
        """1101 answers the person with balance and accumulators as yuan numbers, and the version."""
        reply = await sim.call("1101", msgids(), {"psn_no": RICH})
        assert reply["infcode"] == 0
        out = reply["output"]
        assert out["baseinfo"]["psn_no"] == RICH
        assert out["insuinfo"][0]["balc"] == 500.0
        assert out["insuinfo"][0]["psn_insu_stas"] == "1"
        assert out["accuinfo"]["inscp_ytd"] == 1000.0
        assert out["accuinfo"]["fund_paid_ytd"] == 600.0
        assert out["version"] == 1

    async def test_unknown_person_is_refused(self, sim: Sim, msgids: Msgids) -> None:
        """An unknown psn_no is a business rejection PERSON_NOT_FOUND."""
        reply = await sim.call("1101", msgids(), {"psn_no": "99999999"})
        assert (reply["infcode"], reply["err_code"]) == (-2, "PERSON_NOT_FOUND")

    async def test_malformed_envelope_is_refused(self, sim: Sim, msgids: Msgids) -> None:
        """A posting without expected_version is refused MALFORMED, naming the field."""
        data = posting_data()
        del data["expected_version"]
        reply = await sim.call("2207", msgids(), data)
        assert (reply["infcode"], reply["err_code"]) == (-2, "MALFORMED")
        assert "expected_version" in reply["err_msg"]


class TestPosting:
    async def test_post_debits_account_and_adds_to_accumulators(self, sim: Sim, msgids: Msgids) -> None:
        """A posting debits acct_pay, adds in-scope and fund amounts to the year's totals, bumps version."""
        reply = await post(sim, msgids())
        assert reply["infcode"] == 0, reply
        info = reply["output"]["setlinfo"]
        assert info["setl_id"].startswith("S")
        assert len(info["setl_id"]) <= 30
        assert (info["balc"], info["version"]) == (470.0, 2)
        person = await sim.person(RICH)
        assert (person["balance"], person["inscp_ytd"], person["fund_paid_ytd"]) == (
            "470.00",
            "1080.00",
            "656.00",
        )
        assert person["version"] == 2

    async def test_same_msgid_twice_posts_once(self, sim: Sim, msgids: Msgids) -> None:
        """A retry of the same msgid and content gets the same receipt and changes nothing."""
        msgid = msgids()
        first = await post(sim, msgid)
        second = await post(sim, msgid)
        assert second["output"] == first["output"]
        assert len((await sim.settlements())["settlements"]) == 1
        assert (await sim.person(RICH))["balance"] == "470.00"

    async def test_same_msgid_with_other_content_conflicts(self, sim: Sim, msgids: Msgids) -> None:
        """The same msgid with different amounts is refused MSGID_CONFLICT."""
        msgid = msgids()
        await post(sim, msgid)
        reply = await post(sim, msgid, acct_pay=20.00, psn_cash_pay=24.00)
        assert (reply["infcode"], reply["err_code"]) == (-2, "MSGID_CONFLICT")

    async def test_stale_version_is_refused(self, sim: Sim, msgids: Msgids) -> None:
        """A posting against a version the person has moved past is refused VERSION_CONFLICT."""
        await post(sim, msgids())
        reply = await post(sim, msgids(), version=1)
        assert (reply["infcode"], reply["err_code"]) == (-2, "VERSION_CONFLICT")
        assert (await sim.person(RICH))["balance"] == "470.00"

    async def test_account_payment_above_balance_is_refused(self, sim: Sim, msgids: Msgids) -> None:
        """acct_pay above the balance is refused INSUFFICIENT_BALANCE and nothing changes."""
        reply = await post(sim, msgids(), psn_no=POOR)
        assert (reply["infcode"], reply["err_code"]) == (-2, "INSUFFICIENT_BALANCE")
        person = await sim.person(POOR)
        assert (person["balance"], person["version"]) == ("10.00", 1)

    @pytest.mark.parametrize(("psn_no", "reason"), [(SUSPENDED, "PERSON_SUSPENDED"), ("404", "PERSON_NOT_FOUND")])
    async def test_posting_for_unentitled_person_is_refused(
        self, sim: Sim, msgids: Msgids, psn_no: str, reason: str
    ) -> None:
        """Postings for a suspended or unknown person are refused with the matching reason."""
        reply = await post(sim, msgids(), psn_no=psn_no)
        assert (reply["infcode"], reply["err_code"]) == (-2, reason)

    async def test_concurrent_postings_on_one_version_let_exactly_one_win(self, sim: Sim, msgids: Msgids) -> None:
        """Twenty concurrent postings against version 1 of one person: one posts, the rest conflict."""
        replies = await asyncio.gather(*(post(sim, msgids()) for _ in range(20)))
        assert sorted(r["err_code"] or "OK" for r in replies) == ["OK"] + ["VERSION_CONFLICT"] * 19
        assert (await sim.person(RICH))["balance"] == "470.00"
        assert len((await sim.settlements())["settlements"]) == 1


class TestCancel:
    async def test_cancel_restores_account_and_accumulators(self, sim: Sim, msgids: Msgids) -> None:
        """2208 refunds the account and takes the amounts back out of the year's totals."""
        setl_id = (await post(sim, msgids()))["output"]["setlinfo"]["setl_id"]
        reply = await sim.call("2208", msgids(), {"setl_id": setl_id, "psn_no": RICH, "fixmedins_code": HOSPITAL})
        assert reply["infcode"] == 0, reply
        info = reply["output"]["setlinfo"]
        assert info["orig_setl_id"] == setl_id
        assert info["setl_id"] != setl_id
        assert (info["medfee_sumamt"], info["fund_pay_sumamt"], info["acct_pay"], info["psn_cash_pay"]) == (
            100.0, 56.0, 30.0, 14.0,
        )  # fmt: skip
        assert info["balc"] == 500.0
        person = await sim.person(RICH)
        assert (person["balance"], person["inscp_ytd"], person["fund_paid_ytd"]) == (
            "500.00",
            "1000.00",
            "600.00",
        )
        states = {s["setl_id"]: s["state"] for s in (await sim.settlements())["settlements"]}
        assert states == {setl_id: "CANCELLED"}

    async def test_cancel_is_idempotent_per_msgid_and_refused_twice(self, sim: Sim, msgids: Msgids) -> None:
        """The same cancel msgid gets the same receipt; a new cancel of it is ALREADY_CANCELLED."""
        setl_id = (await post(sim, msgids()))["output"]["setlinfo"]["setl_id"]
        data = {"setl_id": setl_id, "psn_no": RICH, "fixmedins_code": HOSPITAL}
        cancel_msgid = msgids()
        first = await sim.call("2208", cancel_msgid, data)
        again = await sim.call("2208", cancel_msgid, data)
        other = await sim.call("2208", msgids(), data)
        assert again["output"] == first["output"]
        assert (other["infcode"], other["err_code"]) == (-2, "ALREADY_CANCELLED")
        assert (await sim.person(RICH))["balance"] == "500.00"

    async def test_another_institution_may_not_cancel(self, sim: Sim, msgids: Msgids) -> None:
        """A cancel from an institution other than the settling one is SETTLEMENT_NOT_FOUND."""
        setl_id = (await post(sim, msgids()))["output"]["setlinfo"]["setl_id"]
        data = {"setl_id": setl_id, "psn_no": RICH, "fixmedins_code": PHARMACY}
        reply = await sim.call("2208", msgids(PHARMACY), data, fixmedins_code=PHARMACY)
        assert (reply["infcode"], reply["err_code"]) == (-2, "SETTLEMENT_NOT_FOUND")
        assert (await sim.person(RICH))["balance"] == "470.00"


class TestReversal:
    async def reverse(self, sim: Sim, msgid: str, omsgid: str, oinfno: str = "2207") -> dict[str, Any]:
        return await sim.call("2601", msgid, {"psn_no": RICH, "omsgid": omsgid, "oinfno": oinfno})

    async def test_reversal_of_posted_settlement_restores_and_is_idempotent(self, sim: Sim, msgids: Msgids) -> None:
        """Reversing a posted settlement restores the person; repeating it (any msgid) changes nothing."""
        omsgid = msgids()
        await post(sim, omsgid)
        rvs_msgid = msgids()
        first = await self.reverse(sim, rvs_msgid, omsgid)
        assert first["infcode"] == 0, first
        assert first["output"]["data"]["was_posted"] is True
        assert (await self.reverse(sim, rvs_msgid, omsgid))["output"] == first["output"]
        assert (await self.reverse(sim, msgids(), omsgid))["output"] == first["output"]
        person = await sim.person(RICH)
        assert (person["balance"], person["inscp_ytd"], person["version"]) == ("500.00", "1000.00", 3)
        assert [s["state"] for s in (await sim.settlements())["settlements"]] == ["REVERSED"]

    async def test_reversal_before_arrival_refuses_the_late_posting(self, sim: Sim, msgids: Msgids) -> None:
        """Reversing a msgid the core never had leaves a tombstone: the late posting is refused REVERSED."""
        omsgid = msgids()
        reply = await self.reverse(sim, msgids(), omsgid)
        assert reply["output"]["data"] == {
            "omsgid": omsgid,
            "oinfno": "2207",
            "was_posted": False,
            "rvs_stas": "1",
        }
        late = await post(sim, omsgid)
        assert (late["infcode"], late["err_code"]) == (-2, "REVERSED")
        ledger = await sim.settlements()
        assert (ledger["settlements"], ledger["tombstones"]) == ([], [omsgid])
        assert (await sim.person(RICH))["balance"] == "500.00"

    async def test_reversal_of_cancelled_settlement_is_refused(self, sim: Sim, msgids: Msgids) -> None:
        """A settlement that was cancelled is NOT_REVERSIBLE."""
        omsgid = msgids()
        setl_id = (await post(sim, omsgid))["output"]["setlinfo"]["setl_id"]
        await sim.call("2208", msgids(), {"setl_id": setl_id, "psn_no": RICH, "fixmedins_code": HOSPITAL})
        reply = await self.reverse(sim, msgids(), omsgid)
        assert (reply["infcode"], reply["err_code"]) == (-2, "NOT_REVERSIBLE")

    async def test_reversal_of_cancel_reapplies_the_settlement(self, sim: Sim, msgids: Msgids) -> None:
        """Reversing a cancel puts the settlement back: debited again, POSTED again, cancellable again."""
        setl_id = (await post(sim, msgids()))["output"]["setlinfo"]["setl_id"]
        cancel_msgid = msgids()
        data = {"setl_id": setl_id, "psn_no": RICH, "fixmedins_code": HOSPITAL}
        await sim.call("2208", cancel_msgid, data)
        reply = await self.reverse(sim, msgids(), cancel_msgid, oinfno="2208")
        assert reply["output"]["data"]["was_posted"] is True
        person = await sim.person(RICH)
        assert (person["balance"], person["inscp_ytd"], person["fund_paid_ytd"]) == (
            "470.00",
            "1080.00",
            "656.00",
        )
        ledger = await sim.settlements()
        assert [s["state"] for s in ledger["settlements"]] == ["POSTED"]
        assert [c["state"] for c in ledger["cancellations"]] == ["REVERSED"]
        assert (await sim.call("2208", msgids(), data))["infcode"] == 0


class TestSettlementDetails:
    async def test_3202_lists_the_institutions_days_with_states_and_yuan_amounts(
        self, sim: Sim, msgids: Msgids
    ) -> None:
        """3202 answers the institution's settlements of those dates, cancelled ones included, in yuan."""
        kept, cancelled = msgids(), msgids()
        await post(sim, kept)
        setl_id = (await post(sim, cancelled, version=2))["output"]["setlinfo"]["setl_id"]
        await sim.call("2208", msgids(), {"setl_id": setl_id, "psn_no": RICH, "fixmedins_code": HOSPITAL})
        await post(sim, msgids(), version=4, setl_time="2026-03-02 08:00:00")
        reply = await sim.call("3202", msgids(), {"stmt_begndate": "2026-03-01", "stmt_enddate": "2026-03-01"})
        assert reply["infcode"] == 0, reply
        details = reply["output"]["details"]
        assert [(d["medins_setl_id"], d["setl_stas"]) for d in details] == [(kept, "POSTED"), (cancelled, "CANCELLED")]
        assert {k: details[1][k] for k in ("setl_id", "fixmedins_code", "setl_time", "medfee_sumamt", "acct_pay")} == {
            "setl_id": setl_id, "fixmedins_code": HOSPITAL, "setl_time": "2026-03-01 09:30:00",
            "medfee_sumamt": 100.0, "acct_pay": 30.0,
        }  # fmt: skip
        other = await sim.call("3202", msgids(PHARMACY), {"stmt_begndate": "2026-03-01", "stmt_enddate": "2026-03-31"},
                               fixmedins_code=PHARMACY)  # fmt: skip
        assert other["output"] == {"details": []}

    @pytest.mark.parametrize(
        "data",
        [{"stmt_begndate": "2026-03-02", "stmt_enddate": "2026-03-01"}, {"stmt_begndate": "2026-03-01"},
         {"stmt_begndate": "20260301", "stmt_enddate": "2026-03-01"}],
    )  # fmt: skip
    async def test_3202_with_bad_dates_is_malformed(self, sim: Sim, msgids: Msgids, data: dict[str, Any]) -> None:
        """Missing, misspelt or reversed dates are refused MALFORMED."""
        reply = await sim.call("3202", msgids(), data)
        assert (reply["infcode"], reply["err_code"]) == (-2, "MALFORMED")


class TestFaults:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"error_rate": 1.5}, "error_rate"),
            ({"timeout_rate": -0.1}, "timeout_rate"),
            ({"drop_after_post_rate": "0.5"}, "drop_after_post_rate"),
            ({"latency_ms": True}, "latency_ms"),
            ({"down": "yes"}, "down"),
            ({"hang_s": 1e9}, "hang_s"),
            ({"seed": 1.5}, "seed"),
            ({"bogus": 1}, "bogus"),
        ],
    )
    async def test_bad_fault_config_is_refused_naming_the_field(
        self, sim: Sim, body: dict[str, Any], field: str
    ) -> None:
        """PUT /sim/faults with a bad value answers 400 with a message naming the field."""
        async with sim.http.put(sim.base_url + "/sim/faults", json=body) as resp:
            assert resp.status == 400
            assert field in (await resp.json())["message"]
        assert (await sim.get("/sim/faults"))["error_rate"] == 0.0

    async def test_fault_config_round_trips(self, sim: Sim) -> None:
        """A valid configuration is stored and shown, defaults filling missing fields."""
        await sim.set_faults(latency_ms=5, error_rate=0.25, seed=7)
        faults = await sim.get("/sim/faults")
        assert faults == {
            "latency_ms": 5.0, "error_rate": 0.25, "timeout_rate": 0.0, "drop_after_post_rate": 0.0,
            "down": False, "hang_s": 5.0, "seed": 7,
        }  # fmt: skip

    async def test_error_fault_answers_system_error_without_acting(self, sim: Sim, msgids: Msgids) -> None:
        """error_rate 1 answers infcode -1 and posts nothing."""
        await sim.set_faults(error_rate=1)
        reply = await post(sim, msgids())
        assert reply["infcode"] == -1
        await sim.set_faults()
        assert (await sim.settlements())["settlements"] == []

    async def test_down_answers_503_but_admin_endpoints_work(self, sim: Sim, msgids: Msgids) -> None:
        """down makes callService answer 503 without acting; /healthz and /sim stay up."""
        await sim.set_faults(down=True)
        envelope = {"infno": "2207", "msgid": msgids(), "fixmedins_code": HOSPITAL,
                    "input": {"data": posting_data()}}  # fmt: skip
        async with sim.http.post(sim.base_url + CALL_SERVICE, json=envelope) as resp:
            assert resp.status == 503
        assert (await sim.get("/healthz"))["status"] == "ok"
        assert (await sim.settlements())["settlements"] == []


class TestPersonsAdmin:
    async def test_upsert_replaces_person_and_bumps_version(self, sim: Sim) -> None:
        """POST /sim/persons replaces an existing person and moves its version on."""
        person = dict(WORLD["persons"][1], balance="99.50")
        async with sim.http.post(sim.base_url + "/sim/persons", json=[person]) as resp:
            assert (resp.status, await resp.json()) == (200, {"upserted": 1})
        shown = await sim.person(POOR)
        assert (shown["balance"], shown["version"]) == ("99.50", 2)

    async def test_upsert_with_bad_amount_is_refused_naming_the_field(self, sim: Sim) -> None:
        """An amount with three decimals is refused 400 naming index and field; nothing changes."""
        people = [dict(WORLD["persons"][1], balance="1.00"), dict(WORLD["persons"][0], balance="1.234")]
        async with sim.http.post(sim.base_url + "/sim/persons", json=people) as resp:
            assert resp.status == 400
            assert "persons[1].balance" in (await resp.json())["message"]
        assert (await sim.person(POOR))["balance"] == "10.00"

    def test_world_with_bad_status_is_refused(self) -> None:
        """CoreState.from_world refuses an unknown status, naming the field."""
        with pytest.raises(WorldError, match=r"persons\[0\]\.status"):
            CoreState.from_world({"persons": [dict(WORLD["persons"][0], status="GONE")]})
