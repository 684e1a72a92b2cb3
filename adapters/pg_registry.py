"""The registry (institutions, PSAMs, cards) and 9001 sign-in sessions in PostgreSQL, implementing
`gateway.ports.registry.Registry`; rows that change rarely are cached for a few seconds."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any

from adapters.pg_errors import map_unavailable
from adapters.pg_journal import card_of, card_sql
from adapters.pg_pool import Pg
from gateway.domain.registry import Card, Institution, Psam, SignSession


class _TtlCache:
    """Tiny TTL cache for registry rows that change rarely (PSAMs, institutions, sessions)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._d: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        hit = self._d.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, value: Any) -> None:
        if len(self._d) > 50_000:
            self._d.clear()
        self._d[key] = (time.monotonic() + self.ttl, value)

    def drop(self, key: str) -> None:
        self._d.pop(key, None)


@map_unavailable
class PgRegistry:
    """Institutions, PSAMs and cards, and sign-in sessions."""

    def __init__(self, pool: Pg, *, registry_ttl: float = 10.0, session_ttl: float = 5.0) -> None:
        self.pool = pool
        self._inst = _TtlCache(registry_ttl)
        self._psam = _TtlCache(registry_ttl)
        self._sess = _TtlCache(session_ttl)

    async def institution(self, code: str) -> Institution | None:
        """An institution by code (cached briefly)."""
        hit: Institution | None = self._inst.get(code)
        if hit is None:
            r = await self.pool.fetchrow(
                "SELECT fixmedins_code, fixmedins_name, kind, level, region FROM institutions"
                " WHERE fixmedins_code = $1",
                code,
            )
            if r is None:
                return None
            hit = Institution(**dict(r))
            self._inst.put(code, hit)
        return hit

    async def psam(self, psam_no: str) -> Psam | None:
        """A PSAM by number (cached briefly)."""
        hit: Psam | None = self._psam.get(psam_no)
        if hit is None:
            r = await self.pool.fetchrow(
                "SELECT psam_no, fixmedins_code, status FROM psams WHERE psam_no = $1", psam_no
            )
            if r is None:
                return None
            hit = Psam(**dict(r))
            self._psam.put(psam_no, hit)
        return hit

    async def card(self, card_sn: str, day: date) -> Card | None:
        """A card with its default-PIN usage of `day`."""
        r = await self.pool.fetchrow(f"{card_sql('$2')} WHERE c.card_sn = $1", card_sn, day)
        return None if r is None else card_of(r)

    async def create_session(
        self, sign_no: str, fixmedins_code: str, psam_no: str, opter_no: str, at: datetime, expires: datetime
    ) -> bool:
        """Record a sign-in; False (nothing written) when `sign_no` is taken already."""
        return bool(
            await self.pool.fetchval(
                "INSERT INTO sign_sessions (sign_no, fixmedins_code, psam_no, opter_no, signed_in_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sign_no) DO NOTHING RETURNING true",
                sign_no,
                fixmedins_code,
                psam_no,
                opter_no,
                at,
                expires,
            )
        )

    async def session(self, sign_no: str) -> SignSession | None:
        """A sign-in session (cached for a few seconds; sign-out in this process drops it at once)."""
        hit: SignSession | None = self._sess.get(sign_no)
        if hit is None:
            r = await self.pool.fetchrow(
                "SELECT sign_no, fixmedins_code, psam_no, expires_at, signed_out_at IS NOT NULL AS signed_out"
                " FROM sign_sessions WHERE sign_no = $1",
                sign_no,
            )
            if r is None:
                return None
            hit = SignSession(**dict(r))
            self._sess.put(sign_no, hit)
        return hit

    async def sign_out(self, sign_no: str, at: datetime) -> None:
        """End a session."""
        self._sess.drop(sign_no)
        await self.pool.execute(
            "UPDATE sign_sessions SET signed_out_at = $2 WHERE sign_no = $1 AND signed_out_at IS NULL",
            sign_no,
            at,
        )
