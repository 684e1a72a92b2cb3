"""Blacklist distribution to terminals (SPEC §8.2): delta and snapshot, versions, ETags, authentication."""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson

from tests.conftest import Fleet
from tests.e2e.helpers import ADMIN, pg_rows, pick_card

_seq = itertools.count(int(time.time() * 1000) + 7_000_000)


async def auth(fleet: Fleet) -> dict[str, str]:
    """Headers of a signed-in PSAM."""
    t = await fleet.terminal("pharmacy", 0)
    assert t.sign_no is not None
    return {"X-Psam-No": t.psam_no, "X-Sign-No": t.sign_no}


async def snapshot(fleet: Fleet, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    r = await fleet.client.get("/blacklist/snapshot", headers=headers)
    assert r.status == 200, await r.text()
    body = orjson.loads(await r.read())
    assert body["full"] is True
    return body["version"], {e["card_sn"]: e["reason"] for e in body["entries"]}


async def events(fleet: Fleet, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for e in items:
        e.setdefault("source", "330200")
        e["source_seq"] = next(_seq)
    r = await fleet.client.post("/admin/blacklist/events", data=orjson.dumps(items), headers=ADMIN)
    assert r.status == 200, await r.text()
    results: list[dict[str, Any]] = (await r.json())["results"]
    return results


class TestDeltaAndSnapshot:
    async def test_delta_applied_to_snapshot_gives_snapshot(self, fleet: Fleet):
        """Across many versions, old snapshot + delta == new snapshot, and versions only grow."""
        h = await auth(fleet)
        v0, before = await snapshot(fleet, h)
        active = [fleet.card()[0].card_sn for _ in range(30)]
        listed = [pick_card(fleet, lambda c, p: c["status"] in ("01", "02"))[0].card_sn for _ in range(3)]
        batch: list[dict[str, Any]] = [{"event": "loss_reported", "card_sn": sn} for sn in active[:20]]
        batch += [{"event": "loss_reported", "card_sn": sn, "formal": True} for sn in active[:8]]  # 01 → 02: 'R'
        batch += [{"event": "loss_revoked", "card_sn": sn} for sn in active[:5]]  # listed, then delisted
        batch += [{"event": "locked", "card_sn": sn} for sn in active[20:30]]
        batch += [{"event": "loss_revoked", "card_sn": sn} for sn in listed]
        results = await events(fleet, batch)
        assert all(r["status"] == "accepted" for r in results), results
        r = await fleet.client.get(f"/blacklist/delta?since={v0}", headers=h)
        assert r.status == 200
        d = orjson.loads(await r.read())
        assert d["full"] is False
        assert d["version"] > v0
        state = dict(before)
        for e in d["adds"]:
            state[e["card_sn"]] = e["reason"]
        for card_sn in d["dels"]:
            state.pop(card_sn, None)
        v1, after = await snapshot(fleet, h)
        assert v1 >= d["version"]
        if v1 == d["version"]:
            assert state == after
        for sn in active[5:8]:
            assert after[sn] == "02"
        for sn in active[:5] + listed:
            assert sn not in after
        for sn in active[20:30]:
            assert after[sn] == "06"
        rows = await pg_rows(fleet_dsn(fleet), "SELECT count(*) AS n FROM blacklist_cards")
        assert rows[0]["n"] == len(after)

    async def test_binary_snapshot_is_sorted_16_byte_values(self, fleet: Fleet):
        """The binary form: sorted 16-byte card_sn values, the same set as the JSON form."""
        h = await auth(fleet)
        _, entries = await snapshot(fleet, h)
        r = await fleet.client.get("/blacklist/snapshot", headers={**h, "Accept": "application/octet-stream"})
        assert r.status == 200
        raw = await r.read()
        assert len(raw) % 16 == 0
        values = [raw[i : i + 16] for i in range(0, len(raw), 16)]
        assert values == sorted(values)
        assert {v.hex().upper() for v in values} == set(entries)
        assert r.headers["X-Blacklist-Version"].isdigit()

    async def test_etag_makes_unchanged_polls_cheap(self, fleet: Fleet):
        """A poll with the last ETag is 304 until something changes."""
        h = await auth(fleet)
        version, _ = await snapshot(fleet, h)
        r = await fleet.client.get(f"/blacklist/delta?since={version}", headers=h)
        assert r.status == 200
        assert orjson.loads(await r.read()) == {"version": version, "full": False, "adds": [], "dels": []}
        etag = r.headers["ETag"]
        r = await fleet.client.get(f"/blacklist/delta?since={version}", headers={**h, "If-None-Match": etag})
        assert r.status == 304
        card_sn = fleet.card()[0].card_sn
        await events(fleet, [{"event": "damaged", "card_sn": card_sn}])
        for _ in range(50):
            r = await fleet.client.get(f"/blacklist/delta?since={version}", headers={**h, "If-None-Match": etag})
            if r.status == 200:
                break
        assert r.status == 200
        d = orjson.loads(await r.read())
        assert {"card_sn": card_sn, "reason": "04"} in d["adds"]

    async def test_old_since_gets_the_full_list(self, fleet: Fleet, settings):
        """A since older than the retained log is answered with the full list."""
        h = await auth(fleet)
        _, entries = await snapshot(fleet, h)
        oldest = (await pg_rows(settings.pg_dsn, "SELECT min(version) AS v FROM blacklist_changes"))[0]["v"]
        await pg_rows(settings.pg_dsn, "DELETE FROM blacklist_changes WHERE version < $1 RETURNING 1", oldest + 3)
        r = await fleet.client.get("/blacklist/delta?since=0", headers=h)
        assert r.status == 200
        d = orjson.loads(await r.read())
        assert d["full"] is True
        assert {e["card_sn"]: e["reason"] for e in d["entries"]} == entries

    async def test_bad_requests(self, fleet: Fleet):
        """No session, a since in the future or not a number: specific errors, never a 500."""
        h = await auth(fleet)
        r = await fleet.client.get("/blacklist/delta?since=0")
        assert r.status == 401
        assert (await r.json())["err_code"] == "NOT_SIGNED_IN"
        r = await fleet.client.get("/blacklist/snapshot", headers={**h, "X-Sign-No": "X" * 30})
        assert r.status == 401
        for since in ("abc", "-1", "", "1" * 30):
            r = await fleet.client.get(f"/blacklist/delta?since={since}", headers=h)
            assert r.status == 400, since
            assert "since" in (await r.json())["err_msg"]
        r = await fleet.client.get("/blacklist/delta?since=999999999", headers=h)
        assert r.status == 400
        assert "future" in (await r.json())["err_msg"]


def fleet_dsn(fleet: Fleet) -> str:
    from gateway.keys import SETTINGS

    return fleet.client.app[SETTINGS].pg_dsn
