"""`GET /admin/audit?before=SEQ&limit=N` (role `auditor`): the admin audit trail, newest first, a page at a time
(`next_before` asks for the next, older page)."""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.domain.operators import Role
from gateway.http.access import allow
from gateway.http.errors import json_error
from gateway.keys import AUDIT_TRAIL

audit_routes = web.RouteTableDef()
MAX_PAGE = 500
_DEFAULT_PAGE = 100


class _BadQuery(ValueError):
    pass


def _int(text: str | None, name: str, lo: int, hi: int) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or len(text) > 19 or not lo <= int(text) <= hi:
        raise _BadQuery(f"{name}: must be an integer in {lo}..{hi}")
    return int(text)


@audit_routes.get("/admin/audit")
@allow(Role.AUDITOR)
async def audit_page(request: web.Request) -> web.Response:
    """One page of the trail."""
    try:
        before = _int(request.query.get("before"), "before", 1, 2**62)
        limit = _int(request.query.get("limit"), "limit", 1, MAX_PAGE)
    except _BadQuery as exc:
        return json_error(400, str(exc))
    rows = await request.app[AUDIT_TRAIL].page(before=before, limit=limit or _DEFAULT_PAGE)
    entries = [
        {
            "seq": r.seq,
            "at": r.entry.at.isoformat(),
            "who": r.entry.who,
            "role": r.entry.role,
            "address": r.entry.address,
            "method": r.entry.method,
            "path": r.entry.path,
            "body_sha256": r.entry.body_sha256.hex(),
            "status": r.entry.status,
            "row_hash": r.row_hash.hex(),
        }
        for r in rows
    ]
    body = {"entries": entries, "next_before": rows[-1].seq if rows and rows[-1].seq > 1 else None}
    return web.Response(body=orjson.dumps(body), content_type="application/json")
