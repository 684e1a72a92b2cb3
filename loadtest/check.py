"""The post-run check: every outcome a terminal saw matches the gateway's journal and the insurance core.

For each request of the run:
- an answer given after the idempotency claim (everything but envelope, PSAM, sign-in, MAC/TAC and msgid
  refusals) is journaled DONE with the same `err_code` and byte-identical response;
- an acknowledged settlement (2207/2102, infcode 0) is POSTED in the journal and at the core with the amounts
  the terminal was told (or CANCELLED at both, when this run cancelled it);
- an acknowledged cancel left the settlement CANCELLED at both;
- a refused or failed settlement posted nothing: not POSTED at the core, reversed if it ever reached it;
- nothing is left UNKNOWN once the reversals owed have drained;
- an outpatient visit (issue 12) was settled by one acknowledged 2207, whose msgid holds the visit's batch;
- an inpatient stay with an acknowledged 2304 has exactly one live final settlement (loadtest.check_stays).
When the core started fresh with the world (`fresh_core`), every touched account must also equal its opening
balance less what the journal says was posted.

Returns problems as text (the first few of each kind) rather than raising, so a report can carry them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import orjson

from gateway.domain.sealed import RESPONSE, DataKeyRing, UnreadableRecord, dev_ring, open_sealed, row_ad
from loadtest.check_stays import check_stays, fetch_stays, final_settles
from loadtest.runner import Trace

# Refusals decided before the journal claim (SPEC §5 order: envelope, registry and sign-in, MAC1/TAC, msgid).
NOT_JOURNALED = frozenset(
    {
        "MALFORMED",
        "TOO_LARGE",
        "PSAM_UNKNOWN",
        "PSAM_REVOKED",
        "NOT_SIGNED_IN",
        "MAC_INVALID",
        "TAC_INVALID",
        "MSGID_CONFLICT",
        "CONNECT_ERROR",
        "NO_TERMINAL",
    }
)
_SETTLES = frozenset({"2207", "2102", "2304"})  # 2304: issue 12, an inpatient stay's settlement
MAX_LISTED = 5


@dataclass
class CheckResult:
    """Counts of what was checked and the problems found."""

    requests: int = 0
    journal_rows: int = 0
    settlements: int = 0
    cancels: int = 0
    accounts: int = 0
    visits: int = 0  # issue 12: outpatient visits whose batch settled
    stays: int = 0  # issue 12: inpatient stays with an acknowledged final 2304
    problems: list[str] = field(default_factory=list)
    problem_counts: Counter[str] = field(default_factory=Counter)

    def problem(self, kind: str, text: str) -> None:
        """Count a problem; keep its text for the first few of its kind."""
        self.problem_counts[kind] += 1
        if self.problem_counts[kind] <= MAX_LISTED:
            self.problems.append(f"{kind}: {text}")

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problem_counts

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the result file."""
        return {
            "ok": self.ok,
            "requests": self.requests,
            "journal_rows": self.journal_rows,
            "settlements": self.settlements,
            "cancels": self.cancels,
            "accounts": self.accounts,
            "visits": self.visits,
            "stays": self.stays,
            "problem_counts": dict(self.problem_counts),
            "problems": self.problems,
        }


def _fen(yuan: str) -> int:
    return int(Decimal(yuan) * 100)


async def _drain_reversals(pool: asyncpg.Pool, msgids: list[str] | None, seconds: float) -> int:
    """Wait (bounded) until no reversal owed for these messages (all, with None) is still QUEUED; returns how
    many are."""
    queued = 0
    for _ in range(max(1, int(seconds / 0.2))):
        queued = await pool.fetchval(
            "SELECT count(*) FROM reversal_queue WHERE ($1::text[] IS NULL OR omsgid = ANY($1)) AND state = 'QUEUED'",
            msgids,
        )
        if not queued:
            return 0
        await asyncio.sleep(0.2)
    return int(queued)


