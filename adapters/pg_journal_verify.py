"""`journal verify`: recompute the journal's hash chain (all of it, or one local day's stretch) and name the first
row whose link, hash or content does not match (the chain: adapters/journal_codec.py). After an archive
(adapters/pg_journal_archive.py) the whole-chain walk starts at the checkpoint: the first remaining row must link
to the last archived row's hash."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from adapters.journal_codec import COLS, GENESIS, chain_hash
from adapters.pg_journal_chain import CHAIN
from adapters.pg_pool import Conn, Pg
from gateway.domain.chain import VerifyResult


async def verify(pool: Pg, *, day: date | None = None, tz: tzinfo = UTC, stale_s: float = 60.0) -> VerifyResult:
    """Recompute the chain (all of it, or the stretch holding the rows completed on `day` in `tz`).

    A whole-chain run also checks the head: rows deleted from the end show as a head beyond the chain.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT last_seq, last_id, last_hash FROM journal_chain WHERE chain = $1", CHAIN)
        if head is None:
            return VerifyResult(False, 0, None, "journal_chain head row is missing")
        window: tuple[datetime, datetime] | None = None
        cp = await conn.fetchrow("SELECT seq, last_id, hash FROM journal_checkpoint WHERE chain = $1", CHAIN)
        lo, hi = (1, head["last_seq"]) if cp is None else (cp["seq"] + 1, head["last_seq"])
        expect = GENESIS if cp is None else bytes(cp["hash"])
        if day is not None:
            window = (datetime.combine(day, time(0), tz), datetime.combine(day + timedelta(days=1), time(0), tz))
            span = await conn.fetchrow(
                "SELECT min(chain_seq) AS lo, max(chain_seq) AS hi FROM journal"
                " WHERE chain_seq IS NOT NULL AND completed_at >= $1 AND completed_at < $2",
                *window,
            )
            assert span is not None  # an aggregate always answers one row
            lo, hi = span["lo"] or 1, span["hi"] or 0
            if lo > 1 and hi >= lo:
                before = await conn.fetchval("SELECT row_hash FROM journal WHERE chain_seq = $1", lo - 1)
                first = await conn.fetchval("SELECT id FROM journal WHERE chain_seq = $1", lo)
                if before is None and cp is not None and cp["seq"] == lo - 1:
                    before = cp["hash"]  # the row before was archived: the checkpoint holds its hash
                if before is None:
                    return VerifyResult(False, 0, first, f"chain_seq {lo - 1} before this row is missing")
                expect = bytes(before)
        stale = await _unsealed(conn, window, stale_s)
        res = await _walk(conn, lo, hi, expect)
        ok, rows, broken, reason, last = res
        if ok and day is None:
            if last[1] is None and cp is not None and last[0] == head["last_seq"]:
                last = (last[0], cp["last_id"], last[2])  # every sealed row archived: the checkpoint is the head
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


class PgJournalVerifier:
    """`verify` over a pool (`gateway.ports.reconcile.JournalVerifier`): the bulk view, for the admin route."""

    def __init__(self, pool: Pg) -> None:
        self.pool = pool

    async def verify(self, *, day: date | None, tz: tzinfo, stale_s: float) -> VerifyResult:
        """As `verify`."""
        return await verify(self.pool, day=day, tz=tz, stale_s=stale_s)


async def _walk(
    conn: Conn, lo: int, hi: int, expect: bytes
) -> tuple[bool, int, int | None, str | None, tuple[int, int | None, bytes]]:
    rows = 0
    seq, last_id, prev = lo - 1, None, expect
    async for r in conn.cursor(
        f"SELECT {COLS}, state, chain_seq, prev_hash, row_hash FROM journal"  # noqa: S608 - constant columns
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


async def _unsealed(conn: Conn, window: tuple[datetime, datetime] | None, stale_s: float) -> tuple[int, int | None]:
    lo, hi = window or (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
    r = await conn.fetchrow(
        "SELECT count(*) AS n, min(id) AS oldest FROM journal WHERE chain_seq IS NULL AND state = 'DONE'"
        " AND completed_at < now() - make_interval(secs => $1) AND completed_at >= $2 AND completed_at < $3",
        stale_s,
        lo,
        hi,
    )
    assert r is not None  # an aggregate always answers one row
    return r["n"], r["oldest"]
