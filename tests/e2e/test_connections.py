"""Idle and surplus connections on the terminal port (issue 11, bad input "10,000 idle connections"): a gateway
of its own served through onecard/listener.py on loopback, with small limits: idle connections past
max_connections make room (the oldest closed), a settlement from a normal terminal still succeeds, a connection
past the cap with none idle is answered 503 and closed, an idle or half-sent request head is closed at its
deadline; nothing is journaled for any of them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.keys import METRICS
from gateway.settings import Settings
from loadtest.terminal import CALL_SERVICE, Built, Terminal
from onecard.listener import REFUSAL, TerminalSite, start_terminal_site, terminal_runner
from tests.conftest import Fleet
from tests.e2e.helpers import pg_rows
from tests.procs import until


@dataclasses.dataclass
class Guarded:
    """A gateway served through the connection guard."""

    site: TerminalSite
    app: web.Application
    url: str
    port: int

    def metric(self, name: str, **labels: str) -> float:
        value = self.app[METRICS].registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@contextlib.asynccontextmanager
async def guarded(
    settings: Settings, world: dict[str, Any], tmp_path: Path, tls: ssl.SSLContext | None = None, **over: Any
) -> AsyncIterator[Guarded]:
    """The gateway app on the session's stores, served by `start_terminal_site` on a free loopback port (over
    TLS with `tls`)."""
    (tmp_path / "catalogue.json").write_bytes(orjson.dumps(world["catalogue"]))
    s = dataclasses.replace(settings, world_file=None, catalogue_file=str(tmp_path / "catalogue.json"), **over)
    app = create_app(s)
    runner = terminal_runner(app, s)
    await runner.setup()
    try:
        site = await start_terminal_site(runner, s, app[METRICS], "127.0.0.1", 0, ssl_context=tls)
        port = runner.addresses[0][1]
        yield Guarded(site, app, f"{'https' if tls else 'http'}://127.0.0.1:{port}", port)
    finally:
        await runner.cleanup()


async def open_idle(port: int, n: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """n TCP connections that send nothing."""
    return [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]


async def closed_by_server(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> int:
    """How many of these connections the server has closed (EOF waiting to be read), closing ours too."""
    n = 0
    for reader, writer in conns:
        with contextlib.suppress(TimeoutError):
            n += await asyncio.wait_for(reader.read(), 0.01) == b""
        writer.close()
    return n


async def journal_count(dsn: str) -> int:
    return int((await pg_rows(dsn, "SELECT count(*) AS n FROM journal"))[0]["n"])


async def post(url: str, built: Built) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url + CALL_SERVICE, data=orjson.dumps(built.body)) as r:
        return r.status, orjson.loads(await r.read())


def settlement(fleet: Fleet, t: Terminal, catalogue_codes: dict[str, list[dict[str, Any]]]) -> Built:
    card, _person = fleet.card(insutype="310", min_balance=10000)
    item = catalogue_codes["A"][0]
    return t.settle("2207", card, [(item["med_list_codg"], "1", item["price"])])


class TestMaxConnections:
    async def test_idle_flood_makes_room_and_settlement_succeeds(
        self, fleet: Fleet, settings, world, tmp_path, catalogue_codes
    ):
        """max_connections 50, 200 idle connections: at most 50 stay open (the oldest idle ones closed to make
        room, counted), a settlement from a normal terminal is answered 0, only it is journaled."""
        t = await fleet.terminal("hospital")
        async with guarded(settings, world, tmp_path, max_connections=50, idle_request_timeout_s=60.0) as g:
            before = await journal_count(settings.pg_dsn)
            idle = await open_idle(g.port, 200)
            await until(lambda: g.metric("onecard_connections_dropped_total", reason="evicted") >= 150, "evictions")
            assert g.site.guard.open <= 50
            b = settlement(fleet, t, catalogue_codes)
            status, resp = await post(g.url, b)
            assert (status, resp["infcode"]) == (200, 0), resp
            assert b.mac2_ok(resp)
            assert await closed_by_server(idle) >= 150
            assert g.metric("onecard_connections_refused_total") == 0
            assert await journal_count(settings.pg_dsn) == before + 1
            text = g.app[METRICS].render().decode()
            assert "onecard_connections_open " in text
            assert 'onecard_connections_dropped_total{reason="evicted"}' in text

    async def test_past_the_cap_with_none_idle_is_answered_503(self, settings, world, tmp_path):
        """max_connections 3, all three keep-alive connections having sent a request: a fourth reads a 503
        OVERLOADED and EOF, counted in onecard_connections_refused_total; the three still serve."""
        async with guarded(settings, world, tmp_path, max_connections=3) as g:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=3)) as http:
                statuses = await asyncio.gather(*[_get_status(http, g.url + "/healthz") for _ in range(3)])
                assert statuses == [200, 200, 200]
                await until(lambda: len(g.site.guard.waiting) == 0 and g.site.guard.open == 3, "three in keep-alive")
                reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
                assert await reader.read() == REFUSAL
                writer.close()
                assert g.metric("onecard_connections_refused_total") == 1
                assert await _get_status(http, g.url + "/healthz") == 200  # on one of the three
            body = orjson.loads(REFUSAL.split(b"\r\n\r\n", 1)[1])
            assert body["err_code"] == "OVERLOADED"


async def _get_status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as r:
        await r.read()
        return r.status


class TestRequestHeadDeadline:
    async def test_idle_and_half_sent_heads_are_closed(self, settings, world, tmp_path):
        """idle_request_timeout_s 0.3: a connection that sends nothing, and one that sends half a request head
        (slowloris), are closed by the server (EOF), counted; nothing journaled."""
        async with guarded(settings, world, tmp_path, idle_request_timeout_s=0.3) as g:
            before = await journal_count(settings.pg_dsn)
            idle_r, idle_w = await asyncio.open_connection("127.0.0.1", g.port)
            slow_r, slow_w = await asyncio.open_connection("127.0.0.1", g.port)
            slow_w.write(b"POST " + CALL_SERVICE.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n")
            assert await idle_r.read() == b""
            assert await slow_r.read() == b""
            idle_w.close()
            slow_w.close()
            assert g.metric("onecard_connections_dropped_total", reason="head_timeout") == 2
            assert g.site.guard.open == 0
            assert await journal_count(settings.pg_dsn) == before

    async def test_a_request_in_time_is_answered(self, settings, world, tmp_path):
        """A request sent at once is answered, and its connection stays open for the next one (keep-alive)."""
        async with (
            guarded(settings, world, tmp_path, idle_request_timeout_s=5.0) as g,
            aiohttp.ClientSession() as http,
        ):
            assert await _get_status(http, g.url + "/healthz") == 200
            assert await _get_status(http, g.url + "/healthz") == 200
            assert g.metric("onecard_connections_dropped_total", reason="head_timeout") == 0


@pytest.mark.parametrize(
    ("over", "says"),
    [
        ({"ONECARD_MAX_CONNECTIONS": "0"}, "max_connections: must be at least 1"),
        ({"ONECARD_IDLE_REQUEST_TIMEOUT_S": "0"}, "idle_request_timeout_s: must be positive"),
        ({"ONECARD_KEEPALIVE_TIMEOUT_S": "-1"}, "keepalive_timeout_s: must be positive"),
    ],
)
def test_bad_settings(over: dict[str, str], says: str):
    """Settings that would disable the bound are refused at start-up, naming the field."""
    from gateway.domain.errors import ConfigError
    from gateway.settings import load_settings

    with pytest.raises(ConfigError, match=says):
        load_settings(None, over)
