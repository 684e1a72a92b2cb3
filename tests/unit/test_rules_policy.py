"""Policy book (selection, dates, errors, PIN caps), Policy parsing, the catalogue and the shipped data."""

from __future__ import annotations

import datetime as dt
import json
import re
from importlib.resources import files
from typing import ClassVar

import pytest

from rules.catalogue import Catalogue, CatalogueItem
from rules.params import PinCaps, Policy
from rules.policy import NoPolicy, PolicyBook

D = dt.date
DATA = files("rules") / "data"

POLICY_FIELDS = """
b_selfpay = "0.10"
annual_cap = "100000.00"
deductible_scope = "year"
deductible = "500.00"
"""


def rule(name, ratio="0.50", **match):
    """One [[rule]] table: region defaults to "*" and effective_from to 2024-01-01."""
    match.setdefault("region", '"*"')
    match.setdefault("effective_from", "2024-01-01")
    lines = [f"{k} = {v}" for k, v in match.items()]
    return f'[[rule]]\nname = "{name}"\n' + "\n".join(lines) + POLICY_FIELDS + f'ratio = "{ratio}"\n'


def book(*rules, caps=""):
    return PolicyBook.from_toml("\n".join(rules) + caps)


KEY = dict(region="330200", on=D(2024, 6, 1), insutype="310", psn_type="11", med_type="11", level=2)


def pick(b, **overrides):
    return b.select(**(KEY | overrides)).name


class TestPolicyFromMapping:
    def test_vector_form(self):
        """Yuan strings and [[null, ratio]] bands become fen and exact ratios."""
        p = Policy.from_mapping(
            {
                "b_selfpay": "0.10",
                "annual_cap": "300000.00",
                "deductible_scope": "visit",
                "deductible": "800.00",
                "bands": [["20000.00", "0.75"], [None, "0.7"]],
            },
            name="v",
        )
        assert p == Policy("v", (10, 100), 30_000_000, "visit", 80_000, ((2_000_000, (75, 100)), (None, (7, 10))))

    def test_flat_ratio_and_table_bands(self):
        """`ratio` is one unbounded band; {upto, ratio} tables equal [upper, ratio] pairs."""
        base = {"b_selfpay": "0", "annual_cap": "1", "deductible_scope": "year", "deductible": "0"}
        flat = Policy.from_mapping(base | {"ratio": "0.85"})
        tables = Policy.from_mapping(base | {"bands": [{"upto": "1.00", "ratio": "0.5"}, {"ratio": "0.85"}]})
        assert flat.bands == ((None, (85, 100)),)
        assert tables.bands == ((100, (5, 10)), (None, (85, 100)))

    def test_every_bad_field_is_listed(self):
        """One ValueError names each bad field, not just the first."""
        bad = {
            "b_selfpay": "1.5",
            "annual_cap": "-1",
            "deductible_scope": "month",
            "deductible": "1.001",
            "bands": [[None, "0.7"]],
            "colour": "red",
        }
        with pytest.raises(ValueError, match="bad policy") as info:
            Policy.from_mapping(bad)
        for field in ("b_selfpay", "annual_cap", "deductible_scope", "deductible", "'colour'"):
            assert field in str(info.value)

    @pytest.mark.parametrize(
        ("bands", "message"),
        [
            ([["100.00", "0.5"]], "last band must be unbounded"),
            ([[None, "0.5"], [None, "0.6"]], "not the last band"),
            ([["200.00", "0.5"], ["100.00", "0.6"], [None, "0.7"]], "upper bound"),
            ([], "non-empty"),
            ([["1.00", "0.5", "x"]], "bands"),
        ],
    )
    def test_bad_bands(self, bands, message):
        """Bands must ascend and end unbounded."""
        base = {"b_selfpay": "0", "annual_cap": "1", "deductible_scope": "year", "deductible": "0"}
        with pytest.raises(ValueError, match=message):
            Policy.from_mapping(base | {"bands": bands})

    def test_bands_and_ratio_together(self):
        """Giving both bands and ratio is ambiguous and refused."""
        base = {"b_selfpay": "0", "annual_cap": "1", "deductible_scope": "year", "deductible": "0"}
        with pytest.raises(ValueError, match="exactly one of bands or ratio"):
            Policy.from_mapping(base | {"ratio": "0.5", "bands": [[None, "0.5"]]})

    def test_constructor_validates(self):
        """A Policy built by hand is checked too."""
        with pytest.raises(ValueError, match="deductible_scope"):
            Policy("p", (1, 10), 100, "month", 0, ((None, (1, 2)),))
        with pytest.raises(ValueError, match="ratio"):
            Policy("p", (1, 10), 100, "year", 0, ((None, (3, 2)),))


