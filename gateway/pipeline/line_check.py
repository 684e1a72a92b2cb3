"""One fee line's own arithmetic (cnt × pric = its amount, to the fen), shared by inline settlements and the
2204 fee upload."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from gateway.domain.codes import ResultCode
from gateway.domain.errors import Declined


def check_line(where: str, cnt: Decimal, pric: Decimal, amt: int) -> None:
    """A line's cnt × pric must match its amount to the fen.

    Raises:
        Declined: AMOUNT_MISMATCH naming the line.
    """
    expect = (cnt * pric * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if abs(expect - amt) > 1:
        raise Declined(
            ResultCode.AMOUNT_MISMATCH, f"{where}: cnt × pric = {expect / 100} but det_item_fee_sumamt = {amt / 100}"
        )
