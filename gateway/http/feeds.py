"""Admin feeds (SPEC §8.3): card and person events, and the streamed bulk import. Roles `operator` and `feed`
(gateway/http/access.py).

POST /admin/blacklist/events                 one event object or a JSON array of at most 10,000
     → {"results": [{"index", "status", "reason", "version"}], "accepted", "duplicate", "rejected"}
POST /admin/blacklist/import?format=csv|jsonl[&source=REGION]
     body: the file, streamed → NDJSON: one result per line `{"line", "status", "reason", "version"}`, then
     `{"summary": {...}}`
An operator may send as any source; a feed identity (a named `feed` operator, or an environment feed token,
`feed_tokens` "REGION=TOKEN,...") only as its own region, which also fills an empty `source`. The change log
records the identity as each change's actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.domain.feeds import FeedError, FeedEvent, parse_event
from gateway.domain.feeds.batch import EventResult
from gateway.domain.feeds.codec import FORMATS, MAX_BYTES, MAX_LINES, ImportLimits
from gateway.domain.operators import Role
from gateway.feeds_import import FeedImport
from gateway.http.access import OPERATOR, allow, hashed, read_body, record_now
from gateway.http.errors import json_error
from gateway.keys import FEED_WRITER, SETTINGS

feed_routes = web.RouteTableDef()
FEED_BATCH_S = 30.0  # the deadline of one batch of events (up to 10,000, one transaction): FEED_WRITER has it
AfterCommit = Callable[[], Awaitable[None]]
# Set by the composition root to push committed changes to Redis (the follower's catch-up from the change log).
FEED_AFTER_COMMIT: web.AppKey[AfterCommit] = web.AppKey("feed_after_commit")
# For bulk imports: nudge the publisher instead of waiting for Redis after every batch (it catches up alone).
FEED_NUDGE: web.AppKey[AfterCommit] = web.AppKey("feed_nudge")
MAX_EVENTS = 10_000
MAX_EVENTS_BYTES = 16 * 1024 * 1024
_REGION_LEN = 6


def _error(status: int, message: str) -> web.Response:
    return json_error(status, message)


@dataclass(frozen=True, slots=True)
class _Actor:
    name: str  # logged as the actor of each change
    scope: str | None  # None: the operator, any source


def _actor(request: web.Request) -> _Actor:
    who = request[OPERATOR]
    return _Actor(who.name, who.region if who.role is Role.FEED and not who.everything else None)


def _scope(request: web.Request, actor: _Actor) -> str | web.Response | None:
    """The uploader's region: the token's, or for the operator the optional `source` query parameter."""
    asked = request.query.get("source")
    if asked is not None and (len(asked) != _REGION_LEN or not asked.isdigit()):
        return _error(400, "source: must be the 6-digit region code of the sender")
    if actor.scope is not None and asked not in (None, actor.scope):
        return _error(403, f"source: this token sends for region {actor.scope} only")
    return actor.scope or asked


def _after_commit(request: web.Request) -> AfterCommit | None:
    # The app publishes each committed batch to Redis at once; without it, the publisher loop does within 0.25 s.
    return request.app.get(FEED_AFTER_COMMIT)


def _result(r: EventResult) -> dict[str, Any]:
    return {"index": r.index, "status": r.status, "reason": r.reason, "version": r.version}


@feed_routes.post("/admin/blacklist/events")
@allow(Role.OPERATOR, Role.FEED)
async def post_events(request: web.Request) -> web.Response:
    """Card and person events; a resent event or batch is `duplicate` and changes nothing."""
    actor = _actor(request)
    body = await read_body(request, MAX_EVENTS_BYTES)
    if body is None:
        return _error(413, f"body: larger than {MAX_EVENTS_BYTES} bytes; use /admin/blacklist/import")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _error(400, "body: not valid JSON")
    records = [data] if isinstance(data, dict) else data
    if not isinstance(records, list) or not records:
        return _error(400, "body: must be an event object or a non-empty array of them")
    if len(records) > MAX_EVENTS:
        return _error(413, f"body: at most {MAX_EVENTS} events; use /admin/blacklist/import")
    parsed: list[FeedEvent | str] = []
    for record in records:
        if not isinstance(record, dict):
            parsed.append("event: must be a JSON object")
            continue
        try:
            event = parse_event(record, default_source=actor.scope)
        except FeedError as exc:
            parsed.append(str(exc))
            continue
        if actor.scope is not None and event.source != actor.scope:
            parsed.append(f"source: this token sends for region {actor.scope} only")
        else:
            parsed.append(event)
    events = [p for p in parsed if not isinstance(p, str)]
    done: list[EventResult] = []
    if events:
        writer = request.app[FEED_WRITER].acting_as(actor.name)
        done = await writer.apply_events(events, after_commit=_after_commit(request))
    applied = iter(done)
    results: list[dict[str, Any]] = []
    for i, p in enumerate(parsed):
        if isinstance(p, str):
            results.append({"index": i, "status": "rejected", "reason": p, "version": None})
        else:
            results.append({**_result(next(applied)), "index": i})
    counts = {k: sum(1 for r in results if r["status"] == k) for k in ("accepted", "duplicate", "rejected")}
    return web.json_response({"results": results, **counts}, dumps=lambda v: orjson.dumps(v).decode())


@feed_routes.post("/admin/blacklist/import")
@allow(Role.OPERATOR, Role.FEED)
async def post_import(request: web.Request) -> web.StreamResponse:
    """A whole feed file, streamed in and answered line by line as NDJSON."""
    actor = _actor(request)
    fmt = request.query.get("format")
    if fmt not in FORMATS:
        return _error(400, "format: must be csv or jsonl")
    scope = _scope(request, actor)
    if isinstance(scope, web.Response):
        return scope
    s = request.app[SETTINGS]
    limits = ImportLimits(
        max_lines=int(getattr(s, "import_max_lines", MAX_LINES)),
        max_bytes=int(getattr(s, "import_max_bytes", MAX_BYTES)),
    )
    if request.content_length is not None and request.content_length > limits.max_bytes:
        return _error(413, f"body: larger than {limits.max_bytes} bytes")
    final = _after_commit(request)
    hook = request.app.get(FEED_NUDGE) or final
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    out = bytearray()
    writer = request.app[FEED_WRITER].acting_as(actor.name)
    run = FeedImport(writer, fmt=fmt, source_scope=scope, after_commit=hook, limits=limits)
    async for result in run.results(hashed(request)):
        if "summary" in result:
            if final is not None:
                # Batches were handed to the publisher as they committed; before the summary, everything is out.
                await final()
            await record_now(request, 200)  # the audit row, with the whole body's digest, before the summary
        out += orjson.dumps(result) + b"\n"
        if len(out) >= 1 << 16:
            await resp.write(bytes(out))
            out.clear()
    await resp.write(bytes(out))
    await resp.write_eof()
    return resp
