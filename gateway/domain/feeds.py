"""Card-centre and county feeds (SPEC §8.3): event parsing and the pure card/person transitions.

One event is one JSON object, or one CSV line with the columns of `CSV_COLUMNS` (empty cell = field absent):

    source,source_seq,event,card_sn,psn_no,reason,formal,fraud,new_card_sn,card_no,alg,kv,valid_from,valid_until,pin_mode

`decide(event, state)` says what an event does to the registry and the two lists, or why it is refused;
`FeedState.apply` makes the decision visible to the next event of the same batch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Literal, NamedTuple

CITY = "330200"  # the city card centre: may touch every card of the city (region prefix CITY[:4])
CARD_REASONS = frozenset({"01", "02", "03", "04", "05", "06", "07"})
PERSON_REASONS = frozenset({"11", "12"})
CLOSED = frozenset({"03", "05"})  # replaced, withdrawn: final (SPEC §8.1)
ACTIVE = "ACTIVE"

_CARD_SN = re.compile(r"[0-9]{6}D156000005[0-9A-F]{16}")
_PSN_NO = re.compile(r"[0-9A-Za-z]{1,30}")
_CARD_NO = re.compile(r"[0-9A-Z]{9}")
_REGION = re.compile(r"[0-9]{6}")
_MAX_SEQ = 2**63 - 1


class EventType(StrEnum):
    """The feed's event names (SPEC §8.3)."""

    ISSUED = "issued"
    LOSS_REPORTED = "loss_reported"
    LOSS_REVOKED = "loss_revoked"
    REPLACED = "replaced"
    DAMAGED = "damaged"
    WITHDRAWN = "withdrawn"
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    PIN_SET = "pin_set"
    DEFAULT_PIN_CHOSEN = "default_pin_chosen"
    PERSON_SUSPENDED = "person_suspended"
    PERSON_RESTORED = "person_restored"


PERSON_EVENTS = frozenset({EventType.PERSON_SUSPENDED, EventType.PERSON_RESTORED})
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


class FeedError(ValueError):
    """A feed record that cannot be an event; `field` names the culprit."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class CardRecord:
    """A card of the registry (table `cards`). `status` mirrors the list inside a batch's decisions; only the
    list of record is persisted for it (the registry keeps identity, holder, PIN mode and validity)."""

    card_sn: str = field(repr=False)
    card_no: str = field(repr=False)
    psn_no: str = field(repr=False)
    pin_mode: str = "DEFAULT"
    status: str = ACTIVE
    alg: str = "3DES"
    kv: int = 1
    valid_from: date | None = None
    valid_until: date | None = None


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One parsed feed event; `card` is the issued card or the replacement's new card."""

    source: str
    source_seq: int
    event: EventType
    card_sn: str | None = field(default=None, repr=False)
    psn_no: str | None = field(default=None, repr=False)
    reason: str | None = None
    formal: bool = False
    fraud: bool = False
    card: CardRecord | None = field(default=None, repr=False)

    @property
    def subject(self) -> str:
        """The key the event is about: card_sn, or psn_no for person events."""
        return (self.psn_no if self.event in PERSON_EVENTS else self.card_sn) or ""

    def content_hash(self) -> bytes:
        """SHA-256 of the event's meaning (format, key order and spelling of the input do not matter)."""
        # Every field was validated to hold no "|", so joining with it is unambiguous.
        c = self.card
        spec = (
            ""
            if c is None
            else f"{c.card_sn}|{c.card_no}|{c.psn_no}|{c.pin_mode}|{c.alg}|{c.kv}|{c.valid_from}|{c.valid_until}"
        )
        text = (
            f"{self.source}|{self.source_seq}|{self.event.value}|{self.card_sn}|{self.psn_no}|{self.reason}"
            f"|{self.formal:d}|{self.fraud:d}|{spec}"
        )
        return hashlib.sha256(text.encode()).digest()


