"""The in-process side of the blacklist: a compact fingerprint multiset per list, and the version applied.

A gateway process clears an ordinary card without any Redis round trip when it can prove it is current:
`clear()` answers True only if the card's fingerprint is absent AND the process has synced within
`max_staleness_s`. Anything else (a fingerprint present, a stale or unloaded cache) means "ask Redis".

Memory: 8 bytes per entry in a sorted `array('Q')`, plus small dicts for changes since the last compaction.
Fingerprint collisions cost a Redis lookup, never a missed entry: the sets count, so removing one of two
colliding keys keeps the other.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from blacklist_cache.fingerprint import card_field, fingerprint, person_field


class FingerprintMultiset:
    """A sorted base array plus add/remove counters; exact counts, so no false negatives."""

    __slots__ = ("_added", "_base", "_removed")

    def __init__(self, fps: Iterable[int] = ()) -> None:
        self._base = array("Q", sorted(fps))
        self._added: dict[int, int] = {}
        self._removed: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._base) + sum(self._added.values()) - sum(self._removed.values())

    def count(self, fp: int) -> int:
        """How many listed keys have this fingerprint."""
        base = self._base
        i = bisect_left(base, fp)
        n = 0 if i == len(base) or base[i] != fp else bisect_right(base, fp, i) - i
        return n + self._added.get(fp, 0) - self._removed.get(fp, 0)

    def add(self, fp: int) -> None:
        """One more listed key with this fingerprint."""
        if self._removed.get(fp):
            self._removed[fp] -= 1
            if not self._removed[fp]:
                del self._removed[fp]
        else:
            self._added[fp] = self._added.get(fp, 0) + 1

    def remove(self, fp: int) -> None:
        """One listed key with this fingerprint fewer (no-op when none is listed)."""
        if self.count(fp) <= 0:
            return
        if self._added.get(fp):
            self._added[fp] -= 1
            if not self._added[fp]:
                del self._added[fp]
        else:
            self._removed[fp] = self._removed.get(fp, 0) + 1

    @property
    def pending(self) -> int:
        """Changes not yet merged into the base array."""
        return len(self._added) + len(self._removed)

    def compact(self) -> None:
        """Merge the changes into a new sorted base array."""
        if not self.pending:
            return
        keep: list[int] = []
        removed = dict(self._removed)
        for fp in self._base:
            if removed.get(fp):
                removed[fp] -= 1
                continue
            keep.append(fp)
        for fp, n in self._added.items():
            keep.extend([fp] * n)
        keep.sort()
        self._base = array("Q", keep)
        self._added.clear()
        self._removed.clear()


class LocalBlacklist:
    """Both lists as fingerprints, the version they reflect, and when that was last confirmed."""

    def __init__(self, max_staleness_s: float = 1.0, compact_after: int = 50_000) -> None:
        self.max_staleness_s = max_staleness_s
        self.compact_after = compact_after
        self.cards = FingerprintMultiset()
        self.persons = FingerprintMultiset()
        self.version: int | None = None  # None: not loaded
        self.synced_at = 0.0  # time.monotonic() of the last proof of currency
        self.applied_at = 0.0  # time.monotonic() when the current version was applied

    def replace(self, version: int, card_fps: Iterable[int], person_fps: Iterable[int]) -> None:
        """Install a full snapshot taken at `version`."""
        self.cards = FingerprintMultiset(card_fps)
        self.persons = FingerprintMultiset(person_fps)
        self.version = version
        self.synced_at = self.applied_at = time.monotonic()

    def apply(self, changes: Iterable[tuple[int, str, str, str]]) -> None:
        """Apply changes (version, list 'C'/'P', op 'A'/'R'/'D', key) in version order.

        Raises:
            ValueError: a version does not follow the applied one (a gap: catch up first). The changes
                before it stay applied, so the caller can resume from `self.version`.
        """
        for version, lst, op, key in changes:
            if self.version is None or version != self.version + 1:
                raise ValueError(f"version {version} does not follow {self.version}")
            target = self.cards if lst == "C" else self.persons
            fp = fingerprint(card_field(key) if lst == "C" else person_field(key))
            # 'A' lists a key, 'D' delists it, 'R' changes the reason of a listed key (membership unchanged):
            # exact counts per fingerprint, so a collision never hides a listed key.
            if op == "A":
                target.add(fp)
            elif op == "D":
                target.remove(fp)
            self.version = version
            self.synced_at = self.applied_at = time.monotonic()
        if self.cards.pending + self.persons.pending > self.compact_after:
            self.cards.compact()
            self.persons.compact()

    def confirm(self, version: int) -> None:
        """Record that the authoritative version is still `version` (nothing missed)."""
        if self.version == version:
            self.synced_at = time.monotonic()

    @property
    def current(self) -> bool:
        """True when loaded and confirmed within the staleness bound."""
        return self.version is not None and time.monotonic() - self.synced_at <= self.max_staleness_s

    @property
    def age_s(self) -> float:
        """Seconds since the cache was last confirmed current (inf when not loaded)."""
        return float("inf") if self.version is None else time.monotonic() - self.synced_at

    def card_clear(self, card_sn: str) -> bool:
        """True only when this process can prove the card is not listed."""
        return self.current and self.cards.count(fingerprint(card_field(card_sn))) == 0

    def person_clear(self, psn_no: str) -> bool:
        """True only when this process can prove the person is not listed."""
        return self.current and self.persons.count(fingerprint(person_field(psn_no))) == 0
