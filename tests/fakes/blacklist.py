"""In-memory blacklists of record: a `FeedWriter` and `ChangeLog` that decide with the same pure batch code as
PostgreSQL's adapter and keep the registry, both lists and the change log in dicts."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

from gateway.domain.feeds import CARD_REASONS, CITY, PERSON_REASONS, FeedEvent, FeedState, ListChange, LoggedChange
from gateway.domain.feeds.batch import EventResult, Prepared, Seen, decide_batch
from gateway.domain.feeds.batch import overlay as overlay_in_flight
from gateway.ports.blacklist import AfterCommit, ChangeLog, FeedWriter


class InMemoryLists:
    """The lists of record in memory; `writes` counts committed batches and single changes."""

    def __init__(self, city: str = CITY) -> None:
        self.city = city
        self.state = FeedState()
        self.seen: Seen = {}
        self.log: list[LoggedChange] = []
        self.writes = 0

    async def version(self) -> int:
        """The last version taken."""
        return len(self.log)

    def acting_as(self, actor: str) -> InMemoryLists:
        """The same lists: the fake keeps no change-log identities."""
        return self

    async def changes_since(self, version: int, limit: int = 100_000) -> list[LoggedChange]:
        """The log after `version`, in order."""
        return self.log[version : version + limit]

    async def prune(self, keep_days: int) -> int:
        """Nothing ages in memory."""
        return 0

    async def apply_events(
        self, events: Sequence[FeedEvent], *, after_commit: AfterCommit | None = None
    ) -> list[EventResult]:
        """Decide and write a batch at once."""
        p = decide_batch(events, copy.deepcopy(self.state), dict(self.seen), len(self.log), self.city)
        await self._commit(p, after_commit)
        return p.results

    async def prepare(self, events: Sequence[FeedEvent], *, base: int, overlay: Prepared | None) -> Prepared:
        """Decide on the committed state plus the batch in flight."""
        state, seen = copy.deepcopy(self.state), dict(self.seen)
        if overlay is not None:
            overlay_in_flight(events, state, seen, overlay)
        return decide_batch(events, state, seen, base, self.city)

    async def commit(self, prepared: Prepared, *, after_commit: AfterCommit | None = None) -> Prepared:
        """Write a prepared batch, deciding it again when someone wrote since."""
        if prepared.base != len(self.log):
            prepared = decide_batch(
                prepared.events, copy.deepcopy(self.state), dict(self.seen), len(self.log), self.city
            )
        await self._commit(prepared, after_commit)
        return prepared

    async def set_card_entry(
        self, card_sn: str, reason: str | None, source: str, *, after_commit: AfterCommit | None = None
    ) -> bool:
        """List or delist a card."""
        if reason is not None and reason not in CARD_REASONS:
            raise ValueError(f"card reason must be one of {sorted(CARD_REASONS)}")
        return await self._set("C", card_sn, reason, source, after_commit)

    async def set_person_entry(
        self, psn_no: str, reason: str | None, source: str, *, after_commit: AfterCommit | None = None
    ) -> bool:
        """List or delist a person."""
        if reason is not None and reason not in PERSON_REASONS:
            raise ValueError("person reason must be 11 or 12")
        return await self._set("P", psn_no, reason, source, after_commit)

    async def _set(
        self, lst: Literal["C", "P"], key: str, reason: str | None, source: str, after: AfterCommit | None
    ) -> bool:
        lists = self.state.card_list if lst == "C" else self.state.person_list
        current = lists.get(key)
        if current == reason:
            return False
        op: Literal["A", "R", "D"] = "D" if reason is None else ("A" if current is None else "R")
        self._log([(ListChange(lst, key, op, reason), source)])
        self.writes += 1
        if after is not None:
            await after()
        return True

    async def _commit(self, p: Prepared, after_commit: AfterCommit | None) -> None:
        for card in p.cards.values():
            self.state.cards[card.card_sn] = card
            self.state.person_regions.setdefault(card.psn_no, set()).add(card.card_sn[:6])
        self._log(p.pending)
        self.seen.update(p.accepted)
        self.writes += 1
        if after_commit is not None and p.changed:
            await after_commit()

    def _log(self, pending: Sequence[tuple[ListChange, str]]) -> None:
        for ch, _source in pending:
            self.log.append(LoggedChange(len(self.log) + 1, ch.list, ch.key, ch.op, ch.reason))
            lists = self.state.card_list if ch.list == "C" else self.state.person_list
            if ch.op == "D" or ch.reason is None:
                lists.pop(ch.key, None)
            else:
                lists[ch.key] = ch.reason


_writer: FeedWriter = InMemoryLists()
_log: ChangeLog = InMemoryLists()
