"""TLS to the insurance core end to end (issue 11 item 3): the gateway app (create_app) with an https core_url
settles a 2207 through a simulator that requires the gateway's client certificate; without that certificate
the 2207 is -1 CORE_UNAVAILABLE, journaled so, and no reversal is queued (nothing was sent). Runs on its own
gateway and its own simulator (same database and Redis prefix as the session)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from coresim import start_core_sim
from coresim.keys import STATE
from coresim.state import CoreState
from coresim.tls import server_context
from gateway.app import create_app
from gateway.settings import Settings
from loadtest.terminal import CALL_SERVICE, Built
from tests.conftest import Fleet
from tests.e2e.helpers import assert_declined, assert_ok, journal_rows, line, pg_rows, plain_items
from tests.integration.core_tls_certs import Pair, TestCA


@dataclasses.dataclass
class TlsCore:
    url: str
    ledger: CoreState
    ca: TestCA
    client: Pair


@pytest.fixture
async def tls_core(world: dict[str, Any], tmp_path: Path) -> AsyncIterator[TlsCore]:
    """The simulator on HTTPS (a server certificate for 127.0.0.1), client certificates of its CA required."""
    ca = TestCA(tmp_path, "Core CA")
    server = ca.server("core")
    context = server_context(str(server.cert), str(server.key), str(ca.file))
    runner, url = await start_core_sim(world=copy.deepcopy(world), ssl_context=context)
    try:
        yield TlsCore(url, runner.app[STATE], ca, ca.client("gateway"))
    finally:
        await runner.cleanup()


def gateway_settings(settings: Settings, world: dict[str, Any], tmp_path: Path, **tls: Any) -> Settings:
    (tmp_path / "catalogue.json").write_bytes(orjson.dumps(world["catalogue"]))
    return dataclasses.replace(settings, world_file=None, catalogue_file=str(tmp_path / "catalogue.json"), **tls)


async def call(c: TestClient[Any, Any], b: Built) -> tuple[int, dict[str, Any]]:
    resp = await c.post(CALL_SERVICE, data=orjson.dumps(b.body))
    return resp.status, orjson.loads(await resp.read())


class TestSettlingOverTls:
    async def test_a_2207_settles_over_mtls(self, tls_core: TlsCore, settings, world, fleet: Fleet, tmp_path):
        """core_url https, core_ca_file and the client pair: a settlement posts at the TLS core."""
        s = gateway_settings(
            settings,
            world,
            tmp_path,
            core_url=tls_core.url,
            core_ca_file=str(tls_core.ca.file),
            core_client_cert=str(tls_core.client.cert),
            core_client_key=str(tls_core.client.key),
        )
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        (a,) = plain_items(world, "A", 1)
        async with TestClient(TestServer(create_app(s))) as c:
            b = t.settle("2207", card, [line(a, 2)])
            status, resp = await call(c, b)
        assert_ok(status, resp)
        assert b.mac2_ok(resp)
        posted = tls_core.ledger.settlements[b.body["msgid"]]
        assert posted.setl_id == resp["output"]["setlinfo"]["setl_id"]

    async def test_without_the_client_certificate_nothing_is_owed(
        self, tls_core: TlsCore, settings, world, fleet: Fleet, tmp_path
    ):
        """The core refuses the handshake: -1 CORE_UNAVAILABLE naming TLS, journaled, no reversal queued."""
        s = gateway_settings(settings, world, tmp_path, core_url=tls_core.url, core_ca_file=str(tls_core.ca.file))
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        (a,) = plain_items(world, "A", 1)
        async with TestClient(TestServer(create_app(s))) as c:
            b = t.settle("2207", card, [line(a, 1)])
            status, resp = await call(c, b)
        assert_declined(status, resp, "CORE_UNAVAILABLE", 200, infcode=-1)
        assert "TLS: the core hung up in the handshake" in resp["err_msg"]
        assert b.mac2_ok(resp)
        msgid = b.body["msgid"]
        assert msgid not in tls_core.ledger.settlements
        (j,) = await journal_rows(settings.pg_dsn, t.fixmedins_code, msgid)
        assert (j["state"], j["err_code"]) == ("DONE", "CORE_UNAVAILABLE")
        owed = await pg_rows(settings.pg_dsn, "SELECT id FROM reversal_queue WHERE omsgid = $1", msgid)
        assert owed == []
