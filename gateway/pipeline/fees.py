"""2204 fee upload with its per-line `result[]`, and 2205 cancel of fee lines (SPEC §6.6). A batch is
all-or-nothing; the per-line split is `rules.split.line_parts`, the very code of the settlement's split."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from gateway.domain.codes import ResultCode
from gateway.domain.errors import Declined
from gateway.domain.money import fen_to_wire
from gateway.domain.visit_inputs import FeeUploadInput, UploadLine, VisitRef
from gateway.domain.visits import BatchSettled, LineDuplicate, StoredLine, Visit, VisitClosed
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.line_check import check_line
from gateway.pipeline.reply import Outcome
from gateway.pipeline.visits import open_visit, settled, visit_of
from rules.params import Policy
from rules.policy import NoPolicy
from rules.pricing import FeeLine, UnknownItem, price_lines
from rules.split import LineSplit, line_parts

DEFAULT_MED_TYPE = "11"  # ordinary outpatient, until 2203 sets the visit's
NO_CAP = 999999  # pric_uplmt_amt of a line without a catalogue cap (SPEC §6.6)
_LEVEL = {"A": "01", "B": "02", "C": "03"}


def visit_policy(d: Deps, txn: Txn, v: Visit, med_type: str | None = None) -> Policy:
    """The §9 policy of the visit: institution region and level, the visit's person and med_type.

    Raises:
        Declined: PERSON_NOT_ENTITLED when no policy applies.
    """
    inst = txn.institution
    assert inst is not None
    mt = med_type or v.med_type or DEFAULT_MED_TYPE
    try:
        return d.policies.select(inst.region, txn.received.date(), v.insutype, v.psn_type, mt, inst.level)
    except NoPolicy as exc:
        raise Declined(ResultCode.PERSON_NOT_ENTITLED, f"no benefit policy applies: {exc}") from None


def chrgitm_lv(cls: str) -> str:
    """The wire charge level of a catalogue class (A → 01, B → 02, C → 03)."""
    return _LEVEL[cls]


def _ratio(num: int, den: int) -> float:
    return float(Decimal(num) / Decimal(den))


async def upload(d: Deps, txn: Txn) -> Outcome:
    """2204: price and split every line, then store them all or none."""
    env, inp = txn.request(FeeUploadInput)
    seen: set[str] = set()
    for i, line in enumerate(inp.lines):
        if line.feedetl_sn in seen:
            raise Declined(
                ResultCode.FEE_LINE_DUPLICATE, f"input.feedetail[{i}].feedetl_sn: {line.feedetl_sn} twice in this call"
            )
        seen.add(line.feedetl_sn)
        check_line(f"input.feedetail[{i}]", line.cnt, line.pric, line.amount)
    v = await visit_of(d, env.fixmedins_code, inp.mdtrt_id, inp.psn_no)
    open_visit(v)
    stored, result = split_lines(d, visit_policy(d, txn, v), inp.chrg_bchno, inp.lines)
    try:
        await d.visits.add_lines(env.fixmedins_code, v.mdtrt_id, inp.chrg_bchno, stored)
    except BatchSettled as exc:
        raise settled(exc) from None
    except LineDuplicate as exc:
        raise Declined(ResultCode.FEE_LINE_DUPLICATE, str(exc)) from None
    except VisitClosed as exc:
        raise Declined(ResultCode.VISIT_STATE, f"visit {v.mdtrt_id} is {exc.state}") from None
    return Outcome(output={"result": result})


def split_lines(
    d: Deps, policy: Policy, chrg_bchno: str, lines: Sequence[UploadLine]
) -> tuple[list[StoredLine], list[dict[str, Any]]]:
    """Price and split every line (§9's per-line part): the lines to store and their `result[]` (2204, 2301).

    Raises:
        Declined: ITEM_UNKNOWN naming the code.
    """
    try:
        priced = price_lines([FeeLine(x.feedetl_sn, x.med_list_codg, x.amount, x.cnt) for x in lines], d.catalogue)
    except UnknownItem as exc:
        raise Declined(ResultCode.ITEM_UNKNOWN, f"med_list_codg {exc.code} is not in the catalogue") from None
    parts = line_parts(priced, policy.b_selfpay)
    stored, result = [], []
    for line, p, part in zip(lines, priced, parts, strict=True):
        item = d.catalogue.get(line.med_list_codg)
        assert item is not None
        share = 0.0 if p.cls == "A" else 1.0 if p.cls == "C" else _ratio(*(p.b_selfpay or policy.b_selfpay))
        stored.append(
            StoredLine(
                line.feedetl_sn, chrg_bchno, line.med_list_codg, line.cnt, line.pric, line.amount,
                part.fulamt_ownpay_amt, part.overlmt_selfpay, part.preselfpay_amt, part.inscp_scp_amt, _LEVEL[p.cls],
                line.extra,
            )
        )  # fmt: skip
        result.append(_result(line, item.price_cap, share, p.cls, part))
    return stored, result


def _result(line: UploadLine, cap: int | None, share: float, cls: str, part: LineSplit) -> dict[str, Any]:
    w = fen_to_wire
    return {
        "feedetl_sn": line.feedetl_sn,
        "det_item_fee_sumamt": w(line.amount),
        "cnt": float(line.cnt),
        "pric": float(line.pric),
        "pric_uplmt_amt": NO_CAP if cap is None else w(cap),
        "selfpay_prop": share,
        "fulamt_ownpay_amt": w(part.fulamt_ownpay_amt),
        "overlmt_amt": w(part.overlmt_selfpay),
        "preselfpay_amt": w(part.preselfpay_amt),
        "inscp_scp_amt": w(part.inscp_scp_amt),
        "chrgitm_lv": _LEVEL[cls],
        "lmt_used_flag": "1" if part.overlmt_selfpay else "0",
        "memo": "",
    }


async def cancel_fees(d: Deps, txn: Txn) -> Outcome:
    """2205: remove the lines of a batch ("0000": of every unsettled batch); settled lines stay."""
    env, inp = txn.request(VisitRef)
    v = await visit_of(d, env.fixmedins_code, inp.mdtrt_id, inp.psn_no)
    open_visit(v)
    try:
        n = await d.visits.remove_lines(env.fixmedins_code, v.mdtrt_id, inp.chrg_bchno)
    except BatchSettled as exc:
        raise settled(exc) from None
    except VisitClosed as exc:
        raise Declined(ResultCode.VISIT_STATE, f"visit {v.mdtrt_id} is {exc.state}") from None
    return Outcome(output={"data": {"mdtrt_id": v.mdtrt_id, "chrg_bchno": inp.chrg_bchno, "removed": n}})
