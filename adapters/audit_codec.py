"""The admin audit trail's chain and the canonical encoding of one row (pure), on the journal chain's model
(adapters/journal_codec.py): ``prev_hash(1) = 32 zero bytes``, ``row_hash(n) = SHA-256(prev_hash(n) ||
encode(row n))``, ``prev_hash(n+1) = row_hash(n)``; the head row holds the last (seq, hash).

Encoding (version 1): the magic ``b"OCA1"``, then seq, at, who, role, address, method, path, body_sha256,
status, each one tag byte and its value: ``N`` NULL; ``I`` an 8-byte big-endian signed integer (seq, status,
`at` as microseconds since 1970-01-01T00:00:00Z, timestamptz's exact resolution); ``S`` a 4-byte big-endian
length and UTF-8 text; ``B`` a 4-byte length and the bytes.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta

from gateway.domain.audit import AuditEntry

GENESIS = bytes(32)
MAGIC = b"OCA1"
COLS = "seq, at, who, role, address, method, path, body_sha256, status"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _int(v: int) -> bytes:
    return b"I" + struct.pack(">q", v)


def _text(v: str | None) -> bytes:
    if v is None:
        return b"N"
    raw = v.encode("utf-8")
    return b"S" + struct.pack(">I", len(raw)) + raw


def _micros(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("audit time has no time zone")
    return (at - _EPOCH) // _MICRO


def encode(seq: int, e: AuditEntry) -> bytes:
    """The canonical encoding of row `seq`."""
    return b"".join((
        MAGIC, _int(seq), _int(_micros(e.at)), _text(e.who), _text(e.role), _text(e.address), _text(e.method),
        _text(e.path), b"B" + struct.pack(">I", len(e.body_sha256)) + e.body_sha256, _int(e.status),
    ))  # fmt: skip


def chain_hash(prev_hash: bytes, seq: int, e: AuditEntry) -> bytes:
    """row_hash = SHA-256(prev_hash || encode(seq, entry))."""
    return hashlib.sha256(prev_hash + encode(seq, e)).digest()
