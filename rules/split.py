"""Settlement split (SPEC §9): per-line class/cap/B share, deductible, banded pooled fund, account and cash.

Exact integer/rational arithmetic on fen; the fund is rounded half-up once, to the fen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from fractions import Fraction

from gateway.domain.money import mul_ratio_half_up
from rules._fields import Ratio, fen_problem
from rules.params import Band, Policy
from rules.pricing import FeeLine, PricedLine, UnknownItem, line_cap, price_lines

__all__ = [
    "FeeLine",
    "LineSplit",
    "PersonYear",
    "PricedLine",
    "Split",
    "UnknownItem",
    "fund_details",
    "line_cap",
    "line_parts",
    "price_lines",
    "split",
]

# FSI fund_pay_type of the pooled fund per insutype (setldetail[]); the personal account is not a fund row.
POOLED_FUND_TYPE = {"310": "310100", "390": "390100"}


@dataclass(frozen=True, slots=True)
class PersonYear:
    """The person's accumulators for this year and account balance, in fen."""

    inscp_ytd: int  # in-scope cost so far this year (Y)
    fund_paid_ytd: int  # pooled fund paid so far this year
    balance: int  # personal account balance

    def __post_init__(self) -> None:
        bad = [f.name for f in fields(self) if fen_problem(getattr(self, f.name))]
        if bad:
            raise ValueError(f"PersonYear: {', '.join(bad)} must be non-negative ints of fen")


@dataclass(frozen=True, slots=True)
class LineSplit:
    """One line's four parts; they sum to its amount."""

    feedetl_sn: str
    fulamt_ownpay_amt: int
    overlmt_selfpay: int
    preselfpay_amt: int
    inscp_scp_amt: int


_AMOUNTS = (
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "fund_pay_sumamt",
    "hosp_part_amt",
    "psn_part_amt",
    "acct_pay",
    "psn_cash_pay",
)


@dataclass(frozen=True, slots=True)
class Split:
    """`setlinfo` amounts in fen (SPEC §6.3), whether a limit held the account back, and per-line parts."""

    medfee_sumamt: int
    fulamt_ownpay_amt: int
    overlmt_selfpay: int
    preselfpay_amt: int
    inscp_scp_amt: int
    act_pay_dedc: int
    hifp_pay: int
    fund_pay_sumamt: int
    hosp_part_amt: int
    psn_part_amt: int
    acct_pay: int
    psn_cash_pay: int
    acct_pay_capped: bool
    lines: tuple[LineSplit, ...] = ()

    def __post_init__(self) -> None:
        problems = [name for name in _AMOUNTS if fen_problem(getattr(self, name))]
        if problems:
            raise ValueError(f"Split: {', '.join(problems)} must be non-negative ints of fen")
        parts = self.fulamt_ownpay_amt + self.overlmt_selfpay + self.preselfpay_amt + self.inscp_scp_amt
        checks = {
            "medfee_sumamt = fulamt_ownpay_amt + overlmt_selfpay + preselfpay_amt + inscp_scp_amt": (
                self.medfee_sumamt == parts
            ),
            "psn_part_amt = medfee_sumamt - fund_pay_sumamt - hosp_part_amt": (
                self.psn_part_amt == self.medfee_sumamt - self.fund_pay_sumamt - self.hosp_part_amt
            ),
            "psn_part_amt = acct_pay + psn_cash_pay": self.psn_part_amt == self.acct_pay + self.psn_cash_pay,
            "fund_pay_sumamt = hifp_pay (one fund)": self.fund_pay_sumamt == self.hifp_pay,
            "act_pay_dedc <= inscp_scp_amt": self.act_pay_dedc <= self.inscp_scp_amt,
            "lines sum to the totals": not self.lines or _line_totals(self.lines) == self._totals(),
        }
        broken = [name for name, ok in checks.items() if not ok]
        if broken:
            raise ValueError(f"Split breaks {'; '.join(broken)}: {self!r}")

    def _totals(self) -> tuple[int, int, int, int]:
        return (self.fulamt_ownpay_amt, self.overlmt_selfpay, self.preselfpay_amt, self.inscp_scp_amt)


def _line_totals(lines: Sequence[LineSplit]) -> tuple[int, int, int, int]:
    return (
        sum(x.fulamt_ownpay_amt for x in lines),
        sum(x.overlmt_selfpay for x in lines),
        sum(x.preselfpay_amt for x in lines),
        sum(x.inscp_scp_amt for x in lines),
    )


