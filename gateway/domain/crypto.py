"""Card and PSAM cryptography of SPEC §4: diversification, session keys, PBOC MAC, MAC1, TAC, MAC2.

Pure functions over bytes. 3DES is 2-key EDE (K1 K2 K1); a single-DES key K is run as K K K.
Every comparison of a cryptogram goes through `same_mac`, which is constant-time.
"""

from __future__ import annotations

import functools
import hmac
from enum import StrEnum

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes


class Alg(StrEnum):
    """Card algorithm: 3DES for 2nd-generation cards, SM4 for 3rd generation."""

    DES3 = "3DES"
    SM4 = "SM4"


PIN_BYTE = {"NONE": 0x00, "VERIFIED": 0x01, "DEFAULT": 0x02}

_ECB = modes.ECB()  # noqa: S305 - SPEC §4.2 diversification and session keys are single-block ECB


def _encryptor(alg: Alg, key: bytes) -> CipherContext:
    """An ECB encryptor. ECB carries nothing from one block to the next, so one context may encrypt any
    number of whole-block inputs, one `update` at a time."""
    if alg is Alg.SM4:
        if len(key) != 16:
            raise ValueError("SM4 key must be 16 bytes")
        return Cipher(algorithms.SM4(key), _ECB).encryptor()
    if len(key) == 8:
        key = key * 3
    elif len(key) == 16:
        key = key + key[:8]
    else:
        raise ValueError("DES key must be 8 or 16 bytes")
    return Cipher(TripleDES(key), _ECB).encryptor()


def _ecb(alg: Alg, key: bytes, data: bytes) -> bytes:
    enc = _encryptor(alg, key)
    return enc.update(data) + enc.finalize()


def ecb_encrypt(alg: Alg, key: bytes, data: bytes) -> bytes:
    """ECB-encrypt whole blocks: SM4 (16-byte key), 2-key 3DES (16) or single DES (8)."""
    return _ecb(alg, key, data)


_ONES = (1 << 64) - 1


def _invert(d: bytes) -> bytes:
    return (int.from_bytes(d, "big") ^ _ONES).to_bytes(8, "big")


def _diversify_with(alg: Alg, enc: CipherContext, factor: bytes) -> bytes:
    if len(factor) != 8:
        raise ValueError("diversification factor must be 8 bytes")
    if alg is Alg.SM4:
        return enc.update(factor + _invert(factor))
    return enc.update(factor) + enc.update(_invert(factor))


def diversify(alg: Alg, master: bytes, factor: bytes) -> bytes:
    """`Div(MK, D)` of SPEC §4.2 for an 8-byte factor; returns a 16-byte key."""
    return _diversify_with(alg, _encryptor(alg, master), factor)


@functools.lru_cache(maxsize=256)
def _level_one(alg: Alg, master: bytes, f1: bytes) -> CipherContext:
    """An encryptor under Div(MK, f1). Factor 1 is the region, so there are few: keeping them saves three of
    the four cipher set-ups of every card's key derivation. Held in process memory only, like the master.
    A context is not for two threads at once: the gateway and the load tester each use one thread (an event
    loop) per process."""
    return _encryptor(alg, diversify(alg, master, f1))


def bcd(digits: str) -> bytes:
    """Packed BCD of an even-length decimal string."""
    if len(digits) % 2 or not digits.isdigit() or not digits.isascii():
        raise ValueError("BCD needs an even number of decimal digits")
    return bytes.fromhex(digits)


def card_factors(card_sn: str) -> tuple[bytes, bytes]:
    """Factor 1 (region ASCII + "sx") and factor 2 (the 8-byte serial) of a card."""
    return (card_sn[0:6].encode("ascii") + b"sx", bytes.fromhex(card_sn[16:32]))


def psam_factors(psam_no: str) -> tuple[bytes, bytes]:
    """Factor 1 (the PSAM's region) and factor 2 (BCD(psam_no) ‖ 00 00) for card-less requests."""
    return (psam_no[0:6].encode("ascii") + b"sx", bcd(psam_no) + b"\x00\x00")


def derive_key(alg: Alg, master: bytes, f1: bytes, f2: bytes) -> bytes:
    """Two-level diversification: Div(Div(MK, f1), f2)."""
    if len(f1) != 8:
        raise ValueError("diversification factor must be 8 bytes")
    return _diversify_with(alg, _level_one(alg, master, f1), f2)


def session_key(alg: Alg, dpk: bytes, rand: bytes, atc: int, tseq: int) -> bytes:
    """Session key from seed = R ‖ ATC(2) ‖ low 2 bytes of tseq (SPEC §4.3)."""
    seed = rand + atc.to_bytes(2, "big") + (tseq & 0xFFFF).to_bytes(2, "big")
    if alg is Alg.SM4:
        return _ecb(alg, dpk, seed + b"\x80" + bytes(7))
    return _ecb(alg, dpk, seed)


def pboc_mac(alg: Alg, key: bytes, data: bytes) -> bytes:
    """PBOC MAC: pad 80 00.., CBC with zero IV (single DES or SM4), leftmost 4 bytes."""
    block = 16 if alg is Alg.SM4 else 8
    padded = data + b"\x80"
    padded += bytes(-len(padded) % block)
    # CBC with a zero IV: the last ciphertext block of a CBC encryption is the MAC.
    if alg is Alg.SM4:
        enc = Cipher(algorithms.SM4(key), modes.CBC(bytes(16))).encryptor()
    else:
        if len(key) != 8:
            raise ValueError("the PBOC DES MAC takes an 8-byte session key")
        enc = Cipher(TripleDES(key * 3), modes.CBC(bytes(8))).encryptor()
    out = enc.update(padded) + enc.finalize()
    return out[-block:][:4]


def tac_key(alg: Alg, dtk: bytes) -> bytes:
    """KT = DTK[0:8] XOR DTK[8:16] for 3DES, DTK itself for SM4."""
    if alg is Alg.SM4:
        return dtk
    return bytes(a ^ b for a, b in zip(dtk[:8], dtk[8:16], strict=True))


def mac1_data(amount_fen: int, infno: str, psam_no: str, dt14: str, pin: str) -> bytes:
    """AMT ‖ TYPE ‖ TERM ‖ DT ‖ PINF."""
    return amount_fen.to_bytes(4, "big") + bcd(infno) + bcd(psam_no) + bcd(dt14) + bytes([PIN_BYTE[pin]])


def tac_data(amount_fen: int, infno: str, psam_no: str, tseq: int, atc: int, dt14: str) -> bytes:
    """AMT ‖ TYPE ‖ TERM ‖ TSEQ ‖ ATC ‖ DT."""
    return (
        amount_fen.to_bytes(4, "big")
        + bcd(infno)
        + bcd(psam_no)
        + tseq.to_bytes(4, "big")
        + atc.to_bytes(2, "big")
        + bcd(dt14)
    )


def mac2_data(acct: int, cash: int, fund: int, infno: str, psam_no: str, dt14: str, infcode: int) -> bytes:
    """ACCT ‖ CASH ‖ FUND ‖ TYPE ‖ TERM ‖ DT ‖ INFCODE (signed)."""
    return (
        acct.to_bytes(4, "big")
        + cash.to_bytes(4, "big")
        + fund.to_bytes(4, "big")
        + bcd(infno)
        + bcd(psam_no)
        + bcd(dt14)
        + infcode.to_bytes(4, "big", signed=True)
    )


def same_mac(expected: bytes, given: bytes) -> bool:
    """Constant-time comparison of two cryptograms."""
    return hmac.compare_digest(expected, given)
