"""Inpatient stays in PostgreSQL (migrations 0009 and 0010), implementing `gateway.ports.stays.Stays`. Each 2301
call is a batch of its own; a settlement claims every unsettled batch; the live claims are read exactly as
`adapters.pg_visits` reads them, after the stay's row lock is held."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from adapters.pg_errors import map_unavailable
from adapters.pg_pool import Conn, Pg
from adapters.pg_visits import _HOLDERS, _LINE, _VISIT, _line, _visit
from gateway.domain.stays import LineUnknown, RefundTooLarge, Stay
from gateway.domain.visits import BatchChanged, BatchSettled, Holder, LineDuplicate, StoredLine, Visit, VisitClosed

_KEYS = tuple(k.strip() for k in _VISIT.split(","))
_FINAL = """
SELECT v.final_msgid, s.setl_id, s.msgid IS NULL AS pending FROM visits v
  LEFT JOIN settlements s ON s.fixmedins_code = $2 AND s.msgid = v.final_msgid
 WHERE v.id = $1 AND v.final_msgid IS NOT NULL
   AND (s.state IN ('UNKNOWN', 'POSTED', 'CANCELLING')
        OR (s.msgid IS NULL AND EXISTS (SELECT 1 FROM journal j WHERE j.fixmedins_code = $2
                                        AND j.msgid = v.final_msgid AND j.state = 'PENDING')))
