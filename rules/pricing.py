"""Fee lines priced against the catalogue: each line's class, amount, line price cap and B-share override."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from gateway.domain.money import round_half_up_fen
from rules._fields import Ratio, fen_problem, ratio_problem
from rules.catalogue import CLASSES, Catalogue


class UnknownItem(KeyError):
    """A fee line's `med_list_codg` is not in the catalogue; `.code` holds it."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code

    def __str__(self) -> str:
        return f"med_list_codg {self.code!r} is not in the catalogue"


@dataclass(frozen=True, slots=True)
class FeeLine:
    """One `feedetail` line as the gateway passes it (amount = det_item_fee_sumamt in fen)."""

    feedetl_sn: str
    med_list_codg: str
    amount: int  # fen
    cnt: Decimal

    def __post_init__(self) -> None:
        if fen_problem(self.amount):
            raise ValueError(f"fee line {self.feedetl_sn!r}: amount must be a non-negative int of fen")
        if not isinstance(self.cnt, Decimal) or not self.cnt.is_finite() or self.cnt <= 0:
            raise ValueError(f"fee line {self.feedetl_sn!r}: cnt must be a positive Decimal")


@dataclass(frozen=True, slots=True)
class PricedLine:
    """A fee line as the split needs it: class, amount, line cap (fen, None = no cap), B-share override."""

    cls: str  # "A" | "B" | "C"
    amount: int  # fen
    cap: int | None = None  # the whole line's cap: per-unit price_cap x cnt
    b_selfpay: Ratio | None = None  # overrides the policy's B self-pay share
    feedetl_sn: str = ""
    med_list_codg: str = ""

    def __post_init__(self) -> None:
        problems = [f"{n} {p}" for n in ("amount", "cap") if (p := fen_problem(getattr(self, n), optional=n == "cap"))]
        if self.cls not in CLASSES:
            problems.append(f"cls must be A, B or C, got {self.cls!r}")
        if self.b_selfpay is not None and (p := ratio_problem(self.b_selfpay)):
            problems.append(f"b_selfpay {p}")
        if problems:
            raise ValueError(f"priced line {self.feedetl_sn!r}: " + "; ".join(problems))


def line_cap(price_cap: int, cnt: Decimal) -> int:
    """A line's cap in fen: the per-unit cap times the count, rounded half-up to the fen."""
    return int(round_half_up_fen(Decimal(price_cap) * cnt))


def price_lines(lines: Sequence[FeeLine], catalogue: Catalogue) -> list[PricedLine]:
    """Look every line up in the catalogue.

    Raises:
        UnknownItem: the first line whose code the catalogue lacks.
    """
    out: list[PricedLine] = []
    for line in lines:
        item = catalogue.get(line.med_list_codg)
        if item is None:
            raise UnknownItem(line.med_list_codg)
        cap = None if item.price_cap is None else line_cap(item.price_cap, line.cnt)
        out.append(PricedLine(item.cls, line.amount, cap, item.b_selfpay, line.feedetl_sn, line.med_list_codg))
    return out
