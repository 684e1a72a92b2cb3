"""The simulator's own yuan/fen codec (coresim/yuan.py) against the gateway's: written apart, they must agree on
every amount the wire carries, and both refuse what is not an amount."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coresim.yuan import MAX_FEN, AmountError, fen_of, yuan_number, yuan_text
from gateway.domain.money import fen_to_wire, fen_to_yuan, yuan_to_fen

FEN = st.integers(min_value=0, max_value=MAX_FEN)


class TestAgreesWithTheGateway:
    @given(FEN)
    def test_the_gateways_wire_number_reads_back(self, fen: int) -> None:
        """A JSON number the gateway writes is the same fen to the simulator, and the simulator writes the same."""
        assert fen_of(fen_to_wire(fen)) == fen
        assert yuan_number(fen) == fen_to_wire(fen)

    @given(st.integers(min_value=-MAX_FEN, max_value=MAX_FEN))
    def test_yuan_text(self, fen: int) -> None:
        """Yuan strings with two decimals, negative balances included."""
        assert yuan_text(fen) == str(fen_to_yuan(fen))

    @given(FEN)
    def test_text_reads_back(self, fen: int) -> None:
        """A world file's yuan string is the fen it was written from."""
        assert fen_of(yuan_text(fen)) == fen == yuan_to_fen(yuan_text(fen))


@pytest.mark.parametrize(
    ("value", "fen"), [(0, 0), (12, 1200), (12.3, 1230), ("1234.56", 123456), ("1.5", 150), ("3.000", 300)]
)
def test_amounts(value: object, fen: int) -> None:
    """Numbers and strings with at most two significant decimals."""
    assert fen_of(value) == fen


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (12.345, "more than two decimals"),
        (0.1 + 0.2, "more than two decimals"),
        ("1.234", "more than two decimals"),
        (-1, "must not be negative"),
        ("-0.50", "must not be negative"),
        (True, "must be a number"),
        (None, "must be a number"),
        ("abc", "not a number"),
        ("", "not a number"),
        (float("nan"), "not a finite number"),
        (1e16, "too large"),
        ("99999999999999", "too large"),
    ],
)
def test_refused(value: object, why: str) -> None:
    """Anything else is an AmountError naming the field and the reason, as the gateway's codec says it."""
    with pytest.raises(AmountError, match=why):
        fen_of(value, field="acct_pay")
    with pytest.raises(ValueError, match=why):
        yuan_to_fen(value, field="acct_pay")
