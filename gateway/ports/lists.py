"""The blacklists of record port, for lookups neither the process nor Redis can answer (`adapters.pg_lists`)."""

from __future__ import annotations

from typing import Protocol


class ListsOfRecord(Protocol):
    """The lists of record themselves (PostgreSQL), the last word on a refusal."""

    async def list_reasons(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str]:
        """Blacklist reasons from the lists of record ('' = not listed)."""
        ...
