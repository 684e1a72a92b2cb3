"""HTTP handlers: thin wrappers over the pipeline (callService), health, readiness and metrics; errors that
escape any handler are answered by gateway/http/errors.py."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.domain.codes import ResultCode
from gateway.domain.operators import Role
from gateway.domain.txtypes import priority_of
from gateway.http.access import allow
from gateway.http.client_cert import client_institution
from gateway.http.errors import terminal_error
from gateway.http.shedding import shed_terminal
from gateway.keys import (
    BACKGROUND,
    DATABASE,
    GATEWAY,
    LIST_LOOKUP,
    LOAD_GATE,
    LOCAL_BLACKLIST,
    METRICS,
    NODE,
    SETTINGS,
    STATUS,
)

routes = web.RouteTableDef()
metrics_routes = web.RouteTableDef()  # issue 11 item 4: on the admin listener when one is configured
LATENCY_HEADER = "X-Gateway-Latency-Us"


@routes.post("/fsi/api/rsfComIfsService/callService")
async def call_service(request: web.Request) -> web.Response:
    """Every terminal transaction (SPEC §2, §3)."""
    t0 = time.perf_counter()
    gw = request.app[GATEWAY]
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _too_large(request, limit, t0)
    # Read to the end of the body (it may arrive in pieces), refusing as soon as it passes the limit.
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > limit:
            return _too_large(request, limit, t0)
        chunks.append(chunk)
    body = b"".join(chunks)
    # issue 11 item 2: with client certificates required, the envelope must name the certificate's institution
    bound = client_institution(request) if request.app[SETTINGS].tls_client_ca is not None else None
    # Load shedding (issue 11 item 8): judged by the infno alone, before any parsing; never queued.
    gate = request.app[LOAD_GATE]
    priority = priority_of(body)
    if not gate.enter(priority):
        return shed_terminal(request, gate, priority)
    try:
        reply, core_s = await gw.handle(body, client_institution=bound)
    finally:
        gate.leave()
    us = int((time.perf_counter() - t0 - core_s) * 1e6)
    headers = {LATENCY_HEADER: str(max(us, 0))}
    if reply.retry_after is not None:
        headers["Retry-After"] = str(reply.retry_after)
    return web.Response(body=reply.body, status=reply.status, content_type="application/json", headers=headers)


def _too_large(request: web.Request, limit: int, t0: float) -> web.Response:
    resp = terminal_error(request, ResultCode.TOO_LARGE, f"body is larger than {limit} bytes")
    # The unread body stays on the socket: close the connection rather than drain up to gigabytes.
    resp.headers[LATENCY_HEADER] = str(int((time.perf_counter() - t0) * 1e6))
    resp.headers["Connection"] = "close"
    return resp


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready: PostgreSQL, Redis and keys usable, the blacklist fresh, a node id held and no background loop
    waiting to restart (SPEC §2). Each check
    is bounded by its dependency's deadline; a failing one names itself and why."""
    checks: dict[str, str] = {}
    try:
        await request.app[DATABASE].ping()
        checks["postgres"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the name says which
        checks["postgres"] = f"down: {_why(exc)}"
    try:
        loaded = await request.app[LIST_LOOKUP].is_loaded()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"down: {_why(exc)}"
        loaded = False
    local = request.app[LOCAL_BLACKLIST]
    # Fresh: Redis holds the lists and this process has proved its own copy current (SPEC §2 readiness).
    checks["blacklist"] = "ok" if loaded and local.current else ("loading" if local.version is None else "stale")
    checks["keys"] = request.app[STATUS].get("keys", "missing")
    node = request.app[NODE]
    checks["node"] = "lapsed: no node id held" if node.lapsed else "ok"
    checks["background"] = request.app[BACKGROUND].status
    # Issue 11 item 9: shown, not a readiness condition (clear storage is an explicit setting, not a fault).
    checks["journal_encryption"] = request.app[STATUS].get("journal_encryption", "ok")
    ready = all(v == "ok" for k, v in checks.items() if k != "journal_encryption")
    body = {"ready": ready, "checks": checks, "node_id": node.node_id}
    return web.json_response(body, status=200 if ready else 503)


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the deadline"
    return type(exc).__name__


@metrics_routes.get("/metrics")
@allow(Role.MONITOR, Role.AUDITOR, Role.OPERATOR)  # checked on the admin listener only (README "Admin listener")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: this application's registry, or under `serve --workers N` all workers' sum."""
    resp = web.Response(body=request.app[METRICS].render())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


@web.middleware
async def latency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every response, errors included, carries X-Gateway-Latency-Us."""
    t0 = time.perf_counter()
    try:
        resp: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        exc.headers.setdefault(LATENCY_HEADER, str(int((time.perf_counter() - t0) * 1e6)))
        raise
    if LATENCY_HEADER not in resp.headers:
        resp.headers[LATENCY_HEADER] = str(int((time.perf_counter() - t0) * 1e6))
    return resp
