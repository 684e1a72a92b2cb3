"""`onecard serve` with TLS as an operator runs it (issue 11 items 1-2): HTTPS with client certificates on the
terminal port, one process or a supervisor with workers; certificate and CRL rotated on disk and reloaded by
SIGHUP with no restart; bad TLS configuration is exit 2 with one line."""

from __future__ import annotations

import asyncio
import shutil
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from tests.conftest import REDIS_URL
from tests.ports import free_port
from tests.procs import Served, own_stores, run, until
from tests.tls.conftest import Pki, make_pki

pytestmark = pytest.mark.slow
A, B = "H33020000018", "P33020000026"


class Live:
    """The files `onecard serve` was given (a copy of the PKI's, rotated in place) and the server's URL."""

    def __init__(self, pki: Pki, folder: Path) -> None:
        self.pki = pki
        self.cert, self.key, self.crl = folder / "live.crt", folder / "live.key", folder / "live-crl.pem"
        shutil.copy(pki.server_cert, self.cert)
        shutil.copy(pki.server_key, self.key)
        shutil.copy(pki.crl_file, self.crl)
        self.url = ""

    def args(self) -> list[str]:
        return ["--tls-cert", str(self.cert), "--tls-key", str(self.key), "--client-ca", str(self.pki.ca_file),
                "--client-crl", str(self.crl)]  # fmt: skip

    async def server_serial(self) -> int:
        """The serial of the certificate the server shows to a new connection."""
        _r, w = await asyncio.open_connection("127.0.0.1", int(self.url.rsplit(":", 1)[1]), ssl=self.pki.client("a"))
        try:
            der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            w.close()
        return x509.load_der_x509_certificate(der).serial_number

    async def status(self, path: str, name: str | None) -> int | None:
        """The HTTP status of GET `path` on a new connection with client certificate `name`; None: refused."""
        try:
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
                http.get(self.url + path, ssl=self.pki.client(name)) as r,
            ):
                return r.status
        except (aiohttp.ClientError, ssl.SSLError, OSError):
            return None


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
async def served(
    request: pytest.FixtureRequest, world_file: Path, core_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Served, Live]]:
    """`onecard serve --dev` with TLS and client certificates, on stores of its own."""
    live = Live(make_pki(tmp_path, A, B), tmp_path)
    async with own_stores() as (dsn, prefix):
        env = {"ONECARD_PG_DSN": dsn, "ONECARD_REDIS_URL": REDIS_URL, "ONECARD_REDIS_PREFIX": prefix}
        args = ["--dev", "--world", str(world_file), "--core-url", core_url, *live.args()]
        if request.param > 1:
            args += ["--workers", str(request.param)]
        port = free_port()
        s = await Served.start(args, env, port, tmp_path)
        live.url = f"https://127.0.0.1:{port}"
        try:

            async def ready() -> bool:
                assert s.proc.returncode is None, "\n".join(s.log)
                return await live.status("/readyz", "a") == 200

            await until(ready, "ready gateway over HTTPS", 60)
            if request.param > 1:
                await until(lambda: len(s.workers()) == request.param, "the workers")
            yield s, live
        finally:
            await s.stop()


class TestServeTls:
    async def test_sighup_reloads_certificate_and_crl(self, served: tuple[Served, Live]):
        """Rotate the server certificate and the CRL (now revoking B), SIGHUP: every new connection shows the new
        certificate and B is refused, with no restart; the log says what was loaded."""
        s, live = served
        first = await live.server_serial()
        assert first == x509.load_pem_x509_certificate(live.pki.server_cert.read_bytes()).serial_number
        assert await live.status("/healthz", "b") == 200
        pids = {s.proc.pid, *s.workers()}
        fresh = live.pki.ca.server()
        live.cert.write_bytes(fresh.cert_pem())
        live.key.write_bytes(fresh.key_pem())
        live.crl.write_bytes(live.pki.ca.crl([live.pki.issued["a_revoked"].serial, live.pki.issued["b"].serial]))
        s.proc.send_signal(signal.SIGHUP)

        async def all_new() -> bool:  # several new connections, so each worker is asked
            return all([await live.server_serial() == fresh.serial for _ in range(8)])

        await until(all_new, "the new certificate on every new connection")
        assert await live.status("/healthz", "b") is None
        assert await live.status("/healthz", "a") == 200
        assert {s.proc.pid, *s.workers()} == pids  # reloaded, not restarted
        await until(lambda: s.logged("TLS reloaded"), "the reload in the log")
        assert not s.logged("Traceback"), "\n".join(s.log)  # refused handshakes are not errors of the gateway

    async def test_plain_http_gets_no_answer(self, served: tuple[Served, Live]):
        """Plain HTTP to the TLS port gets no HTTP answer."""
        _s, live = served
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(live.url.replace("https", "http") + "/healthz") as r:
                    pytest.fail(f"plain HTTP answered {r.status}")


class TestBadTlsConfig:
    @pytest.mark.parametrize("workers", ["1", "2"])
    def test_exit_2_with_one_line(self, tmp_path: Path, workers: str):
        """Only a certificate, a missing key, a key of another certificate: exit 2, one line naming the file."""
        pki = make_pki(tmp_path, A, B)
        cert, key = str(pki.server_cert), str(pki.server_key)
        port = str(free_port())
        for args, says in [
            (["--tls-cert", cert], "tls_cert, tls_key: give both or neither"),
            (["--tls-cert", cert, "--tls-key", str(tmp_path / "nope.key")], "nope.key: No such file"),
            (["--tls-cert", cert, "--tls-key", str(tmp_path / "a.key")], "is not the key of tls_cert"),
            (["--tls-cert", cert, "--tls-key", key, "--client-crl", str(pki.crl_file)], "tls_client_crl: needs"),
        ]:
            r = run("serve", "--dev", "--workers", workers, "--port", port, *args, timeout=60)
            assert r.returncode == 2, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1, r.stderr
            assert says in lines[0], r.stderr
