"""HTTP handlers: thin wrappers over the pipeline (callService), health, readiness and metrics."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.domain.codes import ResultCode
from gateway.keys import GATEWAY, LOCAL_BLACKLIST, METRICS, PG_POOL, REDIS_BLACKLIST, SETTINGS, STATUS
from gateway.pipeline.reply import Outcome, build_reply

routes = web.RouteTableDef()
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
    reply, core_s = await gw.handle(body)
    us = int((time.perf_counter() - t0 - core_s) * 1e6)
    return web.Response(
        body=reply.body,
        status=reply.status,
        content_type="application/json",
        headers={LATENCY_HEADER: str(max(us, 0))},
    )


def _too_large(request: web.Request, limit: int, t0: float) -> web.Response:
    gw = request.app[GATEWAY]
    now = gw.d.now()
    reply = build_reply(
        Outcome(ResultCode.TOO_LARGE, f"body is larger than {limit} bytes"),
        None,
        gw.refids.next(now),
        now,
        now,
    )
    gw.d.metrics.requests.labels("????", ResultCode.TOO_LARGE.value).inc()
    us = int((time.perf_counter() - t0) * 1e6)
    # The unread body stays on the socket: close the connection rather than drain up to gigabytes.
    return web.Response(
        body=reply.body,
        status=reply.status,
        content_type="application/json",
        headers={LATENCY_HEADER: str(us), "Connection": "close"},
    )


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready: PostgreSQL, Redis and keys usable and the blacklist loaded (SPEC §2)."""
    checks: dict[str, str] = {}
    try:
        await request.app[PG_POOL].fetchval("SELECT 1", timeout=1.0)
        checks["postgres"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the name says which
        checks["postgres"] = f"down: {type(exc).__name__}"
    try:
        loaded = await request.app[REDIS_BLACKLIST].version() is not None
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"down: {type(exc).__name__}"
        loaded = False
    local = request.app[LOCAL_BLACKLIST]
    # Fresh: Redis holds the lists and this process has proved its own copy current (SPEC §2 readiness).
    checks["blacklist"] = "ok" if loaded and local.current else ("loading" if local.version is None else "stale")
    checks["keys"] = request.app[STATUS].get("keys", "missing")
    ready = all(v == "ok" for v in checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


@routes.get("/metrics")
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
