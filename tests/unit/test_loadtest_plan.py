"""The load tester's pure parts: the mix and rate options, leasing of terminals and cards, and what each
scenario plans (with real MACs) and expects."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.domain.envelope import parse_envelope
from gateway.domain.keys import DEV_KEYS, CardKeyCache, MasterKeys
from gateway.domain.security import verify
from gateway.domain.txtypes import mac_amount
from loadtest.fleet import Fleet
from loadtest.runner import parse_rate
from loadtest.scenarios import DEFAULT_MIX, Planner, parse_mix
from loadtest.world import generate


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    return generate(persons=400, seed=5)


def test_mix_names_and_weights() -> None:
    assert parse_mix("default") == DEFAULT_MIX
    assert parse_mix("settle") == {"outpatient_settle": 1}
    assert parse_mix("person_info=3, cancel=1") == {"person_info": 3, "cancel": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nosuch=1", "unknown scenario 'nosuch'"),
        ("person_info", "needs a whole-number weight"),
        ("person_info=-1", "needs a whole-number weight"),
        ("person_info=0,cancel=0", "every weight is zero"),
    ],
)
def test_bad_mix_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mix(text)


def test_rates_over_time() -> None:
    assert parse_rate(250, None, None, 60)(30) == 250
    ramp = parse_rate(None, "100:500", None, 40)
    assert (ramp(0), ramp(20), ramp(40), ramp(99)) == (100, 300, 500, 500)
    steps = parse_rate(None, None, "100x10,200x5", 60)
    assert (steps(0), steps(9.9), steps(10), steps(14.9), steps(30)) == (100, 100, 200, 200, 200)


@pytest.mark.parametrize(
    ("rate", "ramp", "steps", "message"),
    [
        (None, None, None, "exactly one of"),
        (10.0, "1:2", None, "exactly one of"),
        (0.0, None, None, "must be positive"),
        (None, "fast", None, "--ramp must look like"),
        (None, "0:10", None, "positive rates"),
        (None, None, "100y10", "--steps must look like"),
        (None, None, "100x0", "positive rates and seconds"),
    ],
)
def test_bad_rates_are_refused(rate: float | None, ramp: str | None, steps: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rate(rate, ramp, steps, 60)


def test_a_card_is_in_one_request_at_a_time(world: dict[str, Any]) -> None:
    fleet = Fleet(world, seed=1)
    leased = [fleet.verified.lease() for _ in range(len(fleet.verified))]
    assert fleet.verified.lease() is None
    assert len({c.card_sn for c in leased if c}) == len(leased)
    fleet.verified.release(leased[0])
    assert fleet.verified.lease() is leased[0]


def test_windows_bound_the_requests_in_flight_per_psam(world: dict[str, Any]) -> None:
    fleet = Fleet(world, seed=1)
    fleet.set_windows(2)
    pharmacies = len(fleet.sites["pharmacy"])
    got = [fleet.lease_site("pharmacy") for _ in range(2 * pharmacies)]
    assert all(s is not None for s in got)
    assert fleet.lease_site("pharmacy") is None
    Fleet.release_site(got[0])
    assert fleet.lease_site("pharmacy") is got[0]


def test_counters_continue_from_a_saved_state(world: dict[str, Any]) -> None:
    first = Fleet(world, seed=1)
    card = next(iter(first.cards.values()))
    card.atc = 41
    first.all_sites[0].terminal.tseq = 7
    second = Fleet(world, seed=1)
    second.load_state(first.state())
    assert second.cards[card.card_sn].atc == 41
    assert second.all_sites[0].terminal.tseq == 7
    with pytest.raises(ValueError, match="not a onecard loadtest state"):
        second.load_state({"format": 99})


def test_every_scenario_plans_a_request_the_gateway_would_authenticate(world: dict[str, Any]) -> None:
    fleet = Fleet(world, seed=1)
    planner = Planner(fleet, world, DEFAULT_MIX, seed=1)
    keys = CardKeyCache(MasterKeys(DEV_KEYS))
    for name in DEFAULT_MIX:
        if name == "cancel":
            continue  # needs a settlement first: below
        action = planner.plan(name)
        assert action is not None, name
        env = parse_envelope(action.built.body)
        if name == "forged_mac":
            assert action.expect == {"MAC_INVALID"}
            assert not action.mac2
        else:
            verify(env, mac_amount(env), keys)  # raises on a bad MAC1 or TAC
        planner.release(action, None)
    assert planner.plan("cancel") is None  # nothing settled yet
    action = planner.plan("outpatient_settle")
    assert action is not None
    reply = {
        "infcode": 0,
        "output": {"setlinfo": {"setl_id": "S1", "psn_no": action.card.psn_no if action.card else ""}},
    }
    planner.release(action, reply)
    cancel = planner.plan("cancel")
    assert cancel is not None
    assert cancel.infno == "2208"
    assert cancel.built.body["input"]["data"]["setl_id"] == "S1"
    assert cancel.site.terminal.fixmedins_code == action.site.terminal.fixmedins_code
