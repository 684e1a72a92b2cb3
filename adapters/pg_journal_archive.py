"""Journal retention (issue 11 item 9): archive-then-delete the oldest stretch of the chain, and leave a checkpoint
so that `journal verify` still proves what remains (migration 0008, adapters/pg_journal_verify.py).

What is archived: the longest prefix of the remaining chain (from the checkpoint on, in chain_seq order) whose
rows all completed before the cutoff; a sealed row is DONE by construction, PENDING and unsealed rows are never
touched, and a row newer than the cutoff ends the stretch, so the chain left behind has no hole. Each link is
re-checked on the way (a broken chain is refused: archiving must not bury tampering). The file, JSON lines, is
written and fsynced under a `.partial` name, then renamed; only then are the rows deleted and the checkpoint
moved, in the transaction that read them (which holds the chain head, so no sealer appends meanwhile). Rows are
written in their stored form: sealed bodies stay ciphertext (hex), clear rows (before encryption) stay clear.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from adapters.journal_codec import COLS, GENESIS, chain_hash
from adapters.pg_journal_chain import CHAIN
from adapters.pg_pool import Pg

FORMAT = "onecard-journal-archive/1"
_CHUNK = 1000


class ArchiveRefused(Exception):
    """The chain does not verify where it would be archived; nothing was written or deleted."""


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    """How many rows went to `path`, the chain positions they held, and the checkpoint left behind."""

    rows: int
    from_seq: int
    to_seq: int
    checkpoint_hash: str
    path: str


def _stored(r: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in dict(r).items():
        if isinstance(v, bytes | bytearray | memoryview):
            out[k] = bytes(v).hex()
        elif isinstance(v, datetime):
            out[k] = v.isoformat()
        else:
            out[k] = v  # text, integers, the clear request as its jsonb text
    return out


def _write(f: IO[bytes], lines: list[bytes]) -> None:
    f.write(b"".join(lines))


async def archive(pool: Pg, before: datetime, out: Path) -> ArchiveResult:
    """Archive to `out`, then delete, every chained row completed before `before` that starts the chain.

    Raises:
        FileExistsError: `out` exists (an archive is never overwritten).
        ArchiveRefused: a link or hash does not verify (nothing written or deleted).
    """
    if await asyncio.to_thread(out.exists):
        raise FileExistsError(f"{out} exists: an archive is never overwritten")
    partial = out.with_name(out.name + ".partial")
    async with pool.acquire() as conn, conn.transaction():
        head = await conn.fetchrow("SELECT last_seq FROM journal_chain WHERE chain = $1 FOR UPDATE", CHAIN)
        if head is None:
            raise ArchiveRefused("journal_chain head row is missing")
        cp = await conn.fetchrow(
            "SELECT seq, hash, archived_rows FROM journal_checkpoint WHERE chain = $1 FOR UPDATE", CHAIN
        )
        start = 1 if cp is None else cp["seq"] + 1
        prev = GENESIS if cp is None else bytes(cp["hash"])
        f = await asyncio.to_thread(partial.open, "xb")
        rows, last_seq, last_id, lines = 0, start - 1, 0, []
        try:
            header = {
                "format": FORMAT,
                "chain": CHAIN,
                "from_seq": start,
                "prev_hash": prev.hex(),
                "before": str(before),
            }
            lines.append(orjson.dumps(header) + b"\n")
            async for r in conn.cursor(
                f"SELECT {COLS}, state, chain_seq, prev_hash, row_hash FROM journal"  # noqa: S608 - constant columns
                " WHERE chain_seq >= $1 ORDER BY chain_seq",
                start,
                prefetch=_CHUNK,
            ):
                if r["completed_at"] >= before:
                    break
                if r["chain_seq"] != last_seq + 1 or bytes(r["prev_hash"]) != prev:
                    raise ArchiveRefused(f"journal id {r['id']}: the chain does not link at seq {r['chain_seq']}")
                if chain_hash(prev, r) != bytes(r["row_hash"]):
                    raise ArchiveRefused(f"journal id {r['id']}: content or row_hash altered after sealing")
                prev, last_seq, last_id = bytes(r["row_hash"]), r["chain_seq"], r["id"]
                rows += 1
                lines.append(orjson.dumps(_stored(r)) + b"\n")
                if len(lines) >= _CHUNK:
                    await asyncio.to_thread(_write, f, lines)
                    lines = []
            footer = {"rows": rows, "to_seq": last_seq, "last_id": last_id, "checkpoint_hash": prev.hex()}
            lines.append(orjson.dumps(footer) + b"\n")
            await asyncio.to_thread(_write, f, lines)
            await asyncio.to_thread(f.flush)
            await asyncio.to_thread(os.fsync, f.fileno())
        except BaseException:
            f.close()
            partial.unlink(missing_ok=True)
            raise
        f.close()
        if rows == 0:
            partial.unlink()
            return ArchiveResult(0, start, start - 1, prev.hex(), "")
        await asyncio.to_thread(partial.rename, out)
        await conn.execute("DELETE FROM journal WHERE chain_seq >= $1 AND chain_seq <= $2", start, last_seq)
        await conn.execute(
            "INSERT INTO journal_checkpoint (chain, seq, last_id, hash, archived_rows, archive)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq,"
            " last_id = excluded.last_id, hash = excluded.hash,"
            " archived_rows = journal_checkpoint.archived_rows + excluded.archived_rows,"
            " archive = excluded.archive, archived_at = now()",
            CHAIN,
            last_seq,
            last_id,
            prev,
            rows,
            str(out),
        )
    return ArchiveResult(rows, start, last_seq, prev.hex(), str(out))
