"""`onecard blacklist import FILE`: a feed file imported through `gateway.feeds_import` (formats:
`gateway.domain.feeds.codec`), its non-accepted lines and summary printed as JSON lines."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

import orjson

from gateway.bootstrap.commands import feed_writer_for
from gateway.feeds_import import FeedImport
from gateway.settings import Settings


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
    last: dict[str, Any] = {}
    async with feed_writer_for(settings) as writer:
        run = FeedImport(writer, fmt=format_of(path, fmt), source_scope=source)
        async for result in run.results(file_chunks(path)):
            if "summary" in result:
                last = result["summary"]
            if every_line or result.get("status") != "accepted":
                out.write(orjson.dumps(result).decode() + "\n")
    if last.get("stopped"):
        return 2
    return 1 if last.get("rejected") else 0
