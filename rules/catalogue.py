"""The medical-insurance catalogue (医保目录): class A/B/C, reference price, per-unit cap, B share.

Pure: `Catalogue.from_json` takes text and `from_records` parsed records; the caller reads the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from rules._fields import Problems, Ratio, fen_problem, parse_fen, parse_ratio, ratio_problem, text

CLASSES = frozenset({"A", "B", "C"})  # 甲类, 乙类, 丙类 (fully self-paid)
KINDS = frozenset({"drug", "service", "material"})
_RECORD_KEYS = frozenset({"med_list_codg", "name", "class", "price", "price_cap", "b_selfpay", "kind"})


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    """One catalogue entry; money in fen."""

    med_list_codg: str
    name: str
    cls: str  # "A" | "B" | "C"
    price: int  # reference unit price, fen
    price_cap: int | None = None  # per-unit cap (限价), fen
    b_selfpay: Ratio | None = None  # per-item B self-pay share (先行自付), overriding the policy's
    kind: str = "drug"  # "drug" | "service" | "material"

    def __post_init__(self) -> None:
        problems = _item_problems(self)
        if problems:
            raise ValueError(f"catalogue item {self.med_list_codg!r}: " + "; ".join(problems))


def _item_problems(item: CatalogueItem) -> list[str]:
    out: list[str] = []
    for name in ("med_list_codg", "name"):
        value = getattr(item, name)
        if not isinstance(value, str) or not value.strip():
            out.append(f"{name} must be a non-empty string")
    if item.cls not in CLASSES:
        out.append(f"cls must be one of A, B, C, got {item.cls!r}")
    if item.kind not in KINDS:
        out.append(f"kind must be one of {sorted(KINDS)}, got {item.kind!r}")
    for name, optional in (("price", False), ("price_cap", True)):
        problem = fen_problem(getattr(item, name), optional=optional)
        if problem:
            out.append(f"{name} {problem}")
    if item.b_selfpay is not None:
        problem = ratio_problem(item.b_selfpay)
        if problem:
            out.append(f"b_selfpay {problem}")
        elif item.cls != "B":
            out.append("b_selfpay applies only to class B items")
    return out


class Catalogue:
    """Catalogue items by `med_list_codg`; codes are unique."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[CatalogueItem]) -> None:
        self._items: dict[str, CatalogueItem] = {}
        for item in items:
            if item.med_list_codg in self._items:
                raise ValueError(f"catalogue: duplicate med_list_codg {item.med_list_codg!r}")
            self._items[item.med_list_codg] = item

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]]) -> Catalogue:
        """Build from records with yuan-string prices; one ValueError names every bad record and field."""
        problems = Problems()
        items: list[CatalogueItem] = []
        seen: dict[str, int] = {}
        for index, record in enumerate(records):
            item = _record_to_item(index, record, problems)
            if item is None:
                continue
            if item.med_list_codg in seen:
                problems.add(
                    f"record {index} ({item.med_list_codg}): med_list_codg duplicates record {seen[item.med_list_codg]}"
                )
                continue
            seen[item.med_list_codg] = index
            items.append(item)
        problems.raise_if_any("bad catalogue")
        return cls(items)

    @classmethod
    def from_json(cls, text_: str) -> Catalogue:
        """Build from JSON text holding a list of records (see `from_records`)."""
        try:
            data = json.loads(text_)
        except json.JSONDecodeError as exc:
            raise ValueError(f"catalogue JSON: {exc}") from None
        if not isinstance(data, list):
            raise ValueError("catalogue JSON must be a list of records")
        return cls.from_records(data)

    def get(self, code: str) -> CatalogueItem | None:
        """The item for `code`, or None when it is not in the catalogue."""
        return self._items.get(code)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, code: object) -> bool:
        return code in self._items

    def __iter__(self) -> Iterator[CatalogueItem]:
        return iter(self._items.values())


def _record_to_item(index: int, record: object, problems: Problems) -> CatalogueItem | None:
    if not isinstance(record, Mapping):
        problems.add(f"record {index}: must be an object")
        return None
    code = record.get("med_list_codg")
    where = f"record {index} ({code})" if isinstance(code, str) else f"record {index}"
    before = len(problems.items)
    for key in sorted(set(record) - _RECORD_KEYS, key=str):
        problems.add(f"{where}: unknown field {key!r}")
    for key in ("class", "price"):  # code and name report themselves below
        if key not in record:
            problems.add(f"{where}: {key} is required")
    codg = problems.parse(text, code, "med_list_codg", where)
    name = problems.parse(text, record.get("name"), "name", where)
    cls_ = record.get("class")
    if "class" in record and cls_ not in CLASSES:
        problems.add(f"{where}: class must be one of A, B, C, got {cls_!r}")
    kind = record.get("kind", "drug")
    if kind not in KINDS:
        problems.add(f"{where}: kind must be one of {sorted(KINDS)}, got {kind!r}")
    price = problems.parse(parse_fen, record.get("price"), "price", where) if "price" in record else None
    cap = None
    if record.get("price_cap") is not None:
        cap = problems.parse(parse_fen, record["price_cap"], "price_cap", where)
    share = None
    if record.get("b_selfpay") is not None:
        share = problems.parse(parse_ratio, record["b_selfpay"], "b_selfpay", where)
        if share is not None and cls_ != "B":
            problems.add(f"{where}: b_selfpay applies only to class B items")
    if len(problems.items) > before or codg is None or name is None or price is None:
        return None
    assert isinstance(cls_, str)
    assert isinstance(kind, str)
    return CatalogueItem(codg, name, cls_, price, cap, share, kind)
