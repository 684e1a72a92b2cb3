"""Operator endpoints of the simulator: health, persons, the settlement ledger, fault injection."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from coresim.faults import FaultConfig, FaultError
from coresim.keys import FAULTS, STATE
from coresim.records import CancelRecord, ReversalRecord, Settlement
from coresim.world import WorldError, person_to_admin
from coresim.yuan import yuan_text

routes = web.RouteTableDef()


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _bad(message: str) -> web.Response:
    return _json({"error": "MALFORMED", "message": message}, status=400)


async def _body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(text='{"error":"MALFORMED","message":"body is not JSON"}',
                                 content_type="application/json") from None  # fmt: skip


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive."""
    return _json({"status": "ok"})


@routes.get("/sim/persons/{psn_no}")
async def get_person(request: web.Request) -> web.Response:
    """One person, amounts as yuan strings, with its version."""
    person = request.app[STATE].persons.get(request.match_info["psn_no"])
    if person is None:
        return _json({"error": "PERSON_NOT_FOUND"}, status=404)
    return _json(person_to_admin(request.app[STATE].person(person.psn_no)))


@routes.post("/sim/persons")
async def upsert_persons(request: web.Request) -> web.Response:
    """Insert or replace a list of persons (world.json format, or `{"persons": [...]}`)."""
    raw = await _body(request)
    if isinstance(raw, dict):
        raw = raw.get("persons")
    try:
        count = request.app[STATE].upsert_persons(raw)
    except WorldError as exc:
        return _bad(str(exc))
    return _json({"upserted": count})


@routes.get("/sim/settlements")
async def settlements(request: web.Request) -> web.Response:
    """The whole ledger, for reconciliation (amounts as yuan strings)."""
    state = request.app[STATE]
    return _json(
        {
            "settlements": [_settlement(s) for s in state.settlements.values()],
            "cancellations": [_cancellation(c) for c in state.cancellations.values()],
            "reversals": [_reversal(r) for r in state.reversals.values()],
            "tombstones": sorted(state.tombstones),
        }
    )


def _settlement(s: Settlement) -> dict[str, Any]:
    r = s.request
    return {
        "msgid": s.msgid,
        "setl_id": s.setl_id,
        "state": s.state.value,
        "posted_at": s.posted_at,
        "changed_at": s.changed_at or None,
        "fixmedins_code": r.fixmedins_code,
        "infno": r.infno,
        "psn_no": r.psn_no,
        "setl_time": r.setl_time,
        "medfee_sumamt": yuan_text(r.medfee_sumamt),
        "inscp_scp_amt": yuan_text(r.inscp_scp_amt),
        "fund_pay_sumamt": yuan_text(r.fund_pay_sumamt),
        "acct_pay": yuan_text(r.acct_pay),
        "psn_cash_pay": yuan_text(r.psn_cash_pay),
    }


def _cancellation(c: CancelRecord) -> dict[str, Any]:
    return {
        "msgid": c.msgid,
        "setl_id": c.receipt.setl_id,
        "orig_setl_id": c.receipt.orig_setl_id,
        "orig_msgid": c.orig_msgid,
        "state": c.state.value,
        "at": c.at,
        "fixmedins_code": c.request.fixmedins_code,
        "infno": c.request.infno,
        "psn_no": c.request.psn_no,
    }


def _reversal(r: ReversalRecord) -> dict[str, Any]:
    return {
        "msgid": r.msgid,
        "omsgid": r.request.omsgid,
        "oinfno": r.request.oinfno,
        "was_posted": r.receipt.was_posted,
        "at": r.at,
        "fixmedins_code": r.request.fixmedins_code,
        "psn_no": r.request.psn_no,
    }


@routes.get("/sim/faults")
async def get_faults(request: web.Request) -> web.Response:
    """The current fault configuration."""
    return _json(request.app[FAULTS].config.to_json())


@routes.put("/sim/faults")
async def put_faults(request: web.Request) -> web.Response:
    """Replace the fault configuration (missing fields take their defaults); 400 names a bad field."""
    try:
        config = FaultConfig.parse(await _body(request))
    except FaultError as exc:
        return _bad(str(exc))
    request.app[FAULTS].set(config)
    return _json(config.to_json())
