"""PIN policy of SPEC §7: how much the personal account may pay, given the PIN outcome and the card's mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.domain.codes import ResultCode
from gateway.domain.errors import Declined


class DefaultPinCaps(Protocol):
    """Default-PIN caps of a region (policy data, `rules.policy.PinCaps`): fen per txn and per day, count."""

    @property
    def per_txn(self) -> int: ...
    @property
    def per_day(self) -> int: ...
    @property
    def per_day_count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DefaultPinUsage:
    """What a card already spent today in default-PIN settlements."""

    count: int = 0
    acct_sum: int = 0


@dataclass(frozen=True, slots=True)
class AccountAllowance:
    """The most the personal account may pay (None: no limit beyond balance) and whether caps apply."""

    limit: int | None
    default_pin: bool


def allowance(
    pin: str, pin_mode: str, acct_used_flag: bool, caps: DefaultPinCaps, usage: DefaultPinUsage
) -> AccountAllowance:
    """Decide the personal-account allowance of a settlement.

    Raises:
        Declined: PIN_REQUIRED for a default PIN on a PIN-mode card, DEFAULT_PIN_LIMIT past the count.
    """
    if pin == "DEFAULT":
        if pin_mode != "DEFAULT":
            raise Declined(
                ResultCode.PIN_REQUIRED,
                "the holder set a PIN: default-PIN settlement is not allowed, verify the PIN on the card",
            )
        if usage.count >= caps.per_day_count:
            raise Declined(
                ResultCode.DEFAULT_PIN_LIMIT,
                f"default-PIN settlements are limited to {caps.per_day_count} per card per day",
            )
        if not acct_used_flag:
            return AccountAllowance(0, True)
        left_today = max(0, caps.per_day - usage.acct_sum)
        return AccountAllowance(min(caps.per_txn, left_today), True)
    if pin == "NONE" or not acct_used_flag:
        # SPEC §7: without cardholder verification the personal account pays nothing.
        return AccountAllowance(0, False)
    return AccountAllowance(None, False)
