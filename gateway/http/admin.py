"""Minimal admin API (role `operator`, gateway/http/access.py): blacklist entries for cards and persons (SPEC §8.1).

POST   /admin/blacklist/cards     {"card_sn", "reason" 01..07, "source"}
DELETE /admin/blacklist/cards/{card_sn}
POST   /admin/blacklist/persons   {"psn_no", "reason" 11|12, "source"}
DELETE /admin/blacklist/persons/{psn_no}
The list of record (PostgreSQL) changes first, then Redis; both before the answer. The change log records the
authenticated identity as the change's actor; `source` stays the sender's claimed region.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from gateway.domain.feeds import CARD_REASONS, PERSON_REASONS
from gateway.domain.operators import Role
from gateway.domain.registry import mask
from gateway.http.access import OPERATOR, allow, read_body
from gateway.http.errors import json_error
from gateway.http.feeds import FEED_AFTER_COMMIT
from gateway.keys import LIST_WRITER, SETTINGS
from gateway.ports.blacklist import FeedWriter

admin_routes = web.RouteTableDef()
_CARD_SN = re.compile(r"[0-9]{6}D156000005[0-9A-F]{16}")
_PSN_NO = re.compile(r"[0-9A-Za-z]{1,30}")
_SOURCE = re.compile(r"[0-9]{6}")


def _error(status: int, message: str) -> web.Response:
    return json_error(status, message)


def _writer(request: web.Request) -> FeedWriter:
    return request.app[LIST_WRITER].acting_as(request[OPERATOR].name)


async def _json(request: web.Request) -> dict[str, Any] | web.Response:
    raw = await read_body(request, request.app[SETTINGS].max_body_bytes)
    if raw is None:
        return _error(413, f"body: larger than {request.app[SETTINGS].max_body_bytes} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _error(400, "body: not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "body: must be a JSON object")
    return body


@admin_routes.post("/admin/blacklist/cards")
@allow(Role.OPERATOR)
async def add_card(request: web.Request) -> web.Response:
    """Blacklist a card."""
    body = await _json(request)
    if isinstance(body, web.Response):
        return body
    card_sn = str(body.get("card_sn", "")).upper()
    if not _CARD_SN.fullmatch(card_sn):
        return _error(400, "card_sn: must be 32 hex: region(6) + D156000005 + 16-hex serial")
    if body.get("reason") not in CARD_REASONS:
        return _error(400, "reason: must be one of " + ", ".join(sorted(CARD_REASONS)))
    source = body.get("source")
    if not isinstance(source, str) or not _SOURCE.fullmatch(source):
        return _error(400, "source: must be the 6-digit region code of the sender")
    await _writer(request).set_card_entry(
        card_sn, body["reason"], source, after_commit=request.app.get(FEED_AFTER_COMMIT)
    )
    return web.json_response({"card_sn": mask(card_sn), "reason": body["reason"], "listed": True})


@admin_routes.delete("/admin/blacklist/cards/{card_sn}")
@allow(Role.OPERATOR)
async def remove_card(request: web.Request) -> web.Response:
    """Take a card off the list."""
    card_sn = request.match_info["card_sn"].upper()
    if not _CARD_SN.fullmatch(card_sn):
        return _error(400, "card_sn: must be 32 hex: region(6) + D156000005 + 16-hex serial")
    existed = await _writer(request).set_card_entry(
        card_sn, None, "operator", after_commit=request.app.get(FEED_AFTER_COMMIT)
    )
    return web.json_response({"card_sn": mask(card_sn), "listed": False, "was_listed": existed})


@admin_routes.post("/admin/blacklist/persons")
@allow(Role.OPERATOR)
async def add_person(request: web.Request) -> web.Response:
    """Put a person on the list (arrears, suspension)."""
    body = await _json(request)
    if isinstance(body, web.Response):
        return body
    psn_no = body.get("psn_no")
    if not isinstance(psn_no, str) or not _PSN_NO.fullmatch(psn_no):
        return _error(400, "psn_no: must be 1..30 letters or digits")
    if body.get("reason") not in PERSON_REASONS:
        return _error(400, "reason: must be 11 or 12")
    source = body.get("source")
    if not isinstance(source, str) or not _SOURCE.fullmatch(source):
        return _error(400, "source: must be the 6-digit region code of the sender")
    await _writer(request).set_person_entry(
        psn_no, body["reason"], source, after_commit=request.app.get(FEED_AFTER_COMMIT)
    )
    return web.json_response({"psn_no": mask(psn_no), "reason": body["reason"], "listed": True})


@admin_routes.delete("/admin/blacklist/persons/{psn_no}")
@allow(Role.OPERATOR)
async def remove_person(request: web.Request) -> web.Response:
    """Take a person off the list."""
    psn_no = request.match_info["psn_no"]
    if not _PSN_NO.fullmatch(psn_no):
        return _error(400, "psn_no: must be 1..30 letters or digits")
    existed = await _writer(request).set_person_entry(
        psn_no, None, "operator", after_commit=request.app.get(FEED_AFTER_COMMIT)
    )
    return web.json_response({"psn_no": mask(psn_no), "listed": False, "was_listed": existed})
