"""Which TLS settings go together (issue 11 items 1-4): the core link's, the terminal listener's and the admin
listener's files; whether each file can be read is gateway/tls.py's and adapters/core_tls.py's check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.settings import CORE_TLS_FILES

if TYPE_CHECKING:
    from gateway.settings import Settings


def tls_errors(s: Settings) -> list[str]:
    """Every TLS settings problem, named by setting."""
    return core_tls_errors(s) + terminal_tls_errors(s) + admin_tls_errors(s)


def core_tls_errors(s: Settings) -> list[str]:
    """Issue 11 item 3: the core's URL scheme, and its TLS files only with https, the client pair whole."""
    scheme = s.core_url.split("://", 1)[0].lower() if "://" in s.core_url else ""
    if scheme not in ("http", "https"):
        return ["core_url: must start with http:// or https://"]
    errors = []
    if (s.core_client_cert is None) != (s.core_client_key is None):
        errors.append("core_client_cert, core_client_key: give both (mTLS to the core) or neither")
    tls = [n for n in CORE_TLS_FILES if getattr(s, n) is not None]
    if tls and scheme != "https":
        errors.append(f"{', '.join(tls)}: set, but core_url is not https (the link to the core would be plaintext)")
    return errors


def terminal_tls_errors(s: Settings) -> list[str]:
    """Which TLS files go together (issue 11 items 1-2); whether each can be read is gateway/tls.py's check."""
    errors = []
    if (s.tls_cert is None) != (s.tls_key is None):
        errors.append("tls_cert, tls_key: give both or neither")
    if s.tls_client_ca is not None and s.tls_cert is None:
        errors.append("tls_client_ca: client certificates need TLS (tls_cert and tls_key)")
    if s.tls_client_crl is not None and s.tls_client_ca is None:
        errors.append("tls_client_crl: needs tls_client_ca (the CRL is of the client CA)")
    return errors


def admin_tls_errors(s: Settings) -> list[str]:
    """Issue 11 item 4: the admin listener's TLS files go together, and only with an admin listener."""
    errors = []
    if (s.admin_tls_cert is None) != (s.admin_tls_key is None):
        errors.append("admin_tls_cert, admin_tls_key: give both or neither")
    if s.admin_tls_client_ca is not None and s.admin_tls_cert is None:
        errors.append("admin_tls_client_ca: client certificates need TLS (admin_tls_cert and admin_tls_key)")
    if s.admin_tls_cert is not None and s.admin_port is None:
        errors.append("admin_tls_cert: needs admin_port (the admin paths are on the terminal port without it)")
    return errors
