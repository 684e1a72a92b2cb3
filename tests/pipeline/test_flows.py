"""Every flow of the transaction table through the real pipeline over fakes: what the terminal hears and what
the journal, the settlements and the reversal queue hold afterwards."""

from __future__ import annotations

from gateway.domain.registry import SettlementState
from rules.policy import PolicyBook
from tests.pipeline.conftest import CODE, PSN, World, person

ONLY_OUTPATIENT = """
[pin_caps."*"]
per_txn = "200.00"
per_day = "500.00"
per_day_count = 10

[[rule]]
name = "outpatient only"
region = "*"
effective_from = 2024-01-01
med_type = ["11"]
b_selfpay = "0.10"
annual_cap = "300000.00"
deductible_scope = "year"
deductible = "0.00"
ratio = "0.80"
"""


def settlement(w: World, msgid: str):
    return w.store.settlements.get((CODE, msgid))


class TestSession:
    async def test_sign_out_ends_the_session(self, world: World):
        """9002 closes the session; the next request is NOT_SIGNED_IN."""
        r = await world.send(world.terminal.sign_out(now=world.clock.now()))
        assert r["infcode"] == 0
        r = await world.send(world.terminal.person_info(world.card, now=world.clock.now()))
        assert r["err_code"] == "NOT_SIGNED_IN"

    async def test_session_expires_by_the_injected_clock(self, world: World):
        """The session TTL is judged by the clock port: moving it past the TTL signs the terminal out."""
        world.clock.advance(world.deps.settings.sign_ttl_s + 1)
        r = await world.send(world.terminal.person_info(world.card, now=world.clock.now()))
        assert r["err_code"] == "NOT_SIGNED_IN"
        assert "expired" in r["err_msg"]


class TestPerson:
    async def test_person_info(self, world: World):
        """1101 answers the person and the card's PIN mode."""
        r = await world.send(world.terminal.person_info(world.card, now=world.clock.now()))
        assert r["infcode"] == 0
        assert r["output"]["baseinfo"]["psn_no"] == PSN
        assert r["output"]["cardinfo"]["pin_mode"] == "PIN"

    async def test_listed_person_is_refused(self, world: World):
        """1101 refuses a listed person (SPEC §8)."""
        world.lookup.persons[PSN] = "DECEASED"
        r = await world.send(world.terminal.person_info(world.card, now=world.clock.now()))
        assert r["err_code"] == "PERSON_NOT_ENTITLED"

    async def test_stale_request_by_the_injected_clock(self, world: World):
        """inf_time more than the freshness window from the gateway's clock is STALE_REQUEST."""
        b = world.terminal.person_info(world.card, now=world.clock.now())
        world.clock.advance(world.deps.settings.freshness_s + 5)
        r = await world.send(b)
        assert r["err_code"] == "STALE_REQUEST"


class TestEntitlement:
    def flags(self, r) -> dict[str, str]:
        assert r["infcode"] == 0, r
        return {c["trt_chk_type"]: c["trt_enjymnt_flag"] for c in r["output"]["trtinfo"]}

    async def test_entitled(self, world: World):
        """2001: all three checks pass for an insured person with a balance and a policy."""
        assert self.flags(await world.send(world.entitlement())) == {"01": "1", "02": "1", "03": "1"}

    async def test_listed_person_is_reported_not_refused(self, world: World):
        """SPEC §6.2.1: infcode 0 with check 01 not entitled, naming the reason."""
        world.lookup.persons[PSN] = "FRAUD"
        r = await world.send(world.entitlement())
        assert self.flags(r)["01"] == "0"
        assert "FRAUD" in r["output"]["trtinfo"][0]["trt_chk_rslt"]

    async def test_no_policy_and_no_balance(self, world: World):
        """A med_type no policy covers fails check 02; an empty account fails check 03."""
        world.deps.policies = PolicyBook.from_toml(ONLY_OUTPATIENT)
        world.core.persons[PSN] = person(balance=0)
        r = await world.send(world.entitlement(med_type="14"))
        assert self.flags(r) == {"01": "1", "02": "0", "03": "0"}
        assert "no benefit policy" in r["output"]["trtinfo"][1]["trt_chk_rslt"]
        assert self.flags(await world.send(world.entitlement(med_type="11")))["02"] == "1"

    async def test_other_insutype(self, world: World):
        """Check 02 fails for an insutype the person is not insured under."""
        assert self.flags(await world.send(world.entitlement(insutype="390")))["02"] == "0"

    async def test_listed_card_is_refused(self, world: World):
        """The card's own refusals stand, as for 1101."""
        world.lookup.cards[world.card.card_sn] = "LOST"
        r = await world.send(world.entitlement())
        assert r["err_code"] == "CARD_BLACKLISTED"

    async def test_moves_nothing(self, world: World):
        """Nothing is posted, nothing counted: the journal row only."""
        await world.send(world.entitlement())
        assert world.store.settlements == {}
        assert world.store.jobs == {}
        assert "post" not in world.core.calls


class TestSettle:
    async def test_presettle_posts_nothing(self, world: World):
        """2206 answers the split and leaves no settlement."""
        r = await world.send(world.settle("2206"))
        assert r["infcode"] == 0
        assert "setl_id" not in r["output"]["setlinfo"]
        assert world.store.settlements == {}

    async def test_settle_posts_and_journals(self, world: World):
        """2207 posts to the core and records the settlement POSTED with the core's setl_id."""
        b = world.settle("2207")
        r = await world.send(b)
        assert r["infcode"] == 0
        s = settlement(world, b.body["msgid"])
        assert s is not None
        assert s.state is SettlementState.POSTED
        assert s.setl_id == r["output"]["setlinfo"]["setl_id"]

    async def test_retry_gets_the_journaled_answer(self, world: World):
        """The same msgid again: the stored bytes, no second posting."""
        b = world.settle("2207")
        first = await world.send(b)
        again = await world.send(b)
        assert again == first
        assert world.core.calls.count("post") == 1
