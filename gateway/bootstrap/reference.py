"""Reference data of a gateway: the benefit policy book and the drug and service catalogue."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.domain.errors import ConfigError
from gateway.settings import Settings
from rules.catalogue import Catalogue
from rules.limits import RateLimits, parse_rate_limits
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


def load_rate_limits(settings: Settings) -> RateLimits | None:
    """The rate limits of `rate_limits_file` (issue 11 item 7), or None when none is configured.

    Raises:
        ConfigError: the file cannot be read, or names every bad field of its [rate_limits] table.
    """
    if not settings.rate_limits_file:
        return None
    try:
        text = Path(settings.rate_limits_file).read_text(encoding="utf-8")
        limits = parse_rate_limits(text)
    except OSError as exc:
        raise ConfigError(f"rate_limits_file {settings.rate_limits_file}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"rate_limits_file {settings.rate_limits_file}: {exc}") from None
    return limits if limits.any else None
