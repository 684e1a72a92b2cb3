"""Settings: one frozen object, loaded once from an optional TOML file with the environment overriding it."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gateway.domain.errors import ConfigError
from gateway.domain.feeds import parse_feed_tokens

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/onecard"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CORE_TLS_FILES = ("core_ca_file", "core_client_cert", "core_client_key")  # issue 11 item 3
MAX_NODE_ID = 9998  # node ids are 4 digits of every id the gateway mints (adapters/pg_nodes.py); 9999 = none


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway needs to start; secrets only through the environment or the key file."""

    pg_dsn: str = DEFAULT_PG_DSN
    redis_url: str = DEFAULT_REDIS_URL
    redis_prefix: str = "onecard:"
    core_url: str = "http://127.0.0.1:8090"
    core_timeout_s: float = 3.0
    core_read_timeout_s: float = 1.5
    core_pool_size: int = 100
    dev_mode: bool = False
    keys_file: str | None = None
    keys_json: str | None = field(default=None, repr=False)
    freshness_s: int = 300
    sign_ttl_s: int = 86_400
    timezone: str = "Asia/Shanghai"
    max_body_bytes: int = 256 * 1024
    gateway_region: str = "330200"
    policy_file: str | None = None
    catalogue_file: str | None = None
    world_file: str | None = None
    admin_token: str | None = field(default=None, repr=False)
    blacklist_staleness_s: float = 1.0
    blacklist_retention_days: int = 30
    feed_tokens: str | None = field(default=None, repr=False)
    import_max_lines: int = 20_000_000
    import_max_bytes: int = 4 * 1024**3
    pg_pool_min: int = 2
    pg_pool_max: int = 20
    core_breaker_failures: int = 5  # failures in a row that open the core's circuit breaker
    core_breaker_reset_s: float = 5.0  # open this long, then one probe (half-open)
    core_max_in_flight: int = 200  # core calls at once per process
    core_queue_wait_s: float = 0.05  # how long a call waits for a free slot before CORE_UNAVAILABLE
    journal_recovery_grace_s: float = 60.0  # a claim PENDING longer than this belongs to a dead process
    journal_recovery_interval_s: float = 30.0  # how often every process looks for such claims
    journal_batch_slots: int = 4  # journal statements in flight per process; more requests queue and share one
    journal_batch_max: int = 128  # requests per group-committed journal statement at most
    pg_timeout_s: float = 2.0  # every request-path PostgreSQL statement, pool acquisition included
    pg_bulk_timeout_s: float = 300.0  # snapshot loads, world loads, imports, migrations, chain verification
    pg_connect_timeout_s: float = 5.0  # opening a connection (start-up and operator commands)
    redis_timeout_s: float = 1.0  # every Redis command, connecting included; never retried
    node_id: int | None = None  # this process's id in minted ids; None: lease the lowest free one
    node_lease_s: float = 30.0  # a node id not renewed for this long may be taken by another process
    # Issue 11 items 4-5 (admin listener, named operators): with admin_port set, /admin/* and /metrics are served
    # there only; operator_cache_s bounds how long a revoked or rotated token can still be honoured per worker.
    admin_host: str = "127.0.0.1"
    admin_port: int | None = None
    operator_cache_s: float = 1.0
    # Issue 11 item 9, personal data at rest: journal bodies sealed with a data key; retention of DONE rows.
    journal_encryption: bool = True  # false: bodies in clear (must be said explicitly when no data key is set)
    journal_keys_json: str | None = field(default=None, repr=False)  # data keys as JSON (else the key file)
    journal_retention_days: int | None = None  # archive-then-delete DONE rows older than this; None: keep forever
    # issue 11 item 3, TLS to the insurance core (an https core_url; hostname verification is always on)
    core_ca_file: str | None = None  # CA bundle (PEM) the core's certificate must chain to; None: the system store
    core_client_cert: str | None = None  # the gateway's certificate (PEM) for mTLS to the core; with its key
    core_client_key: str | None = None  # its private key (PEM, unencrypted); both or neither
    # issue 11 items 7 and 8: rate limits and priority load shedding (README "Rate limits and load shedding")
    rate_limits_file: str | None = None  # TOML with a [rate_limits] table; None: no rate limits
    host_workers: int = 1  # worker processes of this host (set by `serve --workers N`): each takes rate/N
    max_in_flight: int = 1000  # terminal requests in flight per process; past shares of it, load is shed
    # issue 11 items 1-2, TLS on the terminal listener (README "TLS and client certificates"): PEM files, reloaded
    # on SIGHUP. With tls_client_ca a client certificate chained to it is required and names the institution.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    tls_client_crl: str | None = None
    # issue 11 item 4, the admin listener's own TLS (README "Admin listener"): PEM files, reloaded on SIGHUP with
    # the terminal's; with admin_tls_client_ca the operators' machines must present a certificate chained to it.
    admin_tls_cert: str | None = None
    admin_tls_key: str | None = None
    admin_tls_client_ca: str | None = None
    # issue 11, bad input "10,000 idle connections" (README "Connections"): per process on the terminal port
    max_connections: int = 4096  # open at once (lowered to what the open-file limit leaves); past it: 503, closed
    idle_request_timeout_s: float = 10.0  # from accept to a complete first request head, TLS handshake included
    keepalive_timeout_s: float = 15.0  # a keep-alive connection idle this long between requests is closed


