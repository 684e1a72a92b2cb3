"""The admin listener's own TLS (issue 11 item 4), in one process: HTTPS on the admin port with a certificate of
its own (not the terminal's), client certificates of the operators' machines required by their own CA, plain
HTTP refused, and a bearer token still needed on top of TLS."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509

from gateway.app import create_app
from gateway.keys import STATUS
from gateway.settings import Settings
from gateway.tls import ServerTls
from loadtest.certs import CertAuthority, client_context
from tests.e2e.helpers import ADMIN
from tests.procs import own_stores
from tests.tls.conftest import Pki


@dataclass
class AdminTls:
    """A gateway with TLS on both listeners: the terminal's certificate, the admin's own, the operators' CA."""

    terminal: TestServer
    admin_host: str
    admin_port: int
    admin_serial: int
    pki: Pki
    folder: Path

    def operator_machine(self) -> ssl.SSLContext:
        """A client context presenting the operator machine's certificate (of the operators' CA)."""
        return client_context(self.pki.ca_file, self.folder / "desk.crt", self.folder / "desk.key")

    async def get(self, path: str, ctx: ssl.SSLContext, token: dict[str, str] | None = None) -> int:
        url = f"https://{self.admin_host}:{self.admin_port}{path}"
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
            http.get(url, ssl=ctx, headers=token or {}) as r,
        ):
            return r.status


async def serial_at(host: str, port: int, ctx: ssl.SSLContext) -> int:
    """The serial of the certificate a server shows to a new connection."""
    _r, w = await asyncio.open_connection(host, port, ssl=ctx)
    try:
        der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        w.close()
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture(scope="module")
async def admin_tls(settings: Settings, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AdminTls]:
    """Own stores, no world; terminal over TLS with institution certificates, admin port 0 over TLS with its own
    certificate (same server CA, its own serial) and client certificates of the operators' CA required."""
    folder = tmp_path_factory.mktemp("admin-pki")
    admin = pki.ca.server()
    cert, key = admin.write(folder, "admin")
    operators = CertAuthority("onecard operators CA")
    (folder / "operators-ca.crt").write_bytes(operators.cert_pem())
    operators.client(None, san=False, cn="ops desk 1").write(folder, "desk")
    f = pki.files()
    async with own_stores() as (dsn, prefix):
        s = dataclasses.replace(
            settings, pg_dsn=dsn, redis_prefix=prefix, world_file=None, admin_port=0,
            tls_cert=f.cert, tls_key=f.key, tls_client_ca=f.client_ca, tls_client_crl=f.client_crl,
            admin_tls_cert=str(cert), admin_tls_key=str(key), admin_tls_client_ca=str(folder / "operators-ca.crt"),
        )  # fmt: skip
        server = TestServer(create_app(s))  # the admin TLS built from the settings by the listener itself
        await server.start_server(ssl=ServerTls(f).context)
        try:
            host, port = server.app[STATUS]["admin_listener"][0].rsplit(":", 1)
            yield AdminTls(server, host, int(port), admin.serial, pki, folder)
        finally:
            await server.close()


class TestAdminListenerTls:
    async def test_own_certificate(self, admin_tls: AdminTls):
        """The admin port shows its own certificate; the terminal port shows the terminal's (another serial)."""
        a = admin_tls
        terminal = x509.load_pem_x509_certificate(a.pki.server_cert.read_bytes()).serial_number
        assert await serial_at(a.admin_host, a.admin_port, a.operator_machine()) == a.admin_serial
        assert await serial_at(a.terminal.host, a.terminal.port, a.pki.client("a")) == terminal
        assert a.admin_serial != terminal

    async def test_token_still_required_over_tls(self, admin_tls: AdminTls):
        """With a good client certificate, /metrics and /admin/audit still need a bearer token (401 without); with
        the operator token, /metrics answers and the audit trail (auditor only) is 403, as over plain HTTP."""
        ctx = admin_tls.operator_machine()
        assert await admin_tls.get("/metrics", ctx) == 401
        assert await admin_tls.get("/admin/audit", ctx) == 401
        assert await admin_tls.get("/metrics", ctx, ADMIN) == 200
        assert await admin_tls.get("/admin/audit", ctx, ADMIN) == 403

    @pytest.mark.parametrize("who", ["none", "institution"])
    async def test_client_certificate_of_the_operators_ca_required(self, admin_tls: AdminTls, who: str):
        """No client certificate, or an institution's (the terminals' CA, not the operators'): no HTTP answer on
        the admin port, with a token or without."""
        ctx: Any = admin_tls.pki.client(None if who == "none" else "a")
        with pytest.raises(aiohttp.ClientError):
            await admin_tls.get("/metrics", ctx, ADMIN)

    async def test_plain_http_gets_no_answer(self, admin_tls: AdminTls):
        """Plain HTTP to the admin TLS port: no HTTP answer of any status."""
        url = f"http://{admin_tls.admin_host}:{admin_tls.admin_port}/metrics"
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(url, headers=ADMIN) as r:
                    pytest.fail(f"plain HTTP answered {r.status}")
