"""Journal recovery (issue 4): a request claimed by a process that was then killed (journal row PENDING, maybe
posted at the core, never answered) is completed as -1 CORE_TIMEOUT; for money a reversal is queued in the same
transaction and driven to DONE. The crash is staged with a real terminal request and the real journal claim."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.domain.core import Posting
from gateway.domain.effects import NewSettlement
from gateway.domain.envelope import parse_envelope
from gateway.domain.journal import Claimed
from gateway.domain.registry import SettlementState
from gateway.keys import GATEWAY
from gateway.pipeline.context import Deps
from gateway.pipeline.recovery import JournalRecovery
from gateway.pipeline.reversals import ReversalWorker
from loadtest.terminal import CALL_SERVICE, Built
from tests.conftest import Fleet
from tests.e2e.helpers import (
    c_bill,
    core_person,
    core_settlements,
    fen,
    journal_rows,
    money_state,
    pg_rows,
    post_raw,
    settlement_rows,
)


@pytest.fixture
def deps(client) -> Deps:
    """The session gateway's collaborators (real PostgreSQL adapters, the guarded core)."""
    return client.server.app[GATEWAY].d


async def crash_after_claim(deps: Deps, b: Built) -> int:
    """Claim the request exactly as the pipeline does, then 'die': the row stays PENDING, dated an hour ago."""
    canonical = orjson.dumps(b.body, option=orjson.OPT_SORT_KEYS)
    env = parse_envelope(b.body)
    claim, _card = await deps.journal.claim_with_card(
        env.fixmedins_code,
        env.msgid,
        env.infno,
        env.safe.psam_no,
        env.safe.card_sn,
        hashlib.sha256(canonical).digest(),
        canonical.decode(),
        None,
    )
    assert isinstance(claim, Claimed)
    await pg_rows(
        deps.settings.pg_dsn,
        "UPDATE journal SET received_at = now() - interval '1 hour' WHERE id = $1 RETURNING id",
        claim.journal_id,
    )
    return claim.journal_id


async def queued(dsn: str, code: str, omsgid: str) -> list[dict[str, Any]]:
    return await pg_rows(dsn, "SELECT * FROM reversal_queue WHERE fixmedins_code = $1 AND omsgid = $2", code, omsgid)


async def drive(deps: Deps, code: str, omsgid: str) -> dict[str, Any]:
    """Run reversal-worker passes until the reversal is final (the app's own worker may finish it first)."""
    worker = ReversalWorker(deps)
    for _ in range(100):
        (row,) = await queued(deps.settings.pg_dsn, code, omsgid)
        if row["state"] != "QUEUED":
            return row
        if await worker.run_once() == 0:
            await asyncio.sleep(0.1)  # leased by the app's worker or not yet due: look again
    (row,) = await queued(deps.settings.pg_dsn, code, omsgid)
    return row


