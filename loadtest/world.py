"""The seed world: a deterministic, invented population of institutions, PSAMs, persons and cards.

`generate(persons, seed)` is a pure function of its arguments (one `random.Random(seed)`, no clock), so
the same arguments give byte-identical JSON. Formats follow SPEC §4.1, statuses §8.1, pin modes §7.
"""

from __future__ import annotations

import json
import operator
import os
import random
from collections.abc import Iterable
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

FORMAT = 1
CITY = "330200"
COUNTIES = ("330203", "330205", "330206", "330211", "330281", "330282")
REGIONS = (CITY, *COUNTIES)
# Weight of each region in the population: the city-level pool plus six counties.
_REGION_WEIGHTS = (30, 15, 12, 12, 9, 11, 11)
_REGION_NAMES = {
    "330200": "宁波市",
    "330203": "海曙区",
    "330205": "江北区",
    "330206": "北仑区",
    "330211": "镇海区",
    "330281": "余姚市",
    "330282": "慈溪市",
}
CARD_SN_MIDDLE = "D156000005"
# The world has no clock: "expired" means valid_until before this date, and ages are taken at it.
AS_OF = date(2026, 1, 1)
CARD_BLACKLIST_REASONS = ("01", "02", "04", "05", "06", "07")  # 03 comes only from a replacement
PERSON_BLACKLIST_REASONS = ("11", "12")

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈"
_GIVEN_M = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆建国志海峰晨阳东林文博德成"
_GIVEN_F = "芳娜敏静丽艳娟霞秀英华慧巧美娇琳婷雪玲萍红燕洁颖琴倩佳欣怡梅莉蓉雯晶露瑶"
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_CARD_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_HOSPITAL_WORDS = [
    "明州",
    "甬江",
    "四明",
    "天一",
    "姚江",
    "三江",
    "东钱湖",
    "慈湖",
    "望春",
    "月湖",
    "梅山",
    "九龙",
]
_PHARMACY_BRANDS = ["甬康", "仁和堂", "四明", "益丰源", "天一堂", "海天", "众生", "康宁"]
_STREETS = ["中山", "解放", "人民", "环城", "江东", "新城", "白沙", "鼓楼", "南门", "北门", "东门", "城隍"]

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


