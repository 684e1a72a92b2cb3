"""Blacklist ports: lookups past the in-process cache, the cache itself, and the lists of record in PostgreSQL
as the cache, the feeds, the admin API and distribution see them (change log, snapshots, writes, reads)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

from gateway.domain.feeds import Delta, FeedEvent, LoggedChange
from gateway.domain.feeds.batch import EventResult, Prepared

AfterCommit = Callable[[], Awaitable[None]]
ListName = Literal["C", "P"]  # the card list (keys card_sn) or the person list (keys psn_no)


class ListLookup(Protocol):
    """Blacklist lookups the in-process cache could not answer (Redis: `blacklist_cache.redis_lookup`)."""

    async def reasons(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str] | None:
        """(card reason, person reason) of the keys given ('' = not listed); None while the lists are not loaded.

        Raises:
            DependencyUnavailable: the lookup could not be made in time.
        """
        ...


class ReadyListLookup(ListLookup, Protocol):
    """A `ListLookup` that also says whether it holds the lists at all (readiness: `/readyz`)."""

    async def is_loaded(self) -> bool:
        """True while the lists are loaded where the lookups read them."""
        ...


class CacheFreshness(Protocol):
    """What readiness and distribution read of the in-process cache: the version it applied, and whether it is
    confirmed current within its staleness bound."""

    @property
    def version(self) -> int | None:
        """The version applied; None while not loaded."""
        ...

    @property
    def current(self) -> bool:
        """True when loaded and confirmed within the staleness bound."""
        ...


class BlacklistCache(Protocol):
    """The in-process blacklist (`blacklist_cache.local.LocalBlacklist`): clears without a round trip."""

    def card_clear(self, card_sn: str) -> bool:
        """True only when the process can prove the card is not listed."""
        ...

    def person_clear(self, psn_no: str) -> bool:
        """True only when the process can prove the person is not listed."""
        ...


class ChangeLog(Protocol):
    """The versioned change log of both lists (PostgreSQL: `adapters.pg_changelog.PgChangeLog`)."""

    async def version(self) -> int:
        """The last version taken (committed)."""
        ...

    async def changes_since(self, version: int, limit: int = 100_000) -> list[LoggedChange]:
        """The log after `version`, in version order, at most `limit` rows (gap-free unless pruned)."""
        ...

    async def prune(self, keep_days: int) -> int:
        """Delete rows older than keep_days, never the newest one; how many were deleted."""
        ...


class ListSnapshot(Protocol):
    """Both lists as of one version, read consistently while the snapshot is open."""

    @property
    def version(self) -> int:
        """The version the snapshot reflects."""
        ...

    async def size(self, list_: ListName) -> int:
        """How many keys the list holds."""
        ...

    def entries(self, list_: ListName, chunk: int) -> AsyncIterator[list[tuple[str, str]]]:
        """(key, reason) of every entry, `chunk` at a time."""
        ...

    async def copy_keys(self, list_: ListName, sink: Callable[[bytes], Coroutine[Any, Any, None]]) -> None:
        """Every key as text, one per line ending in a line break, handed to `sink` in pieces cut anywhere
        (the cheapest way to read millions of keys)."""
        ...


class ListSnapshots(Protocol):
    """The blacklists of record, read whole (PostgreSQL: `adapters.pg_list_snapshots.PgListSnapshots`)."""

    def snapshot(self) -> AbstractAsyncContextManager[ListSnapshot]:
        """A consistent read of both lists and their version."""
        ...


class FeedWriter(Protocol):
    """Versioned writes to the lists of record: feed batches and single changes (`adapters.pg_feed_writer`).

    `after_commit` runs once a write is committed and changed something (e.g. pushing it to Redis).
    """

    async def version(self) -> int:
        """The last version taken (committed)."""
        ...

    def acting_as(self, actor: str) -> FeedWriter:
        """The same writer, its changes logged as made by `actor` (the authenticated identity, issue 11)."""
        ...

    async def apply_events(
        self, events: Sequence[FeedEvent], *, after_commit: AfterCommit | None = None
    ) -> list[EventResult]:
        """Apply a batch in one transaction; each event sees the effects of the ones before it."""
        ...

    async def prepare(self, events: Sequence[FeedEvent], *, base: int, overlay: Prepared | None) -> Prepared:
        """Decide a batch outside any lock, on the committed state plus `overlay` (the batch still being
        written), assuming versions continue after `base`."""
        ...

    async def commit(self, prepared: Prepared, *, after_commit: AfterCommit | None = None) -> Prepared:
        """Write a prepared batch, deciding it again under the lock if anyone wrote since; what was written."""
        ...

    async def set_card_entry(
        self, card_sn: str, reason: str | None, source: str, *, after_commit: AfterCommit | None = None
    ) -> bool:
        """List a card (reason) or delist it (None); False if the list did not change.

        Raises:
            ValueError: not a card reason.
        """
        ...

    async def set_person_entry(
        self, psn_no: str, reason: str | None, source: str, *, after_commit: AfterCommit | None = None
    ) -> bool:
        """List a person (reason) or delist them (None); False if the list did not change.

        Raises:
            ValueError: not a person reason.
        """
        ...


class DistributionReads(Protocol):
    """What terminals download (SPEC §8.2): the version, card deltas and snapshots (`adapters.pg_distribution`)."""

    async def version(self) -> int:
        """The global blacklist version."""
        ...

    async def card_delta(self, since: int) -> tuple[Delta | None, int, int]:
        """The delta since `since` (None when the log no longer reaches back), the version, and the list size,
        all read consistently."""
        ...

    def card_snapshot(self) -> AbstractAsyncContextManager[tuple[int, AsyncIterator[list[tuple[str, str]]]]]:
        """The version and the whole card list sorted by card_sn, in chunks, read consistently."""
        ...
