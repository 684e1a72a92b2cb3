"""Operator reconciliation through the session gateway and core simulator, on a private pharmacy registered
here (every world institution is settled at by other tests): balanced after settling and cancelling, the
same from `onecard reconcile`, and a deleted settlements row shows as MISSING_AT_GATEWAY for that msgid."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest

from adapters.journal_codec import chain_hash
from adapters.pg_reconcile import PgReconcileReads
from gateway.domain.inputs import StatementDetail
from gateway.domain.reconcile import (
    AMOUNT_MISMATCH,
    MISSING_AT_CORE,
    STATE_MISMATCH,
    UNRESOLVED,
    CoreRecord,
    classify,
    institution_breaks,
)
from gateway.domain.registry import Settlement
from loadtest.terminal import Terminal
from onecard.reconcile import fetch_core_ledger, reconcile
from tests.conftest import Fleet
from tests.e2e.helpers import assert_ok, fen, line, pg, plain_items, shanghai_today

CODE, PSAM = "P33020099901", "330200990101"
TZ = ZoneInfo("Asia/Shanghai")


class TestReconcile:
    """In order: settle three and cancel one, reconcile, then break it."""

    state: dict[str, Any] = {}  # noqa: RUF012 - shared by the tests of this class, in order

    @pytest.fixture
    async def own(self, fleet: Fleet, settings) -> dict[str, Any]:
        """A pharmacy and PSAM nobody else uses, its three settlements (one cancelled), made once."""
        st = TestReconcile.state
        if st:
            return st
        async with pg(settings.pg_dsn) as conn:
            await conn.execute(
                "INSERT INTO institutions VALUES ($1, 'Reconcile test pharmacy', 'pharmacy', 0, '330200')", CODE
            )
            await conn.execute("INSERT INTO psams (psam_no, fixmedins_code) VALUES ($1, $2)", PSAM, CODE)
        t = Terminal(CODE, "Reconcile test pharmacy", PSAM)
        _, resp, _ = await fleet.call(t.sign_in())
        assert resp["infcode"] == 0, resp
        t.sign_no = resp["output"]["signinoutb"]["sign_no"]
        a1, a2 = plain_items(fleet.world, "A", 2)
        (c,) = plain_items(fleet.world, "C", 1)
        settled = []
        for i, cancel_it in enumerate((False, True, False)):
            card, _ = fleet.card(insutype="310", min_balance=20000)
            b = t.settle("2102", card, [line(a1, i + 1), line(a2, 1), line(c, 2)])
            status, resp, _ = await fleet.call(b)
            assert_ok(status, resp)
            info = resp["output"]["setlinfo"]
            rec = {"msgid": b.body["msgid"], "info": info, "cancelled": cancel_it, "psn_no": card.psn_no}
            if cancel_it:
                status, cresp, _ = await fleet.call(t.cancel("2103", info["setl_id"], card.psn_no))
                assert_ok(status, cresp)
            settled.append(rec)
        st.update(t=t, settled=settled)
        return st

    async def _report(self, settings, core_url):
        day = shanghai_today()
        core = await fetch_core_ledger(core_url, CODE, day, day)
        async with asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=2) as pool:
            return await reconcile(PgReconcileReads(pool), CODE, day, day, tz=TZ, core=core)

    async def test_balanced_against_core(self, own, settings, core_url):
        """Gateway totals are settlements minus cancellations, the core agrees, no breaks."""
        report = await self._report(settings, core_url)
        live = [r["info"] for r in own["settled"] if not r["cancelled"]]
        want = {
            "medfee_sumamt": sum(fen(i["medfee_sumamt"]) for i in live),
            "fund_pay_sumamt": sum(fen(i["fund_pay_sumamt"]) for i in live),
            "acct_pay": sum(fen(i["acct_pay"]) for i in live),
            "fixmedins_setl_cnt": 2,
        }
        assert report.gateway == want | {"unknown_cnt": 0}
        assert report.core == want
        assert report.breaks == []
        assert report.balanced

    async def test_journal_only_balanced(self, own, settings):
        """Without the core: the journal's totals and no open outcomes."""
        async with asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=2) as pool:
            day = shanghai_today()
            report = await reconcile(PgReconcileReads(pool), CODE, day, day, tz=TZ)
        assert report.core is None
        assert report.open == []
        assert report.balanced
        assert report.gateway["fixmedins_setl_cnt"] == 2

    async def test_3202_answers_with_the_shared_comparison(self, own, fleet: Fleet, settings):
        """The gateway's 3202 breaks equal gateway.domain.reconcile.institution_breaks on the same rows."""
        t: Terminal = own["t"]
        recs = own["settled"]
        details, ours = [], []
        for k, r in enumerate(recs):
            i = r["info"]
            acct = fen(i["acct_pay"]) + (1 if k == 2 else 0)  # the last one is a fen off
            details.append(
                {"msgid": r["msgid"], "setl_id": i["setl_id"], "medfee_sumamt": i["medfee_sumamt"],
                 "fund_pay_sumamt": i["fund_pay_sumamt"], "acct_pay": float(Decimal(acct) / 100),
                 "refd_setl_flag": "1" if r["cancelled"] else "0"}
            )  # fmt: skip
            ours.append(StatementDetail(r["msgid"], i["setl_id"], fen(i["medfee_sumamt"]), fen(i["fund_pay_sumamt"]),
                                        acct, r["cancelled"]))  # fmt: skip
        day = shanghai_today().isoformat()
        data = {"setl_optins": "330200", "stmt_begndate": day, "stmt_enddate": day, "medfee_sumamt": 0,
                "fund_pay_sumamt": 0, "acct_pay": 0, "fixmedins_setl_cnt": 0}  # fmt: skip
        status, resp, _ = await fleet.call(t.build("3202", {"data": data, "details": details}))
        assert_ok(status, resp)
        async with pg(settings.pg_dsn) as conn:
            rows = [Settlement(**dict(r)) for r in await conn.fetch(
                "SELECT fixmedins_code, msgid, setl_id, infno, psn_no, card_sn, state, pin, default_pin, medfee_sumamt,"
                " inscp_scp_amt, fund_pay_sumamt, acct_pay, psn_cash_pay, setl_time, cancel_msgid, cancel_setl_id"
                " FROM settlements WHERE fixmedins_code = $1 ORDER BY setl_time, msgid", CODE)]  # fmt: skip
        expected = orjson.loads(orjson.dumps(institution_breaks(rows, ours)))
        assert [b["kind"] for b in expected] == [AMOUNT_MISMATCH]
        assert resp["output"]["breaks"] == expected

    async def test_cli_balanced(self, own, settings, core_url):
        """`onecard reconcile --core-url ... --json` prints the same report and exits 0."""
        rc, out, err = await _cli(settings.pg_dsn, "--core-url", core_url, "--json")
        assert rc == 0, (out, err)
        report = orjson.loads(out)
        assert report["balanced"] is True
        assert report["gateway"]["fixmedins_setl_cnt"] == 2
        assert report["core"] == {k: v for k, v in report["gateway"].items() if k != "unknown_cnt"}
        assert report["breaks"] == []

    async def test_sealer_chains_these_rows(self, own, settings):
        """The session gateway's sealer has chained the journal rows of these requests, hashes recomputing."""
        async with pg(settings.pg_dsn) as conn:
            for _ in range(100):
                rows = await conn.fetch("SELECT * FROM journal WHERE fixmedins_code = $1 ORDER BY id", CODE)
                if rows and all(r["chain_seq"] is not None for r in rows):
                    break
                await asyncio.sleep(0.05)
        assert len(rows) >= 6  # sign-in, three settlements, a cancel, the 3202
        for r in rows:
            assert r["chain_seq"] is not None, dict(r)
            assert chain_hash(bytes(r["prev_hash"]), r) == bytes(r["row_hash"])

    async def test_deleted_settlement_is_missing_at_gateway(self, own, settings, core_url):
        """One settlements row deleted in PostgreSQL: exactly that msgid breaks, MISSING_AT_GATEWAY; CLI exits 1."""
        victim = own["settled"][0]["msgid"]
        async with pg(settings.pg_dsn) as conn:
            assert await conn.execute("DELETE FROM settlements WHERE fixmedins_code = $1 AND msgid = $2", CODE, victim)
        report = await self._report(settings, core_url)
        assert [(b["msgid"], b["kind"]) for b in report.breaks] == [(victim, "MISSING_AT_GATEWAY")]
        assert report.breaks[0]["gateway"] is None
        assert report.breaks[0]["core"]["state"] == "POSTED"
        rc, out, err = await _cli(settings.pg_dsn, "--core-url", core_url)
        assert rc == 1, (out, err)
        assert "MISSING_AT_GATEWAY" in out
        assert victim in out


