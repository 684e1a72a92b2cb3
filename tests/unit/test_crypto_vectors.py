"""Every case of vectors/security.json, through the pure crypto module."""

from __future__ import annotations

import pytest

from gateway.domain import crypto
from gateway.domain.crypto import Alg
from gateway.domain.keys import DEV_KEYS, CardKeyCache, MasterKeys, Purpose
from tests.vectors import load

SEC = load("security.json")
CASES = SEC["cases"]
H = bytes.fromhex


def dt14(inf_time: str) -> str:
    return inf_time.replace("-", "").replace(":", "").replace(" ", "")


class TestPrimitives:
    def test_pboc_session_key(self):
        """The PBOC walkthrough's 3DES session key."""
        v = SEC["primitives"]["pboc_session_key"]
        assert crypto.ecb_encrypt(Alg.DES3, H(v["key"]), H(v["data"])) == H(v["expect"])

    @pytest.mark.parametrize("name", ["pboc_mac1", "pboc_mac2"])
    def test_pboc_mac(self, name):
        """Single-DES PBOC MAC of the walkthrough."""
        v = SEC["primitives"][name]
        assert crypto.pboc_mac(Alg.DES3, H(v["key"]), H(v["data"])) == H(v["expect"])

    def test_sm4_standard_vector(self):
        """GB/T 32907 SM4 example."""
        v = SEC["primitives"]["sm4_gbt32907"]
        assert crypto.ecb_encrypt(Alg.SM4, H(v["key"]), H(v["plain"])) == H(v["expect"])

    @pytest.mark.parametrize(("name", "alg"), [("div_3des", Alg.DES3), ("div_sm4", Alg.SM4)])
    def test_diversify(self, name, alg):
        """One level of Div(MK, D)."""
        v = SEC["primitives"][name]
        assert crypto.diversify(alg, H(v["mk"]), H(v["d"])) == H(v["expect"])

    def test_dev_keys_match_vectors(self):
        """The built-in development keys are the ones the vectors publish."""
        for alg, by_purpose in SEC["dev_master_keys_kv1"].items():
            for purpose, hexkey in by_purpose.items():
                assert DEV_KEYS[(Alg(alg), 1, Purpose(purpose))] == H(hexkey)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
class TestCases:
    def test_factors_and_keys(self, case):
        """Factors and two-level diversification."""
        alg, inp = Alg(case["alg"]), case["input"]
        if "card_sn" in inp:
            f1, f2 = crypto.card_factors(inp["card_sn"])
        else:
            f1, f2 = crypto.psam_factors(inp["psam_no"])
        assert f1 == H(case["factor1"])
        assert f2 == H(case["factor2"])
        mk = DEV_KEYS[(alg, case["kv"], Purpose.PUR)]
        if "pur_level1" in case:
            assert crypto.diversify(alg, mk, f1) == H(case["pur_level1"])
        cache = CardKeyCache(MasterKeys(DEV_KEYS))
        dpk = cache.derive(alg, case["kv"], Purpose.PUR, f1, f2)
        assert dpk == H(case.get("pur_card_key") or case["pur_psam_key"])
        if "tac_card_key" in case:
            dtk = cache.derive(alg, case["kv"], Purpose.TAC, f1, f2)
            assert dtk == H(case["tac_card_key"])
            assert crypto.tac_key(alg, dtk) == H(case["tac_key"])

    def test_session_mac1_tac_mac2(self, case):
        """Session key, MAC1, TAC and MAC2 of each case."""
        alg, inp = Alg(case["alg"]), case["input"]
        cardless = "card_sn" not in inp
        f1, f2 = crypto.psam_factors(inp["psam_no"]) if cardless else crypto.card_factors(inp["card_sn"])
        dpk = crypto.derive_key(alg, DEV_KEYS[(alg, 1, Purpose.PUR)], f1, f2)
        rand = H(inp["rand"] if cardless else inp["card_rand"])
        sk = crypto.session_key(alg, dpk, rand, inp["atc"], inp["tseq"])
        assert sk == H(case["session_key"])
        dt = dt14(inp["inf_time"])
        m1 = crypto.mac1_data(inp["amount_fen"], inp["infno"], inp["psam_no"], dt, inp["pin"])
        assert m1 == H(case["mac1_data"])
        assert crypto.same_mac(crypto.pboc_mac(alg, sk, m1), H(case["mac"]))
        if not cardless:
            dtk = crypto.derive_key(alg, DEV_KEYS[(alg, 1, Purpose.TAC)], f1, f2)
            td = crypto.tac_data(inp["amount_fen"], inp["infno"], inp["psam_no"], inp["tseq"], inp["atc"], dt)
            assert td == H(case["tac_data"])
            assert crypto.pboc_mac(alg, crypto.tac_key(alg, dtk), td) == H(case["tac"])
        r = case["response"]
        m2 = crypto.mac2_data(
            r["acct_pay"],
            r["psn_cash_pay"],
            r["fund_pay_sumamt"],
            inp["infno"],
            inp["psam_no"],
            dt,
            r["infcode"],
        )
        assert m2 == H(case["mac2_data"])
        assert crypto.pboc_mac(alg, sk, m2) == H(case["mac2"])

    def test_forged_mac_fails(self, case):
        """Flipping one bit of the data changes MAC1."""
        alg, inp = Alg(case["alg"]), case["input"]
        dt = dt14(inp["inf_time"])
        sk = H(case["session_key"])
        m1 = bytearray(crypto.mac1_data(inp["amount_fen"], inp["infno"], inp["psam_no"], dt, inp["pin"]))
        m1[3] ^= 1
        assert not crypto.same_mac(crypto.pboc_mac(alg, sk, bytes(m1)), H(case["mac"]))
