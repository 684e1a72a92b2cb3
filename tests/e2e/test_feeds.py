"""SPEC §8.3 feeds through the gateway: events and imports on the admin API, and their effect on terminals."""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from loadtest.terminal import SimCard
from tests.conftest import Fleet
from tests.e2e.helpers import ADMIN, assert_declined, assert_ok, pg_rows, pick_card

_seq = itertools.count(int(time.time() * 1000))  # unique per run: the session database is fresh anyway


@pytest.fixture(scope="module")
def admin(client: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The session gateway: it serves the feed routes."""
    return client


def seq() -> int:
    """A fresh source_seq."""
    return next(_seq)


async def post_events(admin, body: Any, headers: dict[str, str] = ADMIN) -> tuple[int, dict[str, Any]]:
    """POST /admin/blacklist/events; (status, JSON)."""
    r = await admin.post("/admin/blacklist/events", data=orjson.dumps(body), headers=headers)
    return r.status, await r.json()


class TestEvents:
    async def test_loss_reported_refuses_card(self, admin, fleet: Fleet, settings):
        """A loss report is accepted with a version and the card is refused CARD_BLACKLISTED (01)."""
        t = await fleet.terminal()
        card, _ = fleet.card()
        event = {"source": "330200", "source_seq": seq(), "event": "loss_reported", "card_sn": card.card_sn}
        status, body = await post_events(admin, event)
        assert status == 200, body
        (res,) = body["results"]
        assert (res["status"], res["reason"]) == ("accepted", None)
        assert isinstance(res["version"], int)
        rows = await pg_rows(settings.pg_dsn, "SELECT reason, version FROM blacklist_cards WHERE card_sn = $1",
                             card.card_sn)  # fmt: skip
        assert rows == [{"reason": "01", "version": res["version"]}]
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_declined(status, resp, "CARD_BLACKLISTED")
        assert resp["output"] == {"reason": "01"}
        status, again = await post_events(admin, event)
        assert again["results"][0]["status"] == "duplicate"
        status, body = await post_events(admin, {**event, "source_seq": seq(), "event": "loss_revoked"})
        assert body["results"][0]["status"] == "accepted"
        status, resp, _ = await fleet.call(t.person_info(card))
        assert_ok(status, resp)

    async def test_replacement(self, admin, fleet: Fleet, world, settings):
        """Replacement: the old card is refused with reason 03, the new card settles for the same person."""
        t = await fleet.terminal()
        old, person = fleet.card(insutype="310", min_balance=10000)
        new = SimCard(old.card_sn[:16] + "ABCDEF0123456789", "N00000001", old.psn_no, "SM4")
        event = {"source": "330200", "source_seq": seq(), "event": "replaced", "card_sn": old.card_sn,
                 "new_card_sn": new.card_sn, "card_no": new.card_no, "alg": "SM4", "kv": 1,
                 "valid_from": "2025-01-01", "valid_until": "2035-01-01", "pin_mode": "DEFAULT"}  # fmt: skip
        status, body = await post_events(admin, [event])
        assert status == 200, body
        assert body["results"][0]["status"] == "accepted", body
        status, resp, _ = await fleet.call(t.person_info(old))
        assert_declined(status, resp, "CARD_BLACKLISTED")
        assert resp["output"] == {"reason": "03"}
        status, resp, _ = await fleet.call(t.person_info(new))
        assert_ok(status, resp)
        assert resp["output"]["baseinfo"]["psn_no"] == person["psn_no"]
        (a,) = [i for i in world["catalogue"] if i["class"] == "A" and not i.get("price_cap")][:1]
        status, resp, _ = await fleet.call(t.settle("2207", new, [(a["med_list_codg"], "1", a["price"])]))
        assert_ok(status, resp)

    async def test_batch_with_bad_events(self, admin, fleet: Fleet, settings):
        """A batch applies its good events and rejects each bad one with a specific reason."""
        card, _ = fleet.card()
        other, _ = pick_card(fleet, lambda c, p: c["status"] == "ACTIVE" and c["card_sn"][:6] == "330282")
        status, body = await post_events(
            admin,
            [
                {"source": "330200", "source_seq": seq(), "event": "locked", "card_sn": card.card_sn},
                {"source": "330200", "source_seq": seq(), "event": "teleported", "card_sn": card.card_sn},
                "not an object",
                {"source": "330281", "source_seq": seq(), "event": "locked", "card_sn": other.card_sn},
                {"source": "330200", "source_seq": seq(), "event": "unlocked", "card_sn": card.card_sn},
            ],
        )
        assert status == 200
        assert [(r["index"], r["status"], r["reason"]) for r in body["results"]] == [
            (0, "accepted", None),
            (1, "rejected", "event: unknown event type 'teleported'"),
            (2, "rejected", "event: must be a JSON object"),
            (3, "rejected", "source 330281 may not change cards of region 330282"),
            (4, "accepted", None),
        ]
        assert (body["accepted"], body["rejected"]) == (2, 3)
        assert await pg_rows(settings.pg_dsn, "SELECT 1 FROM blacklist_cards WHERE card_sn = $1", other.card_sn) == []

    @pytest.mark.parametrize(
        ("raw", "status", "text"),
        [(b"{nope", 400, "body"), (b"[]", 400, "body"), (b"5", 400, "body"),
         (orjson.dumps([{}] * 10_001), 413, "10000")],
    )  # fmt: skip
    async def test_bad_body(self, admin, fleet: Fleet, raw, status, text):
        """A body that is not an event or an array of at most 10,000 is refused as a whole."""
        r = await admin.post("/admin/blacklist/events", data=raw, headers=ADMIN)
        assert r.status == status
        assert text in (await r.json())["err_msg"]

    @pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
    async def test_needs_token(self, admin, fleet: Fleet, headers):
        """Without the right bearer token: 401."""
        card, _ = fleet.card()
        status, body = await post_events(
            admin, {"source": "330200", "source_seq": seq(), "event": "damaged", "card_sn": card.card_sn}, headers
        )
        assert status == 401
        assert "token" in body["err_msg"]


class TestImport:
    async def test_jsonl_import(self, admin, fleet: Fleet, settings):
        """An import streams one result per line and a summary; the lines take effect."""
        t = await fleet.terminal()
        a, _ = fleet.card()
        b, _ = fleet.card()
        lines = [
            orjson.dumps({"source": "330200", "source_seq": seq(), "event": "locked", "fraud": True,
                          "card_sn": a.card_sn}),
            b"{broken",
            orjson.dumps({"source": "330200", "source_seq": seq(), "event": "damaged", "card_sn": b.card_sn}),
        ]  # fmt: skip
        r = await admin.post("/admin/blacklist/import?format=jsonl", data=b"\n".join(lines), headers=ADMIN)
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/x-ndjson")
        out = [orjson.loads(x) for x in (await r.read()).splitlines()]
        assert [(x["line"], x["status"]) for x in out[:-1]] == [(1, "accepted"), (2, "rejected"), (3, "accepted")]
        assert out[-1]["summary"]["accepted"] == 2
        status, resp, _ = await fleet.call(t.person_info(a))
        assert_declined(status, resp, "CARD_BLACKLISTED")
        assert resp["output"] == {"reason": "07"}

    async def test_csv_import_and_bad_format(self, admin, fleet: Fleet, settings):
        """CSV with a header imports; an unknown format is 400."""
        card, _ = fleet.card()
        data = f"source,source_seq,event,card_sn\n330200,{seq()},pin_set,{card.card_sn}\n".encode()
        r = await admin.post("/admin/blacklist/import?format=csv", data=data, headers=ADMIN)
        out = [orjson.loads(x) for x in (await r.read()).splitlines()]
        assert out[0]["status"] == "accepted"
        rows = await pg_rows(settings.pg_dsn, "SELECT pin_mode FROM cards WHERE card_sn = $1", card.card_sn)
        assert rows == [{"pin_mode": "PIN"}]
        r = await admin.post("/admin/blacklist/import?format=xml", data=data, headers=ADMIN)
        assert r.status == 400
        assert "format" in (await r.json())["err_msg"]
