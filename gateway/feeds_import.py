"""Bulk import of a feed file (SPEC §8.3), streamed: used by `POST /admin/blacklist/import` and the CLI.

The file (formats: `gateway.domain.feeds.codec`) is read in chunks and applied in batches through the
`FeedWriter` port, each batch in one transaction: a line's result is final once its batch is reported, so an
upload cut short keeps every batch reported before the cut.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.domain.feeds import FeedEvent
from gateway.domain.feeds.batch import Prepared
from gateway.domain.feeds.codec import ImportLimits, LineDecoder, TooLong, split_lines
from gateway.ports.blacklist import AfterCommit, FeedWriter

Line = tuple[int, FeedEvent | str]  # line number, the event or why the line is rejected
DEFAULT_LIMITS = ImportLimits()


@dataclass(slots=True)
class ImportSummary:
    """The counts of an import so far, the highest version it produced, and why it stopped early, if it did."""

    lines: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    version: int | None = None
    stopped: str | None = None

    def count(self, result: dict[str, Any]) -> dict[str, Any]:
        """Count one line's result; returns it."""
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
        """The summary line of the import's output."""
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


class FeedImport:
    """One import: per-line results `{"line", "status", "reason", "version"}` in line order, then the summary.

    `source_scope` is the uploader's region (a feed token's): it fills an empty source and refuses any other;
    None (operator) accepts every source. `after_commit` runs after each batch that changed something.

    Pipelined: while batch k is written in PostgreSQL, batch k+1 is read, parsed and decided on the committed
    state plus k's effects (`FeedWriter.prepare` overlay). Commits stay in order and check that nobody else
    wrote in between (else they decide again under the lock). Results still come in line order.

    Raises:
        ValueError: an unknown format.
    """

    def __init__(
        self,
        writer: FeedWriter,
        *,
        fmt: str,
        source_scope: str | None,
        batch_size: int = 5000,
        after_commit: AfterCommit | None = None,
        limits: ImportLimits = DEFAULT_LIMITS,
    ) -> None:
        self.writer = writer
        self.fmt = fmt
        self.decoder = LineDecoder(fmt, source_scope, orjson.loads)
        self.batch_size = batch_size
        self.after_commit = after_commit
        self.limits = limits
        self.summary = ImportSummary()
        self._size = 0
        self._in_flight: asyncio.Task[Prepared] | None = None
        self._flight: tuple[list[Line], Prepared] | None = None
        self._prev: Prepared | None = None  # the batch decided last: the next one overlays it
        self._stale: set[int] = set()  # ids of prepared batches that were decided again at commit

    async def results(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
        """Import the file whose bytes `chunks` yields, in pieces of any size."""
        pending: list[Line] = []
        line_no = 0
        limits = self.limits
        try:
            async for raw in split_lines(self._sized(chunks), limits.max_line_bytes):
                line_no += 1
                if line_no > limits.max_lines:
                    self.summary.stopped = f"more than {limits.max_lines} lines: the rest was not read"
                    break
                if isinstance(raw, TooLong):
                    pending.append((line_no, f"line: longer than {limits.max_line_bytes} bytes"))
                elif not raw.strip():
                    continue
                elif self.fmt == "csv" and self.decoder.header is None:
                    error = self.decoder.header_line(raw.decode("utf-8", "replace"))
                    if error is not None:
                        self.summary.stopped = error
                        break
                    continue
                else:
                    pending.append((line_no, self.decoder.decode(raw.rstrip(b"\r"))))
                if len(pending) >= self.batch_size:
                    async for result in self._launch(pending):
                        yield self.summary.count(result)
                    pending = []
            if pending:
                async for result in self._launch(pending):
                    yield self.summary.count(result)
            if self._in_flight is not None:
                for result in await self._land():
                    yield self.summary.count(result)
        finally:
            if self._in_flight is not None:  # the consumer went away: roll the unreported batch back
                self._in_flight.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._in_flight
        self.summary.lines = min(line_no, limits.max_lines)
        yield self.summary.as_dict()

    async def _sized(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self._size += len(chunk)
            if self._size > self.limits.max_bytes:
                self.summary.stopped = f"upload larger than {self.limits.max_bytes} bytes: the rest was not read"
                return
            yield chunk

    async def _land(self) -> list[dict[str, Any]]:
        """Wait for the batch being written; its per-line results."""
        assert self._in_flight is not None
        assert self._flight is not None
        written = await self._in_flight
        batch, prepared = self._flight
        self._in_flight = self._flight = None
        if written is not prepared:
            self._stale.add(id(prepared))
        return _lines(batch, written)

    async def _launch(self, batch: list[Line]) -> AsyncIterator[dict[str, Any]]:
        """Decide `batch` on the one in flight, report the one in flight once written, then write `batch`."""
        events = [item for _, item in batch if not isinstance(item, str)]
        prev = self._prev
        base = prev.next_base if prev is not None else await self.writer.version()
        prepared = await self.writer.prepare(events, base=base, overlay=prev)
        if self._in_flight is not None:
            for result in await self._land():
                yield result
        if prev is not None and id(prev) in self._stale:
            prepared.base = -1  # decided on an overlay that was not what got written: decide again at commit
        self._stale.clear()
        self._in_flight = asyncio.create_task(self.writer.commit(prepared, after_commit=self.after_commit))
        self._flight = (batch, prepared)
        self._prev = prepared


def _lines(batch: list[Line], written: Prepared) -> list[dict[str, Any]]:
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
