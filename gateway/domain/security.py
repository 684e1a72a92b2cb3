"""Verification of a request's cryptograms and the response MAC2 (SPEC §4.3), over `CardKeyCache`."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.domain import crypto
from gateway.domain.codes import ResultCode
from gateway.domain.envelope import Envelope
from gateway.domain.errors import Declined
from gateway.domain.keys import CardKeyCache, Purpose


@dataclass(frozen=True, slots=True)
class Verified:
    """Proof that MAC1 (and TAC) verified; holds the session key MAC2 needs."""

    session_key: bytes = field(repr=False)
    infno: str
    psam_no: str
    dt14: str

    def mac2(self, infcode: int, acct: int = 0, cash: int = 0, fund: int = 0) -> str:
        """MAC2 over the response amounts and infcode, as 8 hex digits."""
        data = crypto.mac2_data(acct, cash, fund, self.infno, self.psam_no, self.dt14, infcode)
        alg = crypto.Alg.SM4 if len(self.session_key) == 16 else crypto.Alg.DES3
        return crypto.pboc_mac(alg, self.session_key, data).hex().upper()


class DeclinedAfterMac(Declined):
    """A refusal found after MAC1 verified (TAC): the response still carries MAC2 (SPEC §3)."""

    def __init__(self, code: ResultCode, message: str, verified: Verified) -> None:
        super().__init__(code, message)
        self.verified = verified


def verify(env: Envelope, amount_fen: int, keys: CardKeyCache) -> Verified:
    """Check MAC1, then TAC for card-bearing requests.

    Raises:
        Declined: KEY_UNKNOWN, MAC_INVALID or TAC_INVALID (the last two after MAC1 verified as
            `DeclinedAfterMac`, which carries the session key MAC2 needs).
    """
    s = env.safe
    if s.card_sn is not None:
        f1, f2 = crypto.card_factors(s.card_sn)
    else:
        f1, f2 = crypto.psam_factors(s.psam_no)
    dpk = keys.derive(s.alg, s.kv, Purpose.PUR, f1, f2)
    if dpk is None:
        raise Declined(ResultCode.KEY_UNKNOWN, f"no {s.alg} purchase key of version {s.kv}")
    sk = crypto.session_key(s.alg, dpk, s.random, s.atc, s.tseq)
    dt14 = env.dt14
    m1 = crypto.mac1_data(amount_fen, env.infno, s.psam_no, dt14, s.pin)
    if not crypto.same_mac(crypto.pboc_mac(s.alg, sk, m1), s.mac):
        raise Declined(ResultCode.MAC_INVALID, "MAC1 does not verify")
    verified = Verified(sk, env.infno, s.psam_no, dt14)
    if s.card_sn is not None:
        assert s.tac is not None
        dtk = keys.derive(s.alg, s.kv, Purpose.TAC, f1, f2)
        if dtk is None:
            raise DeclinedAfterMac(ResultCode.KEY_UNKNOWN, f"no {s.alg} TAC key of version {s.kv}", verified)
        td = crypto.tac_data(amount_fen, env.infno, s.psam_no, s.tseq, s.atc, dt14)
        if not crypto.same_mac(crypto.pboc_mac(s.alg, crypto.tac_key(s.alg, dtk), td), s.tac):
            raise DeclinedAfterMac(ResultCode.TAC_INVALID, "TAC does not verify", verified)
    return verified
