"""Every case of vectors/settlement.json through rules.split (SPEC §9)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.domain.money import yuan_to_fen
from rules.catalogue import Catalogue
from rules.params import Policy
from rules.pricing import FeeLine, PricedLine, price_lines
from rules.split import PersonYear, split
from tests.vectors import load

CASES = load("settlement.json")["cases"]


def person_of(case):
    p = case["person"]
    return PersonYear(yuan_to_fen(p["inscp_ytd"]), yuan_to_fen(p["fund_paid_ytd"]), yuan_to_fen(p["balance"]))


def acct_limit_of(case):
    # acct_used_flag "0": the holder declined account payment, so the account may pay nothing.
    return 0 if case["person"]["acct_used_flag"] == "0" else None


def priced_of(case):
    return [
        PricedLine(
            cls=line["class"],
            amount=yuan_to_fen(line["amount"]),
            cap=yuan_to_fen(line["price_cap"]) if "price_cap" in line else None,
            feedetl_sn=str(n),
        )
        for n, line in enumerate(case["lines"], start=1)
    ]


def assert_expected(result, case):
    got = {name: getattr(result, name) for name in case["expect"]}
    want = {name: yuan_to_fen(value) for name, value in case["expect"].items()}
    assert got == want


def test_vectors_are_present():
    """The vectors file has cases, so the parametrised tests below cannot pass vacuously."""
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
class TestSettlementVectors:
    def test_split_matches_vector(self, case):
        """split() of the vector's lines, policy and person gives every expected setlinfo amount."""
        policy = Policy.from_mapping(case["policy"], name=case["name"])
        result = split(priced_of(case), policy, person_of(case), acct_limit=acct_limit_of(case))
        assert_expected(result, case)
        assert result.hosp_part_amt == 0

    def test_split_through_catalogue(self, case):
        """The same bill priced from a catalogue (cap per unit, cnt 1) gives the same split."""
        records = [
            {
                "med_list_codg": f"T{n:04d}",
                "name": f"item {n}",
                "class": line["class"],
                "price": line["amount"],
            }
            | ({"price_cap": line["price_cap"]} if "price_cap" in line else {})
            for n, line in enumerate(case["lines"], start=1)
        ]
        catalogue = Catalogue.from_records(records)
        fee_lines = [
            FeeLine(str(n), f"T{n:04d}", yuan_to_fen(line["amount"]), Decimal(1))
            for n, line in enumerate(case["lines"], start=1)
        ]
        policy = Policy.from_mapping(case["policy"], name=case["name"])
        result = split(price_lines(fee_lines, catalogue), policy, person_of(case), acct_limit=acct_limit_of(case))
        assert_expected(result, case)
