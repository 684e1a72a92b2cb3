"""`InMemoryStays`: the stays port over an `InMemoryVisits`'s dicts (the same visits and batches, so 2305's
`batch_of` finds a stay's settlement), with the same refusals as `adapters.pg_stays`."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.domain.stays import LineUnknown, RefundTooLarge, Stay
from gateway.domain.visits import BatchChanged, BatchSettled, LineDuplicate, StoredLine, Visit, VisitClosed
from gateway.ports.stays import Stays
from tests.fakes.visits import InMemoryVisits, _Batch


@dataclass
class InMemoryStays:
    """Stays of every institution, kept in `visits` beside the outpatient visits."""

    visits: InMemoryVisits
    inpatient: set[str] = field(default_factory=set)
    final: dict[str, str] = field(default_factory=dict)  # mdtrt_id -> the final settlement's msgid
    _seq: Any = field(default_factory=lambda: itertools.count(1))

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
        self.visits.store._up()
        for mid in self.inpatient:
            v = self.visits.visits[mid]
            if v.fixmedins_code == fixmedins_code and v.ipt_otp_no == ipt_no:
                return v
        mdtrt_id = f"{mint}{next(self.visits._seq):010d}"
        v = Visit(fixmedins_code, mdtrt_id, ipt_no, psn_no, insutype, psn_type, "ADMITTED", med_type, begntime)
        self.visits.visits[mdtrt_id], self.visits.info[mdtrt_id] = v, dict(info)
        self.inpatient.add(mdtrt_id)
        return v

    async def stay(self, fixmedins_code: str, mdtrt_id: str) -> Stay | None:
        self.visits.store._up()
        v = self.visits.visits.get(mdtrt_id)
        if v is None or v.fixmedins_code != fixmedins_code or mdtrt_id not in self.inpatient:
            return None
        held = self.visits._held(fixmedins_code, mdtrt_id)
        final = self.visits._holder(fixmedins_code, self.final.get(mdtrt_id))
        lines, versions = [], []
        for (mid, bchno), b in sorted(self.visits.batches.items()):
            if mid == mdtrt_id and bchno not in held and b.lines:
                lines += [b.lines[sn] for sn in sorted(b.lines)]
                versions.append((bchno, b.version))
        live = tuple({h.msgid: h for h in [*held.values(), *([final] if final else [])]}.values())
        return Stay(v, tuple(lines), tuple(versions), final, live)

    async def _lock(self, code: str, mdtrt_id: str, allowed: Collection[str], final_first: bool = False) -> Stay:
        s = await self.stay(code, mdtrt_id)
        if s is None:
            raise VisitClosed("unknown")
        if s.final is not None and final_first:
            raise BatchSettled("final", s.final)
        if s.state not in allowed:
            raise VisitClosed(s.state)
        return s

    def _lines(self, mdtrt_id: str) -> dict[str, tuple[str, StoredLine]]:
        return {sn: (bchno, x) for (mid, bchno), b in self.visits.batches.items() if mid == mdtrt_id
                for sn, x in b.lines.items()}  # fmt: skip

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
        s = await self._lock(fixmedins_code, mdtrt_id, allowed)
        if empty and (s.live or self._lines(mdtrt_id)):
            raise VisitClosed(f"{s.state} with fee lines or a settlement")
        if to is not None:
            self.visits.visits[mdtrt_id] = dataclasses.replace(s.visit, state=to)
        self.visits.info[mdtrt_id].update(info)

    async def add_lines(self, fixmedins_code: str, mdtrt_id: str, lines: Sequence[StoredLine]) -> None:
        s = await self._lock(fixmedins_code, mdtrt_id, ("ADMITTED", "DISCHARGED"))
        stored = self._lines(mdtrt_id)
        unsettled = {b for b, _ in s.versions}
        left = {sn: x.amount for sn, (_, x) in stored.items() if x.init_feedetl_sn is None}
        for _, x in stored.values():
            if x.init_feedetl_sn is not None:
                left[x.init_feedetl_sn] += x.amount
        for x in lines:
            if x.feedetl_sn in stored:
                raise LineDuplicate(x.feedetl_sn)
            if x.init_feedetl_sn is None:
                left[x.feedetl_sn] = x.amount
                continue
            init = stored.get(x.init_feedetl_sn)
            if (init is None and x.init_feedetl_sn not in left) or (init is not None and init[1].init_feedetl_sn):
                raise LineUnknown(x.init_feedetl_sn)
            if init is not None and init[0] not in unsettled and s.live:
                raise BatchSettled(init[0], s.live[0])
            left[x.init_feedetl_sn] += x.amount
            if left[x.init_feedetl_sn] < 0:
                raise RefundTooLarge(x.feedetl_sn, x.init_feedetl_sn, left[x.init_feedetl_sn] - x.amount)
        n = sum(1 for mid, _ in self.visits.batches if mid == mdtrt_id)
        bchno = f"IPT{n + 1:06d}"
        self.visits.batches[(mdtrt_id, bchno)] = _Batch(
            {x.feedetl_sn: dataclasses.replace(x, chrg_bchno=bchno) for x in lines}
        )

    async def remove_lines(self, fixmedins_code: str, mdtrt_id: str, feedetl_sns: Sequence[str] | None) -> int:
        s = await self._lock(fixmedins_code, mdtrt_id, ("ADMITTED", "DISCHARGED"))
        open_ = {x.feedetl_sn for x in s.lines}
        stored = self._lines(mdtrt_id)
        for sn in feedetl_sns or ():
            if sn not in open_:
                if sn in stored:
                    raise BatchSettled(sn, s.live[0])
                raise LineUnknown(sn)
        names = set(open_ if feedetl_sns is None else feedetl_sns)
        n = 0
        for (mid, _), b in self.visits.batches.items():
            if mid != mdtrt_id:
                continue
            gone = [sn for sn, x in b.lines.items() if sn in names or x.init_feedetl_sn in names]
            for sn in gone:
                del b.lines[sn]
            if gone:
                b.version += 1
            n += len(gone)
        return n

    async def claim(
        self, fixmedins_code: str, mdtrt_id: str, msgid: str, final: bool, versions: Sequence[tuple[str, int]]
    ) -> None:
        allowed = ("DISCHARGED",) if final else ("ADMITTED",)
        s = await self._lock(fixmedins_code, mdtrt_id, allowed, final_first=True)
        if s.versions != tuple(versions):
            raise BatchChanged(mdtrt_id)
        for bchno, _ in versions:
            self.visits.batches[(mdtrt_id, bchno)].setl_msgid = msgid
        if final:
            self.final[mdtrt_id] = msgid


def _checked(s: InMemoryStays) -> Stays:
    return s
