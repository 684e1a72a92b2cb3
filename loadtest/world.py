"""The seed world: a deterministic, invented population of institutions, PSAMs, persons and cards.

`generate(persons, seed)` is a pure function of its arguments (one `random.Random(seed)`, no clock), so
the same arguments give byte-identical JSON (its parts are drawn in `loadtest.population`). Formats follow SPEC
§4.1, statuses §8.1, pin modes §7. Also the world file: written, read back and checked, and rows picked from it.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from loadtest.population import (
    AS_OF,
    CARD_BLACKLIST_REASONS,
    CITY,
    COUNTIES,
    PERSON_BLACKLIST_REASONS,
    REGION_WEIGHTS,
    REGIONS,
    CardMaker,
    make_institutions,
    make_person,
)

FORMAT = 1
PERSON_KEYS = frozenset(
    [
        "psn_no",
        "certno",
        "psn_name",
        "gend",
        "brdy",
        "insutype",
        "psn_type",
        "insuplc_admdvs",
        "status",
        "balance",
        "inscp_ytd",
        "fund_paid_ytd",
    ]
)
CARD_KEYS = frozenset(
    ["card_sn", "card_no", "psn_no", "pin_mode", "status", "alg", "kv", "valid_from", "valid_until", "atc"]
)
INSTITUTION_KEYS = frozenset(["fixmedins_code", "fixmedins_name", "kind", "level", "region", "psams"])
_TOP_LISTS = ("institutions", "persons", "cards", "catalogue")


def load_catalogue() -> list[dict[str, Any]]:
    """The drug and service catalogue shipped in `rules/data/catalogue.json`."""
    data = json.loads((resources.files("rules") / "data" / "catalogue.json").read_text("utf-8"))
    if not isinstance(data, list):
        raise ValueError("rules/data/catalogue.json must hold a JSON list")
    return data


def _share(n: int, rate: float) -> int:
    return min(n, max(1, round(n * rate))) if n else 0


def generate(persons: int, seed: int, catalogue: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A world of `persons` persons, deterministic in (persons, seed, catalogue).

    The catalogue defaults to `rules/data/catalogue.json`. Blacklisted, replaced and expired shares are
    exact counts (at least one each when there are persons), so small worlds still hold every case.
    """
    if persons < 0:
        raise ValueError("persons must be >= 0")
    rng = random.Random(seed)
    institutions = make_institutions(rng, min(60, max(4, persons // 500)))
    certnos: set[str] = set()
    regions = rng.choices(REGIONS, weights=REGION_WEIGHTS, k=persons)
    people = [make_person(rng, i, regions[i], certnos) for i in range(persons)]

    # Disjoint special cases, drawn once: replaced cards, blacklisted cards, expired cards.
    n_repl, n_black, n_exp = _share(persons, 0.03), _share(persons, 0.03), _share(persons, 0.01)
    special = rng.sample(range(persons), min(persons, n_repl + n_black + n_exp))
    replaced = set(special[:n_repl])
    black = {p: CARD_BLACKLIST_REASONS[k % 6] for k, p in enumerate(special[n_repl : n_repl + n_black])}
    expired = set(special[n_repl + n_black :])
    for k, p in enumerate(rng.sample(range(persons), _share(persons, 0.02))):
        people[p]["status"] = PERSON_BLACKLIST_REASONS[k % 2]

    maker = CardMaker(rng)
    cards: list[dict[str, Any]] = []
    for i, person in enumerate(people):
        alg = "3DES" if rng.random() < 0.6 else "SM4"
        if i in replaced:
            # A 2nd-generation card cancelled by its 3rd-generation replacement (SPEC §8.1 reason 03).
            cards.append(maker.make(person, alg="3DES", start=date(2013, 1, 1), status="03"))
            cards.append(maker.make(person, alg="SM4", start=date(2020, 1, 1)))
        elif i in expired:
            cards.append(maker.make(person, alg=alg, start=date(2009, 1, 1)))
        else:
            cards.append(maker.make(person, alg=alg, start=date(2020, 1, 1), status=black.get(i, "ACTIVE")))
    return {
        "format": FORMAT,
        "seed": seed,
        "region": CITY,
        "counties": list(COUNTIES),
        "institutions": institutions,
        "persons": people,
        "cards": cards,
        "catalogue": load_catalogue() if catalogue is None else catalogue,
    }


def write_world(world: dict[str, Any], out_dir: Path) -> Path:
    """Write `out_dir/world.json` (sorted keys, UTF-8) atomically and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "world.json"
    tmp = out_dir / "world.json.tmp"
    text = json.dumps(world, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _require_keys(rows: Iterable[Any], keys: frozenset[str], what: str) -> None:
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"world: {what}[{n}] is not an object")
        missing = keys - row.keys()
        if missing:
            raise ValueError(f"world: {what}[{n}] lacks {', '.join(sorted(missing))}")


def load_world(path: Path | str) -> dict[str, Any]:
    """Read a world.json and check its shape.

    Raises:
        ValueError: naming the first problem (not JSON, wrong format, missing list or row keys).
    """
    try:
        world = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"world: {path} is not JSON: {exc}") from exc
    if not isinstance(world, dict):
        raise ValueError("world: top level must be an object")
    if world.get("format") != FORMAT:
        raise ValueError(f"world: format must be {FORMAT}, got {world.get('format')!r}")
    if not isinstance(world.get("seed"), int):
        raise ValueError("world: seed must be an integer")
    region = world.get("region")
    if not (isinstance(region, str) and len(region) == 6 and region.isdigit()):
        raise ValueError(f"world: region must be 6 digits, got {region!r}")
    for key in _TOP_LISTS:
        if not isinstance(world.get(key), list):
            raise ValueError(f"world: {key} must be a list")
    _require_keys(world["institutions"], INSTITUTION_KEYS, "institutions")
    _require_keys(world["persons"], PERSON_KEYS, "persons")
    _require_keys(world["cards"], CARD_KEYS, "cards")
    return world


def pick(
    world: dict[str, Any],
    *,
    kind: str = "hospital",
    alg: str | None = None,
    pin_mode: str | None = None,
    status: str = "ACTIVE",
    insutype: str | None = None,
    person_status: str = "ACTIVE",
    expired: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The first (institution, active PSAM, card, person) matching the filters, in world order.

    `expired` selects cards whose validity ended before `AS_OF` (by default they are skipped).

    Raises:
        LookupError: when no row matches.
    """
    site = next(
        (
            (inst, psam)
            for inst in world["institutions"]
            if inst["kind"] == kind
            for psam in inst["psams"]
            if psam["status"] == "ACTIVE"
        ),
        None,
    )
    if site is None:
        raise LookupError(f"no {kind} with an active PSAM")
    people = {p["psn_no"]: p for p in world["persons"]}
    as_of = AS_OF.isoformat()
    for card in world["cards"]:
        if (
            card["status"] != status
            or (alg is not None and card["alg"] != alg)
            or (pin_mode is not None and card["pin_mode"] != pin_mode)
            or (card["valid_until"] < as_of) != expired
        ):
            continue
        person = people[card["psn_no"]]
        if person["status"] == person_status and (insutype is None or person["insutype"] == insutype):
            return site[0], site[1], card, person
    raise LookupError(
        f"no card with status={status} alg={alg} pin_mode={pin_mode} expired={expired} "
        f"for a person with status={person_status} insutype={insutype}"
    )
