"""Terminal simulator: builds SPEC-exact requests for a card and a PSAM, computing MAC1 and TAC as a PSAM and
a card would, and checks MAC2 on responses. Used by the tests, the demo and the load tester."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from gateway.domain import crypto
from gateway.domain.crypto import Alg
from gateway.domain.keys import DEV_KEYS, KeyId, Purpose
from loadtest.terminal_requests import yuan
from loadtest.terminal_stays import StayRequests
from loadtest.terminal_visits import VisitRequests

CALL_SERVICE = "/fsi/api/rsfComIfsService/callService"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def fen(yuan: str | Decimal | int) -> int:
    """Yuan text to fen (test helper)."""
    return int(Decimal(str(yuan)) * 100)


@dataclass
class SimCard:
    """A social security card: its identity, algorithm and transaction counter (ATC)."""

    card_sn: str
    card_no: str
    psn_no: str
    alg: str = "3DES"
    kv: int = 1
    atc: int = 0

    @classmethod
    def from_world(cls, card: dict[str, Any]) -> SimCard:
        """A card of a seed world."""
        return cls(
            card["card_sn"],
            card["card_no"],
            card["psn_no"],
            card["alg"],
            int(card["kv"]),
            int(card.get("atc", 0)),
        )


@dataclass
class Built:
    """A request ready to send, with what is needed to check its MAC2."""

    body: dict[str, Any]
    session_key: bytes = field(repr=False)
    alg: Alg = Alg.DES3

    def expected_mac2(self, response: dict[str, Any]) -> str:
        """MAC2 the gateway must return for this response."""
        out = response.get("output") or {}
        setl = out.get("setlinfo") if isinstance(out, dict) else None
        setl = setl or {}
        safe = self.body["dev_safe_info"]
        dt14 = self.body["inf_time"].replace("-", "").replace(":", "").replace(" ", "")
        data = crypto.mac2_data(
            fen(setl.get("acct_pay", 0)),
            fen(setl.get("psn_cash_pay", 0)),
            fen(setl.get("fund_pay_sumamt", 0)),
            self.body["infno"],
            safe["psam_no"],
            dt14,
            int(response["infcode"]),
        )
        return crypto.pboc_mac(self.alg, self.session_key, data).hex().upper()

    def mac2_ok(self, response: dict[str, Any]) -> bool:
        """True when the response carries the right MAC2."""
        got = (response.get("dev_safe_info") or {}).get("mac2")
        return isinstance(got, str) and crypto.same_mac(got.upper().encode(), self.expected_mac2(response).encode())


_last_stamp: tuple[tuple[int, ...], tuple[str, str]] | None = None


def _stamps(now: datetime) -> tuple[str, str]:
    """`yyyyMMddHHmmss` and `yyyy-MM-dd HH:mm:ss` of `now`, formatted once per second (the load tester
    builds thousands of requests a second, and strftime was a tenth of a request's cost)."""
    global _last_stamp
    wall = (now.year, now.month, now.day, now.hour, now.minute, now.second)  # what the text shows
    if _last_stamp is not None and _last_stamp[0] == wall:
        return _last_stamp[1]
    dt14 = "%04d%02d%02d%02d%02d%02d" % wall  # noqa: UP031 - one format for six fields
    stamps = (dt14, f"{dt14[0:4]}-{dt14[4:6]}-{dt14[6:8]} {dt14[8:10]}:{dt14[10:12]}:{dt14[12:14]}")
    _last_stamp = (wall, stamps)
    return stamps


class Terminal(VisitRequests, StayRequests):
    """A HIS/POS terminal with a PSAM: numbers its messages and raises tseq on every request (the inpatient
    builders are `StayRequests`')."""

    def __init__(
        self,
        fixmedins_code: str,
        fixmedins_name: str,
        psam_no: str,
        *,
        region: str | None = None,
        keys: Mapping[KeyId, bytes] | None = None,
        tseq: int = 0,
        tz: tzinfo = SHANGHAI,
        alg: str = "3DES",
        kv: int = 1,
        msg_seq: Iterator[int] | None = None,
    ) -> None:
        self.fixmedins_code = fixmedins_code
        self.fixmedins_name = fixmedins_name
        self.psam_no = psam_no
        self.region = region or psam_no[:6]
        self.keys = dict(DEV_KEYS if keys is None else keys)
        self.tseq = tseq
        self.tz = tz
        self.alg = alg
        self.kv = kv
        self.sign_no: str | None = None
        # msgids are unique per institution: terminals of one institution share `msg_seq`.
        self._seq = msg_seq if msg_seq is not None else itertools.count(1)

    def next_msgid(self, now: datetime) -> str:
        """fixmedins_code(12) + yyyyMMddHHmmss(14) + seq(4)."""
        return f"{self.fixmedins_code}{_stamps(now)[0]}{next(self._seq) % 10000:04d}"

    def build(
        self,
        infno: str,
        inp: dict[str, Any],
        *,
        card: SimCard | None = None,
        pin: str = "NONE",
        amount_fen: int = 0,
        now: datetime | None = None,
        msgid: str | None = None,
        insuplc_admdvs: str | None = None,
    ) -> Built:
        """A complete request with a valid security block; raises the card's ATC and the PSAM's tseq."""
        now = now or datetime.now(self.tz)
        self.tseq = (self.tseq + 1) % 2**32
        dt14, inf_time = _stamps(now)
        safe: dict[str, Any] = {"psam_no": self.psam_no, "tseq": self.tseq, "pin": pin}
        if card is not None:
            card.atc += 1
            alg, kv = Alg(card.alg), card.kv
            f1, f2 = crypto.card_factors(card.card_sn)
            rand = secrets.token_bytes(4)
            safe.update(card_sn=card.card_sn, card_rand=rand.hex().upper(), atc=card.atc)
        else:
            alg, kv = Alg(self.alg), self.kv
            f1, f2 = crypto.psam_factors(self.psam_no)
            rand = secrets.token_bytes(4)
            safe["rand"] = rand.hex().upper()
        safe.update(alg=alg.value, kv=kv)
        pur = self.keys.get((alg, kv, Purpose.PUR))
        if pur is None:
            raise KeyError(f"terminal has no {alg}/kv{kv} purchase key")
        dpk = crypto.derive_key(alg, pur, f1, f2)
        atc = card.atc if card is not None else 0
        sk = crypto.session_key(alg, dpk, rand, atc, self.tseq)
        safe["mac"] = (
            crypto.pboc_mac(alg, sk, crypto.mac1_data(amount_fen, infno, self.psam_no, dt14, pin)).hex().upper()
        )
        if card is not None:
            dtk = crypto.derive_key(alg, self.keys[(alg, kv, Purpose.TAC)], f1, f2)
            td = crypto.tac_data(amount_fen, infno, self.psam_no, self.tseq, atc, dt14)
            safe["tac"] = crypto.pboc_mac(alg, crypto.tac_key(alg, dtk), td).hex().upper()
        body: dict[str, Any] = {
            "infno": infno,
            "msgid": msgid or self.next_msgid(now),
            "mdtrtarea_admvs": self.region,
            "insuplc_admdvs": insuplc_admdvs or (card.card_sn[:6] if card else ""),
            "recer_sys_code": "FSI",
            "infver": "V1.0",
            "opter_type": "1",
            "opter": "001",
            "opter_name": "收费员",
            "inf_time": inf_time,
            "fixmedins_code": self.fixmedins_code,
            "fixmedins_name": self.fixmedins_name,
            "sign_no": self.sign_no or "",
            "input": inp,
            "dev_safe_info": safe,
        }
        return Built(body, sk, alg)

    # request builders per transaction ------------------------------------------------------------------
    def sign_in(self, **kw: Any) -> Built:
        """9001."""
        return self.build("9001", {"signIn": {"opter_no": "001", "mac": "00-1A-2B-3C-4D-5E", "ip": "10.0.0.8"}}, **kw)

    def sign_out(self, **kw: Any) -> Built:
        """9002."""
        return self.build("9002", {"signOut": {"sign_no": self.sign_no or "", "opter_no": "001"}}, **kw)

    def person_info(self, card: SimCard, pin: str = "NONE", **kw: Any) -> Built:
        """1101 with the social security card."""
        data = {"mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no, "card_sn": card.card_sn}
        return self.build("1101", {"data": data}, card=card, pin=pin, **kw)

    def settle(
        self,
        infno: str,
        card: SimCard,
        items: list[tuple[str, str, str]],
        *,
        pin: str = "VERIFIED",
        insutype: str = "310",
        med_type: str | None = None,
        acct_used_flag: str = "1",
        **kw: Any,
    ) -> Built:
        """2206/2207/2101/2102 with fee lines (med_list_codg, cnt, pric as text)."""
        lines = []
        total = 0
        for i, (code, cnt, pric) in enumerate(items, 1):
            amt = int((Decimal(cnt) * Decimal(pric) * 100).to_integral_value())
            total += amt
            lines.append(
                {
                    "feedetl_sn": f"{i:04d}",
                    "med_list_codg": code,
                    "cnt": float(Decimal(cnt)),
                    "pric": float(Decimal(pric)),
                    "det_item_fee_sumamt": yuan(amt),
                }
            )
        data = {
            "psn_no": card.psn_no,
            "mdtrt_cert_type": "03",
            "mdtrt_cert_no": card.card_no,
            "card_sn": card.card_sn,
            "med_type": med_type or ("41" if infno in ("2101", "2102") else "11"),
            "medfee_sumamt": yuan(total),
            "insutype": insutype,
            "acct_used_flag": acct_used_flag,
        }
        return self.build(infno, {"data": data, "feedetail": lines}, card=card, pin=pin, amount_fen=total, **kw)

    def cancel(self, infno: str, setl_id: str, psn_no: str, *, mdtrt_id: str | None = None, **kw: Any) -> Built:
        """2208/2103 (2208 of a visit's settlement names the visit's mdtrt_id)."""
        data = {"setl_id": setl_id, "psn_no": psn_no} | ({"mdtrt_id": mdtrt_id} if mdtrt_id else {})
        return self.build(infno, {"data": data}, **kw)

    def reverse(self, psn_no: str, omsgid: str, oinfno: str, **kw: Any) -> Built:
        """2601."""
        return self.build("2601", {"data": {"psn_no": psn_no, "omsgid": omsgid, "oinfno": oinfno}}, **kw)
