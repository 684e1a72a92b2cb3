"""Field readers shared by every parser of the request (SPEC §3, §6): each names the field in its MALFORMED."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.domain.codes import ResultCode
from gateway.domain.errors import Declined
from gateway.domain.money import AmountError, Fen, yuan_to_fen


def malformed(path: str, problem: str) -> Declined:
    """A MALFORMED decline whose message names the field."""
    return Declined(ResultCode.MALFORMED, f"{path}: {problem}")


def req_str(obj: dict[str, Any], key: str, path: str, *, max_len: int, min_len: int = 1) -> str:
    """A required string field with length limits."""
    if key not in obj or obj[key] is None:
        raise malformed(f"{path}{key}", "missing")
    value = obj[key]
    if not isinstance(value, str):
        raise malformed(f"{path}{key}", "must be a string")
    if not min_len <= len(value) <= max_len:
        raise malformed(f"{path}{key}", f"length must be {min_len}..{max_len}, got {len(value)}")
    return value


def opt_str(obj: dict[str, Any], key: str, path: str, *, max_len: int) -> str | None:
    """An optional string field (absent, null or empty gives None)."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise malformed(f"{path}{key}", "must be a string")
    if len(value) > max_len:
        raise malformed(f"{path}{key}", f"longer than {max_len}")
    return value


def req_match(obj: dict[str, Any], key: str, path: str, pattern: re.Pattern[str], what: str) -> str:
    """A required string matching a pattern exactly."""
    value = obj.get(key)
    if value is None:
        raise malformed(f"{path}{key}", "missing")
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise malformed(f"{path}{key}", f"must be {what}")
    return value


def req_int(obj: dict[str, Any], key: str, path: str, lo: int, hi: int) -> int:
    """A required JSON integer within [lo, hi]."""
    value = obj.get(key)
    if value is None:
        raise malformed(f"{path}{key}", "missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise malformed(f"{path}{key}", "must be an integer")
    if not lo <= value <= hi:
        raise malformed(f"{path}{key}", f"must be in {lo}..{hi}")
    return value


def req_obj(obj: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """A required JSON object."""
    value = obj.get(key)
    if value is None:
        raise malformed(f"{path}{key}", "missing")
    if not isinstance(value, dict):
        raise malformed(f"{path}{key}", "must be an object")
    return value


def amount(obj: dict[str, Any], key: str, path: str) -> Fen:
    """A required amount in yuan (≤ 2 decimals, ≥ 0) as fen."""
    if key not in obj or obj[key] is None:
        raise malformed(path + key, "missing")
    try:
        return yuan_to_fen(obj[key], field=path + key)
    except AmountError as exc:
        raise malformed(path + key, str(exc).removeprefix(path + key + " ")) from None


def decimal_field(obj: dict[str, Any], key: str, path: str, *, places: int) -> Decimal:
    """A required non-negative number with at most `places` decimals."""
    value = obj.get(key)
    if value is None:
        raise malformed(path + key, "missing")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise malformed(path + key, "must be a number")
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        raise malformed(path + key, "must be a number") from None
    if not dec.is_finite() or dec < 0 or dec > Decimal(10) ** 9:
        raise malformed(path + key, "must be a non-negative number below 10^9")
    exp = dec.as_tuple().exponent
    if isinstance(exp, int) and exp < -places:
        raise malformed(path + key, f"has more than {places} decimals")
    return dec
