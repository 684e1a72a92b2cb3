"""What the gateway and the insurance core exchange (the core port's value objects). Money in fen."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """A person as the core knows them, with this year's accumulators and an optimistic version."""

    psn_no: str
    certno: str = field(repr=False)
    psn_name: str = field(repr=False)
    gend: str
    brdy: str
    insutype: str
    psn_type: str
    insuplc_admdvs: str
    balance: int
    inscp_ytd: int
    fund_paid_ytd: int
    version: int
    psn_insu_stas: str = "1"


@dataclass(frozen=True, slots=True)
class Posting:
    """A settlement to post; refused by the core when the person's version moved on."""

    msgid: str
    infno: str
    fixmedins_code: str
    psn_no: str
    medfee_sumamt: int
    inscp_scp_amt: int
    fund_pay_sumamt: int
    acct_pay: int
    psn_cash_pay: int
    expected_version: int
    setl_time: str


@dataclass(frozen=True, slots=True)
class Posted:
    """The core's receipt: its settlement id and the account balance after posting."""

    setl_id: str
    balc: int
    version: int


@dataclass(frozen=True, slots=True)
class Cancellation:
    """A cancel to post (2208/2103)."""

    msgid: str
    infno: str
    fixmedins_code: str
    psn_no: str
    setl_id: str


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The core's receipt for a cancel: the refunded amounts and the balance after."""

    setl_id: str
    orig_setl_id: str
    medfee_sumamt: int
    fund_pay_sumamt: int
    acct_pay: int
    psn_cash_pay: int
    balc: int


@dataclass(frozen=True, slots=True)
class Reversal:
    """A 2601 reversal of the message `omsgid` (of infno `oinfno`) at the core."""

    msgid: str
    fixmedins_code: str
    psn_no: str
    omsgid: str
    oinfno: str


@dataclass(frozen=True, slots=True)
class Reversed:
    """Outcome of a reversal: `was_posted` tells whether the core had the original."""

    omsgid: str
    was_posted: bool