"""


@map_unavailable
class PgStays:
    """The stays port over one pool."""

    def __init__(self, pool: Pg) -> None:
        self.pool = pool

    async def admit(
        self,
        fixmedins_code: str,
        ipt_no: str,
        psn_no: str,
        insutype: str,
        psn_type: str,
        med_type: str,
        begntime: datetime,
        info: Mapping[str, Any],
        mint: str,
    ) -> Visit:
        r = await self.pool.fetchrow(
            f"""INSERT INTO visits (fixmedins_code, mdtrt_id, kind, ipt_otp_no, psn_no, insutype, psn_type, state,
                                    med_type, begntime, info)
                VALUES ($1, $2 || lpad((nextval('mdtrt_seq') % 10000000000)::text, 10, '0'), 'INPATIENT', $3,
                        $4, $5, $6, 'ADMITTED', $7, $8, $9::jsonb)
                ON CONFLICT (fixmedins_code, kind, ipt_otp_no) DO NOTHING RETURNING {_VISIT}""",
            fixmedins_code, mint, ipt_no, psn_no, insutype, psn_type, med_type, begntime, orjson.dumps(info).decode(),
        )  # fmt: skip
        if r is None:
            r = await self.pool.fetchrow(
                f"SELECT {_VISIT} FROM visits WHERE fixmedins_code = $1 AND kind = 'INPATIENT' AND ipt_otp_no = $2",
                fixmedins_code,
                ipt_no,
            )
        assert r is not None
        return _visit(r)

    async def _read(self, conn: Conn, code: str, r: asyncpg.Record) -> Stay:
        vid = r["id"]
        held = {x["chrg_bchno"]: Holder(x["setl_msgid"], x["setl_id"], x["pending"])
                for x in await conn.fetch(_HOLDERS, vid, code)}  # fmt: skip
        f = await conn.fetchrow(_FINAL, vid, code)
        final = None if f is None else Holder(f["final_msgid"], f["setl_id"], f["pending"])
        rows = await conn.fetch(
            f"SELECT {_LINE}, init_feedetl_sn FROM fee_lines WHERE visit_id = $1 AND NOT (chrg_bchno = ANY($2::text[]))"
            " ORDER BY chrg_bchno, feedetl_sn",
            vid, list(held),
        )  # fmt: skip
        names = sorted({x["chrg_bchno"] for x in rows})
        vers = await conn.fetch(
            "SELECT chrg_bchno, version FROM fee_batches WHERE visit_id = $1 AND chrg_bchno = ANY($2::text[])"
            " ORDER BY chrg_bchno",
            vid, names,
        )  # fmt: skip
        visit = Visit(**{k: r[k] for k in _KEYS})
        lines = tuple(_line(x) for x in rows)
        live = tuple({h.msgid: h for h in [*held.values(), *([final] if final else [])]}.values())
        return Stay(visit, lines, tuple((x["chrg_bchno"], x["version"]) for x in vers), final, live)

    async def _lock(
        self, conn: Conn, code: str, mdtrt_id: str, allowed: Collection[str], final_first: bool = False
    ) -> tuple[int, Stay]:
        r = await conn.fetchrow(
            f"SELECT id, {_VISIT} FROM visits WHERE mdtrt_id = $1 AND fixmedins_code = $2 AND kind = 'INPATIENT'"
            " FOR UPDATE",
            mdtrt_id, code,
        )  # fmt: skip
        if r is None:
            raise VisitClosed("unknown")
        s = await self._read(conn, code, r)
        if s.final is not None and final_first:
            raise BatchSettled("final", s.final)
        if s.state not in allowed:
            raise VisitClosed(s.state)
        vid: int = r["id"]
        return vid, s

    async def stay(self, fixmedins_code: str, mdtrt_id: str) -> Stay | None:
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(
                f"SELECT id, {_VISIT} FROM visits WHERE mdtrt_id = $1 AND fixmedins_code = $2 AND kind = 'INPATIENT'",
                mdtrt_id, fixmedins_code,
            )  # fmt: skip
            return None if r is None else await self._read(conn, fixmedins_code, r)

    async def change(
        self,
        fixmedins_code: str,
        mdtrt_id: str,
        allowed: Collection[str],
        to: str | None,
        info: Mapping[str, Any],
        *,
        empty: bool = False,
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            vid, s = await self._lock(conn, fixmedins_code, mdtrt_id, allowed)
            if empty and (s.live or await conn.fetchval("SELECT 1 FROM fee_lines WHERE visit_id = $1 LIMIT 1", vid)):
                raise VisitClosed(f"{s.state} with fee lines or a settlement")
            await conn.execute(
                "UPDATE visits SET state = coalesce($2, state), info = info || $3::jsonb WHERE id = $1",
                vid, to, orjson.dumps(info).decode(),
            )  # fmt: skip

    async def add_lines(self, fixmedins_code: str, mdtrt_id: str, lines: Sequence[StoredLine]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            vid, s = await self._lock(conn, fixmedins_code, mdtrt_id, ("ADMITTED", "DISCHARGED"))
            rows = await conn.fetch(
                "SELECT feedetl_sn, chrg_bchno, amount, init_feedetl_sn FROM fee_lines WHERE visit_id = $1", vid
            )
            stored = {r["feedetl_sn"]: r for r in rows}
            unsettled = {b for b, _ in s.versions}
            left = {sn: r["amount"] for sn, r in stored.items() if r["init_feedetl_sn"] is None}
            for r in rows:
                if r["init_feedetl_sn"] is not None:
                    left[r["init_feedetl_sn"]] = left.get(r["init_feedetl_sn"], 0) + r["amount"]
            for x in lines:
                if x.feedetl_sn in stored:
                    raise LineDuplicate(x.feedetl_sn)
                if x.init_feedetl_sn is None:
                    left[x.feedetl_sn] = x.amount
                    continue
                init = stored.get(x.init_feedetl_sn)
                if (init is None and x.init_feedetl_sn not in left) or (init is not None and init["init_feedetl_sn"]):
                    raise LineUnknown(x.init_feedetl_sn)
                if init is not None and init["chrg_bchno"] not in unsettled and s.live:
                    raise BatchSettled(init["chrg_bchno"], s.live[0])
                left[x.init_feedetl_sn] += x.amount
                if left[x.init_feedetl_sn] < 0:
                    raise RefundTooLarge(x.feedetl_sn, x.init_feedetl_sn, left[x.init_feedetl_sn] - x.amount)
            n = await conn.fetchval("SELECT count(*) FROM fee_batches WHERE visit_id = $1", vid)
            bchno = f"IPT{n + 1:06d}"
            await conn.execute("INSERT INTO fee_batches (visit_id, chrg_bchno) VALUES ($1, $2)", vid, bchno)
            await conn.copy_records_to_table(
                "fee_lines",
                columns=["visit_id", *(c.strip() for c in _LINE.split(",")), "init_feedetl_sn"],
                records=[
                    (vid, x.feedetl_sn, bchno, x.med_list_codg, x.cnt, x.pric, x.amount, x.fulamt_ownpay_amt,
                     x.overlmt_amt, x.preselfpay_amt, x.inscp_scp_amt, x.chrgitm_lv, orjson.dumps(x.extra).decode(),
                     x.init_feedetl_sn)
                    for x in lines
                ],
            )  # fmt: skip

    async def remove_lines(self, fixmedins_code: str, mdtrt_id: str, feedetl_sns: Sequence[str] | None) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            vid, s = await self._lock(conn, fixmedins_code, mdtrt_id, ("ADMITTED", "DISCHARGED"))
            open_ = {x.feedetl_sn for x in s.lines}
            if feedetl_sns is None:
                names = sorted(open_)
            else:
                for sn in feedetl_sns:
                    if sn not in open_:
                        if await conn.fetchval(
                            "SELECT 1 FROM fee_lines WHERE visit_id = $1 AND feedetl_sn = $2", vid, sn
                        ):
                            raise BatchSettled(sn, s.live[0])
                        raise LineUnknown(sn)
                names = list(feedetl_sns)
            n = await conn.fetchval(
                "WITH d AS (DELETE FROM fee_lines WHERE visit_id = $1 AND (feedetl_sn = ANY($2::text[])"
                " OR init_feedetl_sn = ANY($2::text[])) RETURNING chrg_bchno),"
                " u AS (UPDATE fee_batches SET version = version + 1 WHERE visit_id = $1"
                "       AND chrg_bchno IN (SELECT chrg_bchno FROM d))"
                " SELECT count(*) FROM d",
                vid, names,
            )  # fmt: skip
            count: int = n
            return count

    async def claim(
        self, fixmedins_code: str, mdtrt_id: str, msgid: str, final: bool, versions: Sequence[tuple[str, int]]
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            allowed = ("DISCHARGED",) if final else ("ADMITTED",)
            vid, s = await self._lock(conn, fixmedins_code, mdtrt_id, allowed, final_first=True)
            if s.versions != tuple(versions):
                raise BatchChanged(mdtrt_id)
            await conn.execute(
                "UPDATE fee_batches SET setl_msgid = $2 WHERE visit_id = $1 AND chrg_bchno = ANY($3::text[])",
                vid, msgid, [b for b, _ in versions],
            )  # fmt: skip
            if final:
                await conn.execute("UPDATE visits SET final_msgid = $2 WHERE id = $1", vid, msgid)
