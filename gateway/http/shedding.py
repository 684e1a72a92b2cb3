"""Priority load shedding (issue 11 item 8): a bound on terminal requests in flight in this process; past a
level's share of it a request of that level is answered OVERLOADED (503, Retry-After) at once, never queued.

The callService handler asks the gate after reading the body, from its infno peeked by bytes
(`txtypes.priority_of`); `shedding_middleware` asks it for the blacklist distribution polls by path.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.domain.codes import ResultCode
from gateway.domain.priority import Priority
from gateway.http.errors import json_error, terminal_error
from gateway.http.load_gate import RETRY_AFTER_S, LoadGate
from gateway.keys import LOAD_GATE

DISTRIBUTION_PREFIX = "/blacklist/"


def shed_terminal(request: web.Request, gate: LoadGate, priority: Priority) -> web.Response:
    """The OVERLOADED envelope of a shed callService request (no MAC2: nothing was verified)."""
    resp = terminal_error(request, ResultCode.OVERLOADED, gate.message(priority))
    resp.headers["Retry-After"] = str(RETRY_AFTER_S)
    return resp


@web.middleware
async def shedding_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Blacklist distribution polls are the first shed: a terminal keeps its list and polls again."""
    if not request.path.startswith(DISTRIBUTION_PREFIX):
        return await handler(request)
    gate = request.app[LOAD_GATE]
    if not gate.enter(Priority.DISTRIBUTION):
        message = gate.message(Priority.DISTRIBUTION)
        return json_error(503, message, ResultCode.OVERLOADED.value, headers={"Retry-After": str(RETRY_AFTER_S)})
    try:
        return await handler(request)
    finally:
        gate.leave()
