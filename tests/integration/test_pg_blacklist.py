"""adapters.pg_feed_writer, pg_changelog, pg_world and gateway.feeds_import against real PostgreSQL: versions,
change log, idempotency, partial batches, replacement, county scope, world load, pruning and the streamed import."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import orjson

from adapters.pg_changelog import changes_since, current_version, prune_changes
from adapters.pg_feed_writer import PgFeedWriter, apply_events, set_card_entry, set_person_entry
from adapters.pg_pool import Pg
from adapters.pg_world import load_world
from gateway.domain.feeds import FeedEvent, parse_event
from gateway.domain.feeds.codec import ImportLimits
from gateway.feeds_import import FeedImport

PG_ADMIN = os.environ.get("ONECARD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
CITY, COUNTY, OTHER = "330200", "330281", "330282"
_serials = iter(range(1, 1 << 40))
_seqs = iter(range(1, 1 << 40))


def sn(region: str = COUNTY) -> str:
    """A fresh card_sn of a region."""
    return f"{region}D156000005{next(_serials):016X}"


def seq() -> int:
    """A fresh source sequence number."""
    return next(_seqs)


def ev(event: str, source: str = COUNTY, n: int | None = None, **fields: Any) -> FeedEvent:
    """An event with a fresh source_seq unless given."""
    return parse_event({"source": source, "source_seq": n or seq(), "event": event, **fields})


async def issue(pool: Pg, region: str = COUNTY, psn_no: str = "P1") -> str:
    """A new registry card (through the feed)."""
    card_sn = sn(region)
    res = await apply_events(
        pool, [ev("issued", CITY, card_sn=card_sn, psn_no=psn_no, card_no="A00000001", alg="SM4", kv=1)]
    )
    assert res[0].status == "accepted", res
    return card_sn


async def card_row(pool: Pg, card_sn: str) -> dict[str, Any]:
    """The registry row and list reason of a card."""
    row = await pool.fetchrow(
        "SELECT c.status, c.pin_mode, c.psn_no, b.reason, b.version FROM cards c"
        " LEFT JOIN blacklist_cards b USING (card_sn) WHERE c.card_sn = $1",
        card_sn,
    )
    assert row is not None
    return dict(row)


async def list_reason(pool: Pg, card_sn: str) -> str | None:
    """The card's reason on the list of record, or None."""
    return await pool.fetchval("SELECT reason FROM blacklist_cards WHERE card_sn = $1", card_sn)


async def assert_gap_free_since(pool: Pg, v0: int) -> None:
    """Every version after v0 is logged once, in order, up to the meta version."""
    rows = await pool.fetch("SELECT version FROM blacklist_changes WHERE version > $1 ORDER BY version", v0)
    assert [r[0] for r in rows] == list(range(v0 + 1, await current_version(pool) + 1))


async def assert_log_matches_lists(pool: Pg) -> None:
    """Versions are 1..meta without gaps, and replaying the log gives exactly both lists with their versions."""
    log = await pool.fetch("SELECT version, list, key, op, reason FROM blacklist_changes ORDER BY version")
    meta = await current_version(pool)
    assert [r["version"] for r in log] == list(range(1, meta + 1))
    replay: dict[tuple[str, str], tuple[str, int]] = {}
    for r in log:
        if r["op"] != "D":  # 'A' lists a key, 'R' changes the reason of a listed one
            replay[(r["list"], r["key"])] = (r["reason"], r["version"])
        else:
            replay.pop((r["list"], r["key"]), None)
    cards = await pool.fetch("SELECT card_sn, reason, version FROM blacklist_cards")
    persons = await pool.fetch("SELECT psn_no, reason, version FROM blacklist_persons")
    lists = {("C", r[0]): (r[1], r[2]) for r in cards} | {("P", r[0]): (r[1], r[2]) for r in persons}
    assert lists == replay


