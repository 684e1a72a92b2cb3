"""Rate limits as policy data (issue 11 item 7): a city default per PSAM and per institution, with
per-institution overrides, read from the `[rate_limits]` table of a TOML file the operator provides.

`parse_rate_limits` takes TOML text (the caller reads the file) and reports every bad field in one ValueError.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field

from rules._fields import Problems

__all__ = ["SCOPES", "Limit", "RateLimits", "parse_rate_limits"]

SCOPES = ("psam", "institution")
_LIMIT_KEYS = frozenset({"rate", "burst"})
MAX_RATE = 1_000_000.0  # requests per second: anything above is a typo, not a limit


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket's shape: `rate` requests per second sustained, up to `burst` at once."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and 0 < self.rate <= MAX_RATE):
            raise ValueError(f"rate must be a number of requests per second in (0, {MAX_RATE:g}], got {self.rate!r}")
        if self.burst < 1:
            raise ValueError(f"burst must be a whole number of requests, at least 1, got {self.burst!r}")


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The city defaults and the overrides by `fixmedins_code`; a scope without a limit is not limited."""

    psam: Limit | None = None
    institution: Limit | None = None
    overrides: Mapping[str, Mapping[str, Limit]] = field(default_factory=dict)

    def psam_limit(self, fixmedins_code: str) -> Limit | None:
        """The limit of each PSAM of this institution."""
        return self.overrides.get(fixmedins_code, {}).get("psam", self.psam)

    def institution_limit(self, fixmedins_code: str) -> Limit | None:
        """The limit of this institution as a whole (all its PSAMs together)."""
        return self.overrides.get(fixmedins_code, {}).get("institution", self.institution)

    @property
    def any(self) -> bool:
        """Whether any scope of any institution is limited at all."""
        return self.psam is not None or self.institution is not None or any(self.overrides.values())


def parse_rate_limits(text_: str) -> RateLimits:
    """Parse a TOML document whose `[rate_limits]` table reads::

        [rate_limits]
        psam = { rate = 5, burst = 20 }             # the city default of every PSAM
        institution = { rate = 50, burst = 200 }    # ... and of every institution
        [rate_limits.institutions.H33020000013]     # an institution's own (either scope, or both)
        institution = { rate = 200, burst = 400 }

    Raises:
        ValueError: naming every bad field (unknown keys, a rate not positive, a burst not a whole number >= 1).
    """
    try:
        data = tomllib.loads(text_)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"rate limits TOML does not parse: {exc}") from None
    problems = Problems()
    for key in sorted(set(data) - {"rate_limits"}):
        problems.add(f"top level: unknown table {key!r} (the limits go under [rate_limits])")
    raw = data.get("rate_limits")
    if not isinstance(raw, dict):
        problems.add("top level: a [rate_limits] table is required")
        raw = {}
    for key in sorted(set(raw) - {*SCOPES, "institutions"}):
        problems.add(f"rate_limits: unknown field {key!r} (expected psam, institution, institutions)")
    defaults = _scopes(raw, "rate_limits", problems)
    overrides: dict[str, dict[str, Limit]] = {}
    insts = raw.get("institutions", {})
    if not isinstance(insts, dict):
        problems.add("rate_limits.institutions: must be a table of fixmedins_code = { psam = ..., institution = ... }")
        insts = {}
    for code, table in insts.items():
        where = f"rate_limits.institutions.{code}"
        if not isinstance(table, dict):
            problems.add(f"{where}: must be a table")
            continue
        for key in sorted(set(table) - set(SCOPES)):
            problems.add(f"{where}: unknown field {key!r} (expected psam, institution)")
        if not set(table) & set(SCOPES):
            problems.add(f"{where}: names neither psam nor institution")
        overrides[code] = _scopes(table, where, problems)
    problems.raise_if_any("bad rate limits")
    return RateLimits(defaults.get("psam"), defaults.get("institution"), overrides)


def _scopes(table: dict[str, object], where: str, problems: Problems) -> dict[str, Limit]:
    out: dict[str, Limit] = {}
    for scope in SCOPES:
        if scope in table:
            limit = _limit(table[scope], f"{where}.{scope}", problems)
            if limit is not None:
                out[scope] = limit
    return out


def _limit(raw: object, where: str, problems: Problems) -> Limit | None:
    if not isinstance(raw, dict):
        problems.add(f"{where}: must be a table {{ rate = <requests per second>, burst = <requests> }}")
        return None
    before = len(problems.items)
    for key in sorted(set(raw) - _LIMIT_KEYS):
        problems.add(f"{where}: unknown field {key!r}")
    for key in sorted(_LIMIT_KEYS - set(raw)):
        problems.add(f"{where}: {key} is required")
    rate, burst = raw.get("rate"), raw.get("burst")
    if "rate" in raw and (isinstance(rate, bool) or not isinstance(rate, (int, float))):
        problems.add(f"{where}: rate must be a number of requests per second, got {rate!r}")
    if "burst" in raw and (isinstance(burst, bool) or not isinstance(burst, int)):
        problems.add(f"{where}: burst must be a whole number of requests, got {burst!r}")
    if len(problems.items) > before:
        return None
    assert isinstance(rate, (int, float))
    assert isinstance(burst, int)
    try:
        return Limit(float(rate), burst)
    except ValueError as exc:
        problems.add(f"{where}: {exc}")
        return None
