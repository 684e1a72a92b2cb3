"""SPEC §5 refusals of bad input end to end: the HTTP status and err_code of the table, infcode -2, a message
naming the problem, MAC2 exactly when the request MAC verified, never a 500, and NOTHING changed (core person
and ledger, settlements, journal rows when the request was not authenticated)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from gateway.domain.crypto import Alg
from gateway.domain.keys import Purpose
from loadtest.terminal import CALL_SERVICE, SHANGHAI, Built, SimCard, Terminal, yuan
from tests.conftest import Fleet
from tests.e2e.helpers import (
    assert_declined,
    assert_ok,
    core_ledger,
    core_person,
    fen,
    flip_hex,
    journal_rows,
    money_state,
    mutated,
    no_mac2,
    pg_rows,
    plain_items,
    post_raw,
    settlement_rows,
)


async def snapshot(core_url: str, dsn: str, psn_no: str) -> dict[str, Any]:
    """Everything a refused request must leave alone."""
    ledger = await core_ledger(core_url)
    counts = await pg_rows(
        dsn,
        "SELECT (SELECT count(*) FROM journal) AS journal, (SELECT count(*) FROM settlements) AS settlements,"
        " (SELECT count(*) FROM reversal_queue) AS reversals,"
        " (SELECT count(*) FROM sign_sessions) AS sessions",
    )
    return {
        "person": money_state(await core_person(core_url, psn_no)),
        "core": {k: len(v) for k, v in ledger.items()},
        "pg": counts[0],
    }


class Case:
    """A fresh card and terminal, with the state to compare after a refusal."""

    def __init__(self, fleet: Fleet, t: Terminal, card: SimCard, world: dict[str, Any], core_url: str, dsn: str):
        self.fleet, self.t, self.card, self.world, self.core_url, self.dsn = fleet, t, card, world, core_url, dsn
        self.before: dict[str, Any] = {}

    def items(self) -> list[tuple[str, str, str]]:
        a1, a2 = plain_items(self.world, "A", 2)
        return [(a1["med_list_codg"], "2", a1["price"]), (a2["med_list_codg"], "1", a2["price"])]

    def settle(self, **kw: Any) -> Built:
        return self.t.settle("2207", self.card, self.items(), **kw)

    async def snap(self) -> None:
        self.before = await snapshot(self.core_url, self.dsn, self.card.psn_no)

    async def send(self, body: bytes) -> tuple[int, dict[str, Any]]:
        status, raw = await post_raw(self.fleet, body)
        assert status != 500, raw
        return status, orjson.loads(raw)

    async def unchanged(self, *, journaled: int = 0) -> None:
        """Nothing changed but, for an authenticated request, `journaled` new journal rows."""
        after = await snapshot(self.core_url, self.dsn, self.card.psn_no)
        assert after["person"] == self.before["person"]
        assert after["core"] == self.before["core"]
        want = dict(self.before["pg"])
        want["journal"] += journaled
        assert after["pg"] == want


def line_of(sn: int, code: str, cnt: int, pric_fen: int, amt_fen: int | None = None) -> dict[str, Any]:
    """A feedetail line with exact amounts."""
    return {
        "feedetl_sn": f"{sn:04d}", "med_list_codg": code, "cnt": cnt, "pric": yuan(pric_fen),
        "det_item_fee_sumamt": yuan(cnt * pric_fen if amt_fen is None else amt_fen),
    }  # fmt: skip


def simple_lines(case: Case) -> tuple[list[dict[str, Any]], int]:
    """Two A lines and their total in fen."""
    a1, a2 = plain_items(case.world, "A", 2)
    p1, p2 = fen(a1["price"]), fen(a2["price"])
    return [line_of(1, a1["med_list_codg"], 2, p1), line_of(2, a2["med_list_codg"], 1, p2)], 2 * p1 + p2


def build_settle(case: Case, lines: list[dict[str, Any]], medfee_fen: int, **data: Any) -> Built:
    """A 2207 with hand-made lines and medfee_sumamt (MAC1/TAC over medfee_fen), data fields overridable."""
    d = {
        "psn_no": case.card.psn_no, "mdtrt_cert_type": "03", "mdtrt_cert_no": case.card.card_no,
        "card_sn": case.card.card_sn, "med_type": "11", "medfee_sumamt": yuan(medfee_fen), "insutype": "310",
        "acct_used_flag": "1", **data,
    }  # fmt: skip
    return case.t.build("2207", {"data": d, "feedetail": lines}, card=case.card, pin="VERIFIED", amount_fen=medfee_fen)


@pytest.fixture
async def case(fleet: Fleet, world, core_url, settings) -> AsyncIterator[Case]:
    """A fresh card (with an account) at the first hospital, state snapshot taken."""
    t = await fleet.terminal()
    card, _ = fleet.card(insutype="310", min_balance=20000)
    c = Case(fleet, t, card, world, core_url, settings.pg_dsn)
    await c.snap()
    return c


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A body mutation: set a dotted path (list indexes as digits)."""

    def fn(body: dict[str, Any]) -> None:
        *head, last = path.split(".")
        obj: Any = body
        for k in head:
            obj = obj[int(k)] if k.isdigit() else obj[k]
        obj[int(last) if last.isdigit() else last] = value

    return fn


