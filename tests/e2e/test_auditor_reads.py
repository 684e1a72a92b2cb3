"""The auditor's reads over HTTP (issue 11 item 5) through the session gateway, its PostgreSQL and the core
simulator: `GET /admin/reconcile` answers what `onecard reconcile --json` prints (journal only, and with core=1
against the core's ledger through the core port), `GET /admin/journal/verify` what `onecard journal verify` finds
(a row altered after sealing among it), other roles are 403, and bad parameters are 400 naming the parameter."""

from __future__ import annotations

import secrets
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest

from adapters.pg_reconcile import PgReconcileReads
from gateway.bootstrap.commands import operator_accounts, verify_journal
from gateway.domain.operators import Role
from loadtest.terminal import Terminal
from onecard.reconcile import fetch_core_ledger, reconcile
from tests.conftest import Fleet
from tests.e2e.helpers import ADMIN, assert_ok, line, pg, pg_rows, plain_items, shanghai_today
from tests.procs import until

CODE, PSAM = "P33020099902", "330200990201"
TZ = ZoneInfo("Asia/Shanghai")


class TestAuditorReads:
    state: dict[str, Any] = {}  # noqa: RUF012 - made once, shared by the tests of this class

    @pytest.fixture
    async def own(self, fleet: Fleet, settings) -> dict[str, Any]:
        """A pharmacy nobody else uses with two settlements (one cancelled), and an auditor's token."""
        st = TestAuditorReads.state
        if st:
            return st
        async with pg(settings.pg_dsn) as conn:
            await conn.execute(
                "INSERT INTO institutions VALUES ($1, 'Auditor test pharmacy', 'pharmacy', 0, '330200')", CODE
            )
            await conn.execute("INSERT INTO psams (psam_no, fixmedins_code) VALUES ($1, $2)", PSAM, CODE)
        t = Terminal(CODE, "Auditor test pharmacy", PSAM)
        _, resp, _ = await fleet.call(t.sign_in())
        assert resp["infcode"] == 0, resp
        t.sign_no = resp["output"]["signinoutb"]["sign_no"]
        (a,) = plain_items(fleet.world, "A", 1)
        for cancel_it in (False, True):
            card, _ = fleet.card(insutype="310", min_balance=20000)
            status, resp, _ = await fleet.call(t.settle("2102", card, [line(a, 2)]))
            assert_ok(status, resp)
            if cancel_it:
                info = resp["output"]["setlinfo"]
                status, cresp, _ = await fleet.call(t.cancel("2103", info["setl_id"], card.psn_no))
                assert_ok(status, cresp)
        async with operator_accounts(settings) as (accounts, _):
            token = await accounts.add(f"auditor-{secrets.token_hex(4)}", Role.AUDITOR, None)
        st.update(auditor={"Authorization": f"Bearer {token}"})
        return st

    async def get(self, fleet: Fleet, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        r = await fleet.client.get(path, headers=headers)
        return r.status, orjson.loads(await r.read())

    async def test_reconcile_as_the_command_reports_it(self, own, fleet: Fleet, settings, core_url):
        """Journal only, and with core=1: the body is the command's report for the same dates, byte for byte as
        JSON; balanced, one live settlement."""
        day = shanghai_today().isoformat()
        path = f"/admin/reconcile?institution={CODE}&from={day}&to={day}"
        async with asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=2) as pool:
            reads = PgReconcileReads(pool)
            journal_only = (await reconcile(reads, CODE, shanghai_today(), shanghai_today(), tz=TZ)).to_json()
            ledger = await fetch_core_ledger(core_url, CODE, shanghai_today(), shanghai_today())
            against = await reconcile(reads, CODE, shanghai_today(), shanghai_today(), tz=TZ, core=ledger)
        status, body = await self.get(fleet, path, own["auditor"])
        assert (status, body) == (200, journal_only)
        assert body["core"] is None
        assert body["gateway"]["fixmedins_setl_cnt"] == 1
        assert body["balanced"] is True
        status, body = await self.get(fleet, path + "&core=1", own["auditor"])
        assert (status, body) == (200, against.to_json())
        assert body["core"] == {k: v for k, v in body["gateway"].items() if k != "unknown_cnt"}
        assert body["breaks"] == []

    async def test_journal_verify_as_the_command_finds_it(self, own, fleet: Fleet, settings):
        """Today's stretch and the whole chain verify; a sealed row of today altered: ok false, naming that row
        and why, as `onecard journal verify --day` does (the row is put back after)."""
        day = shanghai_today()

        async def sealed() -> bool:  # the session gateway's sealer chains completed rows in the background
            rows = await pg_rows(settings.pg_dsn, "SELECT chain_seq FROM journal WHERE fixmedins_code = $1", CODE)
            return bool(rows) and all(r["chain_seq"] is not None for r in rows)

        await until(sealed, "this pharmacy's journal rows sealed")
        status, body = await self.get(fleet, f"/admin/journal/verify?day={day.isoformat()}", own["auditor"])
        assert status == 200, body
        assert (body["ok"], body["scope"], body["day"]) == (True, f"day {day.isoformat()}", day.isoformat())
        assert body["rows"] > 0
        status, body = await self.get(fleet, "/admin/journal/verify", own["auditor"])
        assert (status, body["ok"], body["scope"]) == (200, True, "whole chain")
        async with pg(settings.pg_dsn) as conn:
            victim = await conn.fetchval(
                "SELECT max(id) FROM journal WHERE fixmedins_code = $1 AND chain_seq IS NOT NULL", CODE
            )
            assert victim is not None
            await conn.execute("UPDATE journal SET http_status = http_status + 1 WHERE id = $1", victim)
            try:
                status, body = await self.get(fleet, f"/admin/journal/verify?day={day.isoformat()}", own["auditor"])
                cli = await verify_journal(settings, day=day, tz=TZ, stale_s=60.0)
            finally:
                await conn.execute("UPDATE journal SET http_status = http_status - 1 WHERE id = $1", victim)
        assert status == 200
        assert (body["ok"], body["first_broken_id"], body["reason"]) == (False, victim, cli.reason)
        assert cli.first_broken_id == victim
        assert "altered after sealing" in body["reason"]

    async def test_other_roles_refused(self, own, fleet: Fleet):
        """The env operator token is 403 on both (auditor only); no token is 401."""
        day = shanghai_today().isoformat()
        for path in ("/admin/journal/verify", f"/admin/reconcile?institution={CODE}&from={day}&to={day}"):
            assert (await self.get(fleet, path, ADMIN))[0] == 403
            assert (await self.get(fleet, path, {}))[0] == 401

    @pytest.mark.parametrize(
        ("query", "names"),
        [
            ("/admin/journal/verify?day=2026-13-01", "day"),
            ("/admin/journal/verify?day=20260101", "day"),
            ("/admin/journal/verify?stale_s=-1", "stale_s"),
            ("/admin/journal/verify?stale_s=nan", "stale_s"),
            ("/admin/reconcile", "institution"),
            ("/admin/reconcile?institution=../x&from=2026-01-01&to=2026-01-01", "institution"),
            ("/admin/reconcile?institution=NOPE00000000&from=2026-01-01&to=2026-01-01", "institution"),
            (f"/admin/reconcile?institution={CODE}&to=2026-01-01", "from"),
            (f"/admin/reconcile?institution={CODE}&from=2026-01-01", "to"),
            (f"/admin/reconcile?institution={CODE}&from=yesterday&to=2026-01-01", "from"),
            (f"/admin/reconcile?institution={CODE}&from=2026-01-02&to=2026-01-01", "to"),
            (f"/admin/reconcile?institution={CODE}&from=2025-01-01&to=2026-06-01", "to"),
            (f"/admin/reconcile?institution={CODE}&from=2026-01-01&to=2026-01-01&core=maybe", "core"),
        ],
    )
    async def test_bad_parameters(self, own, fleet: Fleet, query: str, names: str):
        """400 in the JSON error shape, the message starting with the parameter's name."""
        status, body = await self.get(fleet, query, own["auditor"])
        assert status == 400, body
        assert body["err_code"] == "MALFORMED"
        assert body["err_msg"].startswith(f"{names}:"), body