async def check_run(
    traces: Sequence[Trace],
    pg_dsn: str,
    core_url: str,
    *,
    world: dict[str, Any] | None = None,
    fresh_core: bool = False,
    drain_s: float = 30.0,
    data_keys: DataKeyRing | None = None,
) -> CheckResult:
    """Check a run's traces against the journal (PostgreSQL at `pg_dsn`) and the core simulator; sealed answers
    are opened with `data_keys` (default: the development ring a `--dev` gateway seals with)."""
    keys = data_keys or dev_ring()
    res = CheckResult(requests=len(traces))
    msgids = [t.msgid for t in traces]
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        if (left := await _drain_reversals(pool, None if fresh_core else msgids, drain_s)) > 0:
            res.problem("reversal_pending", f"{left} reversals still queued after {drain_s:.0f} s")
        journal = {
            (r["fixmedins_code"], r["msgid"]): r
            for r in await pool.fetch(
                "SELECT fixmedins_code, msgid, state, err_code, response, response_enc FROM journal"
                " WHERE msgid = ANY($1)",
                msgids,
            )
        }
        # Accounts compare everything the gateway ever posted for the run's database, not only the traced
        # requests: a request can reach the gateway and the core yet never be recorded (a Locust user stopped
        # while waiting for its answer).
        all_rows = await pool.fetch("SELECT msgid, psn_no, state, acct_pay FROM settlements") if fresh_core else []
        visit_settles = [
            (t.mdtrt_id, t.msgid) for t in traces if t.infno == "2207" and t.outcome == "OK" and t.mdtrt_id
        ]
        claims = await pool.fetch(
            "SELECT v.mdtrt_id, b.chrg_bchno, b.setl_msgid FROM fee_batches b JOIN visits v ON v.id = b.visit_id"
            " WHERE v.mdtrt_id = ANY($1)",
            [m for m, _ in visit_settles],
        )
        acked_stays = final_settles(traces)
        stays, stay_states = await fetch_stays(pool, acked_stays)
        settled_rows = await pool.fetch(
            "SELECT fixmedins_code, msgid, setl_id, psn_no, state, acct_pay, fund_pay_sumamt, psn_cash_pay"
            " FROM settlements WHERE msgid = ANY($1) OR state = 'UNKNOWN'",
            msgids,
        )
    finally:
        await pool.close()
    settlements = {(r["fixmedins_code"], r["msgid"]): r for r in settled_rows}
    by_setl_id = {r["setl_id"]: r for r in settled_rows if r["setl_id"]}
    async with aiohttp.ClientSession() as http:
        async with http.get(core_url.rstrip("/") + "/sim/settlements") as resp:
            if resp.status != 200:
                res.problem("core", f"GET /sim/settlements answered {resp.status}")
                return res
            ledger = orjson.loads(await resp.read())
        if fresh_core and world is not None:
            await _check_accounts(res, world, all_rows, ledger, http, core_url.rstrip("/"))
    core = {(s["fixmedins_code"], s["msgid"]): s for s in ledger["settlements"]}
    core_by_setl = {s["setl_id"]: s for s in ledger["settlements"]}
    _check_visits(res, visit_settles, claims)
    check_stays(res, acked_stays, stays, stay_states)
    for key, row in settlements.items():
        if row["state"] == "UNKNOWN":
            res.problem("unknown_left", f"settlement {key[1]} is still UNKNOWN")
    for t in traces:
        _check_journal(res, t, journal.get((t.fixmedins_code, t.msgid)), keys)
        if t.infno in _SETTLES:
            _check_settlement(
                res, t, settlements.get((t.fixmedins_code, t.msgid)), core.get((t.fixmedins_code, t.msgid))
            )
        elif t.scenario == "cancel" and t.outcome == "OK":
            res.cancels += 1
            for where, rec in (("journal", by_setl_id.get(t.setl_id)), ("core", core_by_setl.get(t.setl_id))):
                if rec is None or rec["state"] != "CANCELLED":
                    res.problem("cancel", f"cancel {t.msgid} acknowledged but the {where} says {rec and rec['state']}")
        elif t.infno not in _SETTLES and (t.fixmedins_code, t.msgid) in core:
            res.problem("posted_by_non_settlement", f"{t.infno} {t.msgid} left a settlement at the core")
    return res


def _check_visits(res: CheckResult, settles: Sequence[tuple[str | None, str]], claims: Sequence[Any]) -> None:
    """Every visit a 2207 settled: settled once, and its batch claimed by that very 2207."""
    by_visit = Counter(m for m, _ in settles)
    held: dict[str, list[str]] = {}
    for r in claims:
        held.setdefault(r["mdtrt_id"], []).append(r["setl_msgid"])
    for mdtrt_id, msgid in settles:
        assert mdtrt_id is not None
        res.visits += 1
        if by_visit[mdtrt_id] != 1:
            res.problem("visit_settled_twice", f"visit {mdtrt_id} acknowledged {by_visit[mdtrt_id]} settlements")
        if held.get(mdtrt_id) != [msgid]:
            res.problem("visit_batch", f"visit {mdtrt_id}: batch held by {held.get(mdtrt_id)}, not by 2207 {msgid}")


