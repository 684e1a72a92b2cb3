"""gateway.feeds_import.FeedImport on the in-memory lists: line order, pipelined batches, limits, summaries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.domain.feeds import parse_event
from gateway.domain.feeds.codec import ImportLimits
from gateway.feeds_import import FeedImport
from tests.fakes.blacklist import InMemoryLists

CITY, COUNTY = "330200", "330281"


def sn(i: int) -> str:
    return f"{COUNTY}D156000005{i:016X}"


async def issued(lists: InMemoryLists, *serials: int) -> None:
    events = [
        parse_event({"source": CITY, "source_seq": 1000 + i, "event": "issued", "card_sn": sn(i), "psn_no": f"P{i}",
                     "card_no": "A00000001", "alg": "SM4", "kv": 1})
        for i in serials
    ]  # fmt: skip
    assert {r.status for r in await lists.apply_events(events)} == {"accepted"}


async def pieces(data: bytes, size: int = 5) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def run(lists: InMemoryLists, data: bytes, fmt: str = "jsonl", **kw: Any) -> list[dict[str, Any]]:
    return [r async for r in FeedImport(lists, fmt=fmt, source_scope=kw.pop("scope", None), **kw).results(pieces(data))]


def card_event(seq: int, event: str, serial: int) -> dict[str, Any]:
    return {"source": COUNTY, "source_seq": seq, "event": event, "card_sn": sn(serial)}


def jsonl(*events: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


class TestFeedImport:
    async def test_batches_see_the_batch_in_flight(self) -> None:
        """Events on one card across batch boundaries apply in file order, each batch on the one before."""
        lists = InMemoryLists()
        await issued(lists, 1)
        kinds = ["loss_reported", "loss_revoked", "loss_reported", "damaged"]
        data = jsonl(*(card_event(n, e, 1) for n, e in enumerate(kinds, 1)))
        out = await run(lists, data, batch_size=1)
        assert [(r["line"], r["status"]) for r in out[:-1]] == [(1, "accepted"), (2, "accepted"), (3, "accepted"),
                                                                (4, "rejected")]  # fmt: skip
        assert out[-1]["summary"] == {"lines": 4, "accepted": 3, "duplicate": 0, "rejected": 1, "version": 3,
                                      "stopped": None}  # fmt: skip
        assert lists.state.card_list == {sn(1): "01"}

    async def test_a_write_between_batches_is_decided_again(self) -> None:
        """A change committed by someone else while a batch is in flight: the next batch is decided again."""
        lists = InMemoryLists()
        await issued(lists, 1, 2)
        data = jsonl({"source": COUNTY, "source_seq": 1, "event": "loss_reported", "card_sn": sn(1)},
                     {"source": COUNTY, "source_seq": 2, "event": "loss_reported", "card_sn": sn(2)})  # fmt: skip
        hits = 0

        async def meddle() -> None:
            nonlocal hits
            hits += 1
            if hits == 1:
                await lists.set_card_entry(sn(2), "07", CITY)

        out = await run(lists, data, batch_size=1, after_commit=meddle)
        assert out[1]["status"] == "rejected"
        assert "07" in out[1]["reason"]

    async def test_csv_header_and_scope(self) -> None:
        """CSV: the header names the columns; an empty source is the uploader's, another one refused."""
        lists = InMemoryLists()
        await issued(lists, 1, 2)
        data = f"event,source_seq,card_sn,source\r\nlocked,1,{sn(1)},\r\nlocked,2,{sn(2)},330282\r\n".encode()
        out = await run(lists, data, "csv", scope=COUNTY)
        assert [(r["line"], r["status"]) for r in out[:-1]] == [(2, "accepted"), (3, "rejected")]
        assert out[1]["reason"] == f"source: 330282 is not the uploader's region {COUNTY}"

    async def test_a_bad_header_stops_the_import(self) -> None:
        """A CSV header naming an unknown column: nothing is read past it, and the summary says why."""
        out = await run(InMemoryLists(), b"event,colour\nlocked,red\n", "csv")
        assert len(out) == 1
        summary = out[0]["summary"]
        assert (summary["lines"], summary["accepted"], summary["rejected"]) == (1, 0, 0)
        assert summary["stopped"].startswith("header: unknown column 'colour' (columns: source,source_seq,event,")

    async def test_limits(self) -> None:
        """Over-long lines are rejected one by one; past the byte limit the rest is not read."""
        lists = InMemoryLists()
        await issued(lists, 1)
        line = orjson.dumps({"source": COUNTY, "source_seq": 1, "event": "damaged", "card_sn": sn(1)})
        out = await run(lists, b"x" * 300 + b"\n" + line + b"\n", limits=ImportLimits(max_line_bytes=200))
        assert [(r["line"], r["status"]) for r in out[:-1]] == [(1, "rejected"), (2, "accepted")]
        out = await run(InMemoryLists(), line + b"\n" + line + b"\n", limits=ImportLimits(max_bytes=len(line) + 3))
        assert out[-1]["summary"]["stopped"] == f"upload larger than {len(line) + 3} bytes: the rest was not read"
