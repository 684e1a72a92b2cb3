"""Settings loading and the key store: every bad field listed, development keys refused, no key printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.domain.crypto import Alg
from gateway.domain.errors import ConfigError
from gateway.domain.keys import DEV_KEYS, Purpose
from gateway.keystore import load_keys, parse_keys
from gateway.settings import DEFAULT_PG_DSN, Settings, load_settings

REAL = "A1B2C3D4E5F60718293A4B5C6D7E8F90"


class TestSettings:
    def test_defaults(self):
        """No file and no environment: the local services."""
        s = load_settings(None, {})
        assert s.pg_dsn == DEFAULT_PG_DSN
        assert not s.dev_mode

    def test_environment_overrides_file_and_flags_override_environment(self, tmp_path: Path):
        """TOML, then environment, then explicit overrides."""
        f = tmp_path / "s.toml"
        f.write_text('pg_dsn = "postgresql://file/db"\nfreshness_s = 100\ncore_url = "http://file"\n')
        s = load_settings(f, {"ONECARD_PG_DSN": "postgresql://env/db", "ONECARD_DEV": "yes"}, core_url="http://flag")
        assert s.pg_dsn == "postgresql://env/db"
        assert s.freshness_s == 100
        assert s.core_url == "http://flag"
        assert s.dev_mode is True

    def test_every_bad_field_is_listed(self, tmp_path: Path):
        """One ConfigError names every bad setting."""
        f = tmp_path / "s.toml"
        f.write_text('bogus = 1\nfreshness_s = "soon"\n')
        with pytest.raises(ConfigError) as exc:
            load_settings(f, {"ONECARD_DEV": "maybe"})
        msg = str(exc.value)
        assert "bogus" in msg
        assert "freshness_s" in msg
        assert "ONECARD_DEV" in msg

    def test_deadlines_and_node_id(self):
        """Deadlines default to 2 s (PostgreSQL) and 1 s (Redis); the node id is leased unless configured, and a
        bad one is refused with the others."""
        s = load_settings(None, {})
        assert (s.pg_timeout_s, s.redis_timeout_s, s.node_id, s.node_lease_s) == (2.0, 1.0, None, 30.0)
        s = load_settings(
            None, {"ONECARD_PG_TIMEOUT_S": "0.5", "ONECARD_REDIS_TIMEOUT_S": "0.2", "ONECARD_NODE_ID": "7"}
        )
        assert (s.pg_timeout_s, s.redis_timeout_s, s.node_id) == (0.5, 0.2, 7)
        env = {"ONECARD_PG_TIMEOUT_S": "0", "ONECARD_REDIS_TIMEOUT_S": "-1", "ONECARD_NODE_ID": "9999"}
        with pytest.raises(ConfigError) as exc:
            load_settings(None, env)
        for needle in ("pg_timeout_s: must be positive", "redis_timeout_s: must be positive", "node_id: must be in"):
            assert needle in str(exc.value)
        with pytest.raises(ConfigError, match="node_lease_s: must be at least 3 x pg_timeout_s"):
            load_settings(None, {"ONECARD_NODE_LEASE_S": "3"})

    def test_secrets_hidden_from_repr(self):
        """The admin token and inline keys never print."""
        s = Settings(admin_token="s3cret", keys_json="[]")
        assert "s3cret" not in repr(s)


class TestCoreTlsSettings:
    """Issue 11 item 3: the core's CA bundle and client pair, from TOML and the environment."""

    def test_from_toml_and_environment(self, tmp_path: Path):
        """core_ca_file from TOML, the client pair from the environment; unset by default."""
        assert (load_settings(None, {}).core_ca_file, load_settings(None, {}).core_client_cert) == (None, None)
        f = tmp_path / "s.toml"
        f.write_text('core_url = "https://core.example:8443"\ncore_ca_file = "/etc/onecard/core-ca.pem"\n')
        env = {"ONECARD_CORE_CLIENT_CERT": "/etc/onecard/gw.crt", "ONECARD_CORE_CLIENT_KEY": "/etc/onecard/gw.key"}
        s = load_settings(f, env)
        assert (s.core_url, s.core_ca_file) == ("https://core.example:8443", "/etc/onecard/core-ca.pem")
        assert (s.core_client_cert, s.core_client_key) == ("/etc/onecard/gw.crt", "/etc/onecard/gw.key")
        s = load_settings(None, {"ONECARD_CORE_URL": "https://core.example", "ONECARD_CORE_CA_FILE": "/ca.pem"})
        assert s.core_ca_file == "/ca.pem"

    @pytest.mark.parametrize(
        ("env", "needle"),
        [
            ({"ONECARD_CORE_CLIENT_CERT": "/gw.crt"}, "core_client_cert, core_client_key: give both"),
            ({"ONECARD_CORE_CLIENT_KEY": "/gw.key"}, "core_client_cert, core_client_key: give both"),
            ({"ONECARD_CORE_URL": "http://core", "ONECARD_CORE_CA_FILE": "/ca.pem"}, "core_ca_file: set, but"),
            ({"ONECARD_CORE_URL": "ftp://core"}, "core_url: must start with http:// or https://"),
            ({"ONECARD_CORE_URL": "core.example:8443"}, "core_url: must start with"),
        ],
    )
    def test_bad_combinations_are_named(self, env, needle):
        """Half a client pair, TLS files with an http core, or a core_url of no known scheme: ConfigError."""
        env = {"ONECARD_CORE_URL": "https://core.example", **env}
        with pytest.raises(ConfigError) as exc:
            load_settings(None, env)
        assert needle in str(exc.value)

    def test_empty_variables_are_unset(self):
        """An empty ONECARD_CORE_* variable means unset (http stays allowed)."""
        env = {"ONECARD_CORE_CA_FILE": "", "ONECARD_CORE_CLIENT_CERT": "", "ONECARD_CORE_CLIENT_KEY": ""}
        s = load_settings(None, env)
        assert (s.core_url, s.core_ca_file, s.core_client_cert, s.core_client_key) == (
            "http://127.0.0.1:8090",
            None,
            None,
            None,
        )

    def test_no_setting_turns_hostname_verification_off(self, tmp_path: Path):
        """There is no such setting: an attempt is an unknown setting."""
        f = tmp_path / "s.toml"
        f.write_text("core_verify_hostname = false\n")
        with pytest.raises(ConfigError, match="core_verify_hostname: unknown setting"):
            load_settings(f, {})


