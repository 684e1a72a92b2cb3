"""Bulk import of a feed file (SPEC §8.3), streamed: used by `POST /admin/blacklist/import` and the CLI.

The file is CSV (a header line naming columns of `gateway.domain.feeds.CSV_COLUMNS`, then one event per line;
a quoted cell may not hold a line break) or JSON lines (one object per line). Blank lines are skipped. It is
read in chunks and applied in batches, each batch in one transaction: a line's result is final once its
batch is reported, so an upload cut short keeps every batch reported before the cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import asyncpg
import orjson

from adapters.pg_blacklist import AfterCommit, Prepared, commit_prepared, current_version, prepare_events
from adapters.pg_pool import Pg, open_pg_for
from gateway.domain.feeds import CITY, CSV_COLUMNS, FeedError, FeedEvent, parse_event
from gateway.settings import Settings

FORMATS = ("csv", "jsonl")
MAX_LINE_BYTES = 64 * 1024
MAX_LINES = 20_000_000
MAX_BYTES = 4 * 1024**3


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """Bounds of one upload: lines, bytes, and the length of one line."""

    max_lines: int = MAX_LINES
    max_bytes: int = MAX_BYTES
    max_line_bytes: int = MAX_LINE_BYTES


class _TooLong:
    """Stands for a line over the limit (its bytes are skipped, never kept)."""


_TOO_LONG = _TooLong()


async def split_lines(chunks: AsyncIterator[bytes], max_line: int) -> AsyncIterator[bytes | _TooLong]:
    """Lines (without the line break) of a byte stream cut anywhere; an over-long line becomes one marker."""
    buf = bytearray()
    skipping = False
    async for chunk in chunks:
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                if not skipping:
                    buf += chunk[start:]
                    if len(buf) > max_line:
                        skipping = True
                        buf.clear()
                break
            if skipping:
                yield _TOO_LONG
                skipping = False
            elif len(buf) + nl - start > max_line:
                buf.clear()
                yield _TOO_LONG
            elif buf:
                buf += chunk[start:nl]
                yield bytes(buf)
                buf.clear()
            else:
                yield chunk[start:nl]
            start = nl + 1
    if skipping:
        yield _TOO_LONG
    elif buf:
        yield bytes(buf)


@dataclass(slots=True)
class _Summary:
    lines: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    version: int | None = None
    stopped: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, result: dict[str, Any]) -> dict[str, Any]:
        status = result["status"]
        if status == "accepted":
            self.accepted += 1
        elif status == "duplicate":
            self.duplicate += 1
        else:
            self.rejected += 1
        if result.get("version") is not None:
            self.version = max(self.version or 0, result["version"])
        return result

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": {
                "lines": self.lines,
                "accepted": self.accepted,
                "duplicate": self.duplicate,
                "rejected": self.rejected,
                "version": self.version,
                "stopped": self.stopped,
            }
        }


class _Decoder:
    """Turns one line into an event or a rejection reason, in the file's format."""

    def __init__(self, fmt: str, source_scope: str | None) -> None:
        if fmt not in FORMATS:
            raise ValueError("format must be csv or jsonl")
        self.fmt = fmt
        self.scope = source_scope
        self.header: list[str] | None = None

    def header_line(self, text: str) -> str | None:
        """Read the CSV header; an error message if it cannot be used."""
        cols = [c.strip() for c in next(csv.reader([text.removeprefix("\ufeff")]), [])]
        unknown = [c for c in cols if c not in CSV_COLUMNS]
        if unknown:
            return f"header: unknown column {unknown[0][:40]!r} (columns: {','.join(CSV_COLUMNS)})"
        if len(set(cols)) != len(cols):
            return "header: a column is named twice"
        for need in ("source_seq", "event"):
            if need not in cols:
                return f"header: column {need} is missing"
        self.header = cols
        return None

    def decode(self, raw: bytes) -> FeedEvent | str:
        try:
            if self.fmt == "jsonl":
                record = orjson.loads(raw)
                if not isinstance(record, dict):
                    return "line: must be a JSON object"
            else:
                assert self.header is not None
                cells = next(csv.reader([raw.decode("utf-8")]))
                if len(cells) != len(self.header):
                    return f"line: {len(cells)} cells where the header has {len(self.header)}"
                record = dict(zip(self.header, cells, strict=True))
            event = parse_event(record, default_source=self.scope)
        except FeedError as exc:
            return str(exc)
        except orjson.JSONDecodeError:
            return "line: not valid JSON"
        except (UnicodeDecodeError, csv.Error):
            return "line: not valid UTF-8 CSV"
        if self.scope is not None and event.source != self.scope:
            return f"source: {event.source} is not the uploader's region {self.scope}"
        return event


