"""The registry and sign-in sessions port (PostgreSQL: `adapters.pg_registry.PgRegistry`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from gateway.domain.registry import Card, Institution, Psam, SignSession


class Registry(Protocol):
    """Institutions, PSAMs and cards of the registry, and 9001 sessions."""

    async def institution(self, code: str) -> Institution | None: ...
    async def psam(self, psam_no: str) -> Psam | None: ...
    async def card(self, card_sn: str, day: date) -> Card | None: ...
    async def create_session(
        self, sign_no: str, fixmedins_code: str, psam_no: str, opter_no: str, at: datetime, expires: datetime
    ) -> bool:
        """Record a sign-in; False when the sign_no is taken (the caller draws another)."""
        ...

    async def session(self, sign_no: str) -> SignSession | None: ...
    async def sign_out(self, sign_no: str, at: datetime) -> None: ...
