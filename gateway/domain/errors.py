"""Declines and errors.

A decline is a value (`Decline`): the request was understood and refused with a SPEC §5 code.
Exceptions are for bugs and infrastructure failures::

    GatewayError
    ├── Declined            carries a Decline out of deep code (parsers, policy)
    ├── BackendError
    │   ├── CoreUnavailable nothing reached the core
    │   ├── CoreTimeout     the core may have acted; outcome unknown
    │   └── CoreRejected    the core refused, with its reason
    ├── DependencyUnavailable  PostgreSQL or Redis unusable (-1 OVERLOADED)
    └── ConfigError         bad settings or keys at start-up
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gateway.domain.codes import ResultCode


@dataclass(frozen=True, slots=True)
class Decline:
    """A refusal with its SPEC §5 code and a message naming the problem (never secrets)."""

    code: ResultCode
    message: str
    output: dict[str, object] | None = None


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    code: ClassVar[ResultCode] = ResultCode.INTERNAL


class Declined(GatewayError):
    """Raised by pure parsing and policy code to hand a Decline to the pipeline."""

    def __init__(self, code: ResultCode, message: str, output: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.decline = Decline(code, message, output)


class BackendError(GatewayError):
    """The insurance core failed or refused."""


class CoreUnavailable(BackendError):
    """The core could not be reached; nothing was sent."""

    code = ResultCode.CORE_UNAVAILABLE


class CoreTimeout(BackendError):
    """The core may have acted but the answer was lost."""

    code = ResultCode.CORE_TIMEOUT


class CoreRejected(BackendError):
    """The core refused the request; `reason` is its own code."""

    code = ResultCode.CORE_REJECTED

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DependencyUnavailable(GatewayError):
    """PostgreSQL or Redis cannot be used right now: the request is refused as not settled (-1), never 500."""

    code = ResultCode.OVERLOADED


class ConfigError(GatewayError):
    """Settings or keys are unusable; the message lists every bad field."""