def answer(journal: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(journal["response"])
    return body


class TestRecoverSettle:
    async def test_abandoned_settlement_is_answered_and_reversed(self, fleet: Fleet, world, core_url, deps):
        """Posted at the core, then killed: -1 CORE_TIMEOUT journaled, UNKNOWN recorded, reversal queued and done."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        before = await core_person(core_url, card.psn_no)
        b = t.settle("2207", card, c_bill(world, 3000))
        msgid, code = b.body["msgid"], t.fixmedins_code
        medfee = fen(b.body["input"]["data"]["medfee_sumamt"])
        jid = await crash_after_claim(deps, b)
        # the dead process had got as far as posting at the core
        posting = Posting(
            msgid, "2207", code, card.psn_no, medfee, 0, 0, 1000, medfee - 1000, int(before["version"]),
            f"{deps.now():%Y-%m-%d %H:%M:%S}",
        )  # fmt: skip
        await deps.core.post_settlement(posting, timeout=2.0)
        assert [s["state"] for s in await core_settlements(core_url, msgid)] == ["POSTED"]

        await JournalRecovery(deps).run_once()

        (j,) = await journal_rows(deps.settings.pg_dsn, code, msgid)
        assert j["id"] == jid
        assert j["state"] == "DONE"
        assert j["err_code"] == "CORE_TIMEOUT"
        assert j["http_status"] == 200
        resp = answer(j)
        assert resp["infcode"] == -1
        assert resp["err_code"] == "CORE_TIMEOUT"
        assert "reversal is queued" in resp["err_msg"]
        assert "no MAC2" in resp["err_msg"]
        assert "dev_safe_info" not in resp
        assert len(resp["inf_refmsgid"]) == 30
        (s,) = await settlement_rows(deps.settings.pg_dsn, code, msgid)
        assert s["state"] in ("UNKNOWN", "REVERSED")  # REVERSED if the app's worker was quicker
        want = (card.psn_no, card.card_sn, medfee, "2207")
        assert (s["psn_no"], s["card_sn"], s["medfee_sumamt"], s["infno"]) == want
        (q,) = await queued(deps.settings.pg_dsn, code, msgid)
        assert (q["oinfno"], q["psn_no"]) == ("2207", card.psn_no)

        # a retry of the same msgid gets the journaled -1, byte for byte
        status, body = await post_raw(fleet, orjson.dumps(b.body))
        assert status == 200
        assert body == bytes(j["response"])

        row = await drive(deps, code, msgid)
        assert row["state"] == "DONE"
        (s,) = await settlement_rows(deps.settings.pg_dsn, code, msgid)
        assert s["state"] == "REVERSED"
        assert [x["state"] for x in await core_settlements(core_url, msgid)] == ["REVERSED"]
        after = money_state(await core_person(core_url, card.psn_no))
        m0 = money_state(before)
        assert {k: after[k] for k in ("balance", "inscp_ytd", "fund_paid_ytd")} == {
            k: m0[k] for k in ("balance", "inscp_ytd", "fund_paid_ytd")
        }

    async def test_never_posted_settlement_reversal_is_harmless(self, fleet: Fleet, world, core_url, deps):
        """Killed before the core heard of it: the reversal completes all the same and nothing is posted."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        b = t.settle("2207", card, c_bill(world, 2000))
        msgid, code = b.body["msgid"], t.fixmedins_code
        await crash_after_claim(deps, b)
        await JournalRecovery(deps).run_once()
        (j,) = await journal_rows(deps.settings.pg_dsn, code, msgid)
        assert (j["state"], j["err_code"]) == ("DONE", "CORE_TIMEOUT")
        assert (await drive(deps, code, msgid))["state"] == "DONE"
        assert await core_settlements(core_url, msgid) == []


class TestRecoverNonMoney:
    async def test_person_query_completed_without_reversal(self, fleet: Fleet, deps):
        """An abandoned 1101 is answered -1 CORE_TIMEOUT with nothing owed to the core."""
        t = await fleet.terminal()
        card, _ = fleet.card()
        b = t.person_info(card)
        msgid, code = b.body["msgid"], t.fixmedins_code
        await crash_after_claim(deps, b)
        await JournalRecovery(deps).run_once()
        (j,) = await journal_rows(deps.settings.pg_dsn, code, msgid)
        assert (j["state"], j["err_code"]) == ("DONE", "CORE_TIMEOUT")
        resp = answer(j)
        assert resp["infcode"] == -1
        assert "nothing to reverse" in resp["err_msg"]
        assert await queued(deps.settings.pg_dsn, code, msgid) == []
        assert await settlement_rows(deps.settings.pg_dsn, code, msgid) == []
        status, body = await post_raw(fleet, orjson.dumps(b.body))
        assert (status, body) == (200, bytes(j["response"]))


class TestRecoveryRaces:
    async def test_first_completion_wins(self, fleet: Fleet, world, deps):
        """Two recovering processes, or recovery and a late owner: one completes, the other applies nothing."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        b = t.settle("2207", card, c_bill(world, 2000))
        msgid, code = b.body["msgid"], t.fixmedins_code
        jid = await crash_after_claim(deps, b)
        done = await asyncio.gather(JournalRecovery(deps).run_once(), JournalRecovery(deps).run_once())
        assert sum(done) >= 1  # ours among them; the app's own pass may have taken others
        (j,) = await journal_rows(deps.settings.pg_dsn, code, msgid)
        assert len(await queued(deps.settings.pg_dsn, code, msgid)) == 1
        (s,) = await settlement_rows(deps.settings.pg_dsn, code, msgid)
        # the owner, had it only been slow, now fails to complete and changes nothing
        recorded = await deps.settlements.settlement_by_msgid(code, msgid)
        assert recorded is not None
        late = dataclasses.replace(recorded, state=SettlementState.POSTED, setl_id="LATE")
        assert not await deps.journal.complete(jid, b"{}", 200, None, [NewSettlement(late)])
        (again,) = await journal_rows(deps.settings.pg_dsn, code, msgid)
        assert bytes(again["response"]) == bytes(j["response"])
        assert (await settlement_rows(deps.settings.pg_dsn, code, msgid))[0]["setl_id"] == s["setl_id"]


@pytest.fixture
async def restarted(settings, world, tmp_path: Path) -> AsyncIterator[Any]:
    """Start another gateway process on the same database (as after a restart); yields a starter."""
    (tmp_path / "catalogue.json").write_bytes(orjson.dumps(world["catalogue"]))
    s = dataclasses.replace(settings, world_file=None, catalogue_file=str(tmp_path / "catalogue.json"))
    clients: list[TestClient[Any, Any]] = []

    async def start() -> TestClient[Any, Any]:
        c: TestClient[Any, Any] = TestClient(TestServer(create_app(s)))
        await c.start_server()
        clients.append(c)
        return c

    try:
        yield start
    finally:
        for c in clients:
            await c.close()


class TestRecoverAtStartup:
    async def test_restart_answers_abandoned_claims_before_serving(self, fleet: Fleet, world, deps, restarted):
        """A gateway starting up completes abandoned claims before it serves, so retries find their answer."""
        t = await fleet.terminal()
        card, _ = fleet.card(insutype="310", min_balance=20000)
        b = t.settle("2207", card, c_bill(world, 2000))
        msgid, code = b.body["msgid"], t.fixmedins_code
        await crash_after_claim(deps, b)
        c = await restarted()
        (j,) = await journal_rows(deps.settings.pg_dsn, code, msgid)
        assert (j["state"], j["err_code"]) == ("DONE", "CORE_TIMEOUT")
        resp = await c.post(CALL_SERVICE, data=orjson.dumps(b.body))
        assert resp.status == 200
        assert await resp.read() == bytes(j["response"])
        assert (await drive(deps, code, msgid))["state"] == "DONE"
