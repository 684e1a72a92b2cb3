"""Builds the FSI response envelope (SPEC §3) as bytes, with MAC2 whenever the request's MAC verified."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson

from gateway.domain.codes import ResultCode, http_status_of, infcode_of
from gateway.domain.security import Verified


@dataclass(slots=True)
class Outcome:
    """What a transaction decided: a code, a message, an output, and the response amounts MAC2 covers."""

    code: ResultCode = ResultCode.OK
    message: str | None = None
    output: Any = None
    acct: int = 0
    cash: int = 0
    fund: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    retry_after: int | None = None  # whole seconds, sent as Retry-After (RATE_LIMITED)


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes to send, their HTTP status and the code for metrics (and a Retry-After in seconds, if any)."""

    status: int
    body: bytes
    code: ResultCode
    retry_after: int | None = None


class NodeId(Protocol):
    """This process's node id (adapters.pg_nodes.NodeLease): unique among live processes on one database."""

    @property
    def node_id(self) -> int | None: ...

    @property
    def lapsed(self) -> bool:
        """True while the process may not mint with its id (never leased, or not renewed in time)."""
        ...


# One sequence per process, shared by every RefIds in it (the pipeline's and journal recovery's): two
# counters under one node id could hand out the same id in the same second.
_SEQ = itertools.count()
UNLEASED = 9999  # the node id of ids minted while none is held; leases go up to 9998


class RefIds:
    """`inf_refmsgid`: gateway region(6) + yyyyMMddHHmmss + serial(10), the serial being this process's node id
    (4 digits) and a process-wide sequence (6 digits): unique across every host and process sharing the
    database, up to a million ids per second per process."""

    def __init__(self, region: str, node: NodeId) -> None:
        self.region = region
        self.node = node

    def next(self, now: datetime) -> str:
        node = self.node.node_id
        if node is None:  # no id held: only the refusals the gateway then sends (never journaled) carry 9999
            node = UNLEASED
        return f"{self.region}{now:%Y%m%d%H%M%S}{node:04d}{next(_SEQ) % 1_000_000:06d}"


def stamp(dt: datetime) -> str:
    """`yyyyMMddHHmmssSSS`."""
    return f"{dt:%Y%m%d%H%M%S}{dt.microsecond // 1000:03d}"


def build_reply(outcome: Outcome, verified: Verified | None, refid: str, received: datetime, now: datetime) -> Reply:
    """Encode the envelope; the same bytes are journaled and sent."""
    infcode = infcode_of(outcome.code)
    ok = outcome.code is ResultCode.OK
    body: dict[str, Any] = {
        "infcode": infcode,
        "inf_refmsgid": refid,
        "refmsg_time": stamp(received),
        "respond_time": stamp(now),
        "err_code": None if ok else outcome.code.value,
        "err_msg": None if ok else outcome.message,
        "output": outcome.output,
    }
    if verified is not None:
        body["dev_safe_info"] = {"mac2": verified.mac2(infcode, outcome.acct, outcome.cash, outcome.fund)}
    return Reply(http_status_of(outcome.code), orjson.dumps(body), outcome.code, outcome.retry_after)
