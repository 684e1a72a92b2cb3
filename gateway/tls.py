"""TLS on the terminal listener (issue 11 items 1-2) and on the admin listener (item 4): a server's SSL context
from the settings' PEM files, a client certificate required when a client CA is set (with its CRL honoured),
reloaded from the files on SIGHUP."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from cryptography import x509

from gateway.domain.errors import ConfigError
from gateway.settings import Settings

log = logging.getLogger("onecard.tls")

# TLS 1.2 only with forward secrecy and AEAD; TLS 1.3's suites are OpenSSL's (all of them modern).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The PEM files a listener's TLS is built from; `setting` is the prefix of their settings' names (`tls`,
    `admin_tls`), which every error names."""

    cert: str
    key: str
    client_ca: str | None = None
    client_crl: str | None = None
    setting: str = "tls"

    @property
    def listener(self) -> str:
        """Which listener, for the log."""
        return "terminal" if self.setting == "tls" else "admin"


def tls_files(settings: Settings) -> TlsFiles | None:
    """The terminal listener's TLS files, or None for plain HTTP (settings checked which go together)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca, settings.tls_client_crl)


def admin_tls_files(settings: Settings) -> TlsFiles | None:
    """The admin listener's own TLS files (issue 11 item 4), or None for plain HTTP there."""
    if settings.admin_tls_cert is None or settings.admin_tls_key is None:
        return None
    return TlsFiles(settings.admin_tls_cert, settings.admin_tls_key, settings.admin_tls_client_ca, None, "admin_tls")


def build_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context: TLS 1.2 at least, modern ciphers, the certificate and key; with a client CA, a client
    certificate chained to it required, and with a CRL, the client certificate checked against it.

    Raises:
        ConfigError: one line naming the setting and file that cannot be used, and why.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
    # No session tickets: a resumed session would skip the client certificate check after a CRL reload.
    ctx.options |= ssl.OP_NO_TICKET
    ctx.num_tickets = 0
    p = files.setting
    _read_pem(files.cert, f"{p}_cert", "CERTIFICATE", x509.load_pem_x509_certificates)
    _read_pem(files.key, f"{p}_key", "PRIVATE KEY", None)

    def encrypted() -> NoReturn:  # OpenSSL would otherwise ask for a pass phrase on the terminal
        raise ConfigError(f"{p}_key {files.key}: the key is encrypted; give an unencrypted key file (mode 0600)")

    try:
        ctx.load_cert_chain(files.cert, files.key, password=encrypted)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ConfigError(f"{p}_key {files.key} is not the key of {p}_cert {files.cert}") from None
        raise ConfigError(f"{p}_cert {files.cert}, {p}_key {files.key}: cannot load ({exc.reason})") from None
    if files.client_ca is not None:
        _read_pem(files.client_ca, f"{p}_client_ca", "CERTIFICATE", x509.load_pem_x509_certificates)
        _load_verify(ctx, files.client_ca, f"{p}_client_ca")
        ctx.verify_mode = ssl.CERT_REQUIRED
    if files.client_crl is not None:
        _read_pem(files.client_crl, f"{p}_client_crl", "X509 CRL", x509.load_pem_x509_crl)
        _load_verify(ctx, files.client_crl, f"{p}_client_crl")
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def _read_pem(path: str, setting: str, label: str, parse: Callable[[bytes], object] | None) -> None:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting} {path}: {exc.strerror or exc}") from None
    if f"-----BEGIN {label}".encode() not in data and not (label == "PRIVATE KEY" and b"PRIVATE KEY-----" in data):
        raise ConfigError(f"{setting} {path}: no PEM {label} in it")
    if parse is not None:
        try:
            parse(data)
        except ValueError as exc:
            raise ConfigError(f"{setting} {path}: not a valid PEM {label} ({exc})") from None


def _load_verify(ctx: ssl.SSLContext, path: str, setting: str) -> None:
    try:
        ctx.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{setting} {path}: cannot load ({exc})") from None


def describe(path: str) -> str:
    """Serial, subject and expiry of the (first) certificate in a PEM file, for the log."""
    try:
        cert = x509.load_pem_x509_certificates(Path(path).read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return "(unreadable)"
    subject, until = cert.subject.rfc4514_string(), cert.not_valid_after_utc
    return f"serial {cert.serial_number:x}, subject {subject}, not after {until:%Y-%m-%d}"


class ServerTls:
    """The context a listener serves with. `reload()` builds a fresh context from the same files (certificate,
    key, client CA, CRL) and every handshake after it uses that one: the listener's context hands each new
    connection to the current context as the handshake starts (its SNI callback, which OpenSSL calls for
    every ClientHello, SNI sent or not). Connections already open keep theirs."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.context = build_context(files)
        self._current = self.context
        self.context.sni_callback = self._select
        log.info("TLS (%s listener): certificate %s%s", files.listener, describe(files.cert), _clients(files))

    def _select(self, conn: ssl.SSLObject, _server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if self._current is not self.context:
            conn.context = self._current

    def reload(self) -> bool:
        """Read the files again; on any error keep serving with the current context (logged). True if reloaded."""
        try:
            fresh = build_context(self.files)
        except ConfigError as exc:
            log.error("TLS reload failed (%s listener), still serving the previous certificate: %s",
                      self.files.listener, exc)  # fmt: skip
            return False
        self._current = fresh
        log.info("TLS reloaded (%s listener): certificate %s%s", self.files.listener, describe(self.files.cert),
                 _clients(self.files))  # fmt: skip
        return True


def _clients(files: TlsFiles) -> str:
    if files.client_ca is None:
        return "; no client certificates asked"
    crl = f", CRL {files.client_crl}" if files.client_crl else ""
    return f"; client certificates required, CA {files.client_ca}{crl}"
