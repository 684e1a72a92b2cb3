"""The feed file formats (SPEC §8.3): CSV (a header naming columns of `CSV_COLUMNS`, then one event per line; a
quoted cell may not hold a line break) or JSON lines (one object per line); lines cut from a byte stream under
the limits of one upload. Pure: the JSON parser is passed in (the gateway's is orjson)."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from gateway.domain.feeds.model import FeedError, FeedEvent
from gateway.domain.feeds.parse import CSV_COLUMNS, parse_event

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


class TooLong:
    """Stands for a line over the limit (its bytes are skipped, never kept)."""


TOO_LONG = TooLong()


async def split_lines(chunks: AsyncIterator[bytes], max_line: int) -> AsyncIterator[bytes | TooLong]:
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
                yield TOO_LONG
                skipping = False
            elif len(buf) + nl - start > max_line:
                buf.clear()
                yield TOO_LONG
            elif buf:
                buf += chunk[start:nl]
                yield bytes(buf)
                buf.clear()
            else:
                yield chunk[start:nl]
            start = nl + 1
    if skipping:
        yield TOO_LONG
    elif buf:
        yield bytes(buf)


class LineDecoder:
    """Turns one line into an event or a rejection reason, in the file's format.

    `loads` parses one JSON line; its errors must be `json.JSONDecodeError`s (orjson's are).
    """

    def __init__(self, fmt: str, source_scope: str | None, loads: Callable[[bytes], Any]) -> None:
        if fmt not in FORMATS:
            raise ValueError("format must be csv or jsonl")
        self.fmt = fmt
        self.scope = source_scope
        self.loads = loads
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
        """The event of a line, or why the line is rejected."""
        try:
            if self.fmt == "jsonl":
                record = self.loads(raw)
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
        except json.JSONDecodeError:
            return "line: not valid JSON"
        except (UnicodeDecodeError, csv.Error):
            return "line: not valid UTF-8 CSV"
        if self.scope is not None and event.source != self.scope:
            return f"source: {event.source} is not the uploader's region {self.scope}"
        return event
