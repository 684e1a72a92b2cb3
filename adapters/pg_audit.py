"""`gateway.ports.AuditTrail` on PostgreSQL: each admin request appended and hash-chained at once, under the
head row's lock (admin requests are few, so one at a time across every worker costs nothing), page reads
newest first, and the whole-chain verification of `onecard admin audit verify` (the encoding:
adapters/audit_codec.py)."""

from __future__ import annotations

from typing import Any

from adapters.audit_codec import COLS, GENESIS, chain_hash
from adapters.pg_pool import Pg
from gateway.domain.audit import AuditEntry, AuditRow, AuditVerdict


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        r["at"], r["who"], r["role"], r["address"], r["method"], r["path"], bytes(r["body_sha256"]), r["status"]
    )


class PgAuditTrail:
    """The audit trail in tables `admin_audit` and `admin_audit_head` (migration 0007)."""

    def __init__(self, pg: Pg) -> None:
        self.pg = pg

    async def append(self, entry: AuditEntry) -> int:
        """Append `entry` as the next row of the chain; its seq."""
        async with self.pg.acquire() as conn, conn.transaction():
            head = await conn.fetchrow("SELECT last_seq, last_hash FROM admin_audit_head FOR UPDATE")
            if head is None:
                raise RuntimeError("admin_audit_head row is missing: run the migrations")
            seq, prev = head["last_seq"] + 1, bytes(head["last_hash"])
            h = chain_hash(prev, seq, entry)
            e = entry
            await conn.execute(
                f"INSERT INTO admin_audit ({COLS}, prev_hash, row_hash)"  # noqa: S608 - constant columns
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                seq, e.at, e.who, e.role, e.address, e.method, e.path, e.body_sha256, e.status, prev, h,
            )  # fmt: skip
            await conn.execute("UPDATE admin_audit_head SET last_seq = $1, last_hash = $2", seq, h)
        return int(seq)

    async def page(self, *, before: int | None, limit: int) -> list[AuditRow]:
        """Up to `limit` rows below seq `before`, newest first."""
        rows = await self.pg.fetch(
            f"SELECT {COLS}, row_hash FROM admin_audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2",  # noqa: S608
            before if before is not None else 2**62,
            limit,
        )
        return [AuditRow(r["seq"], _entry(r), bytes(r["row_hash"])) for r in rows]

    async def verify(self) -> AuditVerdict:
        """Walk the chain from the genesis and compare its end with the head."""
        async with self.pg.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            head = await conn.fetchrow("SELECT last_seq, last_hash FROM admin_audit_head")
            if head is None:
                return AuditVerdict(False, 0, None, "admin_audit_head row is missing")
            seq, prev, rows = 0, GENESIS, 0
            async for r in conn.cursor(
                f"SELECT {COLS}, prev_hash, row_hash FROM admin_audit ORDER BY seq",  # noqa: S608
                prefetch=2000,
            ):
                if r["seq"] != seq + 1:
                    return AuditVerdict(False, rows, r["seq"], f"seq jumps from {seq} to {r['seq']}: rows are missing")
                if bytes(r["prev_hash"]) != prev:
                    return AuditVerdict(False, rows, r["seq"], f"prev_hash does not link to the row at seq {seq}")
                if chain_hash(prev, r["seq"], _entry(r)) != bytes(r["row_hash"]):
                    return AuditVerdict(False, rows, r["seq"], "content or row_hash altered after it was written")
                rows, seq, prev = rows + 1, r["seq"], bytes(r["row_hash"])
            last_seq, last_hash = head["last_seq"], bytes(head["last_hash"])
            if (seq, prev) != (last_seq, last_hash):
                why = (
                    f"the head says seq {last_seq} but the chain ends at seq {seq}: rows at the end are missing"
                    " or the head was altered"
                )
                return AuditVerdict(False, rows, seq + 1 if seq < last_seq else seq, why, last_seq, last_hash.hex())
            return AuditVerdict(True, rows, None, None, last_seq, last_hash.hex())