def classify(line: PricedLine, b_selfpay: Ratio) -> LineSplit:
    """SPEC §9 per line: C self-paid; excess over cap; B share of the rest (half-up); the rest in scope."""
    if line.cls == "C":
        return LineSplit(line.feedetl_sn, line.amount, 0, 0, 0)
    over = 0 if line.cap is None else max(0, line.amount - line.cap)
    rest = line.amount - over
    pre = 0
    if line.cls == "B":
        num, den = line.b_selfpay or b_selfpay
        pre = mul_ratio_half_up(rest, num, den)
    return LineSplit(line.feedetl_sn, 0, over, pre, rest - pre)


def line_parts(lines: Sequence[PricedLine], b_selfpay: Ratio) -> tuple[LineSplit, ...]:
    """The per-line part of SPEC §9 for every line (2204's `result[]` and the settlement's split alike)."""
    return tuple(classify(line, b_selfpay) for line in lines)


def deductible_paid(policy: Policy, inscp: int, inscp_ytd: int) -> int:
    """act_pay_dedc: per visit min(D, inscp); per year what is left of D after Y, at most inscp."""
    if policy.deductible_scope == "visit":
        return min(policy.deductible, inscp)
    return min(max(policy.deductible - inscp_ytd, 0), inscp)


def banded_fund(low: int, high: int, bands: Sequence[Band]) -> Fraction:
    """Exact Σ ratio × |[low, high] ∩ band| over the bands of the cumulative in-scope axis (fen)."""
    total = Fraction(0)
    lower = 0
    for upper, (num, den) in bands:
        top = high if upper is None else min(high, upper)
        overlap = top - max(low, lower)
        if overlap > 0:
            total += Fraction(overlap * num, den)
        if upper is None or upper >= high:
            break
        lower = upper
    return total


def _half_up(value: Fraction) -> int:
    q, r = divmod(value.numerator, value.denominator)
    return q + 1 if 2 * r >= value.denominator else q


def split(lines: Sequence[PricedLine], policy: Policy, person: PersonYear, *, acct_limit: int | None) -> Split:
    """Split a bill between fund, personal account and cash (SPEC §9).

    acct_limit: None = no limit beyond balance and personal part; 0 = no account payment (acct_used_flag "0",
    pin NONE); otherwise the default-PIN room the caller computed from `PinCaps` and today's usage (SPEC §7).
    """
    if acct_limit is not None and (isinstance(acct_limit, bool) or acct_limit < 0):
        raise ValueError("acct_limit must be None or a non-negative int of fen")
    parts = line_parts(lines, policy.b_selfpay)
    full, over, pre, inscp = _line_totals(parts)
    medfee = full + over + pre + inscp
    dedc = deductible_paid(policy, inscp, person.inscp_ytd)
    # Both scopes reduce to the segment [Y + act_pay_dedc, Y + inscp] on the cumulative in-scope axis; for
    # year scope that equals SPEC §9's [max(D, Y), Y + inscp] (empty when D is not reached).
    low, high = person.inscp_ytd + dedc, person.inscp_ytd + inscp
    fund = min(_half_up(banded_fund(low, high, policy.bands)), max(0, policy.annual_cap - person.fund_paid_ytd))
    hosp = 0
    psn_part = medfee - fund - hosp
    room = min(person.balance, psn_part)
    acct = room if acct_limit is None else min(room, acct_limit)
    return Split(
        medfee_sumamt=medfee,
        fulamt_ownpay_amt=full,
        overlmt_selfpay=over,
        preselfpay_amt=pre,
        inscp_scp_amt=inscp,
        act_pay_dedc=dedc,
        hifp_pay=fund,
        fund_pay_sumamt=fund,
        hosp_part_amt=hosp,
        psn_part_amt=psn_part,
        acct_pay=acct,
        psn_cash_pay=psn_part - acct,
        acct_pay_capped=acct < room,
        lines=parts,
    )


def fund_details(result: Split, insutype: str) -> list[tuple[str, int]]:
    """setldetail[] rows (fund_pay_type, fund_payamt): the pooled fund when it paid anything.

    Raises:
        ValueError: insutype has no known pooled fund type.
    """
    try:
        fund_type = POOLED_FUND_TYPE[insutype]
    except KeyError:
        raise ValueError(f"no pooled fund_pay_type for insutype {insutype!r}") from None
    return [(fund_type, result.hifp_pay)] if result.hifp_pay else []
