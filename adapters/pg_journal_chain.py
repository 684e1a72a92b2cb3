"""Tamper-evident journal: a background sealer hash-chains completed journal rows (the hash and encoding:
adapters/journal_codec.py; proving the chain: adapters/pg_journal_verify.py).

Design. One global chain over the whole journal (not one per day): a deleted day, or a deleted row at a day
boundary, is then a visible gap rather than a missing chain nobody asks about. The settlement hot path never
touches it: a sealer (one task per gateway process) appends DONE rows in the background, every ~0.1 s in
chunks of at most 100 rows, yielding to requests while it hashes. Sealers lock the one head row of `journal_chain` with
`FOR UPDATE SKIP LOCKED`: one process seals at a time, the others skip the round, so each row is sealed
exactly once however many processes run (the unique index on `chain_seq` enforces it too). Within a round
rows are taken in id order; a row still PENDING is left for a later round, so the chain is gap-free in
`chain_seq` while `id`s may come a little out of order when a request completes late.
"""

from __future__ import annotations

import asyncio
import logging

from adapters.journal_codec import COLS, chain_hash
from adapters.pg_pool import RETRYABLE, Pg

log = logging.getLogger("onecard.chain")

CHAIN = "journal"  # the name of the one chain's head row in journal_chain

_YIELD_EVERY = 16


async def seal_once(pool: Pg, *, batch: int = 100) -> int:
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
                f"SELECT {COLS} FROM journal WHERE chain_seq IS NULL AND state = 'DONE'"  # noqa: S608 - constant
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


async def run_sealer(pool: Pg, interval_s: float = 0.1) -> None:
    """Seal forever, every `interval_s`; database trouble is logged and retried, never raised."""
    while True:
        try:
            await seal_once(pool)
        except RETRYABLE as exc:
            log.warning("journal sealer: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(interval_s)
