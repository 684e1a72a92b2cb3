"""Reconciliation comparisons (SPEC §6.5), pure: the journal's settlements against an institution's 3201
totals and 3202 details, and against the insurance core's ledger for operators. Money in fen."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.domain.inputs import StatementDetail
from gateway.domain.money import fen_to_wire, yuan_to_fen
from gateway.domain.registry import Settlement

LIVE = frozenset({"POSTED", "CANCELLING"})  # counted in totals: settlements minus cancellations

MISSING_AT_GATEWAY = "MISSING_AT_GATEWAY"
MISSING_AT_INSTITUTION = "MISSING_AT_INSTITUTION"
MISSING_AT_CORE = "MISSING_AT_CORE"
AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
STATE_MISMATCH = "STATE_MISMATCH"
UNRESOLVED = "UNRESOLVED"


def totals(rows: Iterable[Settlement]) -> dict[str, int]:
    """The journal's 3201 totals: live settlements (cancellations subtracted), in fen, and their count."""
    live = [s for s in rows if s.state in LIVE]
    return {
        "medfee_sumamt": sum(s.medfee_sumamt for s in live),
        "fund_pay_sumamt": sum(s.fund_pay_sumamt for s in live),
        "acct_pay": sum(s.acct_pay for s in live),
        "fixmedins_setl_cnt": len(live),
    }


def gateway_view(s: Settlement) -> dict[str, Any]:
    """A settlement as a break shows it (yuan on the wire)."""
    return {
        "setl_id": s.setl_id,
        "state": s.state,
        "medfee_sumamt": fen_to_wire(s.medfee_sumamt),
        "fund_pay_sumamt": fen_to_wire(s.fund_pay_sumamt),
        "acct_pay": fen_to_wire(s.acct_pay),
    }


def institution_breaks(rows: Sequence[Settlement], details: Sequence[StatementDetail]) -> list[dict[str, Any]]:
    """3202: every msgid where the journal and the institution's details disagree, classified."""
    ours = {s.msgid: s for s in rows if s.state != "UNKNOWN"}
    out: list[dict[str, Any]] = []
    seen = set()
    for d in details:
        seen.add(d.msgid)
        theirs = {
            "setl_id": d.setl_id,
            "refunded": d.refunded,
            "medfee_sumamt": fen_to_wire(d.medfee_sumamt),
            "fund_pay_sumamt": fen_to_wire(d.fund_pay_sumamt),
            "acct_pay": fen_to_wire(d.acct_pay),
        }
        s = ours.get(d.msgid)
        kind = None
        if s is None or s.state == "REVERSED":
            kind = MISSING_AT_GATEWAY if not d.refunded else None
        elif (s.medfee_sumamt, s.fund_pay_sumamt, s.acct_pay) != (d.medfee_sumamt, d.fund_pay_sumamt, d.acct_pay):
            kind = AMOUNT_MISMATCH
        elif (s.state not in LIVE) != d.refunded:
            kind = STATE_MISMATCH
        if kind:
            out.append(
                {
                    "msgid": d.msgid,
                    "setl_id": d.setl_id or (s.setl_id if s else None),
                    "kind": kind,
                    "gateway": gateway_view(s) if s else None,
                    "institution": theirs,
                }
            )
    for msgid, s in ours.items():
        if msgid not in seen and s.state in LIVE:
            out.append(
                {
                    "msgid": msgid,
                    "setl_id": s.setl_id,
                    "kind": MISSING_AT_INSTITUTION,
                    "gateway": gateway_view(s),
                    "institution": None,
                }
            )
    return out


