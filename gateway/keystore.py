"""Loads master keys from a key file or the environment; refuses development keys outside development mode.

Key file (TOML or JSON), one entry per key::

    [[key]]
    alg = "SM4"        # or "3DES"
    kv = 2             # 1..255
    purpose = "PUR"    # or "TAC"
    hex = "32 hex digits"

Journal data keys (issue 11 item 9) in the same file, or as JSON in ONECARD_JOURNAL_KEYS (a list of the same
entries); several versions, one current (the flag, else the highest version); older ones only open old rows::

    [[journal_data_key]]
    version = 2        # 1..65535, stored with every row it seals
    hex = "64 hex digits"
    current = true
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from gateway.domain.crypto import Alg
from gateway.domain.errors import ConfigError
from gateway.domain.keys import DEV_KEYS, KeyId, MasterKeys, Purpose
from gateway.domain.sealed import KEY_BYTES, MAX_KEY_VERSION, DataKeyRing, dev_ring
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
            raw = _section(text, path, "key")
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


def _section(text: str, path: Path, name: str) -> Any:
    """One section of a key file: TOML tables, or JSON (a list of master keys, or an object of sections)."""
    if path.suffix != ".json":
        return tomllib.loads(text).get(name, [])
    doc = json.loads(text)
    if isinstance(doc, dict):
        return doc.get(name, [])
    return doc if name == "key" else []


def parse_data_keys(entries: Any) -> DataKeyRing | None:
    """The data key ring from a list of {version, hex, current}; None for an empty list.

    Raises:
        ConfigError: naming every bad entry (never printing key material).
    """
    if not isinstance(entries, list):
        raise ConfigError("journal data keys: expected a list of {version, hex, current}")
    keys: dict[int, bytes] = {}
    current: list[int] = []
    errors = []
    for i, e in enumerate(entries):
        try:
            version = int(e["version"])
            if not 1 <= version <= MAX_KEY_VERSION:
                raise ValueError(f"version out of 1..{MAX_KEY_VERSION}")
            key = bytes.fromhex(e["hex"])
            if len(key) != KEY_BYTES:
                raise ValueError(f"key must be {KEY_BYTES} bytes (64 hex digits)")
            is_current = e.get("current", False)
            if not isinstance(is_current, bool):
                raise ValueError("current must be true or false")
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)[:60]
            errors.append(f"journal_data_key[{i}]: {type(exc).__name__}: {detail}")
            continue
        if version in keys:
            errors.append(f"journal_data_key[{i}]: duplicate version {version}")
        keys[version] = key
        if is_current:
            current.append(version)
    if len(current) > 1:
        errors.append(f"journal data keys: {len(current)} marked current (versions {current}); mark one")
    if errors:
        raise ConfigError("bad journal data keys: " + "; ".join(errors))
    if not keys:
        return None
    return DataKeyRing(keys, current[0] if current else max(keys))


def load_data_keys(settings: Settings) -> DataKeyRing | None:
    """The journal's data key ring. With `journal_encryption = false` new bodies are stored in clear and the
    ring (None when no key is configured) only opens rows sealed before.

    Raises:
        ConfigError: unreadable keys; no data key outside development mode while encryption is on; the
            development data key outside development mode.
    """
    ring: DataKeyRing | None = None
    if settings.journal_keys_json:
        try:
            ring = parse_data_keys(json.loads(settings.journal_keys_json))
        except json.JSONDecodeError:
            raise ConfigError("ONECARD_JOURNAL_KEYS is not valid JSON") from None
    elif settings.keys_file:
        path = Path(settings.keys_file)
        try:
            raw = _section(path.read_text(encoding="utf-8"), path, "journal_data_key")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read key file {path}: {type(exc).__name__}") from None
        ring = parse_data_keys(raw)
    if ring is None and settings.dev_mode:
        ring = dev_ring()
    if ring is None and not settings.journal_encryption:
        return None
    if ring is None:
        raise ConfigError(
            "no journal data key: add [[journal_data_key]] to the key file (or ONECARD_JOURNAL_KEYS), or store"
            " the journal in clear with journal_encryption = false (ONECARD_JOURNAL_ENCRYPTION=false)"
        )
    if ring.is_development() and not settings.dev_mode:
        raise ConfigError("the development journal data key is refused outside development mode (--dev)")
    return ring