def _del(path: str) -> Callable[[dict[str, Any]], None]:
    def fn(body: dict[str, Any]) -> None:
        *head, last = path.split(".")
        obj: Any = body
        for k in head:
            obj = obj[int(k)] if k.isdigit() else obj[k]
        del obj[last]

    return fn


class TestMalformed:
    @pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe{}", b'{"infno": "2207",'])
    async def test_not_json(self, case: Case, raw):
        """A body that is not JSON is 400 MALFORMED naming the body; nothing journaled."""
        status, resp = await case.send(raw)
        assert_declined(status, resp, "MALFORMED", 400)
        assert "body" in resp["err_msg"]
        assert no_mac2(resp)
        await case.unchanged()

    @pytest.mark.parametrize("raw", [b"[1, 2]", b'"2207"', b"42", b"null"])
    async def test_not_an_object(self, case: Case, raw):
        """A JSON body that is not an object is 400 MALFORMED naming the body."""
        status, resp = await case.send(raw)
        assert_declined(status, resp, "MALFORMED", 400)
        assert "body" in resp["err_msg"]
        await case.unchanged()

    @pytest.mark.parametrize(
        "path",
        [
            "infno", "msgid", "fixmedins_code", "opter", "opter_name", "inf_time", "input", "dev_safe_info",
            "mdtrtarea_admvs", "insuplc_admdvs", "input.data", "input.feedetail", "input.data.psn_no",
            "input.data.medfee_sumamt", "input.data.card_sn", "input.data.acct_used_flag",
            "input.feedetail.0.det_item_fee_sumamt", "input.feedetail.0.med_list_codg", "dev_safe_info.psam_no",
            "dev_safe_info.tseq", "dev_safe_info.mac", "dev_safe_info.tac", "dev_safe_info.card_rand",
            "dev_safe_info.atc", "dev_safe_info.kv", "dev_safe_info.pin", "dev_safe_info.card_sn",
        ],
    )  # fmt: skip
    async def test_missing_field(self, case: Case, path):
        """A missing field is 400 MALFORMED and the message names it."""
        status, resp = await case.send(mutated(case.settle(), _del(path)))
        assert_declined(status, resp, "MALFORMED", 400)
        assert path.split(".")[-1] in resp["err_msg"], resp["err_msg"]
        assert no_mac2(resp)
        await case.unchanged()

    @pytest.mark.parametrize(
        ("path", "value"),
        [
            ("dev_safe_info.tseq", "7"), ("dev_safe_info.tseq", 1.5), ("dev_safe_info.tseq", True),
            ("dev_safe_info.tseq", -1), ("dev_safe_info.tseq", 2**32),
            ("dev_safe_info.atc", "3"), ("dev_safe_info.atc", 65536), ("dev_safe_info.kv", 0),
            ("dev_safe_info.kv", 256), ("dev_safe_info.alg", "AES"), ("dev_safe_info.pin", "verified"),
            ("inf_time", 20261127), ("inf_time", "2026-13-40 25:61:61"), ("inf_time", "2026/11/27 10:00:00"),
            ("input", [1]), ("input.data", "x"), ("input.feedetail", {"a": 1}), ("input.feedetail", []),
            ("input.data.medfee_sumamt", "abc"), ("input.data.medfee_sumamt", True),
            ("input.data.acct_used_flag", 1), ("input.data.acct_used_flag", "2"),
            ("input.data.mdtrt_cert_type", "01"), ("input.feedetail.0.cnt", "two"), ("input.feedetail.0.cnt", 0),
            ("opter", 7), ("opter_name", "x" * 51), ("infver", ""), ("mdtrtarea_admvs", "33020"),
            ("insuplc_admdvs", "ABCDEF"), ("sign_no", 12345), ("input.feedetail.0", "line"),
        ],
    )  # fmt: skip
    async def test_mistyped_field(self, case: Case, path, value):
        """A field of the wrong type or form is 400 MALFORMED naming it."""
        status, resp = await case.send(mutated(case.settle(), _set(path, value)))
        assert_declined(status, resp, "MALFORMED", 400)
        name = path.split(".")[-1]
        assert (name if not name.isdigit() else "feedetail") in resp["err_msg"], resp["err_msg"]
        await case.unchanged()

    @pytest.mark.parametrize(
        ("path", "make"),
        [
            ("msgid", lambda v: v[:-1]), ("msgid", lambda v: v + "1"), ("msgid", lambda v: "X" + v[1:]),
            ("fixmedins_code", lambda v: v + "0"),
            ("dev_safe_info.psam_no", lambda v: v[:-1]), ("dev_safe_info.psam_no", lambda v: v + "1"),
            ("dev_safe_info.psam_no", lambda v: "A" + v[1:]),
            ("dev_safe_info.card_sn", lambda v: v[:-1]), ("dev_safe_info.card_sn", lambda v: v + "0"),
            ("dev_safe_info.card_sn", lambda v: v[:6] + "D156000006" + v[16:]),
            ("input.data.mdtrt_cert_no", lambda v: v + "1"),
        ],
    )  # fmt: skip
    async def test_wrong_length(self, case: Case, path, make):
        """msgid, psam_no, card_sn (and friends) of the wrong length or form are 400 MALFORMED naming them."""
        b = case.settle()
        keys = path.split(".")
        value = b.body
        for k in keys:
            value = value[k]
        status, resp = await case.send(mutated(b, _set(path, make(value))))
        assert_declined(status, resp, "MALFORMED", 400)
        assert keys[-1] in resp["err_msg"], resp["err_msg"]
        await case.unchanged()

    @pytest.mark.parametrize("field", ["mac", "tac", "card_rand"])
    @pytest.mark.parametrize("bad", ["ZZZZZZZZ", "12345G78", "1234567", "123456789", ""])
    async def test_non_hex_cryptogram(self, case: Case, field, bad):
        """mac, tac and card_rand must be 8 hex digits: otherwise 400 MALFORMED naming the field."""
        status, resp = await case.send(mutated(case.settle(), _set(f"dev_safe_info.{field}", bad)))
        assert_declined(status, resp, "MALFORMED", 400)
        assert field in resp["err_msg"]
        await case.unchanged()

    async def test_card_less_rand_non_hex(self, fleet: Fleet, case: Case):
        """The card-less block's rand must be 8 hex digits."""
        b = case.t.reverse(case.card.psn_no, case.t.next_msgid(datetime.now(SHANGHAI)), "2207")
        status, resp = await case.send(mutated(b, _set("dev_safe_info.rand", "XYZ12345")))
        assert_declined(status, resp, "MALFORMED", 400)
        assert "rand" in resp["err_msg"]
        await case.unchanged()

    @pytest.mark.parametrize(
        ("path", "value"),
        [
            ("input.data.medfee_sumamt", 12.345), ("input.data.medfee_sumamt", -1.0),
            ("input.data.medfee_sumamt", -0.01), ("input.data.medfee_sumamt", "1e400"),
            ("input.feedetail.0.det_item_fee_sumamt", 1.001), ("input.feedetail.0.det_item_fee_sumamt", -5),
            ("input.feedetail.0.pric", -1.0),
        ],
    )  # fmt: skip
    async def test_bad_amount(self, case: Case, path, value):
        """Amounts with three decimals or negative are 400 MALFORMED naming the field."""
        status, resp = await case.send(mutated(case.settle(), _set(path, value)))
        assert_declined(status, resp, "MALFORMED", 400)
        assert path.split(".")[-1] in resp["err_msg"], resp["err_msg"]
        await case.unchanged()

    async def test_card_sn_mismatch(self, fleet: Fleet, case: Case):
        """input.data.card_sn different from dev_safe_info.card_sn is 400 MALFORMED naming card_sn."""
        other, _ = fleet.card()
        status, resp = await case.send(mutated(case.settle(), _set("input.data.card_sn", other.card_sn)))
        assert_declined(status, resp, "MALFORMED", 400)
        assert "card_sn" in resp["err_msg"]
        await case.unchanged()

    async def test_card_no_of_another_card(self, fleet: Fleet, case: Case):
        """mdtrt_cert_no naming another card than the chip's is refused naming it; nothing posted."""
        other, _ = fleet.card()
        lines, total = simple_lines(case)
        b = build_settle(case, lines, total, mdtrt_cert_no=other.card_no)
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "MALFORMED", 400)
        assert "mdtrt_cert_no" in resp["err_msg"]
        assert b.mac2_ok(resp)
        await case.unchanged(journaled=1)

    async def test_psn_no_not_holder(self, fleet: Fleet, case: Case):
        """input.data.psn_no of someone else than the card holder is refused naming it; nothing posted."""
        _, other = fleet.card(insutype="310", min_balance=20000)
        before_other = money_state(await core_person(case.core_url, other["psn_no"]))
        lines, total = simple_lines(case)
        b = build_settle(case, lines, total, psn_no=other["psn_no"])
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "MALFORMED", 400)
        assert "psn_no" in resp["err_msg"]
        await case.unchanged(journaled=1)
        assert money_state(await core_person(case.core_url, other["psn_no"])) == before_other


