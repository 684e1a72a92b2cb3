"""Effects as the JSON argument of `journal_complete()` (migration 0004): one round trip ends a request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import orjson

from adapters.pg_pool import Conn, Pg
from gateway.domain.effects import Effect, NewSettlement, QueueReversal, ReleaseDefaultPin, SetSettlementState
from gateway.domain.registry import Settlement

_SETTLEMENT_FIELDS = tuple(f.name for f in fields(Settlement))
_KIND: dict[type, str] = {SetSettlementState: "state", QueueReversal: "reversal", ReleaseDefaultPin: "release_pin"}


def _one(eff: Effect) -> dict[str, Any]:
    if isinstance(eff, NewSettlement):
        s = eff.settlement
        return {"kind": "settlement", **{name: getattr(s, name) for name in _SETTLEMENT_FIELDS}}
    return {"kind": _KIND[type(eff)], **{f.name: getattr(eff, f.name) for f in fields(eff)}}


def effects_json(effects: Sequence[Effect]) -> str:
    """The effects as a JSON array (dates and times in ISO 8601, which PostgreSQL casts back exactly)."""
    # Naive datetimes as UTC, as asyncpg binds them to timestamptz parameters.
    return orjson.dumps([_one(e) for e in effects], option=orjson.OPT_NAIVE_UTC).decode()


async def apply_effects(conn: Conn | Pg, effects: Sequence[Effect]) -> None:
    """Apply effects outside a completion (a reversal closed, a default-PIN reservation given back) through the
    same `apply_effects()` the journal's completion runs (migration 0006): one implementation, in SQL."""
    if effects:
        await conn.execute("SELECT apply_effects($1::jsonb)", effects_json(effects))
