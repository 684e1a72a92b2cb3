"""The blacklists of record in PostgreSQL, read when neither this process nor Redis can answer
(`gateway.ports.lists.ListsOfRecord`)."""

from __future__ import annotations

from adapters.pg_errors import map_unavailable
from adapters.pg_pool import Pg


@map_unavailable
class PgListsOfRecord:
    """Reasons a card or person is listed, straight from the lists of record."""

    def __init__(self, pool: Pg) -> None:
        self.pool = pool

    async def list_reasons(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str]:
        """Blacklist reasons ('' = not listed) from the lists of record, for when Redis cannot answer."""
        r = await self.pool.fetchrow(
            "SELECT (SELECT reason FROM blacklist_cards WHERE card_sn = $1) AS card,"
            " (SELECT reason FROM blacklist_persons WHERE psn_no = $2) AS person",
            card_sn,
            psn_no,
        )
        assert r is not None
        return r["card"] or "", r["person"] or ""
