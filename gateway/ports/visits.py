"""The visits port: outpatient visits, fee batches and lines, and the batch claim that lets a batch settle at
most once while live (`adapters.pg_visits`; SPEC §6.6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from gateway.domain.visits import Batch, StoredLine, Visit


class Visits(Protocol):
    """Every mutation of a visit runs under that visit's lock, so state checks and the claim are atomic.

    Raise `VisitClosed` (the visit is not REGISTERED), `BatchSettled` (a live settlement holds the batch),
    `LineDuplicate` (a feedetl_sn already stored) or `BatchChanged` (the claim's version is stale)."""

    async def register(
        self,
        fixmedins_code: str,
        ipt_otp_no: str,
        psn_no: str,
        insutype: str,
        psn_type: str,
        begntime: datetime,
        info: Mapping[str, Any],
        mint: str,
    ) -> Visit:
        """The visit of (institution, ipt_otp_no): created with mdtrt_id = `mint` + a 10-digit sequence, or the
        existing one."""
        ...

    async def visit(self, fixmedins_code: str, mdtrt_id: str) -> Visit | None: ...
    async def cancel_visit(self, fixmedins_code: str, mdtrt_id: str) -> None: ...
    async def set_visit_info(
        self, fixmedins_code: str, mdtrt_id: str, med_type: str, info: Mapping[str, Any]
    ) -> None: ...
    async def add_lines(
        self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str, lines: Sequence[StoredLine]
    ) -> None: ...
    async def remove_lines(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str) -> int:
        """Remove the lines of a batch, or of every unsettled batch for "0000"; returns how many."""
        ...

    async def batch(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str) -> Batch | None: ...
    async def claim_batch(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str, msgid: str, version: int) -> None:
        """Tie the batch to settlement `msgid` unless a live settlement holds it."""
        ...

    async def batch_of(self, fixmedins_code: str, setl_msgid: str) -> tuple[str, str] | None:
        """(mdtrt_id, chrg_bchno) of the batch a settlement claimed, if any."""
        ...