class TestUnsupported:
    @pytest.mark.parametrize("infno", ["9999", "1102", "2209", "2306"])
    async def test_unknown_infno(self, case: Case, infno):
        """A well-formed infno not in SPEC §6 is UNSUPPORTED_INFNO with HTTP 200."""
        status, resp = await case.send(mutated(case.settle(), _set("infno", infno)))
        assert_declined(status, resp, "UNSUPPORTED_INFNO", 200)
        assert infno in resp["err_msg"]
        await case.unchanged()

    @pytest.mark.parametrize("infno", ["22O7", "220", 2207, None])
    async def test_bad_infno_form(self, case: Case, infno):
        """An infno that is not 4 digits is 400 MALFORMED naming infno."""
        status, resp = await case.send(mutated(case.settle(), _set("infno", infno)))
        assert_declined(status, resp, "MALFORMED", 400)
        assert "infno" in resp["err_msg"]
        await case.unchanged()


async def slowly(pieces: list[bytes]) -> AsyncIterator[bytes]:
    """Send body pieces with a pause between them, as a slow network would."""
    for i, piece in enumerate(pieces):
        if i:
            await asyncio.sleep(0.05)
        yield piece


class TestTooLarge:
    async def test_oversize_with_length(self, case: Case, settings):
        """A body over max_body_bytes is 413 TOO_LARGE (Content-Length known)."""
        b = case.settle()
        body = dict(b.body)
        body["padding"] = "x" * (settings.max_body_bytes + 1)
        status, resp = await case.send(orjson.dumps(body))
        assert_declined(status, resp, "TOO_LARGE", 413)
        await case.unchanged()

    async def test_oversize_chunked(self, fleet: Fleet, case: Case, settings):
        """A chunked body over the limit, arriving in pieces, is 413 TOO_LARGE as well."""
        pieces = [b'{"infno":"2207","padding":"', *[b"x" * 65536] * (settings.max_body_bytes // 65536 + 2), b'"}']
        resp = await fleet.client.post(CALL_SERVICE, data=slowly(pieces))
        body = orjson.loads(await resp.read())
        assert_declined(resp.status, body, "TOO_LARGE", 413)
        await case.unchanged()

    @pytest.mark.parametrize("size", ["small", "limit"])
    async def test_body_arriving_in_pieces_is_read_whole(self, fleet: Fleet, case: Case, settings, size):
        """A valid body (small, or exactly max_body_bytes) that reaches the socket in pieces is read whole."""
        b = case.settle()
        body = dict(b.body)
        if size == "limit":
            body["padding"] = ""
            body["padding"] = "x" * (settings.max_body_bytes - len(orjson.dumps(body)))
        raw = orjson.dumps(body)
        assert len(raw) <= settings.max_body_bytes
        cut = len(raw) // 2
        resp = await fleet.client.post(
            CALL_SERVICE, data=slowly([raw[:cut], raw[cut:]]), headers={"Content-Type": "application/json"}
        )
        got = orjson.loads(await resp.read())
        assert_ok(resp.status, got)
        assert b.mac2_ok(got)


class TestPsam:
    def _terminal(self, fleet: Fleet, code: str, psam_no: str, sign_no: str | None, seq: int) -> Terminal:
        import itertools

        inst = next(i for i in fleet.world["institutions"] if i["fixmedins_code"] == code)
        t = fleet.terminals.get(f"{code}/{psam_no}")
        if t is None:
            t = Terminal(code, inst["fixmedins_name"], psam_no)
            t._seq = itertools.count(seq)
            fleet.terminals[f"{code}/{psam_no}"] = t
        t.sign_no = sign_no
        return t

    async def test_unknown_psam(self, fleet: Fleet, case: Case):
        """A PSAM not in the registry is PSAM_UNKNOWN (before sign-in and MAC); nothing journaled."""
        t = self._terminal(fleet, case.t.fixmedins_code, "330200999999", case.t.sign_no, 8001)
        b = t.settle("2207", case.card, case.items())
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "PSAM_UNKNOWN")
        assert "330200999999" in resp["err_msg"]
        assert no_mac2(resp)
        await case.unchanged()

    async def test_revoked_psam(self, fleet: Fleet, case: Case):
        """The world's REVOKED PSAM is PSAM_REVOKED."""
        inst, psam = next((i, p) for i in fleet.world["institutions"] for p in i["psams"] if p["status"] == "REVOKED")
        t = self._terminal(fleet, inst["fixmedins_code"], psam["psam_no"], None, 1)
        for b in (t.sign_in(), t.settle("2102", case.card, case.items())):
            status, resp = await case.send(orjson.dumps(b.body))
            assert_declined(status, resp, "PSAM_REVOKED")
            assert psam["psam_no"] in resp["err_msg"]
            assert no_mac2(resp)
        await case.unchanged()

    async def test_psam_of_another_institution(self, fleet: Fleet, case: Case):
        """A valid PSAM used under another institution's code is PSAM_UNKNOWN, sign-in included."""
        pharmacy = next(i for i in fleet.world["institutions"] if i["kind"] == "pharmacy")
        foreign = pharmacy["psams"][0]["psam_no"]
        t = self._terminal(fleet, case.t.fixmedins_code, foreign, case.t.sign_no, 8501)
        for b in (t.sign_in(), t.settle("2207", case.card, case.items())):
            status, resp = await case.send(orjson.dumps(b.body))
            assert_declined(status, resp, "PSAM_UNKNOWN")
            assert no_mac2(resp)
        await case.unchanged()

    async def test_unregistered_institution(self, fleet: Fleet, case: Case):
        """An institution code nobody registered is refused as PSAM_UNKNOWN."""
        t = self._terminal(fleet, case.t.fixmedins_code, case.t.psam_no, case.t.sign_no, 9001)
        t.fixmedins_code = "H99999999999"
        b = t.settle("2207", case.card, case.items())
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "PSAM_UNKNOWN")
        await case.unchanged()

    @pytest.mark.parametrize("sign_no", [None, "", "330200202601010000000000000000"])
    async def test_not_signed_in(self, case: Case, sign_no):
        """No, empty or unknown sign_no is NOT_SIGNED_IN; nothing journaled."""
        b = case.settle()
        status, resp = await case.send(mutated(b, (_del("sign_no") if sign_no is None else _set("sign_no", sign_no))))
        assert_declined(status, resp, "NOT_SIGNED_IN")
        await case.unchanged()


