"""Inpatient stays end to end (SPEC §6.7) against real PostgreSQL, Redis and the core simulator: a 3-day stay
2401 → 2301 ×3 (one with a refund line) → 2402 → 2303 → 2304 → 2305 → 2304 again, each refusal of the state
rules with nothing half-stored, a 2601 of a 2304, and 3201's clr_type."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from loadtest.terminal import Built, SimCard, Terminal, fen
from loadtest.terminal_stays import Line
from tests.conftest import Fleet
from tests.e2e.helpers import (
    assert_declined,
    assert_identities,
    assert_ok,
    bill_total,
    core_ledger,
    core_settlements,
    line,
    pg_rows,
    plain_items,
    put_faults,
    settlement_rows,
    shanghai_today,
)
from tests.e2e.test_core_faults import seed_passing_first_dropping_second


class Stay:
    """An admitted stay of `card` at `t`'s institution."""

    def __init__(self, fleet: Fleet, t: Terminal, card: SimCard, mdtrt_id: str) -> None:
        self.fleet, self.t, self.card, self.id = fleet, t, card, mdtrt_id
        self.sn = 1

    async def call(self, b: Built) -> dict[str, Any]:
        _status, resp, _ = await self.fleet.call(b)
        return resp

    async def upload(self, items: list[Line], day: int = 0) -> dict[str, Any]:
        """2301; `day` days before today is each line's fee_ocur_time (a stay's daily upload)."""
        b = self.t.upload_stay_fees(self.card.psn_no, self.id, items, first_sn=self.sn)
        for x in b.body["input"]["feedetail"]:
            x["fee_ocur_time"] = f"{shanghai_today() - timedelta(days=day)} 10:00:00"
        r = await self.call(b)
        if r["infcode"] == 0:
            self.sn += len(items)
        return r

    async def send(self, name: str, *args: Any, **kw: Any) -> dict[str, Any]:
        return await self.call(getattr(self.t, name)(self.card.psn_no, self.id, *args, **kw))

    def settle(self, total: int, infno: str = "2304", mid: str = "0") -> Built:
        return self.t.settle_stay(infno, self.card, self.id, total, mid_setl_flag=mid)


async def admitted(fleet: Fleet, ipt_no: str, index: int = 0) -> Stay:
    t = await fleet.terminal(index=index)
    card, _ = fleet.card(insutype="310", min_balance=20000)
    status, resp, _ = await fleet.call(t.admit(card, ipt_no))
    assert_ok(status, resp)
    return Stay(fleet, t, card, resp["output"]["result"]["mdtrt_id"])


async def stored_lines(dsn: str, mdtrt_id: str) -> int:
    rows = await pg_rows(
        dsn, "SELECT count(*) AS n FROM fee_lines l JOIN visits v ON v.id = l.visit_id WHERE v.mdtrt_id = $1", mdtrt_id
    )
    n: int = rows[0]["n"]
    return n


