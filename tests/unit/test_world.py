"""The seed world of loadtest.world: determinism, formats, status mix and pick()."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from loadtest.population import AS_OF, CARD_SN_MIDDLE, COUNTIES, REGIONS, check_digit
from loadtest.world import generate, load_world, pick, write_world

CATALOGUE = [
    {"med_list_codg": "XA01", "name": "阿莫西林胶囊", "class": "A", "price": "12.50", "kind": "drug"},
    {"med_list_codg": "XB02", "name": "头孢克洛片", "class": "B", "price": "30.00", "b_selfpay": "0.10"},
]
CARD_SN = re.compile(rf"(\d{{6}}){CARD_SN_MIDDLE}[0-9A-F]{{16}}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
YUAN = re.compile(r"\d+\.\d{2}")


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    return generate(2000, 42, catalogue=CATALOGUE)


class TestDeterminism:
    def test_same_args_same_bytes(self, tmp_path: Path) -> None:
        """Two generations with the same arguments write byte-identical files."""
        a = write_world(generate(300, 7, catalogue=CATALOGUE), tmp_path / "a")
        b = write_world(generate(300, 7, catalogue=CATALOGUE), tmp_path / "b")
        assert a.name == "world.json"
        assert a.read_bytes() == b.read_bytes()

    def test_other_seed_other_world(self) -> None:
        """A different seed gives a different world."""
        assert generate(50, 1, catalogue=CATALOGUE) != generate(50, 2, catalogue=CATALOGUE)

    def test_round_trip(self, tmp_path: Path, world: dict[str, Any]) -> None:
        """write_world then load_world gives back the same world, stored as UTF-8 with sorted keys."""
        path = write_world(world, tmp_path)
        text = path.read_text(encoding="utf-8")
        assert "医院" in text
        assert text.startswith('{"cards":')
        assert load_world(path) == world

    def test_top_level(self, world: dict[str, Any]) -> None:
        """The top level carries format, seed, the city region and no clock."""
        assert (world["format"], world["seed"], world["region"]) == (1, 42, "330200")
        assert "today" not in world
        assert world["catalogue"] == CATALOGUE

    def test_default_catalogue_comes_from_rules(self) -> None:
        """Without a catalogue argument the world embeds rules/data/catalogue.json."""
        source = resources.files("rules") / "data" / "catalogue.json"
        if not source.is_file():
            pytest.skip("rules/data/catalogue.json not written yet")
        assert generate(5, 1)["catalogue"] == json.loads(source.read_text("utf-8"))


class TestLoadWorld:
    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda w: w.update(format=2), "format"),
            (lambda w: w.pop("cards"), "cards"),
            (lambda w: w.update(region="33"), "region"),
            (lambda w: w["persons"][3].pop("certno"), r"persons\[3\] lacks certno"),
            (lambda w: w["institutions"].append(7), r"institutions\[\d+\] is not an object"),
        ],
    )
    def test_bad_shape_names_the_problem(self, tmp_path: Path, mutate: Any, message: str) -> None:
        """A malformed world raises ValueError naming what is wrong."""
        w = generate(20, 3, catalogue=CATALOGUE)
        mutate(w)
        path = write_world(w, tmp_path)
        with pytest.raises(ValueError, match=message):
            load_world(path)

    def test_not_json(self, tmp_path: Path) -> None:
        """A file that is not JSON raises ValueError."""
        path = tmp_path / "world.json"
        path.write_text("{nope", encoding="utf-8")
        with pytest.raises(ValueError, match="not JSON"):
            load_world(path)


class TestInstitutions:
    def test_count_scales_and_caps(self) -> None:
        """max(4, persons/500) institutions, at most 60."""
        assert len(generate(10, 1, catalogue=[])["institutions"]) == 4
        assert len(generate(3000, 1, catalogue=[])["institutions"]) == 6

    def test_heads_are_fixed(self, world: dict[str, Any]) -> None:
        """institutions[0] is a level-3 city hospital and institutions[1] a pharmacy."""
        first, second = world["institutions"][:2]
        assert (first["kind"], first["level"], first["region"]) == ("hospital", 3, "330200")
        assert (second["kind"], second["level"]) == ("pharmacy", 0)

    def test_formats(self, world: dict[str, Any]) -> None:
        """Codes are H/P + region + 5 digits, levels fit the kind, PSAMs start with the region."""
        for inst in world["institutions"]:
            letter = "H" if inst["kind"] == "hospital" else "P"
            assert re.fullmatch(rf"{letter}{inst['region']}\d{{5}}", inst["fixmedins_code"])
            assert inst["region"] in REGIONS
            assert inst["level"] in ((1, 2, 3) if inst["kind"] == "hospital" else (0,))
            assert re.search("医院|卫生服务中心|保健院|药房", inst["fixmedins_name"])
            assert 1 <= len(inst["psams"]) <= 4
            for psam in inst["psams"]:
                assert re.fullmatch(rf"{inst['region']}\d{{6}}", psam["psam_no"])

    def test_unique_codes_names_and_psams(self, world: dict[str, Any]) -> None:
        """Institution codes, names and PSAM numbers are unique."""
        insts = world["institutions"]
        psams = [p["psam_no"] for i in insts for p in i["psams"]]
        assert len({i["fixmedins_code"] for i in insts}) == len(insts)
        assert len({i["fixmedins_name"] for i in insts}) == len(insts)
        assert len(set(psams)) == len(psams)

    def test_exactly_one_revoked_psam(self, world: dict[str, Any]) -> None:
        """One PSAM is REVOKED, and its institution keeps an active one."""
        revoked = [(i, p) for i in world["institutions"] for p in i["psams"] if p["status"] == "REVOKED"]
        assert len(revoked) == 1
        assert any(p["status"] == "ACTIVE" for p in revoked[0][0]["psams"])


class TestPersons:
    def test_formats(self, world: dict[str, Any]) -> None:
        """psn_no, certno, gender, birth date, types and amounts have their formats."""
        for p in world["persons"]:
            assert re.fullmatch(r"\d{20}", p["psn_no"])
            assert p["psn_no"].startswith(p["insuplc_admdvs"])
            assert p["insuplc_admdvs"] in REGIONS
            certno = p["certno"]
            assert re.fullmatch(r"\d{17}[\dX]", certno)
            assert check_digit(certno[:17]) == certno[17]
            assert certno[6:14] == p["brdy"].replace("-", "")
            assert p["gend"] == ("1" if int(certno[16]) % 2 else "2")
            assert DATE.fullmatch(p["brdy"])
            assert 2 <= len(p["psn_name"]) <= 3
            for key in ("balance", "inscp_ytd", "fund_paid_ytd"):
                assert YUAN.fullmatch(p[key])

    def test_types_follow_insutype_and_age(self, world: dict[str, Any]) -> None:
        """310 persons are 11 or 12 by age 60; 390 persons are 31 or 32 by age 18; residents hold 0.00."""
        for p in world["persons"]:
            born = tuple(int(x) for x in p["brdy"].split("-"))
            age = AS_OF.year - born[0] - ((AS_OF.month, AS_OF.day) < born[1:])
            if p["insutype"] == "310":
                assert p["psn_type"] == ("12" if age >= 60 else "11")
                assert 0 <= float(p["balance"]) <= 8000
            else:
                assert p["insutype"] == "390"
                assert p["psn_type"] == ("32" if age < 18 else "31")
                assert p["balance"] == "0.00"

    def test_check_digit_known_value(self) -> None:
        """The MOD 11-2 check digit matches the GB 11643 example 11010519491231002X."""
        assert check_digit("11010519491231002") == "X"

    def test_mix(self, world: dict[str, Any]) -> None:
        """About 60% employees, about 2% blacklisted with both reasons, some year-to-date spending."""
        people = world["persons"]
        share = Counter(p["insutype"] for p in people)["310"] / len(people)
        assert 0.55 < share < 0.65
        statuses = Counter(p["status"] for p in people)
        assert statuses["11"] > 0
        assert statuses["12"] > 0
        assert statuses["ACTIVE"] / len(people) > 0.97
        assert Counter(p["inscp_ytd"] == "0.00" for p in people)[True] > len(people) / 2
        assert any(p["fund_paid_ytd"] != "0.00" for p in people)

    def test_unique_ids(self, world: dict[str, Any]) -> None:
        """psn_no and certno are unique."""
        people = world["persons"]
        assert len({p["psn_no"] for p in people}) == len(people)
        assert len({p["certno"] for p in people}) == len(people)

    def test_counties_used(self, world: dict[str, Any]) -> None:
        """Persons belong to the city and to every county."""
        assert {p["insuplc_admdvs"] for p in world["persons"]} == set(REGIONS)
        assert set(COUNTIES) < set(REGIONS)


class TestCards:
    def test_formats(self, world: dict[str, Any]) -> None:
        """card_sn is the holder's region + D156000005 + 16 hex; card_no is a letter + 8 digits."""
        people = {p["psn_no"]: p for p in world["persons"]}
        for c in world["cards"]:
            match = CARD_SN.fullmatch(c["card_sn"])
            assert match
            assert match.group(1) == people[c["psn_no"]]["insuplc_admdvs"]
            assert re.fullmatch(r"[A-Z]\d{8}", c["card_no"])
            assert (c["kv"], c["atc"]) == (1, 0)
            assert DATE.fullmatch(c["valid_from"])
            assert c["valid_from"] < c["valid_until"]

    def test_unique(self, world: dict[str, Any]) -> None:
        """card_sn and card_no are unique across the world."""
        cards = world["cards"]
        assert len({c["card_sn"] for c in cards}) == len(cards)
        assert len({c["card_no"] for c in cards}) == len(cards)

    def test_one_working_card_per_person(self, world: dict[str, Any]) -> None:
        """Every person has exactly one card that is not cancelled by replacement."""
        current = Counter(c["psn_no"] for c in world["cards"] if c["status"] != "03")
        assert set(current) == {p["psn_no"] for p in world["persons"]}
        assert set(current.values()) == {1}

    def test_replacement_pairs(self, world: dict[str, Any]) -> None:
        """About 3% of persons hold an old card cancelled with 03 next to an active new card."""
        cards = world["cards"]
        old = [c for c in cards if c["status"] == "03"]
        assert 0.02 < len(old) / len(world["persons"]) < 0.04
        for card in old:
            new = [c for c in cards if c["psn_no"] == card["psn_no"] and c is not card]
            assert [c["status"] for c in new] == ["ACTIVE"]

    def test_status_mix(self, world: dict[str, Any]) -> None:
        """Besides replacements about 3% of cards are blacklisted, with every other reason code."""
        statuses = Counter(c["status"] for c in world["cards"])
        assert {"01", "02", "04", "05", "06", "07"} <= set(statuses)
        blacklisted = sum(n for s, n in statuses.items() if s not in ("ACTIVE", "03"))
        assert 0.02 < blacklisted / len(world["persons"]) < 0.04

    def test_algs_pin_modes_and_validity(self, world: dict[str, Any]) -> None:
        """Both algorithms (3DES about 60%) and both pin modes occur; about 1% of cards expired."""
        cards = world["cards"]
        algs = Counter(c["alg"] for c in cards)
        assert set(algs) == {"3DES", "SM4"}
        assert 0.5 < algs["3DES"] / len(cards) < 0.7
        assert set(Counter(c["pin_mode"] for c in cards)) == {"PIN", "DEFAULT"}
        live = [c for c in cards if c["status"] == "ACTIVE"]
        expired = [c for c in live if c["valid_until"] < "2026-01-01"]
        assert 0 < len(expired) / len(live) < 0.02
        assert all(c["valid_until"] >= "2030-01-01" for c in live if c not in expired)

    def test_small_world_has_every_case(self) -> None:
        """Even 40 persons include a replaced, a blacklisted and an expired card and a blacklisted person."""
        w = generate(40, 5, catalogue=[])
        statuses = {c["status"] for c in w["cards"]}
        assert "03" in statuses
        assert statuses - {"ACTIVE", "03"}
        assert any(c["valid_until"] < "2026" for c in w["cards"])
        assert {p["status"] for p in w["persons"]} != {"ACTIVE"}


