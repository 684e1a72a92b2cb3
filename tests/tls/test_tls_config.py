"""TLS configuration (issue 11 items 1-2) without the gateway: which settings go together, each bad file refused
with one line naming it, the context's floor and ciphers, the alert each bad client certificate gets, and the
institution a certificate names (SAN URI wins, else the CN)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.domain.codes import ResultCode
from gateway.domain.errors import ConfigError, Declined
from gateway.http.client_cert import institution_of
from gateway.pipeline.service import bound_to_certificate
from gateway.settings import load_settings
from gateway.tls import ServerTls, TlsFiles, build_context
from tests.tls.conftest import Pki, make_pki

A, B = "H33020000018", "P33020000026"


@pytest.fixture(scope="module")
def own_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki-unit"), A, B)


class TestSettings:
    @pytest.mark.parametrize(
        ("env", "says"),
        [
            ({"ONECARD_TLS_CERT": "c.pem"}, "tls_cert, tls_key: give both or neither"),
            ({"ONECARD_TLS_KEY": "k.pem"}, "tls_cert, tls_key: give both or neither"),
            ({"ONECARD_TLS_CLIENT_CA": "ca.pem"}, "tls_client_ca: client certificates need TLS"),
            ({"ONECARD_TLS_CERT": "c", "ONECARD_TLS_KEY": "k", "ONECARD_TLS_CLIENT_CRL": "x"}, "tls_client_crl: needs"),
        ],
    )
    def test_files_that_go_together(self, env, says):
        """Only one of cert and key, a client CA without TLS, a CRL without a client CA: one clear error."""
        with pytest.raises(ConfigError, match=says):
            load_settings(None, env)

    def test_environment_names(self):
        """ONECARD_TLS_* fill the four settings."""
        env = {
            "ONECARD_TLS_CERT": "c",
            "ONECARD_TLS_KEY": "k",
            "ONECARD_TLS_CLIENT_CA": "a",
            "ONECARD_TLS_CLIENT_CRL": "r",
        }
        s = load_settings(None, env)
        assert (s.tls_cert, s.tls_key, s.tls_client_ca, s.tls_client_crl) == ("c", "k", "a", "r")


class TestBadFiles:
    def test_each_bad_file_is_named(self, own_pki: Pki, tmp_path: Path):
        """Missing, not PEM, a key of another certificate, an encrypted key, an empty CA, a CRL file without a
        CRL: each a ConfigError naming the setting and the file."""
        p = own_pki
        cert, key = str(p.server_cert), str(p.server_key)
        other_key = str(p.folder / "a.key")
        enc = tmp_path / "enc.key"
        enc.write_bytes(
            p.issued["a"].key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
        junk = tmp_path / "junk.pem"
        junk.write_text("not a certificate\n")
        cases = [
            (TlsFiles(str(tmp_path / "nope.crt"), key), "tls_cert .*nope.crt: No such file"),
            (TlsFiles(cert, str(tmp_path / "nope.key")), "tls_key .*nope.key: No such file"),
            (TlsFiles(str(junk), key), "tls_cert .*junk.pem: no PEM CERTIFICATE"),
            (TlsFiles(cert, str(junk)), "tls_key .*junk.pem: no PEM PRIVATE KEY"),
            (TlsFiles(cert, other_key), "tls_key .*a.key is not the key of tls_cert .*server.crt"),
            (TlsFiles(cert, str(enc)), "tls_key .*enc.key: the key is encrypted"),
            (TlsFiles(cert, key, str(junk)), "tls_client_ca .*junk.pem: no PEM CERTIFICATE"),
            (TlsFiles(cert, key, str(p.ca_file), str(p.ca_file)), "tls_client_crl .*ca.crt: no PEM X509 CRL"),
        ]
        for files, says in cases:
            with pytest.raises(ConfigError, match=says) as err:
                build_context(files)
            assert "\n" not in str(err.value)
            assert "secret" not in str(err.value)

    def test_reload_with_a_bad_file_keeps_the_current_context(self, own_pki: Pki, tmp_path: Path):
        """A reload that cannot read the new files leaves the listener serving the old certificate."""
        cert, key = tmp_path / "s.crt", tmp_path / "s.key"
        cert.write_bytes(own_pki.server_cert.read_bytes())
        key.write_bytes(own_pki.server_key.read_bytes())
        tls = ServerTls(TlsFiles(str(cert), str(key)))
        key.write_bytes((own_pki.folder / "a.key").read_bytes())  # half-way through a rotation
        assert tls.reload() is False
        assert tls._current is tls.context


class TestContext:
    def test_floor_and_ciphers(self, own_pki: Pki):
        """TLS 1.2 at least; TLS 1.2 suites all ECDHE with AEAD; client certificates required, CRL checked."""
        ctx = build_context(own_pki.files())
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
        for c in ctx.get_ciphers():
            assert c["protocol"] == "TLSv1.3" or (c["kea"] == "kx-ecdhe" and c["aead"]), c
        assert build_context(own_pki.files(client_ca=False)).verify_mode == ssl.CERT_NONE


@pytest.fixture
def sync_server(own_pki: Pki) -> Iterator[tuple[int, list[BaseException]]]:
    """One-connection-at-a-time blocking TLS server on the context of gateway/tls.py (a blocking socket sends
    its alert before it raises, so the client can read why it was refused); (port, the server's errors)."""
    ctx = build_context(own_pki.files())
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError) as exc:
                errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], errors
    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not, on Linux)
    listener.close()
    thread.join(5)


