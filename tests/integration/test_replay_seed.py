"""Migration 0005 on a database of the previous version, whose replay state lived in Redis only: it is seeded
from the journal, so a replay of a request accepted before the upgrade is still refused after it."""

from __future__ import annotations

import uuid

import asyncpg
import orjson

from adapters.pg_migrate import create_database, migrate, migration_files
from tests.integration.conftest import PG_ADMIN

CARD = "330200D15600000500000000000000EF"


async def test_the_upgrade_seeds_replay_state_from_the_journal() -> None:
    name = f"onecard_seed_{uuid.uuid4().hex[:10]}"
    dsn = await create_database(PG_ADMIN, name)
    conn = await asyncpg.connect(dsn)
    try:
        for version, _name, sql in migration_files():
            if version < 5:  # the previous version's schema
                await conn.execute(sql)
        rows = [  # (msgid, tseq, atc, err_code)
            ("M1", 7, 40, None), ("M2", 8, 41, "CARD_BLACKLISTED"), ("M3", 9, 90, "REPLAY"),
            ("M4", 10, 95, "STALE_REQUEST"), ("M5", 11, None, None),
        ]  # fmt: skip
        for msgid, tseq, atc, err in rows:
            safe = {"psam_no": "330200000001", "tseq": tseq, **({"atc": atc} if atc is not None else {})}
            await conn.execute(
                "INSERT INTO journal (fixmedins_code, msgid, infno, psam_no, card_sn, content_hash, request, state,"
                " err_code) VALUES ('H33020000013', $1, '1101', '330200000001', $2, '\\x00', $3::jsonb, 'DONE', $4)",
                msgid, CARD if atc is not None else None, orjson.dumps({"dev_safe_info": safe}).decode(), err,
            )  # fmt: skip
        await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                           " applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        for version, fname, _sql in migration_files():
            if version < 5:
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, fname)
        assert (await migrate(conn))[0] == "0005_durable_replay.sql"
        pairs = {r["tseq"] for r in await conn.fetch("SELECT tseq FROM psam_tseq WHERE psam_no = '330200000001'")}
        assert pairs == {7, 8, 9, 10, 11}  # every journaled pair counts as used
        # the highest atc of a request not refused as replayed or stale (those never raised it)
        assert await conn.fetchval("SELECT atc FROM card_atc WHERE card_sn = $1", CARD) == 41
    finally:
        await conn.close()
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
