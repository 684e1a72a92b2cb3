"""Fixtures for the core simulator and FsiCore tests: a real simulator on loopback per test.

Import the fixtures into a test module by name (`from tests.integration.conftest_core import ...`).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.core_fsi import FsiCore
from coresim import CALL_SERVICE, start_core_sim

HOSPITAL = "H11010100001"
PHARMACY = "P11010100002"

WORLD: dict[str, Any] = {
    "persons": [
        {"psn_no": "11000000000000000001", "certno": "110101199001011234", "psn_name": "张三", "gend": "1",
         "brdy": "1990-01-01", "insutype": "310", "psn_type": "11", "insuplc_admdvs": "110100",
         "status": "ACTIVE", "balance": "500.00", "inscp_ytd": "1000.00", "fund_paid_ytd": "600.00"},
        {"psn_no": "11000000000000000002", "certno": "110101195502023456", "psn_name": "李四", "gend": "2",
         "brdy": "1955-02-02", "insutype": "390", "psn_type": "15", "insuplc_admdvs": "110100",
         "status": "ACTIVE", "balance": "10.00"},
        {"psn_no": "11000000000000000003", "certno": "110101198003035678", "psn_name": "王五", "gend": "1",
         "brdy": "1980-03-03", "insutype": "310", "psn_type": "11", "insuplc_admdvs": "110100",
         "status": "11", "balance": "100.00"},
    ]
}  # fmt: skip
RICH, POOR, SUSPENDED = (p["psn_no"] for p in WORLD["persons"])


class Msgids:
    """FSI msgids (institution 12 + time 14 + sequence 4), unique within a test."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)

    def __call__(self, fixmedins_code: str = HOSPITAL) -> str:
        return f"{fixmedins_code}20260301093000{next(self._seq):04d}"


class Sim:
    """A running simulator and a raw HTTP client for its callService and /sim endpoints."""

    def __init__(self, runner: web.AppRunner, base_url: str, http: aiohttp.ClientSession) -> None:
        self.runner, self.base_url, self.http = runner, base_url, http

    async def call(
        self, infno: str, msgid: str, data: dict[str, Any], fixmedins_code: str = HOSPITAL
    ) -> dict[str, Any]:
        """POST one envelope; returns the decoded reply (HTTP 200 expected)."""
        envelope = {"infno": infno, "msgid": msgid, "fixmedins_code": fixmedins_code,
                    "inf_time": "2026-03-01 09:30:00", "input": {"data": data}}  # fmt: skip
        async with self.http.post(self.base_url + CALL_SERVICE, json=envelope) as resp:
            assert resp.status == 200, await resp.text()
            reply: dict[str, Any] = await resp.json()
            return reply

    async def get(self, path: str) -> Any:
        async with self.http.get(self.base_url + path) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def person(self, psn_no: str) -> dict[str, Any]:
        person: dict[str, Any] = await self.get(f"/sim/persons/{psn_no}")
        return person

    async def settlements(self) -> dict[str, Any]:
        ledger: dict[str, Any] = await self.get("/sim/settlements")
        return ledger

    async def set_faults(self, **faults: Any) -> None:
        async with self.http.put(self.base_url + "/sim/faults", json=faults) as resp:
            assert resp.status == 200, await resp.text()


def posting_data(psn_no: str = RICH, *, version: int = 1, **amounts: Any) -> dict[str, Any]:
    """A 2207 `input.data` with 100.00 total: 80.00 in scope, fund 56.00, account 30.00, cash 14.00."""
    data = {"psn_no": psn_no, "infno": "2207", "medfee_sumamt": 100.00, "inscp_scp_amt": 80.00,
            "fund_pay_sumamt": 56.00, "acct_pay": 30.00, "psn_cash_pay": 14.00,
            "expected_version": version, "setl_time": "2026-03-01 09:30:00"}  # fmt: skip
    data.update(amounts)
    return data


@pytest.fixture(name="msgids")
def _msgids() -> Msgids:
    return Msgids()


@pytest.fixture(name="sim")
async def _sim() -> AsyncIterator[Sim]:
    runner, base_url = await start_core_sim(world=copy.deepcopy(WORLD))
    try:
        async with aiohttp.ClientSession() as http:
            yield Sim(runner, base_url, http)
    finally:
        await runner.cleanup()


@pytest.fixture(name="core")
async def _core(sim: Sim) -> AsyncIterator[FsiCore]:
    core = FsiCore(sim.base_url, pool_size=10, connect_timeout=0.5)
    try:
        yield core
    finally:
        await core.close()


@pytest.fixture(name="garbage_core")
async def _garbage_core() -> AsyncIterator[str]:
    """A server at the callService path answering 200 with a body that is not JSON."""

    async def garbage(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="<html>gateway error</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post(CALL_SERVICE, garbage)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
