"""Operators in memory: a fake of the `Operators` port that counts its lookups."""

from __future__ import annotations

from gateway.domain.operators import Operator, token_digest
from gateway.ports.operators import Operators


class InMemoryOperators:
    """Operators by token hash; `lookups` counts what reached the "database"."""

    def __init__(self) -> None:
        self.by_hash: dict[bytes, Operator] = {}
        self.lookups = 0

    def add(self, token: str, who: Operator) -> None:
        """Give `who` the token."""
        self.by_hash[token_digest(token)] = who

    def revoke(self, token: str) -> None:
        """Take the token away."""
        self.by_hash.pop(token_digest(token), None)

    async def by_digest(self, digest: bytes) -> Operator | None:
        """The operator holding the token of this hash."""
        self.lookups += 1
        return self.by_hash.get(digest)


_: Operators = InMemoryOperators()
