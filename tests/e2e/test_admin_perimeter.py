"""The admin perimeter (issue 11 items 4-6) on a real PostgreSQL: the separate admin listener, every admin
route walked with every kind of identity (401 / 403 / allowed), revocation and rotation, feed regions, the
change log's actor, and the hash-chained audit trail."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_admin_app, create_app
from gateway.bootstrap.commands import operator_accounts, verify_audit
from gateway.domain.operators import Role
from gateway.http.access import roles_of
from gateway.keys import STATUS
from gateway.settings import Settings
from tests.e2e.helpers import ADMIN
from tests.procs import own_stores

FEED_TOKEN = "feed-token-330200"
CARD = "330200D156000005" + "00000000000000A1"
PARAMS = {"{card_sn}": CARD, "{psn_no}": "P0001"}


@dataclasses.dataclass
class Perimeter:
    """The gateway with an admin listener, its database, and tokens of every kind."""

    terminal: TestClient[Any, Any]
    admin_url: str
    settings: Settings
    dsn: str
    tokens: dict[str, str | None]  # identity -> Authorization header value (None: no header)
    roles: dict[str, Role | None]  # identity -> its role (None: nobody)

    async def call(
        self, method: str, path: str, who: str, body: bytes = b"{}", *, extra: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        token = self.tokens[who]
        headers = {"Authorization": token} if token is not None else {}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.admin_url + path, data=body, headers={**headers, **(extra or {})}) as r,
        ):
            raw = await r.read()
        try:
            return r.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return r.status, raw


@pytest.fixture(scope="module")
async def perimeter(settings: Settings) -> AsyncIterator[Perimeter]:
    """A gateway of its own (own database, no world) with admin_port 0 (any free port), no token cache, the
    session's env operator token and one env feed token; named operators of every role made by the commands."""
    async with own_stores() as (dsn, prefix):
        s = dataclasses.replace(
            settings, pg_dsn=dsn, redis_prefix=prefix, world_file=None, admin_port=0, operator_cache_s=0,
            feed_tokens=f"330200={FEED_TOKEN}",
        )  # fmt: skip
        async with TestClient(TestServer(create_app(s))) as terminal:
            host_port = terminal.app[STATUS]["admin_listener"][0]
            tokens: dict[str, str | None] = {
                "nobody": None, "unknown": "Bearer " + "x" * 43, "malformed": "Basic b3A6b3A=",
                "env-operator": ADMIN["Authorization"], "env-feed-330200": f"Bearer {FEED_TOKEN}",
            }  # fmt: skip
            roles: dict[str, Role | None] = {k: None for k in ("nobody", "unknown", "malformed")}
            roles |= {"env-operator": Role.OPERATOR, "env-feed-330200": Role.FEED}
            async with operator_accounts(s) as (accounts, _):
                for name, role, region in (
                    ("op", Role.OPERATOR, None), ("feeder", Role.FEED, "330200"), ("aud", Role.AUDITOR, None),
                    ("mon", Role.MONITOR, None), ("gone", Role.OPERATOR, None), ("turned", Role.OPERATOR, None),
                ):  # fmt: skip
                    tokens[name] = "Bearer " + await accounts.add(name, role, region)
                    roles[name] = role
                assert await accounts.revoke("gone")
                assert await accounts.rotate("turned") is not None  # the old token above is rotated away
                roles["gone"] = roles["turned"] = None
            yield Perimeter(terminal, f"http://{host_port}", s, dsn, tokens, roles)


def admin_routes(s: Settings) -> list[tuple[str, str, frozenset[Role]]]:
    """Every route of the admin listener: (method, concrete path, declared roles)."""
    out = []
    for route in create_admin_app(s).router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        for k, v in PARAMS.items():
            path = path.replace(k, v)
        roles = roles_of(route.handler)
        assert roles, f"{route.method} {path} declares no role"
        out.append((route.method, path, roles))
    return out


class TestListeners:
    async def test_terminal_port_answers_admin_paths_404(self, perimeter: Perimeter):
        """With an admin port, /admin/* and /metrics on the terminal port are 404 in the JSON error shape, even
        with a good token; terminal routes stay."""
        t = perimeter.terminal
        for method, path in (("POST", "/admin/blacklist/cards"), ("GET", "/admin/audit"), ("GET", "/metrics"),
                             ("POST", "/admin/blacklist/import?format=csv")):  # fmt: skip
            r = await t.request(method, path, data=b"{}", headers=ADMIN)
            assert r.status == 404, path
            assert r.content_type == "application/json"
            assert (await r.json())["err_code"] == "NOT_FOUND"
        assert (await t.get("/healthz")).status == 200

    async def test_admin_port_serves_only_admin_paths(self, perimeter: Perimeter):
        """The admin listener answers 404 (JSON) for terminal and health paths; /metrics needs a token there."""
        for method, path in (("POST", "/fsi/api/rsfComIfsService/callService"), ("GET", "/healthz")):
            status, body = await perimeter.call(method, path, "env-operator")
            assert (status, body["err_code"]) == (404, "NOT_FOUND")
        assert (await perimeter.call("GET", "/metrics", "nobody"))[0] == 401
        status, text = await perimeter.call("GET", "/metrics", "mon")
        assert status == 200
        assert b"onecard_requests_total" in text


