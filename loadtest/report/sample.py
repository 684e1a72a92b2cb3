"""One request as the load tester saw it, what its outcome means, and the nearest-rank percentile.

Outcomes
    ``"OK"``, an err_code, ``"CONNECT_ERROR"``, ``"HTTP_ERROR"`` or ``"HTTP_<status>"`` (the runner names a
    non-JSON answer by its status). Errors are ``CONNECT_ERROR`` and every ``HTTP_*`` outcome. ``NO_TERMINAL``
    (an arrival that found no free terminal, so nothing was sent) is *not sent*.

Percentiles
    Nearest-rank: for ``n`` sorted values ``x[1] <= ... <= x[n]``, percentile ``p`` is ``x[ceil(p/100 * n)]``
    (``x[1]`` for ``p = 0``), computed with exact fractions, so every percentile is a latency that was actually
    observed and ``max`` equals ``p100``. With no values every figure is ``None``. Latency figures cover every
    request sent in the window, errors included (a connection error's ``whole_ms`` is the time until it failed);
    gateway figures cover the samples that carry an ``X-Gateway-Latency-Us`` value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

ERROR_OUTCOMES = ("CONNECT_ERROR", "HTTP_ERROR")  # always listed in errors.by_kind; any HTTP_* is an error too
NOT_SENT_OUTCOMES = frozenset({"NO_TERMINAL"})


@dataclass(frozen=True, slots=True)
class Sample:
    """One request as the load tester saw it."""

    t: float  # seconds since the run started when the request was sent
    whole_ms: float  # whole request latency seen by the client, ms
    gateway_ms: float | None  # X-Gateway-Latency-Us header / 1000, None if absent (e.g. connection error)
    scenario: str  # e.g. "outpatient_settle", "person_info", "forged_mac"
    infno: str  # "2207", ...
    outcome: str  # "OK" or the err_code ("MAC_INVALID", ...), or "HTTP_ERROR"/"CONNECT_ERROR"
    expected: bool  # the outcome was one the scenario expects
    mac2_ok: bool | None  # MAC2 checked: True/False; None when no MAC2 was expected


def percentile(sorted_values: Sequence[float], p: float | str | Fraction) -> float | None:
    """The nearest-rank percentile ``p`` (0..100) of already sorted values, or None when there are none.

    ``p`` may be a string ("99.9") or a Fraction to keep it exact; a float is converted through its repr.
    """
    n = len(sorted_values)
    if n == 0:
        return None
    frac = Fraction(p) if not isinstance(p, float) else Fraction(repr(p))
    if not 0 <= frac <= 100:
        raise ValueError(f"percentile out of range: {p!r}")
    rank = math.ceil(frac * n / 100)
    return sorted_values[max(rank, 1) - 1]


def is_error(outcome: str) -> bool:
    """A transport or HTTP-level failure: CONNECT_ERROR, HTTP_ERROR or HTTP_<status>."""
    return outcome == "CONNECT_ERROR" or outcome.startswith("HTTP_")


def only_sent(samples: Iterable[Sample]) -> list[Sample]:
    """The samples that were actually sent (not NO_TERMINAL arrivals)."""
    return [s for s in samples if s.outcome not in NOT_SENT_OUTCOMES]
