"""Named operators and their roles (issue 11 item 5): who may call the admin API, and the token rule: a random
token shown once, kept only as its SHA-256. Pure: stdlib only."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What an identity may do on the admin listener (README "Operators and roles")."""

    OPERATOR = "operator"  # blacklist shortcuts, feed events and imports of any region, reversal actions
    FEED = "feed"  # feed events and imports of its own region only
    AUDITOR = "auditor"  # read-only: the audit trail (reconciliation and journal verification: the CLI)
    MONITOR = "monitor"  # /metrics only


ENV_OPERATOR = "env-operator"  # the bootstrap identity of ONECARD_ADMIN_TOKEN
ENV_FEED_PREFIX = "env-feed-"  # + region: the bootstrap identity of each ONECARD_FEED_TOKENS entry
DEV_OPEN = "dev-open"  # development mode with no token configured and none sent: every role, logged at start
ANONYMOUS = "-"  # an audit row of a request that did not authenticate

_NAME = re.compile(r"[a-z][a-z0-9._-]{0,62}")
_REGION = re.compile(r"[0-9]{6}")
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 bits


@dataclass(frozen=True, slots=True)
class Operator:
    """An authenticated identity: a name, its role, and for `feed` the one region it sends for."""

    name: str
    role: Role
    region: str | None = None
    everything: bool = False  # DEV_OPEN only: passes every role check

    def may(self, allowed: frozenset[Role]) -> bool:
        """Whether this identity holds one of the roles a route allows."""
        return self.everything or self.role in allowed


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    """An operator as `user list` shows it (never the token or its hash)."""

    name: str
    role: Role
    region: str | None
    created_at: str
    rotated_at: str | None
    revoked_at: str | None


def check_name(name: str) -> str:
    """A valid operator name, or ValueError saying why. `env-` names belong to the environment's tokens."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"name {name!r}: must be 1..63 of a-z 0-9 . _ - starting with a letter")
    if name.startswith("env-") or name == DEV_OPEN:
        raise ValueError(f"name {name!r}: env-* and {DEV_OPEN} are reserved for the bootstrap identities")
    return name


def check_role(role: str, region: str | None) -> tuple[Role, str | None]:
    """A valid (role, region) pair, or ValueError: `feed` needs one region, the other roles none."""
    try:
        r = Role(role)
    except ValueError:
        raise ValueError(f"role {role!r}: must be one of {', '.join(x.value for x in Role)}") from None
    if r is Role.FEED:
        if region is None or not _REGION.fullmatch(region):
            raise ValueError("--region: a feed operator needs the 6-digit region it sends for")
    elif region is not None:
        raise ValueError(f"--region: only a feed operator has a region, not {r.value}")
    return r, region


def new_token() -> str:
    """A fresh bearer token (256 random bits, URL-safe); show it once, store only `token_digest` of it."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    """What the database keeps of a token: its SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).digest()
