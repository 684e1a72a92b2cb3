"""The clock port: the pipeline's "now" is injected, so tests can move time without touching the database."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in the deployment's zone (`adapters.system_clock.SystemClock`)."""

    @property
    def tz(self) -> tzinfo:
        """The deployment's zone: local dates (card validity, default-PIN days, statements) are taken in it."""
        ...

    def now(self) -> datetime:
        """The current time, aware, in `tz`."""
        ...
