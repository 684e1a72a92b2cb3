"""Outpatient visits over fakes (SPEC §6.6): 2201–2205, 2206/2207 by reference and 2208 restoring the batch,
every branch of each flow, and a by-reference 2207 whose outcome is unknown holding its batch until the
reversal closes it."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.domain.errors import CoreTimeout
from gateway.domain.registry import SettlementState
from gateway.pipeline.recovery import JournalRecovery
from gateway.pipeline.reversals import ReversalWorker
from loadtest.terminal import fen
from tests.fakes.visits import InMemoryVisits
from tests.pipeline.conftest import CODE, DRUG, PSN, World, person
from tests.pipeline.test_recovery import crash_after_claim

B_DRUG = ("XJ01DDA006A002391327105", "1", "40.00")  # class B, capped at 37.62 a unit


class Visit:
    """One registered visit of the world's card holder."""

    def __init__(self, w: World, mdtrt_id: str) -> None:
        self.w, self.id = w, mdtrt_id

    async def upload(self, bchno: str, *items: tuple[str, str, str], first_sn: int = 1) -> dict[str, Any]:
        t = self.w.terminal
        return await self.w.send(
            t.upload_fees(PSN, self.id, bchno, list(items or [DRUG]), first_sn=first_sn, now=self.w.clock.now())
        )

    async def settle(self, bchno: str, total: int, infno: str = "2207", **kw: Any) -> dict[str, Any]:
        w = self.w
        b = w.terminal.settle_by_reference(infno, w.card, self.id, bchno, total, now=w.clock.now(), **kw)
        return await w.send(b)


async def registered(w: World, ipt_otp_no: str = "MZ0001") -> Visit:
    r = await w.send(w.terminal.register(w.card, ipt_otp_no, now=w.clock.now()))
    assert r["infcode"] == 0, r
    return Visit(w, r["output"]["data"]["mdtrt_id"])


def visits(w: World) -> InMemoryVisits:
    assert isinstance(w.deps.visits, InMemoryVisits)
    return w.deps.visits


DRUG_FEN = fen("17.20")


class TestRegistration:
    async def test_register_and_again(self, world: World):
        """2201 mints a 30-char mdtrt_id; the same ipt_otp_no again answers the same one."""
        v = await registered(world)
        assert len(v.id) == 30
        assert v.id.startswith("330200")
        again = await registered(world)
        assert again.id == v.id

    async def test_unknown_person(self, world: World):
        world.core.persons.clear()
        r = await world.send(world.terminal.register(world.card, "MZ1", now=world.clock.now()))
        assert r["err_code"] == "PERSON_NOT_ENTITLED"
        assert "not known" in r["err_msg"]

    async def test_listed_person(self, world: World):
        world.lookup.persons[PSN] = "11"
        r = await world.send(world.terminal.register(world.card, "MZ1", now=world.clock.now()))
        assert r["err_code"] == "PERSON_NOT_ENTITLED"
        assert r["output"]["reason"] == "11"

    async def test_suspended_or_other_insutype(self, world: World):
        world.core.persons[PSN] = person(psn_insu_stas="0")
        r = await world.send(world.terminal.register(world.card, "MZ1", now=world.clock.now()))
        assert r["err_code"] == "PERSON_NOT_ENTITLED"
        world.core.persons[PSN] = person()
        r = await world.send(world.terminal.register(world.card, "MZ1", insutype="390", now=world.clock.now()))
        assert r["err_code"] == "PERSON_NOT_ENTITLED"
        assert "insutype" in r["err_msg"]

    async def test_cancel_registration(self, world: World):
        """2202 cancels; the cancelled visit then refuses 2203/2204/2205/2207 and a second 2202 (VISIT_STATE)."""
        v = await registered(world)
        t, now = world.terminal, world.clock.now()
        r = await world.send(t.cancel_registration(PSN, v.id, "MZ0002", now=now))
        assert r["err_code"] == "MALFORMED"
        assert "ipt_otp_no" in r["err_msg"]
        assert (await world.send(t.cancel_registration(PSN, v.id, "MZ0001", now=now)))["infcode"] == 0
        for b in (t.cancel_registration(PSN, v.id, "MZ0001", now=now), t.visit_info(PSN, v.id, now=now),
                  t.cancel_fees(PSN, v.id, now=now)):  # fmt: skip
            r = await world.send(b)
            assert r["err_code"] == "VISIT_STATE", r
            assert "CANCELLED" in r["err_msg"]
        assert (await v.upload("B1"))["err_code"] == "VISIT_STATE"
        assert (await v.settle("B1", DRUG_FEN))["err_code"] == "VISIT_STATE"

    async def test_cancel_refused_while_settled(self, world: World):
        v = await registered(world)
        await v.upload("B1")
        s = await v.settle("B1", DRUG_FEN)
        assert s["infcode"] == 0, s
        r = await world.send(world.terminal.cancel_registration(PSN, v.id, "MZ0001", now=world.clock.now()))
        assert r["err_code"] == "VISIT_STATE"
        assert r["output"]["setl_id"] == s["output"]["setlinfo"]["setl_id"]

    async def test_unknown_visit_and_other_person(self, world: World):
        t, now = world.terminal, world.clock.now()
        r = await world.send(t.visit_info(PSN, "3302002026120110000000000099", now=now))
        assert r["err_code"] == "MALFORMED"  # not 30 chars
        r = await world.send(t.visit_info(PSN, "330200202612011000000000000099", now=now))
        assert r["err_code"] == "VISIT_NOT_FOUND"
        v = await registered(world)
        r = await world.send(t.visit_info("33020000000000000999", v.id, now=now))
        assert r["err_code"] == "MALFORMED"
        assert "psn_no" in r["err_msg"]


