"""Load-shedding priority (issue 11 item 8): which requests a process past its bound on requests in flight
refuses first, and a cheap peek at a body's infno so a shed request is not parsed.

Each level is admitted while fewer than its share of `max_in_flight` are in flight; ESSENTIAL is never shed.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum


class Priority(IntEnum):
    """Lowest first: the order in which load is shed (a column of the transaction table, `TxType.priority`)."""

    DISTRIBUTION = 0  # GET /blacklist/*: a terminal polls again, and keeps its last list meanwhile
    QUERY = 1  # 1101, 2001, 3201/3202: reads, nothing owed, retried at no cost
    PRESETTLE = 2  # 2206, 2101: a price quote before the settlement
    ESSENTIAL = 3  # never shed: sign-in/out, settlements (and their retries), cancels, reversals


# The share of max_in_flight under which each sheddable level is still admitted.
ADMIT_BELOW: Mapping[Priority, float] = {
    Priority.DISTRIBUTION: 0.5,
    Priority.QUERY: 0.75,
    Priority.PRESETTLE: 1.0,
}


def admits(priority: Priority, in_flight: int, max_in_flight: int) -> bool:
    """Whether a request of `priority` may start while `in_flight` others are running."""
    share = ADMIT_BELOW.get(priority)
    return share is None or in_flight < max_in_flight * share


_KEY = b'"infno"'
_SPACE = b" \t\r\n"


def peek_infno(body: bytes) -> str | None:
    """The top-level `"infno": "...."` of a request body found by a byte search, without parsing the JSON;
    None when it is absent, escaped, or appears more than once (the caller then parses the body)."""
    at = body.find(_KEY)
    if at < 0 or body.find(_KEY, at + len(_KEY)) >= 0:
        return None
    i = at + len(_KEY)
    n = len(body)
    while i < n and body[i] in _SPACE:
        i += 1
    if i >= n or body[i] != 0x3A:  # ':'
        return None
    i += 1
    while i < n and body[i] in _SPACE:
        i += 1
    if i >= n or body[i] != 0x22:  # '"'
        return None
    end = body.find(b'"', i + 1)
    if end < 0 or end - i > 9:  # an infno is 4 digits; anything long is not one
        return None
    value = body[i + 1 : end]
    if b"\\" in value:
        return None
    return value.decode("ascii", "replace")