async def inpatient_totals(s: Stay, clr_type: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """3201 (3202 with `details`) of today for one clr_type, the institution's own totals from `details`."""
    day = shanghai_today().isoformat()
    ds = details or []
    sums = {k: float(sum(fen(x[k]) for x in ds)) / 100 for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")}
    data = {"setl_optins": "330200", "stmt_begndate": day, "stmt_enddate": day, **sums,
            "fixmedins_setl_cnt": len(ds), "clr_type": clr_type}  # fmt: skip
    body = {"data": data} if details is None else {"data": data, "details": details}
    r = await s.call(s.t.build("3201" if details is None else "3202", body))
    assert_ok(200, r)
    info: dict[str, Any] = r["output"]["stmtinfo"] | {"breaks": r["output"].get("breaks")}
    return info


class TestFullStay:
    async def test_three_day_stay(self, fleet: Fleet, settings, core_url, world):
        a, b = plain_items(world, "A", 2)
        s = await admitted(fleet, "E2E-ZY-0001")
        again = await s.call(s.t.admit(s.card, "E2E-ZY-0001"))
        assert again["output"]["result"]["mdtrt_id"] == s.id
        day1, day2 = [line(a, 2)], [line(b, 1), line(a, 1)]
        assert_ok(200, await s.upload(day1, day=2))
        assert_ok(200, await s.upload(day2, day=1))
        refund: Line = ("000001", a["med_list_codg"], "1", a["price"])  # half of day 1's line
        day3 = [line(b, 2), refund]
        up = await s.upload(day3)
        assert_ok(200, up)
        assert up["output"]["result"][1]["det_item_fee_sumamt"] == -float(a["price"])
        total = bill_total(day1 + day2) + bill_total([line(b, 2)]) - fen(a["price"])
        assert_declined(200, await s.call(s.settle(total)), "VISIT_STATE")  # not discharged
        assert_ok(200, await s.send("discharge"))
        pre = await s.call(s.settle(total, "2303"))
        assert_ok(200, pre)
        before_21, before_11 = await inpatient_totals(s, "21"), await inpatient_totals(s, "11")
        bs = s.settle(total)
        st = await s.call(bs)
        assert_ok(200, st)
        assert bs.mac2_ok(st)
        info = st["output"]["setlinfo"]
        assert_identities(info)
        assert fen(info["medfee_sumamt"]) == total
        assert info["medfee_sumamt"] == pre["output"]["setlinfo"]["medfee_sumamt"]
        posted = await core_settlements(core_url, bs.body["msgid"])
        assert len(posted) == 1
        assert posted[0]["infno"] == "2304"
        after_21, after_11 = await inpatient_totals(s, "21"), await inpatient_totals(s, "11")
        assert after_21["fixmedins_setl_cnt"] == before_21["fixmedins_setl_cnt"] + 1
        assert fen(after_21["medfee_sumamt"]) - fen(before_21["medfee_sumamt"]) == total
        assert after_11 == before_11
        retry = await s.call(s.settle(total))
        assert_declined(200, retry, "BATCH_SETTLED")
        assert retry["output"]["setl_id"] == info["setl_id"]
        c = await s.send("cancel_stay_settlement", info["setl_id"])
        assert_ok(200, c)
        assert c["output"]["setlinfo"]["orig_setl_id"] == info["setl_id"]
        cancels = [x for x in (await core_ledger(core_url))["cancellations"] if x["orig_setl_id"] == info["setl_id"]]
        assert len(cancels) == 1
        st2 = await s.call(s.settle(total))
        assert_ok(200, st2)
        assert st2["output"]["setlinfo"]["setl_id"] != info["setl_id"]


class TestRefusals:
    async def test_state_rules_and_refunds(self, fleet: Fleet, settings, world):
        """Refund of an unknown line (FEE_LINE_UNKNOWN), larger than its line, 2304 final before 2402
        (VISIT_STATE), 2405 and 2301 with a live final settlement (VISIT_STATE naming SETTLED), 2404 with lines;
        nothing half-stored."""
        (a,) = plain_items(world, "A", 1)
        s = await admitted(fleet, "E2E-ZY-0002")
        assert_ok(200, await s.upload([line(a, 2)]))
        r = await s.upload([line(a, 1), ("000077", a["med_list_codg"], "1", a["price"])])
        assert_declined(200, r, "FEE_LINE_UNKNOWN")
        assert "000077" in r["err_msg"]
        r = await s.upload([("000001", a["med_list_codg"], "3", a["price"])])
        assert_declined(200, r, "AMOUNT_MISMATCH")
        assert "exceeds" in r["err_msg"]
        assert await stored_lines(settings.pg_dsn, s.id) == 1
        r = await s.send("cancel_admission")
        assert_declined(200, r, "VISIT_STATE")
        total = bill_total([line(a, 2)])
        r = await s.call(s.settle(total))
        assert_declined(200, r, "VISIT_STATE")
        assert "ADMITTED" in r["err_msg"]
        assert_ok(200, await s.send("discharge"))
        assert_ok(200, await s.call(s.settle(total)))
        for r in (await s.send("cancel_discharge"), await s.upload([line(a, 1)])):
            assert_declined(200, r, "VISIT_STATE")
            assert "SETTLED" in r["err_msg"]
        assert await stored_lines(settings.pg_dsn, s.id) == 1

    async def test_other_institution(self, fleet: Fleet, world):
        (a,) = plain_items(world, "A", 1)
        s = await admitted(fleet, "E2E-ZY-0003")
        other = await fleet.terminal(index=1)
        r = await s.call(other.upload_stay_fees(s.card.psn_no, s.id, [line(a, 1)]))
        assert_declined(200, r, "VISIT_NOT_FOUND")


class TestReversal:
    async def test_2601_of_a_2304(self, fleet: Fleet, core_url, world):
        (a,) = plain_items(world, "A", 1)
        s = await admitted(fleet, "E2E-ZY-0004")
        assert_ok(200, await s.upload([line(a, 1)]))
        assert_ok(200, await s.send("discharge"))
        total = bill_total([line(a, 1)])
        bs = s.settle(total)
        assert_ok(200, await s.call(bs))
        r = await s.call(s.t.reverse(s.card.psn_no, bs.body["msgid"], "2304"))
        assert_ok(200, r)
        assert r["output"]["data"]["rvs_stas"] == "1"
        assert_ok(200, await s.call(s.settle(total)))  # the stay is free again


class TestDrill:
    async def test_core_drops_the_2304_answer(self, fleet: Fleet, settings, core_url, world):
        """The core posts a 2304 and its reply is lost: -1 CORE_TIMEOUT, a 2601 of the 2304 queued and driven
        to the end by the reversal worker, the stay free again; 3202 with clr_type 21 then balances on the
        settlement that followed (the reversed one counts nowhere)."""
        (a,) = plain_items(world, "A", 1)
        s = await admitted(fleet, "E2E-ZY-0005", index=1)  # the only 2304s of this institution
        assert_ok(200, await s.upload([line(a, 2)]))
        assert_ok(200, await s.send("discharge"))
        total = bill_total([line(a, 2)])
        bs = s.settle(total)
        rate = 0.5  # callService #1 is the person read (let through), #2 the posting (acted on, reply dropped)
        await put_faults(core_url, {"drop_after_post_rate": rate, "seed": seed_passing_first_dropping_second(rate)})
        try:
            r = await s.call(bs)
        finally:
            await put_faults(core_url, {})
        assert_declined(200, r, "CORE_TIMEOUT", infcode=-1)
        msgid = bs.body["msgid"]
        queued = await pg_rows(settings.pg_dsn, "SELECT oinfno FROM reversal_queue WHERE omsgid = $1", msgid)
        assert [q["oinfno"] for q in queued] == ["2304"]
        for _ in range(100):
            (row,) = await settlement_rows(settings.pg_dsn, s.t.fixmedins_code, msgid)
            if row["state"] == "REVERSED":
                break
            held = await s.call(s.settle(total))
            assert_declined(200, held, "BATCH_SETTLED")  # held by the UNKNOWN settlement meanwhile
            await asyncio.sleep(0.1)
        assert row["state"] == "REVERSED"
        assert (await core_settlements(core_url, msgid))[0]["state"] == "REVERSED"
        bs2 = s.settle(total)
        st = await s.call(bs2)
        assert_ok(200, st)
        i = st["output"]["setlinfo"]
        amounts = {k: i[k] for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")}
        mine = [{"msgid": bs2.body["msgid"], "setl_id": i["setl_id"], **amounts, "refd_setl_flag": "0"}]
        rec = await inpatient_totals(s, "21", mine)
        assert rec["breaks"] == []
        assert rec["stmt_rslt"] == "0", rec
        assert rec["unknown_cnt"] == 0


class TestConcurrency:
    async def test_two_final_2304_at_once_settle_once(self, fleet: Fleet, settings, core_url, world):
        """Two final 2304s of one stay under fresh msgids at once (the second sent while the first is at the
        slowed core): one settles, the other is BATCH_SETTLED naming its setl_id."""
        (a,) = plain_items(world, "A", 1)
        s = await admitted(fleet, "E2E-ZY-0006")
        assert_ok(200, await s.upload([line(a, 1)]))
        assert_ok(200, await s.send("discharge"))
        total = bill_total([line(a, 1)])
        b1, b2 = s.settle(total), s.settle(total)

        async def second() -> dict[str, Any]:
            for _ in range(2000):  # until the first 2304 holds the stay
                if await pg_rows(settings.pg_dsn, "SELECT 1 FROM visits WHERE final_msgid = $1", b1.body["msgid"]):
                    break
                await asyncio.sleep(0.005)
            return await s.call(b2)

        await put_faults(core_url, {"latency_ms": 300})
        try:
            first, other = await asyncio.gather(s.call(b1), second())
        finally:
            await put_faults(core_url, {})
        assert_ok(200, first)
        assert_declined(200, other, "BATCH_SETTLED")
        assert other["output"]["setl_id"] == first["output"]["setlinfo"]["setl_id"]
        assert await core_settlements(core_url, b2.body["msgid"]) == []
