"""Pure core: money, wire codes, PIN policy, envelope and input parsing."""

from __future__ import annotations

import contextlib
import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain import pin
from gateway.domain.codes import WIRE, ResultCode
from gateway.domain.envelope import parse_envelope
from gateway.domain.errors import Declined
from gateway.domain.money import AmountError, fen_to_wire, mul_ratio_half_up, yuan_to_fen
from gateway.domain.registry import mask
from gateway.domain.txtypes import parse_input
from loadtest.terminal import SimCard, Terminal
from rules.params import PinCaps


class TestMoney:
    @pytest.mark.parametrize(
        ("wire", "fen"), [(0, 0), (12.3, 1230), ("12.34", 1234), (0.01, 1), (100, 10000), (1e2, 10000)]
    )
    def test_valid_amounts(self, wire, fen):
        """Numbers and decimal strings in yuan become exact fen."""
        assert yuan_to_fen(wire) == fen

    @pytest.mark.parametrize("wire", [0.001, "1.234", -1, "-0.01", "abc", True, None, [], float("nan"), "Infinity"])
    def test_invalid_amounts(self, wire):
        """Three decimals, negatives and non-numbers are refused."""
        with pytest.raises(AmountError):
            yuan_to_fen(wire)

    def test_round_trip_every_fen_below_ten_thousand_yuan(self):
        """fen → wire float → fen is exact (the JSON number has at most two decimals)."""
        for f in range(0, 1_000_000, 7):
            assert yuan_to_fen(fen_to_wire(f)) == f

    @pytest.mark.parametrize(
        ("fen", "num", "den", "out"), [(8509, 85, 100, 7233), (10010, 85, 100, 8509), (5, 1, 10, 1)]
    )
    def test_half_up(self, fen, num, den, out):
        """Ratios round half-up to the fen."""
        assert mul_ratio_half_up(fen, num, den) == out
        assert out == int((Decimal(fen) * num / den).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


class TestCodes:
    def test_every_code_has_a_wire_mapping(self):
        """SPEC §5: every outcome maps to an infcode and an HTTP status."""
        assert set(WIRE) == set(ResultCode)
        for code, (infcode, status) in WIRE.items():
            assert infcode in (0, -1, -2)
            assert (infcode == 0) == (code is ResultCode.OK)
            assert 200 <= status < 600


CAPS = PinCaps(per_txn=30000, per_day=60000, per_day_count=10)


class TestPinPolicy:
    def test_verified_pays_without_limit(self):
        """A chip-verified PIN lets the account pay up to balance."""
        a = pin.allowance("VERIFIED", "PIN", True, CAPS, pin.DefaultPinUsage())
        assert a.limit is None
        assert not a.default_pin

    def test_default_on_pin_card_refused(self):
        """Never let a default PIN pay for a holder who chose a PIN."""
        with pytest.raises(Declined) as exc:
            pin.allowance("DEFAULT", "PIN", True, CAPS, pin.DefaultPinUsage())
        assert exc.value.decline.code is ResultCode.PIN_REQUIRED

    @pytest.mark.parametrize(("used", "limit"), [(0, 30000), (40000, 20000), (60000, 0), (70000, 0)])
    def test_default_caps(self, used, limit):
        """Per-transaction and per-day caps bound the account payment."""
        a = pin.allowance("DEFAULT", "DEFAULT", True, CAPS, pin.DefaultPinUsage(1, used))
        assert a.limit == limit
        assert a.default_pin

    def test_default_count_limit(self):
        """Past the daily count the request is refused."""
        with pytest.raises(Declined) as exc:
            pin.allowance("DEFAULT", "DEFAULT", True, CAPS, pin.DefaultPinUsage(10, 0))
        assert exc.value.decline.code is ResultCode.DEFAULT_PIN_LIMIT

    @pytest.mark.parametrize(("p", "flag"), [("NONE", True), ("VERIFIED", False), ("DEFAULT", False)])
    def test_no_account(self, p, flag):
        """pin NONE, or acct_used_flag 0, means no account payment."""
        assert pin.allowance(p, "DEFAULT", flag, CAPS, pin.DefaultPinUsage()).limit == 0


def _request(infno: str = "2207") -> dict[str, Any]:
    t = Terminal("H33020000013", "医院", "330200000001")
    t.sign_no = "S" * 30
    card = SimCard("330200D15600000500BF7C7A48FB4966", "A12345678", "33020000000000000001")
    if infno == "9001":
        return t.sign_in().body
    return t.settle(infno, card, [("X1", "2", "1.50")]).body


class TestEnvelope:
    def test_valid_request_parses(self):
        """A terminal-simulator request parses into typed values with amounts in fen."""
        env = parse_envelope(_request())
        inp = parse_input(env)
        assert env.infno == "2207"
        assert env.safe.card_sn == "330200D15600000500BF7C7A48FB4966"
        assert inp.medfee_sumamt == 300  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("path", "value", "code", "needle"),
        [
            (("infno",), "9999", ResultCode.UNSUPPORTED_INFNO, "9999"),
            (("infno",), 2207, ResultCode.MALFORMED, "infno"),
            (("msgid",), "short", ResultCode.MALFORMED, "msgid"),
            (("fixmedins_code",), None, ResultCode.MALFORMED, "fixmedins_code"),
            (("inf_time",), "2026-13-40 99:00:00", ResultCode.MALFORMED, "inf_time"),
            (("mdtrtarea_admvs",), "33A200", ResultCode.MALFORMED, "mdtrtarea_admvs"),
            (("opter_name",), "x" * 51, ResultCode.MALFORMED, "opter_name"),
            (("dev_safe_info", "psam_no"), "33020000000", ResultCode.MALFORMED, "psam_no"),
            (("dev_safe_info", "mac"), "ZZZZZZZZ", ResultCode.MALFORMED, "mac"),
            (("dev_safe_info", "tac"), "1234567", ResultCode.MALFORMED, "tac"),
            (("dev_safe_info", "card_rand"), "G0000000", ResultCode.MALFORMED, "card_rand"),
            (("dev_safe_info", "tseq"), 2**32, ResultCode.MALFORMED, "tseq"),
            (("dev_safe_info", "tseq"), True, ResultCode.MALFORMED, "tseq"),
            (("dev_safe_info", "kv"), 0, ResultCode.MALFORMED, "kv"),
            (("dev_safe_info", "alg"), "AES", ResultCode.MALFORMED, "alg"),
            (("dev_safe_info", "atc"), 65536, ResultCode.MALFORMED, "atc"),
            (("dev_safe_info", "card_sn"), "330200D15600000500BF7C7A48FB49", ResultCode.MALFORMED, "card_sn"),
            (("input", "data", "medfee_sumamt"), 3.001, ResultCode.MALFORMED, "medfee_sumamt"),
            (("input", "data", "medfee_sumamt"), -3, ResultCode.MALFORMED, "medfee_sumamt"),
            (("input", "data", "acct_used_flag"), 1, ResultCode.MALFORMED, "acct_used_flag"),
            (("input", "data", "card_sn"), "330200D15600000500BF7C7A48FB4967", ResultCode.MALFORMED, "card_sn"),
            (("input", "feedetail"), [], ResultCode.MALFORMED, "feedetail"),
            (("input", "data", "mdtrt_cert_type"), "02", ResultCode.MALFORMED, "mdtrt_cert_type"),
        ],
    )
    def test_bad_field_names_the_field(self, path, value, code, needle):
        """Each bad field gets its SPEC §5 code and a message naming it."""
        body = _request()
        node = body
        for key in path[:-1]:
            node = node[key]
        if value is None:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        with pytest.raises(Declined) as exc:
            parse_input(parse_envelope(body))
        assert exc.value.decline.code is code
        assert needle in exc.value.decline.message

    def test_cardless_pin_must_be_none(self):
        """A card-less request cannot claim a verified PIN."""
        body = _request("9001")
        body["dev_safe_info"]["pin"] = "VERIFIED"
        with pytest.raises(Declined) as exc:
            parse_envelope(body)
        assert "pin" in exc.value.decline.message

    @settings(max_examples=300, deadline=None)
    @given(st.data())
    def test_mutations_only_ever_decline(self, data):
        """Random mutations of a valid request parse or raise Declined, nothing else."""
        body = copy.deepcopy(_request())
        junk = st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=40),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        )
        for _ in range(data.draw(st.integers(1, 4))):
            node: Any = body
            while isinstance(node, dict) and node and data.draw(st.booleans()):
                key = data.draw(st.sampled_from(sorted(node)))
                if not isinstance(node[key], (dict, list)) or not node[key]:
                    break
                node = node[key] if isinstance(node[key], dict) else node[key][0]
            if isinstance(node, dict) and node:
                key = data.draw(st.sampled_from(sorted(node)))
                node[key] = data.draw(junk)
        try:
            parse_input(parse_envelope(body))
        except Declined as exc:
            # a mutation may still be valid, so pytest.raises does not fit here
            assert exc.decline.code in (ResultCode.MALFORMED, ResultCode.UNSUPPORTED_INFNO)  # noqa: PT017

    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
        )
    )
    def test_arbitrary_json_only_ever_declines(self, value):
        """Any JSON value at all is refused with a SPEC error."""
        with contextlib.suppress(Declined):
            parse_input(parse_envelope(value))


class TestMask:
    def test_mask_hides_the_middle(self):
        """Identifiers in logs keep only their ends."""
        assert mask("330200D15600000500BF7C7A48FB4966") == "330200****4966"
        assert "D156" not in mask("330200D15600000500BF7C7A48FB4966")
        assert mask(None) == "-"
