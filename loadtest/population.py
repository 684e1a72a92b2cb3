"""The invented parts of a seed world: regions and their names, resident ID numbers, institutions with their
PSAMs, persons, and cards. Each draws from the caller's `random.Random`, in a fixed order (determinism)."""

from __future__ import annotations

import operator
import random
from datetime import date, timedelta
from typing import Any

CITY = "330200"
COUNTIES = ("330203", "330205", "330206", "330211", "330281", "330282")
REGIONS = (CITY, *COUNTIES)
# Weight of each region in the population: the city-level pool plus six counties.
REGION_WEIGHTS = (30, 15, 12, 12, 9, 11, 11)
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


def check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a PRC resident ID number."""
    return _ID_CHECK[sum(map(operator.mul, map(int, first17), _ID_WEIGHTS)) % 11]


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _plus_years(d: date, years: int) -> date:
    return date(d.year + years, d.month, min(d.day, 28))


def _institution_name(rng: random.Random, kind: str, level: int, region: str, seq: int) -> str:
    place = _REGION_NAMES[region]
    if kind == "pharmacy":
        return f"{rng.choice(_PHARMACY_BRANDS)}大药房连锁有限公司{place}{rng.choice(_STREETS)}路店"
    if level == 3:
        return rng.choice([f"{place}{rng.choice(_HOSPITAL_WORDS)}中心医院", f"{place}第{seq}人民医院"])
    if level == 2:
        return f"{place}{rng.choice(['人民医院', '中医医院', '妇幼保健院', '第二医院'])}"
    return f"{place}{rng.choice(_STREETS)}街道社区卫生服务中心"


def make_institutions(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """`count` institutions, a level-3 hospital and a pharmacy first; the last one's last PSAM is revoked."""
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


def make_person(rng: random.Random, i: int, region: str, certnos: set[str]) -> dict[str, Any]:
    """The i-th person, insured in `region`, with a certno not yet in `certnos` (added to it)."""
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


class CardMaker:
    """Issues cards with unique card_sn serials and card numbers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.serials: set[int] = set()
        self.numbers: set[str] = set()

    def make(self, person: dict[str, Any], *, alg: str, start: date, status: str = "ACTIVE") -> dict[str, Any]:
        """A card of `person`, valid for ten years from a day in the six years after `start`."""
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
