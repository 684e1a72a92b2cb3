"""The FSI request envelope and its security block (SPEC §3, §4.1), parsed into typed values.

`parse_envelope` turns a decoded JSON value into an `Envelope` or raises `Declined` with
`MALFORMED` (naming the field) or `UNSUPPORTED_INFNO`. It never raises anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.domain.codes import ResultCode
from gateway.domain.crypto import Alg
from gateway.domain.errors import Declined
from gateway.domain.fields import malformed, opt_str, req_int, req_match, req_obj, req_str
from gateway.domain.txtypes import TXTYPES, TxType

__all__ = ["Envelope", "SecurityBlock", "malformed", "nul_path", "opt_str", "parse_envelope", "req_match", "req_str"]


_DIGITS4 = re.compile(r"[0-9]{4}")
_REGION = re.compile(r"[0-9]{6}")
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_CARD_SN = re.compile(r"[0-9]{6}D156000005[0-9A-F]{16}", re.IGNORECASE)
_PSAM = re.compile(r"[0-9]{12}")
_MSGID = re.compile(r"[0-9A-Za-z]{12}[0-9]{14}[0-9A-Za-z]{4}")

# Field lengths as FSI integrations declare them (DOMAIN.md §4.2), a little generous for UTF-8 names.
_STRINGS: dict[str, int] = {
    "recer_sys_code": 10,
    "infver": 6,
    "opter_type": 3,
    "opter": 30,
    "opter_name": 50,
    "fixmedins_name": 100,
}


@dataclass(frozen=True, slots=True)
class SecurityBlock:
    """`dev_safe_info` (SPEC §4.1); cryptograms as bytes, card data hidden from repr."""

    psam_no: str
    tseq: int
    alg: Alg
    kv: int
    pin: str
    mac: bytes = field(repr=False)
    card_sn: str | None = field(default=None, repr=False)
    card_rand: bytes | None = field(default=None, repr=False)
    atc: int = 0
    rand: bytes | None = field(default=None, repr=False)
    tac: bytes | None = field(default=None, repr=False)

    @property
    def random(self) -> bytes:
        """R of the session-key seed: card_rand for card-bearing, rand for card-less requests."""
        r = self.card_rand if self.card_sn is not None else self.rand
        assert r is not None
        return r


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed request envelope; `input` is the raw object, parsed per infno by `inputs`."""

    infno: str
    msgid: str
    fixmedins_code: str
    fixmedins_name: str
    mdtrtarea_admvs: str
    insuplc_admdvs: str | None
    inf_time: datetime
    sign_no: str | None
    opter: str
    opter_type: str
    input: dict[str, Any]
    safe: SecurityBlock

    @property
    def dt14(self) -> str:
        """`yyyyMMddHHmmss` of inf_time, the DT item of the cryptograms."""
        return self.inf_time.strftime("%Y%m%d%H%M%S")

    @property
    def tx(self) -> TxType:
        """The transaction table's entry of this infno."""
        return TXTYPES[self.infno]

    @property
    def card_bearing(self) -> bool:
        """True for the infnos that carry a card (SPEC §4.1)."""
        return TXTYPES[self.infno].card_bearing


def parse_security(raw: dict[str, Any], card_bearing: bool) -> SecurityBlock:
    """Validate `dev_safe_info` for a card-bearing or card-less request."""
    p = "dev_safe_info."
    psam_no = req_match(raw, "psam_no", p, _PSAM, "12 decimal digits")
    tseq = req_int(raw, "tseq", p, 0, 2**32 - 1)
    alg_s = raw.get("alg")
    if alg_s not in ("3DES", "SM4"):
        raise malformed(p + "alg", 'must be "3DES" or "SM4"')
    kv = req_int(raw, "kv", p, 1, 255)
    pin = raw.get("pin")
    if pin not in ("VERIFIED", "DEFAULT", "NONE"):
        raise malformed(p + "pin", 'must be "VERIFIED", "DEFAULT" or "NONE"')
    mac = bytes.fromhex(req_match(raw, "mac", p, _HEX8, "8 hex digits"))
    if card_bearing:
        card_sn = req_match(raw, "card_sn", p, _CARD_SN, "32 hex: region(6) + D156000005 + 16-hex serial")
        card_rand = bytes.fromhex(req_match(raw, "card_rand", p, _HEX8, "8 hex digits"))
        atc = req_int(raw, "atc", p, 0, 65535)
        tac = bytes.fromhex(req_match(raw, "tac", p, _HEX8, "8 hex digits"))
        return SecurityBlock(
            psam_no,
            tseq,
            Alg(alg_s),
            kv,
            pin,
            mac,
            card_sn=card_sn.upper(),
            card_rand=card_rand,
            atc=atc,
            tac=tac,
        )
    if pin != "NONE":
        raise malformed(p + "pin", 'must be "NONE" for a card-less transaction')
    rand = bytes.fromhex(req_match(raw, "rand", p, _HEX8, "8 hex digits"))
    return SecurityBlock(psam_no, tseq, Alg(alg_s), kv, pin, mac, rand=rand)


