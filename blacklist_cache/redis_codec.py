"""The Redis blacklist's encodings: the field and bucket bits of a key, reasons as small integers, and the
stream payload of a chunk of changes (`encode_ops` / `decode_ops`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from blacklist_cache.fingerprint import card_field, card_from_field, fingerprint, person_field

MEAN_BUCKET = 64


class Op(NamedTuple):
    """One change of a stream entry: list 'C'|'P', op 'A'|'R'|'D', key (card_sn or psn_no), reason ('' on delete)."""

    list: str
    op: str
    key: str
    reason: str


def bits_for(entries: int) -> int:
    """Bucket bits so that the mean bucket holds at most MEAN_BUCKET (and, above that size, more than half)."""
    return min(32, (max(1, -(-entries // MEAN_BUCKET)) - 1).bit_length())


def field_of(list_: str, key: str) -> bytes | None:
    """The Redis field of a key, or None when the key cannot be one (not a SPEC card_sn, not ASCII)."""
    try:
        return card_field(key) if list_ == "C" else person_field(key)
    except ValueError:
        return None


def reason_code(value: bytes | str | None) -> str:
    """Wire form of a stored reason: 3 → '03', 11 → '11'; None/empty → '' (not listed)."""
    return f"{int(value):02d}" if value else ""


def reason_int(reason: str | None) -> int:
    """Stored form of a reason: '03' → 3; 0 when it is not one (empty, not a small positive integer)."""
    return int(reason) if reason and reason.isdigit() and 0 < int(reason) < 256 else 0


def encode_ops(changes: Sequence[tuple[str, str, str, str | None]]) -> bytes:
    """Stream payload of (list, op, key, reason) changes, one record per version, in version order.

    Record: 1 byte flags (bit 0: delete, else add; bit 1: person list, else card list; bit 2: the key is
    text, not an 11-byte card field; bit 3: a reason change of a listed key, op 'R'), 1 byte reason (1..7,
    11, 12; 0 on delete), 1 byte key length n, then n
    key bytes: for a card the 11-byte `card_field` (or, flag bit 2, the key's UTF-8 when it is not a SPEC card_sn);
    for a person the psn_no's bytes. Keys are cut at 255 bytes (no real key is that long).
    """
    out = bytearray()
    for list_, op, key, reason in changes:
        flags = (2 if list_ == "P" else 0) | (1 if op == "D" else 0) | (8 if op == "R" else 0)
        raw = field_of("C", key) if list_ == "C" else None
        if raw is None:
            raw, flags = key.encode("utf-8", "replace")[:255], flags | (4 if list_ == "C" else 0)
        out += bytes((flags, reason_int(reason) if op != "D" else 0, len(raw)))
        out += raw
    return bytes(out)


def decode_ops(payload: bytes) -> list[Op]:
    """The changes of a stream entry's `ops` (inverse of `encode_ops`): (list, op, key, reason) each."""
    out: list[Op] = []
    i, n = 0, len(payload)
    while i < n:
        flags, reason, size = payload[i], payload[i + 1], payload[i + 2]
        raw = payload[i + 3 : i + 3 + size]
        i += 3 + size
        card = not flags & 2
        key = card_from_field(raw) if card and not flags & 4 else raw.decode("utf-8", "replace")
        op = "D" if flags & 1 else ("R" if flags & 8 else "A")
        out.append(Op("P" if flags & 2 else "C", op, key, f"{reason:02d}" if reason else ""))
    return out


def hi(field: bytes | None) -> int:
    """Top 32 bits of a field's fingerprint (what the Lua scripts shift), 0 for no field."""
    return fingerprint(field) >> 32 if field else 0
