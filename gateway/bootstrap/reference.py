"""Reference data of a gateway: the benefit policy book and the drug and service catalogue."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.settings import Settings
from rules.catalogue import Catalogue
from rules.policy import PolicyBook


def load_reference(settings: Settings, world: dict[str, Any] | None) -> tuple[PolicyBook, Catalogue]:
    """Policy (settings file or the shipped demo policy) and catalogue (settings file, world, or shipped)."""
    if settings.policy_file:
        policy_text = Path(settings.policy_file).read_text(encoding="utf-8")
    else:
        policy_text = (resources.files("rules") / "data" / "policy.toml").read_text(encoding="utf-8")
    if settings.catalogue_file:
        records = json.loads(Path(settings.catalogue_file).read_text(encoding="utf-8"))
    elif world is not None and world.get("catalogue"):
        records = world["catalogue"]
    else:
        records = json.loads((resources.files("rules") / "data" / "catalogue.json").read_text(encoding="utf-8"))
    return PolicyBook.from_toml(policy_text), Catalogue.from_records(records)
