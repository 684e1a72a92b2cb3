"""Registry rows and journal records the pipeline works with: institutions, PSAMs, cards, sessions, settlements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from gateway.domain.pin import DefaultPinUsage

NO_USAGE = DefaultPinUsage()


@dataclass(frozen=True, slots=True)
class Institution:
    """A designated institution: its level and region drive the policy, never the request."""

    fixmedins_code: str
    fixmedins_name: str
    kind: str
    level: int
    region: str


@dataclass(frozen=True, slots=True)
class Psam:
    """A PSAM registered to one institution."""

    psam_no: str
    fixmedins_code: str
    status: str


@dataclass(frozen=True, slots=True)
class Card:
    """A social security card of the registry, with today's default-PIN usage."""

    card_sn: str = field(repr=False)
    card_no: str = field(repr=False)
    psn_no: str = field(repr=False)
    pin_mode: str = "DEFAULT"
    status: str = "ACTIVE"
    alg: str = "3DES"
    kv: int = 1
    valid_from: date | None = None
    valid_until: date | None = None
    usage: DefaultPinUsage = NO_USAGE

    @property
    def masked(self) -> str:
        """card_sn for logs: region and the last four hex digits only."""
        return f"{self.card_sn[:6]}********{self.card_sn[-4:]}"


@dataclass(frozen=True, slots=True)
class SignSession:
    """A 9001 sign-in of a PSAM at an institution."""

    sign_no: str
    fixmedins_code: str
    psam_no: str
    expires_at: datetime
    signed_out: bool


class SettlementState(StrEnum):
    """A journaled settlement's life: UNKNOWN (the core's answer was lost; a reversal is owed) → REVERSED, or
    POSTED → CANCELLING (a cancel is at the core) → CANCELLED, back to POSTED when that cancel is reversed,
    or POSTED → REVERSED by a 2601 of the settlement."""

    UNKNOWN = "UNKNOWN"
    POSTED = "POSTED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    REVERSED = "REVERSED"


CANCELLED_OR_CANCELLING = frozenset({SettlementState.CANCELLED, SettlementState.CANCELLING})


@dataclass(frozen=True, slots=True)
class Settlement:
    """A settlement as journaled (amounts in fen)."""

    fixmedins_code: str
    msgid: str
    setl_id: str | None
    infno: str
    psn_no: str
    card_sn: str
    state: SettlementState
    pin: str
    default_pin: bool
    medfee_sumamt: int
    inscp_scp_amt: int
    fund_pay_sumamt: int
    acct_pay: int
    psn_cash_pay: int
    setl_time: datetime
    cancel_msgid: str | None = None
    cancel_setl_id: str | None = None


def mask(value: str | None) -> str:
    """Mask an identifier (card_sn, psn_no, certno) for logs."""
    if not value:
        return "-"
    if len(value) <= 8:
        return value[:2] + "****"
    return f"{value[:6]}****{value[-4:]}"
