"""Rate limits and priority load shedding end to end (issue 11 items 7 and 8): a gateway of their own on
loopback over the session's PostgreSQL, Redis and core simulator (faults reset afterwards)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.keys import LOAD_GATE
from loadtest.terminal import CALL_SERVICE, Built
from tests.conftest import Fleet
from tests.e2e.helpers import assert_ok, line, pg_rows, plain_items, put_faults

BURST = 10
LIMITS = f"""
[rate_limits]
psam = {{ rate = 0.01, burst = {BURST} }}
institution = {{ rate = 1000, burst = 1000 }}
"""


def _own(settings: Any, world: dict[str, Any], tmp_path: Path, **over: Any) -> Any:
    (tmp_path / "catalogue.json").write_bytes(orjson.dumps(world["catalogue"]))
    return dataclasses.replace(settings, world_file=None, catalogue_file=str(tmp_path / "catalogue.json"), **over)


@pytest.fixture
async def limited(settings, world, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """A gateway with a PSAM limit of 10 at once (then one per 100 s) and a generous institution limit."""
    (tmp_path / "limits.toml").write_text(LIMITS, encoding="utf-8")
    s = _own(settings, world, tmp_path, rate_limits_file=str(tmp_path / "limits.toml"))
    async with TestClient(TestServer(create_app(s))) as c:
        yield c


@pytest.fixture
async def bounded(settings, world, core_url, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """A gateway with at most 2 requests in flight before shedding, and core deadlines above the slow core's."""
    s = _own(settings, world, tmp_path, max_in_flight=2, core_timeout_s=15.0, core_read_timeout_s=15.0)
    try:
        async with TestClient(TestServer(create_app(s))) as c:
            yield c
    finally:
        await put_faults(core_url, {})


async def post(c: TestClient[Any, Any], b: Built) -> tuple[int, dict[str, Any], Any, bytes]:
    resp = await c.post(CALL_SERVICE, data=orjson.dumps(b.body))
    raw = await resp.read()
    return resp.status, orjson.loads(raw), resp.headers, raw


async def metric(c: TestClient[Any, Any], sample: str) -> float:
    text = await (await c.get("/metrics")).text()
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(sample))


async def journal_count(dsn: str, code: str) -> int:
    return int((await pg_rows(dsn, "SELECT count(*) AS n FROM journal WHERE fixmedins_code = $1", code))[0]["n"])


class TestRateLimits:
    async def test_burst_of_500(self, limited, fleet: Fleet, world, settings):
        """500 requests at once from one PSAM: 10 pass and the rest hear 429 RATE_LIMITED with Retry-After and
        MAC2, journaled nowhere; meanwhile a PSAM of another institution keeps settling, and a retry of the
        runaway PSAM's answered msgid gets its journaled answer byte for byte."""
        runaway, other = await fleet.new_terminal(), await fleet.new_terminal()
        (a,) = plain_items(world, "A", 1)
        card, _ = fleet.card(insutype="310", min_balance=20000)
        answered = runaway.settle("2207", card, [line(a, 1)])
        status, r, _, first = await post(limited, answered)
        assert_ok(status, r)
        rows_before = await journal_count(settings.pg_dsn, runaway.fixmedins_code)
        burst = [runaway.person_info(card) for _ in range(500)]  # built in order: the ATCs rise

        async def run_burst() -> list[tuple[int, dict[str, Any], Any, bytes]]:
            out = []
            for i, b in enumerate(burst):
                out.append(await post(limited, b))
                if i == 250:
                    out.append(await post(limited, answered))  # the retry, mid-burst
            return out

        async def keep_settling() -> list[tuple[int, dict[str, Any], Any, bytes]]:
            other_card, _ = fleet.card(insutype="310", min_balance=20000)
            out = []
            for _ in range(BURST - 2):
                out.append(await post(limited, other.settle("2207", other_card, [line(a, 1)])))
                await asyncio.sleep(0)
            return out

        results, settled = await asyncio.gather(run_burst(), keep_settling())
        retry = results.pop(251)
        assert (retry[0], retry[3]) == (200, first)
        assert "Retry-After" not in retry[2]
        passed = [x for x in results if x[0] != 429]
        refused = [x for x in results if x[0] == 429]
        assert len(passed) == BURST - 1  # the settlement took the first token
        assert all(x[0] == 200 and x[1]["infcode"] == 0 for x in passed), passed[:1]
        assert len(refused) == 500 - (BURST - 1)
        for _, body, headers, _ in refused:
            assert (body["infcode"], body["err_code"]) == (-1, "RATE_LIMITED")
            assert int(headers["Retry-After"]) >= 1
            assert body["dev_safe_info"]["mac2"]
            assert f"psam {runaway.psam_no} is over its rate limit" in body["err_msg"]
        for status, body, _, _ in settled:
            assert_ok(status, body)
        # Nothing journaled for a 429 (nor for the retry): one row per request that passed.
        assert await journal_count(settings.pg_dsn, runaway.fixmedins_code) == rows_before + len(passed)
        assert await metric(limited, 'onecard_rate_limited_total{scope="psam"}') == len(refused)