class TestKeyStore:
    def entries(self, hexkey: str = REAL) -> list[dict[str, object]]:
        return [
            {"alg": "SM4", "kv": 2, "purpose": "PUR", "hex": hexkey},
            {"alg": "SM4", "kv": 2, "purpose": "TAC", "hex": hexkey[::-1]},
        ]

    def test_json_environment_keys(self):
        """Keys given as JSON in ONECARD_KEYS load."""
        keys = load_keys(Settings(keys_json=json.dumps(self.entries())))
        assert keys.has(Alg.SM4, 2)
        assert keys.get(Alg.SM4, 2, Purpose.PUR) == bytes.fromhex(REAL)
        assert REAL not in repr(keys)
        assert REAL.lower() not in repr(keys)

    def test_toml_key_file(self, tmp_path: Path):
        """A TOML key file loads."""
        f = tmp_path / "keys.toml"
        f.write_text(
            "".join(
                f'[[key]]\nalg = "{e["alg"]}"\nkv = {e["kv"]}\npurpose = "{e["purpose"]}"\nhex = "{e["hex"]}"\n'
                for e in self.entries()
            )
        )
        assert load_keys(Settings(keys_file=str(f))).has(Alg.SM4, 2)

    def test_development_keys_refused_outside_dev_mode(self):
        """The public development keys never run a production gateway."""
        dev = [{"alg": a.value, "kv": v, "purpose": p.value, "hex": k.hex()} for (a, v, p), k in DEV_KEYS.items()]
        with pytest.raises(ConfigError) as exc:
            load_keys(Settings(keys_json=json.dumps(dev)))
        assert "development keys" in str(exc.value)
        assert all(k.hex() not in str(exc.value).lower() for k in DEV_KEYS.values())
        assert load_keys(Settings(keys_json=json.dumps(dev), dev_mode=True)).has(Alg.DES3, 1)

    def test_no_keys_and_no_dev(self):
        """Without keys the gateway refuses to start unless in development mode."""
        with pytest.raises(ConfigError, match="no master keys"):
            load_keys(Settings())
        assert load_keys(Settings(dev_mode=True)).has(Alg.SM4, 1)

    @pytest.mark.parametrize(
        ("entry", "needle"),
        [
            ({"alg": "AES", "kv": 1, "purpose": "PUR", "hex": REAL}, "key[0]"),
            ({"alg": "SM4", "kv": 0, "purpose": "PUR", "hex": REAL}, "kv"),
            ({"alg": "SM4", "kv": 1, "purpose": "XXX", "hex": REAL}, "key[0]"),
            ({"alg": "SM4", "kv": 1, "purpose": "PUR", "hex": REAL[:-2]}, "16 bytes"),
            ({"alg": "SM4", "kv": 1, "purpose": "PUR", "hex": "zz" + REAL[2:]}, "key[0]"),
        ],
    )
    def test_bad_entries_named_without_key_material(self, entry, needle):
        """A bad entry is named by position; the key never appears in the message."""
        with pytest.raises(ConfigError) as exc:
            parse_keys([entry])
        assert needle in str(exc.value)
        assert REAL[4:20] not in str(exc.value)

    def test_duplicate_key(self):
        """The same key id twice is an error."""
        with pytest.raises(ConfigError, match="duplicate"):
            parse_keys(self.entries() + self.entries()[:1])