async def import_stream(
    pool: Pg | asyncpg.Pool,
    chunks: AsyncIterator[bytes],
    *,
    fmt: str,
    source_scope: str | None,
    batch_size: int = 5000,
    after_commit: AfterCommit | None = None,
    limits: ImportLimits = ImportLimits(),
    city: str = CITY,
) -> AsyncIterator[dict[str, Any]]:
    """Per-line results `{"line", "status", "reason", "version"}` in line order, then `{"summary": {...}}`.

    `chunks` is the file's bytes in pieces of any size. `source_scope` is the uploader's region (a feed
    token's): it fills an empty source and refuses any other; None (operator) accepts every source.

    Raises:
        ValueError: an unknown format.
    """
    decoder = _Decoder(fmt, source_scope)
    summary = _Summary()
    size = 0

    async def sized() -> AsyncIterator[bytes]:
        nonlocal size
        async for chunk in chunks:
            size += len(chunk)
            if size > limits.max_bytes:
                summary.stopped = f"upload larger than {limits.max_bytes} bytes: the rest was not read"
                return
            yield chunk

    # Pipelined: while batch k is written in PostgreSQL, batch k+1 is read, parsed and decided on the committed
    # state plus k's effects (`prepare_events` overlay). Commits stay in order and check that nobody else
    # wrote in between (else they decide again under the lock). Results still come in line order.
    pending: list[tuple[int, FeedEvent | str]] = []
    in_flight: asyncio.Task[Prepared] | None = None
    flight: tuple[list[tuple[int, FeedEvent | str]], Prepared] | None = None
    line_no = 0

    async def land() -> list[dict[str, Any]]:
        """Wait for the batch being written; its per-line results."""
        nonlocal in_flight, flight
        assert in_flight is not None
        assert flight is not None
        written = await in_flight
        batch, prepared = flight
        in_flight = flight = None
        if written is not prepared:
            stale.add(id(prepared))
        return _lines(batch, written)

    stale: set[int] = set()
    prev: Prepared | None = None

    async def launch(batch: list[tuple[int, FeedEvent | str]]) -> AsyncIterator[dict[str, Any]]:
        nonlocal in_flight, flight, prev
        events = [item for _, item in batch if not isinstance(item, str)]
        base = prev.next_base if prev is not None else await current_version(pool)
        prepared = await prepare_events(pool, events, base=base, overlay=prev, city=city)
        if in_flight is not None:
            for result in await land():
                yield result
        if prev is not None and id(prev) in stale:
            prepared.base = -1  # decided on an overlay that was not what got written: decide again at commit
        stale.clear()
        in_flight = asyncio.create_task(commit_prepared(pool, prepared, city=city, after_commit=after_commit))
        flight = (batch, prepared)
        prev = prepared

    try:
        async for raw in split_lines(sized(), limits.max_line_bytes):
            line_no += 1
            if line_no > limits.max_lines:
                summary.stopped = f"more than {limits.max_lines} lines: the rest was not read"
                break
            if isinstance(raw, _TooLong):
                pending.append((line_no, f"line: longer than {limits.max_line_bytes} bytes"))
            elif not raw.strip():
                continue
            elif fmt == "csv" and decoder.header is None:
                error = decoder.header_line(raw.decode("utf-8", "replace"))
                if error is not None:
                    summary.stopped = error
                    break
                continue
            else:
                pending.append((line_no, decoder.decode(raw.rstrip(b"\r"))))
            if len(pending) >= batch_size:
                async for result in launch(pending):
                    yield summary.count(result)
                pending = []
        if pending:
            async for result in launch(pending):
                yield summary.count(result)
        if in_flight is not None:
            for result in await land():
                yield summary.count(result)
    finally:
        if in_flight is not None:  # the consumer went away: roll the unreported batch back
            in_flight.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await in_flight
    summary.lines = min(line_no, limits.max_lines)
    yield summary.as_dict()


def _lines(batch: list[tuple[int, FeedEvent | str]], written: Prepared) -> list[dict[str, Any]]:
    """Per-line results of a written batch (lines that did not parse were rejected before it)."""
    results = iter(written.results)
    out = []
    for line, item in batch:
        if isinstance(item, str):
            out.append({"line": line, "status": "rejected", "reason": item, "version": None})
        else:
            r = next(results)
            out.append({"line": line, "status": r.status, "reason": r.reason, "version": r.version})
    return out


async def file_chunks(path: str, size: int = 1 << 20) -> AsyncIterator[bytes]:
    """A file's bytes in 1 MiB pieces, read off the event loop."""
    with open(path, "rb") as f:  # noqa: ASYNC230 - each read runs in a thread below
        while chunk := await asyncio.to_thread(f.read, size):
            yield chunk


def format_of(path: str, fmt: str | None) -> str:
    """The explicit format, or the one the file name says (.csv, else JSON lines)."""
    if fmt is not None:
        return fmt
    return "csv" if path.lower().endswith(".csv") else "jsonl"


async def run_import(
    settings: Settings,
    path: str,
    *,
    fmt: str | None,
    source: str | None,
    out: TextIO = sys.stdout,
    every_line: bool = False,
) -> int:
    """`onecard blacklist import FILE`: prints non-accepted lines (all with every_line) and the summary as
    JSON lines; exit status 0 all accepted or duplicate, 1 some rejected, 2 the import stopped early (a file
    that is not importable: its header, its size)."""
    pg = await open_pg_for(settings)
    try:
        last: dict[str, Any] = {}
        chunks = file_chunks(path)
        async for result in import_stream(pg.bulk, chunks, fmt=format_of(path, fmt), source_scope=source):
            if "summary" in result:
                last = result["summary"]
            if every_line or result.get("status") != "accepted":
                out.write(orjson.dumps(result).decode() + "\n")
    finally:
        await pg.close()
    if last.get("stopped"):
        return 2
    return 1 if last.get("rejected") else 0