class TestCryptograms:
    async def test_key_version_unknown(self, case: Case):
        """kv=2 with an otherwise well-formed MAC is KEY_UNKNOWN; nothing journaled."""
        t, card = case.t, case.card
        for alg in (Alg.DES3, Alg.SM4):
            for purpose in (Purpose.PUR, Purpose.TAC):
                t.keys[(alg, 2, purpose)] = bytes(range(16))
        kv2 = SimCard(card.card_sn, card.card_no, card.psn_no, card.alg, 2, card.atc)
        b = t.settle("2207", kv2, case.items())
        card.atc = kv2.atc
        assert b.body["dev_safe_info"]["kv"] == 2
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "KEY_UNKNOWN")
        assert "2" in resp["err_msg"]
        assert no_mac2(resp)
        await case.unchanged()

    async def test_forged_mac(self, case: Case):
        """A wrong MAC1 is MAC_INVALID without MAC2; nothing journaled."""
        b = case.settle()
        status, resp = await case.send(mutated(b, _set("dev_safe_info.mac", flip_hex(b.body["dev_safe_info"]["mac"]))))
        assert_declined(status, resp, "MAC_INVALID")
        assert no_mac2(resp)
        await case.unchanged()

    @pytest.mark.parametrize(
        ("path", "value"),
        [("input.data.medfee_sumamt", None), ("dev_safe_info.pin", "DEFAULT"), ("inf_time", None)],
    )
    async def test_mac_covers_fields(self, case: Case, path, value):
        """Changing an amount, the PIN flag or inf_time after MAC1 was computed is MAC_INVALID."""
        b = case.settle()

        def fn(body: dict[str, Any]) -> None:
            if path == "input.data.medfee_sumamt":  # one more unit of line 1, everything consistent
                ln = body["input"]["feedetail"][0]
                ln["cnt"] = ln["cnt"] + 1
                ln["det_item_fee_sumamt"] = yuan(fen(ln["det_item_fee_sumamt"]) + fen(ln["pric"]))
                data = body["input"]["data"]
                data["medfee_sumamt"] = yuan(fen(data["medfee_sumamt"]) + fen(ln["pric"]))
            elif path == "inf_time":
                t0 = datetime.strptime(body["inf_time"], "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007
                body["inf_time"] = f"{t0 - timedelta(seconds=1):%Y-%m-%d %H:%M:%S}"
            else:
                _set(path, value)(body)

        status, resp = await case.send(mutated(b, fn))
        assert_declined(status, resp, "MAC_INVALID")
        assert no_mac2(resp)
        await case.unchanged()

    async def test_forged_tac(self, case: Case):
        """A wrong TAC (MAC1 right) is TAC_INVALID; nothing journaled."""
        b = case.settle()
        status, resp = await case.send(mutated(b, _set("dev_safe_info.tac", flip_hex(b.body["dev_safe_info"]["tac"]))))
        assert_declined(status, resp, "TAC_INVALID")
        assert b.mac2_ok(resp)  # MAC1 verified: SPEC §3 wants MAC2 on the refusal
        await case.unchanged()


class TestFreshnessReplay:
    async def test_replayed_tseq(self, case: Case):
        """A (psam_no, tseq) already used by another msgid is REPLAY; the replay posts nothing."""
        t = case.t
        first = case.settle()
        status, resp = await case.send(orjson.dumps(first.body))
        assert_ok(status, resp)
        await case.snap()
        t.tseq -= 1
        b = case.settle()
        assert b.body["dev_safe_info"]["tseq"] == first.body["dev_safe_info"]["tseq"]
        assert b.body["msgid"] != first.body["msgid"]
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "REPLAY")
        assert "tseq" in resp["err_msg"]
        assert b.mac2_ok(resp)
        await case.unchanged(journaled=1)
        (row,) = await journal_rows(case.dsn, t.fixmedins_code, b.body["msgid"])
        assert row["err_code"] == "REPLAY"
        assert row["state"] == "DONE"

    async def test_non_increasing_atc(self, case: Case):
        """An atc not above the card's last accepted one is REPLAY."""
        first = case.settle()
        status, resp = await case.send(orjson.dumps(first.body))
        assert_ok(status, resp)
        await case.snap()
        for back in (1, 2):
            case.card.atc -= back
            b = case.settle()
            assert b.body["dev_safe_info"]["atc"] <= first.body["dev_safe_info"]["atc"]
            status, resp = await case.send(orjson.dumps(b.body))
            assert_declined(status, resp, "REPLAY")
            assert "atc" in resp["err_msg"]
            assert b.mac2_ok(resp)
            case.card.atc = first.body["dev_safe_info"]["atc"]
        await case.unchanged(journaled=2)

    @pytest.mark.parametrize("skew", [-400, -301 - 5, 400])
    async def test_stale_inf_time(self, case: Case, skew):
        """inf_time more than 300 s from the gateway clock (past or future) is STALE_REQUEST."""
        b = case.settle(now=datetime.now(SHANGHAI) + timedelta(seconds=skew))
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "STALE_REQUEST")
        assert b.mac2_ok(resp)
        await case.unchanged(journaled=1)

    async def test_within_window_accepted(self, case: Case):
        """inf_time 200 s old is inside the window and settles."""
        b = case.settle(now=datetime.now(SHANGHAI) - timedelta(seconds=200))
        status, resp = await case.send(orjson.dumps(b.body))
        assert_ok(status, resp)
        assert b.mac2_ok(resp)


