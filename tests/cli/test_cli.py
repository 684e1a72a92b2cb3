"""The `onecard` command as an operator runs it: seed, migrate, serve (keys policy), core-sim, demo."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import PG_ADMIN, REDIS_URL
from tests.ports import free_port
from tests.procs import Served, own_stores, run, wait_http


class TestSeed:
    def test_seed_is_deterministic(self, tmp_path: Path):
        """Two runs with the same arguments write byte-identical worlds."""
        a = run("seed", "--persons", "50", "--seed", "3", "--out", str(tmp_path / "a"))
        b = run("seed", "--persons", "50", "--seed", "3", "--out", str(tmp_path / "b"))
        assert a.returncode == 0, a.stderr
        assert b.returncode == 0, b.stderr
        wa = (tmp_path / "a" / "world.json").read_bytes()
        assert wa == (tmp_path / "b" / "world.json").read_bytes()
        world = json.loads(wa)
        assert len(world["persons"]) == 50
        assert {"institutions", "persons", "cards", "catalogue"} <= world.keys()

    def test_seed_refuses_zero_persons(self, tmp_path: Path):
        """A bad argument is a clear error, not a traceback."""
        r = run("seed", "--persons", "0", "--out", str(tmp_path))
        assert r.returncode == 2
        assert "--persons" in r.stderr
        assert "Traceback" not in r.stderr


class TestMigrate:
    async def test_migrate_creates_database_and_is_idempotent(self):
        """`onecard migrate` creates the database, applies 0001, and a second run applies nothing."""
        name = f"onecard_cli_{uuid.uuid4().hex[:8]}"
        dsn = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
        try:
            first = run("migrate", env={"ONECARD_PG_DSN": dsn})
            assert first.returncode == 0, first.stderr
            assert "0001_core.sql" in first.stdout
            second = run("migrate", env={"ONECARD_PG_DSN": dsn})
            assert "nothing" in second.stdout
            conn = await asyncpg.connect(dsn)
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
            await conn.close()
        finally:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


class TestServe:
    def test_development_keys_refused_without_dev(self):
        """Development keys given as production keys stop the gateway at start-up with a clear message."""
        keys = json.dumps(
            [
                {"alg": "3DES", "kv": 1, "purpose": "PUR", "hex": "404142434445464748494A4B4C4D4E4F"},
                {"alg": "3DES", "kv": 1, "purpose": "TAC", "hex": "00112233445566778899AABBCCDDEEFF"},
            ]
        )
        r = run("serve", "--port", str(free_port()), env={"ONECARD_KEYS": keys}, timeout=60)
        assert r.returncode == 2
        assert "development keys" in r.stderr
        assert "404142" not in r.stderr  # never print key material

    def test_no_keys_without_dev(self):
        """Without keys and without --dev the gateway refuses to start."""
        env = {k: "" for k in ("ONECARD_KEYS", "ONECARD_KEYS_FILE")}
        r = run("serve", "--port", str(free_port()), env=env, timeout=60)
        assert r.returncode == 2
        assert "no master keys" in r.stderr

    def test_no_journal_data_key_without_dev(self):
        """Production master keys but no journal data key (and encryption not turned off): exit 2 naming both
        ways out (issue 11 item 9)."""
        keys = json.dumps(
            [{"alg": "SM4", "kv": 2, "purpose": p, "hex": h} for p, h in (("PUR", "11" * 16), ("TAC", "22" * 16))]
        )
        env = {"ONECARD_KEYS": keys, "ONECARD_JOURNAL_KEYS": "", "ONECARD_KEYS_FILE": ""}
        r = run("serve", "--port", str(free_port()), env=env, timeout=60)
        assert r.returncode == 2
        assert "no journal data key" in r.stderr
        assert "journal_encryption = false" in r.stderr

    @pytest.mark.slow
    async def test_serve_and_core_sim_processes(self, tmp_path: Path):
        """`onecard core-sim` and `onecard serve --dev --world` run as processes and become ready."""
        assert run("seed", "--persons", "30", "--seed", "5", "--out", str(tmp_path)).returncode == 0
        world = str(tmp_path / "world.json")
        async with own_stores() as (dsn, prefix):
            env = {"ONECARD_PG_DSN": dsn, "ONECARD_REDIS_URL": REDIS_URL, "ONECARD_REDIS_PREFIX": prefix}
            core = await Served.start(["--world", world], env, free_port(), command="core-sim")
            gw = await Served.start(["--dev", "--world", world, "--core-url", core.url], env, free_port())
            try:
                status, _ = await wait_http(core.url + "/healthz")
                assert status == 200
                body = await gw.ready(30)
                assert json.loads(body)["checks"] == {
                    "postgres": "ok",
                    "redis": "ok",
                    "blacklist": "ok",
                    "keys": "ok",
                    "journal_encryption": "ok",  # issue 11 item 9
                    "node": "ok",
                    "background": "ok",
                }
                _, metrics = await wait_http(gw.url + "/metrics")
                assert b"onecard_request_seconds" in metrics
            finally:
                await asyncio.gather(*(p.stop(signal.SIGINT, 15, strict=False) for p in (gw, core)))


@pytest.mark.slow
class TestDemo:
    def test_demo_on_embedded_servers(self, tmp_path: Path):
        """With no PostgreSQL or Redis configured or answering, the demo starts embedded ones; the scenario passes."""
        workdir = Path(os.environ.get("ONECARD_TEST_WORKDIR", Path(__file__).resolve().parents[2] / ".test-work"))
        workdir = workdir / f"demo-{uuid.uuid4().hex[:6]}"
        env = {"ONECARD_PG_DSN": "", "ONECARD_REDIS_URL": ""}
        try:
            r = run(
                "demo",
                "--once",
                "--embedded",
                "--workdir",
                str(workdir),
                "--port",
                "0",
                "--core-port",
                "0",
                "--persons",
                "300",
                env=env,
                timeout=240,
            )
            assert r.returncode == 0, r.stdout + r.stderr
            assert "PostgreSQL: embedded" in r.stdout
            assert "Redis:      embedded" in r.stdout
            assert "scenario went as expected" in r.stdout
            assert "CARD_BLACKLISTED" in r.stdout
            assert "MAC_INVALID" in r.stdout
            assert "(acct capped)" in r.stdout
            assert "visit: settle batch" in r.stdout  # issue 12: the outpatient visit by reference
            assert "stay: settle" in r.stdout  # issue 12: the inpatient stay
        finally:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)


class TestBlacklistImport:
    async def test_import_file_reports_each_problem_line(self, tmp_path: Path):
        """`onecard blacklist import FILE`: good lines apply, a bad one is reported with its reason (exit 1),
        a resend changes nothing (exit 0, duplicates)."""
        from adapters.pg_migrate import create_database, migrate

        name = f"onecard_cli_{uuid.uuid4().hex[:8]}"
        dsn = await create_database(PG_ADMIN, name)
        try:
            conn = await asyncpg.connect(dsn)
            await migrate(conn)
            card = "330281D15600000500000000000000AA"
            await conn.execute(
                "INSERT INTO cards (card_sn, card_no, psn_no, pin_mode, status, alg, kv)"
                " VALUES ($1, 'A00000001', 'P1', 'DEFAULT', 'ACTIVE', 'SM4', 1)",
                card,
            )
            f = tmp_path / "county.csv"
            f.write_text(
                "source,source_seq,event,card_sn,formal\n"
                f"330281,1,loss_reported,{card},true\n"
                f"330281,2,exploded,{card},\n"
                f"330281,3,loss_revoked,{card},\n"
            )
            env = {"ONECARD_PG_DSN": dsn}
            first = run("blacklist", "import", str(f), env=env)
            assert first.returncode == 1, first.stderr
            lines = [json.loads(x) for x in first.stdout.splitlines()]
            assert lines[0]["line"] == 3
            assert lines[0]["status"] == "rejected"
            assert "exploded" in lines[0]["reason"]
            assert lines[-1]["summary"]["accepted"] == 2
            again = run("blacklist", "import", str(f), env=env)
            summary = json.loads(again.stdout.splitlines()[-1])["summary"]
            assert summary["duplicate"] == 2
            versions = await conn.fetch("SELECT version, op, reason FROM blacklist_changes ORDER BY version")
            assert [(r["op"], r["reason"]) for r in versions] == [("A", "02"), ("D", None)]
            await conn.close()
        finally:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