class TestApplyEvents:
    async def test_versions_gap_free_and_logged(self, pool):
        """Each list change takes the next version, in event order; the log matches the lists."""
        a, b = await issue(pool), await issue(pool)
        v0 = await current_version(pool)
        res = await apply_events(
            pool,
            [ev("loss_reported", card_sn=a), ev("locked", card_sn=b, fraud=True), ev("loss_revoked", card_sn=a)],
        )
        assert [(r.status, r.version) for r in res] == [
            ("accepted", v0 + 1),
            ("accepted", v0 + 2),
            ("accepted", v0 + 3),
        ]
        assert await current_version(pool) == v0 + 3
        assert [(c[2], c[3], c[4]) for c in await changes_since(pool, v0)] == [
            (a, "A", "01"),
            (b, "A", "07"),
            (a, "D", None),
        ]
        assert (await card_row(pool, a))["status"] == "ACTIVE"
        assert (await card_row(pool, b))["reason"] == "07"
        await assert_log_matches_lists(pool)

    async def test_resent_batch_changes_nothing(self, pool):
        """The same batch again is all duplicate, with the original versions, and takes no version."""
        a = await issue(pool)
        batch = [ev("loss_reported", card_sn=a, formal=True), ev("pin_set", card_sn=a)]
        first = await apply_events(pool, batch)
        v = await current_version(pool)
        again = await apply_events(pool, batch)
        assert [r.status for r in again] == ["duplicate", "duplicate"]
        assert [r.version for r in again] == [r.version for r in first]
        assert await current_version(pool) == v
        assert (await card_row(pool, a))["pin_mode"] == "PIN"

    async def test_seq_reused_for_other_content(self, pool):
        """A used (source, source_seq) with different content is rejected and changes nothing."""
        a = await issue(pool)
        n = seq()
        await apply_events(pool, [ev("damaged", n=n, card_sn=a)])
        res = await apply_events(pool, [ev("withdrawn", n=n, card_sn=a)])
        assert (res[0].status, res[0].reason) == ("rejected", "source_seq already used for another event")
        assert (await card_row(pool, a))["reason"] == "04"

    async def test_rejected_event_may_be_sent_again(self, pool):
        """A rejected event is not recorded: the corrected event may reuse its number."""
        a = await issue(pool)
        n = seq()
        first = await apply_events(pool, [ev("loss_revoked", n=n, card_sn=a)])
        assert (first[0].status, first[0].reason) == ("rejected", "card is not reported lost")
        second = await apply_events(pool, [ev("loss_reported", n=n, card_sn=a)])
        assert second[0].status == "accepted"

    async def test_bad_events_do_not_stop_good_ones(self, pool):
        """In one batch the good events apply and each bad one is rejected with its own reason."""
        a, b, foreign = await issue(pool), await issue(pool), await issue(pool, OTHER)
        ghost = sn()
        res = await apply_events(
            pool,
            [
                ev("loss_reported", card_sn=a),
                ev("unlocked", card_sn=b),
                ev("damaged", card_sn=ghost),
                ev("damaged", card_sn=foreign),
                ev("damaged", card_sn=b),
            ],
        )
        assert [(r.status, r.reason) for r in res] == [
            ("accepted", None),
            ("rejected", "card is not locked"),
            ("rejected", "card is not in the registry"),
            ("rejected", f"source {COUNTY} may not change cards of region {OTHER}"),
            ("accepted", None),
        ]
        assert (await card_row(pool, a))["reason"] == "01"
        assert (await card_row(pool, b))["reason"] == "04"
        assert (await card_row(pool, foreign))["reason"] is None
        await assert_log_matches_lists(pool)

    async def test_later_event_sees_earlier(self, pool):
        """Within a batch, an event sees the previous one: report, revoke, report formally."""
        a = await issue(pool)
        res = await apply_events(
            pool,
            [
                ev("loss_reported", card_sn=a),
                ev("loss_revoked", card_sn=a),
                ev("loss_reported", card_sn=a, formal=True),
            ],
        )
        assert [r.status for r in res] == ["accepted"] * 3
        assert (await card_row(pool, a))["reason"] == "02"

    async def test_after_commit_called(self, pool):
        """after_commit runs after a batch that changed something, not after an all-duplicate one."""
        a = await issue(pool)
        calls: list[int] = []

        async def hook() -> None:
            calls.append(await current_version(pool))

        batch = [ev("damaged", card_sn=a)]
        await apply_events(pool, batch, after_commit=hook)
        await apply_events(pool, batch, after_commit=hook)
        assert calls == [await current_version(pool)]


