"""TLS fixtures: a throwaway PKI made by the test (loadtest/certs.py: a CA, a loopback server certificate, client
certificates of two institutions of the session world, and the bad ones), and the gateway app served over HTTPS
with client certificates required, on the session's database and Redis prefix."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.settings import Settings
from gateway.tls import ServerTls, TlsFiles
from loadtest.certs import CertAuthority, Issued, client_context


@dataclass
class Pki:
    """The files of one test PKI and the institutions its client certificates name."""

    folder: Path
    ca: CertAuthority
    ca_file: Path
    server_cert: Path
    server_key: Path
    crl_file: Path
    code_a: str  # a hospital: its certificate names it in a SAN URI
    code_b: str  # a pharmacy: its certificate names it only in the subject CN
    issued: dict[str, Issued]

    def files(self, *, client_ca: bool = True, crl: bool = True) -> TlsFiles:
        return TlsFiles(
            str(self.server_cert),
            str(self.server_key),
            str(self.ca_file) if client_ca else None,
            str(self.crl_file) if client_ca and crl else None,
        )

    def client(self, name: str | None, **kw: Any) -> ssl.SSLContext:
        """A client context trusting the CA, presenting client certificate `name` (None: none)."""
        if name is None:
            return client_context(self.ca_file, **kw)
        return client_context(self.ca_file, self.folder / f"{name}.crt", self.folder / f"{name}.key", **kw)


def make_pki(folder: Path, code_a: str, code_b: str) -> Pki:
    """A CA with its server certificate and client certificates: `a` (SAN URI), `b` (CN only), `a_other_ca`
    (A's code from another CA), `a_expired`, `a_revoked` (in the CRL), `a_both` (SAN A, CN B: SAN wins)."""
    ca = CertAuthority()
    other = CertAuthority("another CA")
    now = datetime.now(UTC)
    ca_file = folder / "ca.crt"
    ca_file.write_bytes(ca.cert_pem())
    server_cert, server_key = ca.server().write(folder, "server")
    issued = {
        "a": ca.client(code_a),
        "b": ca.client(code_b, san=False),
        "a_both": ca.client(code_a, cn=code_b),
        "a_other_ca": other.client(code_a),
        "a_expired": ca.client(code_a, not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)),
        "a_revoked": ca.client(code_a),
    }
    for name, cert in issued.items():
        cert.write(folder, name)
    crl_file = folder / "crl.pem"
    crl_file.write_bytes(ca.crl([issued["a_revoked"].serial]))
    return Pki(folder, ca, ca_file, server_cert, server_key, crl_file, code_a, code_b, issued)


@pytest.fixture(scope="session")
def pki(world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The session's PKI: institution A is the first hospital of the world, B the first pharmacy."""
    hospital = next(i for i in world["institutions"] if i["kind"] == "hospital")
    pharmacy = next(i for i in world["institutions"] if i["kind"] == "pharmacy")
    return make_pki(tmp_path_factory.mktemp("pki"), hospital["fixmedins_code"], pharmacy["fixmedins_code"])


@pytest.fixture(scope="session")
def tls_settings(settings: Settings, pki: Pki) -> Settings:
    """The session's settings with TLS and client certificates (CRL included)."""
    f = pki.files()
    return replace(settings, tls_cert=f.cert, tls_key=f.key, tls_client_ca=f.client_ca, tls_client_crl=f.client_crl)


@pytest.fixture(scope="session")
async def tls_server(tls_settings: Settings, pki: Pki) -> AsyncIterator[TestServer]:
    """The gateway app over HTTPS with client certificates required (context from gateway/tls.py)."""
    server = TestServer(create_app(tls_settings))
    await server.start_server(ssl=ServerTls(pki.files()).context)
    yield server
    await server.close()
