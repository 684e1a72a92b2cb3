"""The post-run check of the inpatient stays (issue 12): every stay with an acknowledged final 2304 has exactly
one live final settlement (POSTED, UNKNOWN or CANCELLING), and it is the one the stay names (visits.final_msgid).
The candidates are every acknowledged 2304 of the stay, its batches' claims and its final_msgid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from loadtest.check import CheckResult
    from loadtest.runner import Trace

LIVE = frozenset({"POSTED", "UNKNOWN", "CANCELLING"})
_STAYS = """
SELECT v.mdtrt_id, v.fixmedins_code, v.final_msgid,
       coalesce(array_agg(b.setl_msgid) FILTER (WHERE b.setl_msgid IS NOT NULL), '{}') AS claims
  FROM visits v LEFT JOIN fee_batches b ON b.visit_id = v.id
 WHERE v.kind = 'INPATIENT' AND v.mdtrt_id = ANY($1) GROUP BY v.id"""


def final_settles(traces: Sequence[Trace]) -> dict[str, set[str]]:
    """mdtrt_id -> the msgids of its acknowledged 2304s (the load tester sends final ones only)."""
    out: dict[str, set[str]] = {}
    for t in traces:
        if t.infno == "2304" and t.outcome == "OK" and t.mdtrt_id:
            out.setdefault(t.mdtrt_id, set()).add(t.msgid)
    return out


async def fetch_stays(pool: asyncpg.Pool, acked: dict[str, set[str]]) -> tuple[list[Any], dict[tuple[str, str], str]]:
    """The stays' rows and the state of every candidate settlement, by (fixmedins_code, msgid)."""
    if not acked:
        return [], {}
    stays = await pool.fetch(_STAYS, list(acked))
    keys = {
        (r["fixmedins_code"], m)
        for r in stays
        for m in {*acked.get(r["mdtrt_id"], ()), *r["claims"], *([r["final_msgid"]] if r["final_msgid"] else [])}
    }
    rows = await pool.fetch(
        "SELECT s.fixmedins_code, s.msgid, s.state FROM settlements s"
        " JOIN unnest($1::text[], $2::text[]) AS k(f, m) ON s.fixmedins_code = k.f AND s.msgid = k.m",
        [f for f, _ in keys],
        [m for _, m in keys],
    )
    return list(stays), {(r["fixmedins_code"], r["msgid"]): r["state"] for r in rows}


def check_stays(res: CheckResult, acked: dict[str, set[str]], stays: Sequence[Any], states: dict[Any, str]) -> None:
    """Count the stays; a problem for each without exactly one live final settlement, or naming another."""
    found = {r["mdtrt_id"]: r for r in stays}
    for mdtrt_id, msgids in acked.items():
        res.stays += 1
        row = found.get(mdtrt_id)
        if row is None:
            res.problem("stay_missing", f"stay {mdtrt_id} acknowledged a 2304 but is not in the visits table")
            continue
        code, final = row["fixmedins_code"], row["final_msgid"]
        candidates = {*msgids, *row["claims"], *([final] if final else [])}
        live = sorted(m for m in candidates if states.get((code, m)) in LIVE)
        if len(live) != 1:
            res.problem("stay_settled", f"stay {mdtrt_id} has {len(live)} live final settlements: {live}")
        elif live[0] != final:
            res.problem("stay_final", f"stay {mdtrt_id}: live settlement {live[0]}, but the stay names {final}")
