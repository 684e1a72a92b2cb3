"""HTTPS for the simulator (`onecard core-sim --tls-cert --tls-key [--client-ca]`): its own small server
context, TLS 1.2 or later, client certificates required when a client CA is given. Shares nothing with the
gateway (the simulator checks it)."""

from __future__ import annotations

import ssl


class TlsFilesError(ValueError):
    """A certificate, key or CA file the simulator cannot use (the message names it)."""


def server_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server context for `cert`/`key` (PEM); with `client_ca`, a client certificate chained to it is required.

    Raises:
        TlsFilesError: naming the file that cannot be used.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key, password=b"")
    except (OSError, ssl.SSLError) as exc:
        raise TlsFilesError(f"--tls-cert/--tls-key: cannot load {cert} with {key}: {exc}") from None
    if client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFilesError(f"--client-ca: cannot load {client_ca}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
