"""Fault injection for callService: latency, system errors, hangs, dropped replies, outage."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any

_RATES = ("error_rate", "timeout_rate", "drop_after_post_rate")


class FaultError(ValueError):
    """A fault configuration is invalid; the message names the field."""


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """What to inject. Rates are probabilities per callService request (0 = never)."""

    latency_ms: float = 0.0  # added before acting
    error_rate: float = 0.0  # answer infcode -1 without acting
    timeout_rate: float = 0.0  # hang `hang_s` before acting, then act and answer
    drop_after_post_rate: float = 0.0  # act, then close the connection without answering
    down: bool = False  # answer HTTP 503 without acting
    hang_s: float = 5.0
    seed: int | None = None

    @classmethod
    def parse(cls, raw: object) -> FaultConfig:
        """Validate a PUT /sim/faults body; missing fields take their defaults."""
        if not isinstance(raw, dict):
            raise FaultError("faults must be a JSON object")
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise FaultError(f"{unknown[0]}: unknown field")
        values: dict[str, Any] = {}
        for name in ("latency_ms", "hang_s", *_RATES):
            if name in raw:
                values[name] = _number(name, raw[name], upper=1.0 if name in _RATES else 600_000.0)
        if values.get("hang_s", 0.0) > 600.0:
            raise FaultError("hang_s must be at most 600")
        if "down" in raw:
            if not isinstance(raw["down"], bool):
                raise FaultError("down must be true or false")
            values["down"] = raw["down"]
        if "seed" in raw:
            seed = raw["seed"]
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise FaultError("seed must be an integer or null")
            values["seed"] = seed
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _number(name: str, value: object, *, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultError(f"{name} must be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > upper:
        raise FaultError(f"{name} must be between 0 and {upper:g}")
    return number


class Faults:
    """The current fault configuration with its own random stream (seeded for reproducible runs)."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.set(config or FaultConfig())

    def set(self, config: FaultConfig) -> None:
        """Replace the configuration and restart the random stream from its seed."""
        self.config = config
        self._rng = random.Random(config.seed)

    def roll(self, rate: float) -> bool:
        """True with probability `rate`; draws nothing when the rate is 0 or 1."""
        if rate <= 0.0:
            return False
        return rate >= 1.0 or self._rng.random() < rate
