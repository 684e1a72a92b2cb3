"""Priority load shedding (issue 11 item 8): the priorities of the transaction table, the decisions by level,
the byte peek of a body's infno and the per-process gate."""

from __future__ import annotations

import orjson
import pytest

from gateway.domain.priority import Priority, admits, peek_infno
from gateway.domain.txtypes import TABLE, Owes, priority_of
from gateway.http.load_gate import LoadGate
from gateway.http.metrics import Metrics
from loadtest.terminal import SimCard, Terminal

ESSENTIAL_INFNOS = {"9001", "9002", "2207", "2102", "2208", "2103", "2601", "2304", "2305"}  # 2304/2305: issue 12


class TestTable:
    def test_priorities(self):
        """Queries and statements shed before pre-settlements; settlements, cancels, reversals, sign-in/out never."""
        by_infno = {t.infno: t.priority for t in TABLE}
        assert {i for i, p in by_infno.items() if p is Priority.ESSENTIAL} == ESSENTIAL_INFNOS
        assert by_infno["1101"] is by_infno["2001"] is by_infno["3201"] is by_infno["3202"] is Priority.QUERY
        assert by_infno["2206"] is by_infno["2101"] is Priority.PRESETTLE
        assert {by_infno[i] for i in ("2201", "2202", "2203", "2204", "2205")} == {Priority.PRESETTLE}  # issue 12
        stays = ("2401", "2402", "2403", "2404", "2405", "2301", "2302", "2303")
        assert {by_infno[i] for i in stays} == {Priority.PRESETTLE}  # issue 12, inpatient

    def test_every_kind_that_owes_the_core_is_essential(self):
        """A transaction whose unknown outcome owes the core (a settlement, a cancel, a reversal) is never shed."""
        assert all(t.priority is Priority.ESSENTIAL for t in TABLE if t.owes is not Owes.NOTHING)


class TestDecisions:
    @pytest.mark.parametrize(
        ("in_flight", "shed"),
        [
            (0, set()),
            (49, set()),
            (50, {Priority.DISTRIBUTION}),
            (75, {Priority.DISTRIBUTION, Priority.QUERY}),
            (99, {Priority.DISTRIBUTION, Priority.QUERY}),
            (100, {Priority.DISTRIBUTION, Priority.QUERY, Priority.PRESETTLE}),
            (10_000, {Priority.DISTRIBUTION, Priority.QUERY, Priority.PRESETTLE}),
        ],
    )
    def test_lowest_first(self, in_flight, shed):
        """With a bound of 100: polls shed from 50 in flight, queries from 75, pre-settlements from 100."""
        assert {p for p in Priority if not admits(p, in_flight, 100)} == shed

    def test_essential_never(self):
        """A settlement, cancel or reversal starts however many are in flight."""
        assert admits(Priority.ESSENTIAL, 10**9, 1)

    def test_bound_of_one(self):
        """With a bound of one, a sheddable request starts only on an idle process."""
        assert admits(Priority.PRESETTLE, 0, 1)
        assert not admits(Priority.PRESETTLE, 1, 1)
        assert admits(Priority.DISTRIBUTION, 0, 1)
        assert not admits(Priority.DISTRIBUTION, 1, 1)


def bodies() -> dict[str, bytes]:
    t = Terminal("H33020000001", "测试医院", "330200000001")
    t.sign_no = "3" * 30
    card = SimCard("330200D15600000500000000000000AB", "A12345678", "33020000000000000001")
    return {
        "9001": orjson.dumps(t.sign_in().body),
        "1101": orjson.dumps(t.person_info(card).body),
        "2207": orjson.dumps(t.settle("2207", card, [("X1", "1", "1.00")]).body),
        "2601": orjson.dumps(t.reverse(card.psn_no, "M1", "2207").body),
    }


class TestPeek:
    def test_terminal_bodies(self):
        """The load tester's real requests: the peek finds each infno (2601's oinfno does not confuse it)."""
        for infno, body in bodies().items():
            assert peek_infno(body) == infno

    @pytest.mark.parametrize(
        ("body", "infno"),
        [
            (b'{"infno":"1101"}', "1101"),
            (b'{ "infno" :\n "2207" , "x": 1}', "2207"),
            (b'{"oinfno":"2207","infno":"2601"}', "2601"),
            (b'{"infno":2207}', None),  # not a string: the parser will say MALFORMED
            (b'{"infno":"\\u0032207"}', None),  # escaped: left to the parser
            (b'{"infno":"2207","input":{"infno":"1101"}}', None),  # twice: ambiguous
            (b'{"infno":"' + b"9" * 40 + b'"}', None),
            (b'{"infno":"2207', None),
            (b"", None),
            (b"\xff\xfe", None),
        ],
    )
    def test_shapes(self, body, infno):
        """What a byte search can tell, it tells; anything else is left to a full parse."""
        assert peek_infno(body) == infno

    @pytest.mark.parametrize(
        ("body", "priority"),
        [
            (b'{"infno":"2207"}', Priority.ESSENTIAL),
            (b'{"infno":"1101"}', Priority.QUERY),
            (b'{"infno":"2101"}', Priority.PRESETTLE),
            (b'{"infno":"\\u0032207"}', Priority.ESSENTIAL),  # the fallback parse reads the escape
            (b'{"infno":"2207","input":{"infno":"1101"}}', Priority.ESSENTIAL),  # ... and takes the top level
            (b'{"infno":"8888"}', Priority.QUERY),  # unknown: refused cheaply, ranks with queries
            (b"not json", Priority.QUERY),
            (b"[" * 100_000, Priority.QUERY),
            (b"\xff", Priority.QUERY),
        ],
    )
    def test_priority_of(self, body, priority):
        """A body's priority, from the table by its infno."""
        assert priority_of(body) is priority


class TestGate:
    def test_enter_leave_and_count(self):
        """The gate counts what it admits and what it sheds, by priority."""
        m = Metrics()
        gate = LoadGate(2, m)
        assert gate.enter(Priority.PRESETTLE)
        assert gate.enter(Priority.QUERY)  # 1 < 1.5
        assert not gate.enter(Priority.QUERY)  # 2 >= 1.5
        assert not gate.enter(Priority.DISTRIBUTION)
        assert not gate.enter(Priority.PRESETTLE)
        assert gate.enter(Priority.ESSENTIAL)
        assert gate.in_flight == 3
        for _ in range(3):
            gate.leave()
        assert gate.in_flight == 0
        assert gate.enter(Priority.DISTRIBUTION)
        text = m.render().decode()
        assert 'onecard_shed_total{priority="query"} 1.0' in text
        assert 'onecard_shed_total{priority="distribution"} 1.0' in text
        assert 'onecard_shed_total{priority="presettle"} 1.0' in text

    def test_bound_must_be_positive(self):
        """A bound below one is refused with its name."""
        with pytest.raises(ValueError, match="max_in_flight must be at least 1"):
            LoadGate(0, Metrics())