class TestUpload:
    async def test_result_lines(self, world: World):
        """2204 answers the per-line §9 split: class A in scope, class B over its cap and its B share."""
        v = await registered(world)
        r = await v.upload("B1", DRUG, B_DRUG)
        assert r["infcode"] == 0, r
        a, b = r["output"]["result"]
        assert a["chrgitm_lv"] == "01"
        assert a["inscp_scp_amt"] == 17.2
        assert a["pric_uplmt_amt"] == 999999
        assert b["chrgitm_lv"] == "02"
        assert b["overlmt_amt"] == 2.38
        assert b["pric_uplmt_amt"] == 37.62
        assert b["preselfpay_amt"] + b["inscp_scp_amt"] + b["overlmt_amt"] == 40.0
        assert 0 < b["selfpay_prop"] < 1
        assert b["lmt_used_flag"] == "1"

    async def test_all_or_nothing(self, world: World):
        """One bad line refuses the call naming it; nothing is stored."""
        v = await registered(world)
        r = await v.upload("B1", DRUG, ("NOPE", "1", "1.00"))
        assert r["err_code"] == "ITEM_UNKNOWN"
        assert not visits(world).batches
        b = world.terminal.upload_fees(PSN, v.id, "B1", [DRUG, DRUG], now=world.clock.now())
        b.body["input"]["feedetail"][1]["feedetl_sn"] = "000001"
        assert (await world.send(b))["err_code"] == "FEE_LINE_DUPLICATE"
        b = world.terminal.upload_fees(PSN, v.id, "B1", [DRUG, DRUG], now=world.clock.now())
        b.body["input"]["feedetail"][1]["chrg_bchno"] = "B2"
        r = await world.send(b)
        assert r["err_code"] == "MALFORMED"
        assert "feedetail[1].chrg_bchno" in r["err_msg"]
        b = world.terminal.upload_fees(PSN, v.id, "B1", [DRUG], now=world.clock.now())
        b.body["input"]["feedetail"][0]["det_item_fee_sumamt"] = 99.0
        assert (await world.send(b))["err_code"] == "AMOUNT_MISMATCH"
        assert not visits(world).batches

    async def test_reused_sn_and_limit(self, world: World):
        v = await registered(world)
        assert (await v.upload("B1"))["infcode"] == 0
        r = await v.upload("B2")
        assert r["err_code"] == "FEE_LINE_DUPLICATE"
        assert "000001" in r["err_msg"]
        lines = [DRUG] * 2001
        r = await world.send(world.terminal.upload_fees(PSN, v.id, "B3", lines, now=world.clock.now()))
        assert r["err_code"] == "MALFORMED"
        assert "at most 2000" in r["err_msg"]

    async def test_settled_batch_refuses_lines(self, world: World):
        v = await registered(world)
        await v.upload("B1")
        s = await v.settle("B1", DRUG_FEN)
        r = await v.upload("B1", first_sn=2)
        assert r["err_code"] == "BATCH_SETTLED"
        assert r["output"]["setl_id"] == s["output"]["setlinfo"]["setl_id"]


