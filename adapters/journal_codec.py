"""The journal chain's hash and the canonical encoding of a journal row it hashes (pure; see
adapters/pg_journal_chain.py for the sealer, adapters/pg_journal_verify.py for verification).

Chain. ``prev_hash(1) = 32 zero bytes``; ``row_hash(n) = SHA-256(prev_hash(n) || encode(row n))``;
``prev_hash(n+1) = row_hash(n)``; the head row holds the last (seq, id, hash).

Canonical encoding (version 1; stable across processes, Python and PostgreSQL versions). The magic
``b"OCJ1"`` followed by these fields in this order: id, fixmedins_code, msgid, infno, psam_no, card_sn,
content_hash, request, err_code, http_status, response, received_at, completed_at. Each field is one tag byte
then its value:

- ``N``: NULL, nothing follows;
- ``I``: an integer as 8 bytes big-endian two's complement (id, http_status, and the two timestamps as
  microseconds since 1970-01-01T00:00:00Z, the exact resolution of timestamptz);
- ``S``: text as a 4-byte big-endian length and its UTF-8 bytes;
- ``B``: bytes as a 4-byte big-endian length and the bytes as stored;
- ``J``: the request (jsonb) as a 4-byte length and canonical JSON in UTF-8: object keys sorted by code
  point, no white space, strings escaped as Python's ``json.dumps(ensure_ascii=False)`` does (``\\"``,
  ``\\\\``, ``\\n``-style and ``\\u00XX`` for other control characters), integers in decimal, other numbers
  in plain positional notation exactly as PostgreSQL stores them (``1.50`` stays ``1.50``), true/false/null.
  It is re-derived from the stored value, so it does not depend on how jsonb prints.

Version 2 (issue 11 item 9), for a row whose bodies are sealed (``data_key_version`` not NULL): the magic
``b"OCJ2"``, the same thirteen fields (request and response are NULL in such a row), then data_key_version
(``I``), request_enc and response_enc (``B``). A clear row, sealed before or after that version, is encoded as
version 1, so the chain sealed before the upgrade verifies unchanged. The chain hashes what is stored, the
ciphertext: verification needs no data key (an auditor, an archive, or a row whose key was destroyed), the GCM
tag already commits the ciphertext to its plaintext, and no digest of a low-entropy body is published.

Mutable columns (state, the chain columns) are not hashed; `verify` checks that a sealed row is DONE.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import orjson


class Row(Protocol):
    """A journal row by column name: a dict, or a database record."""

    def __getitem__(self, key: str) -> Any: ...


GENESIS = bytes(32)
MAGIC = b"OCJ1"
MAGIC_SEALED = b"OCJ2"
FIELDS = (
    "id", "fixmedins_code", "msgid", "infno", "psam_no", "card_sn", "content_hash", "request", "err_code",
    "http_status", "response", "received_at", "completed_at",
)  # fmt: skip
SEALED_FIELDS = ("data_key_version", "request_enc", "response_enc")
COLS = ", ".join(FIELDS + SEALED_FIELDS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def canonical_json(text: str) -> bytes:
    """The canonical UTF-8 bytes of a JSON document (see the module docstring).

    orjson writes the document with sorted keys; numbers go in as pre-formatted fragments, so they come out
    exactly as the definition says. `canonical_json_reference` is the definition itself, slower; tests hold
    the two byte-identical.
    """
    doc = json.loads(text, parse_float=_float_fragment, parse_int=_int_fragment, parse_constant=_no_constant)
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def canonical_json_reference(text: str) -> bytes:
    """The canonical encoding as defined, value by value."""
    return _json(json.loads(text, parse_float=Decimal, parse_constant=_no_constant)).encode("utf-8")


def _float_fragment(text: str) -> orjson.Fragment:
    return orjson.Fragment(format(Decimal(text), "f"))


def _int_fragment(text: str) -> orjson.Fragment:
    return orjson.Fragment(str(int(text)))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Characters json.dumps(ensure_ascii=False) escapes; a string without them encodes as itself in quotes.
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')


def _str(v: str) -> str:
    return json.dumps(v, ensure_ascii=False) if _NEEDS_ESCAPE.search(v) else f'"{v}"'


def _json(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, list):
        return "[" + ",".join([_json(x) for x in v]) + "]"
    if isinstance(v, dict):
        return "{" + ",".join([_str(k) + ":" + _json(v[k]) for k in sorted(v)]) + "}"
    raise TypeError(f"unexpected JSON value {type(v).__name__}")


def _field(name: str, v: Any) -> bytes:
    if v is None:
        return b"N"
    if name == "request":
        body = canonical_json(v)
        return b"J" + struct.pack(">I", len(body)) + body
    if isinstance(v, datetime):
        if v.tzinfo is None:
            raise ValueError(f"{name} has no time zone")
        return b"I" + struct.pack(">q", (v - _EPOCH) // _MICRO)
    if isinstance(v, bool):
        raise TypeError(f"{name}: unexpected bool")
    if isinstance(v, int):
        return b"I" + struct.pack(">q", v)
    if isinstance(v, str):
        raw = v.encode("utf-8")
        return b"S" + struct.pack(">I", len(raw)) + raw
    if isinstance(v, bytes | bytearray | memoryview):
        raw = bytes(v)
        return b"B" + struct.pack(">I", len(raw)) + raw
    raise TypeError(f"{name}: unexpected {type(v).__name__}")


def _sealed(row: Row) -> bool:
    try:
        return row["data_key_version"] is not None
    except KeyError:  # a row read without the columns of version 2 (a clear row by definition)
        return False


def encode_row(row: Row) -> bytes:
    """The canonical encoding of a journal row's immutable fields (version 2 for a sealed row)."""
    clear = b"".join(_field(name, row[name]) for name in FIELDS)
    if not _sealed(row):
        return MAGIC + clear
    return MAGIC_SEALED + clear + b"".join(_field(name, row[name]) for name in SEALED_FIELDS)


def chain_hash(prev_hash: bytes, row: Row) -> bytes:
    """row_hash = SHA-256(prev_hash || encode_row(row))."""
    return hashlib.sha256(prev_hash + encode_row(row)).digest()
