"""Tamper-evident journal: a background sealer hash-chains completed journal rows; `verify` proves the chain.

Design. One global chain over the whole journal (not one per day): a deleted day, or a deleted row at a day
boundary, is then a visible gap rather than a missing chain nobody asks about. The settlement hot path never
touches it: a sealer (one task per gateway process) appends DONE rows in the background, every ~0.1 s in
chunks of at most 100 rows, yielding to requests while it hashes. Sealers lock the one head row of `journal_chain` with
`FOR UPDATE SKIP LOCKED`: one process seals at a time, the others skip the round, so each row is sealed
exactly once however many processes run (the unique index on `chain_seq` enforces it too). Within a round
rows are taken in id order; a row still PENDING is left for a later round, so the chain is gap-free in
`chain_seq` while `id`s may come a little out of order when a request completes late.

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

Mutable columns (state, the chain columns) are not hashed; `verify` checks that a sealed row is DONE.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from adapters.pg_pool import RETRYABLE

log = logging.getLogger("onecard.chain")

CHAIN = "journal"
GENESIS = bytes(32)
MAGIC = b"OCJ1"
FIELDS = (
    "id", "fixmedins_code", "msgid", "infno", "psam_no", "card_sn", "content_hash", "request", "err_code",
    "http_status", "response", "received_at", "completed_at",
)  # fmt: skip
_COLS = ", ".join(FIELDS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


# -- canonical encoding ----------------------------------------------------------------------------------


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


def encode_row(row: Mapping[str, Any]) -> bytes:
    """The canonical encoding of a journal row's immutable fields."""
    return MAGIC + b"".join(_field(name, row[name]) for name in FIELDS)


def chain_hash(prev_hash: bytes, row: Mapping[str, Any]) -> bytes:
    """row_hash = SHA-256(prev_hash || encode_row(row))."""
    return hashlib.sha256(prev_hash + encode_row(row)).digest()


# -- sealer ----------------------------------------------------------------------------------------------


_YIELD_EVERY = 16


async def seal_once(pool: asyncpg.Pool, *, batch: int = 100) -> int:
    """Append every completed, unsealed row to the chain; returns how many this call sealed.

    0 also when another process holds the head (it is sealing them).
    """
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            head = await conn.fetchrow(
                "SELECT last_seq, last_hash FROM journal_chain WHERE chain = $1 FOR UPDATE SKIP LOCKED", CHAIN
            )
            if head is None:
                return total
            rows = await conn.fetch(
                f"SELECT {_COLS} FROM journal WHERE chain_seq IS NULL AND state = 'DONE'"  # noqa: S608 - constant
                " ORDER BY id LIMIT $1 FOR UPDATE",
                batch,
            )
            if not rows:
                return total
            seq, prev = head["last_seq"], bytes(head["last_hash"])
            ids, seqs, prevs, hashes = [], [], [], []
            for k, r in enumerate(rows):
                if k and k % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # hashing is CPU work: let requests in between, p99 depends on it
                seq += 1
                h = chain_hash(prev, r)
                ids.append(r["id"])
                seqs.append(seq)
                prevs.append(prev)
                hashes.append(h)
                prev = h
            await conn.execute(
                "UPDATE journal j SET chain_seq = s.seq, prev_hash = s.prev, row_hash = s.hash"
                " FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS s(id, seq, prev, hash)"
                " WHERE j.id = s.id",
                ids,
                seqs,
                prevs,
                hashes,
            )
            await conn.execute(
                "UPDATE journal_chain SET last_seq = $2, last_id = $3, last_hash = $4, sealed_at = now()"
                " WHERE chain = $1",
                CHAIN,
                seq,
                ids[-1],
                prev,
            )
        total += len(rows)
        if len(rows) < batch:
            return total


