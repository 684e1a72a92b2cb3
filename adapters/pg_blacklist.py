"""Blacklist lists of record in PostgreSQL, versioned (SPEC §8.2): feed batches, single admin changes, world load.

Every writer first locks the `blacklist_meta` row, so writers are serialised, decide on the state they will
change, and take gap-free versions that commit in order. Each list change writes the list row (with its
version) and one `blacklist_changes` row in the same transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, NamedTuple

import asyncpg

from gateway.domain.feeds import (
    ACTIVE,
    CARD_REASONS,
    CITY,
    PERSON_EVENTS,
    PERSON_REASONS,
    CardRecord,
    FeedEvent,
    FeedState,
    ListChange,
    Rejected,
    decide,
)

AfterCommit = Callable[[], Awaitable[None]]
Status = Literal["accepted", "duplicate", "rejected"]
_CARD_COLS = "card_sn, card_no, psn_no, pin_mode, status, alg, kv, valid_from, valid_until"


class EventResult(NamedTuple):
    """The outcome of the index-th event of a batch; version is the last list version it produced."""

    index: int
    status: Status
    reason: str | None = None
    version: int | None = None


class _Logged(NamedTuple):
    change: ListChange
    source: str
    version: int


# -- reads -------------------------------------------------------------------------------------------------


async def _lock_version(conn: asyncpg.Connection) -> int:
    """Serialise writers: the meta row stays locked until commit."""
    return int(await conn.fetchval("SELECT version FROM blacklist_meta FOR UPDATE"))


async def _load_state(conn: asyncpg.Connection, events: Sequence[FeedEvent], city: str) -> FeedState:
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
        rows = await conn.fetch(f"SELECT {_CARD_COLS} FROM cards WHERE card_sn = ANY($1::text[])", keys)  # noqa: S608
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


async def _accepted_before(
    conn: asyncpg.Connection, events: Sequence[FeedEvent]
) -> dict[tuple[str, int], tuple[bytes, int | None]]:
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


# -- writes ------------------------------------------------------------------------------------------------


async def _write_cards(
    conn: asyncpg.Connection, cards: Mapping[str, CardRecord], before: Mapping[str, CardRecord] | None = None
) -> None:
    """Upsert registry rows. A card that only changed its list status writes nothing here (the list of record
    holds that); one that changed its PIN mode takes a narrow UPDATE."""
    if not cards:
        return
    narrow: list[CardRecord] = []
    full: list[CardRecord] = []
    for c in cards.values():
        b = (before or {}).get(c.card_sn)
        same_rest = b is not None and (b.card_no, b.psn_no, b.alg, b.kv, b.valid_from, b.valid_until) == (
            c.card_no, c.psn_no, c.alg, c.kv, c.valid_from, c.valid_until
        )  # fmt: skip
        if not same_rest:
            full.append(c)
        elif b is not None and b.pin_mode != c.pin_mode:
            narrow.append(c)
    if narrow:
        await conn.execute(
            "UPDATE cards c SET pin_mode = u.pin_mode FROM unnest($1::text[], $2::text[]) AS u(card_sn, pin_mode)"
            " WHERE c.card_sn = u.card_sn",
            [c.card_sn for c in narrow],
            [c.pin_mode for c in narrow],
        )
    if not full:
        return
    cols = list(zip(*((c.card_sn, c.card_no, c.psn_no, c.pin_mode, c.status, c.alg, c.kv, c.valid_from,
                       c.valid_until) for c in full), strict=True))  # fmt: skip
    await conn.execute(
        f"INSERT INTO cards ({_CARD_COLS}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"  # noqa: S608
        " $5::text[], $6::text[], $7::smallint[], $8::date[], $9::date[]) ON CONFLICT (card_sn) DO UPDATE SET"
        " card_no = EXCLUDED.card_no, psn_no = EXCLUDED.psn_no, pin_mode = EXCLUDED.pin_mode,"
        " status = EXCLUDED.status, alg = EXCLUDED.alg, kv = EXCLUDED.kv, valid_from = EXCLUDED.valid_from,"
        " valid_until = EXCLUDED.valid_until",
        *(list(c) for c in cols),
    )


async def _write_changes(conn: asyncpg.Connection, logged: Sequence[_Logged]) -> None:
    """The change log rows, then the final state of each touched key in both lists."""
    if not logged:
        return
    await conn.copy_records_to_table(
        "blacklist_changes",
        records=[(x.version, x.change.list, x.change.key, x.change.op, x.change.reason, x.source) for x in logged],
        columns=["version", "list", "key", "op", "reason", "source"],
    )
    for lst, table, key in (("C", "blacklist_cards", "card_sn"), ("P", "blacklist_persons", "psn_no")):
        last: dict[str, _Logged] = {x.change.key: x for x in logged if x.change.list == lst}
        adds = [x for x in last.values() if x.change.op != "D"]
        dels = [k for k, x in last.items() if x.change.op == "D"]
        if dels:
            await conn.execute(f"DELETE FROM {table} WHERE {key} = ANY($1::text[])", dels)  # noqa: S608
        if adds:
            await conn.execute(
                f"INSERT INTO {table} ({key}, reason, source, version, updated_at)"  # noqa: S608
                " SELECT k, r, s, v, now()"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(k, r, s, v)"
                f" ON CONFLICT ({key}) DO UPDATE SET reason = EXCLUDED.reason, source = EXCLUDED.source,"
                " version = EXCLUDED.version, updated_at = now()",
                [x.change.key for x in adds],
                [x.change.reason for x in adds],
                [x.source for x in adds],
                [x.version for x in adds],
            )


async def _commit_changes(
    conn: asyncpg.Connection, base: int, pending: Sequence[tuple[ListChange, str]]
) -> list[_Logged]:
    """Number the changes base+1.. and write them; the meta row (locked by the caller) takes the last."""
    logged = [_Logged(ch, source, base + i) for i, (ch, source) in enumerate(pending, 1)]
    if logged:
        await conn.execute("UPDATE blacklist_meta SET version = $1", logged[-1].version)
        await _write_changes(conn, logged)
    return logged


# -- feed batches ------------------------------------------------------------------------------------------


FeedRow = tuple[str, int, str, str, bytes, int | None]
Seen = dict[tuple[str, int], tuple[bytes, int | None]]


@dataclass(slots=True)
class Prepared:
    """A batch decided against a known state and base version, ready to write.

    `state` and `accepted` (the batch's own accepted events) are what the NEXT batch overlays on the
    committed state while this one is still being written.
    """

    events: Sequence[FeedEvent]
    base: int
    results: list[EventResult]
    before: dict[str, CardRecord]
    cards: dict[str, CardRecord]
    pending: list[tuple[ListChange, str]]
    feed_rows: list[FeedRow]
    state: FeedState
    accepted: Seen

    @property
    def next_base(self) -> int:
        """The version the next batch starts after, once this one is written."""
        return self.base + len(self.pending)


async def _gather(
    conn: asyncpg.Connection, events: Sequence[FeedEvent], city: str, overlay: Prepared | None
) -> tuple[FeedState, Seen]:
    """The committed state of the batch's keys and seqs, with the in-flight batch's effects on top.

    Keys the in-flight batch did not touch read the same before and after it commits; those it touched take
    its final state, whichever side of its commit the reads fell on.
    """
    state = await _load_state(conn, events, city)
    seen = await _accepted_before(conn, events)
    if overlay is None:
        return state, seen
    prior = overlay.state
    touched = _touched_cards(overlay)
    for sn in _card_keys(events):
        if sn in prior.cards:
            state.cards[sn] = prior.cards[sn]
        if sn in touched:
            if sn in prior.card_list:
                state.card_list[sn] = prior.card_list[sn]
            else:
                state.card_list.pop(sn, None)
    touched = _touched_persons(overlay)
    for psn in _person_keys(events):
        if psn in touched:
            if psn in prior.person_list:
                state.person_list[psn] = prior.person_list[psn]
            else:
                state.person_list.pop(psn, None)
        if psn in prior.person_regions:
            state.person_regions.setdefault(psn, set()).update(prior.person_regions[psn])
    seen.update(overlay.accepted)
    return state, seen


def _card_keys(events: Sequence[FeedEvent]) -> set[str]:
    keys: set[str] = set()
    for e in events:
        if e.event not in PERSON_EVENTS:
            keys.add(e.card_sn or "")
            if e.card is not None:
                keys.add(e.card.card_sn)
    return keys


def _person_keys(events: Sequence[FeedEvent]) -> set[str]:
    return {e.psn_no or "" for e in events if e.event in PERSON_EVENTS}


def _touched_cards(p: Prepared) -> set[str]:
    return {ch.key for ch, _ in p.pending if ch.list == "C"} | set(p.cards)


def _touched_persons(p: Prepared) -> set[str]:
    return {ch.key for ch, _ in p.pending if ch.list == "P"}


def _decide_batch(events: Sequence[FeedEvent], state: FeedState, seen: Seen, base: int, city: str) -> Prepared:
    """Run the pure transitions event by event (each sees the ones before it)."""
    p = Prepared(events, base, [], dict(state.cards), {}, [], [], state, {})
    for i, e in enumerate(events):
        _decide_one(p, i, e, state, seen, base, city)
    return p


async def _decide_batch_yielding(
    events: Sequence[FeedEvent], state: FeedState, seen: Seen, base: int, city: str
) -> Prepared:
    """`_decide_batch`, giving the event loop a turn every few hundred events: the batch being written on
    the other connection then gets its next statement sent at once, so PostgreSQL and Python overlap."""
    p = Prepared(events, base, [], dict(state.cards), {}, [], [], state, {})
    for i, e in enumerate(events):
        if i % 256 == 255:
            await asyncio.sleep(0)
        _decide_one(p, i, e, state, seen, base, city)
    return p


def _decide_one(p: Prepared, i: int, e: FeedEvent, state: FeedState, seen: Seen, base: int, city: str) -> None:
    digest = e.content_hash()
    key = (e.source, e.source_seq)
    prior = seen.get(key)
    if prior is not None:
        if prior[0] == digest:
            p.results.append(EventResult(i, "duplicate", None, prior[1]))
        else:
            p.results.append(EventResult(i, "rejected", "source_seq already used for another event"))
        return
    d = decide(e, state, city)
    if isinstance(d, Rejected):
        p.results.append(EventResult(i, "rejected", d.reason))
        return
    state.apply(d)
    for c in d.cards:
        p.cards[c.card_sn] = c
    p.pending.extend((ch, e.source) for ch in d.changes)
    version = base + len(p.pending) if d.changes else None
    seen[key] = p.accepted[key] = (digest, version)
    p.feed_rows.append((e.source, e.source_seq, e.event.value, e.subject, digest, version))
    p.results.append(EventResult(i, "accepted", None, version))


async def _write(conn: asyncpg.Connection, p: Prepared) -> None:
    await _write_cards(conn, p.cards, p.before)
    await _commit_changes(conn, p.base, p.pending)
    if p.feed_rows:
        await conn.copy_records_to_table(
            "feed_events",
            records=p.feed_rows,
            columns=["source", "source_seq", "event", "subject", "content_hash", "version"],
        )


async def apply_events(
    pool: asyncpg.Pool,
    events: Sequence[FeedEvent],
    *,
    city: str = CITY,
    after_commit: AfterCommit | None = None,
) -> list[EventResult]:
    """Apply a batch in ONE transaction; each event sees the effects of the ones before it.

    A (source, source_seq) accepted before is `duplicate` with the same content and `rejected` with other
    content; a rejected event changes nothing and is not recorded, so the source may send it again.
    `after_commit` runs once the batch is committed and changed something (e.g. pushing to Redis).
    """
    async with pool.acquire() as conn, conn.transaction():
        base = await _lock_version(conn)
        state, seen = await _gather(conn, events, city, None)
        p = _decide_batch(events, state, seen, base, city)
        await _write(conn, p)
    if after_commit is not None and (p.pending or p.cards):
        await after_commit()
    return p.results


async def prepare_events(
    pool: asyncpg.Pool, events: Sequence[FeedEvent], *, base: int, overlay: Prepared | None, city: str = CITY
) -> Prepared:
    """Decide a batch outside any lock, on the committed state plus the effects of `overlay` (the batch still
    being written), assuming versions continue after `base`. `commit_prepared` checks that assumption."""
    async with pool.acquire() as conn:
        state, seen = await _gather(conn, events, city, overlay)
    return await _decide_batch_yielding(events, state, seen, base, city)


async def commit_prepared(
    pool: asyncpg.Pool, p: Prepared, *, city: str = CITY, after_commit: AfterCommit | None = None
) -> Prepared:
    """Write a prepared batch; if anyone else wrote since it was decided, decide it again under the lock.

    Returns what was written (the results may differ from the prepared ones after such a re-decision).
    """
    async with pool.acquire() as conn, conn.transaction():
        base = await _lock_version(conn)
        if base != p.base:
            state, seen = await _gather(conn, p.events, city, None)
            p = _decide_batch(p.events, state, seen, base, city)
        await _write(conn, p)
    if after_commit is not None and (p.pending or p.cards):
        await after_commit()
    return p


# -- single changes (admin API) ----------------------------------------------------------------------------


async def _set_entry(
    pool: asyncpg.Pool, lst: Literal["C", "P"], key: str, reason: str | None, source: str, after: AfterCommit | None
) -> bool:
    table, column = ("blacklist_cards", "card_sn") if lst == "C" else ("blacklist_persons", "psn_no")
    async with pool.acquire() as conn, conn.transaction():
        base = await _lock_version(conn)
        current = await conn.fetchval(f"SELECT reason FROM {table} WHERE {column} = $1", key)  # noqa: S608
        if current == reason:
            return False
        op: Literal["A", "R", "D"] = "D" if reason is None else ("A" if current is None else "R")
        await _commit_changes(conn, base, [(ListChange(lst, key, op, reason), source)])
    if after is not None:
        await after()
    return True


async def set_card_entry(
    pool: asyncpg.Pool, card_sn: str, reason: str | None, source: str, *, after_commit: AfterCommit | None = None
) -> bool:
    """Put a card on the list (reason) or take it off (None), versioned; False if the list did not change.

    The list of record is the one truth on refusals; the registry row is not touched.
    """
    if reason is not None and reason not in CARD_REASONS:
        raise ValueError(f"card reason must be one of {sorted(CARD_REASONS)}")
    return await _set_entry(pool, "C", card_sn, reason, source, after_commit)


async def set_person_entry(
    pool: asyncpg.Pool, psn_no: str, reason: str | None, source: str, *, after_commit: AfterCommit | None = None
) -> bool:
    """Put a person on the list (reason) or take them off (None), versioned; False if nothing changed."""
    if reason is not None and reason not in PERSON_REASONS:
        raise ValueError("person reason must be 11 or 12")
    return await _set_entry(pool, "P", psn_no, reason, source, after_commit)


# -- world load --------------------------------------------------------------------------------------------


def _d(text: object) -> date | None:
    return date.fromisoformat(str(text)) if text else None


async def load_world(pool: asyncpg.Pool, world: Mapping[str, Any], source: str = "world") -> dict[str, int]:
    """Upsert institutions, PSAMs, cards and both lists from a seed world, versioned and idempotent.

    The world is authoritative for what it names: a card or person it lists is listed with its status, one it
    names as ACTIVE is delisted. Only real changes take versions, so loading the same world again adds none.
    """
    insts = world.get("institutions", [])
    cards = [
        CardRecord(c["card_sn"], c["card_no"], c["psn_no"], c["pin_mode"], c["status"], c["alg"], int(c["kv"]),
                   _d(c.get("valid_from")), _d(c.get("valid_until")))
        for c in world.get("cards", [])
    ]  # fmt: skip
    persons = world.get("persons", [])
    async with pool.acquire() as conn, conn.transaction():
        base = await _lock_version(conn)
        await conn.executemany(
            "INSERT INTO institutions (fixmedins_code, fixmedins_name, kind, level, region)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (fixmedins_code) DO UPDATE SET"
            " fixmedins_name = EXCLUDED.fixmedins_name, kind = EXCLUDED.kind, level = EXCLUDED.level,"
            " region = EXCLUDED.region",
            [(i["fixmedins_code"], i["fixmedins_name"], i["kind"], int(i["level"]), i["region"]) for i in insts],
        )
        await conn.executemany(
            "INSERT INTO psams (psam_no, fixmedins_code, status) VALUES ($1, $2, $3) ON CONFLICT (psam_no)"
            " DO UPDATE SET fixmedins_code = EXCLUDED.fixmedins_code, status = EXCLUDED.status",
            [(p["psam_no"], i["fixmedins_code"], p.get("status", "ACTIVE")) for i in insts for p in i["psams"]],
        )
        await _write_cards(conn, {c.card_sn: c for c in cards})
        pending: list[tuple[ListChange, str]] = []
        for lst, table, key, want in (
            ("C", "blacklist_cards", "card_sn", {c.card_sn: c.status for c in cards}),
            ("P", "blacklist_persons", "psn_no", {p["psn_no"]: p.get("status", ACTIVE) for p in persons}),
        ):
            reasons = CARD_REASONS if lst == "C" else PERSON_REASONS
            rows = await conn.fetch(
                f"SELECT {key}, reason FROM {table} WHERE {key} = ANY($1::text[])",  # noqa: S608
                list(want),
            )
            have = {r[0]: r[1] for r in rows}
            for k, status in want.items():
                target = status if status in reasons else None
                if have.get(k) != target:
                    op: Literal["A", "R", "D"] = "D" if target is None else ("A" if have.get(k) is None else "R")
                    pending.append((ListChange(lst, k, op, target), source))  # type: ignore[arg-type]
        await _commit_changes(conn, base, pending)
    return {"institutions": len(insts), "cards": len(cards), "persons": len(persons), "changes": len(pending)}


# -- change log --------------------------------------------------------------------------------------------


async def changes_since(
    pool: asyncpg.Pool, version: int, limit: int = 100_000
) -> list[tuple[int, str, str, str, str | None]]:
    """(version, list, key, op, reason) of the log after `version`, in order."""
    rows = await pool.fetch(
        "SELECT version, list, key, op, reason FROM blacklist_changes WHERE version > $1 ORDER BY version LIMIT $2",
        version,
        limit,
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def current_version(pool: asyncpg.Pool) -> int:
    """The last version taken (committed)."""
    return int(await pool.fetchval("SELECT version FROM blacklist_meta"))


async def prune_changes(pool: asyncpg.Pool, keep_days: int) -> int:
    """Delete change-log rows older than keep_days, never the newest one; returns how many were deleted."""
    if keep_days < 0:
        raise ValueError("keep_days must be >= 0")
    status = await pool.execute(
        "DELETE FROM blacklist_changes WHERE at < now() - make_interval(days => $1)"
        " AND version < (SELECT max(version) FROM blacklist_changes)",
        keep_days,
    )
    return int(status.split()[-1])
