"""Core protection end to end (issue 4): the circuit breaker opens after repeated failures, then answers
-1 CORE_UNAVAILABLE without sending anything, and lets service resume after its cool-down. Runs on its own
gateway (same database, Redis prefix and core simulator) so the session app's breaker is never tripped; the
cool-down is passed by moving the breaker's clock, never by sleeping."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.core_guard import GuardedCore
from gateway.app import create_app
from gateway.keys import GATEWAY
from loadtest.terminal import CALL_SERVICE, Built
from tests.conftest import Fleet
from tests.e2e.helpers import (
    assert_declined,
    assert_ok,
    core_settlements,
    journal_rows,
    line,
    pg_rows,
    plain_items,
    put_faults,
)

THRESHOLD = 3


@pytest.fixture
async def guarded(settings, world, core_url, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """A second gateway with a low breaker threshold and an hour-long cool-down; faults reset afterwards."""
    (tmp_path / "catalogue.json").write_bytes(orjson.dumps(world["catalogue"]))
    s = dataclasses.replace(
        settings,
        world_file=None,
        catalogue_file=str(tmp_path / "catalogue.json"),
        core_breaker_failures=THRESHOLD,
        core_breaker_reset_s=3600.0,
    )
    try:
        async with TestClient(TestServer(create_app(s))) as c:
            yield c
    finally:
        await put_faults(core_url, {})


async def call(c: TestClient[Any, Any], b: Built) -> tuple[int, dict[str, Any]]:
    resp = await c.post(CALL_SERVICE, data=orjson.dumps(b.body))
    return resp.status, orjson.loads(await resp.read())


async def metric(c: TestClient[Any, Any], name: str) -> float:
    text = await (await c.get("/metrics")).text()
    (value,) = [ln.split()[-1] for ln in text.splitlines() if ln.startswith(name + " ") or ln.startswith(name + "{")]
    return float(value)


class TestBreaker:
    async def test_opens_refuses_unsent_and_recovers(self, guarded, fleet: Fleet, world, core_url, settings):
        """Down: N failures open it; then 2207 is -1 CORE_UNAVAILABLE with the core up and nothing sent; after
        the cool-down one probe closes it and settlements resume."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        (a,) = plain_items(world, "A", 1)
        assert await metric(guarded, "onecard_core_breaker_state") == 0
        await put_faults(core_url, {"down": True})
        for _ in range(THRESHOLD):
            b = t.settle("2207", card, [line(a, 1)])
            status, resp = await call(guarded, b)
            assert_declined(status, resp, "CORE_UNAVAILABLE", 200, infcode=-1)
            assert b.mac2_ok(resp)
        assert await metric(guarded, "onecard_core_breaker_state") == 2
        await put_faults(core_url, {})

        # the core is up again, but the breaker is open: refused at once, nothing reaches the core
        queue0 = await pg_rows(settings.pg_dsn, "SELECT count(*) AS n FROM reversal_queue")
        refused = []
        for _ in range(3):
            b = t.settle("2207", card, [line(a, 1)])
            status, resp = await call(guarded, b)
            assert_declined(status, resp, "CORE_UNAVAILABLE", 200, infcode=-1)
            assert "circuit open" in resp["err_msg"]
            assert b.mac2_ok(resp)
            refused.append(b.body["msgid"])
        for msgid in refused:
            assert await core_settlements(core_url, msgid) == []
            (j,) = await journal_rows(settings.pg_dsn, t.fixmedins_code, msgid)
            assert (j["state"], j["err_code"]) == ("DONE", "CORE_UNAVAILABLE")
        assert await pg_rows(settings.pg_dsn, "SELECT count(*) AS n FROM reversal_queue") == queue0
        assert await metric(guarded, 'onecard_core_short_circuits_total{reason="open"}') == 3

        # the cool-down passes: the next settlement probes, succeeds and closes the breaker
        core = guarded.server.app[GATEWAY].d.core
        assert isinstance(core, GuardedCore)
        core.clock = lambda: time.monotonic() + 3600.0
        for _ in range(2):
            b = t.settle("2207", card, [line(a, 1)])
            status, resp = await call(guarded, b)
            assert_ok(status, resp)
            assert [s["state"] for s in await core_settlements(core_url, b.body["msgid"])] == ["POSTED"]
        assert await metric(guarded, "onecard_core_breaker_state") == 0
        assert await metric(guarded, "onecard_core_in_flight") == 0