class TestRoles:
    async def test_every_route_with_every_identity(self, perimeter: Perimeter):
        """Each admin route with each identity: 401 without a live token (none, unknown, malformed, revoked,
        rotated away), 403 for a role the route does not allow (monitor on a write among them), otherwise
        handled (the empty body may be refused as input, never as an identity)."""
        routes = admin_routes(perimeter.settings)
        assert {p for _, p, _ in routes} >= {"/admin/blacklist/cards", "/admin/audit", "/metrics"}
        for method, path, allowed in routes:
            for who, role in perimeter.roles.items():
                status, body = await perimeter.call(method, path, who)
                want = 401 if role is None else (403 if role not in allowed else None)
                if want is None:
                    assert status not in (401, 403), (method, path, who, status, body)
                    assert status < 500, (method, path, who, status, body)
                else:
                    assert status == want, (method, path, who, status, body)
                    if method != "HEAD":
                        assert body["err_code"] == ("UNAUTHORIZED" if want == 401 else "FORBIDDEN")

    async def test_revoke_and_rotate_take_effect_at_once(self, perimeter: Perimeter):
        """A revoked token is 401 on the next request; after a rotation the old token is 401, the new one works."""
        async with operator_accounts(perimeter.settings) as (accounts, _):
            token = await accounts.add("eve", Role.MONITOR, None)
            perimeter.tokens["eve"] = f"Bearer {token}"
            assert (await perimeter.call("GET", "/metrics", "eve"))[0] == 200
            new = await accounts.rotate("eve")
            assert new is not None
            assert new != token
            assert (await perimeter.call("GET", "/metrics", "eve"))[0] == 401
            perimeter.tokens["eve"] = f"Bearer {new}"
            assert (await perimeter.call("GET", "/metrics", "eve"))[0] == 200
            assert await accounts.revoke("eve")
            assert (await perimeter.call("GET", "/metrics", "eve"))[0] == 401
            assert not await accounts.revoke("eve")  # already revoked
            with pytest.raises(ValueError, match="exists"):
                await accounts.add("eve", Role.MONITOR, None)  # a revoked name is not reused

    @pytest.mark.parametrize("who", ["feeder", "env-feed-330200"])
    async def test_feed_of_another_region(self, perimeter: Perimeter, who: str):
        """A feed identity sends for its own region only: another region's event is rejected (naming the
        region), an import for another region is 403; its own region's event is accepted."""
        event = {"event": "loss_reported", "source": "330281", "source_seq": 1, "card_sn": CARD}
        status, body = await perimeter.call("POST", "/admin/blacklist/events", who, orjson.dumps(event))
        assert status == 200
        assert body["rejected"] == 1
        assert "330200 only" in body["results"][0]["reason"]
        status, body = await perimeter.call("POST", "/admin/blacklist/import?format=jsonl&source=330281", who, b"")
        assert (status, body["err_code"]) == (403, "FORBIDDEN")


class TestChangeLogActor:
    async def test_actor_is_the_authenticated_identity(self, perimeter: Perimeter):
        """The change log names who made each change (named operator, env operator, feed), not the body's
        claimed `source`."""
        card = {"card_sn": CARD, "reason": "01", "source": "330281"}
        assert (await perimeter.call("POST", "/admin/blacklist/cards", "op", orjson.dumps(card)))[0] == 200
        assert (await perimeter.call("DELETE", f"/admin/blacklist/cards/{CARD}", "env-operator"))[0] == 200
        event = {"event": "person_suspended", "source": "330200", "source_seq": 7, "psn_no": "P7777", "reason": "11"}
        status, body = await perimeter.call("POST", "/admin/blacklist/events", "feeder", orjson.dumps(event))
        assert status == 200, body
        assert body["accepted"] == 1, body
        conn = await asyncpg.connect(perimeter.dsn)
        try:
            rows = await conn.fetch("SELECT key, op, source, actor FROM blacklist_changes ORDER BY version")
        finally:
            await conn.close()
        got = [(r["key"], r["op"], r["source"], r["actor"]) for r in rows]
        assert (CARD, "A", "330281", "op") in got
        assert (CARD, "D", "operator", "env-operator") in got
        assert ("P7777", "A", "330200", "feeder") in got