# environment variable → (field, parser)
_ENV: dict[str, tuple[str, type]] = {
    "ONECARD_PG_DSN": ("pg_dsn", str),
    "ONECARD_REDIS_URL": ("redis_url", str),
    "ONECARD_REDIS_PREFIX": ("redis_prefix", str),
    "ONECARD_CORE_URL": ("core_url", str),
    "ONECARD_CORE_TIMEOUT_S": ("core_timeout_s", float),
    "ONECARD_CORE_READ_TIMEOUT_S": ("core_read_timeout_s", float),
    "ONECARD_DEV": ("dev_mode", bool),
    "ONECARD_KEYS_FILE": ("keys_file", str),
    "ONECARD_KEYS": ("keys_json", str),
    "ONECARD_FRESHNESS_S": ("freshness_s", int),
    "ONECARD_SIGN_TTL_S": ("sign_ttl_s", int),
    "ONECARD_TIMEZONE": ("timezone", str),
    "ONECARD_MAX_BODY_BYTES": ("max_body_bytes", int),
    "ONECARD_REGION": ("gateway_region", str),
    "ONECARD_POLICY_FILE": ("policy_file", str),
    "ONECARD_CATALOGUE_FILE": ("catalogue_file", str),
    "ONECARD_ADMIN_TOKEN": ("admin_token", str),
    "ONECARD_FEED_TOKENS": ("feed_tokens", str),
    "ONECARD_IMPORT_MAX_LINES": ("import_max_lines", int),
    "ONECARD_IMPORT_MAX_BYTES": ("import_max_bytes", int),
    "ONECARD_BLACKLIST_STALENESS_S": ("blacklist_staleness_s", float),
    "ONECARD_BLACKLIST_RETENTION_DAYS": ("blacklist_retention_days", int),
    "ONECARD_CORE_BREAKER_FAILURES": ("core_breaker_failures", int),
    "ONECARD_CORE_BREAKER_RESET_S": ("core_breaker_reset_s", float),
    "ONECARD_CORE_MAX_IN_FLIGHT": ("core_max_in_flight", int),
    "ONECARD_CORE_QUEUE_WAIT_S": ("core_queue_wait_s", float),
    "ONECARD_JOURNAL_RECOVERY_GRACE_S": ("journal_recovery_grace_s", float),
    "ONECARD_JOURNAL_RECOVERY_INTERVAL_S": ("journal_recovery_interval_s", float),
    "ONECARD_JOURNAL_BATCH_SLOTS": ("journal_batch_slots", int),
    "ONECARD_JOURNAL_BATCH_MAX": ("journal_batch_max", int),
    "ONECARD_PG_TIMEOUT_S": ("pg_timeout_s", float),
    "ONECARD_PG_BULK_TIMEOUT_S": ("pg_bulk_timeout_s", float),
    "ONECARD_PG_CONNECT_TIMEOUT_S": ("pg_connect_timeout_s", float),
    "ONECARD_REDIS_TIMEOUT_S": ("redis_timeout_s", float),
    "ONECARD_NODE_ID": ("node_id", int),
    "ONECARD_NODE_LEASE_S": ("node_lease_s", float),
    # issue 11 items 4-5
    "ONECARD_ADMIN_HOST": ("admin_host", str),
    "ONECARD_ADMIN_PORT": ("admin_port", int),
    "ONECARD_OPERATOR_CACHE_S": ("operator_cache_s", float),
    # issue 11 item 9
    "ONECARD_JOURNAL_ENCRYPTION": ("journal_encryption", bool),
    "ONECARD_JOURNAL_KEYS": ("journal_keys_json", str),
    "ONECARD_JOURNAL_RETENTION_DAYS": ("journal_retention_days", int),
    # issue 11 item 3, TLS to the insurance core
    "ONECARD_CORE_CA_FILE": ("core_ca_file", str),
    "ONECARD_CORE_CLIENT_CERT": ("core_client_cert", str),
    "ONECARD_CORE_CLIENT_KEY": ("core_client_key", str),
    "ONECARD_RATE_LIMITS_FILE": ("rate_limits_file", str),  # issue 11 item 7
    "ONECARD_MAX_IN_FLIGHT": ("max_in_flight", int),  # issue 11 item 8
    # issue 11 items 1-2: TLS
    "ONECARD_TLS_CERT": ("tls_cert", str),
    "ONECARD_TLS_KEY": ("tls_key", str),
    "ONECARD_TLS_CLIENT_CA": ("tls_client_ca", str),
    "ONECARD_TLS_CLIENT_CRL": ("tls_client_crl", str),
    # issue 11 item 4: the admin listener's TLS
    "ONECARD_ADMIN_TLS_CERT": ("admin_tls_cert", str),
    "ONECARD_ADMIN_TLS_KEY": ("admin_tls_key", str),
    "ONECARD_ADMIN_TLS_CLIENT_CA": ("admin_tls_client_ca", str),
    # issue 11, bad input "10,000 idle connections"
    "ONECARD_MAX_CONNECTIONS": ("max_connections", int),
    "ONECARD_IDLE_REQUEST_TIMEOUT_S": ("idle_request_timeout_s", float),
    "ONECARD_KEEPALIVE_TIMEOUT_S": ("keepalive_timeout_s", float),
}

