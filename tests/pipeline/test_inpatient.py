"""Inpatient stays over fakes (SPEC §6.7): 2401 → 2301 (refund lines) → 2402 → 2303/2304 → 2305 → 2304, the
state rules of every stay transaction, 2302, the deductible once per stay, and a 2601 of a 2304."""

from __future__ import annotations

from typing import Any

from gateway.domain.errors import CoreTimeout
from gateway.domain.registry import SettlementState
from gateway.pipeline.reversals import ReversalWorker
from loadtest.terminal import fen
from loadtest.terminal_stays import Line
from tests.pipeline.conftest import CODE, DRUG, PSN, World

BIG = (DRUG[0], "100", DRUG[2])  # class A, 860.00 yuan: above the per-stay deductible
BIG_FEN = fen("860.00")
DRUG_FEN = fen("17.20")


class Stay:
    """One admitted stay of the world's card holder."""

    def __init__(self, w: World, mdtrt_id: str) -> None:
        self.w, self.id = w, mdtrt_id
        self.sn = 1

    async def upload(self, *items: Line) -> dict[str, Any]:
        w = self.w
        b = w.terminal.upload_stay_fees(PSN, self.id, list(items or [DRUG]), first_sn=self.sn, now=w.clock.now())
        r = await w.send(b)
        if r["infcode"] == 0:
            self.sn += len(items or [DRUG])
        return r

    async def send(self, name: str, *args: Any, **kw: Any) -> dict[str, Any]:
        w = self.w
        return await w.send(getattr(w.terminal, name)(PSN, self.id, *args, now=w.clock.now(), **kw))

    async def settle(self, total: int, infno: str = "2304", mid: str = "0") -> dict[str, Any]:
        w = self.w
        b = w.terminal.settle_stay(infno, w.card, self.id, total, mid_setl_flag=mid, now=w.clock.now())
        return await w.send(b)


async def admitted(w: World, ipt_no: str = "ZY0001") -> Stay:
    r = await w.send(w.terminal.admit(w.card, ipt_no, now=w.clock.now()))
    assert r["infcode"] == 0, r
    return Stay(w, r["output"]["result"]["mdtrt_id"])


class TestStay:
    async def test_full_stay(self, world: World):
        """2401 → 2301 ×3 (one with a refund line) → 2402 → 2303 → 2304 → 2305 → 2304 again."""
        s = await admitted(world)
        assert len(s.id) == 30
        assert (await admitted(world)).id == s.id  # the same ipt_no again
        assert (await s.upload(BIG))["infcode"] == 0
        assert (await s.upload(DRUG, DRUG))["infcode"] == 0
        r = await s.upload(("000002", DRUG[0], "1", DRUG[2]))  # refund half of line 2 (2 × 8.60)
        assert r["infcode"] == 0, r
        res = r["output"]["result"][0]
        assert res["det_item_fee_sumamt"] == -8.6
        assert res["inscp_scp_amt"] == -8.6
        assert res["init_feedetl_sn"] == "000002"
        total = BIG_FEN + 2 * DRUG_FEN - fen("8.60")
        r = await s.settle(total)
        assert r["err_code"] == "VISIT_STATE"
        assert "ADMITTED" in r["err_msg"]
        assert (await s.send("discharge"))["infcode"] == 0
        pre = await s.settle(total, "2303")
        assert pre["infcode"] == 0, pre
        assert "setl_id" not in pre["output"]["setlinfo"]
        st = await s.settle(total)
        info = st["output"]["setlinfo"]
        assert st["infcode"] == 0, st
        assert info["medfee_sumamt"] == 885.8
        assert info["med_type"] == "21"
        assert info["act_pay_dedc"] > 0
        assert info["mdtrt_id"] == s.id
        again = await s.settle(total)  # a fresh msgid: the HIS retries
        assert again["err_code"] == "BATCH_SETTLED"
        assert again["output"]["setl_id"] == info["setl_id"]
        assert (await s.upload(DRUG))["err_code"] == "VISIT_STATE"
        r = await s.send("cancel_discharge")
        assert r["err_code"] == "VISIT_STATE"
        assert "SETTLED" in r["err_msg"]
        c = await s.send("cancel_stay_settlement", info["setl_id"])
        assert c["infcode"] == 0, c
        assert c["output"]["setlinfo"]["orig_setl_id"] == info["setl_id"]
        st2 = await s.settle(total)
        assert st2["infcode"] == 0, st2
        assert st2["output"]["setlinfo"]["setl_id"] != info["setl_id"]
        assert world.store.settlements[(CODE, st2["output"]["setlinfo"]["medins_setl_id"])].infno == "2304"

    async def test_mid_stay_takes_deductible_once(self, world: World):
        s = await admitted(world)
        await s.upload(BIG)
        mid = await s.settle(BIG_FEN, mid="1")
        assert mid["infcode"] == 0, mid
        dedc = mid["output"]["setlinfo"]["act_pay_dedc"]
        assert dedc > 0
        assert (await s.settle(BIG_FEN, mid="1"))["err_code"] == "NO_FEES"
        await s.upload(BIG)
        await s.send("discharge")
        assert (await s.settle(BIG_FEN, mid="1"))["err_code"] == "VISIT_STATE"
        fin = await s.settle(BIG_FEN)
        assert fin["infcode"] == 0, fin
        assert fin["output"]["setlinfo"]["act_pay_dedc"] == 0
        assert fin["output"]["setlinfo"]["fund_pay_sumamt"] > mid["output"]["setlinfo"]["fund_pay_sumamt"]


