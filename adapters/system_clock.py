"""The system's wall clock, implementing `gateway.ports.clock.Clock`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo


@dataclass(frozen=True, slots=True)
class SystemClock:
    """`datetime.now` in the deployment's zone."""

    tz: tzinfo

    def now(self) -> datetime:
        """The current time in `tz`."""
        return datetime.now(self.tz)