def _connect(port: int, ctx: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.recv(5)


class TestAlerts:
    @pytest.mark.parametrize(
        ("name", "alert"),
        [
            ("a_other_ca", "UNKNOWN_CA"),
            ("a_expired", "CERTIFICATE_EXPIRED"),
            ("a_revoked", "CERTIFICATE_REVOKED"),
            (None, "HANDSHAKE_FAILURE"),  # no client certificate (TLS 1.2's alert for it)
        ],
    )
    def test_bad_client_certificate_alert(self, own_pki: Pki, sync_server, name, alert):
        """Over TLS 1.2 each bad client certificate is refused in the handshake with the alert that says why."""
        port, _errors = sync_server
        ctx = own_pki.client(name)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError, match=alert):
            _connect(port, ctx)

    def test_good_certificates(self, own_pki: Pki, sync_server):
        """A (SAN), B (CN) and the SAN-and-CN certificate complete the handshake, over TLS 1.2 and 1.3."""
        port, errors = sync_server
        for name in ("a", "b", "a_both"):
            for top in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                ctx = own_pki.client(name)
                ctx.maximum_version = top
                assert _connect(port, ctx) == b"hello"
        assert errors == []


def _peer(subject_cn: str | None, uris: list[str]) -> dict[str, object]:
    subject = ((("organizationName", "x"),),) + (((("commonName", subject_cn),),) if subject_cn else ())
    return {"subject": subject, "subjectAltName": (*(("URI", u) for u in uris), ("DNS", "his.example"))}


class TestInstitutionOf:
    @pytest.mark.parametrize(
        ("peer", "code"),
        [
            (_peer(A, []), A),
            (_peer("HIS of somewhere", [f"urn:fsi:fixmedins:{A}"]), A),
            (_peer(B, [f"urn:fsi:fixmedins:{A}"]), A),  # the SAN wins over the CN
            (_peer(None, ["https://example.org", f"urn:fsi:fixmedins:{A}", f"urn:fsi:fixmedins:{A}"]), A),
            (_peer(None, [f"urn:fsi:fixmedins:{A}", f"urn:fsi:fixmedins:{B}"]), ""),  # ambiguous: none
            (_peer(None, []), ""),
            (None, ""),
            ({}, ""),
        ],
    )
    def test_institution(self, peer, code):
        """SAN URI urn:fsi:fixmedins:<code> wins, else the subject CN; several different SAN codes name none."""
        assert institution_of(peer) == code


class TestBinding:
    def test_the_certificates_institution_passes(self):
        """The envelope naming the certificate's institution goes on; so does one with no fixmedins_code."""
        bound_to_certificate({"fixmedins_code": A}, A)
        bound_to_certificate({"infno": "9001"}, A)
        bound_to_certificate([1, 2], A)

    @pytest.mark.parametrize(("envelope", "cert"), [(B, A), ("", A), (A, ""), ("x" * 5000, A)])
    def test_another_institution_is_refused(self, envelope, cert):
        """Another institution, or a certificate naming none: CLIENT_CERT_MISMATCH, with a bounded message."""
        with pytest.raises(Declined) as err:
            bound_to_certificate({"fixmedins_code": envelope}, cert)
        assert err.value.decline.code is ResultCode.CLIENT_CERT_MISMATCH
        assert len(err.value.decline.message) < 200
