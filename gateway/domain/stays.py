"""Inpatient stays (SPEC §6.7): what the stays port answers about one stay, its refusals and the inputs of
the stay transactions (parsed by `gateway.domain.stay_inputs`). A stay is a visit of kind INPATIENT; its
unsettled lines are those of the batches no live settlement holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.domain.visit_inputs import UploadLine
from gateway.domain.visits import Holder, StoredLine, Visit

ALL_LINES = "0000"  # 2302: every unsettled line of the stay


@dataclass(frozen=True, slots=True)
class Stay:
    """A stay with its unsettled lines (refunds included), the versions of their batches and its settlements."""

    visit: Visit
    lines: tuple[StoredLine, ...]
    versions: tuple[tuple[str, int], ...]  # (chrg_bchno, version) of every unsettled batch with lines
    final: Holder | None  # the live final settlement, if any
    live: tuple[Holder, ...]  # every live settlement of the stay (mid-stay and final)

    @property
    def state(self) -> str:
        """ADMITTED, DISCHARGED, SETTLED (a final settlement is live) or CANCELLED."""
        return "SETTLED" if self.final is not None else self.visit.state

    @property
    def total(self) -> int:
        """The unsettled lines' sum in fen, refunds netted."""
        return sum(x.amount for x in self.lines)


class LineUnknown(Exception):
    """A line named by init_feedetl_sn or 2302 is not a line of the stay."""

    def __init__(self, feedetl_sn: str) -> None:
        super().__init__(f"feedetl_sn {feedetl_sn} is not a fee line of this stay")
        self.feedetl_sn = feedetl_sn


class RefundTooLarge(Exception):
    """A refund exceeds what is left of the line it refunds."""

    def __init__(self, feedetl_sn: str, init_feedetl_sn: str, left: int) -> None:
        super().__init__(f"refund {feedetl_sn} exceeds what is left of line {init_feedetl_sn} ({left / 100:.2f})")
        self.feedetl_sn = feedetl_sn


@dataclass(frozen=True, slots=True)
class AdmitInput:
    """2401 input.mdtrtinfo (and diseinfo[], stored)."""

    psn_no: str = field(repr=False)
    insutype: str
    begntime: datetime
    med_type: str
    ipt_no: str
    info: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class StayChange:
    """2402 discharge, 2403 change of admission, 2404 cancel admission, 2405 cancel discharge."""

    psn_no: str = field(repr=False)
    mdtrt_id: str
    info: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class StayLine:
    """One 2301 line; a refund (negative cnt and amount) names the line it refunds."""

    line: UploadLine
    init_feedetl_sn: str | None = None

    @property
    def refund(self) -> bool:
        """A negative line."""
        return self.init_feedetl_sn is not None


@dataclass(frozen=True, slots=True)
class StayUploadInput:
    """2301 input.feedetail[]: one stay."""

    psn_no: str = field(repr=False)
    mdtrt_id: str
    lines: tuple[StayLine, ...]


@dataclass(frozen=True, slots=True)
class StayFeeCancel:
    """2302: the lines to remove (None = every unsettled line, "0000")."""

    psn_no: str = field(repr=False)
    mdtrt_id: str
    feedetl_sns: tuple[str, ...] | None
