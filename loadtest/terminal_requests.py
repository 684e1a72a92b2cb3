"""What the terminal's per-flow request builders share (`terminal_visits`, `terminal_stays`): the terminal's
`build` and zone, a request time stamp, and yuan on the wire."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadtest.terminal import Built


def yuan(fen_: int) -> float:
    """Fen to a JSON number in yuan."""
    return float(Decimal(fen_) / 100)


class Requests:
    """A mixin of `loadtest.terminal.Terminal`; `build` and `tz` are the terminal's."""

    if TYPE_CHECKING:
        build: Callable[..., Built]
        tz: tzinfo

    def _stamp(self, kw: dict[str, Any]) -> str:
        """`yyyy-MM-dd HH:mm:ss` of the request's `now` (or the terminal's clock)."""
        return f"{kw.get('now') or datetime.now(self.tz):%Y-%m-%d %H:%M:%S}"
