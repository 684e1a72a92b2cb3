"""The institution a verified client certificate names (issue 11 item 2): a SAN URI
`urn:fsi:fixmedins:<fixmedins_code>` wins, else the subject CN; read from the TLS connection of a request."""

from __future__ import annotations

from typing import Any

from aiohttp import web

SAN_PREFIX = "urn:fsi:fixmedins:"


def institution_of(peercert: dict[str, Any] | None) -> str:
    """The `fixmedins_code` a certificate (as `SSLSocket.getpeercert()` gives it) names; "" when it names none,
    or names several different ones in its SAN URIs (ambiguous: it may act for none of them)."""
    if not peercert:
        return ""
    sans = {value[len(SAN_PREFIX) :] for kind, value in peercert.get("subjectAltName", ()) if kind == "URI"
            and value.startswith(SAN_PREFIX)}  # fmt: skip
    if sans:
        return sans.pop() if len(sans) == 1 else ""
    cns = [value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return cns[0] if len(cns) == 1 else ""


def client_institution(request: web.Request) -> str:
    """The institution of the request's verified client certificate; "" without one (plain HTTP, or TLS that
    asked for none), which matches no envelope."""
    transport = request.transport
    if transport is None:
        return ""
    return institution_of(transport.get_extra_info("peercert"))
