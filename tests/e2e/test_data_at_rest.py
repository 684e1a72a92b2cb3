"""Personal data at rest end to end (issue 11 item 9): the gateway's journal holds ciphertext, a retry is answered
byte-identically, a moved ciphertext is a clear 503, and a real session's logs (DEBUG) name no person."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson
import pytest

from gateway.keys import GATEWAY
from tests.conftest import Fleet
from tests.e2e.helpers import assert_declined, c_bill, pg_rows, pick_card, post_raw, put_faults
from tests.e2e.test_core_faults import seed_passing_first_dropping_second
from tests.e2e.test_internal_error import ExplodingAfterPost


class TestSealedJournal:
    async def test_raw_table_has_no_name_and_retry_is_byte_identical(self, fleet: Fleet, settings):
        """1101 answers the person's name; the raw journal row holds it nowhere; the retry's bytes are identical."""
        t = await fleet.terminal()
        card, person = fleet.card()
        b = t.person_info(card)
        raw = orjson.dumps(b.body)
        status, first = await post_raw(fleet, raw)
        assert status == 200
        assert person["psn_name"].encode() in first  # the answer names the person: that is what is sealed
        (row,) = await pg_rows(
            settings.pg_dsn, "SELECT * FROM journal WHERE fixmedins_code = $1 AND msgid = $2", t.fixmedins_code,
            b.body["msgid"],
        )  # fmt: skip
        assert row["data_key_version"] == 1
        assert row["request"] is None
        assert row["response"] is None
        for secret in (person["psn_name"], person["certno"], card.card_no):
            for value in row.values():
                stored = bytes(value) if isinstance(value, bytes) else str(value).encode()
                assert secret.encode() not in stored, secret
        hits = await pg_rows(
            settings.pg_dsn,
            "SELECT id FROM journal WHERE position(convert_to($1, 'UTF8') IN coalesce(response_enc, '')"
            " || coalesce(request_enc, '') || coalesce(response, '')) > 0 OR request::text LIKE '%' || $1 || '%'",
            person["psn_name"],
        )
        assert hits == []
        status, again = await post_raw(fleet, raw)
        assert (status, again) == (200, first)

    async def test_ciphertext_moved_from_another_row_is_a_clear_503(self, fleet: Fleet, settings):
        """Row B given row A's sealed answer: B's retry is 503 OVERLOADED naming the msgid, no 500, no A data."""
        t = await fleet.terminal()
        (ca, pa), (cb, _) = fleet.card(), fleet.card()
        a, b = t.person_info(ca), t.person_info(cb)
        for built in (a, b):
            status, _resp, _ = await fleet.call(built)
            assert status == 200
        await pg_rows(
            settings.pg_dsn,
            "UPDATE journal SET response_enc = (SELECT response_enc FROM journal WHERE fixmedins_code = $1"
            " AND msgid = $2) WHERE fixmedins_code = $1 AND msgid = $3 RETURNING id",
            t.fixmedins_code, a.body["msgid"], b.body["msgid"],
        )  # fmt: skip
        status, resp, _ = await fleet.call(b)
        assert_declined(status, resp, "OVERLOADED", 503, infcode=-1)
        assert b.body["msgid"] in resp["err_msg"]
        assert "moved from another row" in resp["err_msg"]
        assert pa["psn_name"] not in orjson.dumps(resp).decode()


def _secrets(world: dict[str, Any]) -> dict[str, str]:
    """What no log line may carry: every name, certno, full card_sn, card_no and full psn_no of the world.

    A masked psn_no or card_sn (`mask`: the ends kept, the middle starred) is fine; the full value is not."""
    out: dict[str, str] = {}
    for p in world["persons"]:
        out[p["psn_name"]] = "psn_name"
        out[p["certno"]] = "certno"
        out[p["psn_no"]] = "psn_no"
    for c in world["cards"]:
        out[c["card_sn"]] = "card_sn"
        out[c["card_no"]] = "card_no"
    return out


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger at DEBUG and above."""
    caplog.set_level(logging.DEBUG)
    return caplog


class TestLogsNameNoOne:
    async def test_a_session_logs_no_personal_data(self, fleet: Fleet, world, client, core_url, settings, every_log):
        """Sign-in, 1101, 2207, 2208, a listed card, an INTERNAL and a core timeout: no record holds a name,
        certno, full card number or full psn_no."""
        t = await fleet.new_terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        assert (await fleet.call(t.person_info(card)))[1]["infcode"] == 0
        _status, resp, _ = await fleet.call(t.settle("2207", card, c_bill(world, 1200)))
        assert resp["infcode"] == 0, resp
        setl = resp["output"]["setlinfo"]["setl_id"]
        assert (await fleet.call(t.cancel("2208", setl, card.psn_no)))[1]["infcode"] == 0
        listed, _ = pick_card(fleet, lambda c, p: c["status"] == "02")
        assert (await fleet.call(t.person_info(listed)))[1]["err_code"] == "CARD_BLACKLISTED"
        deps = client.server.app[GATEWAY].d
        real = deps.core
        bug_card, _ = fleet.card(insutype="310", min_balance=20000)
        deps.core = ExplodingAfterPost(real)  # type: ignore[assignment]
        try:
            bug_built = t.settle("2207", bug_card, c_bill(world, 900))
            _status, resp, _ = await fleet.call(bug_built)
        finally:
            deps.core = real
        assert resp["err_code"] == "INTERNAL"
        slow_card, _ = fleet.card(insutype="310", min_balance=20000)
        built = t.settle("2207", slow_card, c_bill(world, 800))
        await put_faults(core_url, {"drop_after_post_rate": 0.5, "seed": seed_passing_first_dropping_second(0.5)})
        try:
            _status, resp, _ = await fleet.call(built)
        finally:
            await put_faults(core_url, {})
        assert resp["err_code"] == "CORE_TIMEOUT"
        for _ in range(100):  # the reversal worker's records too: let it close the two reversals owed
            rows = await pg_rows(
                settings.pg_dsn, "SELECT state FROM reversal_queue WHERE fixmedins_code = $1 AND omsgid = ANY($2)",
                t.fixmedins_code, [bug_built.body["msgid"], built.body["msgid"]],
            )  # fmt: skip
            if len(rows) == 2 and all(r["state"] == "DONE" for r in rows):
                break
            await asyncio.sleep(0.1)
        secrets = _secrets(world)
        pattern = re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))
        assert len(every_log.records) > 5
        leaks = []
        for rec in every_log.records:
            text = rec.getMessage() + (every_log.handler.format(rec) if rec.exc_info else "")
            leaks += [f"{rec.name}: {secrets[m]} in {text[:200]!r}" for m in pattern.findall(text)]
        assert leaks == []


async def test_readyz_shows_journal_encryption(client):
    """/readyz names the journal's state among its checks (sealed: ok)."""
    resp = await client.get("/readyz")
    body = await resp.json()
    assert body["checks"]["journal_encryption"] == "ok"
