"""rules.split: per-line classes and caps, deductible scopes, bands, annual cap, account limit, identities."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.money import ratio_of
from rules.catalogue import Catalogue
from rules.params import Policy
from rules.pricing import FeeLine, PricedLine, UnknownItem, price_lines
from rules.split import PersonYear, Split, fund_details, split

YUAN = 100  # fen per yuan
NOBODY = PersonYear(inscp_ytd=0, fund_paid_ytd=0, balance=0)
TIER3_BANDS = ((20_000 * YUAN, "0.75"), (50_000 * YUAN, "0.77"), (None, "0.79"))


def make_policy(*, bands=((None, "0.70"),), deductible=0, scope="visit", cap=10**9, b_selfpay="0.10"):
    """A Policy from fen amounts and ratio strings."""
    return Policy("t", ratio_of(b_selfpay), cap, scope, deductible, tuple((u, ratio_of(r)) for u, r in bands))


def a_line(amount, cls="A", cap=None, b_selfpay=None):
    return PricedLine(cls, amount, cap, None if b_selfpay is None else ratio_of(b_selfpay))


def split_one(amount, policy, person=NOBODY, acct_limit=None):
    """Split a bill of a single class A line (all in scope)."""
    return split([a_line(amount)], policy, person, acct_limit=acct_limit)


class TestLines:
    def test_class_c_is_fully_self_paid_even_with_a_cap(self):
        """Class C lines go wholly to fulamt_ownpay_amt; their cap is irrelevant."""
        r = split([a_line(50_000, "C", cap=10_000)], make_policy(), NOBODY, acct_limit=None)
        assert (r.fulamt_ownpay_amt, r.overlmt_selfpay, r.preselfpay_amt, r.inscp_scp_amt) == (
            50_000,
            0,
            0,
            0,
        )

    def test_class_a_above_cap(self):
        """An A line's excess over its cap is over-limit self-pay, the rest in scope, no B share."""
        r = split([a_line(12_345, "A", cap=10_000)], make_policy(), NOBODY, acct_limit=None)
        assert (r.overlmt_selfpay, r.preselfpay_amt, r.inscp_scp_amt) == (2_345, 0, 10_000)

    def test_class_b_under_cap_pays_share_of_whole_line(self):
        """A B line below its cap: no over-limit part, the share of the whole amount."""
        r = split([a_line(9_000, "B", cap=10_000)], make_policy(), NOBODY, acct_limit=None)
        assert (r.overlmt_selfpay, r.preselfpay_amt, r.inscp_scp_amt) == (0, 900, 8_100)

    def test_item_share_overrides_policy_share(self):
        """A catalogue item's own b_selfpay replaces the policy's for that line only."""
        lines = [a_line(10_000, "B", b_selfpay="0.30"), a_line(10_000, "B")]
        r = split(lines, make_policy(b_selfpay="0.10"), NOBODY, acct_limit=None)
        assert r.preselfpay_amt == 3_000 + 1_000
        assert [x.preselfpay_amt for x in r.lines] == [3_000, 1_000]

    def test_b_share_rounds_half_up_per_line(self):
        """Three B lines of 0.05 yuan at 10%: each 0.005 rounds up to 0.01, so 0.03, not round(0.015)."""
        r = split([a_line(5, "B")] * 3, make_policy(), NOBODY, acct_limit=None)
        assert r.preselfpay_amt == 3
        assert r.inscp_scp_amt == 12

    def test_b_share_rounds_down_below_half(self):
        """0.14 yuan at 10% is 0.014, which rounds down to 0.01."""
        r = split([a_line(14, "B")], make_policy(), NOBODY, acct_limit=None)
        assert r.preselfpay_amt == 1


