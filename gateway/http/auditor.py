"""The auditor's reads over HTTP (issue 11 item 5, role `auditor`): `GET /admin/journal/verify?day=YYYY-MM-DD`
(the journal's hash chain recomputed: what `onecard journal verify` prints, as JSON) and `GET /admin/reconcile?
institution=CODE&from=DATE&to=DATE[&core=1]` (the report of `onecard reconcile --json`; with core=1 against the
core's ledger through the core port). Both read on the bulk deadline; a bad parameter is 400 naming it."""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web

from gateway.domain.codes import ResultCode
from gateway.domain.errors import BackendError, CoreRejected
from gateway.domain.operators import Role
from gateway.http.access import allow
from gateway.http.errors import json_error
from gateway.keys import GATEWAY, JOURNAL_VERIFIER, RECONCILE_READS, SETTINGS
from gateway.reconcile_report import core_dates, reconcile

auditor_routes = web.RouteTableDef()
DEFAULT_STALE_S = 60.0  # as `onecard journal verify --stale-s`
MAX_RECONCILE_DAYS = 366  # one report reads every settlement of the range: at most a year of one institution
CORE_LEDGER_S = 30.0  # the core's settlement download, as `onecard reconcile --core-url`
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CODE = re.compile(r"[A-Za-z0-9]{1,32}")


class _BadQuery(ValueError):
    pass


def _date(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name, "")
    if raw == "":
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise _BadQuery(f"{name}: must be a date YYYY-MM-DD (got {raw[:20]!r})") from None


def _required_date(request: web.Request, name: str) -> date:
    if (day := _date(request, name)) is None:
        raise _BadQuery(f"{name}: required, a date YYYY-MM-DD")
    return day


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "0").lower()
    if raw not in ("0", "1", "false", "true"):
        raise _BadQuery(f"{name}: must be 1 or 0")
    return raw in ("1", "true")


def _stale_s(request: web.Request) -> float:
    raw = request.query.get("stale_s")
    if raw is None:
        return DEFAULT_STALE_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 86400:
        raise _BadQuery("stale_s: must be a number of seconds in 0..86400")
    return value


def _json(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


@auditor_routes.get("/admin/journal/verify")
@allow(Role.AUDITOR)
async def journal_verify(request: web.Request) -> web.Response:
    """The chain recomputed, all of it or one local day's stretch; 200 with `ok` false when it is broken."""
    try:
        day = _date(request, "day")
        stale_s = _stale_s(request)
    except _BadQuery as exc:
        return json_error(400, str(exc))
    tz = ZoneInfo(request.app[SETTINGS].timezone)
    res = await request.app[JOURNAL_VERIFIER].verify(day=day, tz=tz, stale_s=stale_s)
    return _json(
        {
            "scope": f"day {day.isoformat()}" if day else "whole chain",
            "day": day.isoformat() if day else None,
            "ok": res.ok,
            "rows": res.rows,
            "first_broken_id": res.first_broken_id,
            "reason": res.reason,
            "head_seq": res.head_seq,
            "head_hash": res.head_hash,
            "unsealed": res.unsealed,
            "oldest_unsealed_id": res.oldest_unsealed_id,
            "stale_s": stale_s,
        }
    )


@auditor_routes.get("/admin/reconcile")
@allow(Role.AUDITOR)
async def reconcile_report(request: web.Request) -> web.Response:
    """An institution's totals, open outcomes and breaks over local dates from..to (inclusive)."""
    try:
        code = request.query.get("institution", "")
        if not _CODE.fullmatch(code):
            raise _BadQuery("institution: required, a fixmedins_code (letters and digits)")
        begin, end = _required_date(request, "from"), _required_date(request, "to")
        if end < begin:
            raise _BadQuery(f"to: {end.isoformat()} is before from ({begin.isoformat()})")
        if end - begin >= timedelta(days=MAX_RECONCILE_DAYS):
            raise _BadQuery(f"to: at most {MAX_RECONCILE_DAYS} days from 'from' in one report")
        with_core = _flag(request, "core")
    except _BadQuery as exc:
        return json_error(400, str(exc))
    gw = request.app[GATEWAY]
    if await gw.d.registry.institution(code) is None:
        return json_error(400, f"institution: {code} is not a registered institution")
    core = None
    if with_core:
        first, last = core_dates(begin, end)
        try:
            core = await gw.d.core.settlements(code, first, last, timeout=CORE_LEDGER_S)
        except CoreRejected as exc:
            why = f"the insurance core refused the settlement download ({exc.reason})"
            return json_error(502, why, ResultCode.CORE_REJECTED.value)
        except BackendError as exc:
            return json_error(
                503, f"the insurance core did not answer the settlement download ({type(exc).__name__}): retry, "
                "or reconcile without core=1", ResultCode.CORE_UNAVAILABLE.value,
            )  # fmt: skip
    tz = ZoneInfo(request.app[SETTINGS].timezone)
    report = await reconcile(request.app[RECONCILE_READS], code, begin, end, tz=tz, core=core)
    return _json(report.to_json())
