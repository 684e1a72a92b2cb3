"""TLS to the insurance core (issue 11 item 3): FsiCore against the simulator serving HTTPS with certificates
made here (a test CA, another CA, server certificates for 127.0.0.1 and for another name, client certificates).
Every TLS failure is CoreUnavailable naming the problem, for a 2207 too (nothing was sent, nothing posted)."""

from __future__ import annotations

import copy
import logging
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from adapters.core_fsi import FsiCore
from adapters.core_tls import client_context
from coresim import start_core_sim
from coresim.keys import STATE
from coresim.state import CoreState
from coresim.tls import TlsFilesError, server_context
from gateway.bootstrap.commands import core_settlements
from gateway.bootstrap.stores import core_tls
from gateway.domain.core import Posting
from gateway.domain.errors import ConfigError, CoreUnavailable
from gateway.settings import Settings
from tests.integration.conftest_core import HOSPITAL, RICH, WORLD
from tests.integration.core_tls_certs import Pair, TestCA

T = 2.0


@dataclass(frozen=True)
class Pki:
    ca: TestCA
    other: TestCA
    server: Pair  # for 127.0.0.1, by ca
    elsewhere: Pair  # for core.example only, by ca
    client: Pair  # the gateway, by ca
    stranger: Pair  # a client certificate by the other CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("core-tls")
    ca, other = TestCA(folder, "Core CA"), TestCA(folder, "Other CA")
    return Pki(
        ca=ca,
        other=other,
        server=ca.server("core"),
        elsewhere=ca.server("elsewhere", ip=None, dns="core.example"),
        client=ca.client("gateway"),
        stranger=other.client("stranger"),
    )


@asynccontextmanager
async def sim(context: ssl.SSLContext | None) -> AsyncIterator[tuple[str, CoreState]]:
    """The simulator on loopback (HTTPS with a context); its base URL and its ledger."""
    runner, url = await start_core_sim(world=copy.deepcopy(WORLD), ssl_context=context)
    try:
        yield url, runner.app[STATE]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def fsi(url: str, context: ssl.SSLContext | None) -> AsyncIterator[FsiCore]:
    core = FsiCore(url, pool_size=4, ssl_context=context)
    try:
        yield core
    finally:
        await core.close()


def posting(msgid: str) -> Posting:
    return Posting(
        msgid=msgid, infno="2207", fixmedins_code=HOSPITAL, psn_no=RICH, medfee_sumamt=10000,
        inscp_scp_amt=8000, fund_pay_sumamt=5600, acct_pay=3000, psn_cash_pay=1400,
        expected_version=1, setl_time="2026-03-01 09:30:00",
    )  # fmt: skip


MSGID = f"{HOSPITAL}202603010930000001"


async def refused(core: FsiCore, ledger: CoreState) -> str:
    """A 1101 and a 2207 both CoreUnavailable (never CoreTimeout: nothing was sent); nothing posted. The
    2207's message."""
    with pytest.raises(CoreUnavailable, match="core 1101: not reached"):
        await core.person(RICH, timeout=T)
    with pytest.raises(CoreUnavailable, match="core 2207: not reached") as info:
        await core.post_settlement(posting(MSGID), timeout=T)
    assert ledger.settlements == {}
    return str(info.value)