class TestIdempotency:
    async def test_msgid_conflict(self, case: Case):
        """The same msgid with other content is MSGID_CONFLICT; the first outcome stands alone."""
        first = case.settle()
        status, resp1 = await case.send(orjson.dumps(first.body))
        assert_ok(status, resp1)
        await case.snap()
        b = case.t.settle("2207", case.card, case.items()[:1], msgid=first.body["msgid"])
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "MSGID_CONFLICT")
        assert first.body["msgid"] in resp["err_msg"]
        assert b.mac2_ok(resp)
        await case.unchanged()
        (row,) = await journal_rows(case.dsn, case.t.fixmedins_code, first.body["msgid"])
        assert row["err_code"] is None
        assert orjson.loads(bytes(row["response"])) == resp1

    async def test_same_content_gets_stored_bytes(self, case: Case):
        """The same msgid and content again, in any key order and white space, gets the stored bytes."""
        b = case.settle()
        status, raw1 = await post_raw(case.fleet, orjson.dumps(b.body))
        assert status == 200
        assert orjson.loads(raw1)["infcode"] == 0
        await case.snap()

        def reverse_keys(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: reverse_keys(x[k]) for k in reversed(list(x))}
            if isinstance(x, list):
                return [reverse_keys(v) for v in x]
            return x

        variants = [
            orjson.dumps(b.body),
            json.dumps(reverse_keys(b.body), indent=3, ensure_ascii=True).encode(),
            json.dumps(b.body, separators=(" ,  ", " :\t"), ensure_ascii=False).encode(),
            b"\n  " + orjson.dumps(reverse_keys(b.body)) + b"\n",
        ]
        for raw in variants:
            status, again = await post_raw(case.fleet, raw)
            assert status == 200
            assert again == raw1
        await case.unchanged()
        assert len(await settlement_rows(case.dsn, case.t.fixmedins_code, b.body["msgid"])) == 1

    async def test_declined_answer_is_stored_too(self, case: Case):
        """A refused (authenticated) request resent is answered with the same stored bytes."""
        b = case.settle(now=datetime.now(SHANGHAI) - timedelta(seconds=500))
        status, raw1 = await post_raw(case.fleet, orjson.dumps(b.body))
        assert status == 200
        assert orjson.loads(raw1)["err_code"] == "STALE_REQUEST"
        status, raw2 = await post_raw(case.fleet, orjson.dumps(b.body))
        assert raw2 == raw1