class TestPriceLines:
    CAT = Catalogue.from_records(
        [
            {
                "med_list_codg": "B1",
                "name": "b",
                "class": "B",
                "price": "3.33",
                "price_cap": "3.33",
                "b_selfpay": "0.2",
            },
            {"med_list_codg": "A1", "name": "a", "class": "A", "price": "1.00"},
        ]
    )

    def test_line_cap_is_unit_cap_times_cnt_half_up(self):
        """3.33 per unit x 1.5 = 4.995 yuan rounds half-up to a 5.00 line cap; no cap stays None."""
        lines = [FeeLine("1", "B1", 600, Decimal("1.5")), FeeLine("2", "A1", 300, Decimal(3))]
        b, a = price_lines(lines, self.CAT)
        assert (b.cls, b.amount, b.cap, b.b_selfpay, b.feedetl_sn, b.med_list_codg) == (
            "B",
            600,
            500,
            (2, 10),
            "1",
            "B1",
        )
        assert (a.cls, a.cap, a.b_selfpay) == ("A", None, None)

    def test_unknown_code(self):
        """A code missing from the catalogue raises UnknownItem carrying the code."""
        with pytest.raises(UnknownItem) as info:
            price_lines([FeeLine("1", "A1", 100, Decimal(1)), FeeLine("2", "NOPE", 1, Decimal(1))], self.CAT)
        assert info.value.code == "NOPE"
        assert isinstance(info.value, KeyError)
        assert "NOPE" in str(info.value)

    def test_fee_line_validates(self):
        """Negative amounts and non-positive counts are refused."""
        with pytest.raises(ValueError, match="amount"):
            FeeLine("1", "A1", -1, Decimal(1))
        with pytest.raises(ValueError, match="cnt"):
            FeeLine("1", "A1", 1, Decimal(0))


class TestDeductibleAndBands:
    def test_domain_banded_example_in_service(self):
        """DOMAIN.md §5.3: tier 3, deductible 1000 per visit, in scope 60,000: 19k*75% + 30k*77% + 10k*79%."""
        r = split_one(60_000 * YUAN, make_policy(bands=TIER3_BANDS, deductible=1_000 * YUAN))
        assert r.act_pay_dedc == 1_000 * YUAN
        assert r.hifp_pay == r.fund_pay_sumamt == 45_250 * YUAN

    def test_domain_banded_example_retired(self):
        """DOMAIN.md §5.3 retiree bands 79/81/83% give 47,610.00."""
        bands = ((20_000 * YUAN, "0.79"), (50_000 * YUAN, "0.81"), (None, "0.83"))
        assert split_one(60_000 * YUAN, make_policy(bands=bands, deductible=1_000 * YUAN)).hifp_pay == 47_610 * YUAN

    def test_year_scope_partly_used_deductible(self):
        """Year scope: D 1000, Y 600 already this year, bill 1000 at 80%: deductible 400, fund 480."""
        policy = make_policy(bands=((None, "0.80"),), deductible=1_000 * YUAN, scope="year")
        r = split_one(1_000 * YUAN, policy, PersonYear(600 * YUAN, 0, 0))
        assert (r.act_pay_dedc, r.hifp_pay) == (400 * YUAN, 480 * YUAN)

    def test_year_scope_deductible_already_met(self):
        """Year scope with Y above D: nothing more is deducted."""
        policy = make_policy(bands=((None, "0.80"),), deductible=1_000 * YUAN, scope="year")
        r = split_one(1_000 * YUAN, policy, PersonYear(1_500 * YUAN, 0, 0))
        assert (r.act_pay_dedc, r.hifp_pay) == (0, 800 * YUAN)

    def test_year_scope_deductible_not_reached(self):
        """Year scope: a bill that does not reach D is all deductible and the fund pays nothing."""
        policy = make_policy(deductible=1_000 * YUAN, scope="year")
        r = split_one(300 * YUAN, policy, PersonYear(200 * YUAN, 0, 0))
        assert (r.act_pay_dedc, r.hifp_pay) == (300 * YUAN, 0)

    def test_year_scope_bands_start_at_y(self):
        """Year scope, Y 19,000 above D: the segment [19,000, 22,000] spans two bands: 750 + 1540."""
        policy = make_policy(bands=TIER3_BANDS, deductible=1_000 * YUAN, scope="year")
        r = split_one(3_000 * YUAN, policy, PersonYear(19_000 * YUAN, 0, 0))
        assert (r.act_pay_dedc, r.hifp_pay) == (0, 2_290 * YUAN)

    def test_visit_scope_deductible_shifts_segment_past_y(self):
        """Visit scope, Y 19,000: this visit's deductible makes the segment [20,000, 22,000] at 77%."""
        policy = make_policy(bands=TIER3_BANDS, deductible=1_000 * YUAN, scope="visit")
        r = split_one(3_000 * YUAN, policy, PersonYear(19_000 * YUAN, 0, 0))
        assert (r.act_pay_dedc, r.hifp_pay) == (1_000 * YUAN, 1_540 * YUAN)

    def test_visit_scope_small_bill(self):
        """Visit scope: a bill below D is wholly deductible."""
        r = split_one(500 * YUAN, make_policy(deductible=1_000 * YUAN))
        assert (r.act_pay_dedc, r.hifp_pay, r.psn_part_amt) == (500 * YUAN, 0, 500 * YUAN)

    def test_fund_rounds_once_over_bands(self):
        """Band parts 0.5 fen + 0.5 fen are summed exactly (1 fen), not rounded per band (2 fen)."""
        bands = ((1, "0.50"), (None, "0.50"))
        assert split_one(2, make_policy(bands=bands)).hifp_pay == 1