class TestRefusals:
    async def test_refunds(self, world: World):
        s = await admitted(world)
        await s.upload(DRUG)
        r = await s.upload(("000099", DRUG[0], "1", DRUG[2]))
        assert r["err_code"] == "FEE_LINE_UNKNOWN"
        assert "000099" in r["err_msg"]
        r = await s.upload(("000001", DRUG[0], "3", DRUG[2]))
        assert r["err_code"] == "AMOUNT_MISMATCH"
        assert "exceeds" in r["err_msg"]
        assert (await s.upload(("000001", DRUG[0], "2", DRUG[2])))["infcode"] == 0
        r = await s.upload(("000001", DRUG[0], "1", DRUG[2]))
        assert r["err_code"] == "AMOUNT_MISMATCH"  # nothing left of line 1
        await s.send("discharge")
        assert (await s.settle(0))["err_code"] == "NO_FEES"  # refunded in full

    async def test_refund_shape(self, world: World):
        s = await admitted(world)
        b = world.terminal.upload_stay_fees(PSN, s.id, [DRUG], now=world.clock.now())
        b.body["input"]["feedetail"][0]["cnt"] = -2
        r = await world.send(b)
        assert r["err_code"] == "MALFORMED"
        assert "det_item_fee_sumamt" in r["err_msg"]
        b = world.terminal.upload_stay_fees(PSN, s.id, [DRUG], now=world.clock.now())
        line = b.body["input"]["feedetail"][0]
        line["cnt"], line["det_item_fee_sumamt"] = -2, -17.2
        r = await world.send(b)
        assert r["err_code"] == "MALFORMED"
        assert "init_feedetl_sn" in r["err_msg"]

    async def test_states(self, world: World):
        s = await admitted(world)
        r = await s.send("cancel_discharge")
        assert r["err_code"] == "VISIT_STATE"
        assert "ADMITTED" in r["err_msg"]
        assert (await s.settle(DRUG_FEN))["err_code"] == "VISIT_STATE"
        await s.upload(DRUG)
        r = await s.send("cancel_admission")
        assert r["err_code"] == "VISIT_STATE"
        assert "fee lines" in r["err_msg"]
        r = await s.send("change_admission", adm_bed="14")
        assert r["infcode"] == 0, r
        await s.send("discharge")
        assert (await s.send("discharge"))["err_code"] == "VISIT_STATE"
        assert (await s.send("change_admission", adm_bed="15"))["err_code"] == "VISIT_STATE"
        assert (await s.settle(DRUG_FEN + 1))["err_code"] == "AMOUNT_MISMATCH"
        assert (await s.send("cancel_discharge"))["infcode"] == 0
        assert (await s.settle(DRUG_FEN, mid="1"))["infcode"] == 0
        other = await admitted(world, "ZY0002")
        assert (await other.send("cancel_admission"))["infcode"] == 0
        r = await other.upload(DRUG)
        assert r["err_code"] == "VISIT_STATE"
        assert "CANCELLED" in r["err_msg"]

    async def test_unknown_stay_and_outpatient_flows(self, world: World):
        s = Stay(world, "330200202612011000000000000099")
        assert (await s.upload(DRUG))["err_code"] == "VISIT_NOT_FOUND"
        assert (await s.send("discharge"))["err_code"] == "VISIT_NOT_FOUND"
        real = await admitted(world)
        b = world.terminal.upload_fees(PSN, real.id, "B1", [DRUG], now=world.clock.now())
        assert (await world.send(b))["err_code"] == "VISIT_STATE"  # an outpatient upload of a stay

    async def test_cancel_fee_lines(self, world: World):
        s = await admitted(world)
        await s.upload(DRUG, DRUG)
        await s.upload(("000001", DRUG[0], "1", DRUG[2]))
        r = await s.send("cancel_stay_fees", ["000009"])
        assert r["err_code"] == "FEE_LINE_UNKNOWN"
        r = await s.send("cancel_stay_fees", ["000001"])
        assert r["output"]["data"]["removed"] == 2  # the line and its refund
        assert (await s.settle(DRUG_FEN, mid="1"))["infcode"] == 0
        r = await s.send("cancel_stay_fees", ["000002"])
        assert r["err_code"] == "BATCH_SETTLED"
        await s.upload(DRUG)
        r = await s.send("cancel_stay_fees", "0000")
        assert r["output"]["data"]["removed"] == 1
        b = world.terminal.cancel_stay_fees(PSN, s.id, now=world.clock.now())
        b.body["input"] = {"feeinfo": [{"feedetl_sn": "0000", "mdtrt_id": s.id, "psn_no": PSN}]}
        assert (await world.send(b))["output"]["data"]["removed"] == 0


