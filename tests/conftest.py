"""Shared fixtures: a real PostgreSQL database and Redis prefix per test session, the core simulator as a real
HTTP server, and the gateway app served on loopback. Terminals compute real MACs (loadtest.terminal)."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from coresim.app import start_core_sim
from gateway.app import create_app
from gateway.keys import SETTINGS
from gateway.settings import Settings
from loadtest.terminal import CALL_SERVICE, Built, SimCard, Terminal
from loadtest.world import generate, write_world

PG_ADMIN = os.environ.get("ONECARD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ONECARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TODAY = date.today()  # noqa: DTZ011 - card validity is a local calendar date, as the gateway sees it


@pytest.fixture(scope="session")
def world() -> dict[str, Any]:
    """A deterministic seed world shared by the session."""
    return generate(persons=1200, seed=20261127)


@pytest.fixture(scope="session")
async def pg_dsn() -> AsyncIterator[str]:
    """A fresh database for this test session, dropped at the end."""
    name = f"onecard_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    head = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{head}/{name}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
async def redis_prefix() -> AsyncIterator[str]:
    """A Redis key prefix for this session; its keys are deleted at the end."""
    prefix = f"onecard-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    r = Redis.from_url(REDIS_URL)
    keys = [k async for k in r.scan_iter(match=prefix + "*", count=1000)]
    for i in range(0, len(keys), 500):
        await r.delete(*keys[i : i + 500])
    await r.aclose()


@pytest.fixture(scope="session")
async def core_url(world: dict[str, Any]) -> AsyncIterator[str]:
    """The insurance-core simulator on a free loopback port."""
    runner, url = await start_core_sim(world=world)
    yield url
    await runner.cleanup()


@pytest.fixture(scope="session")
def world_file(world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world on disk, as `onecard serve --world` reads it."""
    return write_world(world, tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def settings(pg_dsn: str, redis_prefix: str, core_url: str, world_file: Path) -> Settings:
    """Gateway settings for the session (development keys, real services)."""
    return Settings(
        pg_dsn=pg_dsn,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        core_url=core_url,
        dev_mode=True,
        world_file=str(world_file),
        admin_token="test-admin-token",
        core_timeout_s=1.0,
        core_read_timeout_s=1.0,
        # The shared app's breaker never opens (drills take the core down); breaker tests build their own app.
        core_breaker_failures=1_000_000,
    )


@pytest.fixture(scope="session")
async def client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The gateway served on loopback."""
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


class Fleet:
    """Terminals (one per PSAM, so tseq keeps rising) and cards (one SimCard each, so ATC keeps rising)."""

    def __init__(self, world: dict[str, Any], client: TestClient[Any, Any]) -> None:
        self.world = world
        self.client = client
        self.terminals: dict[str, Terminal] = {}
        self.cards: dict[str, SimCard] = {}
        self.used: set[str] = set()
        self.msg_seqs: dict[str, itertools.count[int]] = {}
        self._own = itertools.count(1)
        self.persons = {p["psn_no"]: p for p in world["persons"]}

    async def call(self, built: Built, *, raw: bytes | None = None) -> tuple[int, dict[str, Any], Any]:
        """POST a request; returns (HTTP status, response JSON, headers)."""
        resp = await self.client.post(CALL_SERVICE, data=raw if raw is not None else orjson.dumps(built.body))
        body = await resp.read()
        return resp.status, orjson.loads(body), resp.headers

    async def terminal(
        self, kind: str = "hospital", index: int = 0, psam_index: int = 0, *, sign_in: bool = True
    ) -> Terminal:
        """A signed-in terminal on the psam_index-th active PSAM of the index-th institution of that kind."""
        insts = [i for i in self.world["institutions"] if i["kind"] == kind]
        inst = insts[index]
        psam = [p for p in inst["psams"] if p["status"] == "ACTIVE"][psam_index]
        t = self.terminals.get(psam["psam_no"])
        if t is None:
            seq = self.msg_seqs.setdefault(inst["fixmedins_code"], itertools.count(1))
            t = Terminal(inst["fixmedins_code"], inst["fixmedins_name"], psam["psam_no"], msg_seq=seq)
            self.terminals[psam["psam_no"]] = t
        if sign_in and t.sign_no is None:
            _status, resp, _ = await self.call(t.sign_in())
            assert resp["infcode"] == 0, resp
            t.sign_no = resp["output"]["signinoutb"]["sign_no"]
        return t

    async def new_terminal(self, kind: str = "hospital") -> Terminal:
        """A signed-in terminal of an institution registered just now for the caller, so that its totals
        (3201/3202, drills) are its own whatever the other tests settle."""
        n = next(self._own)
        code = ("H" if kind == "hospital" else "P") + f"330200{99800 + n:05d}"
        psam_no = f"330200{998000 + n:06d}"
        conn = await asyncpg.connect(self.client.app[SETTINGS].pg_dsn)
        try:
            await conn.execute(
                "INSERT INTO institutions (fixmedins_code, fixmedins_name, kind, level, region)"
                " VALUES ($1, $2, $3, $4, '330200')",
                code, f"演练机构{n}", kind, 3 if kind == "hospital" else 0,
            )  # fmt: skip
            await conn.execute("INSERT INTO psams (psam_no, fixmedins_code) VALUES ($1, $2)", psam_no, code)
        finally:
            await conn.close()
        t = Terminal(code, f"演练机构{n}", psam_no)
        self.terminals[psam_no] = t
        _status, resp, _ = await self.call(t.sign_in())
        assert resp["infcode"] == 0, resp
        t.sign_no = resp["output"]["signinoutb"]["sign_no"]
        return t

    def card(
        self,
        *,
        alg: str | None = None,
        pin_mode: str | None = None,
        status: str = "ACTIVE",
        insutype: str | None = None,
        person_status: str = "ACTIVE",
        min_balance: int = 0,
        expired: bool = False,
    ) -> tuple[SimCard, dict[str, Any]]:
        """An unused card matching the filters, with its person (each test gets its own)."""
        for c in self.world["cards"]:
            p = self.persons[c["psn_no"]]
            if c["card_sn"] in self.used:
                continue
            if (alg and c["alg"] != alg) or (pin_mode and c["pin_mode"] != pin_mode) or c["status"] != status:
                continue
            if (insutype and p["insutype"] != insutype) or p["status"] != person_status:
                continue
            if float(p["balance"]) * 100 < min_balance:
                continue
            is_expired = date.fromisoformat(c["valid_until"]) < TODAY
            if is_expired != expired:
                continue
            self.used.add(c["card_sn"])
            sim = self.cards.setdefault(c["card_sn"], SimCard.from_world(c))
            return sim, p
        raise LookupError("no unused card matches")


@pytest.fixture(scope="session")
def fleet(world: dict[str, Any], client: TestClient[Any, Any]) -> Fleet:
    """The session's terminals and cards."""
    return Fleet(world, client)


@pytest.fixture(scope="session")
def catalogue_codes(world: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Catalogue items by class."""
    out: dict[str, list[dict[str, Any]]] = {"A": [], "B": [], "C": []}
    for item in world["catalogue"]:
        out[item["class"]].append(item)
    return out
