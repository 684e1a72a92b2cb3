"""The admin listener under `onecard serve --workers 2 --admin-port P`: every worker binds it (SO_REUSEPORT), the
terminal port answers admin paths 404, and /metrics on the admin port is every worker's sum, behind a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_serve_workers import Lane, served_by
from tests.conftest import REDIS_URL
from tests.ports import free_port
from tests.procs import Served, own_stores, run, until

TOKEN = "workers-admin-token"


async def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        return r.status, await r.read()


class TestAdminListenerWithWorkers:
    async def test_two_workers_share_the_admin_port(
        self, world_file: Path, core_url: str, tmp_path: Path, world: dict[str, Any]
    ):
        """Both workers start (both bound the admin port), terminal /metrics and /admin are 404, the admin
        /metrics needs the token and counts every worker's requests."""
        admin_port = free_port()
        async with own_stores() as (dsn, prefix):
            env = {
                "ONECARD_PG_DSN": dsn, "ONECARD_REDIS_URL": REDIS_URL, "ONECARD_REDIS_PREFIX": prefix,
                "ONECARD_ADMIN_TOKEN": TOKEN, "ONECARD_ADMIN_PORT": str(admin_port),
            }  # fmt: skip
            args = ["--dev", "--workers", "2", "--world", str(world_file), "--core-url", core_url]
            s = await Served.start(args, env, free_port(), tmp_path)
            try:
                await s.ready()
                await until(lambda: len(s.workers()) == 2, "two worker processes")
                admin = f"http://127.0.0.1:{admin_port}"
                status, body = await _get(s.url + "/metrics", TOKEN)
                assert status == 404
                assert orjson.loads(body)["err_code"] == "NOT_FOUND"
                assert (await _get(s.url + "/admin/audit", TOKEN))[0] == 404
                assert (await _get(admin + "/metrics"))[0] == 401
                lane = Lane(world, s.url)
                await served_by(s, lane, s.workers())
                for _ in range(4):  # each scrape lands on either worker
                    status, text = await _get(admin + "/metrics", TOKEN)
                    assert status == 200
                    total = sum(
                        x.value
                        for f in text_string_to_metric_families(text.decode())
                        for x in f.samples
                        if x.name == "onecard_requests_total"
                    )
                    assert total == lane.sent
            finally:
                await s.stop()

    def test_admin_port_equal_to_terminal_port_refused(self):
        """--admin-port equal to --port is a configuration error (exit 2): SO_REUSEPORT would share it."""
        port = free_port()
        r = run("serve", "--dev", "--workers", "2", "--port", str(port), "--admin-port", str(port), timeout=30)
        assert r.returncode == 2, r.stderr
        assert "--admin-port" in r.stderr
        assert "Traceback" not in r.stderr
