"""Blacklist ports: lookups past the in-process cache, and the in-process cache itself."""

from __future__ import annotations

from typing import Protocol


class ListLookup(Protocol):
    """Blacklist lookups the in-process cache could not answer (Redis: `blacklist_cache.redis_lookup`)."""

    async def reasons(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str] | None:
        """(card reason, person reason) of the keys given ('' = not listed); None while the lists are not loaded.

        Raises:
            DependencyUnavailable: the lookup could not be made in time.
        """
        ...


class BlacklistCache(Protocol):
    """The in-process blacklist (`blacklist_cache.local.LocalBlacklist`): clears without a round trip."""

    def card_clear(self, card_sn: str) -> bool:
        """True only when the process can prove the card is not listed."""
        ...

    def person_clear(self, psn_no: str) -> bool:
        """True only when the process can prove the person is not listed."""
        ...
