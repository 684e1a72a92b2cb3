"""A throwaway PKI for tests and `onecard bench gateway --tls`: a CA, server certificates for loopback, client
certificates naming an institution (SAN URI `urn:fsi:fixmedins:<code>` or subject CN), and CRLs; EC P-256, PEM."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SAN_PREFIX = "urn:fsi:fixmedins:"  # the same URI form as gateway/http/client_cert.py (kept apart: it checks that)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write(self, folder: Path, name: str) -> tuple[Path, Path]:
        """`name.crt` and `name.key` (mode 0600) in `folder`; their paths."""
        crt, key = folder / f"{name}.crt", folder / f"{name}.key"
        crt.write_bytes(self.cert_pem())
        key.touch(mode=0o600)
        key.write_bytes(self.key_pem())
        return crt, key


def _name(cn: str | None, org: str = "onecard test") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


class CertAuthority:
    """A self-signed CA that issues server and client certificates and signs CRLs."""

    def __init__(self, name: str = "onecard test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        subject = _name(name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY)
            .not_valid_after(now + 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def _issue(
        self,
        subject: x509.Name,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        not_before: datetime | None,
        not_after: datetime | None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - DAY)
            .not_valid_after(not_after or now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key)

    def server(self, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Issued:
        """A server certificate for these host names and IP addresses."""
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        return self._issue(_name(hosts[0]), sans, ExtendedKeyUsageOID.SERVER_AUTH, None, None)

    def client(
        self,
        code: str | None,
        *,
        san: bool = True,
        cn: str | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Issued:
        """A client certificate of institution `code`: in a SAN URI when `san`, else as the subject CN; `cn`
        overrides the subject CN (default: the code when not in the SAN, else a descriptive name)."""
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(SAN_PREFIX + code)] if san and code else []
        subject_cn = cn if cn is not None else (f"HIS of {code}" if san else code)
        return self._issue(_name(subject_cn), sans, ExtendedKeyUsageOID.CLIENT_AUTH, not_before, not_after)

    def crl(self, revoked: list[int], *, last_update: datetime | None = None) -> bytes:
        """A PEM CRL revoking these serials, valid for a week from `last_update` (default now)."""
        now = last_update or datetime.now(UTC)
        builder = x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
        builder = builder.last_update(now - timedelta(minutes=1)).next_update(now + 7 * DAY)
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - timedelta(minutes=1))
                .build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def client_context(ca_file: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client context trusting `ca_file` (host names checked), presenting `cert`/`key` when given."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    return ctx


@dataclass(frozen=True)
class BenchPki:
    """`onecard bench gateway --tls`: the files of a throwaway PKI under the bench's working folder."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    folder: Path
    probe_code: str  # the institution whose certificate readiness probes present

    def serve_args(self) -> list[str]:
        """The `onecard serve` options that turn TLS and client certificates on."""
        return [
            "--tls-cert",
            str(self.server_cert),
            "--tls-key",
            str(self.server_key),
            "--client-ca",
            str(self.ca_file),
        ]

    def client(self, code: str) -> ssl.SSLContext:
        """A client context presenting institution `code`'s certificate."""
        return client_context(self.ca_file, self.folder / f"client-{code}.crt", self.folder / f"client-{code}.key")


def bench_pki(folder: Path, codes: list[str]) -> BenchPki:
    """A CA, a loopback server certificate and one client certificate (SAN URI) per institution, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = CertAuthority("onecard bench CA")
    ca_file = folder / "ca.crt"
    ca_file.write_bytes(ca.cert_pem())
    cert, key = ca.server().write(folder, "server")
    for code in codes:
        ca.client(code).write(folder, f"client-{code}")
    return BenchPki(ca_file, cert, key, folder, codes[0])
