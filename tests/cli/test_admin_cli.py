"""`onecard admin user ...` and `onecard admin audit verify` as an operator runs them (real processes, a
database of their own): tokens printed once, bad input refused with exit 2 and one line, every change audited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.procs import own_stores, run


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[dict[str, str]]:
    """The environment of a gateway whose database does not exist yet."""
    async with own_stores() as (dsn, _):
        yield {"ONECARD_PG_DSN": dsn}


class TestUsers:
    async def test_add_list_rotate_revoke_and_verify(self, env: dict[str, str]):
        """add prints a token once (only its hash is stored); list shows no token; rotate prints another;
        revoke works once; each change is a row of an intact audit trail."""
        r = run("admin", "user", "add", "carol", "--role", "feed", "--region", "330200", env=env)
        assert r.returncode == 0, r.stderr
        token = r.stdout.strip()
        assert len(token) >= 43
        assert "shown once" in r.stderr
        r = run("admin", "user", "list", env=env)
        assert r.returncode == 0
        assert "carol" in r.stdout
        assert "feed" in r.stdout
        assert token not in r.stdout
        r = run("admin", "user", "rotate", "carol", env=env)
        assert r.returncode == 0
        assert r.stdout.strip() not in ("", token)
        assert run("admin", "user", "revoke", "carol", env=env).returncode == 0
        r = run("admin", "user", "revoke", "carol", env=env)
        assert r.returncode == 1
        assert "no live operator" in r.stderr
        conn = await asyncpg.connect(env["ONECARD_PG_DSN"])
        try:
            stored = await conn.fetchval("SELECT token_sha256 FROM operators WHERE name = 'carol'")
            paths = [row["path"] for row in await conn.fetch("SELECT path FROM admin_audit ORDER BY seq")]
        finally:
            await conn.close()
        assert len(stored) == 32
        assert paths == ["user add carol --role feed --region 330200", "user rotate carol", "user revoke carol"]
        r = run("admin", "audit", "verify", env=env)
        assert r.returncode == 0, r.stderr
        assert "audit trail OK: 3 rows" in r.stdout, r.stdout

    @pytest.mark.parametrize(
        ("args", "says"),
        [
            (["dave", "--role", "feed"], "region"),
            (["dave", "--role", "monitor", "--region", "330200"], "only a feed"),
            (["Dave!", "--role", "monitor"], "name"),
            (["env-operator", "--role", "operator"], "reserved"),
            (["dave", "--role", "root"], "invalid choice"),
        ],
    )
    def test_bad_input(self, env: dict[str, str], args: list[str], says: str):
        """A bad name, role or region: exit 2, one clear line, no traceback, nothing added."""
        r = run("admin", "user", "add", *args, env=env)
        assert r.returncode == 2, r.stderr
        assert says in r.stderr
        assert "Traceback" not in r.stderr
        assert "dave" not in run("admin", "user", "list", env=env).stdout

    def test_name_taken(self, env: dict[str, str]):
        """Adding a name twice: exit 2 naming it."""
        assert run("admin", "user", "add", "erin", "--role", "auditor", env=env).returncode == 0
        r = run("admin", "user", "add", "erin", "--role", "auditor", env=env)
        assert r.returncode == 2
        assert "exists" in r.stderr
        assert "Traceback" not in r.stderr

    async def test_verify_broken_exits_1(self, env: dict[str, str]):
        """An altered audit row: verify exits 1 naming its seq."""
        assert run("admin", "user", "add", "frank", "--role", "monitor", env=env).returncode == 0
        conn = await asyncpg.connect(env["ONECARD_PG_DSN"])
        try:
            await conn.execute("UPDATE admin_audit SET who = 'someone-else' WHERE seq = 1")
        finally:
            await conn.close()
        r = run("admin", "audit", "verify", env=env)
        assert r.returncode == 1, r.stderr
        assert "BROKEN at seq 1" in r.stdout, r.stdout
