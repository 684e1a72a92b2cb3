"""The policy book: co-pay rules keyed by region, effective dates, insutype, person type, med_type and level.

`PolicyBook.from_toml` takes TOML text (the caller reads the file); `select` picks the most specific rule.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rules._fields import Problems, T, parse_fen, text
from rules.params import PinCaps, Policy, parse_policy

__all__ = ["NoPolicy", "PinCaps", "Policy", "PolicyBook", "PolicyRule"]

ANY_REGION = "*"
_MATCH_KEYS = ("insutype", "psn_type", "med_type", "level")
_RULE_KEYS = frozenset({"region", "effective_from", "effective_to", *_MATCH_KEYS})
_CAP_KEYS = frozenset({"per_txn", "per_day", "per_day_count"})


class NoPolicy(ValueError):
    """No rule of the policy book matches a settlement's key (or no PIN caps for a region)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no policy matches {key}")
        self.key = key


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """A Policy plus where and when it applies; a None match field means any value."""

    policy: Policy
    region: str  # an admdvs code, or "*" for any region
    effective_from: dt.date
    effective_to: dt.date | None  # inclusive; None means open-ended
    insutype: frozenset[str] | None = None
    psn_type: frozenset[str] | None = None
    med_type: frozenset[str] | None = None
    level: frozenset[int] | None = None

    @property
    def specificity(self) -> int:
        """How many key fields this rule constrains (region counts unless it is "*")."""
        fields = (self.insutype, self.psn_type, self.med_type, self.level)
        return (self.region != ANY_REGION) + sum(f is not None for f in fields)

    def matches(self, region: str, on: dt.date, insutype: str, psn_type: str, med_type: str, level: int) -> bool:
        """Whether this rule applies to the key."""
        return (
            self.region in (ANY_REGION, region)
            and self.effective_from <= on
            and (self.effective_to is None or on <= self.effective_to)
            and (self.insutype is None or insutype in self.insutype)
            and (self.psn_type is None or psn_type in self.psn_type)
            and (self.med_type is None or med_type in self.med_type)
            and (self.level is None or level in self.level)
        )


class PolicyBook:
    """Rules in file order plus default-PIN caps by region ("*" is the fallback)."""

    __slots__ = ("_caps", "rules")

    def __init__(self, rules: Sequence[PolicyRule], pin_caps: Mapping[str, PinCaps]) -> None:
        self.rules: tuple[PolicyRule, ...] = tuple(rules)
        self._caps = dict(pin_caps)

    def select(self, region: str, on: dt.date, insutype: str, psn_type: str, med_type: str, level: int) -> Policy:
        """The most specific matching rule's Policy; ties: later effective_from, then the earlier rule.

        Raises:
            NoPolicy: nothing matches; the message names the key.
        """
        best: tuple[int, dt.date, int] | None = None
        chosen: PolicyRule | None = None
        for index, rule in enumerate(self.rules):
            if not rule.matches(region, on, insutype, psn_type, med_type, level):
                continue
            rank = (rule.specificity, rule.effective_from, -index)
            if best is None or rank > best:
                best, chosen = rank, rule
        if chosen is None:
            raise NoPolicy(
                f"region={region} on={on.isoformat()} insutype={insutype} psn_type={psn_type} "
                f"med_type={med_type} level={level}"
            )
        return chosen.policy

    def pin_caps(self, region: str) -> PinCaps:
        """Default-PIN caps of `region`, else of "*".

        Raises:
            NoPolicy: neither the region nor "*" has caps.
        """
        caps = self._caps.get(region) or self._caps.get(ANY_REGION)
        if caps is None:
            raise NoPolicy(f"pin_caps region={region}")
        return caps

    @classmethod
    def from_toml(cls, text_: str) -> PolicyBook:
        """Parse `[[rule]]` tables and `[pin_caps.<region>]` tables; one ValueError lists every bad field."""
        try:
            data = tomllib.loads(text_)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"policy TOML does not parse: {exc}") from None
        problems = Problems()
        for key in sorted(set(data) - {"rule", "pin_caps"}):
            problems.add(f"top level: unknown table {key!r}")
        raw_rules = data.get("rule", [])
        rules: list[PolicyRule] = []
        if not isinstance(raw_rules, list) or not raw_rules:
            problems.add("top level: at least one [[rule]] is required")
            raw_rules = []
        names: set[str] = set()
        for index, raw in enumerate(raw_rules):
            name = raw.get("name") if isinstance(raw, dict) else None
            where = f"rule[{index}] ({name})" if isinstance(name, str) else f"rule[{index}]"
            if isinstance(name, str):
                if name in names:
                    problems.add(f"{where}: duplicate rule name")
                names.add(name)
            rule = _parse_rule(raw, problems, where)
            if rule is not None:
                rules.append(rule)
        caps = _parse_caps(data.get("pin_caps", {}), problems)
        problems.raise_if_any("bad policy book")
        return cls(rules, caps)


