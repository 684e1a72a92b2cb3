"""Access to the admin surface (issue 11 items 5, 6). Every admin route declares the roles it allows
(`@allow(Role...)`); `access_middleware` resolves the bearer token (`Identities`), answers 401 (no, unknown,
revoked or rotated-away token) or 403 (a role the route does not allow), and appends every admin request to
the audit trail before its answer goes out (a streamed answer: before its last bytes, `record_now`)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.domain.audit import AuditEntry
from gateway.domain.operators import ANONYMOUS, Operator, Role
from gateway.domain.registry import mask
from gateway.http.errors import RETRY_AFTER, json_error
from gateway.keys import AUDIT_TRAIL, IDENTITIES

ADMIN_PREFIX = "/admin/"
METRICS_PATH = "/metrics"
_ROLES = "_onecard_roles"
F = TypeVar("F", bound=Callable[..., Any])


def allow(*roles: Role) -> Callable[[F], F]:
    """Declare the roles that may call a handler (apply below the route decorator)."""

    def mark(fn: F) -> F:
        setattr(fn, _ROLES, frozenset(roles))
        return fn

    return mark


def roles_of(handler: object) -> frozenset[Role] | None:
    """The roles a handler declared, None if it declared none (then it is refused: fail closed)."""
    roles = getattr(handler, _ROLES, None)
    return roles if isinstance(roles, frozenset) else None


class _Audit:
    """What the trail records of one request, filled in as it is handled."""

    def __init__(self) -> None:
        self.body = hashlib.sha256()
        self.who: Operator | None = None
        self.written = False


OPERATOR = web.RequestKey("operator", Operator)
_AUDIT = web.RequestKey("audit", _Audit)


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body (hashed for the audit trail), or None when it is larger than `limit`."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in hashed(request):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def hashed(request: web.Request) -> AsyncIterator[bytes]:
    """The body as it streams in, each chunk added to the audit trail's digest of it."""
    audit = request.get(_AUDIT)
    async for chunk in request.content.iter_chunked(1 << 16):
        if audit is not None:
            audit.body.update(chunk)
        yield chunk


async def record_now(request: web.Request, status: int) -> None:
    """For a streamed answer: append the audit row now, before its last bytes are sent."""
    audit = request.get(_AUDIT)
    if audit is not None and not audit.written:
        await _append(request, audit, status)


async def _append(request: web.Request, audit: _Audit, status: int) -> None:
    who = audit.who
    path = request.path
    for value in request.match_info.values():  # a card number or person id in the path is masked, as in logs
        path = path.replace(value, mask(value))
    if request.query_string:
        path += "?" + request.query_string
    entry = AuditEntry(
        at=datetime.now(UTC),
        who=who.name if who is not None else ANONYMOUS,
        role=who.role.value if who is not None and not who.everything else ("*" if who is not None else None),
        address=request.remote or "-",
        method=request.method,
        path=path[:2048],
        body_sha256=audit.body.digest(),
        status=status,
    )
    await request.app[AUDIT_TRAIL].append(entry)
    audit.written = True


def access_middleware(unavailable: tuple[type[BaseException], ...], *, guard_metrics: bool) -> Middleware:
    """The middleware. `guard_metrics`: /metrics needs monitor, auditor or operator too (the admin listener);
    `unavailable` are the errors meaning PostgreSQL cannot be used now (named by the composition root)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        metrics = path == METRICS_PATH
        if not (path.startswith(ADMIN_PREFIX) or (guard_metrics and metrics)):
            return await handler(request)
        audit = request[_AUDIT] = _Audit()
        try:
            audit.who = who = await request.app[IDENTITIES].resolve(request.headers.get("Authorization"))
            resp = await _decide(request, handler, who)
            if not audit.written and not (metrics and resp.status < 400):  # a good scrape is not recorded
                await _append(request, audit, resp.status)
        except unavailable:
            if request.writer.output_size > 0:
                raise
            return json_error(
                503, "PostgreSQL unavailable: the request could not be authenticated or recorded: retry",
                headers=RETRY_AFTER,
            )  # fmt: skip
        return resp

    return middleware


async def _decide(request: web.Request, handler: Handler, who: Operator | None) -> web.StreamResponse:
    if request.match_info.http_exception is not None:  # 404 or 405: the router's answer, in the JSON shape
        return await handler(request)
    roles = roles_of(request.match_info.handler)
    if roles is None:
        return json_error(403, "this admin route declares no role: refused")
    if who is None:
        return json_error(
            401, "missing, unknown, revoked or rotated bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    if not who.may(roles):
        need = ", ".join(sorted(r.value for r in roles))
        return json_error(403, f"{who.name} ({who.role.value}) may not {request.method} this route: needs {need}")
    request[OPERATOR] = who
    return await handler(request)
