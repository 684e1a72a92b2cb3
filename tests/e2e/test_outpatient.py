"""Outpatient visits end to end (SPEC §6.6) against real PostgreSQL, Redis and the core simulator: a full visit
by reference, every outpatient refusal of issue 12's "Bad input" with nothing half-stored, and two 2207s of one
batch at once settling once."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from loadtest.terminal import CALL_SERVICE, Built, SimCard, Terminal
from tests.conftest import Fleet
from tests.e2e.helpers import (
    assert_declined,
    assert_identities,
    assert_ok,
    bill_total,
    core_settlements,
    line,
    pg_rows,
    plain_items,
    put_faults,
)


class Visit:
    """A registered visit of `card` at `t`'s institution."""

    def __init__(self, fleet: Fleet, t: Terminal, card: SimCard, mdtrt_id: str) -> None:
        self.fleet, self.t, self.card, self.id = fleet, t, card, mdtrt_id

    async def call(self, b: Built) -> dict[str, Any]:
        _status, resp, _ = await self.fleet.call(b)
        return resp

    async def upload(self, bchno: str, items: list[tuple[str, str, str]], first_sn: int = 1) -> dict[str, Any]:
        return await self.call(self.t.upload_fees(self.card.psn_no, self.id, bchno, items, first_sn=first_sn))

    def settle(self, bchno: str, total: int, infno: str = "2207", **kw: Any) -> Built:
        return self.t.settle_by_reference(infno, self.card, self.id, bchno, total, **kw)


async def visit(fleet: Fleet, ipt_otp_no: str, t: Terminal | None = None) -> Visit:
    t = t or await fleet.terminal()
    card, _ = fleet.card(insutype="310", min_balance=20000)
    status, resp, _ = await fleet.call(t.register(card, ipt_otp_no))
    assert_ok(status, resp)
    return Visit(fleet, t, card, resp["output"]["data"]["mdtrt_id"])


async def stored_lines(dsn: str, mdtrt_id: str) -> int:
    rows = await pg_rows(
        dsn, "SELECT count(*) AS n FROM fee_lines l JOIN visits v ON v.id = l.visit_id WHERE v.mdtrt_id = $1", mdtrt_id
    )
    n: int = rows[0]["n"]
    return n


@pytest.fixture
def items(world: dict[str, Any]) -> list[tuple[str, str, str]]:
    a, b = plain_items(world, "A", 2)
    return [line(a, 2), line(b, 1)]


class TestFullVisit:
    async def test_register_upload_settle_cancel_settle(self, fleet: Fleet, settings, core_url, items):
        """2201 → 2203 → 2204 → 2206 → 2207 → 2208 → 2207 again; the same ipt_otp_no answers the same mdtrt_id."""
        v = await visit(fleet, "E2E-MZ-0001")
        again = await v.call(v.t.register(v.card, "E2E-MZ-0001"))
        assert again["output"]["data"]["mdtrt_id"] == v.id
        assert_ok(200, await v.call(v.t.visit_info(v.card.psn_no, v.id, "11")))
        up = await v.upload("B1", items)
        assert_ok(200, up)
        assert [r["feedetl_sn"] for r in up["output"]["result"]] == ["000001", "000002"]
        total = bill_total(items)
        pre = await v.call(v.settle("B1", total, "2206"))
        assert_ok(200, pre)
        b = v.settle("B1", total)
        s = await v.call(b)
        assert_ok(200, s)
        assert b.mac2_ok(s)
        info = s["output"]["setlinfo"]
        assert_identities(info)
        assert info["medfee_sumamt"] == pre["output"]["setlinfo"]["medfee_sumamt"]
        assert len(await core_settlements(core_url, b.body["msgid"])) == 1
        c = await v.call(v.t.cancel("2208", info["setl_id"], v.card.psn_no, mdtrt_id=v.id))
        assert_ok(200, c)
        assert c["output"]["setlinfo"]["pdn_cash_pay"] == c["output"]["setlinfo"]["psn_cash_pay"]
        s2 = await v.call(v.settle("B1", total))
        assert_ok(200, s2)
        assert s2["output"]["setlinfo"]["setl_id"] != info["setl_id"]
        retry = await v.call(v.settle("B1", total))  # HIS retry with a fresh msgid
        assert_declined(200, retry, "BATCH_SETTLED")
        assert retry["output"]["setl_id"] == s2["output"]["setlinfo"]["setl_id"]