class TestPolicyBookSelect:
    def test_most_constrained_rule_wins(self):
        """A rule constraining more key fields beats a broader one, whatever the file order."""
        b = book(
            rule("broad"),
            rule("med", med_type='["11"]'),
            rule("med-level", med_type='["11"]', level="[2]"),
            rule("city", region='"330200"'),
        )
        assert pick(b) == "med-level"
        assert pick(b, level=3) == "med"
        assert pick(b, med_type="21") == "city"
        assert pick(b, med_type="21", region="110000") == "broad"

    def test_exact_region_beats_star(self):
        """With the same other constraints, the region's own rule beats the "*" fallback."""
        b = book(rule("any", insutype='["310"]'), rule("city", region='"330200"', insutype='["310"]'))
        assert pick(b) == "city"
        assert pick(b, region="110000") == "any"

    def test_list_fields_match_any_member(self):
        """A list constraint matches any of its codes and only those."""
        b = book(rule("broad"), rule("both", psn_type='["11", "12"]', level="[1, 3]"))
        assert pick(b, psn_type="12", level=3) == "both"
        assert pick(b, psn_type="31", level=3) == "broad"
        assert pick(b, psn_type="11", level=2) == "broad"

    def test_effective_dates_are_inclusive(self):
        """effective_from and effective_to both belong to the rule's period."""
        b = book(rule("y2023", effective_from="2023-01-01", effective_to="2023-12-31"))
        assert b.select(**(KEY | {"on": D(2023, 1, 1)})).name == "y2023"
        assert b.select(**(KEY | {"on": D(2023, 12, 31)})).name == "y2023"
        for day in (D(2022, 12, 31), D(2024, 1, 1)):
            with pytest.raises(NoPolicy):
                b.select(**(KEY | {"on": day}))

    def test_tie_goes_to_later_effective_from(self):
        """Equally specific rules: the later effective_from wins even if listed first."""
        b = book(rule("new", effective_from="2024-03-01"), rule("old", effective_from="2024-01-01"))
        assert pick(b) == "new"
        assert pick(b, on=D(2024, 2, 1)) == "old"

    def test_tie_then_goes_to_file_order(self):
        """Equally specific rules from the same day: the earlier one in the file wins."""
        b = book(rule("first"), rule("second"))
        assert pick(b) == "first"

    def test_no_policy_names_the_key(self):
        """NoPolicy is a ValueError whose message names the whole key."""
        b = book(rule("emp", insutype='["310"]'))
        with pytest.raises(NoPolicy, match="insutype=390") as info:
            pick(b, insutype="390")
        assert isinstance(info.value, ValueError)
        for part in ("region=330200", "on=2024-06-01", "psn_type=11", "med_type=11", "level=2"):
            assert part in info.value.key

    def test_selected_policy_carries_parameters(self):
        """The selected Policy holds the rule's parameters in fen."""
        policy = book(rule("r", ratio="0.65")).select(**KEY)
        assert policy == Policy("r", (10, 100), 10_000_000, "year", 50_000, ((None, (65, 100)),))