class ListChange(NamedTuple):
    """One entry of the change log: list C (card_sn) or P (psn_no); op A (listed), R (the reason of a listed
    key changed: membership unchanged, which the in-process fingerprint counts rely on) or D (delisted).

    A NamedTuple (immutable, and cheap to make: a bulk import makes one per line).
    """

    list: Literal["C", "P"]
    key: str
    op: Literal["A", "R", "D"]
    reason: str | None


@dataclass(frozen=True, slots=True)
class Accepted:
    """What an accepted event does: registry rows to write and list changes (possibly none: a no-op)."""

    cards: tuple[CardRecord, ...] = ()
    changes: tuple[ListChange, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why an event is refused; nothing of it is applied."""

    reason: str


Decision = Accepted | Rejected


# -- parsing -----------------------------------------------------------------------------------------------


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


# -- state and transitions ---------------------------------------------------------------------------------


@dataclass(slots=True)
class FeedState:
    """What the transitions read: registry cards, both lists and the regions of persons' cards.

    Filled from the system of record for the keys of one batch, then changed event by event.
    """

    cards: dict[str, CardRecord] = field(default_factory=dict)
    card_list: dict[str, str] = field(default_factory=dict)
    person_list: dict[str, str] = field(default_factory=dict)
    person_regions: dict[str, set[str]] = field(default_factory=dict)

    def card_reason(self, card_sn: str) -> str | None:
        """The reason the card is listed with, or None: the list is the one truth on refusals."""
        return self.card_list.get(card_sn)

    def apply(self, decision: Accepted) -> None:
        """Make an accepted decision visible to the events that follow it."""
        for card in decision.cards:
            self.cards[card.card_sn] = card
            self.person_regions.setdefault(card.psn_no, set()).add(card.card_sn[:6])
        for ch in decision.changes:
            target = self.card_list if ch.list == "C" else self.person_list
            if ch.op != "D" and ch.reason is not None:
                target[ch.key] = ch.reason
            else:
                target.pop(ch.key, None)


def in_scope(source: str, region: str, city: str = CITY) -> bool:
    """SPEC §8.3 scope: the city centre touches every region of the city, a county only its own."""
    if source == city:
        return region.startswith(city[:4])
    return source.startswith(city[:4]) and region == source


def _scope_error(source: str, region: str, city: str) -> Rejected | None:
    if in_scope(source, region, city):
        return None
    if source != city and not source.startswith(city[:4]):
        return Rejected(f"source {source} is not a region of city {city}")
    return Rejected(f"source {source} may not change cards of region {region}")


def _set_status(card: CardRecord, reason: str | None) -> Accepted:
    """A list change only: the registry row is not rewritten (the list is the one truth on refusals)."""
    change = ListChange("C", card.card_sn, "A", reason) if reason else ListChange("C", card.card_sn, "D", None)
    return Accepted(changes=(change,))


_DESCRIBE = {"01": "reported lost", "02": "formally reported lost", "04": "damaged", "06": "locked",
             "07": "frozen for fraud", "03": "closed (replaced)", "05": "closed (withdrawn)"}  # fmt: skip


def _busy(reason: str) -> Rejected:
    return Rejected(f"card is {_DESCRIBE[reason]} (reason {reason})")


def decide(event: FeedEvent, state: FeedState, city: str = CITY) -> Decision:
    """The effect of one event on the current state, or why it is refused (table in the module of record)."""
    d = _decide(event, state, city)
    if isinstance(d, Accepted) and d.changes:
        # An add of a key already on its list is a reason change ('R').
        changes = d.changes
        for i, ch in enumerate(changes):
            if ch.op == "A" and ch.key in (state.card_list if ch.list == "C" else state.person_list):
                changes = (*changes[:i], ch._replace(op="R"), *changes[i + 1 :])
        if changes is not d.changes:
            d = Accepted(d.cards, changes)
    return d


def _decide(event: FeedEvent, state: FeedState, city: str) -> Decision:
    if event.event in PERSON_EVENTS:
        return _decide_person(event, state, city)
    assert event.card_sn is not None
    if (err := _scope_error(event.source, event.card_sn[:6], city)) is not None:
        return err
    card = state.cards.get(event.card_sn)
    current = state.card_reason(event.card_sn)
    if event.event is EventType.ISSUED:
        return _decide_issued(event, card, current)
    if card is None:
        return Rejected("card is not in the registry")
    if current in CLOSED:
        return _busy(current)
    kind = event.event
    if kind is EventType.LOSS_REPORTED:
        want = "02" if event.formal else "01"
        if current is None or (current == "01" and want == "02"):
            return _set_status(card, want)
        return Accepted() if current == want else _busy(current)
    if kind is EventType.LOSS_REVOKED:
        return _set_status(card, None) if current in ("01", "02") else Rejected("card is not reported lost")
    if kind is EventType.DAMAGED:
        if current is None:
            return _set_status(card, "04")
        return Accepted() if current == "04" else _busy(current)
    if kind is EventType.WITHDRAWN:
        return _set_status(card, "05")
    if kind is EventType.LOCKED:
        want = "07" if event.fraud else "06"
        if current == want:
            return Accepted()
        # A fraud freeze overrides every open state; an application lock needs an active card.
        if want == "07" or current is None:
            return _set_status(card, want)
        return _busy(current)
    if kind is EventType.UNLOCKED:
        return _set_status(card, None) if current in ("06", "07") else Rejected("card is not locked")
    if kind in (EventType.PIN_SET, EventType.DEFAULT_PIN_CHOSEN):
        mode = "PIN" if kind is EventType.PIN_SET else "DEFAULT"
        return Accepted() if card.pin_mode == mode else Accepted((replace(card, pin_mode=mode),))
    return _decide_replaced(event, state, card, current, city)


def _decide_issued(event: FeedEvent, card: CardRecord | None, current: str | None) -> Decision:
    assert event.card is not None
    if card is not None:
        same = replace(card, status=ACTIVE) == event.card and current is None
        return Accepted() if same else Rejected("card is already issued")
    if current is not None:
        return Rejected(f"card is on the blacklist without a registry entry (reason {current})")
    return Accepted((event.card,))


def _decide_replaced(event: FeedEvent, state: FeedState, old: CardRecord, current: str | None, city: str) -> Decision:
    assert event.card is not None
    if current == "07":
        return _busy(current)  # a fraud freeze is not lifted by issuing a new card
    if event.psn_no is not None and event.psn_no != old.psn_no:
        return Rejected("psn_no is not the holder of the card being replaced")
    new = replace(event.card, psn_no=old.psn_no)
    if (err := _scope_error(event.source, new.card_sn[:6], city)) is not None:
        return err
    existing = state.cards.get(new.card_sn)
    changes = [ListChange("C", old.card_sn, "A", "03")]
    if existing is not None and existing.psn_no != old.psn_no:
        return Rejected("new_card_sn belongs to another person")
    new_reason = state.card_reason(new.card_sn)
    if new_reason in CLOSED:
        return Rejected(f"new_card_sn is closed (reason {new_reason})")
    if new_reason is not None:
        changes.append(ListChange("C", new.card_sn, "D", None))  # the replacement is the card in force
    return Accepted((new,), tuple(changes))


def _decide_person(event: FeedEvent, state: FeedState, city: str) -> Decision:
    assert event.psn_no is not None
    if event.source != city:
        if not event.source.startswith(city[:4]):
            return Rejected(f"source {event.source} is not a region of city {city}")
        if event.source not in state.person_regions.get(event.psn_no, set()):
            return Rejected(f"source {event.source} may only change persons holding a card of its region")
    current = state.person_list.get(event.psn_no)
    if event.event is EventType.PERSON_SUSPENDED:
        if current == event.reason:
            return Accepted()
        return Accepted(changes=(ListChange("P", event.psn_no, "A", event.reason),))
    if current is None:
        return Rejected("person is not suspended")
    return Accepted(changes=(ListChange("P", event.psn_no, "D", None),))