class TestReversal:
    async def test_2601_of_a_2304_frees_the_stay(self, world: World):
        s = await admitted(world)
        await s.upload(DRUG)
        await s.send("discharge")
        st = await s.settle(DRUG_FEN)
        msgid = st["output"]["setlinfo"]["medins_setl_id"]
        r = await world.send(world.terminal.reverse(PSN, msgid, "2304", now=world.clock.now()))
        assert r["infcode"] == 0, r
        assert r["output"]["data"]["rvs_stas"] == "1"
        assert world.store.settlements[(CODE, msgid)].state is SettlementState.REVERSED
        assert (await s.settle(DRUG_FEN))["infcode"] == 0

    async def test_timeout_holds_the_stay_until_reversed(self, world: World):
        s = await admitted(world)
        await s.upload(DRUG)
        await s.send("discharge")
        world.core.fail["post"] = [CoreTimeout("no answer")]
        assert (await s.settle(DRUG_FEN))["err_code"] == "CORE_TIMEOUT"
        r = await s.settle(DRUG_FEN)
        assert r["err_code"] == "BATCH_SETTLED"
        assert r["output"]["setl_id"] is None
        assert await ReversalWorker(world.deps).run_once() == 1
        assert (await s.settle(DRUG_FEN))["infcode"] == 0


class TestMalformed:
    async def test_shapes_name_the_field(self, world: World):
        s = await admitted(world)
        t, now = world.terminal, world.clock.now()
        b = t.admit(world.card, "ZY9", now=now)
        del b.body["input"]["mdtrtinfo"]["ipt_no"]
        r = await world.send(b)
        assert (r["err_code"], "ipt_otp_no" in r["err_msg"]) == ("MALFORMED", True)
        b = t.cancel_stay_fees(PSN, s.id, now=now)
        b.body["input"] = {"feeinfo": ["x"]}
        r = await world.send(b)
        assert (r["err_code"], "input.feeinfo" in r["err_msg"]) == ("MALFORMED", True)
        b = t.cancel_stay_fees(PSN, s.id, now=now)
        b.body["input"]["data"]["feedetl_sn"] = [1]
        r = await world.send(b)
        assert (r["err_code"], "feedetl_sn" in r["err_msg"]) == ("MALFORMED", True)
        b = t.settle_stay("2304", world.card, s.id, DRUG_FEN, now=now)
        del b.body["input"]["data"]["mid_setl_flag"]
        r = await world.send(b)
        assert (r["err_code"], "mid_setl_flag" in r["err_msg"]) == ("MALFORMED", True)
        b = t.discharge(PSN, s.id, now=now)
        b.body["input"]["dscginfo"]["endtime"] = "yesterday"
        r = await world.send(b)
        assert (r["err_code"], "endtime" in r["err_msg"]) == ("MALFORMED", True)
        data = {"stmt_begndate": "2026-12-01", "stmt_enddate": "2026-12-01", "medfee_sumamt": 0,
                "fund_pay_sumamt": 0, "acct_pay": 0, "fixmedins_setl_cnt": 0, "clr_type": "99"}  # fmt: skip
        r = await world.send(t.build("3201", {"data": data}, now=now))
        assert (r["err_code"], "clr_type" in r["err_msg"]) == ("MALFORMED", True)
