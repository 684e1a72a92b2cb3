"""The reversal's own msgid: stable per original, distinct across originals, independent of the queue row id."""

from __future__ import annotations

from gateway.domain.journal import ReversalJob
from gateway.pipeline.reversals import reversal_msgid


def job(id_: int, omsgid: str, oinfno: str = "2207", code: str = "H33020000001", attempts: int = 1) -> ReversalJob:
    return ReversalJob(id_, code, omsgid, oinfno, "33020000000000000001", attempts, 0.0)


def test_same_original_same_msgid_whatever_the_row_id_or_attempt() -> None:
    a = reversal_msgid(job(1, "H33020000001202611270000000001"))
    b = reversal_msgid(job(77, "H33020000001202611270000000001", attempts=9))
    assert a == b
    assert len(a) <= 30
    assert a.startswith("RV")


def test_row_id_reuse_in_a_new_database_cannot_collide() -> None:
    # Row id 1 in two databases (a restore, a drill's own cluster) must not give two originals one msgid.
    first = reversal_msgid(job(1, "H33020000001202611270000000001"))
    second = reversal_msgid(job(1, "H33020000001202611270000000002"))
    other_inst = reversal_msgid(job(1, "H33020000001202611270000000001", code="H33020000002"))
    other_infno = reversal_msgid(job(1, "H33020000001202611270000000001", oinfno="2208"))
    assert len({first, second, other_inst, other_infno}) == 4