class TestServerCertificate:
    async def test_with_the_ca_reads_and_settles(self, pki: Pki) -> None:
        """The core's certificate chains to core_ca_file and names 127.0.0.1: a person read and a posting."""
        async with sim(server_context(str(pki.server.cert), str(pki.server.key))) as (url, ledger):
            assert url.startswith("https://127.0.0.1:")
            async with fsi(url, client_context(str(pki.ca.file), None, None)) as core:
                assert (await core.person(RICH, timeout=T)).balance == 50000
                posted = await core.post_settlement(posting(MSGID), timeout=T)
                assert posted.setl_id
                assert list(ledger.settlements) == [MSGID]
                assert (await core.person(RICH, timeout=T)).balance == 50000 - 3000

    async def test_without_the_ca_is_unavailable(self, pki: Pki) -> None:
        """The system store does not know the test CA: CoreUnavailable naming the certificate problem."""
        async with (
            sim(server_context(str(pki.server.cert), str(pki.server.key))) as (url, ledger),
            fsi(url, None) as core,  # https with no context: the system store
        ):
            why = await refused(core, ledger)
        assert "certificate was not accepted: unable to get local issuer certificate" in why

    async def test_another_ca_is_unavailable(self, pki: Pki) -> None:
        """A CA bundle of another CA: the same answer."""
        async with (
            sim(server_context(str(pki.server.cert), str(pki.server.key))) as (url, ledger),
            fsi(url, client_context(str(pki.other.file), None, None)) as core,
        ):
            why = await refused(core, ledger)
        assert "unable to get local issuer certificate" in why

    async def test_a_certificate_for_another_host_is_unavailable(self, pki: Pki) -> None:
        """Chained to the CA but naming core.example: refused by IP (127.0.0.1) and by name (localhost)."""
        async with sim(server_context(str(pki.elsewhere.cert), str(pki.elsewhere.key))) as (url, ledger):
            context = client_context(str(pki.ca.file), None, None)
            async with fsi(url, context) as core:
                assert "IP address mismatch" in await refused(core, ledger)
            async with fsi(url.replace("127.0.0.1", "localhost"), context) as core:
                assert "Hostname mismatch, certificate is not valid for 'localhost'" in await refused(core, ledger)

    async def test_https_to_a_plain_http_core_is_unavailable(self, pki: Pki) -> None:
        """An https core_url whose port speaks plain HTTP: not reached, said so."""
        async with (
            sim(None) as (url, ledger),
            fsi(url.replace("http://", "https://"), client_context(str(pki.ca.file), None, None)) as core,
        ):
            assert "does not speak TLS" in await refused(core, ledger)

    async def test_a_tls13_only_core_is_unavailable(self, pki: Pki) -> None:
        """The gateway speaks TLS 1.2 to the core (see adapters.core_tls): a TLS 1.3-only core is named so."""
        context = server_context(str(pki.server.cert), str(pki.server.key))
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        async with sim(context) as (url, ledger), fsi(url, client_context(str(pki.ca.file), None, None)) as core:
            why = await refused(core, ledger)
        assert "TLS: the core hung up in the handshake" in why or "TLS 1.2" in why  # no alert, or an alert


class TestClientCertificate:
    @staticmethod
    def mtls(pki: Pki) -> ssl.SSLContext:
        return server_context(str(pki.server.cert), str(pki.server.key), str(pki.ca.file))

    async def test_with_the_client_certificate_settles(self, pki: Pki) -> None:
        """The core requires a client certificate of its CA: the gateway's works."""
        async with sim(self.mtls(pki)) as (url, ledger):
            context = client_context(str(pki.ca.file), str(pki.client.cert), str(pki.client.key))
            async with fsi(url, context) as core:
                assert (await core.person(RICH, timeout=T)).balance == 50000
                await core.post_settlement(posting(MSGID), timeout=T)
                assert list(ledger.settlements) == [MSGID]

    async def test_without_a_client_certificate_is_unavailable(self, pki: Pki) -> None:
        """No client certificate: refused in the handshake, before the 2207 is written (no reversal owed)."""
        async with sim(self.mtls(pki)) as (url, ledger), fsi(url, client_context(str(pki.ca.file), None, None)) as core:
            why = await refused(core, ledger)
        assert "TLS: the core hung up in the handshake (our client certificate refused or missing" in why

    async def test_a_client_certificate_of_another_ca_is_unavailable(self, pki: Pki) -> None:
        """A client certificate the core's CA did not sign: the same."""
        async with sim(self.mtls(pki)) as (url, ledger):
            context = client_context(str(pki.ca.file), str(pki.stranger.cert), str(pki.stranger.key))
            async with fsi(url, context) as core:
                assert "TLS: the core hung up in the handshake" in await refused(core, ledger)

    async def test_reconcile_reads_the_core_over_mtls(self, pki: Pki) -> None:
        """`onecard reconcile`'s side of the core (command_core) uses the settings' TLS files."""
        async with sim(self.mtls(pki)) as (url, _ledger):
            s = Settings(
                core_url=url,
                core_ca_file=str(pki.ca.file),
                core_client_cert=str(pki.client.cert),
                core_client_key=str(pki.client.key),
            )
            today = date.today()  # noqa: DTZ011 - a local calendar date
            assert await core_settlements(url, HOSPITAL, today, today, timeout_s=T, settings=s) == []
            ca_only = Settings(core_url=url, core_ca_file=str(pki.ca.file))
            with pytest.raises(CoreUnavailable, match=r"core 3202: not reached \(TLS: the core hung up"):
                await core_settlements(url, HOSPITAL, today, today, timeout_s=T, settings=ca_only)