async def run_sealer(pool: asyncpg.Pool, interval_s: float = 0.1) -> None:
    """Seal forever, every `interval_s`; database trouble is logged and retried, never raised."""
    while True:
        try:
            await seal_once(pool)
        except RETRYABLE as exc:
            log.warning("journal sealer: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(interval_s)


# -- verification ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """ok, or the first row whose link, hash or content does not match, and why.

    Completed rows still waiting for the sealer longer than `stale_s` are counted in `unsealed`: a stopped
    sealer, not a broken chain.
    """

    ok: bool
    rows: int
    first_broken_id: int | None = None
    reason: str | None = None
    unsealed: int = 0
    oldest_unsealed_id: int | None = None
    head_seq: int = 0
    head_hash: str = ""


async def verify(
    pool: asyncpg.Pool, *, day: date | None = None, tz: tzinfo = UTC, stale_s: float = 60.0
) -> VerifyResult:
    """Recompute the chain (all of it, or the stretch holding the rows completed on `day` in `tz`).

    A whole-chain run also checks the head: rows deleted from the end show as a head beyond the chain.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT last_seq, last_id, last_hash FROM journal_chain WHERE chain = $1", CHAIN)
        if head is None:
            return VerifyResult(False, 0, None, "journal_chain head row is missing")
        window: tuple[datetime, datetime] | None = None
        lo, hi = 1, head["last_seq"]
        expect = GENESIS
        if day is not None:
            window = (datetime.combine(day, time(0), tz), datetime.combine(day + timedelta(days=1), time(0), tz))
            span = await conn.fetchrow(
                "SELECT min(chain_seq) AS lo, max(chain_seq) AS hi FROM journal"
                " WHERE chain_seq IS NOT NULL AND completed_at >= $1 AND completed_at < $2",
                *window,
            )
            lo, hi = span["lo"] or 1, span["hi"] or 0
            if lo > 1 and hi >= lo:
                before = await conn.fetchrow("SELECT row_hash FROM journal WHERE chain_seq = $1", lo - 1)
                first = await conn.fetchval("SELECT id FROM journal WHERE chain_seq = $1", lo)
                if before is None:
                    return VerifyResult(False, 0, first, f"chain_seq {lo - 1} before this row is missing")
                expect = bytes(before["row_hash"])
        stale = await _unsealed(conn, window, stale_s)
        res = await _walk(conn, lo, hi, expect)
        ok, rows, broken, reason, last = res
        if ok and day is None:
            if (last[0], last[1]) != (head["last_seq"], head["last_id"]) or last[2] != bytes(head["last_hash"]):
                ok, broken = False, head["last_id"]
                reason = (
                    f"the head says seq {head['last_seq']} (id {head['last_id']}) but the chain ends at seq"
                    f" {last[0]} (id {last[1]}): sealed rows at the end are missing or the head was altered"
                )
            else:
                extra = await conn.fetchrow(
                    "SELECT id, chain_seq FROM journal WHERE chain_seq > $1 ORDER BY chain_seq LIMIT 1", hi
                )
                if extra is not None:
                    ok, broken = False, extra["id"]
                    reason = f"row sealed at seq {extra['chain_seq']} lies beyond the head (seq {hi})"
        return VerifyResult(
            ok, rows, broken, reason, stale[0], stale[1], head["last_seq"], bytes(head["last_hash"]).hex()
        )


async def _walk(
    conn: asyncpg.Connection, lo: int, hi: int, expect: bytes
) -> tuple[bool, int, int | None, str | None, tuple[int, int | None, bytes]]:
    rows = 0
    seq, last_id, prev = lo - 1, None, expect
    async for r in conn.cursor(
        f"SELECT {_COLS}, state, chain_seq, prev_hash, row_hash FROM journal"  # noqa: S608 - constant columns
        " WHERE chain_seq >= $1 AND chain_seq <= $2 ORDER BY chain_seq",
        lo,
        hi,
        prefetch=2000,
    ):
        rid = r["id"]
        if r["chain_seq"] != seq + 1:
            return False, rows, rid, f"chain_seq jumps from {seq} to {r['chain_seq']}: sealed rows are missing", (
                seq, last_id, prev)  # fmt: skip
        if bytes(r["prev_hash"]) != prev:
            return False, rows, rid, f"prev_hash does not link to the row at seq {seq}", (seq, last_id, prev)
        if chain_hash(prev, r) != bytes(r["row_hash"]):
            return False, rows, rid, "content or row_hash altered after sealing", (seq, last_id, prev)
        if r["state"] != "DONE":
            return False, rows, rid, f"sealed row is {r['state']}, not DONE", (seq, last_id, prev)
        rows += 1
        seq, last_id, prev = r["chain_seq"], rid, bytes(r["row_hash"])
    return True, rows, None, None, (seq, last_id, prev)


async def _unsealed(
    conn: asyncpg.Connection, window: tuple[datetime, datetime] | None, stale_s: float
) -> tuple[int, int | None]:
    lo, hi = window or (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
    r = await conn.fetchrow(
        "SELECT count(*) AS n, min(id) AS oldest FROM journal WHERE chain_seq IS NULL AND state = 'DONE'"
        " AND completed_at < now() - make_interval(secs => $1) AND completed_at >= $2 AND completed_at < $3",
        stale_s,
        lo,
        hi,
    )
    return r["n"], r["oldest"]
