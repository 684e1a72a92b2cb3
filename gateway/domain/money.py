"""Money: integer fen inside, yuan with at most two decimals at the wire (SPEC §3)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import NewType

Fen = NewType("Fen", int)

_HUNDRED = Decimal(100)


class AmountError(ValueError):
    """An amount on the wire is not a non-negative number with at most two decimals."""


def yuan_to_fen(value: object, *, field: str = "amount") -> Fen:
    """Parse a wire amount (JSON number or decimal string, in yuan) into exact fen.

    Raises:
        AmountError: negative, more than two decimals, not a number, or absurdly large.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise AmountError(f"{field} must be a number in yuan")
    try:
        # str() of a float is its shortest repr, so 12.3 stays 12.3 and never 12.2999...
        dec = Decimal(value) if isinstance(value, (int, Decimal)) else Decimal(str(value))
    except InvalidOperation:
        raise AmountError(f"{field} is not a number") from None
    if not dec.is_finite():
        raise AmountError(f"{field} is not a finite number")
    if dec < 0:
        raise AmountError(f"{field} must not be negative")
    fen = dec * _HUNDRED
    if fen != fen.to_integral_value():
        raise AmountError(f"{field} has more than two decimals")
    if fen > 99_999_999_999:
        raise AmountError(f"{field} is too large")
    return Fen(int(fen))


def fen_to_yuan(fen: int) -> Decimal:
    """Exact yuan value of an amount in fen, with two decimals."""
    return (Decimal(fen) / _HUNDRED).quantize(Decimal("0.01"))


def fen_to_wire(fen: int) -> float:
    """A JSON number in yuan for the wire; exact because every fen amount has a 2-decimal repr."""
    # float(Decimal("123.45")) repr-round-trips to "123.45": JSON gets the shortest repr, never a
    # binary artefact. Arithmetic never happens on this float.
    return float(fen_to_yuan(fen))


def mul_ratio_half_up(fen: int, numerator: int, denominator: int) -> Fen:
    """fen × numerator / denominator, rounded half-up to the fen (non-negative inputs)."""
    if fen < 0 or numerator < 0 or denominator <= 0:
        raise ValueError("mul_ratio_half_up takes non-negative amounts and a positive denominator")
    q, r = divmod(fen * numerator, denominator)
    return Fen(q + 1 if 2 * r >= denominator else q)


def ratio_of(text: str) -> tuple[int, int]:
    """A decimal ratio such as "0.85" as an exact (numerator, denominator) pair."""
    dec = Decimal(text)
    if not dec.is_finite() or dec < 0:
        raise ValueError(f"ratio {text!r} must be a non-negative number")
    _sign, digits, exp = dec.as_tuple()
    assert isinstance(exp, int)
    num = int("".join(map(str, digits)) or "0")
    if exp >= 0:
        return num * 10**exp, 1
    return num, 10**-exp


def round_half_up_fen(value: Decimal) -> Fen:
    """Round a non-negative Decimal amount in fen half-up to an integer number of fen."""
    return Fen(int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP)))
