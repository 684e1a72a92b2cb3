"""`InMemoryVisits`: the visits port as dicts, reading the live claims from an `InMemoryStore`'s journal rows
and settlements exactly as `adapters.pg_visits` reads them from PostgreSQL."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.domain.visits import (
    ALL_BATCHES,
    LIVE_STATES,
    Batch,
    BatchChanged,
    BatchSettled,
    Holder,
    LineDuplicate,
    StoredLine,
    Visit,
    VisitClosed,
)
from gateway.ports.visits import Visits
from tests.fakes.store import InMemoryStore


@dataclass
class _Batch:
    lines: dict[str, StoredLine] = field(default_factory=dict)
    setl_msgid: str | None = None
    version: int = 0


@dataclass
class InMemoryVisits:
    """Visits of every institution; `store` says which settlements are live."""

    store: InMemoryStore
    visits: dict[str, Visit] = field(default_factory=dict)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[tuple[str, str], _Batch] = field(default_factory=dict)
    _seq: Any = field(default_factory=lambda: itertools.count(1))

    def _holder(self, code: str, msgid: str | None) -> Holder | None:
        if msgid is None:
            return None
        s = self.store.settlements.get((code, msgid))
        if s is not None:
            return Holder(msgid, s.setl_id) if s.state in LIVE_STATES else None
        jid = self.store.keys.get((code, msgid))
        pending = jid is not None and self.store.rows[jid].state == "PENDING"
        return Holder(msgid, None, True) if pending else None

    def _held(self, code: str, mdtrt_id: str) -> dict[str, Holder]:
        out = {}
        for (mid, bchno), b in self.batches.items():
            if mid == mdtrt_id and (h := self._holder(code, b.setl_msgid)) is not None:
                out[bchno] = h
        return out

    def _open(self, code: str, mdtrt_id: str) -> Visit:
        self.store._up()
        v = self.visits.get(mdtrt_id)
        if v is None or v.fixmedins_code != code:
            raise VisitClosed("unknown")
        if v.state != "REGISTERED":
            raise VisitClosed(v.state)
        return v

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
        self.store._up()
        for v in self.visits.values():
            if v.fixmedins_code == fixmedins_code and v.ipt_otp_no == ipt_otp_no:
                return v
        mdtrt_id = f"{mint}{next(self._seq):010d}"
        v = Visit(fixmedins_code, mdtrt_id, ipt_otp_no, psn_no, insutype, psn_type, "REGISTERED", None, begntime)
        self.visits[mdtrt_id], self.info[mdtrt_id] = v, dict(info)
        return v

    async def visit(self, fixmedins_code: str, mdtrt_id: str) -> Visit | None:
        self.store._up()
        v = self.visits.get(mdtrt_id)
        return v if v is not None and v.fixmedins_code == fixmedins_code else None

    async def cancel_visit(self, fixmedins_code: str, mdtrt_id: str) -> None:
        v = self._open(fixmedins_code, mdtrt_id)
        for bchno, holder in self._held(fixmedins_code, mdtrt_id).items():
            raise BatchSettled(bchno, holder)
        self.visits[mdtrt_id] = dataclasses.replace(v, state="CANCELLED")

    async def set_visit_info(self, fixmedins_code: str, mdtrt_id: str, med_type: str, info: Mapping[str, Any]) -> None:
        v = self._open(fixmedins_code, mdtrt_id)
        self.visits[mdtrt_id] = dataclasses.replace(v, med_type=med_type)
        self.info[mdtrt_id].update(info)

    async def add_lines(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str, lines: Sequence[StoredLine]) -> None:
        self._open(fixmedins_code, mdtrt_id)
        if (h := self._held(fixmedins_code, mdtrt_id).get(chrg_bchno)) is not None:
            raise BatchSettled(chrg_bchno, h)
        stored = {sn for (mid, _), b in self.batches.items() if mid == mdtrt_id for sn in b.lines}
        for x in lines:
            if x.feedetl_sn in stored:
                raise LineDuplicate(x.feedetl_sn)
        b = self.batches.setdefault((mdtrt_id, chrg_bchno), _Batch(version=-1))
        b.version += 1
        b.lines.update({x.feedetl_sn: x for x in lines})

    async def remove_lines(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str) -> int:
        self._open(fixmedins_code, mdtrt_id)
        held = self._held(fixmedins_code, mdtrt_id)
        if chrg_bchno != ALL_BATCHES and chrg_bchno in held:
            raise BatchSettled(chrg_bchno, held[chrg_bchno])
        n = 0
        for (mid, bchno), b in self.batches.items():
            if mid == mdtrt_id and bchno not in held and chrg_bchno in (ALL_BATCHES, bchno):
                n += len(b.lines)
                b.lines.clear()
                b.version += 1
        if n == 0 and chrg_bchno == ALL_BATCHES and held:
            raise BatchSettled(*next(iter(held.items())))
        return n

    async def batch(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str) -> Batch | None:
        if await self.visit(fixmedins_code, mdtrt_id) is None:
            return None
        b = self.batches.get((mdtrt_id, chrg_bchno))
        if b is None:
            return None
        lines = tuple(b.lines[sn] for sn in sorted(b.lines))
        return Batch(chrg_bchno, lines, self._holder(fixmedins_code, b.setl_msgid), b.version)

    async def claim_batch(self, fixmedins_code: str, mdtrt_id: str, chrg_bchno: str, msgid: str, version: int) -> None:
        self._open(fixmedins_code, mdtrt_id)
        b = self.batches[(mdtrt_id, chrg_bchno)]
        if (h := self._holder(fixmedins_code, b.setl_msgid)) is not None:
            raise BatchSettled(chrg_bchno, h)
        if b.version != version:
            raise BatchChanged(chrg_bchno)
        b.setl_msgid = msgid

    async def batch_of(self, fixmedins_code: str, setl_msgid: str) -> tuple[str, str] | None:
        self.store._up()
        for (mid, bchno), b in self.batches.items():
            if b.setl_msgid == setl_msgid and self.visits[mid].fixmedins_code == fixmedins_code:
                return mid, bchno
        return None


def _checked(v: InMemoryVisits) -> Visits:
    return v
