"""Outpatient visits, fee batches and stored fee lines (SPEC §6.6): the records the visits port reads and
writes. A batch's claim is live while its settlement's journal row is PENDING or the settlement is UNKNOWN,
POSTED or CANCELLING (migration 0009)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.domain.registry import SettlementState

LIVE_STATES = frozenset({SettlementState.UNKNOWN, SettlementState.POSTED, SettlementState.CANCELLING})
ALL_BATCHES = "0000"  # 2205: every unsettled batch of the visit


@dataclass(frozen=True, slots=True)
class Visit:
    """A registered visit of one institution."""

    fixmedins_code: str
    mdtrt_id: str
    ipt_otp_no: str
    psn_no: str = field(repr=False)
    insutype: str
    psn_type: str
    state: str  # REGISTERED | CANCELLED (outpatient); ADMITTED | DISCHARGED | CANCELLED (inpatient, SPEC §6.7)
    med_type: str | None
    begntime: datetime


@dataclass(frozen=True, slots=True)
class StoredLine:
    """A fee line as 2204 stored it, with its per-line split."""

    feedetl_sn: str
    chrg_bchno: str
    med_list_codg: str
    cnt: Decimal
    pric: Decimal
    amount: int  # fen
    fulamt_ownpay_amt: int
    overlmt_amt: int
    preselfpay_amt: int
    inscp_scp_amt: int
    chrgitm_lv: str
    extra: dict[str, Any] = field(default_factory=dict)
    init_feedetl_sn: str | None = None  # issue 12, inpatient: the line a refund (negative amount) refunds


@dataclass(frozen=True, slots=True)
class Holder:
    """The live settlement holding a batch: its msgid, and its setl_id once the core gave one."""

    msgid: str
    setl_id: str | None
    pending: bool = False  # still at the core: its journal row is PENDING, no settlement recorded yet


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch's lines, the settlement holding it (None: unsettled) and its version (raised by 2204/2205)."""

    chrg_bchno: str
    lines: tuple[StoredLine, ...]
    holder: Holder | None
    version: int

    @property
    def total(self) -> int:
        """The sum of the lines, in fen."""
        return sum(line.amount for line in self.lines)


class BatchSettled(Exception):
    """The batch (or, for a visit, one of its batches) is held by a live settlement."""

    def __init__(self, chrg_bchno: str, holder: Holder) -> None:
        super().__init__(f"batch {chrg_bchno} is settled by {holder.setl_id or holder.msgid}")
        self.chrg_bchno = chrg_bchno
        self.holder = holder


class LineDuplicate(Exception):
    """A feedetl_sn is already stored for the visit."""

    def __init__(self, feedetl_sn: str) -> None:
        super().__init__(f"feedetl_sn {feedetl_sn} is already uploaded for this visit")
        self.feedetl_sn = feedetl_sn


class VisitClosed(Exception):
    """The visit is not in a state that allows the change (`state` names it)."""

    def __init__(self, state: str) -> None:
        super().__init__(f"visit is {state}")
        self.state = state


class BatchChanged(Exception):
    """The batch's lines changed between reading and claiming it."""