def _check_journal(res: CheckResult, t: Trace, row: Any, keys: DataKeyRing) -> None:
    if t.outcome in NOT_JOURNALED or t.outcome.startswith("HTTP_"):
        return
    if row is None:
        res.problem("not_journaled", f"{t.infno} {t.msgid} answered {t.outcome} but has no journal row")
        return
    res.journal_rows += 1
    if row["state"] != "DONE":
        res.problem("journal_pending", f"{t.msgid} is {row['state']} in the journal")
    if (row["err_code"] or "OK") != t.outcome:
        res.problem("journal_outcome", f"{t.msgid}: terminal saw {t.outcome}, journal holds {row['err_code'] or 'OK'}")
    raw = row["response"]
    if row["response_enc"] is not None:  # sealed (issue 11 item 9): compare the bytes it opens to
        try:
            ad = row_ad(RESPONSE, row["fixmedins_code"], row["msgid"])
            raw = open_sealed(keys.cipher, bytes(row["response_enc"]), ad)
        except UnreadableRecord as exc:
            res.problem("journal_sealed", f"{t.msgid}: {exc}")
            return
    if t.response_sha256 is not None and raw is not None and hashlib.sha256(bytes(raw)).digest() != t.response_sha256:
        res.problem("journal_bytes", f"{t.msgid}: the journaled response differs from the bytes sent")


def _check_settlement(res: CheckResult, t: Trace, journal: Any, core: Any) -> None:
    if t.outcome == "CONNECT_ERROR" or t.outcome.startswith("HTTP_"):
        return  # the terminal never learned the outcome: either way is right until it retries the msgid
    if t.outcome == "OK":
        res.settlements += 1
        if journal is None or core is None:
            res.problem("acknowledged_missing", f"{t.msgid} acknowledged; journal={bool(journal)} core={bool(core)}")
            return
        if journal["state"] not in ("POSTED", "CANCELLED") or core["state"] != journal["state"]:
            res.problem("state", f"{t.msgid}: journal {journal['state']}, core {core['state']}")
        told = (t.acct_pay, t.fund_pay, t.cash_pay)
        if (journal["acct_pay"], journal["fund_pay_sumamt"], journal["psn_cash_pay"]) != told or (
            _fen(core["acct_pay"]),
            _fen(core["fund_pay_sumamt"]),
            _fen(core["psn_cash_pay"]),
        ) != told:
            res.problem("amounts", f"{t.msgid}: amounts differ between terminal, journal and core")
        return
    if core is not None and core["state"] == "POSTED":
        res.problem("posted_not_acknowledged", f"{t.msgid} answered {t.outcome} but is POSTED at the core")
    if journal is not None and journal["state"] == "POSTED":
        res.problem("posted_not_acknowledged", f"{t.msgid} answered {t.outcome} but is POSTED in the journal")


async def _check_accounts(
    res: CheckResult,
    world: dict[str, Any],
    journal: Sequence[Any],
    ledger: dict[str, Any],
    http: aiohttp.ClientSession,
    core_url: str,
) -> None:
    """Per touched person: the journal and the core posted the same, and the balance is opening less that."""
    opening = {p["psn_no"]: _fen(p["balance"]) for p in world["persons"]}
    posted_gw: Counter[str] = Counter()
    for row in journal:
        if row["state"] == "POSTED":
            posted_gw[row["psn_no"]] += row["acct_pay"]
    posted_core: Counter[str] = Counter()
    for s in ledger["settlements"]:
        if s["state"] == "POSTED":
            posted_core[s["psn_no"]] += _fen(s["acct_pay"])
    touched = sorted(set(posted_gw) | set(posted_core))
    sem = asyncio.Semaphore(16)

    async def balance(psn_no: str) -> int | None:
        async with sem, http.get(f"{core_url}/sim/persons/{psn_no}") as r:
            return _fen(orjson.loads(await r.read())["balance"]) if r.status == 200 else None

    balances = await asyncio.gather(*(balance(p) for p in touched))
    for psn_no, now in zip(touched, balances, strict=True):
        res.accounts += 1
        masked = f"{psn_no[:6]}…"
        if posted_gw[psn_no] != posted_core[psn_no]:
            res.problem(
                "account", f"person {masked}: journal posted {posted_gw[psn_no]} fen, core {posted_core[psn_no]}"
            )
        elif now is None or psn_no not in opening or now != opening[psn_no] - posted_core[psn_no]:
            res.problem("balance", f"person {masked}: balance {now} fen is not opening less posted")
