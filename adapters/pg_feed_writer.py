"""Feed batches and single admin changes written to the blacklists of record in PostgreSQL (SPEC §8.2, §8.3).

A batch is decided by the pure `gateway.domain.feeds.batch` on the state read here for its keys, then written
with `pg_list_writes` under the version lock. A bulk import pipelines: `prepare_events` decides the next batch
outside the lock while the previous one is written, and `commit_prepared` checks nobody wrote in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

from adapters.pg_changelog import read_version
from adapters.pg_list_writes import CARD_COLS, commit_changes, lock_version, write_cards
from adapters.pg_pool import Conn, Pg
from gateway.domain.feeds import (
    CARD_REASONS,
    CITY,
    PERSON_EVENTS,
    PERSON_REASONS,
    CardRecord,
    FeedEvent,
    FeedState,
    ListChange,
)
from gateway.domain.feeds.batch import EventResult, Prepared, Seen, decide_batch, decide_event, overlay, start_batch
from gateway.ports.blacklist import AfterCommit


async def _load_state(conn: Conn, events: Sequence[FeedEvent], city: str) -> FeedState:
    card_keys: set[str] = set()
    psn_keys: set[str] = set()
    for e in events:
        if e.event in PERSON_EVENTS:
            psn_keys.add(e.psn_no or "")
        else:
            card_keys.add(e.card_sn or "")
            if e.card is not None:
                card_keys.add(e.card.card_sn)
    state = FeedState()
    if card_keys:
        # Registry rows and list reasons of every card the batch names. Two `= ANY` lookups rather than one
        # join: during a big import the list's statistics lag behind its size, and a join planned on them
        # turns into a sequential scan of the whole list for every batch.
        keys = list(card_keys)
        rows = await conn.fetch(f"SELECT {CARD_COLS} FROM cards WHERE card_sn = ANY($1::text[])", keys)  # noqa: S608
        for r in rows:
            state.cards[r[0]] = CardRecord(*r)
        rows = await conn.fetch("SELECT card_sn, reason FROM blacklist_cards WHERE card_sn = ANY($1::text[])", keys)
        state.card_list = {r[0]: r[1] for r in rows}
    if psn_keys:
        keys = list(psn_keys)
        rows = await conn.fetch("SELECT psn_no, reason FROM blacklist_persons WHERE psn_no = ANY($1::text[])", keys)
        state.person_list = {r[0]: r[1] for r in rows}
        county_psns = [e.psn_no for e in events if e.event in PERSON_EVENTS and e.source != city]
        if county_psns:
            rows = await conn.fetch(
                "SELECT DISTINCT psn_no, left(card_sn, 6) FROM cards WHERE psn_no = ANY($1::text[])", county_psns
            )
            for r in rows:
                state.person_regions.setdefault(r[0], set()).add(r[1])
    return state


async def _accepted_before(conn: Conn, events: Sequence[FeedEvent]) -> dict[tuple[str, int], tuple[bytes, int | None]]:
    """Events of this batch accepted before: one `= ANY` lookup per source (index-driven however stale
    the statistics of a fast-growing feed_events table are)."""
    by_source: dict[str, list[int]] = {}
    for e in events:
        by_source.setdefault(e.source, []).append(e.source_seq)
    out: dict[tuple[str, int], tuple[bytes, int | None]] = {}
    for source, seqs in by_source.items():
        rows = await conn.fetch(
            "SELECT source_seq, content_hash, version FROM feed_events WHERE source = $1"
            " AND source_seq = ANY($2::bigint[])",
            source,
            seqs,
        )
        out.update({(source, r[0]): (bytes(r[1]), r[2]) for r in rows})
    return out


async def _gather(
    conn: Conn, events: Sequence[FeedEvent], city: str, in_flight: Prepared | None
) -> tuple[FeedState, Seen]:
    """The committed state of the batch's keys and seqs, with the in-flight batch's effects on top."""
    state = await _load_state(conn, events, city)
    seen = await _accepted_before(conn, events)
    if in_flight is not None:
        overlay(events, state, seen, in_flight)
    return state, seen


async def _decide_batch_yielding(
    events: Sequence[FeedEvent], state: FeedState, seen: Seen, base: int, city: str
) -> Prepared:
    """`decide_batch`, giving the event loop a turn every few hundred events: the batch being written on
    the other connection then gets its next statement sent at once, so PostgreSQL and Python overlap."""
    p = start_batch(events, state, base)
    for i, e in enumerate(events):
        if i % 256 == 255:
            await asyncio.sleep(0)
        decide_event(p, i, e, seen, city)
    return p


async def _write(conn: Conn, p: Prepared, actor: str | None) -> None:
    await write_cards(conn, p.cards, p.before)
    await commit_changes(conn, p.base, p.pending, actor)
    if p.feed_rows:
        await conn.copy_records_to_table(
            "feed_events",
            records=p.feed_rows,
            columns=["source", "source_seq", "event", "subject", "content_hash", "version"],
        )


async def apply_events(
    pool: Pg,
    events: Sequence[FeedEvent],
    *,
    city: str = CITY,
    after_commit: AfterCommit | None = None,
    actor: str | None = None,
) -> list[EventResult]:
    """Apply a batch in ONE transaction; each event sees the effects of the ones before it.

    A (source, source_seq) accepted before is `duplicate` with the same content and `rejected` with other
    content; a rejected event changes nothing and is not recorded, so the source may send it again.
    `after_commit` runs once the batch is committed and changed something (e.g. pushing to Redis).
    """
    async with pool.acquire() as conn, conn.transaction():
        base = await lock_version(conn)
        state, seen = await _gather(conn, events, city, None)
        p = decide_batch(events, state, seen, base, city)
        await _write(conn, p, actor)
    if after_commit is not None and p.changed:
        await after_commit()
    return p.results


async def prepare_events(
    pool: Pg, events: Sequence[FeedEvent], *, base: int, overlay: Prepared | None, city: str = CITY
) -> Prepared:
    """Decide a batch outside any lock, on the committed state plus the effects of `overlay` (the batch still
    being written), assuming versions continue after `base`. `commit_prepared` checks that assumption."""
    async with pool.acquire() as conn:
        state, seen = await _gather(conn, events, city, overlay)
    return await _decide_batch_yielding(events, state, seen, base, city)


async def commit_prepared(
    pool: Pg, p: Prepared, *, city: str = CITY, after_commit: AfterCommit | None = None, actor: str | None = None
) -> Prepared:
    """Write a prepared batch; if anyone else wrote since it was decided, decide it again under the lock.

    Returns what was written (the results may differ from the prepared ones after such a re-decision).
    """
    async with pool.acquire() as conn, conn.transaction():
        base = await lock_version(conn)
        if base != p.base:
            state, seen = await _gather(conn, p.events, city, None)
            p = decide_batch(p.events, state, seen, base, city)
        await _write(conn, p, actor)
    if after_commit is not None and p.changed:
        await after_commit()
    return p


async def _set_entry(
    pool: Pg,
    lst: Literal["C", "P"],
    key: str,
    reason: str | None,
    source: str,
    after: AfterCommit | None,
    actor: str | None,
) -> bool:
    table, column = ("blacklist_cards", "card_sn") if lst == "C" else ("blacklist_persons", "psn_no")
    async with pool.acquire() as conn, conn.transaction():
        base = await lock_version(conn)
        current = await conn.fetchval(f"SELECT reason FROM {table} WHERE {column} = $1", key)  # noqa: S608
        if current == reason:
            return False
        op: Literal["A", "R", "D"] = "D" if reason is None else ("A" if current is None else "R")
        await commit_changes(conn, base, [(ListChange(lst, key, op, reason), source)], actor)
    if after is not None:
        await after()
    return True


async def set_card_entry(
    pool: Pg,
    card_sn: str,
    reason: str | None,
    source: str,
    *,
    after_commit: AfterCommit | None = None,
    actor: str | None = None,
) -> bool:
    """Put a card on the list (reason) or take it off (None), versioned; False if the list did not change.

    The list of record is the one truth on refusals; the registry row is not touched.
    """
    if reason is not None and reason not in CARD_REASONS:
        raise ValueError(f"card reason must be one of {sorted(CARD_REASONS)}")
    return await _set_entry(pool, "C", card_sn, reason, source, after_commit, actor)


async def set_person_entry(
    pool: Pg,
    psn_no: str,
    reason: str | None,
    source: str,
    *,
    after_commit: AfterCommit | None = None,
    actor: str | None = None,
) -> bool:
    """Put a person on the list (reason) or take them off (None), versioned; False if nothing changed."""
    if reason is not None and reason not in PERSON_REASONS:
        raise ValueError("person reason must be 11 or 12")
    return await _set_entry(pool, "P", psn_no, reason, source, after_commit, actor)


class PgFeedWriter:
    """`gateway.ports.FeedWriter` on PostgreSQL, under the deadlines of the `Pg` it is given; `actor` is the
    identity its changes are logged under (None: outside the admin API)."""

    def __init__(self, pg: Pg, city: str = CITY, actor: str | None = None) -> None:
        self.pg = pg
        self.city = city
        self.actor = actor

    def acting_as(self, actor: str) -> PgFeedWriter:
        """The same writer, its changes logged as made by `actor`."""
        return PgFeedWriter(self.pg, self.city, actor)

    async def version(self) -> int:
        """The last version taken (committed)."""
        return await read_version(self.pg)

    async def apply_events(
        self, events: Sequence[FeedEvent], *, after_commit: AfterCommit | None = None
    ) -> list[EventResult]:
        """Apply a batch in one transaction (`apply_events`)."""
        return await apply_events(self.pg, events, city=self.city, after_commit=after_commit, actor=self.actor)

    async def prepare(self, events: Sequence[FeedEvent], *, base: int, overlay: Prepared | None) -> Prepared:
        """Decide a batch outside any lock (`prepare_events`)."""
        return await prepare_events(self.pg, events, base=base, overlay=overlay, city=self.city)

    async def commit(self, prepared: Prepared, *, after_commit: AfterCommit | None = None) -> Prepared:
        """Write a prepared batch (`commit_prepared`)."""
        return await commit_prepared(self.pg, prepared, city=self.city, after_commit=after_commit, actor=self.actor)

    async def set_card_entry(
        self, card_sn: str, reason: str | None, source: str, *, after_commit: AfterCommit | None = None
    ) -> bool:
        """List or delist a card (`set_card_entry`)."""
        return await set_card_entry(self.pg, card_sn, reason, source, after_commit=after_commit, actor=self.actor)

    async def set_person_entry(
        self, psn_no: str, reason: str | None, source: str, *, after_commit: AfterCommit | None = None
    ) -> bool:
        """List or delist a person (`set_person_entry`)."""
        return await set_person_entry(self.pg, psn_no, reason, source, after_commit=after_commit, actor=self.actor)
