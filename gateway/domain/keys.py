"""Master keys (SPEC §4.2) and the cache of diversified card keys.

`MasterKeys` is the key store's in-memory form: it never prints a key. `CardKeyCache` memoises the
pure function (alg, kv, purpose, f1, f2) -> diversified key with a bounded dict.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.domain.crypto import Alg, derive_key


class Purpose(StrEnum):
    """PUR keys MAC1/MAC2 through the purchase session key; TAC is the issuer's TAC key."""

    PUR = "PUR"
    TAC = "TAC"


KeyId = tuple[Alg, int, Purpose]

# Development keys of version 1 (SPEC §4.2, vectors/security.json): refused outside development mode.
DEV_KEYS: Mapping[KeyId, bytes] = {
    (Alg.DES3, 1, Purpose.PUR): bytes.fromhex("404142434445464748494A4B4C4D4E4F"),
    (Alg.DES3, 1, Purpose.TAC): bytes.fromhex("00112233445566778899AABBCCDDEEFF"),
    (Alg.SM4, 1, Purpose.PUR): bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"),
    (Alg.SM4, 1, Purpose.TAC): bytes.fromhex("FEDCBA98765432100123456789ABCDEF"),
}


@dataclass(frozen=True, slots=True)
class MasterKeys:
    """Versioned 16-byte master keys by (alg, kv, purpose); the repr shows ids only."""

    keys: Mapping[KeyId, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        for kid, key in self.keys.items():
            if len(key) != 16:
                raise ValueError(f"master key {kid[0]}/kv{kid[1]}/{kid[2]} must be 16 bytes")

    def get(self, alg: Alg, kv: int, purpose: Purpose) -> bytes | None:
        """The master key, or None when the store has no such key."""
        return self.keys.get((alg, kv, purpose))

    def has(self, alg: Alg, kv: int) -> bool:
        """True when both PUR and TAC keys exist for (alg, kv)."""
        return (alg, kv, Purpose.PUR) in self.keys and (alg, kv, Purpose.TAC) in self.keys

    def dev_key_ids(self) -> list[KeyId]:
        """Ids of keys equal to the public development keys."""
        return [kid for kid, key in self.keys.items() if DEV_KEYS.get(kid) == key]

    @property
    def ids(self) -> list[str]:
        """Printable key ids, for logs and /readyz."""
        return sorted(f"{a}/kv{v}/{p}" for a, v, p in self.keys)


class CardKeyCache:
    """Bounded LRU cache of diversified keys; master keys stay inside `MasterKeys`."""

    __slots__ = ("_cache", "_keys", "_max")

    def __init__(self, keys: MasterKeys, max_entries: int = 100_000) -> None:
        self._keys = keys
        self._max = max_entries
        self._cache: OrderedDict[tuple[Alg, int, Purpose, bytes, bytes], bytes] = OrderedDict()

    def __repr__(self) -> str:
        return f"CardKeyCache(entries={len(self._cache)})"

    def derive(self, alg: Alg, kv: int, purpose: Purpose, f1: bytes, f2: bytes) -> bytes | None:
        """Div(Div(MK, f1), f2), or None when the master key is unknown."""
        ck = (alg, kv, purpose, f1, f2)
        hit = self._cache.get(ck)
        if hit is not None:
            self._cache.move_to_end(ck)
            return hit
        master = self._keys.get(alg, kv, purpose)
        if master is None:
            return None
        key = derive_key(alg, master, f1, f2)
        self._cache[ck] = key
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return key
