"""1101 person information (SPEC §6.2): the person behind the card, for the terminal."""

from __future__ import annotations

from gateway.domain.money import fen_to_wire
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.reply import Outcome


async def person_info(d: Deps, txn: Txn) -> Outcome:
    """1101: the person behind the card, with the card's PIN mode so the terminal knows whether to prompt."""
    card = txn.card
    assert card is not None
    p = await d.core_call(txn, "person", d.core.person(card.psn_no, timeout=d.settings.core_read_timeout_s))
    return Outcome(
        output={
            "baseinfo": {
                "psn_no": p.psn_no,
                "psn_cert_type": "01",
                "certno": p.certno,
                "psn_name": p.psn_name,
                "gend": p.gend,
                "brdy": p.brdy,
                "age": _age(p.brdy, txn.received.date().isoformat()),
            },
            "insuinfo": [
                {
                    "balc": fen_to_wire(p.balance),
                    "insutype": p.insutype,
                    "psn_type": p.psn_type,
                    "psn_insu_stas": p.psn_insu_stas,
                    "insuplc_admdvs": p.insuplc_admdvs,
                }
            ],
            "cardinfo": {
                "card_sn": card.card_sn,
                "card_no": card.card_no,
                "pin_mode": card.pin_mode,
                "card_stas": "ACTIVE",  # a listed card never gets here (SPEC §8.1)
            },
        }
    )


def _age(brdy: str, today: str) -> int:
    try:
        by, bm, bd = (int(x) for x in brdy.split("-"))
        ty, tm, td = (int(x) for x in today.split("-"))
    except ValueError:
        return 0
    return ty - by - ((tm, td) < (bm, bd))