class TestReplacement:
    async def test_replacement_flow(self, pool):
        """Old card 03 on the list, new card ACTIVE in the registry for the same person, one version."""
        old = await issue(pool, psn_no="PREPL1")
        new = sn()
        v0 = await current_version(pool)
        fields: dict[str, Any] = {"card_no": "B00000002", "alg": "SM4", "kv": 2, "valid_until": "2036-01-01"}
        res = await apply_events(pool, [ev("replaced", card_sn=old, new_card_sn=new, **fields)])
        assert (res[0].status, res[0].version) == ("accepted", v0 + 1)
        # the list says 03; the registry row keeps its issued status (the list is the one truth on refusals)
        assert await card_row(pool, old) == {"status": "ACTIVE", "pin_mode": "DEFAULT", "psn_no": "PREPL1",
                                             "reason": "03", "version": v0 + 1}  # fmt: skip
        assert await card_row(pool, new) == {"status": "ACTIVE", "pin_mode": "DEFAULT", "psn_no": "PREPL1",
                                             "reason": None, "version": None}  # fmt: skip
        res = await apply_events(pool, [ev("loss_reported", card_sn=old)])
        assert res[0].reason == "card is closed (replaced) (reason 03)"

    async def test_new_card_of_other_person(self, pool):
        """Naming another person's card as the replacement is rejected; nothing changes."""
        old, theirs = await issue(pool, psn_no="PA"), await issue(pool, psn_no="PB")
        res = await apply_events(
            pool, [ev("replaced", card_sn=old, new_card_sn=theirs, card_no="B00000002", alg="SM4", kv=1)]
        )
        assert (res[0].status, res[0].reason) == ("rejected", "new_card_sn belongs to another person")
        assert (await card_row(pool, old))["status"] == "ACTIVE"


class TestScope:
    async def test_county_and_city(self, pool):
        """A county changes its own cards only; the city changes any card of the city."""
        mine, theirs = await issue(pool, COUNTY), await issue(pool, OTHER)
        res = await apply_events(pool, [ev("locked", COUNTY, card_sn=theirs), ev("locked", CITY, card_sn=theirs),
                                        ev("locked", COUNTY, card_sn=mine)])  # fmt: skip
        assert [r.status for r in res] == ["rejected", "accepted", "accepted"]

    async def test_person_scope(self, pool):
        """A county suspends only persons holding a card of its region."""
        await issue(pool, COUNTY, psn_no="PSCOPE1")
        res = await apply_events(
            pool,
            [
                ev("person_suspended", OTHER, psn_no="PSCOPE1", reason="11"),
                ev("person_suspended", COUNTY, psn_no="PSCOPE1", reason="11"),
                ev("person_restored", COUNTY, psn_no="PSCOPE1"),
            ],
        )
        assert [r.status for r in res] == ["rejected", "accepted", "accepted"]
        await assert_log_matches_lists(pool)


class TestSingleChanges:
    async def test_set_card_and_person_entry(self, pool):
        """The admin helpers are versioned and report False when nothing changed."""
        a = await issue(pool)
        v0 = await current_version(pool)
        assert await set_card_entry(pool, a, "06", CITY) is True
        assert await set_card_entry(pool, a, "06", CITY) is False
        assert (await card_row(pool, a))["reason"] == "06"
        assert await set_card_entry(pool, a, None, CITY) is True
        assert await set_person_entry(pool, "PADMIN1", "12", CITY) is True
        assert await set_person_entry(pool, "PADMIN1", None, CITY) is True
        assert await set_person_entry(pool, "PADMIN1", None, CITY) is False
        assert await current_version(pool) == v0 + 4
        await assert_log_matches_lists(pool)


