"""The stays port: inpatient stays (SPEC §6.7) over the visits' tables, with the claim that lets a stay's
final settlement happen at most once while live (`adapters.pg_stays`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from gateway.domain.stays import Stay
from gateway.domain.visits import StoredLine, Visit


class Stays(Protocol):
    """Every mutation runs under the stay's row lock. States are ADMITTED, DISCHARGED, SETTLED (a final
    settlement is live) and CANCELLED; a mutation refused by state raises `VisitClosed` naming it.

    Also raised: `BatchSettled` (a live settlement holds a line named, or the stay's final settlement),
    `LineDuplicate`, `LineUnknown`, `RefundTooLarge`, `BatchChanged` (the claim's versions are stale)."""

    async def admit(
        self,
        fixmedins_code: str,
        ipt_no: str,
        psn_no: str,
        insutype: str,
        psn_type: str,
        med_type: str,
        begntime: datetime,
        info: Mapping[str, Any],
        mint: str,
    ) -> Visit:
        """The stay of (institution, ipt_no): created ADMITTED, or the existing one."""
        ...

    async def stay(self, fixmedins_code: str, mdtrt_id: str) -> Stay | None:
        """The inpatient stay of this institution, None when there is none."""
        ...

    async def change(
        self,
        fixmedins_code: str,
        mdtrt_id: str,
        allowed: Collection[str],
        to: str | None,
        info: Mapping[str, Any],
        *,
        empty: bool = False,
    ) -> None:
        """Move the stay to state `to` (None: stay) from one of `allowed`, merging `info`; `empty`: refused
        while the stay has fee lines or a live settlement."""
        ...

    async def add_lines(self, fixmedins_code: str, mdtrt_id: str, lines: Sequence[StoredLine]) -> None:
        """Store one 2301 call's lines as a batch of their own (ADMITTED or DISCHARGED only)."""
        ...

    async def remove_lines(self, fixmedins_code: str, mdtrt_id: str, feedetl_sns: Sequence[str] | None) -> int:
        """Remove unsettled lines (None: every one) and the refunds of those removed; returns how many."""
        ...

    async def claim(
        self, fixmedins_code: str, mdtrt_id: str, msgid: str, final: bool, versions: Sequence[tuple[str, int]]
    ) -> None:
        """Tie every unsettled batch to settlement `msgid` (final: DISCHARGED, and the stay's final settlement;
        mid-stay: ADMITTED)."""
        ...
