"""FsiCore against a real core simulator on loopback: each method, and each fault mapped to an error."""

from __future__ import annotations

import asyncio
import socket
from datetime import date

import pytest

from adapters.core_fsi import FsiCore
from gateway.domain.core import Cancellation, Posting, Reversal
from gateway.domain.errors import CoreRejected, CoreTimeout, CoreUnavailable
from gateway.domain.reconcile import CoreRecord
from gateway.ports import InsuranceCore
from tests.integration.conftest_core import (  # noqa: F401 - fixtures are registered by import
    HOSPITAL,
    PHARMACY,
    POOR,
    RICH,
    Msgids,
    Sim,
    _core,
    _garbage_core,
    _msgids,
    _sim,
)

T = 2.0  # generous per-call timeout where no timeout is under test


def posting(msgid: str, psn_no: str = RICH, version: int = 1) -> Posting:
    return Posting(
        msgid=msgid, infno="2207", fixmedins_code=HOSPITAL, psn_no=psn_no, medfee_sumamt=10000,
        inscp_scp_amt=8000, fund_pay_sumamt=5600, acct_pay=3000, psn_cash_pay=1400,
        expected_version=version, setl_time="2026-03-01 09:30:00",
    )  # fmt: skip


class TestFsiCoreMethods:
    async def test_fsi_core_satisfies_the_port(self) -> None:
        """FsiCore is an InsuranceCore (mypy checks the annotation); closing an unused one is harmless."""
        core: InsuranceCore = FsiCore("http://127.0.0.1:9")
        await core.close()

    async def test_person_reads_balance_accumulators_and_version(self, core: FsiCore) -> None:
        """person() maps 1101 to a PersonRecord in fen."""
        person = await core.person(RICH, timeout=T)
        assert (person.psn_no, person.balance, person.inscp_ytd, person.fund_paid_ytd) == (
            RICH,
            50000,
            100000,
            60000,
        )
        assert (person.version, person.psn_insu_stas, person.insutype) == (1, "1", "310")
        assert "张三" not in repr(person)

    async def test_unknown_person_is_rejected(self, core: FsiCore) -> None:
        """An unknown person is CoreRejected with reason PERSON_NOT_FOUND."""
        with pytest.raises(CoreRejected) as info:
            await core.person("404", timeout=T)
        assert info.value.reason == "PERSON_NOT_FOUND"

    async def test_post_returns_receipt_and_a_retry_gets_the_same(self, core: FsiCore, msgids: Msgids) -> None:
        """post_settlement() returns setl_id, balance and version; the same msgid again returns the same."""
        msgid = msgids()
        first = await core.post_settlement(posting(msgid), timeout=T)
        assert first.setl_id.startswith("S")
        assert (first.balc, first.version) == (47000, 2)
        assert await core.post_settlement(posting(msgid), timeout=T) == first
        assert (await core.person(RICH, timeout=T)).balance == 47000

    async def test_refusals_map_to_core_rejected_with_the_reason(self, core: FsiCore, msgids: Msgids) -> None:
        """VERSION_CONFLICT and INSUFFICIENT_BALANCE arrive as CoreRejected reasons, without personal data."""
        with pytest.raises(CoreRejected) as stale:
            await core.post_settlement(posting(msgids(), version=7), timeout=T)
        assert stale.value.reason == "VERSION_CONFLICT"
        with pytest.raises(CoreRejected) as poor:
            await core.post_settlement(posting(msgids(), psn_no=POOR), timeout=T)
        assert poor.value.reason == "INSUFFICIENT_BALANCE"
        assert POOR not in str(poor.value)

    async def test_cancel_refunds(self, core: FsiCore, msgids: Msgids) -> None:
        """cancel_settlement() returns the refunded amounts in fen and the restored balance."""
        posted = await core.post_settlement(posting(msgids()), timeout=T)
        cancel = Cancellation(
            msgid=msgids(), infno="2208", fixmedins_code=HOSPITAL, psn_no=RICH, setl_id=posted.setl_id
        )
        done = await core.cancel_settlement(cancel, timeout=T)
        assert done.orig_setl_id == posted.setl_id
        assert (done.medfee_sumamt, done.fund_pay_sumamt, done.acct_pay, done.psn_cash_pay) == (
            10000,
            5600,
            3000,
            1400,
        )
        assert done.balc == 50000
        with pytest.raises(CoreRejected) as again:
            await core.cancel_settlement(Cancellation(msgids(), "2208", HOSPITAL, RICH, posted.setl_id), timeout=T)
        assert again.value.reason == "ALREADY_CANCELLED"

    async def test_reverse_posted_and_never_posted(self, core: FsiCore, msgids: Msgids) -> None:
        """reverse() tells whether the core had the original; a reversed msgid can no longer be posted."""
        omsgid = msgids()
        await core.post_settlement(posting(omsgid), timeout=T)
        done = await core.reverse(Reversal(msgids(), HOSPITAL, RICH, omsgid, "2207"), timeout=T)
        assert (done.omsgid, done.was_posted) == (omsgid, True)
        ghost = msgids()
        never = await core.reverse(Reversal(msgids(), HOSPITAL, RICH, ghost, "2207"), timeout=T)
        assert never.was_posted is False
        with pytest.raises(CoreRejected) as late:
            await core.post_settlement(posting(ghost, version=3), timeout=T)
        assert late.value.reason == "REVERSED"
        assert (await core.person(RICH, timeout=T)).balance == 50000

    async def test_settlements_are_the_institutions_days_in_their_states(self, core: FsiCore, msgids: Msgids) -> None:
        """settlements() (3202) gives the institution's settlements of those dates, current state, amounts in fen."""
        kept, cancelled, reversed_ = msgids(), msgids(), msgids()
        posted = {m: await core.post_settlement(posting(m, version=v), timeout=T)
                  for v, m in enumerate((kept, cancelled, reversed_), start=1)}  # fmt: skip
        await core.cancel_settlement(
            Cancellation(msgids(), "2208", HOSPITAL, RICH, posted[cancelled].setl_id), timeout=T
        )
        await core.reverse(Reversal(msgids(), HOSPITAL, RICH, reversed_, "2207"), timeout=T)
        day = date(2026, 3, 1)
        records = await core.settlements(HOSPITAL, day, day, timeout=T)
        assert sorted(records, key=lambda r: r.msgid) == [
            CoreRecord(m, posted[m].setl_id, HOSPITAL, state, "2026-03-01 09:30:00", 10000, 5600, 3000, 1400)
            for m, state in ((kept, "POSTED"), (cancelled, "CANCELLED"), (reversed_, "REVERSED"))
        ]
        assert await core.settlements(HOSPITAL, date(2026, 3, 2), date(2026, 3, 31), timeout=T) == []
        assert await core.settlements(PHARMACY, day, day, timeout=T) == []

    async def test_settlements_with_dates_reversed_are_rejected(self, core: FsiCore) -> None:
        """An end before the beginning is the core's MALFORMED refusal."""
        with pytest.raises(CoreRejected) as info:
            await core.settlements(HOSPITAL, date(2026, 3, 2), date(2026, 3, 1), timeout=T)
        assert info.value.reason == "MALFORMED"


