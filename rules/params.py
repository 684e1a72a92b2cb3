"""Policy parameters as value objects: co-pay `Policy` of one scheme and visit kind; default-PIN `PinCaps`.

`Policy.from_mapping` reads the yuan-string form used by the TOML policy book and the test vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rules._fields import Problems, Ratio, fen_problem, parse_fen, parse_ratio, ratio_problem, text

SCOPES = frozenset({"visit", "year"})
Band = tuple[int | None, Ratio]  # (upper bound of cumulative in-scope cost in fen, or None; fund share)
POLICY_KEYS = frozenset({"name", "b_selfpay", "annual_cap", "deductible_scope", "deductible", "bands", "ratio"})


@dataclass(frozen=True, slots=True)
class Policy:
    """Co-pay parameters: B self-pay share, deductible and its scope, fund share bands, annual fund cap."""

    name: str
    b_selfpay: Ratio
    annual_cap: int  # fen the pooled fund pays at most per person and year
    deductible_scope: str  # "visit" | "year"
    deductible: int  # fen
    bands: tuple[Band, ...]  # ascending upper bounds, the last one None (unbounded)

    def __post_init__(self) -> None:
        problems = _policy_problems(self)
        if problems:
            raise ValueError(f"policy {self.name!r}: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, name: str = "policy") -> Policy:
        """From yuan strings; bands `[[upper|None, "0.70"], ...]` or `[{upto?, ratio}]`, or flat `ratio`.

        Raises ValueError listing every bad field; unknown keys are bad fields too.
        """
        problems = Problems()
        policy = parse_policy(data, problems, where=name, default_name=name)
        problems.raise_if_any(f"bad policy {name!r}")
        assert policy is not None  # no problems means it was built
        return policy


@dataclass(frozen=True, slots=True)
class PinCaps:
    """Default-PIN limits on personal-account payment (SPEC §7): per transaction, per card per day."""

    per_txn: int  # fen
    per_day: int  # fen
    per_day_count: int  # settlements per card per day

    def __post_init__(self) -> None:
        bad = [n for n in ("per_txn", "per_day", "per_day_count") if fen_problem(getattr(self, n))]
        if bad:
            raise ValueError(f"PinCaps: {', '.join(bad)} must be non-negative ints")


def _policy_problems(p: Policy) -> list[str]:
    out: list[str] = []
    if not isinstance(p.name, str) or not p.name.strip():
        out.append("name must be a non-empty string")
    problem = ratio_problem(p.b_selfpay)
    if problem:
        out.append(f"b_selfpay {problem}")
    for field in ("annual_cap", "deductible"):
        problem = fen_problem(getattr(p, field))
        if problem:
            out.append(f"{field} {problem}")
    if p.deductible_scope not in SCOPES:
        out.append(f"deductible_scope must be 'visit' or 'year', got {p.deductible_scope!r}")
    out.extend(_bands_problems(p.bands))
    return out


def _bands_problems(bands: object) -> list[str]:
    if not isinstance(bands, tuple) or not bands:
        return ["bands must be a non-empty tuple"]
    out: list[str] = []
    previous = 0
    for i, band in enumerate(bands):
        if not (isinstance(band, tuple) and len(band) == 2):
            out.append(f"bands[{i}] must be (upper, ratio)")
            continue
        upper, ratio = band
        problem = ratio_problem(ratio)
        if problem:
            out.append(f"bands[{i}] ratio {problem}")
        last = i == len(bands) - 1
        if upper is None:
            if not last:
                out.append(f"bands[{i}] is unbounded but is not the last band")
        elif fen_problem(upper) or upper <= previous:
            out.append(f"bands[{i}] upper bound must be an int of fen above {previous}")
        else:
            previous = upper
            if last:
                out.append("the last band must be unbounded (upper None)")
    return out


def parse_policy(
    data: Mapping[str, object],
    problems: Problems,
    *,
    where: str,
    default_name: str,
    extra: frozenset[str] = frozenset(),
) -> Policy | None:
    """Read the policy fields of `data` (yuan strings) into a Policy, recording problems under `where`."""
    before = len(problems.items)
    for key in sorted(set(data) - POLICY_KEYS - extra, key=str):
        problems.add(f"{where}: unknown field {key!r}")
    for key in ("b_selfpay", "annual_cap", "deductible_scope", "deductible"):
        if key not in data:
            problems.add(f"{where}: {key} is required")
    name = problems.parse(text, data.get("name", default_name), "name", where)
    share = problems.parse(parse_ratio, data["b_selfpay"], "b_selfpay", where) if "b_selfpay" in data else None
    cap = problems.parse(parse_fen, data["annual_cap"], "annual_cap", where) if "annual_cap" in data else None
    ded = problems.parse(parse_fen, data["deductible"], "deductible", where) if "deductible" in data else None
    scope = data.get("deductible_scope")
    if "deductible_scope" in data and scope not in SCOPES:
        problems.add(f"{where}: deductible_scope must be 'visit' or 'year', got {scope!r}")
    bands = _parse_bands(data, problems, where)
    if len(problems.items) > before:
        return None
    assert name is not None
    assert share is not None
    assert cap is not None
    assert ded is not None
    assert isinstance(scope, str)
    assert bands is not None
    return Policy(name, share, cap, scope, ded, bands)


def _parse_bands(data: Mapping[str, object], problems: Problems, where: str) -> tuple[Band, ...] | None:
    if ("bands" in data) == ("ratio" in data):
        problems.add(f"{where}: give exactly one of bands or ratio")
        return None
    if "ratio" in data:
        flat = problems.parse(parse_ratio, data["ratio"], "ratio", where)
        return None if flat is None else ((None, flat),)
    raw = data["bands"]
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence) or not raw:
        problems.add(f"{where}: bands must be a non-empty list")
        return None
    before = len(problems.items)
    out: list[Band] = []
    for i, item in enumerate(raw):
        field = f"bands[{i}]"
        if isinstance(item, Mapping):
            unknown = set(item) - {"upto", "ratio"}
            if unknown or "ratio" not in item:
                problems.add(f"{where}: {field} takes ratio and optional upto, got {sorted(map(str, item))}")
                continue
            upper_raw, ratio_raw = item.get("upto"), item["ratio"]
        elif isinstance(item, Sequence) and not isinstance(item, (str, bytes)) and len(item) == 2:
            upper_raw, ratio_raw = item
        else:
            problems.add(f"{where}: {field} must be [upper or null, ratio] or {{upto, ratio}}")
            continue
        upper = None if upper_raw is None else problems.parse(parse_fen, upper_raw, f"{field} upper", where)
        ratio = problems.parse(parse_ratio, ratio_raw, f"{field} ratio", where)
        if ratio is not None:
            out.append((upper, ratio))
    if len(problems.items) > before:
        return None
    for problem in _bands_problems(tuple(out)):
        problems.add(f"{where}: {problem}")
    return None if len(problems.items) > before else tuple(out)
