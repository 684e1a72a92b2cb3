"""The load tester's post-run check (loadtest/check.py) against the real journal and core: it passes on what
really happened and names what was changed behind its back (a journal answer, an amount, a settlement the
terminal never heard of, a non-settlement that posted)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import asyncpg
import orjson

from loadtest.check import check_run
from loadtest.runner import Trace
from loadtest.terminal import fen
from tests.conftest import Fleet
from tests.e2e.helpers import line, plain_items


async def settle_once(fleet: Fleet, world: dict[str, Any]) -> Trace:
    """One real 2207 and the trace a load tester would record for it."""
    t = await fleet.new_terminal("hospital")
    card, person = fleet.card(insutype="310", min_balance=10_000)
    item = plain_items(world, "A", 1, min_price="5")[0]
    b = t.settle("2207", card, [line(item, 2)], insutype=person["insutype"])
    raw = orjson.dumps(b.body)
    resp = await fleet.client.post("/fsi/api/rsfComIfsService/callService", data=raw)
    body = await resp.read()
    out = orjson.loads(body)
    assert out["infcode"] == 0, out
    info = out["output"]["setlinfo"]
    return Trace(
        b.body["fixmedins_code"], b.body["msgid"], "2207", "outpatient_settle", "OK", 0,
        hashlib.sha256(body).digest(), info["setl_id"],
        fen(info["acct_pay"]), fen(info["fund_pay_sumamt"]), fen(info["psn_cash_pay"]),
    )  # fmt: skip


async def test_check_passes_on_what_happened_and_names_what_was_tampered(fleet: Fleet, world, settings, core_url):
    traces = [await settle_once(fleet, world) for _ in range(3)]
    ok = await check_run(traces, settings.pg_dsn, core_url, drain_s=1)
    assert ok.ok, ok.problems
    assert ok.settlements == 3
    assert ok.journal_rows == 3

    # The terminal was told other amounts than the journal and the core hold.
    told_more = replace(traces[0], acct_pay=traces[0].acct_pay + 1)
    res = await check_run([told_more, *traces[1:]], settings.pg_dsn, core_url, drain_s=1)
    assert res.problem_counts == {"amounts": 1}, res.problems

    # The terminal saw one answer, the journal holds another.
    other_bytes = replace(traces[1], response_sha256=hashlib.sha256(b"something else").digest())
    res = await check_run([traces[0], other_bytes, traces[2]], settings.pg_dsn, core_url, drain_s=1)
    assert res.problem_counts == {"journal_bytes": 1}, res.problems

    # A refusal the terminal heard, while the settlement is in fact posted at both.
    refused = replace(traces[2], outcome="CORE_TIMEOUT", infcode=-1)
    res = await check_run([refused], settings.pg_dsn, core_url, drain_s=1)
    assert res.problem_counts["journal_outcome"] == 1
    assert res.problem_counts["posted_not_acknowledged"] == 2  # in the journal and at the core

    # A person-info request whose msgid shows up as a settlement at the core.
    as_1101 = replace(traces[0], infno="1101", scenario="person_info")
    res = await check_run([as_1101], settings.pg_dsn, core_url, drain_s=1)
    assert res.problem_counts["posted_by_non_settlement"] == 1


async def test_an_acknowledged_settlement_missing_from_the_journal_is_named(fleet: Fleet, world, settings, core_url):
    trace = await settle_once(fleet, world)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        await conn.execute(
            "DELETE FROM settlements WHERE fixmedins_code = $1 AND msgid = $2", trace.fixmedins_code, trace.msgid
        )
    finally:
        await conn.close()
    res = await check_run([trace], settings.pg_dsn, core_url, drain_s=1)
    assert not res.ok
    assert res.problem_counts == {"acknowledged_missing": 1}, res.problems