def _parse_rule(raw: object, problems: Problems, where: str) -> PolicyRule | None:
    if not isinstance(raw, dict):
        problems.add(f"{where}: must be a table")
        return None
    before = len(problems.items)
    policy = parse_policy(raw, problems, where=where, default_name=where, extra=_RULE_KEYS)
    region = problems.parse(text, raw.get("region"), "region", where)
    start = problems.parse(_date, raw.get("effective_from"), "effective_from", where)
    end = problems.parse(_date, raw["effective_to"], "effective_to", where) if "effective_to" in raw else None
    if start is not None and end is not None and end < start:
        problems.add(f"{where}: effective_to is before effective_from")
    codes = {k: _opt(problems, _str_set, raw, k, where) for k in ("insutype", "psn_type", "med_type")}
    levels = _opt(problems, _int_set, raw, "level", where)
    if len(problems.items) > before:
        return None
    assert policy is not None
    assert region is not None
    assert start is not None
    return PolicyRule(policy, region, start, end, codes["insutype"], codes["psn_type"], codes["med_type"], levels)


def _opt(
    problems: Problems, fn: Callable[[object, str], T], raw: Mapping[str, object], key: str, where: str
) -> T | None:
    return problems.parse(fn, raw[key], key, where) if key in raw else None


def _parse_caps(raw: object, problems: Problems) -> dict[str, PinCaps]:
    if not isinstance(raw, dict):
        problems.add("pin_caps: must be a table of regions")
        return {}
    out: dict[str, PinCaps] = {}
    for region, table in raw.items():
        where = f"pin_caps.{region}"
        if not isinstance(table, dict):
            problems.add(f"{where}: must be a table")
            continue
        before = len(problems.items)
        for key in sorted(set(table) - _CAP_KEYS):
            problems.add(f"{where}: unknown field {key!r}")
        for key in sorted(_CAP_KEYS - set(table)):
            problems.add(f"{where}: {key} is required")
        per_txn = problems.parse(parse_fen, table.get("per_txn"), "per_txn", where)
        per_day = problems.parse(parse_fen, table.get("per_day"), "per_day", where)
        count = table.get("per_day_count")
        if "per_day_count" in table and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            problems.add(f"{where}: per_day_count must be a non-negative integer")
        if len(problems.items) == before:
            assert per_txn is not None
            assert per_day is not None
            assert isinstance(count, int)
            out[region] = PinCaps(per_txn, per_day, count)
    return out


def _date(value: object, field: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueError(f"{field} must be a date, not a date-time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{field} must be a date such as 2024-01-01")


def _str_set(value: object, field: str) -> frozenset[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"{field} must be a non-empty list of codes")
    return frozenset(items)


def _int_set(value: object, field: str) -> frozenset[int]:
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, list) or not items or not all(_is_level(v) for v in items):
        raise ValueError(f"{field} must be a non-empty list of levels 0-9")
    return frozenset(items)


def _is_level(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9