class TestPick:
    def test_defaults(self, world: dict[str, Any]) -> None:
        """The default pick is institutions[0], its first PSAM and a valid active card of an active person."""
        inst, psam, card, person = pick(world)
        assert inst is world["institutions"][0]
        assert psam is inst["psams"][0]
        assert card["status"] == "ACTIVE"
        assert card["valid_until"] >= "2026-01-01"
        assert person["status"] == "ACTIVE"
        assert card["psn_no"] == person["psn_no"]

    @pytest.mark.parametrize("alg", ["3DES", "SM4"])
    @pytest.mark.parametrize("pin_mode", ["PIN", "DEFAULT"])
    @pytest.mark.parametrize("insutype", ["310", "390"])
    def test_filters(self, world: dict[str, Any], alg: str, pin_mode: str, insutype: str) -> None:
        """Every alg x pin mode x insutype combination exists and matches."""
        inst, _, card, person = pick(world, kind="pharmacy", alg=alg, pin_mode=pin_mode, insutype=insutype)
        assert inst is world["institutions"][1]
        assert (card["alg"], card["pin_mode"], person["insutype"]) == (alg, pin_mode, insutype)

    def test_blacklisted_and_expired(self, world: dict[str, Any]) -> None:
        """pick finds a lost card, a replaced card, an expired card and a person in arrears."""
        assert pick(world, status="01")[2]["status"] == "01"
        assert pick(world, status="03")[2]["status"] == "03"
        assert pick(world, expired=True)[2]["valid_until"] < "2026-01-01"
        assert pick(world, person_status="11")[3]["status"] == "11"

    def test_deterministic(self, world: dict[str, Any]) -> None:
        """The same filters pick the same rows."""
        assert pick(world, alg="SM4") == pick(world, alg="SM4")

    def test_no_match(self, world: dict[str, Any]) -> None:
        """An impossible filter raises LookupError."""
        with pytest.raises(LookupError):
            pick(world, alg="AES")
        with pytest.raises(LookupError):
            pick(world, kind="clinic")


class TestSpeed:
    def test_thousand_persons_fast(self) -> None:
        """1000 persons generate well under a second."""
        began = time.perf_counter()
        generate(1000, 9, catalogue=[])
        assert time.perf_counter() - began < 0.5