class TestPolicyBookErrors:
    def test_unparseable_toml(self):
        """TOML syntax errors become ValueError."""
        with pytest.raises(ValueError, match="does not parse"):
            PolicyBook.from_toml("[[rule]\nname=")

    def test_every_bad_field_in_every_rule_is_listed(self):
        """One ValueError lists the bad fields of all rules and caps together."""
        text = (
            rule("ok")
            + rule("a", level='["x"]', effective_from='"2024-13-01"')
            + rule("b", region="5", insutype="[]", ratio="2")
            + rule("c", effective_from="2024-05-01", effective_to="2024-04-01")
            + '[pin_caps."*"]\nper_txn = "abc"\nper_day = "1.00"\n'
        )
        with pytest.raises(ValueError, match="bad policy book") as info:
            PolicyBook.from_toml(text)
        message = str(info.value)
        for fragment in (
            "rule[1] (a): level",
            "rule[1] (a): effective_from",
            "rule[2] (b): region",
            "rule[2] (b): insutype",
            "rule[2] (b): ratio",
            "rule[3] (c): effective_to is before effective_from",
            "pin_caps.*: per_txn",
            "pin_caps.*: per_day_count is required",
        ):
            assert fragment in message

    def test_bad_date_value(self):
        """effective_from must be a date (a string that is not one is listed)."""
        with pytest.raises(ValueError, match="effective_from must be a date"):
            book(rule("a", effective_from='"soon"'))

    def test_datetime_is_not_a_date(self):
        """A TOML date-time is refused for effective dates."""
        with pytest.raises(ValueError, match="not a date-time"):
            book(rule("a", effective_from="2024-01-01T00:00:00"))

    def test_unknown_fields_and_tables(self):
        """Typos in keys are errors, not silently ignored."""
        with pytest.raises(ValueError, match="unknown field 'levle'") as info:
            PolicyBook.from_toml(rule("a", levle="[1]") + "[rules]\nx = 1\n")
        assert "unknown table 'rules'" in str(info.value)

    def test_duplicate_rule_names(self):
        """Rule names are unique so a selection can be traced back."""
        with pytest.raises(ValueError, match="duplicate rule name"):
            book(rule("a"), rule("a"))

    def test_no_rules(self):
        """A book without rules is refused."""
        with pytest.raises(ValueError, match=r"\[\[rule\]\]"):
            PolicyBook.from_toml('[pin_caps."*"]\nper_txn = "1"\nper_day = "1"\nper_day_count = 1\n')


class TestPinCaps:
    CAPS = (
        '\n[pin_caps.330200]\nper_txn = "300.00"\nper_day = "600.00"\nper_day_count = 10\n'
        '[pin_caps."*"]\nper_txn = "100.00"\nper_day = "200.00"\nper_day_count = 5\n'
    )

    def test_region_and_fallback(self):
        """A region's own caps, else the "*" caps."""
        b = book(rule("r"), caps=self.CAPS)
        assert b.pin_caps("330200") == PinCaps(30_000, 60_000, 10)
        assert b.pin_caps("110000") == PinCaps(10_000, 20_000, 5)

    def test_missing_caps(self):
        """No caps for the region and no "*": NoPolicy."""
        b = book(rule("r"), caps='\n[pin_caps.330200]\nper_txn = "1"\nper_day = "1"\nper_day_count = 1\n')
        with pytest.raises(NoPolicy, match="110000"):
            b.pin_caps("110000")

    def test_caps_validate(self):
        """PinCaps refuses negative or non-int values."""
        with pytest.raises(ValueError, match="per_day_count"):
            PinCaps(1, 1, -1)


