"""The seed world: persons as world.json and the admin endpoints spell them (amounts as yuan strings)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from coresim.records import Person
from coresim.yuan import AmountError, fen_of, yuan_text

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STATUSES = frozenset({"ACTIVE", "11", "12"})


class WorldError(ValueError):
    """A person in a world file or upload is malformed; the message names the field."""


def load_world(path: str | Path) -> dict[str, Any]:
    """Read a world file (JSON object with a `persons` list)."""
    world = orjson.loads(Path(path).read_bytes())
    if not isinstance(world, dict):
        raise WorldError("world must be a JSON object")
    return world


def _text(raw: dict[str, Any], name: str, *, pattern: str | None = None, default: str | None = None) -> str:
    value = raw.get(name, default)
    if not isinstance(value, str) or not value:
        raise WorldError(f"{name} must be a non-empty string")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise WorldError(f"{name} is malformed")
    return value


def _amount(raw: dict[str, Any], name: str, *, required: bool) -> int:
    if name not in raw and not required:
        return 0
    value = raw.get(name)
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise WorldError(f'{name} must be a yuan string such as "1234.56"')
    try:
        return fen_of(value, field=name)
    except AmountError as exc:
        raise WorldError(str(exc)) from None


def person_from_world(raw: object, *, year: int, index: int = 0) -> Person:
    """Parse one person; raises WorldError naming the field (with its list index)."""
    if not isinstance(raw, dict):
        raise WorldError(f"persons[{index}] must be an object")
    try:
        status = _text(raw, "status", default="ACTIVE")
        if status not in _STATUSES:
            raise WorldError('status must be "ACTIVE", "11" or "12"')
        brdy = _text(raw, "brdy")
        if not _DATE.match(brdy):
            raise WorldError("brdy must be YYYY-MM-DD")
        return Person(
            psn_no=_text(raw, "psn_no", pattern=r"[0-9A-Za-z]{1,30}"),
            certno=_text(raw, "certno"),
            psn_name=_text(raw, "psn_name"),
            gend=_text(raw, "gend", pattern=r"[129]"),
            brdy=brdy,
            insutype=_text(raw, "insutype", pattern=r"\d{3}"),
            psn_type=_text(raw, "psn_type"),
            insuplc_admdvs=_text(raw, "insuplc_admdvs", pattern=r"\d{6}"),
            status=status,
            balance=_amount(raw, "balance", required=True),
            inscp_ytd=_amount(raw, "inscp_ytd", required=False),
            fund_paid_ytd=_amount(raw, "fund_paid_ytd", required=False),
            acc_year=year,
        )
    except WorldError as exc:
        raise WorldError(f"persons[{index}].{exc}") from None


def person_to_admin(person: Person) -> dict[str, Any]:
    """A person as the admin endpoints show it (yuan strings, like world.json, plus version)."""
    return {
        "psn_no": person.psn_no,
        "certno": person.certno,
        "psn_name": person.psn_name,
        "gend": person.gend,
        "brdy": person.brdy,
        "insutype": person.insutype,
        "psn_type": person.psn_type,
        "insuplc_admdvs": person.insuplc_admdvs,
        "status": person.status,
        "balance": yuan_text(person.balance),
        "inscp_ytd": yuan_text(person.inscp_ytd),
        "fund_paid_ytd": yuan_text(person.fund_paid_ytd),
        "acc_year": person.acc_year,
        "version": person.version,
    }
