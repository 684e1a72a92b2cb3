"""Compact keys of the blacklist: the parts of a card_sn that vary, and a 64-bit fingerprint.

A card_sn is region(6 digits) + "D156000005" + 16-hex serial (SPEC §4.1). The middle is the same for every
card, so a card is fully identified by 11 bytes: BCD region (3) + serial (8). The fingerprint (BLAKE2b, 8
bytes) spreads cards over Redis buckets and is what the in-process cache keeps.
"""

from __future__ import annotations

import hashlib

CARD_MIDDLE = "D156000005"


def card_field(card_sn: str) -> bytes:
    """The 11 identifying bytes of a card: BCD region + serial.

    Raises:
        ValueError: not a card_sn of SPEC §4.1.
    """
    if len(card_sn) != 32 or card_sn[6:16].upper() != CARD_MIDDLE or not card_sn[:6].isdigit():
        raise ValueError("card_sn must be region(6) + D156000005 + 16-hex serial")
    return bytes.fromhex(card_sn[:6] + card_sn[16:32])


def card_from_field(field: bytes) -> str:
    """The card_sn of an 11-byte field."""
    h = field.hex().upper()
    return h[:6] + CARD_MIDDLE + h[6:]


def person_field(psn_no: str) -> bytes:
    """A person key as bytes (psn_no is ASCII letters and digits)."""
    return psn_no.encode("ascii")


def fingerprint(field: bytes) -> int:
    """64-bit fingerprint of a card or person field."""
    return int.from_bytes(hashlib.blake2b(field, digest_size=8).digest(), "big")
