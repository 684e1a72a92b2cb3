"""Loads master keys from a key file or the environment; refuses development keys outside development mode.

Key file (TOML or JSON), one entry per key::

    [[key]]
    alg = "SM4"        # or "3DES"
    kv = 2             # 1..255
    purpose = "PUR"    # or "TAC"
    hex = "32 hex digits"
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from gateway.domain.crypto import Alg
from gateway.domain.errors import ConfigError
from gateway.domain.keys import DEV_KEYS, KeyId, MasterKeys, Purpose
from gateway.settings import Settings


def parse_keys(entries: Any) -> MasterKeys:
    """Master keys from a list of {alg, kv, purpose, hex}.

    Raises:
        ConfigError: naming every bad entry (never printing key material).
    """
    if not isinstance(entries, list):
        raise ConfigError("keys: expected a list of {alg, kv, purpose, hex}")
    keys: dict[KeyId, bytes] = {}
    errors = []
    for i, e in enumerate(entries):
        try:
            kid = (Alg(e["alg"]), int(e["kv"]), Purpose(e["purpose"]))
            if not 1 <= kid[1] <= 255:
                raise ValueError("kv out of 1..255")
            key = bytes.fromhex(e["hex"])
            if len(key) != 16:
                raise ValueError("key must be 16 bytes")
        except (KeyError, ValueError, TypeError) as exc:
            errors.append(f"key[{i}]: {type(exc).__name__}: {str(exc)[:60] if not isinstance(exc, KeyError) else exc}")
            continue
        if kid in keys:
            errors.append(f"key[{i}]: duplicate {kid[0]}/kv{kid[1]}/{kid[2]}")
        keys[kid] = key
    if errors:
        raise ConfigError("bad keys: " + "; ".join(errors))
    return MasterKeys(keys)


def load_keys(settings: Settings) -> MasterKeys:
    """The key store for these settings.

    Raises:
        ConfigError: no keys, unreadable keys, or development keys outside development mode.
    """
    if settings.keys_json:
        try:
            keys = parse_keys(json.loads(settings.keys_json))
        except json.JSONDecodeError:
            raise ConfigError("ONECARD_KEYS is not valid JSON") from None
    elif settings.keys_file:
        path = Path(settings.keys_file)
        try:
            text = path.read_text(encoding="utf-8")
            raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text).get("key", [])
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read key file {path}: {type(exc).__name__}") from None
        keys = parse_keys(raw)
    elif settings.dev_mode:
        keys = MasterKeys(dict(DEV_KEYS))
    else:
        raise ConfigError("no master keys: set ONECARD_KEYS_FILE (or ONECARD_KEYS), or run with --dev")
    dev = keys.dev_key_ids()
    if dev and not settings.dev_mode:
        names = ", ".join(f"{a}/kv{v}/{p}" for a, v, p in dev)
        raise ConfigError(f"development keys ({names}) are refused outside development mode (--dev)")
    return keys
