"""Regenerates catalogue.json, a demo catalogue (not a real city's list): python rules/data/make_catalogue.py.

Stdlib only and seeded, so the output is byte-for-byte repeatable; the JSON is what ships.
"""

from __future__ import annotations

import json
import random
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

SEED = 20240101
OUT = Path(__file__).with_name("catalogue.json")
_SOURCE = Path(__file__).with_name("catalogue_source")  # the tables, one |-separated file each

# name | ATC level-4 group (FSI western-drug codes embed it) | spec | price yuan | class [| b_selfpay]
WESTERN = (_SOURCE / "western.psv").read_text(encoding="utf-8")

# Chinese patent medicines (中成药): name | category | spec | price | class [| b_selfpay]
PATENT = (_SOURCE / "patent.psv").read_text(encoding="utf-8")

# Services: local 9-digit price-item code (national 2001 norms) | name | unit price | class [| b_selfpay]
SERVICES = (_SOURCE / "services.psv").read_text(encoding="utf-8")

# Materials: category | name | unit price | class [| cap yuan | b_selfpay]
MATERIALS = (_SOURCE / "materials.psv").read_text(encoding="utf-8")


def rows(table: str) -> list[list[str]]:
    """The |-separated fields of each line of a table."""
    return [line.split("|") for line in table.strip().splitlines()]


def yuan(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def bigger_pack(spec: str, price: Decimal, rng: random.Random) -> tuple[str, Decimal] | None:
    """A second pack size of the same drug: twice the count, a little cheaper per unit."""
    match = re.search(r"\*(\d+)([^\d*]+)$", spec)
    if not match:
        return None
    count = int(match.group(1)) * 2
    factor = Decimal(rng.choice(["1.85", "1.90", "1.95", "2.00"]))
    return spec[: match.start()] + f"*{count}{match.group(2)}", price * factor


def drug_records(rng: random.Random) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for index, (name, atc, spec, price_s, cls, *share) in enumerate(rows(WESTERN), start=1):
        variants = [(spec, Decimal(price_s))]
        extra = bigger_pack(spec, Decimal(price_s), rng) if rng.random() < 0.8 else None
        if extra:
            variants.append(extra)
        for form, (vspec, price) in enumerate(variants, start=1):
            code = f"X{atc}A{index:03d}A{form:03d}{rng.randrange(1, 400):03d}{rng.randrange(1, 10**6):06d}"
            out.append(record(code, f"{name} {vspec}", cls, price, share, rng, "drug"))
    for index, (name, cat, spec, price_s, cls, *share) in enumerate(rows(PATENT), start=1):
        code = f"Z{cat}AAL{index:04d}0{rng.randrange(10, 99)}{rng.randrange(1, 10**6):06d}"
        out.append(record(code, f"{name} {spec}", cls, Decimal(price_s), share, rng, "drug"))
    return out


def record(
    code: str, name: str, cls: str, price: Decimal, share: list[str], rng: random.Random, kind: str
) -> dict[str, str]:
    rec = {"med_list_codg": code, "name": name, "class": cls, "price": yuan(price), "kind": kind}
    if cls == "B" and rng.random() < 0.2:
        # Some B drugs carry a reference cap (限价); some sit above it, the excess goes to overlmt_selfpay.
        rec["price_cap"] = yuan(price * Decimal(rng.choice(["0.85", "0.90", "1.00", "1.10", "1.20"])))
    if share:
        rec["b_selfpay"] = share[0]
    return rec


def service_records(rng: random.Random) -> list[dict[str, str]]:
    out = []
    for local, name, price, cls, *share in rows(SERVICES):
        code = f"00{local}0000-{local}"
        out.append(record(code, name, cls, Decimal(price), share, rng, "service"))
    return out


def material_records(rng: random.Random) -> list[dict[str, str]]:
    out = []
    for index, (cat, name, price, cls, *rest) in enumerate(rows(MATERIALS), start=1):
        sub = f"{rng.randrange(1, 20):02d}{rng.randrange(1, 20):02d}"
        code = f"C{cat}{sub}{index:03d}{rng.randrange(1, 10**4):04d}{rng.randrange(1, 10**6):06d}"
        rec = {"med_list_codg": code, "name": name, "class": cls, "price": price, "kind": "material"}
        if rest:
            rec["price_cap"] = rest[0]
        if len(rest) > 1:
            rec["b_selfpay"] = rest[1]
        out.append(rec)
    return out


def main() -> None:
    rng = random.Random(SEED)
    records = drug_records(rng) + service_records(rng) + material_records(rng)
    codes = [r["med_list_codg"] for r in records]
    assert len(codes) == len(set(codes)), "duplicate med_list_codg"
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    OUT.write_text(f"[\n{body}\n]\n", encoding="utf-8")
    print(f"{len(records)} records -> {OUT}")


if __name__ == "__main__":
    main()
