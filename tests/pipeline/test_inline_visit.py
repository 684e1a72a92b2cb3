"""An inline 2206/2207 naming a visit over fakes (SPEC §6.6: an implicit 2204 of a fresh batch): 2207 stores
its lines as a gateway-minted batch claimed as by reference (retries BATCH_SETTLED, 2208 restores it), 2206
stores nothing, every refusal stores nothing, and pharmacy 2102 with an mdtrt_id stays as it was."""

from __future__ import annotations

from typing import Any

from gateway.domain.errors import CoreRejected, CoreTimeout
from gateway.pipeline.reversals import ReversalWorker
from loadtest.terminal import Built
from tests.pipeline.conftest import DRUG, PSN, World
from tests.pipeline.test_outpatient import B_DRUG, DRUG_FEN, Visit, registered, visits


def inline(w: World, mdtrt_id: str, infno: str = "2207", *lines: tuple[str, str, str], **data: Any) -> Built:
    b = w.settle(infno, *lines)
    b.body["input"]["data"].update(mdtrt_id=mdtrt_id, **data)
    return b


def stored(w: World, mdtrt_id: str) -> dict[str, int]:
    """chrg_bchno → how many lines, of the visit."""
    return {bchno: len(b.lines) for (mid, bchno), b in visits(w).batches.items() if mid == mdtrt_id and b.lines}


class TestInlineWithVisit:
    async def test_full_visit(self, world: World):
        """2206 inline checks only; 2207 inline stores and claims batch IL…; a retry, by reference or inline, is
        BATCH_SETTLED; 2205 and 2202 refused; 2208 frees it; the same lines inline settle the same batch again."""
        v = await registered(world)
        pre = await world.send(inline(world, v.id, "2206", DRUG, B_DRUG))
        assert pre["infcode"] == 0, pre
        assert "chrg_bchno" not in pre["output"]["setlinfo"]
        assert stored(world, v.id) == {}
        s = await world.send(inline(world, v.id, "2207", DRUG, B_DRUG))
        assert s["infcode"] == 0, s
        info = s["output"]["setlinfo"]
        bchno = info["chrg_bchno"]
        assert bchno.startswith("IL")
        assert len(bchno) == 28
        assert info["mdtrt_id"] == v.id
        assert info["overlmt_selfpay"] == 2.38  # the same split as by reference
        assert stored(world, v.id) == {bchno: 2}
        again = await world.send(inline(world, v.id, "2207", DRUG, B_DRUG))
        assert again["err_code"] == "BATCH_SETTLED"
        assert again["output"]["setl_id"] == info["setl_id"]
        total = DRUG_FEN + 4000
        assert (await Visit(world, v.id).settle(bchno, total))["err_code"] == "BATCH_SETTLED"
        r = await world.send(world.terminal.cancel_fees(PSN, v.id, bchno, now=world.clock.now()))
        assert r["err_code"] == "BATCH_SETTLED"
        r = await world.send(world.terminal.cancel_registration(PSN, v.id, "MZ0001", now=world.clock.now()))
        assert r["err_code"] == "VISIT_STATE"
        c = world.terminal.cancel("2208", info["setl_id"], PSN, mdtrt_id=v.id, now=world.clock.now())
        assert (await world.send(c))["infcode"] == 0
        s2 = await world.send(inline(world, v.id, "2207", DRUG, B_DRUG))
        assert s2["infcode"] == 0, s2
        assert s2["output"]["setlinfo"]["chrg_bchno"] == bchno
        assert s2["output"]["setlinfo"]["setl_id"] != info["setl_id"]
        assert stored(world, v.id) == {bchno: 2}

    async def test_refusals_store_nothing(self, world: World):
        r = await world.send(inline(world, "330200202612011000000000000099"))
        assert r["err_code"] == "VISIT_NOT_FOUND"
        v = await registered(world)
        await world.send(world.terminal.visit_info(PSN, v.id, "14", now=world.clock.now()))
        r = await world.send(inline(world, v.id))
        assert r["err_code"] == "VISIT_STATE"
        assert "med_type" in r["err_msg"]
        r = await world.send(inline(world, v.id, "2206"))
        assert r["err_code"] == "VISIT_STATE"
        assert stored(world, v.id) == {}
        await Visit(world, v.id).upload("B1")  # feedetl_sn 000001
        b = inline(world, v.id, med_type="14")
        b.body["input"]["feedetail"][0]["feedetl_sn"] = "000001"
        r = await world.send(b)
        assert r["err_code"] == "FEE_LINE_DUPLICATE"
        assert "settle that batch by reference" in r["err_msg"]
        assert stored(world, v.id) == {"B1": 1}
        r = await world.send(world.terminal.cancel_fees(PSN, v.id, "0000", now=world.clock.now()))
        r = await world.send(world.terminal.cancel_registration(PSN, v.id, "MZ0001", now=world.clock.now()))
        assert r["infcode"] == 0, r
        r = await world.send(inline(world, v.id, med_type="14"))
        assert r["err_code"] == "VISIT_STATE"
        assert "CANCELLED" in r["err_msg"]

    async def test_declined_at_core_then_retried(self, world: World):
        """A 2207 the core refuses leaves its batch stored and free: the same lines again settle it."""
        v = await registered(world)
        world.core.fail["post"] = [CoreRejected("NOT_REVERSIBLE", "refused")]
        r = await world.send(inline(world, v.id))
        assert r["infcode"] != 0, r
        assert "setl_id" not in (r.get("output") or {}).get("setlinfo", {})
        [bchno] = stored(world, v.id)
        s = await world.send(inline(world, v.id))
        assert s["infcode"] == 0, s
        assert s["output"]["setlinfo"]["chrg_bchno"] == bchno

    async def test_timeout_holds_batch_until_reversed(self, world: World):
        v = await registered(world)
        world.core.fail["post"] = [CoreTimeout("no answer")]
        assert (await world.send(inline(world, v.id)))["err_code"] == "CORE_TIMEOUT"
        r = await world.send(inline(world, v.id))
        assert r["err_code"] == "BATCH_SETTLED"
        assert r["output"]["setl_id"] is None
        assert await ReversalWorker(world.deps).run_once() == 1
        assert (await world.send(inline(world, v.id)))["infcode"] == 0

    async def test_without_visit_unchanged(self, world: World):
        """Pharmacy 2102 with an mdtrt_id, and 2207 without one, store nothing and name no batch."""
        v = await registered(world)
        r = await world.send(inline(world, v.id, "2102"))
        assert r["infcode"] == 0, r
        assert "chrg_bchno" not in r["output"]["setlinfo"]
        r = await world.send(world.settle("2207"))
        assert r["infcode"] == 0, r
        assert "chrg_bchno" not in r["output"]["setlinfo"]
        assert stored(world, v.id) == {}
