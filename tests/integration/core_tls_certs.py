"""Certificates made by the tests for TLS to the insurance core: a test CA, server certificates (for 127.0.0.1
or another name) and client certificates it signs, written as PEM files; real keys, nothing from disk."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class Pair:
    """A certificate and its key as PEM files."""

    cert: Path
    key: Path


class TestCA:
    """A self-signed CA that signs server and client certificates into `folder`."""

    __test__ = False  # not a pytest class

    def __init__(self, folder: Path, name: str = "Test Core CA") -> None:
        self.folder = folder
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.file = folder / f"{_slug(name)}.pem"
        self.file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def server(self, label: str, *, ip: str | None = "127.0.0.1", dns: str | None = None) -> Pair:
        """A server certificate whose SAN names `ip` and/or `dns`."""
        names: list[x509.GeneralName] = []
        if ip is not None:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        if dns is not None:
            names.append(x509.DNSName(dns))
        return self._issue(label, dns or ip or label, names, ExtendedKeyUsageOID.SERVER_AUTH)

    def client(self, label: str, cn: str = "onecard-gateway") -> Pair:
        """A client certificate (the gateway's identity at the core)."""
        return self._issue(label, cn, [], ExtendedKeyUsageOID.CLIENT_AUTH)

    def _issue(self, label: str, cn: str, names: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        pair = Pair(self.folder / f"{label}.crt", self.folder / f"{label}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return pair


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())
