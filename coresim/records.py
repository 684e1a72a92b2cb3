"""The simulator's ledger records: persons, settlements, cancellations, reversals. Money in fen."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

SETTLE_INFNOS = frozenset({"2207", "2102", "2304"})  # 2304: inpatient (issue 12)
CANCEL_INFNOS = frozenset({"2208", "2103", "2305"})  # 2305: inpatient (issue 12)


class Refusal(Exception):
    """A business rejection (wire infcode -2): the state is unchanged."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SetlState(StrEnum):
    """Life cycle of a settlement (and, with POSTED/REVERSED only, of a cancellation)."""

    POSTED = "POSTED"
    CANCELLED = "CANCELLED"
    REVERSED = "REVERSED"


@dataclass(slots=True)
class Person:
    """An insured person with a personal account and this year's accumulators."""

    psn_no: str
    certno: str = field(repr=False)
    psn_name: str = field(repr=False)
    gend: str
    brdy: str
    insutype: str
    psn_type: str
    insuplc_admdvs: str
    status: str  # "ACTIVE" or the suspension reason ("11", "12")
    balance: int
    inscp_ytd: int
    fund_paid_ytd: int
    acc_year: int
    version: int = 1

    @property
    def active(self) -> bool:
        return self.status == "ACTIVE"

    @property
    def masked(self) -> str:
        return mask_psn_no(self.psn_no)


def mask_psn_no(psn_no: str) -> str:
    """A psn_no fit for logs: the first 4 and last 2 characters."""
    return f"{psn_no[:4]}****{psn_no[-2:]}" if len(psn_no) > 6 else "****"


@dataclass(frozen=True, slots=True)
class PostRequest:
    """What a 2207 carries besides its msgid; equal requests are retries of one another."""

    fixmedins_code: str
    infno: str
    psn_no: str
    medfee_sumamt: int
    inscp_scp_amt: int
    fund_pay_sumamt: int
    acct_pay: int
    psn_cash_pay: int
    expected_version: int
    setl_time: str


@dataclass(frozen=True, slots=True)
class PostReceipt:
    """The answer to a posting, replayed unchanged for a retry of the same msgid."""

    setl_id: str
    msgid: str
    balc: int
    version: int


@dataclass(slots=True)
class Settlement:
    """A posted settlement and its current state."""

    msgid: str
    request: PostRequest
    receipt: PostReceipt
    year: int
    posted_at: str
    state: SetlState = SetlState.POSTED
    changed_at: str = ""

    @property
    def setl_id(self) -> str:
        return self.receipt.setl_id


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """What a 2208 carries besides its msgid."""

    fixmedins_code: str
    infno: str
    setl_id: str
    psn_no: str


@dataclass(frozen=True, slots=True)
class CancelReceipt:
    """The answer to a cancel: the refunded amounts and the balance after."""

    setl_id: str
    orig_setl_id: str
    medfee_sumamt: int
    fund_pay_sumamt: int
    acct_pay: int
    psn_cash_pay: int
    balc: int
    version: int


@dataclass(slots=True)
class CancelRecord:
    """A cancellation; REVERSED once a 2601 undid it (the settlement is then posted again)."""

    msgid: str
    request: CancelRequest
    receipt: CancelReceipt
    orig_msgid: str
    at: str
    state: SetlState = SetlState.POSTED


@dataclass(frozen=True, slots=True)
class ReverseRequest:
    """What a 2601 carries besides its msgid."""

    fixmedins_code: str
    psn_no: str
    omsgid: str
    oinfno: str


@dataclass(frozen=True, slots=True)
class ReverseReceipt:
    """The answer to a reversal; `was_posted` tells whether the core had the original."""

    omsgid: str
    oinfno: str
    was_posted: bool


@dataclass(frozen=True, slots=True)
class ReversalRecord:
    """A reversal as received, with its outcome."""

    msgid: str
    request: ReverseRequest
    receipt: ReverseReceipt
    at: str