class TestAnnualCap:
    def test_exhausted_cap_pays_nothing(self):
        """With the annual cap used up (or overshot) the fund pays 0."""
        for paid in (100_000 * YUAN, 120_000 * YUAN):
            r = split_one(5_000 * YUAN, make_policy(cap=100_000 * YUAN), PersonYear(0, paid, 0))
            assert r.hifp_pay == 0
            assert r.psn_part_amt == 5_000 * YUAN

    def test_remaining_cap_clamps(self):
        """Only what is left under the cap is paid."""
        r = split_one(5_000 * YUAN, make_policy(cap=100_000 * YUAN), PersonYear(0, 99_000 * YUAN, 0))
        assert r.hifp_pay == 1_000 * YUAN


class TestAccount:
    POLICY = make_policy(bands=((None, "0.50"),))  # 1000.00 bill: fund 500.00, personal part 500.00

    def test_limit_caps_account(self):
        """A default-PIN limit below balance and personal part holds the account back and says so."""
        r = split_one(1_000 * YUAN, self.POLICY, PersonYear(0, 0, 2_000 * YUAN), acct_limit=300 * YUAN)
        assert (r.acct_pay, r.psn_cash_pay, r.acct_pay_capped) == (300 * YUAN, 200 * YUAN, True)

    def test_limit_not_binding(self):
        """A limit above the personal part changes nothing and is not reported as capping."""
        r = split_one(1_000 * YUAN, self.POLICY, PersonYear(0, 0, 2_000 * YUAN), acct_limit=600 * YUAN)
        assert (r.acct_pay, r.psn_cash_pay, r.acct_pay_capped) == (500 * YUAN, 0, False)

    def test_balance_binds_before_limit(self):
        """A small balance, not the limit, is what limits the account: not capped."""
        r = split_one(1_000 * YUAN, self.POLICY, PersonYear(0, 0, 100 * YUAN), acct_limit=300 * YUAN)
        assert (r.acct_pay, r.psn_cash_pay, r.acct_pay_capped) == (100 * YUAN, 400 * YUAN, False)

    def test_no_limit(self):
        """acct_limit None: the account pays min(balance, personal part)."""
        r = split_one(1_000 * YUAN, self.POLICY, PersonYear(0, 0, 2_000 * YUAN), acct_limit=None)
        assert (r.acct_pay, r.psn_cash_pay, r.acct_pay_capped) == (500 * YUAN, 0, False)

    def test_zero_limit_means_no_account(self):
        """acct_limit 0 (acct_used_flag "0" or pin NONE): cash pays the whole personal part."""
        r = split_one(1_000 * YUAN, self.POLICY, PersonYear(0, 0, 2_000 * YUAN), acct_limit=0)
        assert (r.acct_pay, r.psn_cash_pay) == (0, 500 * YUAN)

    def test_negative_limit_refused(self):
        """A negative limit is a caller bug."""
        with pytest.raises(ValueError, match="acct_limit"):
            split_one(1, self.POLICY, acct_limit=-1)


class TestSplitValue:
    GOOD: ClassVar[dict[str, object]] = dict(
        medfee_sumamt=100,
        fulamt_ownpay_amt=10,
        overlmt_selfpay=0,
        preselfpay_amt=5,
        inscp_scp_amt=85,
        act_pay_dedc=0,
        hifp_pay=60,
        fund_pay_sumamt=60,
        hosp_part_amt=0,
        psn_part_amt=40,
        acct_pay=30,
        psn_cash_pay=10,
        acct_pay_capped=False,
    )

    def test_consistent_split_builds(self):
        """A Split satisfying the SPEC §6.3 identities is accepted."""
        assert Split(**self.GOOD).psn_part_amt == 40

    @pytest.mark.parametrize(
        "change",
        [
            {"medfee_sumamt": 101},
            {"psn_part_amt": 41},
            {"psn_cash_pay": 11},
            {"hifp_pay": 59},
            {"acct_pay": -1},
        ],
    )
    def test_broken_identity_raises_value_error(self, change):
        """Any broken identity or negative amount raises ValueError."""
        with pytest.raises(ValueError, match="Split"):
            Split(**(self.GOOD | change))

    def test_fund_details(self):
        """setldetail rows: the pooled fund type of the insutype, omitted when it paid nothing."""
        r = Split(**self.GOOD)
        assert fund_details(r, "310") == [("310100", 60)]
        assert fund_details(r, "390") == [("390100", 60)]
        assert fund_details(split_one(0, make_policy()), "310") == []
        with pytest.raises(ValueError, match="insutype"):
            fund_details(r, "999")


