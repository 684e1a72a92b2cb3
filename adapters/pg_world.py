"""The seed world loaded into PostgreSQL: institutions, PSAMs, cards and both lists, versioned and idempotent."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Literal

from adapters.pg_list_writes import commit_changes, lock_version, write_cards
from adapters.pg_pool import Pg
from gateway.domain.feeds import ACTIVE, CARD_REASONS, PERSON_REASONS, CardRecord, ListChange


def _d(text: object) -> date | None:
    return date.fromisoformat(str(text)) if text else None


async def load_world(pool: Pg, world: Mapping[str, Any], source: str = "world") -> dict[str, int]:
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
        base = await lock_version(conn)
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
        await write_cards(conn, {c.card_sn: c for c in cards})
        pending: list[tuple[ListChange, str]] = []
        lists: tuple[tuple[Literal["C", "P"], str, str, dict[str, str]], ...] = (
            ("C", "blacklist_cards", "card_sn", {c.card_sn: c.status for c in cards}),
            ("P", "blacklist_persons", "psn_no", {p["psn_no"]: p.get("status", ACTIVE) for p in persons}),
        )
        for lst, table, key, want in lists:
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
                    pending.append((ListChange(lst, k, op, target), source))
        await commit_changes(conn, base, pending)
    return {"institutions": len(insts), "cards": len(cards), "persons": len(persons), "changes": len(pending)}
