"""Errors in one shape at the edge (gateway/http/errors.py): the FSI envelope on terminal routes and
`{"err_code", "err_msg"}` everywhere else, for aiohttp's own errors and for real failures in a handler
(PostgreSQL frozen, a table gone), never aiohttp's HTML page."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.settings import Settings
from loadtest.terminal import CALL_SERVICE
from tests.conftest import PG_ADMIN
from tests.e2e.helpers import ADMIN
from tests.procs import own_stores

CARD = "330200D156000005" + "00000000DEAD0001"
SIGNED_IN = {"X-Psam-No": "PSAM0001", "X-Sign-No": "SIGN0001"}


async def json_error(r: aiohttp.ClientResponse, status: int, code: str) -> str:
    """Assert the documented JSON error shape; its message."""
    assert r.status == status, await r.text()
    assert r.content_type == "application/json", await r.text()
    body = orjson.loads(await r.read())
    assert set(body) == {"err_code", "err_msg"}, body
    assert body["err_code"] == code, body
    assert isinstance(body["err_msg"], str)
    assert body["err_msg"]
    msg: str = body["err_msg"]
    return msg


async def envelope(r: aiohttp.ClientResponse, status: int, infcode: int, code: str) -> dict[str, Any]:
    """Assert an FSI envelope (SPEC §3) with this infcode and err_code."""
    assert r.status == status, await r.text()
    assert r.content_type == "application/json"
    body: dict[str, Any] = orjson.loads(await r.read())
    assert (body["infcode"], body["err_code"]) == (infcode, code), body
    assert body["inf_refmsgid"]
    assert body["output"] is None
    return body


class TestAiohttpErrors:
    async def test_unknown_path_is_json(self, client: TestClient[Any, Any]):
        """An unknown path: 404 NOT_FOUND in the JSON shape."""
        await json_error(await client.get("/no/such/thing"), 404, "NOT_FOUND")

    async def test_wrong_method_is_json_with_allow(self, client: TestClient[Any, Any]):
        """A wrong method on an admin route: 405 METHOD_NOT_ALLOWED in the JSON shape, Allow kept."""
        r = await client.get("/admin/blacklist/cards", headers=ADMIN)
        await json_error(r, 405, "METHOD_NOT_ALLOWED")
        assert "POST" in r.headers["Allow"]

    async def test_terminal_route_wrong_method_is_an_envelope(self, client: TestClient[Any, Any]):
        """GET on callService: an FSI envelope (-2 MALFORMED), HTTP 405."""
        r = await client.get(CALL_SERVICE)
        await envelope(r, 405, -2, "MALFORMED")
        assert "POST" in r.headers["Allow"]

    async def test_unknown_terminal_path_is_an_envelope(self, client: TestClient[Any, Any]):
        """A path under /fsi/ that is not a route: an FSI envelope, HTTP 404."""
        await envelope(await client.post("/fsi/api/nothing", data=b"{}"), 404, -2, "MALFORMED")

    async def test_admin_body_over_the_limit_is_json(self, client: TestClient[Any, Any], settings: Settings):
        """An admin body past max_body_bytes (aiohttp's own 413): TOO_LARGE in the JSON shape."""
        body = b"{" + b" " * settings.max_body_bytes + b"}"
        r = await client.post("/admin/blacklist/cards", data=body, headers=ADMIN)
        await json_error(r, 413, "TOO_LARGE")

    async def test_handler_refusals_share_the_shape(self, client: TestClient[Any, Any]):
        """The handlers' own refusals: 400 MALFORMED, 401 UNAUTHORIZED, 401 NOT_SIGNED_IN, one shape."""
        r = await client.post("/admin/blacklist/cards", data=b"[", headers=ADMIN)
        assert "JSON" in await json_error(r, 400, "MALFORMED")
        await json_error(await client.delete(f"/admin/blacklist/cards/{CARD}"), 401, "UNAUTHORIZED")
        await json_error(await client.get("/blacklist/delta?since=0"), 401, "NOT_SIGNED_IN")
        r = await client.post("/admin/blacklist/events", data=b"{}", headers={"Authorization": "Bearer wrong"})
        await json_error(r, 401, "UNAUTHORIZED")


@pytest.fixture
async def own_gateway(settings: Settings) -> AsyncIterator[tuple[TestClient[Any, Any], str]]:
    """A gateway of its own on a database of its own (no world), with a 0.5 s PostgreSQL deadline and a pool
    that opens every connection at start-up, so that freezing the database's backends stalls every call."""
    async with own_stores() as (dsn, prefix):
        s = dataclasses.replace(
            settings, pg_dsn=dsn, redis_prefix=prefix, world_file=None, pg_timeout_s=0.5, pg_pool_min=5,
            pg_pool_max=5,
        )  # fmt: skip
        async with TestClient(TestServer(create_app(s))) as c:
            yield c, dsn.rsplit("/", 1)[1]


@contextlib.asynccontextmanager
async def frozen(database: str) -> AsyncIterator[None]:
    """Every backend serving `database` stopped (SIGSTOP) inside, let go after."""
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        pids = [r["pid"] for r in await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)]
    finally:
        await admin.close()
    assert pids
    with _stopped(pids):
        yield