class TestWorldLoad:
    async def test_versioned_and_idempotent(self, pool):
        """A world load lists its cards and persons with versions; loading it again takes none."""
        a, b = sn(), sn()
        world = {
            "institutions": [],
            "cards": [
                {"card_sn": a, "card_no": "A00000009", "psn_no": "PW1", "pin_mode": "PIN", "status": "07",
                 "alg": "3DES", "kv": 1, "valid_from": "2020-01-01", "valid_until": "2030-01-01"},
                {"card_sn": b, "card_no": "A00000010", "psn_no": "PW2", "pin_mode": "DEFAULT", "status": "ACTIVE",
                 "alg": "SM4", "kv": 1},
            ],
            "persons": [{"psn_no": "PW1", "status": "ACTIVE"}, {"psn_no": "PW2", "status": "11"}],
        }  # fmt: skip
        v0 = await current_version(pool)
        counts = await load_world(pool, world)
        assert counts["changes"] == 2
        assert await current_version(pool) == v0 + 2
        assert (await card_row(pool, a))["reason"] == "07"
        assert (await load_world(pool, world))["changes"] == 0
        assert await current_version(pool) == v0 + 2
        await assert_log_matches_lists(pool)


class TestPrune:
    async def test_prune_keeps_newest(self, pool):
        """Old log rows go; the newest row always stays so the log still says the current version."""
        a = await issue(pool)
        await apply_events(pool, [ev("damaged", card_sn=a)])
        await pool.execute("UPDATE blacklist_changes SET at = now() - interval '40 days'")
        top = await current_version(pool)
        deleted = await prune_changes(pool, 30)
        assert deleted == top - 1
        rows = await pool.fetch("SELECT version FROM blacklist_changes")
        assert [r[0] for r in rows] == [top]
        assert await prune_changes(pool, 30) == 0


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    """Bytes cut into small pieces, as a network delivers them."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def run(pool: Pg, data: bytes, fmt: str, scope: str | None = None, **kw: Any) -> list[dict[str, Any]]:
    """All results of an import."""
    return [r async for r in FeedImport(PgFeedWriter(pool), fmt=fmt, source_scope=scope, **kw).results(chunks(data))]


class TestPipelinedImport:
    async def test_batch_sees_the_batch_still_being_written(self, pool):
        """Events on one card across batch boundaries apply in file order (the next batch is decided on the
        previous one's effects while it is still being written)."""
        a, b = await issue(pool), await issue(pool)
        v0 = await current_version(pool)
        events = [("loss_reported", a), ("locked", b), ("loss_revoked", a), ("loss_reported", a), ("unlocked", b),
                  ("loss_reported", a), ("damaged", b)]  # fmt: skip
        data = b"".join(
            orjson.dumps({"source": COUNTY, "source_seq": seq(), "event": e, "card_sn": c}) + b"\n" for e, c in events
        )
        out = await run(pool, data, "jsonl", batch_size=2)
        assert [r["status"] for r in out[:-1]] == ["accepted"] * 5 + ["accepted", "accepted"]
        assert out[5]["version"] is None  # the second loss report of an already lost card: a no-op
        assert await list_reason(pool, a) == "01"
        assert await list_reason(pool, b) == "04"
        await assert_gap_free_since(pool, v0)

    async def test_a_write_between_batches_forces_a_new_decision(self, pool):
        """Someone else writes while a batch is in flight: the next batch is decided again, never on stale state."""
        a, b = await issue(pool), await issue(pool)
        v0 = await current_version(pool)
        lines = [("loss_reported", a), ("damaged", a), ("loss_reported", b), ("damaged", b)]
        data = b"".join(
            orjson.dumps({"source": COUNTY, "source_seq": seq(), "event": e, "card_sn": c}) + b"\n" for e, c in lines
        )
        hits = 0

        async def meddle() -> None:
            nonlocal hits
            hits += 1
            if hits == 1:  # after the first batch commits, the operator locks b for fraud
                await set_card_entry(pool, b, "07", CITY)

        out = await run(pool, data, "jsonl", batch_size=2, after_commit=meddle)
        # batch 2 was prepared while batch 1 was written, before the fraud lock: it must not be applied as such
        assert out[2]["status"] == "rejected"
        assert "07" in out[2]["reason"]
        assert await list_reason(pool, b) == "07"
        await assert_gap_free_since(pool, v0)


class TestImport:
    async def test_jsonl_per_line_results(self, pool):
        """Good lines apply, bad ones are rejected with reasons, blank lines skipped; then a summary."""
        a = await issue(pool)
        lines = [
            orjson.dumps({"source": COUNTY, "source_seq": seq(), "event": "loss_reported", "card_sn": a}),
            b"{not json",
            b"",
            b"[1, 2]",
            orjson.dumps({"source": COUNTY, "source_seq": seq(), "event": "melted", "card_sn": a}),
            b"x" * 300,
            orjson.dumps({"source": COUNTY, "source_seq": seq(), "event": "loss_revoked", "card_sn": a}),
        ]
        out = await run(pool, b"\n".join(lines) + b"\n", "jsonl", batch_size=2, limits=ImportLimits(max_line_bytes=200))
        assert [(r["line"], r["status"], r["reason"]) for r in out[:-1]] == [
            (1, "accepted", None),
            (2, "rejected", "line: not valid JSON"),
            (4, "rejected", "line: must be a JSON object"),
            (5, "rejected", "event: unknown event type 'melted'"),
            (6, "rejected", "line: longer than 200 bytes"),
            (7, "accepted", None),
        ]
        assert out[-1]["summary"] | {"version": None} == {
            "lines": 7, "accepted": 2, "duplicate": 0, "rejected": 4, "version": None, "stopped": None
        }  # fmt: skip
        again = await run(pool, b"\n".join(lines) + b"\n", "jsonl")
        assert [r["status"] for r in again[:-1]] == ["duplicate", "rejected", "rejected", "rejected", "rejected",
                                                      "duplicate"]  # fmt: skip

    async def test_csv_with_scope(self, pool):
        """CSV with a header in any order; an empty source is the uploader's; another region is refused."""
        a, b = await issue(pool), await issue(pool)
        s1, s2, s3 = seq(), seq(), seq()
        data = (
            "\ufeffevent,source_seq,card_sn,source,fraud\r\n"
            f"locked,{s1},{a},,1\r\n"
            f"locked,{s2},{b},{OTHER},\r\n"
            f"damaged,{s3},{b}\r\n"
        ).encode()
        out = await run(pool, data, "csv", COUNTY)
        assert [(r["line"], r["status"], r["reason"]) for r in out[:-1]] == [
            (2, "accepted", None),
            (3, "rejected", f"source: {OTHER} is not the uploader's region {COUNTY}"),
            (4, "rejected", "line: 3 cells where the header has 5"),
        ]
        assert (await card_row(pool, a))["reason"] == "07"

    async def test_csv_bad_header(self, pool):
        """An unusable header stops the import before any line."""
        out = await run(pool, b"source,seq,event\n330281,1,damaged\n", "csv")
        assert out == [{"summary": {"lines": 1, "accepted": 0, "duplicate": 0, "rejected": 0, "version": None,
                                    "stopped": "header: unknown column 'seq' (columns: " + ",".join(
                                        ["source", "source_seq", "event", "card_sn", "psn_no", "reason", "formal",
                                         "fraud", "new_card_sn", "card_no", "alg", "kv", "valid_from", "valid_until",
                                         "pin_mode"]) + ")"}}]  # fmt: skip

    async def test_limits(self, pool):
        """Past the line or byte limit the import stops and says so; earlier lines keep their results."""
        a = await issue(pool)
        line = orjson.dumps({"source": COUNTY, "source_seq": seq(), "event": "damaged", "card_sn": a}) + b"\n"
        out = await run(pool, line + b"\n" * 5, "jsonl", limits=ImportLimits(max_lines=3))
        assert out[0]["status"] == "accepted"
        assert out[-1]["summary"]["stopped"] == "more than 3 lines: the rest was not read"
        out = await run(pool, b"\n" * 100, "jsonl", limits=ImportLimits(max_bytes=50))
        assert out[-1]["summary"]["stopped"] == "upload larger than 50 bytes: the rest was not read"
