"""Errors in one shape at the edge: the FSI envelope on terminal routes, `{"err_code", "err_msg"}` elsewhere.

`error_middleware(unavailable)` maps whatever escapes a handler (aiohttp's own 404/405/413, a dependency that
failed or stalled, a bug) to the route's shape; a bug is logged with a trace id that the answer carries.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from http import HTTPStatus

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.domain.codes import WIRE, ResultCode, http_status_of
from gateway.domain.errors import Declined, DependencyUnavailable, GatewayError
from gateway.keys import GATEWAY, METRICS, SETTINGS
from gateway.pipeline.reply import Outcome, RefIds, build_reply

log = logging.getLogger("onecard.http")

TERMINAL_PREFIX = "/fsi/"  # terminal routes (SPEC §2): every answer there is an FSI envelope
RETRY_AFTER = {"Retry-After": "1"}

# err_code of a JSON answer by HTTP status, where the handler names none (aiohttp's own errors among them).
JSON_CODES: dict[int, str] = {
    400: ResultCode.MALFORMED.value,
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: ResultCode.TOO_LARGE.value,
    429: ResultCode.RATE_LIMITED.value,
    500: ResultCode.INTERNAL.value,
    503: ResultCode.OVERLOADED.value,
}


def json_status_of(code: ResultCode) -> int:
    """The HTTP status of a ResultCode on a JSON route: the FSI table's when it is an error status; a refusal
    the FSI envelope answers 200 (infcode -2) is 400 here, a failure (-1) 503."""
    infcode, status = WIRE[code]
    if status >= 400:
        return status
    return 400 if infcode == -2 else 503


def json_error(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """The JSON error answer of admin, feed and distribution routes: `{"err_code": ..., "err_msg": ...}`."""
    err_code = code or JSON_CODES.get(status) or HTTPStatus(status).name
    body = orjson.dumps({"err_code": err_code, "err_msg": message})
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def terminal_error(
    request: web.Request, code: ResultCode, message: str, status: int | None = None, refid: str | None = None
) -> web.Response:
    """An FSI envelope (no MAC2: nothing was verified) answering a terminal request that never reached, or
    escaped, the pipeline; counted like the pipeline's answers, infno unknown."""
    gw = request.app.get(GATEWAY)
    if gw is not None:
        now = gw.d.now()
        refid = refid or gw.refids.next(now)
    else:  # not started: no node id yet, so the refusal carries the unleased one
        now = datetime.now(UTC)
        refid = refid or RefIds(request.app[SETTINGS].gateway_region, _Unleased()).next(now)
    reply = build_reply(Outcome(code, message), None, refid, now, now)
    request.app[METRICS].requests.labels("????", code.value).inc()
    return web.Response(body=reply.body, status=status or reply.status, content_type="application/json")


def error_middleware(unavailable: tuple[type[BaseException], ...], *, terminals: bool = True) -> Middleware:
    """The middleware; `unavailable` are the errors meaning "PostgreSQL or Redis cannot be used right now"
    (named by the composition root, so this module imports no driver). `terminals=False` (the admin listener,
    which serves no terminal route): every answer in the JSON shape."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        terminal = terminals and request.path.startswith(TERMINAL_PREFIX)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400 or request.writer.output_size > 0:
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
            message = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
            if terminal:
                resp = terminal_error(request, _terminal_code(exc.status), message, status=exc.status)
                resp.headers.update(headers)
                return resp
            return json_error(exc.status, message, headers=headers)
        except DependencyUnavailable as exc:
            return _unavailable(request, terminal, str(exc))
        except Declined as exc:
            if request.writer.output_size > 0:
                raise
            if terminal:
                return terminal_error(request, exc.decline.code, exc.decline.message)
            return json_error(json_status_of(exc.decline.code), exc.decline.message, exc.decline.code.value)
        except unavailable as exc:
            if request.writer.output_size > 0:
                raise
            why = "did not answer within the deadline" if isinstance(exc, TimeoutError) else type(exc).__name__
            return _unavailable(request, terminal, f"PostgreSQL or Redis unavailable ({why})")
        except Exception as exc:
            trace_id = _trace_id(request)
            route = request.match_info.route.resource
            where = route.canonical if route is not None else "?"  # the pattern: a path may carry a card number
            log.exception("INTERNAL trace_id=%s route=%s %s", trace_id, request.method, where)
            if request.writer.output_size > 0:  # the answer is half sent: only closing the connection is left
                raise
            message = f"internal error, trace id {trace_id}"
            code = exc.code if isinstance(exc, GatewayError) else ResultCode.INTERNAL
            if terminal:
                return terminal_error(request, code, message, refid=trace_id)
            return json_error(json_status_of(code), message, code.value)

    return middleware


def _unavailable(request: web.Request, terminal: bool, message: str) -> web.Response:
    if terminal:
        return terminal_error(request, ResultCode.OVERLOADED, message)
    return json_error(503, f"{message}: retry (a feed event sent again is applied once)", headers=RETRY_AFTER)


def _terminal_code(status: int) -> ResultCode:
    for code in (ResultCode.TOO_LARGE, ResultCode.RATE_LIMITED, ResultCode.OVERLOADED, ResultCode.INTERNAL):
        if http_status_of(code) == status:
            return code
    return ResultCode.INTERNAL if status >= 500 else ResultCode.MALFORMED


def _trace_id(request: web.Request) -> str:
    gw = request.app.get(GATEWAY)
    return gw.refids.next(gw.d.now()) if gw is not None else uuid.uuid4().hex


class _Unleased:
    node_id = None
    lapsed = True
