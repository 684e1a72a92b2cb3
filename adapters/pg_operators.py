"""Named operators in PostgreSQL (table `operators`, migration 0007): the per-request lookup by token hash
(`gateway.ports.Operators`) and the management of `onecard admin user` (`gateway.ports.OperatorAccounts`).
A token is made here, returned once, and only its SHA-256 is written."""

from __future__ import annotations

import asyncpg

from adapters.pg_pool import Pg
from gateway.domain.operators import Operator, OperatorRecord, Role, check_name, new_token, token_digest


def _when(v: object) -> str | None:
    return None if v is None else str(v)


class PgOperators:
    """Operators on PostgreSQL, under the deadlines of the `Pg` it is given."""

    def __init__(self, pg: Pg) -> None:
        self.pg = pg

    async def by_digest(self, digest: bytes) -> Operator | None:
        """The live operator holding the token of this hash."""
        r = await self.pg.fetchrow(
            "SELECT name, role, region FROM operators WHERE token_sha256 = $1 AND revoked_at IS NULL", digest
        )
        return None if r is None else Operator(r["name"], Role(r["role"]), r["region"])

    async def add(self, name: str, role: Role, region: str | None) -> str:
        """Insert a new operator; its token (shown once by the caller)."""
        token = new_token()
        try:
            await self.pg.execute(
                "INSERT INTO operators (name, role, region, token_sha256) VALUES ($1, $2, $3, $4)",
                check_name(name),
                role.value,
                region,
                token_digest(token),
            )
        except asyncpg.UniqueViolationError:
            raise ValueError(f"operator {name!r} exists (a revoked name is not reused)") from None
        return token

    async def list(self) -> list[OperatorRecord]:
        """Every operator by name."""
        rows = await self.pg.fetch(
            "SELECT name, role, region, created_at, rotated_at, revoked_at FROM operators ORDER BY name"
        )
        return [
            OperatorRecord(
                r["name"],
                Role(r["role"]),
                r["region"],
                str(r["created_at"]),
                _when(r["rotated_at"]),
                _when(r["revoked_at"]),
            )
            for r in rows
        ]

    async def revoke(self, name: str) -> bool:
        """Revoke a live operator."""
        done = await self.pg.fetchval(
            "UPDATE operators SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL RETURNING name", name
        )
        return done is not None

    async def rotate(self, name: str) -> str | None:
        """Replace a live operator's token hash; the new token."""
        token = new_token()
        done = await self.pg.fetchval(
            "UPDATE operators SET token_sha256 = $2, rotated_at = now() WHERE name = $1 AND revoked_at IS NULL"
            " RETURNING name",
            name,
            token_digest(token),
        )
        return token if done is not None else None
