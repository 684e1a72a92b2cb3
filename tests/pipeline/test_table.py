"""The transaction table is complete and consistent: every infno parses, routes to a flow, and says what it
owes; recovery and reconciliation read the same entries."""

from __future__ import annotations

import pytest

from gateway.domain.txtypes import REVERSIBLE, SETTLING, TABLE, TXTYPES, Kind, Owes
from gateway.pipeline.table import FLOWS


class TestTable:
    def test_every_kind_has_a_flow(self):
        """A kind without a flow would be refused at import; the table routes every infno to one."""
        assert {t.kind for t in TABLE} <= set(FLOWS)

    @pytest.mark.parametrize("tx", TABLE, ids=lambda t: t.infno)
    def test_what_moves_money_can_be_recovered(self, tx):
        """An infno that owes the core something has a recovery that says what (the flow's timeout branch)."""
        assert (tx.owes is not Owes.NOTHING) == (FLOWS[tx.kind].recover is not None)

    def test_cancels_name_a_settling_infno(self):
        """2208 cancels 2207 and 2103 cancels 2102; both record settlements reconciliation counts."""
        for t in TABLE:
            if t.kind is Kind.CANCEL:
                assert t.cancels in SETTLING
        assert {"2207", "2102", "2304"} == SETTLING  # 2304: inpatient (issue 12)

    def test_reversible_are_settlements_and_cancels(self):
        """SPEC §6.4: a 2601 may name a settlement or a cancel, nothing else."""
        assert set(REVERSIBLE) == {"2207", "2102", "2208", "2103", "2304", "2305"}
        assert all(TXTYPES[i].owes is Owes.REVERSAL for i in REVERSIBLE)

    def test_card_bearing_matches_spec(self):
        """SPEC §4.1's card-bearing list (with 2001 from §6.2.1); amount-bearing ones are the settlements."""
        settling = {"2206", "2207", "2101", "2102", "2303", "2304"}  # 2303/2304: inpatient (SPEC §6.7)
        assert {t.infno for t in TABLE if t.card_bearing} == {"1101", "2001", *settling}
        assert {t.infno for t in TABLE if t.amount_bearing} == settling
        assert [t.infno for t in TABLE if not t.needs_session] == ["9001"]
