"""The sealed envelope and the data key ring (issue 11 item 9): format, row binding, rotation, key loading."""

from __future__ import annotations

import json

import pytest

from gateway.domain.errors import ConfigError
from gateway.domain.sealed import (
    DEV_DATA_KEY,
    HEADER_BYTES,
    REQUEST,
    RESPONSE,
    DataKeyRing,
    UnreadableRecord,
    key_version,
    open_sealed,
    row_ad,
    seal,
)
from gateway.keystore import load_data_keys, parse_data_keys
from gateway.settings import Settings

K1, K2 = bytes(range(32)), bytes(range(1, 33))
RING = DataKeyRing({1: K1, 7: K2}, 7)
AD = row_ad(REQUEST, "H33020000018", "M1")


def sealed(body: bytes = b'{"psn_name":"x"}', ad: bytes = AD) -> bytes:
    aead = RING.cipher(RING.current_version)
    assert aead is not None
    return seal(RING.current_version, aead, body, ad)


class TestEnvelope:
    def test_layout_and_round_trip(self):
        """Format byte, key version, 96-bit nonce, ciphertext+tag; opens to the exact bytes."""
        blob = sealed(b"abc")
        assert blob[0] == 1
        assert key_version(blob) == 7
        assert len(blob) == HEADER_BYTES + 3 + 16
        assert open_sealed(RING.cipher, blob, AD) == b"abc"

    def test_nonce_is_fresh(self):
        """Two seals of one body differ."""
        assert sealed() != sealed()

    @pytest.mark.parametrize(
        "ad",
        [
            row_ad(REQUEST, "H33020000018", "M2"),
            row_ad(REQUEST, "H33020000019", "M1"),
            row_ad(RESPONSE, "H33020000018", "M1"),
        ],
    )
    def test_other_row_or_column_does_not_open(self, ad):
        """Another msgid, institution, or the other body's column: refused as moved or altered."""
        with pytest.raises(UnreadableRecord, match="moved from another row"):
            open_sealed(RING.cipher, sealed(), ad)

    def test_altered_byte_unknown_key_and_garbage(self):
        """One flipped bit, a key the ring lacks, not an envelope: each a specific UnreadableRecord."""
        blob = bytearray(sealed())
        blob[-1] ^= 1
        with pytest.raises(UnreadableRecord, match="does not authenticate"):
            open_sealed(RING.cipher, bytes(blob), AD)
        with pytest.raises(UnreadableRecord, match="v7, which the key store does not hold"):
            open_sealed(DataKeyRing({1: K1}, 1).cipher, sealed(), AD)
        with pytest.raises(UnreadableRecord, match="not a sealed envelope"):
            open_sealed(RING.cipher, b'{"infcode":0}', AD)

    def test_ad_is_unambiguous(self):
        """Length-prefixed: ("ab", "c") and ("a", "bc") bind differently."""
        assert row_ad(REQUEST, "ab", "c") != row_ad(REQUEST, "a", "bc")

    def test_ring_repr_shows_no_key(self):
        """The ring prints versions, never key bytes."""
        assert K1.hex() not in repr(RING)
        assert str(list(K1)) not in repr(RING)


class TestLoading:
    def test_versions_and_current(self):
        """The flag names the current key; without it the highest version is."""
        entries = [{"version": 1, "hex": K1.hex()}, {"version": 3, "hex": K2.hex(), "current": True}]
        assert parse_data_keys(entries).current_version == 3  # type: ignore[union-attr]
        assert parse_data_keys([{"version": 2, "hex": K1.hex()}, {"version": 5, "hex": K2.hex()}]).current_version == 5  # type: ignore[union-attr]

    def test_bad_entries_named_without_key_material(self):
        """Short key, bad version, duplicate, two current: all named, no hex echoed."""
        bad = [
            {"version": 1, "hex": "00" * 16},
            {"version": 0, "hex": K1.hex()},
            {"version": 2, "hex": K1.hex(), "current": True},
            {"version": 2, "hex": K2.hex(), "current": True},
            {"hex": K2.hex()},
        ]
        with pytest.raises(ConfigError) as exc:
            parse_data_keys(bad)
        msg = str(exc.value)
        for part in ("journal_data_key[0]", "journal_data_key[1]", "duplicate version 2", "2 marked current", "[4]"):
            assert part in msg
        assert K1.hex() not in msg
        assert K2.hex() not in msg
        assert "00" * 16 not in msg

    def test_production_without_a_data_key_refuses(self):
        """Encryption on, no key, not dev: refused, naming both ways out."""
        with pytest.raises(ConfigError, match=r"no journal data key.*journal_encryption = false"):
            load_data_keys(Settings())

    def test_explicitly_clear(self):
        """journal_encryption = false with no key: None (clear)."""
        assert load_data_keys(Settings(journal_encryption=False)) is None

    def test_dev_key_only_in_dev_mode(self):
        """Dev mode gets the development key; the same key configured in production is refused."""
        assert load_data_keys(Settings(dev_mode=True)).is_development()  # type: ignore[union-attr]
        env = json.dumps([{"version": 1, "hex": DEV_DATA_KEY.hex()}])
        with pytest.raises(ConfigError, match="development journal data key is refused"):
            load_data_keys(Settings(journal_keys_json=env))

    def test_key_file_section(self, tmp_path):
        """[[journal_data_key]] tables of the TOML key file."""
        f = tmp_path / "keys.toml"
        f.write_text(f'[[journal_data_key]]\nversion = 4\nhex = "{K2.hex()}"\ncurrent = true\n', encoding="utf-8")
        ring = load_data_keys(Settings(keys_file=str(f)))
        assert ring is not None
        assert ring.versions == [4]

    def test_env_not_json(self):
        """ONECARD_JOURNAL_KEYS that is not JSON: named."""
        with pytest.raises(ConfigError, match="ONECARD_JOURNAL_KEYS is not valid JSON"):
            load_data_keys(Settings(journal_keys_json="{nope"))
