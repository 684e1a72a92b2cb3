"""Visits, fee batches and fee lines in PostgreSQL (migration 0009), implementing `gateway.ports.visits.Visits`.
Every mutation locks the visit's row first, so a claim, an upload, a removal and a cancel of one visit are
serialised, and each reads the live claims with a statement that starts after the lock is held."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from adapters.pg_errors import map_unavailable
from adapters.pg_pool import Conn, Pg
from gateway.domain.visits import (
    ALL_BATCHES,
    Batch,
    BatchChanged,
    BatchSettled,
    Holder,
    LineDuplicate,
    StoredLine,
    Visit,
    VisitClosed,
)

_VISIT = "fixmedins_code, mdtrt_id, ipt_otp_no, psn_no, insutype, psn_type, state, med_type, begntime"
_LINE = (
    "feedetl_sn, chrg_bchno, med_list_codg, cnt, pric, amount, fulamt_ownpay_amt, overlmt_amt, preselfpay_amt,"
    " inscp_scp_amt, chrgitm_lv, extra"
)
# The live holder of each claimed batch of a visit ($1 visit id, $2 institution).
_HOLDERS = """
SELECT b.chrg_bchno, b.setl_msgid, s.setl_id, s.msgid IS NULL AS pending FROM fee_batches b
  LEFT JOIN settlements s ON s.fixmedins_code = $2 AND s.msgid = b.setl_msgid
 WHERE b.visit_id = $1 AND b.setl_msgid IS NOT NULL
   AND (s.state IN ('UNKNOWN', 'POSTED', 'CANCELLING')
        OR (s.msgid IS NULL AND EXISTS (SELECT 1 FROM journal j WHERE j.fixmedins_code = $2
                                        AND j.msgid = b.setl_msgid AND j.state = 'PENDING')))