# -- gateway against core ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CoreRecord:
    """A settlement in the core's ledger: state POSTED, CANCELLED or REVERSED; amounts in fen."""

    msgid: str
    setl_id: str
    fixmedins_code: str
    state: str
    setl_time: str
    medfee_sumamt: int
    fund_pay_sumamt: int
    acct_pay: int
    psn_cash_pay: int

    @classmethod
    def from_ledger(cls, d: Mapping[str, Any]) -> CoreRecord:
        """One entry of the simulator's `settlements` list (amounts as yuan strings)."""
        return cls(
            str(d["msgid"]),
            str(d["setl_id"]),
            str(d["fixmedins_code"]),
            str(d["state"]),
            str(d.get("setl_time") or ""),
            yuan_to_fen(d["medfee_sumamt"], field="medfee_sumamt"),
            yuan_to_fen(d["fund_pay_sumamt"], field="fund_pay_sumamt"),
            yuan_to_fen(d["acct_pay"], field="acct_pay"),
            yuan_to_fen(d["psn_cash_pay"], field="psn_cash_pay"),
        )

    def view(self) -> dict[str, Any]:
        """As a break shows it."""
        return {
            "setl_id": self.setl_id,
            "state": self.state,
            "medfee_sumamt": fen_to_wire(self.medfee_sumamt),
            "fund_pay_sumamt": fen_to_wire(self.fund_pay_sumamt),
            "acct_pay": fen_to_wire(self.acct_pay),
        }


def core_totals(records: Iterable[CoreRecord]) -> dict[str, int]:
    """The core's totals on the same terms as `totals`: POSTED only."""
    live = [c for c in records if c.state == "POSTED"]
    return {
        "medfee_sumamt": sum(c.medfee_sumamt for c in live),
        "fund_pay_sumamt": sum(c.fund_pay_sumamt for c in live),
        "acct_pay": sum(c.acct_pay for c in live),
        "fixmedins_setl_cnt": len(live),
    }


def unresolved(s: Settlement, reversals: Mapping[str, str]) -> bool:
    """The outcome is still open: UNKNOWN (a 2601 owed) or CANCELLING (a cancel's 2601 owed), not yet DONE."""
    if s.state == "UNKNOWN":
        return reversals.get(s.msgid) != "DONE"
    return s.state == "CANCELLING"


def classify(s: Settlement | None, c: CoreRecord | None, reversals: Mapping[str, str]) -> str | None:
    """The break kind of one msgid seen by the gateway (`s`) and the core (`c`), or None when they agree.

    `reversals` maps omsgid to the state of the gateway's queued 2601 (QUEUED, DONE or DEAD).
    """
    if s is not None and unresolved(s, reversals):
        return UNRESOLVED
    if s is None or s.state in ("REVERSED", "UNKNOWN"):  # the gateway holds nothing live
        if c is None or c.state == "REVERSED":
            return None
        return MISSING_AT_GATEWAY if s is None or c.state == "POSTED" else STATE_MISMATCH
    if c is None:
        return MISSING_AT_CORE
    amounts = (s.medfee_sumamt, s.fund_pay_sumamt, s.acct_pay, s.psn_cash_pay)
    if amounts != (c.medfee_sumamt, c.fund_pay_sumamt, c.acct_pay, c.psn_cash_pay):
        return AMOUNT_MISMATCH
    return None if c.state == s.state else STATE_MISMATCH


def core_breaks(
    rows: Sequence[Settlement], records: Sequence[CoreRecord], reversals: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Every msgid of either side that does not balance, with both views (three-way-ready: `institution`
    can be added beside `gateway` and `core`), in msgid order."""
    ours = {s.msgid: s for s in rows}
    theirs = {c.msgid: c for c in records}
    out: list[dict[str, Any]] = []
    for msgid in sorted(ours.keys() | theirs.keys()):
        s, c = ours.get(msgid), theirs.get(msgid)
        kind = classify(s, c, reversals)
        if kind is not None:
            out.append(
                {
                    "msgid": msgid,
                    "setl_id": s.setl_id if s is not None and s.setl_id else (c.setl_id if c else None),
                    "kind": kind,
                    "gateway": gateway_view(s) if s else None,
                    "core": c.view() if c else None,
                }
            )
    return out


def open_breaks(rows: Sequence[Settlement], reversals: Mapping[str, str]) -> list[dict[str, Any]]:
    """Journal only: the settlements whose outcome is still open (UNRESOLVED)."""
    return [
        {"msgid": s.msgid, "setl_id": s.setl_id, "kind": UNRESOLVED, "gateway": gateway_view(s), "core": None}
        for s in sorted(rows, key=lambda s: s.msgid)
        if unresolved(s, reversals)
    ]