class TestBusinessRules:
    @pytest.mark.parametrize("delta", [1, -1, 10000])
    async def test_lines_do_not_sum(self, case: Case, delta):
        """feedetail not summing to medfee_sumamt is AMOUNT_MISMATCH; nothing posted."""
        (a1, a2) = plain_items(case.world, "A", 2)
        p1, p2 = fen(a1["price"]), fen(a2["price"])
        lines = [line_of(1, a1["med_list_codg"], 2, p1), line_of(2, a2["med_list_codg"], 1, p2)]
        b = build_settle(case, lines, 2 * p1 + p2 + delta)
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "AMOUNT_MISMATCH")
        assert "medfee_sumamt" in resp["err_msg"]
        assert b.mac2_ok(resp)
        await case.unchanged(journaled=1)

    async def test_line_amount_not_cnt_times_price(self, case: Case):
        """A line whose amount is not cnt × pric is AMOUNT_MISMATCH naming the line."""
        (a1,) = plain_items(case.world, "A", 1)
        p1 = fen(a1["price"])
        lines = [line_of(1, a1["med_list_codg"], 3, p1, 3 * p1 + 500)]
        b = build_settle(case, lines, 3 * p1 + 500)
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "AMOUNT_MISMATCH")
        assert "feedetail[0]" in resp["err_msg"]
        await case.unchanged(journaled=1)

    async def test_unknown_item(self, case: Case):
        """A med_list_codg not in the catalogue is ITEM_UNKNOWN naming it; nothing posted."""
        (a1,) = plain_items(case.world, "A", 1)
        p1 = fen(a1["price"])
        code = "XZ99ZZZ999A999999999999"
        lines = [line_of(1, a1["med_list_codg"], 1, p1), line_of(2, code, 2, 1234)]
        b = build_settle(case, lines, p1 + 2468)
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "ITEM_UNKNOWN")
        assert code in resp["err_msg"]
        assert b.mac2_ok(resp)
        await case.unchanged(journaled=1)

    async def test_duplicate_line_number(self, case: Case):
        """Two lines with the same feedetl_sn are MALFORMED naming feedetl_sn."""
        (a1,) = plain_items(case.world, "A", 1)
        p1 = fen(a1["price"])
        lines = [line_of(1, a1["med_list_codg"], 1, p1), line_of(1, a1["med_list_codg"], 1, p1)]
        b = build_settle(case, lines, 2 * p1)
        status, resp = await case.send(orjson.dumps(b.body))
        assert_declined(status, resp, "MALFORMED", 400)
        assert "feedetl_sn" in resp["err_msg"]
        await case.unchanged()


async def test_journal_has_no_card_data_leak_on_refusal(case: Case):
    """A refused unauthenticated request leaves no journal row under its msgid."""
    b = case.settle()
    _status, resp = await case.send(mutated(b, _set("dev_safe_info.mac", flip_hex(b.body["dev_safe_info"]["mac"]))))
    assert resp["err_code"] == "MAC_INVALID"
    assert await journal_rows(case.dsn, case.t.fixmedins_code, b.body["msgid"]) == []