class TestAuditTrail:
    async def test_requests_recorded_newest_first(self, perimeter: Perimeter):
        """Each admin request is in the trail before its answer: who, role, address, method, masked path, the
        body's SHA-256, the status; refusals too (anonymous). Pages go newest first."""
        body = orjson.dumps({"psn_no": "P4242", "reason": "11", "source": "330200"})
        assert (await perimeter.call("POST", "/admin/blacklist/persons", "op", body))[0] == 200
        assert (await perimeter.call("DELETE", f"/admin/blacklist/cards/{CARD}", "unknown"))[0] == 401
        status, page = await perimeter.call("GET", "/admin/audit?limit=2", "aud")
        assert status == 200
        refused, done = page["entries"]
        assert refused["seq"] == done["seq"] + 1
        assert (refused["who"], refused["role"], refused["status"], refused["method"]) == ("-", None, 401, "DELETE")
        assert CARD not in refused["path"]
        assert refused["path"].startswith("/admin/blacklist/cards/330200")
        assert (done["who"], done["role"], done["status"], done["address"]) == ("op", "operator", 200, "127.0.0.1")
        assert done["body_sha256"] == hashlib.sha256(body).hexdigest()
        status, older = await perimeter.call("GET", f"/admin/audit?limit=2&before={page['next_before']}", "aud")
        assert status == 200
        assert older["entries"][0]["seq"] == done["seq"] - 1
        status, latest = await perimeter.call("GET", "/admin/audit?limit=1", "aud")
        assert latest["entries"][0]["path"] == "/admin/audit?limit=2&before=" + str(page["next_before"])

    @pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x", "before=-1", "before=0"])
    async def test_bad_page_query(self, perimeter: Perimeter, query: str):
        """A bad page query is 400 naming the parameter."""
        status, body = await perimeter.call("GET", f"/admin/audit?{query}", "aud")
        assert status == 400
        assert query.split("=")[0] in body["err_msg"]

    async def test_scrapes_not_recorded_refusals_are(self, perimeter: Perimeter):
        """A good /metrics scrape is not recorded (it would flood the trail); a refused one is."""
        _, before = await perimeter.call("GET", "/admin/audit?limit=1", "aud")
        assert (await perimeter.call("GET", "/metrics", "mon"))[0] == 200
        assert (await perimeter.call("GET", "/metrics", "op"))[0] == 200
        _, after = await perimeter.call("GET", "/admin/audit?limit=1", "aud")
        assert after["entries"][0]["seq"] == before["entries"][0]["seq"] + 1  # only the audit read itself
        assert (await perimeter.call("GET", "/metrics", "feeder"))[0] == 403
        _, last = await perimeter.call("GET", "/admin/audit?limit=2", "aud")
        assert (last["entries"][0]["path"], last["entries"][0]["status"]) == ("/metrics", 403)

    async def test_verify_detects_tampering(self, perimeter: Perimeter):
        """`verify` is intact, then names the row whose content was altered, and a head beyond deleted rows."""
        assert (await verify_audit(perimeter.settings)).ok
        conn = await asyncpg.connect(perimeter.dsn)
        try:
            status = await conn.fetchval("SELECT status FROM admin_audit WHERE seq = 2")
            await conn.execute("UPDATE admin_audit SET status = $1 WHERE seq = 2", status + 1)
            res = await verify_audit(perimeter.settings)
            assert (res.ok, res.first_broken_seq) == (False, 2)
            assert "altered" in (res.reason or "")
            await conn.execute("UPDATE admin_audit SET status = $1 WHERE seq = 2", status)
            assert (await verify_audit(perimeter.settings)).ok
            last = await conn.fetchrow("DELETE FROM admin_audit WHERE seq = (SELECT max(seq) FROM admin_audit) "
                                       "RETURNING *")  # fmt: skip
            assert last is not None
            res = await verify_audit(perimeter.settings)
            assert not res.ok
            assert "head" in (res.reason or "")
            await conn.execute(
                "INSERT INTO admin_audit SELECT * FROM unnest($1::admin_audit[])", [tuple(last.values())]
            )
            assert (await verify_audit(perimeter.settings)).ok
        finally:
            await conn.close()

    async def test_tokens_never_logged(self, perimeter: Perimeter, caplog: pytest.LogCaptureFixture):
        """Neither a good, a wrong, nor a revoked token reaches a log line."""
        caplog.set_level(logging.DEBUG)
        for who in ("op", "unknown", "gone"):
            await perimeter.call("POST", "/admin/blacklist/cards", who, b"not json")
        for token in perimeter.tokens.values():
            if token is not None:
                assert token.split(" ", 1)[1] not in caplog.text