_TYPES = {f.name: f.type for f in fields(Settings)}


def longest_claim_s(s: Settings) -> float:
    """The longest a live request can hold its journal claim: a person read, then up to three postings each
    followed by a re-read (pipeline.settle.MAX_POST_ATTEMPTS), each call after a wait for a free slot, plus
    10 s for PostgreSQL and scheduling. Recovery must wait longer before it calls a claim abandoned."""
    call = s.core_queue_wait_s
    return (call + s.core_read_timeout_s) + 3 * (2 * call + s.core_timeout_s + s.core_read_timeout_s) + 10.0


def _coerce(name: str, value: Any, kind: str, errors: list[str]) -> Any:
    try:
        if "bool" in kind:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError("expected true/false")
        if "int" in kind:
            return int(value)
        if "float" in kind:
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        errors.append(f"{name}: {exc}")
        return None


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] = os.environ, **overrides: Any
) -> Settings:
    """Settings from TOML (optional), then environment, then explicit overrides (CLI flags).

    Raises:
        ConfigError: listing every bad field.
    """
    values: dict[str, Any] = {}
    errors: list[str] = []
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from None
        for key, value in raw.items():
            if key not in _TYPES:
                errors.append(f"{key}: unknown setting")
            else:
                values[key] = _coerce(key, value, str(_TYPES[key]), errors)
    for env, (name, _) in _ENV.items():
        if env in environ:
            values[name] = _coerce(env, environ[env], str(_TYPES[name]), errors)
    values.update({key: value for key, value in overrides.items() if value is not None})
    values.update({n: None for n in CORE_TLS_FILES if values.get(n) == ""})  # an empty variable: unset
    s = replace(Settings(), **values) if not errors else Settings()
    if s.freshness_s <= 0:
        errors.append("freshness_s: must be positive")
    if s.max_body_bytes < 1024:
        errors.append("max_body_bytes: must be at least 1024")
    if len(s.gateway_region) != 6 or not s.gateway_region.isdigit():
        errors.append("gateway_region: must be 6 digits")
    try:
        parse_feed_tokens(s.feed_tokens)
    except ValueError as exc:
        errors.append(f"feed_tokens: {exc}")
    if s.blacklist_retention_days < 1:
        errors.append("blacklist_retention_days: must be at least 1")
    if s.core_breaker_failures < 1:
        errors.append("core_breaker_failures: must be at least 1")
    if s.core_breaker_reset_s <= 0:
        errors.append("core_breaker_reset_s: must be positive")
    if s.core_max_in_flight < 1:
        errors.append("core_max_in_flight: must be at least 1")
    if s.core_queue_wait_s < 0:
        errors.append("core_queue_wait_s: must not be negative")
    if s.journal_recovery_grace_s <= longest_claim_s(s):
        errors.append(
            f"journal_recovery_grace_s: must exceed {longest_claim_s(s):g} s, the longest a live request can run"
        )
    if s.journal_recovery_interval_s <= 0:
        errors.append("journal_recovery_interval_s: must be positive")
    if s.journal_batch_slots < 1 or s.journal_batch_max < 1:
        errors.append("journal_batch_slots, journal_batch_max: must be at least 1")
    if s.journal_batch_slots >= s.pg_pool_max:
        errors.append(
            f"journal_batch_slots: must be below pg_pool_max ({s.pg_pool_max}), or nothing else gets a connection"
        )
    deadlines = ("pg_timeout_s", "pg_bulk_timeout_s", "pg_connect_timeout_s", "redis_timeout_s")
    errors += [f"{name}: must be positive" for name in deadlines if not getattr(s, name) > 0]
    if s.node_id is not None and not 0 <= s.node_id <= MAX_NODE_ID:
        errors.append(f"node_id: must be in 0..{MAX_NODE_ID}")
    if s.node_lease_s < 3 * s.pg_timeout_s:
        errors.append(f"node_lease_s: must be at least 3 x pg_timeout_s ({3 * s.pg_timeout_s:g} s)")
    if s.admin_port is not None and not 0 <= s.admin_port <= 65535:  # issue 11 item 4; 0: any free port (tests)
        errors.append("admin_port: must be in 0..65535")
    if not 0 <= s.operator_cache_s <= 1:
        errors.append("operator_cache_s: must be in 0..1 (seconds a revoked token may still be honoured)")
    if s.journal_retention_days is not None and s.journal_retention_days < 1:  # issue 11 item 9
        errors.append("journal_retention_days: must be at least 1 (or unset: keep forever)")
    if s.max_in_flight < 1 or s.host_workers < 1:  # issue 11 items 7 and 8
        errors.append("max_in_flight, host_workers: must be at least 1")
    from gateway.settings_tls import tls_errors  # it reads Settings: imported once this module is loaded

    errors += tls_errors(s)  # issue 11 items 1-4
    if s.max_connections < 1:  # issue 11, bad input "10,000 idle connections"
        errors.append("max_connections: must be at least 1")
    errors += [
        f"{n}: must be positive" for n in ("idle_request_timeout_s", "keepalive_timeout_s") if not getattr(s, n) > 0
    ]
    if errors:
        raise ConfigError("bad settings: " + "; ".join(errors))
    return s
