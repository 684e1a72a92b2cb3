"""The feed model (SPEC §8.1, §8.3): event types, registry cards, list changes, decisions and the batch state.

Everything here is a value or a plain container; parsing is in `parse`, the transitions in `decide`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Literal, NamedTuple

CITY = "330200"  # the city card centre: may touch every card of the city (region prefix CITY[:4])
CARD_REASONS = frozenset({"01", "02", "03", "04", "05", "06", "07"})
PERSON_REASONS = frozenset({"11", "12"})
CLOSED = frozenset({"03", "05"})  # replaced, withdrawn: final (SPEC §8.1)
ACTIVE = "ACTIVE"


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


class LoggedChange(NamedTuple):
    """A row of the change log: the version it took, then the change (list, key, op, reason)."""

    version: int
    list: str
    key: str
    op: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Delta:
    """Card-list changes in (since, version]: the latest state of each card that changed."""

    version: int
    adds: list[tuple[str, str]]
    dels: list[str]


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
