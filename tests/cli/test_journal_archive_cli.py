"""`onecard journal archive` (issue 11 item 9): archive-then-delete by the command, `journal verify` green after,
usage errors are exit 2 with one line."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from adapters.journal_sealing import JournalSealing
from adapters.pg_claims import PgJournal
from adapters.pg_journal_chain import seal_once
from adapters.pg_migrate import create_database, migrate
from adapters.pg_pool import Pg
from gateway.domain.journal import Claimed
from gateway.domain.sealed import dev_ring
from tests.cli.test_ops_cli import onecard
from tests.conftest import PG_ADMIN


@pytest.fixture(scope="module")
async def sealed_db() -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A migrated scratch database with four sealed, chained journal rows."""
    name = f"onecard_arch_{uuid.uuid4().hex[:10]}"
    dsn = await create_database(PG_ADMIN, name)
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    async with asyncpg.create_pool(dsn, min_size=1, max_size=4) as pool:
        store = PgJournal(Pg(pool, timeout_s=30.0), sealing=JournalSealing(dev_ring()))
        for n in range(4):
            res, _card = await store.claim_with_card(
                "H33020000018", f"A{n:029d}", "1101", "330200000001", None, hashlib.sha256(b"%d" % n).digest(),
                f'{{"n":{n}}}', None,
            )  # fmt: skip
            assert isinstance(res, Claimed)
            await store.complete(res.journal_id, b'{"infcode":0}', 200, None)
        await seal_once(pool)
        yield dsn, pool
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_archive_then_verify(sealed_db, tmp_path):
    """Exit 0 naming the rows and the checkpoint; the rows are gone; verify still exits 0; the file is kept."""
    dsn, pool = sealed_db
    out = tmp_path / "journal.jsonl"
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    rc, text, err = await onecard(dsn, "journal", "archive", "--before", tomorrow, "--out", str(out))
    assert rc == 0, (text, err)
    assert "4 rows (seq 1..4)" in text
    assert await pool.fetchval("SELECT count(*) FROM journal") == 0
    rc, text, err = await onecard(dsn, "journal", "verify")
    assert rc == 0, (text, err)
    rc, text, err = await onecard(dsn, "journal", "archive", "--before", tomorrow, "--out", str(out))
    assert rc == 2
    assert "never overwritten" in err
    assert "Traceback" not in err


async def test_archive_without_a_cutoff_is_a_usage_error(sealed_db, tmp_path):
    """No --before and no journal_retention_days: exit 2 saying what is needed."""
    dsn, _ = sealed_db
    rc, _text, err = await onecard(dsn, "journal", "archive", "--out", str(tmp_path / "x.jsonl"))
    assert rc == 2
    assert "--before DATE is needed" in err
