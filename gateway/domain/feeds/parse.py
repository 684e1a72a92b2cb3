"""Feed event parsing (SPEC §8.3): one JSON object, or one CSV row with the columns of `CSV_COLUMNS`.

    source,source_seq,event,card_sn,psn_no,reason,formal,fraud,new_card_sn,card_no,alg,kv,valid_from,valid_until,pin_mode

An empty cell is an absent field. Also the feed tokens setting (`parse_feed_tokens`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from gateway.domain.feeds.model import ACTIVE, PERSON_REASONS, CardRecord, EventType, FeedError, FeedEvent

_CARD_SN = re.compile(r"[0-9]{6}D156000005[0-9A-F]{16}")
_PSN_NO = re.compile(r"[0-9A-Za-z]{1,30}")
_CARD_NO = re.compile(r"[0-9A-Z]{9}")
_REGION = re.compile(r"[0-9]{6}")
_MAX_SEQ = 2**63 - 1
_SPEC_FIELDS = ("card_no", "alg", "kv", "valid_from", "valid_until", "pin_mode")
_COMMON = ("source", "source_seq", "event")
# Fields each event may carry besides the common ones; a non-empty field outside its set is refused.
_FIELDS: dict[EventType, tuple[str, ...]] = {
    EventType.ISSUED: ("card_sn", "psn_no", *_SPEC_FIELDS),
    EventType.LOSS_REPORTED: ("card_sn", "formal"),
    EventType.LOSS_REVOKED: ("card_sn",),
    EventType.REPLACED: ("card_sn", "psn_no", "new_card_sn", *_SPEC_FIELDS),
    EventType.DAMAGED: ("card_sn",),
    EventType.WITHDRAWN: ("card_sn",),
    EventType.LOCKED: ("card_sn", "fraud"),
    EventType.UNLOCKED: ("card_sn",),
    EventType.PIN_SET: ("card_sn",),
    EventType.DEFAULT_PIN_CHOSEN: ("card_sn",),
    EventType.PERSON_SUSPENDED: ("psn_no", "reason"),
    EventType.PERSON_RESTORED: ("psn_no",),
}
CSV_COLUMNS = (*_COMMON, "card_sn", "psn_no", "reason", "formal", "fraud", "new_card_sn", *_SPEC_FIELDS)
_KNOWN = frozenset(CSV_COLUMNS)
_UNUSED = {kind: tuple(sorted(_KNOWN.difference(_COMMON, used))) for kind, used in _FIELDS.items()}


def _text(record: Mapping[str, object], name: str) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FeedError(name, "must be a string")
    return value.strip() or None


def _int(record: Mapping[str, object], name: str, low: int, high: int) -> int | None:
    value = record.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise FeedError(name, "must be an integer")
    if not low <= value <= high:
        raise FeedError(name, f"must be between {low} and {high}")
    return value


def _bool(record: Mapping[str, object], name: str) -> bool:
    value = record.get(name)
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "0", "false", "no"):
        return value.strip().lower() in ("1", "true", "yes")
    raise FeedError(name, "must be true or false")


def _date(record: Mapping[str, object], name: str) -> date | None:
    text = _text(record, name)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FeedError(name, "must be a date YYYY-MM-DD") from None


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise FeedError(name, "missing")
    return value


def _card_sn(record: Mapping[str, object], name: str) -> str:
    text = _required(_text(record, name), name).upper()
    if not _CARD_SN.fullmatch(text):
        raise FeedError(name, "must be 32 hex: region(6) + D156000005 + 16-hex serial")
    return text


def _psn_no(record: Mapping[str, object], *, required: bool) -> str | None:
    text = _text(record, "psn_no")
    if text is None:
        return _required(None, "psn_no") if required else None
    if not _PSN_NO.fullmatch(text):
        raise FeedError("psn_no", "must be 1..30 letters or digits")
    return text


def _card_spec(record: Mapping[str, object], card_sn: str, psn_no: str) -> CardRecord:
    card_no = _required(_text(record, "card_no"), "card_no").upper()
    if not _CARD_NO.fullmatch(card_no):
        raise FeedError("card_no", "must be 9 letters or digits")
    alg = _required(_text(record, "alg"), "alg").upper()
    if alg not in ("3DES", "SM4"):
        raise FeedError("alg", "must be 3DES or SM4")
    kv = _int(record, "kv", 0, 255)
    if kv is None:
        raise FeedError("kv", "missing")
    pin_mode = (_text(record, "pin_mode") or "DEFAULT").upper()  # SPEC §7: a new card has its initial PIN
    if pin_mode not in ("PIN", "DEFAULT"):
        raise FeedError("pin_mode", "must be PIN or DEFAULT")
    valid_from, valid_until = _date(record, "valid_from"), _date(record, "valid_until")
    if valid_from and valid_until and valid_until < valid_from:
        raise FeedError("valid_until", "is before valid_from")
    return CardRecord(card_sn, card_no, psn_no, pin_mode, ACTIVE, alg, kv, valid_from, valid_until)


def parse_event(record: Mapping[str, object], *, default_source: str | None = None) -> FeedEvent:
    """One feed event from a JSON object or a CSV row (values as strings); `default_source` fills an empty source.

    Raises:
        FeedError: naming the first bad field.
    """
    for name in record:
        if name not in _KNOWN:
            raise FeedError(str(name), "unknown field")
    source = _text(record, "source") or default_source
    if source is None or not _REGION.fullmatch(source):
        raise FeedError("source", "must be the 6-digit region code of the sender")
    seq = _int(record, "source_seq", 1, _MAX_SEQ)
    if seq is None:
        raise FeedError("source_seq", "missing")
    name = _required(_text(record, "event"), "event")
    try:
        kind = EventType(name)
    except ValueError:
        raise FeedError("event", f"unknown event type {name[:40]!r}") from None
    for other in _UNUSED[kind]:
        if record.get(other) not in (None, ""):
            raise FeedError(other, f"not used by {kind.value}")
    if kind is EventType.PERSON_SUSPENDED:
        reason = _required(_text(record, "reason"), "reason")
        if reason not in PERSON_REASONS:
            raise FeedError("reason", "must be 11 or 12")
        return FeedEvent(source, seq, kind, psn_no=_psn_no(record, required=True), reason=reason)
    if kind is EventType.PERSON_RESTORED:
        return FeedEvent(source, seq, kind, psn_no=_psn_no(record, required=True))
    card_sn = _card_sn(record, "card_sn")
    if kind is EventType.ISSUED:
        psn_no = _psn_no(record, required=True)
        assert psn_no is not None
        return FeedEvent(source, seq, kind, card_sn, psn_no, card=_card_spec(record, card_sn, psn_no))
    if kind is EventType.REPLACED:
        new_sn = _card_sn(record, "new_card_sn")
        if new_sn == card_sn:
            raise FeedError("new_card_sn", "is the card being replaced")
        psn_no = _psn_no(record, required=False)
        return FeedEvent(source, seq, kind, card_sn, psn_no, card=_card_spec(record, new_sn, psn_no or ""))
    return FeedEvent(source, seq, kind, card_sn, formal=_bool(record, "formal"), fraud=_bool(record, "fraud"))


def parse_feed_tokens(text: str | None) -> dict[str, str]:
    """`"330200=tokenA,330281=tokenB"` as {token: region}.

    Raises:
        ValueError: an entry is not region=token, a region is not 6 digits, or a token repeats.
    """
    out: dict[str, str] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        region, sep, token = (part.strip() for part in entry.partition("="))
        if not sep or not _REGION.fullmatch(region) or len(token) < 8:
            raise ValueError("feed_tokens: each entry must be REGION=TOKEN (6 digits, token of 8+ characters)")
        if token in out:
            raise ValueError(f"feed_tokens: a token is given twice (regions {out[token]} and {region})")
        out[token] = region
    return out
