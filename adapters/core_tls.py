"""TLS to the insurance core: the client context built from the CA bundle and the optional client certificate,
and `describe`, which says in words why a connection's TLS failed (the reason a CoreUnavailable carries).
Hostname verification is always on; there is deliberately no way to turn it off."""

from __future__ import annotations

import ssl

import aiohttp

from gateway.domain.errors import ConfigError

# TLS 1.2 suites allowed: forward secret, AEAD only (TLS 1.3's suites are not set by this string).
_CIPHERS_TLS12 = "ECDHE+AESGCM:ECDHE+CHACHA20"

# Alerts with which a core refuses the certificate we presented (or our presenting none), by OpenSSL reason.
_REFUSED_US = {
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate expired",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "certificate revoked",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate unknown",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "unknown CA",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "certificate required",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "handshake failure",
}


def client_context(ca_file: str | None, client_cert: str | None, client_key: str | None) -> ssl.SSLContext:
    """The context of every connection to an https core.

    The core's certificate must chain to `ca_file` (PEM; the system store when None) and name the host of the
    core's URL. The protocol is TLS 1.2 (floor and ceiling): in TLS 1.2 the client's handshake ends only after
    the core has accepted (or refused) our certificate, so a refusal is always seen before one byte of a
    request is written. In TLS 1.3 it is seen only after the request was sent, and a refused 2207 would have
    to be treated as an unknown outcome (-1 CORE_TIMEOUT, a reversal owed) instead of not sent.

    Raises:
        ConfigError: naming the setting whose file cannot be used.
    """
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"core_ca_file: cannot load CA bundle {ca_file}: {_why(exc)}") from None
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_CIPHERS_TLS12)
    if client_cert is not None or client_key is not None:
        if client_cert is None or client_key is None:
            raise ConfigError("core_client_cert, core_client_key: give both (mTLS to the core) or neither")
        try:
            # An empty password: an encrypted key fails here instead of prompting on the terminal.
            ctx.load_cert_chain(client_cert, client_key, password=b"")
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"core_client_cert, core_client_key: cannot load {client_cert} with {client_key}: {_why(exc)}"
                " (PEM, the key unencrypted and matching the certificate)"
            ) from None
    return ctx


def describe(exc: BaseException) -> str | None:
    """Why a connection to an https core failed in TLS, in words; None when `exc` is not a TLS failure.

    Every case here happens while connecting, before the request is written (the context's TLS 1.2 ceiling).
    """
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        detail = getattr(cert_error, "verify_message", None) or _why(cert_error)
        return f"TLS: the core's certificate was not accepted: {detail}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        reason = getattr(exc.os_error, "reason", None) or _why(exc.os_error)
        if reason in _REFUSED_US:
            return f"TLS: the core refused the handshake ({_REFUSED_US[reason]}): check core_client_cert"
        if reason == "WRONG_VERSION_NUMBER":
            return "TLS: the core's port does not speak TLS (is core_url http?)"
        if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"):
            return "TLS: the core does not speak TLS 1.2"
        return f"TLS handshake failed: {reason}"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
        exc.os_error, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
    ):
        # TCP was up (a refused connection is ConnectionRefusedError): the core hung up in the handshake, as
        # servers that send no alert (Python's asyncio among them) refuse a client certificate or a version.
        return (
            "TLS: the core hung up in the handshake (our client certificate refused or missing,"
            " or no TLS version or cipher in common)"
        )
    return None


def _why(exc: BaseException | None) -> str:
    """The library's own words, without the _ssl.c location."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