_INF_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})", re.ASCII)


def _parse_inf_time(text: str) -> datetime:
    """`yyyy-MM-dd HH:mm:ss` as a naive datetime (the caller applies the gateway's zone); strptime's work
    for one fixed format, at a tenth of its cost on the hot path.

    Raises:
        ValueError: not that format, or not a real date and time.
    """
    m = _INF_TIME.fullmatch(text)
    if m is None:
        raise ValueError("not yyyy-MM-dd HH:mm:ss")
    y, mo, d, h, mi, sec = (int(g) for g in m.groups())
    return datetime(y, mo, d, h, mi, sec)  # noqa: DTZ001 - zone applied by the caller


def nul_path(value: object, path: str = "") -> str | None:
    """The path of the first string (value or key) holding a NUL character, which PostgreSQL cannot store in
    text or jsonb, or None. Paths read like messages: `input.feedetail[0].med_list_codg`."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if "\x00" in key:
                return f"{where!r} (a key)"
            found = nul_path(item, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def parse_envelope(body: object) -> Envelope:
    """Validate the envelope of SPEC §3.

    Raises:
        Declined: MALFORMED naming the first bad field, or UNSUPPORTED_INFNO.
    """
    if not isinstance(body, dict):
        raise malformed("body", "must be a JSON object")
    infno = body.get("infno")
    if not isinstance(infno, str) or not _DIGITS4.fullmatch(infno):
        raise malformed("infno", "must be 4 digits")
    tx = TXTYPES.get(infno)
    if tx is None:
        raise Declined(ResultCode.UNSUPPORTED_INFNO, f"infno {infno} is not a transaction of this gateway")
    fixmedins_code = req_str(body, "fixmedins_code", "", min_len=12, max_len=12)
    msgid = req_match(body, "msgid", "", _MSGID, "30 chars: fixmedins_code(12) + yyyyMMddHHmmss(14) + seq(4)")
    if msgid[:12] != fixmedins_code:
        raise malformed("msgid", "must start with fixmedins_code")
    for key, max_len in _STRINGS.items():
        req_str(body, key, "", max_len=max_len)
    mdtrtarea = req_match(body, "mdtrtarea_admvs", "", _REGION, "a 6-digit region code")
    insuplc = body.get("insuplc_admdvs")
    card_bearing = tx.card_bearing
    if insuplc in (None, ""):
        if card_bearing:
            raise malformed("insuplc_admdvs", "required for a card-bearing transaction")
        insuplc = None
    elif not isinstance(insuplc, str) or not _REGION.fullmatch(insuplc):
        raise malformed("insuplc_admdvs", "must be a 6-digit region code")
    inf_time_s = req_str(body, "inf_time", "", min_len=19, max_len=19)
    try:
        inf_time = _parse_inf_time(inf_time_s)
    except ValueError:
        raise malformed("inf_time", "must be yyyy-MM-dd HH:mm:ss") from None
    sign_no = body.get("sign_no")
    if tx.needs_session:
        if sign_no == "":
            sign_no = None  # refused as NOT_SIGNED_IN at the sign-in step, after the envelope
        elif sign_no is not None and (not isinstance(sign_no, str) or len(sign_no) > 30):
            raise malformed("sign_no", "must be a string of at most 30 chars")
    else:
        sign_no = None
    inp = req_obj(body, "input", "")
    safe = parse_security(req_obj(body, "dev_safe_info", ""), card_bearing)
    return Envelope(
        infno=infno,
        msgid=msgid,
        fixmedins_code=fixmedins_code,
        fixmedins_name=body["fixmedins_name"],
        mdtrtarea_admvs=mdtrtarea,
        insuplc_admdvs=insuplc,
        inf_time=inf_time,
        sign_no=sign_no,
        opter=body["opter"],
        opter_type=body["opter_type"],
        input=inp,
        safe=safe,
    )
