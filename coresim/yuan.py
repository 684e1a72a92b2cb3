"""The simulator's own yuan/fen wire codec. Written apart from the gateway's `gateway.domain.money` on purpose:
the simulator checks the gateway, so a yuan/fen bug on either side must show up end to end, not be shared."""

from __future__ import annotations

import math
import re

MAX_FEN = 99_999_999_999  # about a billion yuan: anything larger is a malformed amount, not a payment

# Digits, an optional point and decimals; decimals past the second must be zeros ("1.50", "1.5", "2", "3.000").
_TEXT = re.compile(r"(\d*)(?:\.(\d*))?")


class AmountError(ValueError):
    """A wire amount is not a non-negative number of yuan with at most two decimals; the message names it."""


def fen_of(value: object, *, field: str = "amount") -> int:
    """Integer fen of a wire amount in yuan: a JSON number, or a decimal string as world files write it.

    Raises:
        AmountError: not a number, negative, more than two decimals, or absurdly large.
    """
    if isinstance(value, bool):
        raise AmountError(f"{field} must be a number in yuan")
    if isinstance(value, int):
        return _bounded(value * 100, field)
    if isinstance(value, float):
        return _bounded(_float_fen(value, field), field)
    if isinstance(value, str):
        return _bounded(_text_fen(value, field), field)
    raise AmountError(f"{field} must be a number in yuan")


def _float_fen(value: float, field: str) -> int:
    if not math.isfinite(value):
        raise AmountError(f"{field} is not a finite number")
    if value < 0:
        raise AmountError(f"{field} must not be negative")
    if value >= 1e12:  # before rounding: keeps the cents test below inside float precision
        raise AmountError(f"{field} is too large")
    fen = round(value * 100)
    # Exactly two decimals means the nearest double to fen/100 is the value itself (both are correctly rounded).
    if fen / 100 != value:
        raise AmountError(f"{field} has more than two decimals")
    return fen


def _text_fen(text: str, field: str) -> int:
    negative = text.startswith("-")
    match = _TEXT.fullmatch(text[1:] if negative else text)
    if match is None or not (match.group(1) or match.group(2)):
        raise AmountError(f"{field} is not a number")
    if negative:
        raise AmountError(f"{field} must not be negative")
    whole, decimals = match.group(1) or "0", match.group(2) or ""
    if decimals[2:].strip("0"):
        raise AmountError(f"{field} has more than two decimals")
    if len(whole) > 12:
        raise AmountError(f"{field} is too large")
    return int(whole) * 100 + int((decimals[:2] + "00")[:2])


def _bounded(fen: int, field: str) -> int:
    if fen < 0:
        raise AmountError(f"{field} must not be negative")
    if fen > MAX_FEN:
        raise AmountError(f"{field} is too large")
    return fen


def yuan_text(fen: int) -> str:
    """Yuan with exactly two decimals, as world files and the /sim endpoints spell amounts ("-0.50", "470.00")."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def yuan_number(fen: int) -> float:
    """Yuan as a JSON number for callService replies.

    fen / 100 is correctly rounded, so it is the double nearest to the exact amount: the same double that
    parsing "123.45" gives, whose shortest repr (what orjson writes) is "123.45" again.
    """
    return fen / 100
