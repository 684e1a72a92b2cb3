"""Versioned writes to the blacklists of record in PostgreSQL (SPEC §8.2), shared by every writer.

Every writer first locks the `blacklist_meta` row (`lock_version`), so writers are serialised, decide on the
state they will change, and take gap-free versions that commit in order. Each list change writes the list row
(with its version) and one `blacklist_changes` row in the same transaction (`commit_changes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from adapters.pg_pool import Conn
from gateway.domain.feeds import CardRecord, ListChange

CARD_COLS = "card_sn, card_no, psn_no, pin_mode, status, alg, kv, valid_from, valid_until"


class Logged(NamedTuple):
    """A list change with the source that sent it and the version it took."""

    change: ListChange
    source: str
    version: int


async def lock_version(conn: Conn) -> int:
    """Serialise writers: the meta row stays locked until commit."""
    return int(await conn.fetchval("SELECT version FROM blacklist_meta FOR UPDATE"))


async def write_cards(
    conn: Conn,
    cards: Mapping[str, CardRecord],
    before: Mapping[str, CardRecord] | None = None,
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
        f"INSERT INTO cards ({CARD_COLS}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"  # noqa: S608
        " $5::text[], $6::text[], $7::smallint[], $8::date[], $9::date[]) ON CONFLICT (card_sn) DO UPDATE SET"
        " card_no = EXCLUDED.card_no, psn_no = EXCLUDED.psn_no, pin_mode = EXCLUDED.pin_mode,"
        " status = EXCLUDED.status, alg = EXCLUDED.alg, kv = EXCLUDED.kv, valid_from = EXCLUDED.valid_from,"
        " valid_until = EXCLUDED.valid_until",
        *(list(c) for c in cols),
    )


async def write_changes(conn: Conn, logged: Sequence[Logged], actor: str | None = None) -> None:
    """The change log rows (with the identity that made them: `actor`, issue 11), then the final state of each
    touched key in both lists."""
    if not logged:
        return
    await conn.copy_records_to_table(
        "blacklist_changes",
        records=[
            (x.version, x.change.list, x.change.key, x.change.op, x.change.reason, x.source, actor) for x in logged
        ],
        columns=["version", "list", "key", "op", "reason", "source", "actor"],
    )
    for lst, table, key in (("C", "blacklist_cards", "card_sn"), ("P", "blacklist_persons", "psn_no")):
        last: dict[str, Logged] = {x.change.key: x for x in logged if x.change.list == lst}
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


async def commit_changes(
    conn: Conn, base: int, pending: Sequence[tuple[ListChange, str]], actor: str | None = None
) -> list[Logged]:
    """Number the changes base+1.. and write them; the meta row (locked by the caller) takes the last."""
    logged = [Logged(ch, source, base + i) for i, (ch, source) in enumerate(pending, 1)]
    if logged:
        await conn.execute("UPDATE blacklist_meta SET version = $1", logged[-1].version)
        await write_changes(conn, logged, actor)
    return logged
