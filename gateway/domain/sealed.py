"""Personal data at rest (issue 11 item 9): the sealed envelope of a journal body, AES-256-GCM under a versioned
data key, and the key ring. Envelope: format byte 0x01, key version (2 bytes big-endian), 96-bit random nonce,
ciphertext with its 16-byte tag. Associated data binds the body to its row: (kind, fixmedins_code, msgid).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.domain.codes import ResultCode
from gateway.domain.errors import GatewayError

FORMAT = 0x01
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = 1 + 2 + NONCE_BYTES
MAX_KEY_VERSION = 65_535
REQUEST, RESPONSE = "request", "response"  # what a sealed body is, bound into its associated data

# The development data key (version 1): public, refused outside development mode like the master dev keys.
DEV_DATA_KEY_VERSION = 1
DEV_DATA_KEY = bytes.fromhex("6f6e65636172642d6465762d6a6f75726e616c2d646174612d6b65792d763121")


class UnreadableRecord(GatewayError):
    """A sealed journal body that does not open: unknown key version, another row's body, or altered bytes.

    Answered 503 (the journal cannot be used for this msgid); never carries the body."""

    code = ResultCode.OVERLOADED


@dataclass(frozen=True, slots=True)
class DataKeyRing:
    """Versioned 32-byte data keys, one current (implements `gateway.ports.datakeys.DataKeys`); the repr shows
    versions only."""

    keys: Mapping[int, bytes] = field(repr=False)
    current_version: int
    _ciphers: dict[int, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for v, key in self.keys.items():
            if not 1 <= v <= MAX_KEY_VERSION:
                raise ValueError(f"journal data key version {v} outside 1..{MAX_KEY_VERSION}")
            if len(key) != KEY_BYTES:
                raise ValueError(f"journal data key v{v} must be {KEY_BYTES} bytes (AES-256)")
        if self.current_version not in self.keys:
            raise ValueError(f"the current journal data key v{self.current_version} is not in the ring")
        object.__setattr__(self, "_ciphers", {v: AESGCM(k) for v, k in self.keys.items()})

    def cipher(self, version: int) -> AESGCM | None:
        """The AEAD of key `version`, or None."""
        return self._ciphers.get(version)

    @property
    def versions(self) -> list[int]:
        """Key versions held, for logs and /readyz."""
        return sorted(self.keys)

    def is_development(self) -> bool:
        """True when the ring holds the public development data key."""
        return any(k == DEV_DATA_KEY for k in self.keys.values())


def dev_ring() -> DataKeyRing:
    """The development ring: the development data key as version 1."""
    return DataKeyRing({DEV_DATA_KEY_VERSION: DEV_DATA_KEY}, DEV_DATA_KEY_VERSION)


def row_ad(kind: str, fixmedins_code: str, msgid: str) -> bytes:
    """Associated data binding a body to its row: a ciphertext moved to another row, or from the request column
    to the response column, does not open. Length-prefixed, so no two triples encode alike."""
    parts = [b"onecard-journal", kind.encode(), fixmedins_code.encode(), msgid.encode()]
    return b"".join(struct.pack(">H", len(p)) + p for p in parts)


def seal(version: int, aead: AESGCM, plaintext: bytes, ad: bytes) -> bytes:
    """The envelope of `plaintext` under key `version` (its AEAD `aead`), with a fresh random 96-bit nonce."""
    nonce = os.urandom(NONCE_BYTES)
    return struct.pack(">BH", FORMAT, version) + nonce + aead.encrypt(nonce, plaintext, ad)


def key_version(blob: bytes) -> int:
    """The key version an envelope names.

    Raises:
        UnreadableRecord: not an envelope of a known format.
    """
    if len(blob) < HEADER_BYTES + TAG_BYTES or blob[0] != FORMAT:
        raise UnreadableRecord("journal body is not a sealed envelope of format 1")
    return int(struct.unpack_from(">H", blob, 1)[0])


def open_sealed(cipher: Callable[[int], AESGCM | None], blob: bytes, ad: bytes, *, what: str = "journal body") -> bytes:
    """The plaintext of an envelope sealed for `ad`.

    Raises:
        UnreadableRecord: unknown format or key version, or authentication failed (another row's body, or altered).
    """
    version = key_version(blob)
    aead = cipher(version)
    if aead is None:
        raise UnreadableRecord(f"{what}: sealed with journal data key v{version}, which the key store does not hold")
    try:
        return aead.decrypt(blob[3:HEADER_BYTES], blob[HEADER_BYTES:], ad)
    except InvalidTag:
        raise UnreadableRecord(
            f"{what}: does not authenticate under data key v{version} for this row (altered, or moved from another row)"
        ) from None