@contextmanager
def alerting_core(context: ssl.SSLContext) -> Iterator[str]:
    """A TLS server on blocking sockets (a thread): unlike asyncio's, it sends the handshake's alert before it
    closes, as OpenSSL-based servers do. It answers nothing else; its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5.0)
            with suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

    thread = threading.Thread(target=serve, name="alerting-core", daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


class TestRefusalAlerts:
    async def test_the_cores_alert_is_named(self, pki: Pki) -> None:
        """A core that sends its alert: no client certificate is "handshake failure", another CA's "unknown CA";
        both before the 2207 is written."""
        ledger = CoreState()
        with alerting_core(TestClientCertificate.mtls(pki)) as url:
            async with fsi(url, client_context(str(pki.ca.file), None, None)) as core:
                why = await refused(core, ledger)
            assert "TLS: the core refused the handshake (handshake failure): check core_client_cert" in why
            context = client_context(str(pki.ca.file), str(pki.stranger.cert), str(pki.stranger.key))
            async with fsi(url, context) as core:
                assert "TLS: the core refused the handshake (unknown CA)" in await refused(core, ledger)


class TestContextFiles:
    def test_a_missing_ca_bundle_names_its_setting(self, tmp_path: Path) -> None:
        """core_ca_file that does not exist, or is not PEM: ConfigError naming core_ca_file."""
        with pytest.raises(ConfigError, match="core_ca_file: cannot load CA bundle"):
            client_context(str(tmp_path / "missing.pem"), None, None)
        (tmp_path / "junk.pem").write_text("not a certificate\n")
        with pytest.raises(ConfigError, match="core_ca_file"):
            client_context(str(tmp_path / "junk.pem"), None, None)

    def test_a_key_of_another_certificate_names_both_settings(self, pki: Pki) -> None:
        """A client key that does not match the certificate: ConfigError naming both settings."""
        with pytest.raises(ConfigError, match="core_client_cert, core_client_key: cannot load") as info:
            client_context(str(pki.ca.file), str(pki.client.cert), str(pki.stranger.key))
        assert "BEGIN" not in str(info.value)  # no key material in the message

    def test_an_encrypted_key_is_refused_not_prompted_for(self, pki: Pki, tmp_path: Path) -> None:
        """An encrypted client key: ConfigError at once (no password prompt on the terminal)."""
        key = serialization.load_pem_private_key(pki.client.key.read_bytes(), password=None)
        locked = tmp_path / "locked.key"
        locked.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret-pass"),
            )
        )
        with pytest.raises(ConfigError, match="core_client_key") as info:
            client_context(str(pki.ca.file), str(pki.client.cert), str(locked))
        assert "secret-pass" not in str(info.value)

    def test_one_half_of_the_client_pair_is_refused(self, pki: Pki) -> None:
        """A certificate without its key (or the reverse): ConfigError naming both."""
        with pytest.raises(ConfigError, match="give both"):
            client_context(None, str(pki.client.cert), None)

    def test_the_context_verifies_hostnames_with_a_tls12_floor(self, pki: Pki) -> None:
        """Hostname verification on, certificates required, TLS 1.2."""
        ctx = client_context(str(pki.ca.file), None, None)
        assert (ctx.check_hostname, ctx.verify_mode) == (True, ssl.CERT_REQUIRED)
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2

    def test_the_simulators_files_are_checked(self, pki: Pki, tmp_path: Path) -> None:
        """coresim's own context: a missing key or client CA is named."""
        with pytest.raises(TlsFilesError, match="--tls-cert/--tls-key"):
            server_context(str(pki.server.cert), str(tmp_path / "none.key"))
        with pytest.raises(TlsFilesError, match="--client-ca"):
            server_context(str(pki.server.cert), str(pki.server.key), str(tmp_path / "none.pem"))


class TestPlaintextWarning:
    def test_http_outside_dev_mode_is_warned_about(self, caplog: pytest.LogCaptureFixture) -> None:
        """An http core outside dev mode: a start-up warning that the link is plaintext; no context."""
        with caplog.at_level(logging.WARNING, logger="onecard.app"):
            assert core_tls(Settings(dev_mode=False), "http://10.1.2.3:8090") is None
        assert "link to the insurance core (http://10.1.2.3:8090) is plaintext HTTP" in caplog.text

    def test_dev_mode_and_https_are_not(self, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
        """In dev mode (the simulator) http is quiet; https gets the context of the settings' files."""
        with caplog.at_level(logging.WARNING, logger="onecard.app"):
            assert core_tls(Settings(dev_mode=True), "http://127.0.0.1:8090") is None
            s = Settings(core_url="https://127.0.0.1:1", core_ca_file=str(pki.ca.file))
            assert isinstance(core_tls(s, s.core_url), ssl.SSLContext)
        assert caplog.text == ""
