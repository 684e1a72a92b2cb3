"""Idle connections on the TLS terminal port (issue 11, bad input "10,000 idle connections", the slowloris case):
through onecard/listener.py a connection that never sends its ClientHello is closed at the request-head deadline
(the handshake timeout), one that completes its handshake and sends nothing too, or sooner to make room at
max_connections; mTLS still names the institution, and a settlement is answered 0 while the idle ones wait."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import orjson

from gateway.tls import ServerTls
from loadtest.terminal import CALL_SERVICE
from tests.conftest import Fleet
from tests.e2e.test_connections import closed_by_server, guarded, journal_count, open_idle, settlement
from tests.procs import until
from tests.tls.conftest import Pki


async def post(url: str, ctx: ssl.SSLContext, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url + CALL_SERVICE, data=orjson.dumps(body), ssl=ctx) as r:
        return r.status, orjson.loads(await r.read())


class TestIdleTls:
    async def test_no_handshake_and_no_request_are_closed(self, tls_settings, pki: Pki, world, tmp_path):
        """idle_request_timeout_s 0.3: a TCP connection that never starts its handshake, and one that completes
        it (client certificate A) but sends no request, are both closed by the server; nothing journaled."""
        tls = ServerTls(pki.files()).context
        async with guarded(tls_settings, world, tmp_path, tls, idle_request_timeout_s=0.3) as g:
            before = await journal_count(tls_settings.pg_dsn)
            raw_r, raw_w = await asyncio.open_connection("127.0.0.1", g.port)
            tls_r, tls_w = await asyncio.open_connection("127.0.0.1", g.port, ssl=pki.client("a"))
            assert await raw_r.read() == b""
            assert await tls_r.read() == b""
            raw_w.close()
            tls_w.close()
            assert g.metric("onecard_connections_dropped_total", reason="head_timeout") == 2
            await until(lambda: g.site.guard.open == 0, "both released")
            assert await journal_count(tls_settings.pg_dsn) == before

    async def test_idle_flood_and_mtls_settlement(
        self, fleet: Fleet, tls_settings, pki: Pki, world, tmp_path, catalogue_codes
    ):
        """max_connections 20: 80 TCP connections that never handshake (held by the handshake deadline only)
        and 40 that handshake and send nothing (the oldest closed to make room); institution A signs in and
        settles over mTLS (its certificate still names it); only that is journaled."""
        tls = ServerTls(pki.files()).context
        async with guarded(tls_settings, world, tmp_path, tls, max_connections=20, idle_request_timeout_s=60) as g:
            idle = await open_idle(g.port, 80)
            await until(lambda: g.site.guard.handshaking == 80, "80 handshakes waiting")
            ctx = pki.client("a")
            idle += [await asyncio.open_connection("127.0.0.1", g.port, ssl=ctx) for _ in range(40)]
            await until(lambda: g.metric("onecard_connections_dropped_total", reason="evicted") >= 20, "evictions")
            t = await fleet.terminal("hospital", sign_in=False)
            assert t.fixmedins_code == pki.code_a
            status, resp = await post(g.url, ctx, t.sign_in().body)
            assert (status, resp["infcode"]) == (200, 0), resp
            t.sign_no = resp["output"]["signinoutb"]["sign_no"]
            before = await journal_count(tls_settings.pg_dsn)
            b = settlement(fleet, t, catalogue_codes)
            status, resp = await post(g.url, ctx, b.body)
            assert (status, resp["infcode"]) == (200, 0), resp
            assert g.site.guard.open <= 20
            assert g.metric("onecard_connections_refused_total") == 0
            assert await closed_by_server(idle) >= 20
            assert await journal_count(tls_settings.pg_dsn) == before + 1