# Property tests compare with an independent Decimal oracle.

RATIO_TEXT = st.integers(0, 100).map(lambda n: str(Decimal(n) / 100))


@st.composite
def policies(draw):
    uppers = sorted(draw(st.lists(st.integers(1, 10_000_000), max_size=3, unique=True)))
    ratios = draw(st.lists(RATIO_TEXT, min_size=len(uppers) + 1, max_size=len(uppers) + 1))
    return make_policy(
        bands=tuple(zip([*uppers, None], ratios, strict=True)),
        deductible=draw(st.integers(0, 300_000)),
        scope=draw(st.sampled_from(["visit", "year"])),
        cap=draw(st.integers(0, 50_000_000)),
        b_selfpay=draw(RATIO_TEXT),
    )


LINES = st.lists(
    st.builds(
        a_line,
        amount=st.integers(0, 2_000_000),
        cls=st.sampled_from("ABC"),
        cap=st.none() | st.integers(0, 2_000_000),
        b_selfpay=st.none() | RATIO_TEXT,
    ),
    max_size=8,
)
PEOPLE = st.builds(PersonYear, st.integers(0, 20_000_000), st.integers(0, 60_000_000), st.integers(0, 5_000_000))


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def oracle(lines, policy, person):
    """SPEC §9 written out again in Decimal, independently of rules.split."""
    inscp = 0
    for line in lines:
        if line.cls == "C":
            continue
        rest = line.amount if line.cap is None else min(line.amount, line.cap)
        num, den = line.b_selfpay or policy.b_selfpay
        inscp += rest - (half_up(Decimal(rest) * num / den) if line.cls == "B" else 0)
    y, d = person.inscp_ytd, policy.deductible
    # Visit scope: this visit's deductible comes first; year scope: SPEC §9's wording [max(D, Y), Y + inscp].
    low = y + min(d, inscp) if policy.deductible_scope == "visit" else max(d, y)
    high = y + inscp
    total, lower = Decimal(0), 0
    for upper, (num, den) in policy.bands:
        top = high if upper is None else upper
        total += Decimal(max(0, min(high, top) - max(low, lower))) * num / den
        lower = top if upper is not None else lower
    return inscp, min(half_up(total), max(0, policy.annual_cap - person.fund_paid_ytd))


class TestProperties:
    @settings(max_examples=300, database=None, deadline=None)
    @given(lines=LINES, policy=policies(), person=PEOPLE, limit=st.none() | st.integers(0, 3_000_000))
    def test_identities_and_oracle(self, lines, policy, person, limit):
        """Random bills satisfy the SPEC §6.3 identities and match the independent Decimal oracle."""
        r = split(lines, policy, person, acct_limit=limit)
        assert r.medfee_sumamt == sum(line.amount for line in lines)
        assert r.medfee_sumamt == r.fulamt_ownpay_amt + r.overlmt_selfpay + r.preselfpay_amt + r.inscp_scp_amt
        assert r.psn_part_amt == r.medfee_sumamt - r.fund_pay_sumamt - r.hosp_part_amt == r.acct_pay + r.psn_cash_pay
        assert (r.inscp_scp_amt, r.hifp_pay) == oracle(lines, policy, person)
        assert r.hifp_pay <= r.inscp_scp_amt - r.act_pay_dedc
        assert 0 <= r.acct_pay <= min(person.balance, r.psn_part_amt)
        if limit is not None:
            assert r.acct_pay <= limit
        assert r.acct_pay_capped == (limit is not None and limit < min(person.balance, r.psn_part_amt))
        assert min(r.psn_cash_pay, r.act_pay_dedc, r.preselfpay_amt, r.overlmt_selfpay) >= 0
