"""TLS to the insurance core from the command line (issue 11 item 3): `onecard core-sim --tls-cert --tls-key
--client-ca` as a process answers the gateway's client over mTLS only; bad TLS files of `core-sim` and of
`serve` exit 2 with one line, and `serve` creates nothing first."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from adapters.core_fsi import FsiCore
from adapters.core_tls import client_context
from gateway.domain.errors import CoreRejected, CoreUnavailable
from tests.conftest import PG_ADMIN
from tests.integration.core_tls_certs import Pair, TestCA
from tests.ports import free_port
from tests.procs import Served, run, until

PSN = "33020000000000000001"


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("onecard: ")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def pki(tmp_path: Path) -> tuple[TestCA, Pair, Pair]:
    ca = TestCA(tmp_path, "CLI Core CA")
    return ca, ca.server("core"), ca.client("gateway")


async def answer(url: str, ca: TestCA, client: Pair | None) -> str:
    """What a 1101 read over TLS gets: "answered" (the core refused the unknown person: it was reached) or the
    CoreUnavailable message."""
    cert, key = (str(client.cert), str(client.key)) if client else (None, None)
    core = FsiCore(url, ssl_context=client_context(str(ca.file), cert, key))
    try:
        await core.person(PSN, timeout=2.0)
    except CoreRejected:
        return "answered"
    except CoreUnavailable as exc:
        return str(exc)
    finally:
        await core.close()
    return "answered"


class TestCoreSimOverTls:
    async def test_core_sim_serves_https_requiring_client_certificates(self, pki, tmp_path: Path):
        """The simulator process on HTTPS with --client-ca: the gateway's certificate is answered, none is not."""
        ca, server, client = pki
        port = free_port()
        args = ["--tls-cert", str(server.cert), "--tls-key", str(server.key), "--client-ca", str(ca.file)]
        sim = await Served.start(args, {}, port, command="core-sim")
        url = f"https://127.0.0.1:{port}"
        try:

            async def up() -> bool:
                return not (await answer(url, ca, client)).endswith("(ClientConnectorError)")  # refused: not yet

            await until(up, "core simulator on https", 30.0)
            assert await answer(url, ca, client) == "answered"
            assert "TLS: the core hung up in the handshake" in await answer(url, ca, None)
            assert sim.logged(f"Running on https://127.0.0.1:{port}")
        finally:
            await sim.kill()
        assert not any("Traceback" in line for line in sim.log), sim.log

    def test_core_sim_tls_files_are_checked(self, pki, tmp_path: Path):
        """A certificate without its key, or with another's key: exit 2, one line naming the flags."""
        _ca, server, client = pki
        r = run("core-sim", "--port", str(free_port()), "--tls-cert", str(server.cert))
        assert r.returncode == 2, r.stderr
        assert "--tls-cert and --tls-key go together" in one_line(r.stderr)
        r = run("core-sim", "--port", str(free_port()), "--tls-cert", str(server.cert), "--tls-key", str(client.key))
        assert r.returncode == 2, r.stderr
        assert "--tls-cert/--tls-key: cannot load" in one_line(r.stderr)


class TestServeTlsFiles:
    async def test_a_bad_core_ca_file_exits_2_before_the_database_is_touched(self, tmp_path: Path):
        """serve with an https core and a CA bundle that is not one: exit 2 naming core_ca_file; the database
        it would have created does not exist."""
        name = f"onecard_coretls_{free_port()}"
        head = PG_ADMIN.rsplit("/", 1)[0]
        (tmp_path / "ca.pem").write_text("not a certificate\n")
        env = {
            "ONECARD_PG_DSN": f"{head}/{name}",
            "ONECARD_CORE_URL": "https://127.0.0.1:8443",
            "ONECARD_CORE_CA_FILE": str(tmp_path / "ca.pem"),
        }
        r = run("serve", "--dev", "--port", str(free_port()), env=env, timeout=60)
        assert r.returncode == 2, r.stderr
        assert "core_ca_file: cannot load CA bundle" in one_line(r.stderr)
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
        finally:
            await admin.close()