@contextlib.contextmanager
def _stopped(pids: list[int]) -> Iterator[None]:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@contextlib.asynccontextmanager
async def table_gone(dsn_db: str, table: str) -> AsyncIterator[None]:
    """`table` renamed away inside (a migration gone wrong, an operator's mistake), renamed back after."""
    conn = await asyncpg.connect(PG_ADMIN.rsplit("/", 1)[0] + "/" + dsn_db)
    try:
        await conn.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_gone"')
        try:
            yield
        finally:
            await conn.execute(f'ALTER TABLE "{table}_gone" RENAME TO "{table}"')
    finally:
        await conn.close()


class TestInjectedFailures:
    async def test_postgres_frozen_is_503_json(self, own_gateway: tuple[TestClient[Any, Any], str]):
        """PostgreSQL frozen past its deadline under an admin and a distribution handler: 503 OVERLOADED in the
        JSON shape with Retry-After, not a 500; the gateway answers again once it thaws."""
        client, db = own_gateway
        body = orjson.dumps({"card_sn": CARD, "reason": "01", "source": "330200"})
        async with frozen(db):
            r = await client.post("/admin/blacklist/cards", data=body, headers=ADMIN)
            assert "PostgreSQL" in await json_error(r, 503, "OVERLOADED")
            assert r.headers["Retry-After"] == "1"
        async with frozen(db):
            r = await client.get("/blacklist/delta?since=0", headers=SIGNED_IN)
            await json_error(r, 503, "OVERLOADED")
        r = await client.post("/admin/blacklist/cards", data=body, headers=ADMIN)
        assert r.status == 200, await r.text()

    async def test_unexpected_database_error_is_500_json_with_trace_id(
        self, own_gateway: tuple[TestClient[Any, Any], str], caplog: pytest.LogCaptureFixture
    ):
        """A table gone under an admin and a distribution handler (an error no handler expects): 500 INTERNAL
        in the JSON shape naming a trace id that the log line carries too, never HTML or card data."""
        client, db = own_gateway
        body = orjson.dumps({"card_sn": CARD, "reason": "01", "source": "330200"})
        async with table_gone(db, "blacklist_cards"):
            r = await client.post("/admin/blacklist/cards", data=body, headers=ADMIN)
            msg = await json_error(r, 500, "INTERNAL")
        trace_id = msg.rsplit(" ", 1)[1]
        assert "trace id" in msg
        assert CARD not in msg
        logged = [rec for rec in caplog.records if trace_id in rec.getMessage()]
        assert logged
        assert logged[0].exc_info is not None
        assert "/admin/blacklist/cards" in logged[0].getMessage()
        async with table_gone(db, "sign_sessions"):
            r = await client.get("/blacklist/snapshot", headers=SIGNED_IN)
            assert "trace id" in await json_error(r, 500, "INTERNAL")
        r = await client.post("/admin/blacklist/cards", data=body, headers=ADMIN)
        assert r.status == 200, await r.text()