class TestFsiCoreFaults:
    async def test_core_down_is_unavailable(self, sim: Sim, core: FsiCore, msgids: Msgids) -> None:
        """HTTP 503 maps to CoreUnavailable for writes and reads, and nothing is posted."""
        await sim.set_faults(down=True)
        with pytest.raises(CoreUnavailable):
            await core.post_settlement(posting(msgids()), timeout=T)
        with pytest.raises(CoreUnavailable):
            await core.person(RICH, timeout=T)
        with pytest.raises(CoreUnavailable):
            await core.settlements(HOSPITAL, date(2026, 3, 1), date(2026, 3, 1), timeout=T)
        assert (await sim.settlements())["settlements"] == []

    async def test_refused_connection_is_unavailable(self) -> None:
        """A port nobody listens on maps to CoreUnavailable for a write."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        core = FsiCore(f"http://127.0.0.1:{port}", connect_timeout=0.2)
        try:
            with pytest.raises(CoreUnavailable):
                await core.post_settlement(posting(Msgids()()), timeout=T)
        finally:
            await core.close()

    async def test_timeout_on_post_is_outcome_unknown(self, sim: Sim, core: FsiCore, msgids: Msgids) -> None:
        """A hang past the timeout on a posting is CoreTimeout, and the core does post afterwards."""
        await sim.set_faults(timeout_rate=1, hang_s=0.3)
        msgid = msgids()
        with pytest.raises(CoreTimeout):
            await core.post_settlement(posting(msgid), timeout=0.1)
        await sim.set_faults()
        for _ in range(50):
            if (await sim.settlements())["settlements"]:
                break
            await asyncio.sleep(0.05)
        assert [s["msgid"] for s in (await sim.settlements())["settlements"]] == [msgid]

    async def test_reversal_overtaking_a_hung_post_wins(self, sim: Sim, core: FsiCore, msgids: Msgids) -> None:
        """A reversal that overtakes a hung posting wins: the late posting is refused, nothing posts."""
        await sim.set_faults(timeout_rate=1, hang_s=0.3)
        msgid = msgids()
        with pytest.raises(CoreTimeout):
            await core.post_settlement(posting(msgid), timeout=0.1)
        await sim.set_faults()
        done = await core.reverse(Reversal(msgids(), HOSPITAL, RICH, msgid, "2207"), timeout=T)
        assert done.was_posted is False
        await asyncio.sleep(0.4)
        ledger = await sim.settlements()
        assert (ledger["settlements"], ledger["tombstones"]) == ([], [msgid])
        assert (await core.person(RICH, timeout=T)).balance == 50000

    async def test_timeout_on_person_is_unavailable(self, sim: Sim, core: FsiCore) -> None:
        """A read that times out is CoreUnavailable (no outcome to be unsure about)."""
        await sim.set_faults(timeout_rate=1, hang_s=0.3)
        with pytest.raises(CoreUnavailable):
            await core.person(RICH, timeout=0.1)

    async def test_dropped_reply_is_outcome_unknown_but_posted(self, sim: Sim, core: FsiCore, msgids: Msgids) -> None:
        """A connection closed after the core acted is CoreTimeout, and the core did post."""
        await sim.set_faults(drop_after_post_rate=1)
        msgid = msgids()
        with pytest.raises(CoreTimeout) as info:
            await core.post_settlement(posting(msgid), timeout=T)
        assert RICH not in str(info.value)
        await sim.set_faults()
        assert [s["msgid"] for s in (await sim.settlements())["settlements"]] == [msgid]
        retry = await core.post_settlement(posting(msgid), timeout=T)
        assert retry.balc == 47000

    async def test_system_error_is_timeout_for_post_and_unavailable_for_person(
        self, sim: Sim, core: FsiCore, msgids: Msgids
    ) -> None:
        """infcode -1 maps to CoreTimeout on a posting and CoreUnavailable on a read."""
        await sim.set_faults(error_rate=1)
        with pytest.raises(CoreTimeout):
            await core.post_settlement(posting(msgids()), timeout=T)
        with pytest.raises(CoreUnavailable):
            await core.person(RICH, timeout=T)
        await sim.set_faults()
        assert (await sim.settlements())["settlements"] == []

    async def test_pool_serves_concurrent_calls(self, core: FsiCore) -> None:
        """Many concurrent reads share the pooled session (pool smaller than the burst)."""
        people = await asyncio.gather(*(core.person(RICH, timeout=T) for _ in range(50)))
        assert {p.balance for p in people} == {50000}

    async def test_unparseable_reply_is_timeout_for_post_and_unavailable_for_person(
        self, garbage_core: str, msgids: Msgids
    ) -> None:
        """A 200 reply that is not JSON: outcome unknown for a posting, unavailable for a read."""
        core = FsiCore(garbage_core)
        try:
            with pytest.raises(CoreTimeout):
                await core.post_settlement(posting(msgids()), timeout=T)
            with pytest.raises(CoreUnavailable):
                await core.person(RICH, timeout=T)
        finally:
            await core.close()