def check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a PRC resident ID number."""
    return _ID_CHECK[sum(map(operator.mul, map(int, first17), _ID_WEIGHTS)) % 11]


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _plus_years(d: date, years: int) -> date:
    return date(d.year + years, d.month, min(d.day, 28))


def load_catalogue() -> list[dict[str, Any]]:
    """The drug and service catalogue shipped in `rules/data/catalogue.json`."""
    data = json.loads((resources.files("rules") / "data" / "catalogue.json").read_text("utf-8"))
    if not isinstance(data, list):
        raise ValueError("rules/data/catalogue.json must hold a JSON list")
    return data


def _institution_name(rng: random.Random, kind: str, level: int, region: str, seq: int) -> str:
    place = _REGION_NAMES[region]
    if kind == "pharmacy":
        return f"{rng.choice(_PHARMACY_BRANDS)}大药房连锁有限公司{place}{rng.choice(_STREETS)}路店"
    if level == 3:
        return rng.choice([f"{place}{rng.choice(_HOSPITAL_WORDS)}中心医院", f"{place}第{seq}人民医院"])
    if level == 2:
        return f"{place}{rng.choice(['人民医院', '中医医院', '妇幼保健院', '第二医院'])}"
    return f"{place}{rng.choice(_STREETS)}街道社区卫生服务中心"


def _institutions(rng: random.Random, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    psam_seq = 0
    for i in range(count):
        # Fixed heads so demos and tests can rely on them: a level-3 hospital, then a pharmacy.
        if i == 0:
            kind, level, region = "hospital", 3, CITY
        elif i == 1:
            kind, level, region = "pharmacy", 0, CITY
        else:
            kind = "hospital" if rng.random() < 0.6 else "pharmacy"
            level = rng.choice((1, 1, 2, 2, 3)) if kind == "hospital" else 0
            region = rng.choice(REGIONS)
        name = _institution_name(rng, kind, level, region, i + 1)
        while name in names:
            name = f"{name}{'分院' if kind == 'hospital' else '分店'}"
        names.add(name)
        n_psams = rng.randint(1, 4)
        if i == count - 1 and count >= 4:
            n_psams = max(2, n_psams)  # the revoked PSAM must not be its institution's only one
        psams = []
        for _ in range(n_psams):
            psam_seq += 1
            psams.append({"psam_no": f"{region}{psam_seq:06d}", "status": "ACTIVE"})
        letter = "H" if kind == "hospital" else "P"
        out.append(
            {
                "fixmedins_code": f"{letter}{region}{(i + 1) * 10 + rng.randrange(10):05d}",
                "fixmedins_name": name,
                "kind": kind,
                "level": level,
                "region": region,
                "psams": psams,
            }
        )
    if count >= 4:
        out[-1]["psams"][-1]["status"] = "REVOKED"
    return out


def _person(rng: random.Random, i: int, region: str, certnos: set[str]) -> dict[str, Any]:
    r = rng.random  # draws below use r() directly: 100,000 persons must stay within seconds
    employee = r() < 0.6
    age = 18 + int(r() * 68) if employee else int(r() * 96)
    birth = date(AS_OF.year - age - 1, 1, 2) + timedelta(days=int(r() * 365))
    gend = "1" if r() < 0.5 else "2"
    given = _GIVEN_M if gend == "1" else _GIVEN_F
    name = _SURNAMES[int(r() * len(_SURNAMES))] + given[int(r() * len(given))]
    if r() < 0.7:
        name += given[int(r() * len(given))]
    address = region if region != CITY else COUNTIES[int(r() * len(COUNTIES))]
    while True:
        # Digits 15-17 are the sequence; the 17th is odd for men, even for women.
        seq = int(r() * 50) * 10 + int(r() * 5) * 2 + (1 if gend == "1" else 0)
        first17 = f"{address}{birth:%Y%m%d}{seq:03d}"
        certno = first17 + check_digit(first17)
        if certno not in certnos:
            certnos.add(certno)
            break
    had_claims = r() < 0.3
    inscp = 1 + int(r() * 2_000_000) if had_claims else 0
    fund = inscp * (40 + int(r() * 46)) // 100 if had_claims else 0
    age_now = AS_OF.year - birth.year - ((AS_OF.month, AS_OF.day) < (birth.month, birth.day))
    # Employees: 11 in service, 12 retired; residents: 31 adult, 32 minor.
    psn_type = ("12" if age_now >= 60 else "11") if employee else ("32" if age_now < 18 else "31")
    return {
        "psn_no": f"{region}{i + 1:08d}{int(r() * 1_000_000):06d}",
        "certno": certno,
        "psn_name": name,
        "gend": gend,
        "brdy": birth.isoformat(),
        "insutype": "310" if employee else "390",
        "psn_type": psn_type,
        "insuplc_admdvs": region,
        "status": "ACTIVE",
        "balance": _yuan(int(r() * 800_001)) if employee else "0.00",
        "inscp_ytd": _yuan(inscp),
        "fund_paid_ytd": _yuan(fund),
    }


class _CardMaker:
    """Issues cards with unique card_sn serials and card numbers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.serials: set[int] = set()
        self.numbers: set[str] = set()

    def make(self, person: dict[str, Any], *, alg: str, start: date, status: str = "ACTIVE") -> dict[str, Any]:
        rng = self.rng
        r = rng.random
        serial = rng.getrandbits(64)
        while serial in self.serials:
            serial = rng.getrandbits(64)
        self.serials.add(serial)
        number = ""
        while not number or number in self.numbers:
            number = f"{_CARD_LETTERS[int(r() * len(_CARD_LETTERS))]}{int(r() * 100_000_000):08d}"
        self.numbers.add(number)
        valid_from = start + timedelta(days=int(r() * 6 * 365))
        return {
            "card_sn": f"{person['insuplc_admdvs']}{CARD_SN_MIDDLE}{serial:016X}",
            "card_no": number,
            "psn_no": person["psn_no"],
            "pin_mode": "PIN" if r() < 0.5 else "DEFAULT",
            "status": status,
            "alg": alg,
            "kv": 1,
            "valid_from": valid_from.isoformat(),
            "valid_until": _plus_years(valid_from, 10).isoformat(),
            "atc": 0,
        }


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
    institutions = _institutions(rng, min(60, max(4, persons // 500)))
    certnos: set[str] = set()
    regions = rng.choices(REGIONS, weights=_REGION_WEIGHTS, k=persons)
    people = [_person(rng, i, regions[i], certnos) for i in range(persons)]

    # Disjoint special cases, drawn once: replaced cards, blacklisted cards, expired cards.
    n_repl, n_black, n_exp = _share(persons, 0.03), _share(persons, 0.03), _share(persons, 0.01)
    special = rng.sample(range(persons), min(persons, n_repl + n_black + n_exp))
    replaced = set(special[:n_repl])
    black = {p: CARD_BLACKLIST_REASONS[k % 6] for k, p in enumerate(special[n_repl : n_repl + n_black])}
    expired = set(special[n_repl + n_black :])
    for k, p in enumerate(rng.sample(range(persons), _share(persons, 0.02))):
        people[p]["status"] = PERSON_BLACKLIST_REASONS[k % 2]

    maker = _CardMaker(rng)
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
