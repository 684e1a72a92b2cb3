"""Operator commands on a scratch database: `onecard journal verify` (exit 0 intact, 1 naming the first broken
row) and `onecard reconcile` without a core (journal-only totals; bad arguments are exit 2, not tracebacks)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from adapters.pg_claims import PgJournal
from adapters.pg_journal_chain import seal_once
from adapters.pg_migrate import create_database, migrate
from adapters.pg_pool import Pg
from gateway.domain.journal import Claimed
from tests.conftest import PG_ADMIN
from tests.procs import ONECARD


@pytest.fixture(scope="module")
async def scratch() -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A migrated scratch database with a few sealed journal rows; dropped at the end."""
    name = f"onecard_ops_{uuid.uuid4().hex[:10]}"
    dsn = await create_database(PG_ADMIN, name)
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    async with asyncpg.create_pool(dsn, min_size=1, max_size=4) as pool:
        store = PgJournal(Pg(pool, timeout_s=30.0))
        for n in range(5):
            res, _card = await store.claim_with_card(
                "H33020000018", f"M{n:029d}", "1101", "330200000001", None, hashlib.sha256(b"%d" % n).digest(),
                f'{{"n": {n}}}', None,
            )  # fmt: skip
            assert isinstance(res, Claimed)
            await store.complete(res.journal_id, b'{"infcode":0}', 200, None)
        await seal_once(pool)
        yield dsn, pool
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def onecard(dsn: str, *args: str) -> tuple[int, str, str]:
    """Run `onecard ...` against `dsn`."""
    proc = await asyncio.create_subprocess_exec(
        *ONECARD, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ONECARD_PG_DSN": dsn, "ONECARD_TIMEZONE": "UTC"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_journal_verify_ok_then_broken(scratch):
    """Intact: exit 0 with the row count. A response byte changed: exit 1 naming that row."""
    dsn, pool = scratch
    rc, out, err = await onecard(dsn, "journal", "verify")
    assert rc == 0, (out, err)
    assert "OK" in out
    assert "5 rows" in out
    today = datetime.now(UTC).date().isoformat()  # the subprocess verifies days in UTC
    rc, out, _ = await onecard(dsn, "journal", "verify", "--day", today)
    assert rc == 0, out
    victim = await pool.fetchval("SELECT id FROM journal WHERE chain_seq = 3")
    await pool.execute("UPDATE journal SET response = $2 WHERE id = $1", victim, b'{"infcode":-1}')
    rc, out, err = await onecard(dsn, "journal", "verify")
    assert rc == 1, (out, err)
    assert f"BROKEN (whole chain) at journal id {victim}" in out
    assert "Traceback" not in err


async def test_journal_verify_bad_day_is_a_usage_error(scratch):
    """A malformed --day is argparse's exit 2 with a message."""
    dsn, _ = scratch
    rc, _, err = await onecard(dsn, "journal", "verify", "--day", "2026-13-01")
    assert rc == 2
    assert "not a date" in err


async def test_reconcile_journal_only(scratch):
    """No settlements and no core: zero totals, balanced, exit 0; --to before --from is exit 2."""
    dsn, _ = scratch
    rc, out, err = await onecard(
        dsn, "reconcile", "--institution", "H33020000018", "--from", "2026-01-01", "--to", "2026-01-31"
    )
    assert rc == 0, (out, err)
    assert "balanced" in out
    assert "no --core-url" in out
    rc, _, err = await onecard(
        dsn, "reconcile", "--institution", "H33020000018", "--from", "2026-02-01", "--to", "2026-01-31"
    )
    assert rc == 2
    assert "--to" in err
