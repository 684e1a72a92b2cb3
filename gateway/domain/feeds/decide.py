"""The pure card and person transitions of the feeds (SPEC §8.1, §8.3) and the region scope.

`decide(event, state)` says what an event does to the registry and the two lists, or why it is refused;
`FeedState.apply` makes the decision visible to the next event of the same batch.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.domain.feeds.model import (
    ACTIVE,
    CITY,
    CLOSED,
    PERSON_EVENTS,
    Accepted,
    CardRecord,
    Decision,
    EventType,
    FeedEvent,
    FeedState,
    ListChange,
    Rejected,
)


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
