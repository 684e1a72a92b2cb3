"""The in-process blacklist: exact fingerprint counts, gaps, staleness."""

from __future__ import annotations

import pytest

from blacklist_cache.fingerprint import card_field, card_from_field, fingerprint
from blacklist_cache.local import FingerprintMultiset, LocalBlacklist

CARD_A = "330200D15600000500BF7C7A48FB4966"
CARD_B = "330281D15600000599110145FFFFFFFF"


class TestFingerprint:
    def test_field_round_trip(self):
        """11 bytes identify a card: region BCD + serial."""
        assert len(card_field(CARD_A)) == 11
        assert card_from_field(card_field(CARD_A)) == CARD_A

    @pytest.mark.parametrize("bad", ["330200D15600000600BF7C7A48FB4966", "33020XD15600000500BF7C7A48FB4966", "abc"])
    def test_field_rejects_non_cards(self, bad):
        """Anything but a SPEC §4.1 card_sn is refused."""
        with pytest.raises(ValueError, match="card_sn"):
            card_field(bad)


class TestMultiset:
    def test_counts_survive_collisions(self):
        """Two keys with one fingerprint: removing one keeps the other listed."""
        s = FingerprintMultiset([5, 5, 9])
        assert s.count(5) == 2
        s.remove(5)
        assert s.count(5) == 1
        s.remove(5)
        assert s.count(5) == 0
        s.remove(5)  # nothing listed: no negative counts
        assert s.count(5) == 0
        s.add(5)
        assert s.count(5) == 1

    def test_compaction_keeps_contents(self):
        """Merging pending changes into the base array changes no answer."""
        s = FingerprintMultiset(range(0, 100, 2))
        for fp in range(1, 50, 2):
            s.add(fp)
        for fp in range(0, 40, 4):
            s.remove(fp)
        before = {fp: s.count(fp) for fp in range(120)}
        s.compact()
        assert s.pending == 0
        assert {fp: s.count(fp) for fp in range(120)} == before
        assert len(s) == sum(before.values())


class TestLocalBlacklist:
    def loaded(self) -> LocalBlacklist:
        lb = LocalBlacklist(max_staleness_s=60)
        lb.replace(10, [fingerprint(card_field(CARD_A))], [])
        return lb

    def test_clear_only_when_current_and_absent(self):
        """A listed card or an unloaded cache never clears."""
        lb = LocalBlacklist()
        assert not lb.card_clear(CARD_B)
        lb = self.loaded()
        assert not lb.card_clear(CARD_A)
        assert lb.card_clear(CARD_B)

    def test_apply_in_order(self):
        """Adds, reason changes and deletes apply version by version."""
        lb = self.loaded()
        lb.apply([(11, "C", "A", CARD_B), (12, "C", "R", CARD_B), (13, "C", "D", CARD_A), (14, "P", "A", "P1")])
        assert lb.version == 14
        assert lb.card_clear(CARD_A)
        assert not lb.card_clear(CARD_B)
        assert not lb.person_clear("P1")
        assert lb.person_clear("P2")

    def test_gap_is_refused(self):
        """A version that does not follow the applied one is a gap: nothing after it applies."""
        lb = self.loaded()
        with pytest.raises(ValueError, match="does not follow"):
            lb.apply([(11, "C", "A", CARD_B), (13, "C", "D", CARD_A)])
        assert lb.version == 11
        assert not lb.card_clear(CARD_A)

    def test_stale_cache_clears_nothing(self):
        """Past the staleness bound the process cannot prove anything and must ask Redis."""
        lb = LocalBlacklist(max_staleness_s=1.0)
        lb.replace(1, [], [])
        assert lb.card_clear(CARD_B)
        lb.synced_at -= 1.5  # as if the last confirmation were 1.5 s old
        assert not lb.current
        assert not lb.card_clear(CARD_B)
        lb.confirm(1)
        assert lb.card_clear(CARD_B)
