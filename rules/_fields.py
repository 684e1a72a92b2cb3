"""Field parsers shared by the catalogue and policy loaders: yuan to fen, ratio text to exact (num, den).

Each parser raises ValueError with a short message; `Problems` collects them so a loader reports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from gateway.domain.money import ratio_of, yuan_to_fen

Ratio = tuple[int, int]
T = TypeVar("T")


def parse_fen(value: object, field: str) -> int:
    """A yuan amount ("12.50", 12.5 or 12) as non-negative int fen."""
    return int(yuan_to_fen(value, field=field))


def parse_ratio(value: object, field: str) -> Ratio:
    """A share between 0 and 1 written as decimal text ("0.10") as an exact (num, den) pair."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ValueError(f"{field} must be a decimal ratio such as '0.10'")
    try:
        num, den = ratio_of(str(value))
    except (ValueError, ArithmeticError):
        raise ValueError(f"{field} is not a ratio: {value!r}") from None
    if num > den:
        raise ValueError(f"{field} must be between 0 and 1, got {value!r}")
    return num, den


def ratio_problem(value: object) -> str | None:
    """Why `value` is not a (num, den) share between 0 and 1, or None when it is one."""
    if not (isinstance(value, tuple) and len(value) == 2):
        return "must be a (numerator, denominator) pair"
    num, den = value
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (num, den)):
        return "must hold two ints"
    if den <= 0 or num < 0 or num > den:
        return "must be a share between 0 and 1 with a positive denominator"
    return None


def fen_problem(value: object, *, optional: bool = False) -> str | None:
    """Why `value` is not a non-negative int of fen (None allowed when optional), or None when it is."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an int of fen"
    if value < 0:
        return "must not be negative"
    return None


def text(value: object, field: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string")
    return value


class Problems:
    """Collects field errors so a loader can report all of them in one ValueError."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        """Record one problem."""
        self.items.append(message)

    def parse(self, fn: Callable[[object, str], T], value: object, field: str, where: str) -> T | None:
        """fn(value, field), or None after recording its ValueError under `where`."""
        try:
            return fn(value, field)
        except ValueError as exc:
            self.items.append(f"{where}: {exc}")
            return None

    def raise_if_any(self, title: str) -> None:
        """Raise one ValueError listing every recorded problem."""
        if self.items:
            shown = self.items[:50]
            more = f"\n  ... and {len(self.items) - 50} more" if len(self.items) > 50 else ""
            raise ValueError(f"{title}: {len(self.items)} problem(s)\n  " + "\n  ".join(shown) + more)