class TestShedding:
    async def test_polls_and_queries_shed_settlements_pass(self, bounded, fleet: Fleet, world, core_url):
        """Two settlements stuck on a slow core fill a bound of 2: a blacklist poll, a 1101 and a 2206 are shed
        at once (503 OVERLOADED, Retry-After, nothing started), while a third 2207 and a 2601 go through."""
        t = await fleet.new_terminal()
        (a,) = plain_items(world, "A", 1)
        cards = [fleet.card(insutype="310", min_balance=20000)[0] for _ in range(4)]
        await put_faults(core_url, {"latency_ms": 1500})
        gate = bounded.app[LOAD_GATE]
        slow = [asyncio.ensure_future(post(bounded, t.settle("2207", c, [line(a, 1)]))) for c in cards[:2]]
        for _ in range(2000):  # wait (not time) until both are in the gateway
            if gate.in_flight >= 2:
                break
            await asyncio.sleep(0.005)
        assert gate.in_flight == 2

        poll = await bounded.get("/blacklist/delta?since=0", headers={"X-Psam-No": t.psam_no, "X-Sign-No": t.sign_no})
        assert poll.status == 503
        assert poll.headers["Retry-After"] == "1"
        assert (await poll.json())["err_code"] == "OVERLOADED"
        for b in (t.person_info(cards[2]), t.settle("2206", cards[2], [line(a, 1)])):
            status, r, headers, _ = await post(bounded, b)
            assert (status, r["infcode"], r["err_code"]) == (503, -1, "OVERLOADED"), r
            assert headers["Retry-After"] == "1"
            assert "dev_safe_info" not in r  # shed before anything was verified
            assert "X-Gateway-Latency-Us" in headers
        assert gate.in_flight == 2  # answered while the settlements still wait on the core: not queued

        essential = [
            asyncio.ensure_future(post(bounded, t.settle("2207", cards[3], [line(a, 1)]))),
            asyncio.ensure_future(post(bounded, t.reverse(cards[3].psn_no, "NO-SUCH-MSGID", "2207"))),
        ]
        for status, r, _, _ in await asyncio.gather(*slow, essential[0]):
            assert_ok(status, r)
        status, r, _, _ = await essential[1]
        assert r["err_code"] != "OVERLOADED", r
        assert gate.in_flight == 0
        assert await metric(bounded, 'onecard_shed_total{priority="distribution"}') == 1
        assert await metric(bounded, 'onecard_shed_total{priority="query"}') == 1
        assert await metric(bounded, 'onecard_shed_total{priority="presettle"}') == 1
        assert await metric(bounded, "onecard_in_flight ") == 0
