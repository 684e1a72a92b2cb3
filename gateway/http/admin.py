"""Minimal admin API (bearer token): blacklist entries for cards and persons (SPEC §8.1).

POST   /admin/blacklist/cards     {"card_sn", "reason" 01..07, "source"}
DELETE /admin/blacklist/cards/{card_sn}
POST   /admin/blacklist/persons   {"psn_no", "reason" 11|12, "source"}
DELETE /admin/blacklist/persons/{psn_no}
The list of record (PostgreSQL) changes first, then Redis; both before the answer.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

import orjson
from aiohttp import web

from gateway.domain.feeds import CARD_REASONS, PERSON_REASONS
from gateway.domain.registry import mask
from gateway.http.errors import json_error
from gateway.http.feeds import FEED_AFTER_COMMIT
from gateway.keys import LIST_WRITER, SETTINGS

admin_routes = web.RouteTableDef()
_CARD_SN = re.compile(r"[0-9]{6}D156000005[0-9A-F]{16}")
_PSN_NO = re.compile(r"[0-9A-Za-z]{1,30}")
_SOURCE = re.compile(r"[0-9]{6}")


def _error(status: int, message: str) -> web.Response:
    return json_error(status, message)


def _authorized(request: web.Request) -> web.Response | None:
    s = request.app[SETTINGS]
    if s.admin_token is None:
        if s.dev_mode:
            return None  # development mode without a token: open, and the start-up log says so
        return _error(403, "admin API disabled: set ONECARD_ADMIN_TOKEN")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {s.admin_token}".encode()):
        return _error(401, "missing or wrong bearer token")
    return None


async def _json(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, "body: not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "body: must be a JSON object")
    return body


@admin_routes.post("/admin/blacklist/cards")
async def add_card(request: web.Request) -> web.Response:
    """Blacklist a card."""
    if (denied := _authorized(request)) is not None:
        return denied
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
    await request.app[LIST_WRITER].set_card_entry(
        card_sn, body["reason"], source, after_commit=request.app.get(FEED_AFTER_COMMIT)
    )
    return web.json_response({"card_sn": mask(card_sn), "reason": body["reason"], "listed": True})


@admin_routes.delete("/admin/blacklist/cards/{card_sn}")
async def remove_card(request: web.Request) -> web.Response:
    """Take a card off the list."""
    if (denied := _authorized(request)) is not None:
        return denied
    card_sn = request.match_info["card_sn"].upper()
    if not _CARD_SN.fullmatch(card_sn):
        return _error(400, "card_sn: must be 32 hex: region(6) + D156000005 + 16-hex serial")
    existed = await request.app[LIST_WRITER].set_card_entry(
        card_sn, None, "operator", after_commit=request.app.get(FEED_AFTER_COMMIT)
    )
    return web.json_response({"card_sn": mask(card_sn), "listed": False, "was_listed": existed})


@admin_routes.post("/admin/blacklist/persons")
async def add_person(request: web.Request) -> web.Response:
    """Put a person on the list (arrears, suspension)."""
    if (denied := _authorized(request)) is not None:
        return denied
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
    await request.app[LIST_WRITER].set_person_entry(
        psn_no, body["reason"], source, after_commit=request.app.get(FEED_AFTER_COMMIT)
    )
    return web.json_response({"psn_no": mask(psn_no), "reason": body["reason"], "listed": True})


@admin_routes.delete("/admin/blacklist/persons/{psn_no}")
async def remove_person(request: web.Request) -> web.Response:
    """Take a person off the list."""
    if (denied := _authorized(request)) is not None:
        return denied
    psn_no = request.match_info["psn_no"]
    if not _PSN_NO.fullmatch(psn_no):
        return _error(400, "psn_no: must be 1..30 letters or digits")
    existed = await request.app[LIST_WRITER].set_person_entry(
        psn_no, None, "operator", after_commit=request.app.get(FEED_AFTER_COMMIT)
    )
    return web.json_response({"psn_no": mask(psn_no), "listed": False, "was_listed": existed})
