"""Operator commands facing what goes wrong in production: one line on stderr naming the dependency and what to
check, never a traceback, and the documented exit code (gateway/bootstrap/exits.py): 2 usage or configuration, 3 a
dependency unreachable (refused, or a server that accepts and never answers), 1 a finding."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN, REDIS_URL
from tests.ports import free_port
from tests.procs import Served, own_stores, run

pytestmark = pytest.mark.slow


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener is never accepted from: connections open (the kernel completes them), then
    nothing is ever said, as a frozen server or a partition that drops packets looks to a client."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


def refused_dsn() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/onecard"


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("onecard: ")]
    assert len(lines) == 1, stderr
    return lines[0]


PG_COMMANDS = [
    pytest.param(["migrate"], id="migrate"),
    pytest.param(["journal", "verify"], id="journal-verify"),
    pytest.param(
        ["reconcile", "--institution", "H33020000013", "--from", "2026-11-01", "--to", "2026-11-30"], id="reconcile"
    ),
]


class TestPostgresUnreachable:
    @pytest.mark.parametrize("args", PG_COMMANDS)
    def test_refused(self, args):
        r = run(*args, env={"ONECARD_PG_DSN": refused_dsn()})
        assert r.returncode == 3, r.stderr
        line = one_line(r.stderr)
        assert "PostgreSQL at 127.0.0.1:" in line
        assert "refused the connection" in line
        assert "ONECARD_PG_DSN" in line

    @pytest.mark.parametrize("args", PG_COMMANDS)
    def test_stalled(self, args, silent_port):
        """A server that never answers: exit 3 after the connect deadline, not a hang."""
        env = {
            "ONECARD_PG_DSN": f"postgresql://postgres@127.0.0.1:{silent_port}/onecard",
            "ONECARD_PG_CONNECT_TIMEOUT_S": "1",
        }
        t0 = time.monotonic()
        r = run(*args, env=env, timeout=60)
        assert r.returncode == 3, r.stderr
        assert "did not answer in time" in one_line(r.stderr)
        assert time.monotonic() - t0 < 30

    def test_import_refused(self, tmp_path: Path):
        feed = tmp_path / "feed.jsonl"
        feed.write_text('{"source": "330200", "source_seq": 1, "event": "damaged", "card_sn": "x"}\n')
        r = run("blacklist", "import", str(feed), env={"ONECARD_PG_DSN": refused_dsn()})
        assert r.returncode == 3, r.stderr
        assert "PostgreSQL at" in one_line(r.stderr)

    def test_a_database_that_does_not_exist_is_configuration(self):
        head = PG_ADMIN.rsplit("/", 1)[0]
        r = run("journal", "verify", env={"ONECARD_PG_DSN": f"{head}/onecard_no_such_db_here"})
        assert r.returncode == 2, r.stderr
        assert "the database does not exist" in one_line(r.stderr)


class TestServe:
    def test_postgres_refused(self):
        r = run("serve", "--dev", "--port", str(free_port()), env={"ONECARD_PG_DSN": refused_dsn()}, timeout=60)
        assert r.returncode == 3, r.stderr
        assert "PostgreSQL at 127.0.0.1:" in one_line(r.stderr)

    def test_redis_refused(self):
        env = {"ONECARD_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "ONECARD_PG_DSN": refused_dsn()}
        r = run("serve", "--dev", "--port", str(free_port()), env=env, timeout=60)
        assert r.returncode == 3, r.stderr
        line = one_line(r.stderr)
        assert "Redis at 127.0.0.1:" in line
        assert "ONECARD_REDIS_URL" in line

    def test_redis_stalled(self, silent_port):
        env = {"ONECARD_REDIS_URL": f"redis://127.0.0.1:{silent_port}/0", "ONECARD_PG_DSN": refused_dsn()}
        r = run("serve", "--dev", "--port", str(free_port()), env=env, timeout=60)
        assert r.returncode == 3, r.stderr
        assert "Redis at 127.0.0.1:" in one_line(r.stderr)

    def test_missing_world(self, tmp_path: Path):
        r = run("serve", "--dev", "--world", str(tmp_path / "nope.json"), "--port", str(free_port()))
        assert r.returncode == 2, r.stderr
        assert "nope.json" in one_line(r.stderr)

    def test_bad_settings(self):
        r = run("serve", "--dev", env={"ONECARD_PG_TIMEOUT_S": "-1", "ONECARD_NODE_ID": "10000"})
        assert r.returncode == 2, r.stderr
        line = one_line(r.stderr)
        assert "pg_timeout_s: must be positive" in line
        assert "node_id: must be in 0..9998" in line


class TestOtherCommands:
    def test_core_sim_missing_world(self, tmp_path: Path):
        r = run("core-sim", "--world", str(tmp_path / "none.json"), "--port", str(free_port()))
        assert r.returncode == 2, r.stderr
        assert "none.json" in one_line(r.stderr)

    def test_core_sim_port_taken(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            r = run("core-sim", "--port", str(port), timeout=60)
        assert r.returncode == 2, r.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in one_line(r.stderr)

    def test_import_missing_file(self, tmp_path: Path):
        r = run("blacklist", "import", str(tmp_path / "feed.csv"), env={"ONECARD_PG_DSN": refused_dsn()})
        assert r.returncode == 2, r.stderr  # the file first: a usage error, whatever the database
        assert "cannot read" in one_line(r.stderr)

    def test_missing_settings_file(self, tmp_path: Path):
        r = run("migrate", "--config", str(tmp_path / "none.toml"))
        assert r.returncode == 2, r.stderr
        assert "none.toml" in one_line(r.stderr)

    def test_reconcile_core_unreachable(self):
        args = ["reconcile", "--institution", "H33020000013", "--from", "2026-11-01", "--to", "2026-11-01"]
        r = run(*args, "--core-url", f"http://127.0.0.1:{free_port()}", env={"ONECARD_PG_DSN": refused_dsn()})
        assert r.returncode == 3, r.stderr
        assert "the insurance core at http://127.0.0.1:" in one_line(r.stderr)


class TestNodeIds:
    async def test_a_second_process_claiming_a_held_node_id_is_refused(self, tmp_path: Path):
        """Two gateways given one ONECARD_NODE_ID on one database: the second exits 2 naming the holder, the
        first serves on; leaving it unset, a second process leases another id and both serve."""
        async with own_stores() as (dsn, prefix):
            env = {"ONECARD_PG_DSN": dsn, "ONECARD_REDIS_URL": REDIS_URL, "ONECARD_REDIS_PREFIX": prefix}
            first = await Served.start(["--dev"], {**env, "ONECARD_NODE_ID": "5"}, free_port(), tmp_path)
            try:
                body = json.loads(await first.ready())
                assert body["node_id"] == 5
                second = await asyncio.to_thread(
                    run, "serve", "--dev", "--port", str(free_port()), env={**env, "ONECARD_NODE_ID": "5"}, timeout=60
                )
                assert second.returncode == 2, second.stderr
                line = one_line(second.stderr)
                assert "node id 5 is held by a live gateway process" in line
                assert f"pid {first.proc.pid}" in line
                other = await Served.start(["--dev"], env, free_port(), tmp_path)
                try:
                    assert json.loads(await other.ready())["node_id"] == 9998
                finally:
                    await other.stop()
            finally:
                await first.stop()
