"""What readiness asks of a dependency: answer now, within its deadline."""

from __future__ import annotations

from typing import Protocol


class Pingable(Protocol):
    """A dependency readiness can ping (PostgreSQL: `adapters.pg_pool.Pg`)."""

    async def ping(self) -> None:
        """Return when the dependency answered a trivial request within its deadline.

        Raises:
            Exception: any failure, a TimeoutError when it did not answer in time.
        """
        ...