class TestCatalogue:
    RECORD: ClassVar[dict[str, str]] = {
        "med_list_codg": "X1",
        "name": "阿莫西林胶囊 0.25g*24粒",
        "class": "B",
        "price": "12.50",
    }

    def test_record_parses_yuan_strings(self):
        """Prices and caps are fen, b_selfpay an exact ratio; kind defaults to drug."""
        cat = Catalogue.from_records([self.RECORD | {"price_cap": "10.00", "b_selfpay": "0.20"}])
        assert cat.get("X1") == CatalogueItem("X1", "阿莫西林胶囊 0.25g*24粒", "B", 1250, 1000, (20, 100), "drug")
        assert "X1" in cat
        assert "X2" not in cat
        assert cat.get("X2") is None
        assert len(cat) == 1

    def test_bad_records_name_record_and_field(self):
        """Each bad record and field appears in one ValueError."""
        records = [
            self.RECORD,
            self.RECORD | {"med_list_codg": "X2", "class": "D"},
            self.RECORD | {"med_list_codg": "X3", "price": "1.234", "kind": "food"},
            {"med_list_codg": "X4", "name": "n", "class": "A", "price": "1", "b_selfpay": "0.1"},
            self.RECORD,
        ]
        with pytest.raises(ValueError, match="bad catalogue") as info:
            Catalogue.from_records(records)
        message = str(info.value)
        for fragment in (
            "record 1 (X2): class",
            "record 2 (X3): price",
            "record 2 (X3): kind",
            "record 3 (X4): b_selfpay applies only to class B",
            "record 4 (X1): med_list_codg duplicates record 0",
        ):
            assert fragment in message

    def test_missing_fields(self):
        """A record without its required fields is refused."""
        with pytest.raises(ValueError, match=r"record 0: class is required[\s\S]*med_list_codg must be"):
            Catalogue.from_records([{"name": "x"}])

    def test_from_json(self):
        """JSON text that is not a list of records is refused."""
        assert len(Catalogue.from_json(json.dumps([self.RECORD]))) == 1
        with pytest.raises(ValueError, match="list of records"):
            Catalogue.from_json("{}")

    def test_item_validates(self):
        """A CatalogueItem built by hand is checked too."""
        with pytest.raises(ValueError, match="price"):
            CatalogueItem("X", "n", "A", -1)


class TestShippedData:
    def test_policy_toml_covers_demo_city(self):
        """Every demo key of region 330200 selects a 330200 rule with sane parameters."""
        b = PolicyBook.from_toml((DATA / "policy.toml").read_text(encoding="utf-8"))
        on = D(2024, 6, 1)
        for insutype, people in (("310", ("11", "12")), ("390", ("31", "32"))):
            for psn in people:
                for med, levels in (("11", (1, 2, 3)), ("14", (1, 2, 3)), ("21", (1, 2, 3)), ("41", (0,))):
                    for level in levels:
                        policy = b.select("330200", on, insutype, psn, med, level)
                        assert policy.name.startswith("330200-")
                        assert policy.deductible_scope == ("visit" if med == "21" else "year")

    def test_policy_toml_banded_and_dated_rules(self):
        """Tertiary employee inpatient is banded 75/77/79%; 2023 has its own rule; fallbacks exist."""
        b = PolicyBook.from_toml((DATA / "policy.toml").read_text(encoding="utf-8"))
        p = b.select("330200", D(2024, 6, 1), "310", "11", "21", 3)
        assert p.bands == ((2_000_000, (75, 100)), (5_000_000, (77, 100)), (None, (79, 100)))
        assert p.deductible == 100_000
        assert b.select("330200", D(2023, 6, 1), "310", "11", "21", 3).name.endswith("-2023")
        assert b.select("440300", D(2024, 6, 1), "390", "31", "11", 1).name == "any-res"
        assert b.pin_caps("330200") == PinCaps(30_000, 60_000, 10)
        assert b.pin_caps("440300").per_day_count > 0

    def test_catalogue_json_loads_with_unique_codes(self):
        """The shipped catalogue loads, has 300-400 unique codes and all classes and kinds."""
        records = json.loads((DATA / "catalogue.json").read_text(encoding="utf-8"))
        codes = [r["med_list_codg"] for r in records]
        assert len(codes) == len(set(codes))
        cat = Catalogue.from_records(records)
        assert 300 <= len(cat) <= 400
        items = list(cat)
        assert {i.cls for i in items} == {"A", "B", "C"}
        assert {i.kind for i in items} == {"drug", "service", "material"}
        assert any(i.price_cap is not None and i.cls == "B" for i in items)
        assert any(i.b_selfpay is not None for i in items)

    def test_catalogue_codes_are_fsi_shaped(self):
        """Drug, service and material codes follow their FSI-like shapes."""
        shapes = {
            "drug": r"[XZ][A-Z0-9]{19,24}",
            "service": r"00\d{13}-\d{9}",
            "material": r"C\d{19}",
        }
        for item in Catalogue.from_json((DATA / "catalogue.json").read_text(encoding="utf-8")):
            assert re.fullmatch(shapes[item.kind], item.med_list_codg), item
