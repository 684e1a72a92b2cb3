"""Ports of the admin perimeter (issue 11 items 5, 6): looking an operator up by its token's hash, managing
operators (the `onecard admin user` commands) and the audit trail."""

from __future__ import annotations

from typing import Protocol

from gateway.domain.audit import AuditEntry, AuditRow, AuditVerdict
from gateway.domain.operators import Operator, OperatorRecord, Role


class Operators(Protocol):
    """Who holds a token: what the admin listener asks on each request (`adapters.pg_operators`)."""

    async def by_digest(self, digest: bytes) -> Operator | None:
        """The live (not revoked) operator whose token has this SHA-256, else None."""
        ...


class OperatorAccounts(Protocol):
    """Adding, listing, revoking and rotating operators; every method that makes a token returns it once."""

    async def add(self, name: str, role: Role, region: str | None) -> str:
        """A new operator; its token. Raises ValueError if the name is taken (revoked names stay taken)."""
        ...

    async def list(self) -> list[OperatorRecord]:
        """Every operator, revoked ones included, by name."""
        ...

    async def revoke(self, name: str) -> bool:
        """Revoke at once; False if there is no live operator of that name."""
        ...

    async def rotate(self, name: str) -> str | None:
        """A new token for a live operator (the old one stops working); None if there is none of that name."""
        ...


class AuditTrail(Protocol):
    """The hash-chained admin audit trail (`adapters.pg_audit`)."""

    async def append(self, entry: AuditEntry) -> int:
        """Append one entry, chained; its seq. Raises what the database raises when it cannot be written."""
        ...

    async def page(self, *, before: int | None, limit: int) -> list[AuditRow]:
        """Up to `limit` rows, newest first, with seq below `before` (None: from the newest)."""
        ...

    async def verify(self) -> AuditVerdict:
        """Recompute the whole chain and check the head."""
        ...
