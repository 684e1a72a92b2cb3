"""An inline 2207 naming a visit end to end (SPEC §6.6, an implicit 2204 of a fresh batch) against real
PostgreSQL, Redis and the core simulator: its lines stored as a claimed batch, a retry BATCH_SETTLED, 2208
freeing the batch for a settlement by reference, and an unknown visit refused with nothing stored."""

from __future__ import annotations

from typing import Any

from loadtest.terminal import Built
from tests.conftest import Fleet
from tests.e2e.helpers import assert_declined, assert_ok, bill_total, core_settlements, pg_rows
from tests.e2e.test_outpatient import Visit, items, stored_lines, visit

__all__ = ["items"]  # the fixture


def inline(v: Visit, lines: list[tuple[str, str, str]], mdtrt_id: str | None = None) -> Built:
    b = v.t.settle("2207", v.card, lines)
    b.body["input"]["data"]["mdtrt_id"] = mdtrt_id or v.id
    return b


class TestInlineWithVisit:
    async def test_stored_claimed_restored(self, fleet: Fleet, settings, core_url, items):
        v = await visit(fleet, "E2E-MZ-IL01")
        b = inline(v, items)
        s = await v.call(b)
        assert_ok(200, s)
        assert b.mac2_ok(s)
        info: dict[str, Any] = s["output"]["setlinfo"]
        bchno = info["chrg_bchno"]
        assert bchno.startswith("IL")
        assert await stored_lines(settings.pg_dsn, v.id) == len(items)
        rows = await pg_rows(
            settings.pg_dsn,
            "SELECT b.chrg_bchno, b.setl_msgid FROM fee_batches b JOIN visits v ON v.id = b.visit_id"
            " WHERE v.mdtrt_id = $1",
            v.id,
        )
        assert [(r["chrg_bchno"], r["setl_msgid"]) for r in rows] == [(bchno, b.body["msgid"])]
        assert len(await core_settlements(core_url, b.body["msgid"])) == 1
        retry = await v.call(inline(v, items))  # HIS retry with a fresh msgid
        assert_declined(200, retry, "BATCH_SETTLED")
        assert retry["output"]["setl_id"] == info["setl_id"]
        c = await v.call(v.t.cancel("2208", info["setl_id"], v.card.psn_no, mdtrt_id=v.id))
        assert_ok(200, c)
        s2 = await v.call(v.settle(bchno, bill_total(items)))
        assert_ok(200, s2)
        assert s2["output"]["setlinfo"]["chrg_bchno"] == bchno
        assert await stored_lines(settings.pg_dsn, v.id) == len(items)

    async def test_unknown_visit(self, fleet: Fleet, settings, items):
        v = await visit(fleet, "E2E-MZ-IL02")
        r = await v.call(inline(v, items, "330200202612011000000000000099"))
        assert_declined(200, r, "VISIT_NOT_FOUND")
        assert await stored_lines(settings.pg_dsn, v.id) == 0