class TestCancelFees:
    async def test_batch_and_all(self, world: World):
        v = await registered(world)
        await v.upload("B1")
        await v.upload("B2", first_sn=2)
        t = world.terminal
        r = await world.send(t.cancel_fees(PSN, v.id, "B1", now=world.clock.now()))
        assert r["output"]["data"]["removed"] == 1
        assert (await v.settle("B1", DRUG_FEN))["err_code"] == "NO_FEES"
        s = await v.settle("B2", DRUG_FEN)
        assert s["infcode"] == 0
        r = await world.send(t.cancel_fees(PSN, v.id, "B2", now=world.clock.now()))
        assert r["err_code"] == "BATCH_SETTLED"
        r = await world.send(t.cancel_fees(PSN, v.id, "0000", now=world.clock.now()))
        assert r["err_code"] == "BATCH_SETTLED"  # nothing unsettled left, the settled batch stays
        await v.upload("B3", first_sn=3)
        r = await world.send(t.cancel_fees(PSN, v.id, "0000", now=world.clock.now()))
        assert r["infcode"] == 0
        assert r["output"]["data"]["removed"] == 1
        assert (await v.settle("B2", DRUG_FEN))["err_code"] == "BATCH_SETTLED"


class TestByReference:
    async def test_full_visit(self, world: World):
        """2201 → 2203 → 2204 → 2206 → 2207 → 2208 → 2207 again."""
        v = await registered(world)
        r = await world.send(world.terminal.visit_info(PSN, v.id, "11", now=world.clock.now()))
        assert r["infcode"] == 0
        await v.upload("B1", DRUG, B_DRUG)
        total = DRUG_FEN + fen("40.00")
        pre = await v.settle("B1", total, "2206")
        assert pre["infcode"] == 0
        assert "setl_id" not in pre["output"]["setlinfo"]
        s = await v.settle("B1", total)
        info = s["output"]["setlinfo"]
        assert s["infcode"] == 0
        assert info["medfee_sumamt"] == 57.2
        assert info["overlmt_selfpay"] == 2.38
        assert info["mdtrt_id"] == v.id
        assert info["chrg_bchno"] == "B1"
        again = await v.settle("B1", total)  # a fresh msgid: HIS retry
        assert again["err_code"] == "BATCH_SETTLED"
        assert again["output"]["setl_id"] == info["setl_id"]
        c = world.terminal.cancel(
            "2208", info["setl_id"], PSN, mdtrt_id="330200202612011000000000000099", now=world.clock.now()
        )
        assert (await world.send(c))["err_code"] == "SETTLEMENT_NOT_FOUND"
        c = world.terminal.cancel("2208", info["setl_id"], PSN, mdtrt_id=v.id, now=world.clock.now())
        r = await world.send(c)
        assert r["infcode"] == 0
        assert r["output"]["setlinfo"]["pdn_cash_pay"] == r["output"]["setlinfo"]["psn_cash_pay"]
        s2 = await v.settle("B1", total)
        assert s2["infcode"] == 0
        assert s2["output"]["setlinfo"]["setl_id"] != info["setl_id"]

    async def test_refusals(self, world: World):
        v = await registered(world)
        assert (await v.settle("B1", DRUG_FEN))["err_code"] == "NO_FEES"
        await v.upload("B1")
        r = await v.settle("B1", DRUG_FEN + 1)
        assert r["err_code"] == "AMOUNT_MISMATCH"
        assert "batch B1 sums to 17.2" in r["err_msg"]
        await world.send(world.terminal.visit_info(PSN, v.id, "14", now=world.clock.now()))
        r = await v.settle("B1", DRUG_FEN)
        assert r["err_code"] == "VISIT_STATE"
        assert "med_type" in r["err_msg"]
        r = await v.settle("B1", DRUG_FEN, med_type="14")
        assert r["infcode"] == 0, r

    async def test_his_totals_must_match(self, world: World):
        v = await registered(world)
        await v.upload("B1")
        b = world.terminal.settle_by_reference("2207", world.card, v.id, "B1", DRUG_FEN, now=world.clock.now())
        b.body["input"]["data"]["inscp_scp_amt"] = 1.0
        r = await world.send(b)
        assert r["err_code"] == "AMOUNT_MISMATCH"
        assert "inscp_scp_amt" in r["err_msg"]

    async def test_other_persons_visit(self, world: World):
        v = await registered(world)
        await v.upload("B1")
        vs = visits(world)
        vs.visits[v.id] = dataclasses.replace(vs.visits[v.id], psn_no="33020000000000000999")
        r = await v.settle("B1", DRUG_FEN)
        assert r["err_code"] == "MALFORMED"
        assert "psn_no" in r["err_msg"]

    async def test_missing_reference(self, world: World):
        b = world.terminal.settle_by_reference("2207", world.card, "X" * 30, "B1", DRUG_FEN, now=world.clock.now())
        del b.body["input"]["data"]["chrg_bchno"]
        r = await world.send(b)
        assert r["err_code"] == "MALFORMED"
        assert "chrg_bchno" in r["err_msg"]

    async def test_inline_unchanged(self, world: World):
        r = await world.send(world.settle("2207"))
        assert r["infcode"] == 0
        assert "chrg_bchno" not in r["output"]["setlinfo"]


