"""A batch of feed events decided together (SPEC §8.3): per-event results, the changes to write, and the state
the next batch overlays while this one is still being written. Pure: the writer loads and stores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.domain.feeds.decide import decide
from gateway.domain.feeds.model import PERSON_EVENTS, CardRecord, FeedEvent, FeedState, ListChange, Rejected

Status = Literal["accepted", "duplicate", "rejected"]
FeedRow = tuple[str, int, str, str, bytes, int | None]  # source, source_seq, event, subject, hash, version
Seen = dict[tuple[str, int], tuple[bytes, int | None]]  # (source, source_seq) -> (content hash, version)


@dataclass(frozen=True, slots=True)
class EventResult:
    """The outcome of the index-th event of a batch; version is the last list version it produced."""

    index: int
    status: Status
    reason: str | None = None
    version: int | None = None


@dataclass(slots=True)
class Prepared:
    """A batch decided against a known state and base version, ready to write.

    `state` and `accepted` (the batch's own accepted events) are what the NEXT batch overlays on the
    committed state while this one is still being written.
    """

    events: Sequence[FeedEvent]
    base: int
    results: list[EventResult]
    before: dict[str, CardRecord]
    cards: dict[str, CardRecord]
    pending: list[tuple[ListChange, str]]
    feed_rows: list[FeedRow]
    state: FeedState
    accepted: Seen

    @property
    def next_base(self) -> int:
        """The version the next batch starts after, once this one is written."""
        return self.base + len(self.pending)

    @property
    def changed(self) -> bool:
        """True when writing the batch changes a list or the registry (the after-commit hook then runs)."""
        return bool(self.pending or self.cards)


def card_keys(events: Sequence[FeedEvent]) -> set[str]:
    """Every card_sn the events name (the replaced card and its replacement included)."""
    keys: set[str] = set()
    for e in events:
        if e.event not in PERSON_EVENTS:
            keys.add(e.card_sn or "")
            if e.card is not None:
                keys.add(e.card.card_sn)
    return keys


def person_keys(events: Sequence[FeedEvent]) -> set[str]:
    """Every psn_no the person events name."""
    return {e.psn_no or "" for e in events if e.event in PERSON_EVENTS}


def overlay(events: Sequence[FeedEvent], state: FeedState, seen: Seen, in_flight: Prepared) -> None:
    """Put the effects of the batch still being written on top of the committed state of `events`' keys.

    Keys the in-flight batch did not touch read the same before and after it commits; those it touched take
    its final state, whichever side of its commit the reads fell on.
    """
    prior = in_flight.state
    touched = {ch.key for ch, _ in in_flight.pending if ch.list == "C"} | set(in_flight.cards)
    for sn in card_keys(events):
        if sn in prior.cards:
            state.cards[sn] = prior.cards[sn]
        if sn in touched:
            if sn in prior.card_list:
                state.card_list[sn] = prior.card_list[sn]
            else:
                state.card_list.pop(sn, None)
    touched = {ch.key for ch, _ in in_flight.pending if ch.list == "P"}
    for psn in person_keys(events):
        if psn in touched:
            if psn in prior.person_list:
                state.person_list[psn] = prior.person_list[psn]
            else:
                state.person_list.pop(psn, None)
        if psn in prior.person_regions:
            state.person_regions.setdefault(psn, set()).update(prior.person_regions[psn])
    seen.update(in_flight.accepted)


def start_batch(events: Sequence[FeedEvent], state: FeedState, base: int) -> Prepared:
    """An empty decision of `events` on `state`, versions after `base`; `decide_event` fills it in order."""
    return Prepared(events, base, [], dict(state.cards), {}, [], [], state, {})


def decide_batch(events: Sequence[FeedEvent], state: FeedState, seen: Seen, base: int, city: str) -> Prepared:
    """Run the pure transitions event by event (each sees the ones before it)."""
    p = start_batch(events, state, base)
    for i, e in enumerate(events):
        decide_event(p, i, e, seen, city)
    return p


def decide_event(p: Prepared, i: int, e: FeedEvent, seen: Seen, city: str) -> None:
    """Decide the i-th event of the batch on the batch's state so far, and record the outcome in `p`.

    A (source, source_seq) accepted before is `duplicate` with the same content and `rejected` with other
    content; a rejected event changes nothing and is not recorded, so the source may send it again.
    """
    digest = e.content_hash()
    key = (e.source, e.source_seq)
    prior = seen.get(key)
    if prior is not None:
        if prior[0] == digest:
            p.results.append(EventResult(i, "duplicate", None, prior[1]))
        else:
            p.results.append(EventResult(i, "rejected", "source_seq already used for another event"))
        return
    d = decide(e, p.state, city)
    if isinstance(d, Rejected):
        p.results.append(EventResult(i, "rejected", d.reason))
        return
    p.state.apply(d)
    for c in d.cards:
        p.cards[c.card_sn] = c
    p.pending.extend((ch, e.source) for ch in d.changes)
    version = p.base + len(p.pending) if d.changes else None
    seen[key] = p.accepted[key] = (digest, version)
    p.feed_rows.append((e.source, e.source_seq, e.event.value, e.subject, digest, version))
    p.results.append(EventResult(i, "accepted", None, version))