async def _cli(dsn: str, *extra: str) -> tuple[int, str, str]:
    """`onecard reconcile` for today at the private pharmacy, as a subprocess (the core runs in this loop)."""
    day = shanghai_today().isoformat()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "onecard", "reconcile", "--institution", CODE, "--from", day, "--to", day, *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ONECARD_PG_DSN": dsn},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# -- the classification, case by case (pure) --------------------------------------------------------------


def _s(state: str, medfee: int = 1000) -> Settlement:
    return Settlement(CODE, "M1", "S1", "2102", "P1", "C1", state, "VERIFIED", False, medfee, 800, 500, 300, 200,
                      datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip


def _c(state: str, medfee: int = 1000) -> CoreRecord:
    return CoreRecord("M1", "S1", CODE, state, "2026-01-01 08:00:00", medfee, 500, 300, 200)


@pytest.mark.parametrize(
    ("gw", "core", "reversal", "kind"),
    [
        ("POSTED", "POSTED", None, None),
        ("CANCELLED", "CANCELLED", None, None),
        ("POSTED", None, None, MISSING_AT_CORE),
        ("CANCELLED", None, None, MISSING_AT_CORE),
        (None, "POSTED", None, "MISSING_AT_GATEWAY"),
        ("REVERSED", "POSTED", None, "MISSING_AT_GATEWAY"),
        ("UNKNOWN", "POSTED", "DONE", "MISSING_AT_GATEWAY"),
        ("UNKNOWN", "POSTED", "QUEUED", UNRESOLVED),
        ("UNKNOWN", None, "DEAD", UNRESOLVED),
        ("UNKNOWN", None, "DONE", None),
        ("REVERSED", "REVERSED", None, None),
        ("CANCELLING", "POSTED", None, UNRESOLVED),
        ("CANCELLED", "POSTED", None, STATE_MISMATCH),
        ("POSTED", "REVERSED", None, STATE_MISMATCH),
    ],
)
def test_classify(gw, core, reversal, kind):
    """Every break kind of the gateway-against-core comparison."""
    revs = {"M1": reversal} if reversal else {}
    assert classify(_s(gw) if gw else None, _c(core) if core else None, revs) == kind


def test_classify_amount_mismatch():
    """Same state, one fen apart."""
    assert classify(_s("POSTED", 1000), _c("POSTED", 1001), {}) == AMOUNT_MISMATCH