class TestRefusals:
    async def test_state_not_allowed(self, fleet: Fleet, items):
        """A cancelled visit refuses 2202, 2203, 2204, 2205 and 2207; 2202 with a live settlement is refused."""
        v = await visit(fleet, "E2E-MZ-0002")
        await v.upload("B1", items)
        s = await v.call(v.settle("B1", bill_total(items)))
        assert_ok(200, s)
        r = await v.call(v.t.cancel_registration(v.card.psn_no, v.id, "E2E-MZ-0002"))
        assert_declined(200, r, "VISIT_STATE")
        setl_id = s["output"]["setlinfo"]["setl_id"]
        assert_ok(200, await v.call(v.t.cancel("2208", setl_id, v.card.psn_no, mdtrt_id=v.id)))
        assert_ok(200, await v.call(v.t.cancel_registration(v.card.psn_no, v.id, "E2E-MZ-0002")))
        p = v.card.psn_no
        refused = (
            v.t.cancel_registration(p, v.id, "E2E-MZ-0002"), v.t.visit_info(p, v.id),
            v.t.upload_fees(p, v.id, "B2", items, first_sn=9), v.t.cancel_fees(p, v.id), v.settle("B1", 1),
        )  # fmt: skip
        for b in refused:
            r = await v.call(b)
            assert_declined(200, r, "VISIT_STATE")
            assert "CANCELLED" in r["err_msg"]

    async def test_other_institution(self, fleet: Fleet, items):
        """A mdtrt_id of another institution is VISIT_NOT_FOUND here."""
        v = await visit(fleet, "E2E-MZ-0003")
        other = await fleet.terminal(index=1)
        r = await v.call(other.upload_fees(v.card.psn_no, v.id, "B1", items))
        assert_declined(200, r, "VISIT_NOT_FOUND")
        r = await v.call(other.settle_by_reference("2207", v.card, v.id, "B1", bill_total(items)))
        assert_declined(200, r, "VISIT_NOT_FOUND")

    async def test_lines(self, fleet: Fleet, settings, items):
        """feedetl_sn reused, a batch mixing chrg_bchnos: refused, nothing half-stored."""
        v = await visit(fleet, "E2E-MZ-0004")
        assert_ok(200, await v.upload("B1", items))
        r = await v.upload("B2", items)
        assert_declined(200, r, "FEE_LINE_DUPLICATE")
        b = v.t.upload_fees(v.card.psn_no, v.id, "B2", items, first_sn=5)
        b.body["input"]["feedetail"][1]["chrg_bchno"] = "B3"
        status, r, _ = await v.fleet.call(b)
        assert_declined(status, r, "MALFORMED", 400)
        assert "feedetail[1].chrg_bchno" in r["err_msg"]
        assert await stored_lines(settings.pg_dsn, v.id) == len(items)

    async def test_empty_cancelled_and_mismatched_batches(self, fleet: Fleet, items):
        """2207 of a batch never uploaded or whose lines were removed is NO_FEES; medfee_sumamt different
        from the batch's sum is AMOUNT_MISMATCH."""
        v = await visit(fleet, "E2E-MZ-0005")
        assert_declined(200, await v.call(v.settle("B1", 100)), "NO_FEES")
        await v.upload("B1", items)
        r = await v.call(v.settle("B1", bill_total(items) + 1))
        assert_declined(200, r, "AMOUNT_MISMATCH")
        r = await v.call(v.t.cancel_fees(v.card.psn_no, v.id, "0000"))
        assert_ok(200, r)
        assert r["output"]["data"]["removed"] == len(items)
        assert_declined(200, await v.call(v.settle("B1", bill_total(items))), "NO_FEES")


@pytest.fixture
async def roomy(settings) -> AsyncIterator[TestClient[Any, Any]]:
    """A gateway whose body limit admits a 10,000-line batch, so that the line limit is what refuses it."""
    s = dataclasses.replace(settings, max_body_bytes=16 * 1024 * 1024)
    async with TestClient(TestServer(create_app(s))) as c:
        yield c


class TestOversize:
    async def test_ten_thousand_lines(self, fleet: Fleet, settings, roomy, items):
        """10,000 lines: MALFORMED naming the limit, nothing stored."""
        v = await visit(fleet, "E2E-MZ-0006")
        b = v.t.upload_fees(v.card.psn_no, v.id, "B1", [items[0]] * 10_000)
        resp = await roomy.post(CALL_SERVICE, data=io.BytesIO(orjson.dumps(b.body)))
        r = orjson.loads(await resp.read())
        assert_declined(resp.status, r, "MALFORMED", 400)
        assert "at most 2000 lines" in r["err_msg"]
        assert await stored_lines(settings.pg_dsn, v.id) == 0


class TestConcurrency:
    async def test_two_2207_at_once_settle_once(self, fleet: Fleet, settings, core_url, items):
        """Two 2207s of one batch under fresh msgids at once (the second sent while the first is at the slowed
        core, so the card's ATC order holds): one settles, the other is BATCH_SETTLED naming its setl_id."""
        v = await visit(fleet, "E2E-MZ-0007")
        await v.upload("B1", items)
        total = bill_total(items)
        b1, b2 = v.settle("B1", total), v.settle("B1", total)

        async def second() -> dict[str, Any]:
            for _ in range(2000):  # until the first 2207 holds the batch
                rows = await pg_rows(
                    settings.pg_dsn, "SELECT 1 FROM fee_batches WHERE setl_msgid = $1", b1.body["msgid"]
                )
                if rows:
                    break
                await asyncio.sleep(0.005)
            return await v.call(b2)

        await put_faults(core_url, {"latency_ms": 300})
        try:
            first, other = await asyncio.gather(v.call(b1), second())
        finally:
            await put_faults(core_url, {})
        assert_ok(200, first)
        assert_declined(200, other, "BATCH_SETTLED")
        assert other["output"]["setl_id"] == first["output"]["setlinfo"]["setl_id"]
        assert len(await core_settlements(core_url, b1.body["msgid"])) == 1
        assert await core_settlements(core_url, b2.body["msgid"]) == []
