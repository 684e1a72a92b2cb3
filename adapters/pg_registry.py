"""Registry and blacklist lists of record in PostgreSQL: world loading and the admin's changes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import asyncpg

CARD_REASONS = frozenset({"01", "02", "03", "04", "05", "06", "07"})
PERSON_REASONS = frozenset({"11", "12"})


def _d(text: object) -> date | None:
    return date.fromisoformat(str(text)) if text else None


async def load_world(pool: asyncpg.Pool, world: Mapping[str, Any], source: str = "world") -> dict[str, int]:
    """Upsert institutions, PSAMs, cards and both blacklists from a seed world (idempotent)."""
    insts = world.get("institutions", [])
    cards = world.get("cards", [])
    persons = world.get("persons", [])
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO institutions (fixmedins_code, fixmedins_name, kind, level, region)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (fixmedins_code) DO UPDATE SET"
            " fixmedins_name = EXCLUDED.fixmedins_name, kind = EXCLUDED.kind, level = EXCLUDED.level,"
            " region = EXCLUDED.region",
            [(i["fixmedins_code"], i["fixmedins_name"], i["kind"], int(i["level"]), i["region"]) for i in insts],
        )
        await conn.executemany(
            "INSERT INTO psams (psam_no, fixmedins_code, status) VALUES ($1, $2, $3)"
            " ON CONFLICT (psam_no) DO UPDATE SET fixmedins_code = EXCLUDED.fixmedins_code, status = EXCLUDED.status",
            [(p["psam_no"], i["fixmedins_code"], p.get("status", "ACTIVE")) for i in insts for p in i["psams"]],
        )
        await conn.executemany(
            "INSERT INTO cards (card_sn, card_no, psn_no, pin_mode, status, alg, kv, valid_from, valid_until)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (card_sn) DO UPDATE SET"
            " card_no = EXCLUDED.card_no, psn_no = EXCLUDED.psn_no, pin_mode = EXCLUDED.pin_mode,"
            " status = EXCLUDED.status, alg = EXCLUDED.alg, kv = EXCLUDED.kv, valid_from = EXCLUDED.valid_from,"
            " valid_until = EXCLUDED.valid_until",
            [
                (
                    c["card_sn"],
                    c["card_no"],
                    c["psn_no"],
                    c["pin_mode"],
                    c["status"],
                    c["alg"],
                    int(c["kv"]),
                    _d(c.get("valid_from")),
                    _d(c.get("valid_until")),
                )
                for c in cards
            ],
        )
        await conn.executemany(
            "INSERT INTO blacklist_cards (card_sn, reason, source) VALUES ($1, $2, $3)"
            " ON CONFLICT (card_sn) DO UPDATE SET reason = EXCLUDED.reason, source = EXCLUDED.source,"
            " updated_at = now()",
            [(c["card_sn"], c["status"], source) for c in cards if c["status"] in CARD_REASONS],
        )
        await conn.executemany(
            "INSERT INTO blacklist_persons (psn_no, reason, source) VALUES ($1, $2, $3)"
            " ON CONFLICT (psn_no) DO UPDATE SET reason = EXCLUDED.reason, source = EXCLUDED.source,"
            " updated_at = now()",
            [(p["psn_no"], p["status"], source) for p in persons if p.get("status") in PERSON_REASONS],
        )
    return {"institutions": len(insts), "cards": len(cards), "persons": len(persons)}


async def blacklist_rows(pool: asyncpg.Pool) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Both lists of record, for rebuilding Redis."""
    cards = await pool.fetch("SELECT card_sn, reason FROM blacklist_cards")
    persons = await pool.fetch("SELECT psn_no, reason FROM blacklist_persons")
    return [(r[0], r[1]) for r in cards], [(r[0], r[1]) for r in persons]


async def set_card_entry(pool: asyncpg.Pool, card_sn: str, reason: str | None, source: str) -> bool:
    """Put a card on the list of record (reason) or take it off (None); False if nothing changed.

    The registry's card status follows in the same transaction, so the two never disagree.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE cards SET status = $2 WHERE card_sn = $1", card_sn, reason or "ACTIVE")
        if reason is None:
            return await conn.fetchval("DELETE FROM blacklist_cards WHERE card_sn = $1 RETURNING true", card_sn) is True
        await conn.execute(
            "INSERT INTO blacklist_cards (card_sn, reason, source) VALUES ($1, $2, $3) ON CONFLICT (card_sn)"
            " DO UPDATE SET reason = EXCLUDED.reason, source = EXCLUDED.source, updated_at = now()",
            card_sn,
            reason,
            source,
        )
    return True


async def set_person_entry(pool: asyncpg.Pool, psn_no: str, reason: str | None, source: str) -> bool:
    """Put a person on the list of record (reason) or take them off (None); False if nothing changed."""
    if reason is None:
        return await pool.fetchval("DELETE FROM blacklist_persons WHERE psn_no = $1 RETURNING true", psn_no) is True
    await pool.execute(
        "INSERT INTO blacklist_persons (psn_no, reason, source) VALUES ($1, $2, $3) ON CONFLICT (psn_no)"
        " DO UPDATE SET reason = EXCLUDED.reason, source = EXCLUDED.source, updated_at = now()",
        psn_no,
        reason,
        source,
    )
    return True
