"""`onecard serve --admin-port P --admin-tls-cert F --admin-tls-key K` as an operator runs it (issue 11 item 4): the
admin port over HTTPS with its own certificate, in one process and under --workers 2; a bearer token still
needed; plain HTTP refused; the certificate rotated on disk and reloaded by SIGHUP with no restart; bad admin TLS
configuration is exit 2 with one line."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from loadtest.certs import client_context
from tests.conftest import REDIS_URL
from tests.ports import free_port
from tests.procs import Served, own_stores, run, until
from tests.tls.conftest import Pki, make_pki

pytestmark = pytest.mark.slow
A, B = "H33020000018", "P33020000026"
TOKEN = "admin-tls-token"


class LiveAdmin:
    """The admin TLS files `onecard serve` was given (copies, rotated in place) and the admin port."""

    def __init__(self, pki: Pki, folder: Path) -> None:
        self.pki = pki
        self.cert, self.key = folder / "admin-live.crt", folder / "admin-live.key"
        first = pki.ca.server()
        self.cert.write_bytes(first.cert_pem())
        self.key.write_bytes(first.key_pem())
        shutil.copymode(pki.server_key, self.key)
        self.port = free_port()
        self.ctx = client_context(pki.ca_file)

    def args(self) -> list[str]:
        return ["--admin-port", str(self.port), "--admin-tls-cert", str(self.cert), "--admin-tls-key", str(self.key)]

    async def serial(self) -> int:
        _r, w = await asyncio.open_connection("127.0.0.1", self.port, ssl=self.ctx)
        try:
            der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            w.close()
        return x509.load_der_x509_certificate(der).serial_number

    async def status(self, path: str, token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
            http.get(f"https://127.0.0.1:{self.port}{path}", ssl=self.ctx, headers=headers) as r,
        ):
            return r.status


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
async def served(
    request: pytest.FixtureRequest, world_file: Path, core_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Served, LiveAdmin]]:
    """`onecard serve --dev` with the admin listener over TLS (the terminal port plain), on stores of its own."""
    live = LiveAdmin(make_pki(tmp_path, A, B), tmp_path)
    async with own_stores() as (dsn, prefix):
        env = {"ONECARD_PG_DSN": dsn, "ONECARD_REDIS_URL": REDIS_URL, "ONECARD_REDIS_PREFIX": prefix,
               "ONECARD_ADMIN_TOKEN": TOKEN}  # fmt: skip
        args = ["--dev", "--world", str(world_file), "--core-url", core_url, *live.args()]
        if request.param > 1:
            args += ["--workers", str(request.param)]
        s = await Served.start(args, env, free_port(), tmp_path)
        try:
            await s.ready(60)
            if request.param > 1:
                await until(lambda: len(s.workers()) == request.param, "the workers")
            yield s, live
        finally:
            await s.stop()


class TestServeAdminTls:
    async def test_https_token_and_sighup_reload(self, served: tuple[Served, LiveAdmin]):
        """The admin port shows the admin certificate, /metrics needs the token over TLS; after the certificate
        is rotated on disk and SIGHUP sent, every new admin connection shows the new one, with no restart."""
        s, live = served
        assert await live.serial() == x509.load_pem_x509_certificate(live.cert.read_bytes()).serial_number
        assert await live.status("/metrics", None) == 401
        assert await live.status("/metrics", TOKEN) == 200
        pids = {s.proc.pid, *s.workers()}
        fresh = live.pki.ca.server()
        live.cert.write_bytes(fresh.cert_pem())
        live.key.write_bytes(fresh.key_pem())
        s.proc.send_signal(signal.SIGHUP)

        async def all_new() -> bool:  # several new connections, so each worker is asked
            return all([await live.serial() == fresh.serial for _ in range(8)])

        await until(all_new, "the new admin certificate on every new connection")
        assert await live.status("/metrics", TOKEN) == 200
        assert {s.proc.pid, *s.workers()} == pids  # reloaded, not restarted
        await until(lambda: s.logged("TLS reloaded (admin listener)"), "the reload in the log")
        assert not s.logged("Traceback"), "\n".join(s.log)

    async def test_plain_http_gets_no_answer(self, served: tuple[Served, LiveAdmin]):
        """Plain HTTP to the admin TLS port gets no HTTP answer (the terminal port, plain here, still answers)."""
        s, live = served
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{live.port}/metrics") as r:
                    pytest.fail(f"plain HTTP answered {r.status}")
            async with http.get(s.url + "/healthz") as r:
                assert r.status == 200


class TestBadAdminTlsConfig:
    @pytest.mark.parametrize("workers", ["1", "2"])
    def test_exit_2_with_one_line(self, tmp_path: Path, workers: str):
        """Only a certificate, a missing key, a key of another certificate, TLS without an admin port: exit 2,
        one line naming the admin setting."""
        pki = make_pki(tmp_path, A, B)
        cert, key = str(pki.server_cert), str(pki.server_key)
        admin = ["--admin-port", str(free_port())]
        for args, says in [
            ([*admin, "--admin-tls-cert", cert], "admin_tls_cert, admin_tls_key: give both or neither"),
            ([*admin, "--admin-tls-cert", cert, "--admin-tls-key", str(tmp_path / "nope.key")],
             "admin_tls_key " + str(tmp_path / "nope.key") + ": No such file"),
            ([*admin, "--admin-tls-cert", cert, "--admin-tls-key", str(tmp_path / "a.key")],
             "is not the key of admin_tls_cert"),
            (["--admin-tls-cert", cert, "--admin-tls-key", key], "admin_tls_cert: needs admin_port"),
            ([*admin, "--admin-client-ca", str(pki.ca_file)], "admin_tls_client_ca: client certificates need TLS"),
        ]:  # fmt: skip
            r = run("serve", "--dev", "--workers", workers, "--port", str(free_port()), *args, timeout=60)
            assert r.returncode == 2, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1, r.stderr
            assert says in lines[0], r.stderr