"""


def _visit(r: asyncpg.Record) -> Visit:
    return Visit(**dict(r))


def _line(r: asyncpg.Record) -> StoredLine:
    row = dict(r)
    row["extra"] = orjson.loads(row["extra"]) if isinstance(row["extra"], str) else row["extra"]
    return StoredLine(**row)


@map_unavailable
class PgVisits:
    """The visits port over one pool."""

    def __init__(self, pool: Pg) -> None:
        self.pool = pool

    async def register(
        self,
        fixmedins_code: str,
        ipt_otp_no: str,
        psn_no: str,
        insutype: str,
        psn_type: str,
        begntime: datetime,
        info: Mapping[str, Any],
        mint: str,
    ) -> Visit:
        r = await self.pool.fetchrow(
            f"""INSERT INTO visits (fixmedins_code, mdtrt_id, kind, ipt_otp_no, psn_no, insutype, psn_type, state,
                                    begntime, info)
                VALUES ($1, $2 || lpad((nextval('mdtrt_seq') % 10000000000)::text, 10, '0'), 'OUTPATIENT', $3,
                        $4, $5, $6, 'REGISTERED', $7, $8::jsonb)
                ON CONFLICT (fixmedins_code, kind, ipt_otp_no) DO NOTHING RETURNING {_VISIT}""",
            fixmedins_code, mint, ipt_otp_no, psn_no, insutype, psn_type, begntime, orjson.dumps(info).decode(),
        )  # fmt: skip
        if r is None:
            r = await self.pool.fetchrow(
                f"SELECT {_VISIT} FROM visits WHERE fixmedins_code = $1 AND kind = 'OUTPATIENT' AND ipt_otp_no = $2",
                fixmedins_code,
                ipt_otp_no,
            )
        assert r is not None
        return _visit(r)

    async def visit(self, fixmedins_code: str, mdtrt_id: str) -> Visit | None:
        r = await self.pool.fetchrow(
            f"SELECT {_VISIT} FROM visits WHERE mdtrt_id = $1 AND fixmedins_code = $2", mdtrt_id, fixmedins_code
        )
        return None if r is None else _visit(r)

    async def _lock(self, conn: Conn, code: str, mdtrt_id: str) -> int:
        r = await conn.fetchrow(
            "SELECT id, state FROM visits WHERE mdtrt_id = $1 AND fixmedins_code = $2 FOR UPDATE", mdtrt_id, code
        )
        if r is None:
            raise VisitClosed("unknown")
        if r["state"] != "REGISTERED":
            raise VisitClosed(r["state"])
        vid: int = r["id"]
        return vid

    @staticmethod
    async def _holders(conn: Conn, vid: int, code: str) -> dict[str, Holder]:
        rows = await conn.fetch(_HOLDERS, vid, code)
        return {r["chrg_bchno"]: Holder(r["setl_msgid"], r["setl_id"], r["pending"]) for r in rows}

    async def cancel_visit(self, fixmedins_code: str, mdtrt_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            vid = await self._lock(conn, fixmedins_code, mdtrt_id)
            for bchno, holder in (await self._holders(conn, vid, fixmedins_code)).items():
                raise BatchSettled(bchno, holder)
            await conn.execute("UPDATE visits SET state = 'CANCELLED' WHERE id = $1", vid)

    async def set_visit_info(self, fixmedins_code: str, mdtrt_id: str, med_type: str, info: Mapping[str, Any]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            vid = await self._lock(conn, fixmedins_code, mdtrt_id)
            await conn.execute(
                "UPDATE visits SET med_type = $2, info = info || $3::jsonb WHERE id = $1",
                vid, med_type, orjson.dumps(info).decode(),
            )  # fmt: skip

    async def add_lines(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str, lines: Sequence[StoredLine]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            vid = await self._lock(conn, fixmedins_code, mdtrt_id)
            holder = (await self._holders(conn, vid, fixmedins_code)).get(chrg_bchno)
            if holder is not None:
                raise BatchSettled(chrg_bchno, holder)
            dup = await conn.fetchval(
                "SELECT feedetl_sn FROM fee_lines WHERE visit_id = $1 AND feedetl_sn = ANY($2::text[]) LIMIT 1",
                vid, [x.feedetl_sn for x in lines],
            )  # fmt: skip
            if dup is not None:
                raise LineDuplicate(dup)
            await conn.execute(
                "INSERT INTO fee_batches (visit_id, chrg_bchno) VALUES ($1, $2)"
                " ON CONFLICT (visit_id, chrg_bchno) DO UPDATE SET version = fee_batches.version + 1",
                vid, chrg_bchno,
            )  # fmt: skip
            await conn.copy_records_to_table(
                "fee_lines",
                columns=["visit_id", *(c.strip() for c in _LINE.split(","))],
                records=[
                    (vid, x.feedetl_sn, chrg_bchno, x.med_list_codg, x.cnt, x.pric, x.amount, x.fulamt_ownpay_amt,
                     x.overlmt_amt, x.preselfpay_amt, x.inscp_scp_amt, x.chrgitm_lv, orjson.dumps(x.extra).decode())
                    for x in lines
                ],
            )  # fmt: skip

    async def remove_lines(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            vid = await self._lock(conn, fixmedins_code, mdtrt_id)
            held = await self._holders(conn, vid, fixmedins_code)
            if chrg_bchno != ALL_BATCHES:
                if chrg_bchno in held:
                    raise BatchSettled(chrg_bchno, held[chrg_bchno])
                names = [chrg_bchno]
            else:
                rows = await conn.fetch("SELECT chrg_bchno FROM fee_batches WHERE visit_id = $1", vid)
                names = [r["chrg_bchno"] for r in rows if r["chrg_bchno"] not in held]
            n = await conn.fetchval(
                "WITH d AS (DELETE FROM fee_lines WHERE visit_id = $1 AND chrg_bchno = ANY($2::text[]) RETURNING 1)"
                " SELECT count(*) FROM d",
                vid, names,
            )  # fmt: skip
            if n == 0 and chrg_bchno == ALL_BATCHES and held:
                bchno, holder = next(iter(held.items()))
                raise BatchSettled(bchno, holder)
            await conn.execute(
                "UPDATE fee_batches SET version = version + 1 WHERE visit_id = $1 AND chrg_bchno = ANY($2::text[])",
                vid, names,
            )  # fmt: skip
            count: int = n
            return count

    async def batch(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str) -> Batch | None:
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(
                "SELECT v.id, b.version FROM visits v JOIN fee_batches b ON b.visit_id = v.id"
                " WHERE v.mdtrt_id = $1 AND v.fixmedins_code = $2 AND b.chrg_bchno = $3",
                mdtrt_id, fixmedins_code, chrg_bchno,
            )  # fmt: skip
            if r is None:
                return None
            rows = await conn.fetch(
                f"SELECT {_LINE} FROM fee_lines WHERE visit_id = $1 AND chrg_bchno = $2 ORDER BY feedetl_sn",
                r["id"], chrg_bchno,
            )  # fmt: skip
            holder = (await self._holders(conn, r["id"], fixmedins_code)).get(chrg_bchno)
            return Batch(chrg_bchno, tuple(_line(x) for x in rows), holder, r["version"])

    async def claim_batch(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str, msgid: str, version: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            vid = await self._lock(conn, fixmedins_code, mdtrt_id)
            holder = (await self._holders(conn, vid, fixmedins_code)).get(chrg_bchno)
            if holder is not None:
                raise BatchSettled(chrg_bchno, holder)
            done = await conn.execute(
                "UPDATE fee_batches SET setl_msgid = $3 WHERE visit_id = $1 AND chrg_bchno = $2 AND version = $4",
                vid, chrg_bchno, msgid, version,
            )  # fmt: skip
            if done != "UPDATE 1":
                raise BatchChanged(chrg_bchno)

    async def batch_of(self, fixmedins_code: str, setl_msgid: str) -> tuple[str, str] | None:
        r = await self.pool.fetchrow(
            "SELECT v.mdtrt_id, b.chrg_bchno FROM fee_batches b JOIN visits v ON v.id = b.visit_id"
            " WHERE v.fixmedins_code = $1 AND b.setl_msgid = $2",
            fixmedins_code,
            setl_msgid,
        )
        return None if r is None else (r["mdtrt_id"], r["chrg_bchno"])
