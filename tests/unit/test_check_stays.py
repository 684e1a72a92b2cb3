"""The post-run check of the inpatient stays (loadtest.check_stays) over rows as the database returns them:
one live final settlement passes; two, none, or one the stay does not name, is a problem naming the stay."""

from __future__ import annotations

from typing import Any

from loadtest.check import CheckResult
from loadtest.check_stays import check_stays

M = "H" * 30


def stay(final: str | None, claims: list[str]) -> list[dict[str, Any]]:
    return [{"mdtrt_id": M, "fixmedins_code": "F1", "final_msgid": final, "claims": claims}]


def run(rows: list[dict[str, Any]], states: dict[str, str], acked: set[str]) -> CheckResult:
    res = CheckResult()
    check_stays(res, {M: acked}, rows, {("F1", m): s for m, s in states.items()})
    return res


def test_one_live_final_settlement_passes():
    res = run(stay("m2", ["m2"]), {"m1": "CANCELLED", "m2": "POSTED"}, {"m1", "m2"})
    assert res.ok
    assert res.stays == 1


def test_two_live_final_settlements_are_a_problem():
    res = run(stay("m2", ["m2"]), {"m1": "POSTED", "m2": "POSTED"}, {"m1", "m2"})
    assert res.problem_counts["stay_settled"] == 1
    assert M in res.problems[0]


def test_none_live_or_another_than_named_is_a_problem():
    assert run(stay("m1", ["m1"]), {"m1": "REVERSED"}, {"m1"}).problem_counts["stay_settled"] == 1
    assert run(stay("m2", ["m1"]), {"m1": "POSTED", "m2": "CANCELLED"}, {"m1"}).problem_counts["stay_final"] == 1
    assert run([], {}, {"m1"}).problem_counts["stay_missing"] == 1