class TestUnknownOutcome:
    async def test_timeout_holds_batch_until_reversed(self, world: World):
        """A CORE_TIMEOUT 2207 by reference leaves its batch held by the UNKNOWN settlement (BATCH_SETTLED, no
        setl_id) until the reversal worker's 2601 ends it REVERSED; then the batch settles again."""
        v = await registered(world)
        await v.upload("B1")
        world.core.fail["post"] = [CoreTimeout("no answer")]
        first = await v.settle("B1", DRUG_FEN)
        assert first["err_code"] == "CORE_TIMEOUT"
        r = await v.settle("B1", DRUG_FEN)
        assert r["err_code"] == "BATCH_SETTLED"
        assert r["output"]["setl_id"] is None
        assert await ReversalWorker(world.deps).run_once() == 1
        s = await v.settle("B1", DRUG_FEN)
        assert s["infcode"] == 0, s

    async def test_dead_process_holds_batch(self, world: World):
        """A by-reference 2207 whose process died after the claim: held while PENDING, then by the UNKNOWN
        settlement journal recovery records, free once reversed."""
        v = await registered(world)
        await v.upload("B1")
        b = world.terminal.settle_by_reference("2207", world.card, v.id, "B1", DRUG_FEN, now=world.clock.now())
        await crash_after_claim(world, b)
        msgid = b.body["msgid"]
        await visits(world).claim_batch(CODE, v.id, "B1", msgid, 0)
        assert (await visits(world).batch(CODE, v.id, "B1")).holder.pending  # type: ignore[union-attr]
        world.clock.advance(world.deps.settings.journal_recovery_grace_s + 1)
        assert await JournalRecovery(world.deps).run_once() == 1
        assert world.store.settlements[(CODE, msgid)].state is SettlementState.UNKNOWN
        r = await v.settle("B1", DRUG_FEN)
        assert r["err_code"] == "BATCH_SETTLED"
        await ReversalWorker(world.deps).run_once()
        assert (await v.settle("B1", DRUG_FEN))["infcode"] == 0
