"""Resolving an admin bearer token (gateway/http/identity.py): environment tokens as bootstrap identities,
named operators through the port, and the per-process cache that bounds how long a revoked token still works."""

from __future__ import annotations

import pytest

from gateway.domain.operators import (
    DEV_OPEN,
    Operator,
    Role,
    check_name,
    check_role,
    new_token,
    token_digest,
)
from gateway.http import identity
from gateway.http.identity import Identities
from gateway.settings import Settings
from tests.fakes.operators import InMemoryOperators

ALICE = Operator("alice", Role.OPERATOR)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(settings: Settings) -> tuple[Identities, InMemoryOperators, Clock]:
    ops, clock = InMemoryOperators(), Clock()
    return Identities(settings, ops, clock=clock), ops, clock


class TestEnvironmentTokens:
    async def test_bootstrap_identities(self):
        """ONECARD_ADMIN_TOKEN is env-operator; each feed token env-feed-<region>, bound to its region."""
        ids, ops, _ = make(Settings(admin_token="admin-secret", feed_tokens="330200=feed-secret-1"))
        assert await ids.resolve("Bearer admin-secret") == Operator("env-operator", Role.OPERATOR)
        assert await ids.resolve("Bearer feed-secret-1") == Operator("env-feed-330200", Role.FEED, "330200")
        assert ops.lookups == 0  # never asked the database

    @pytest.mark.parametrize("header", [None, "", "Bearer ", "Basic YWRtaW4=", "admin-secret", "Bearer x" * 200])
    async def test_no_or_malformed_token(self, header: str | None):
        """No header, another scheme, no scheme or an absurd length: nobody (401), even in development mode
        when tokens are configured."""
        ids, _, _ = make(Settings(admin_token="admin-secret", dev_mode=True))
        assert await ids.resolve(header) is None

    async def test_dev_open_only_without_any_token(self):
        """Development mode with no token configured: a request without a token is dev-open (every role)."""
        ids, _, _ = make(Settings(dev_mode=True))
        who = await ids.resolve(None)
        assert who is not None
        assert who.name == DEV_OPEN
        assert who.may(frozenset({Role.AUDITOR}))
        assert not (await make(Settings())[0].resolve(None))


class TestNamedOperators:
    async def test_lookup_by_hash_and_cache_bound(self):
        """A named token is looked up by its SHA-256; remembered for operator_cache_s, so a revocation shows
        after at most that long, and at once with a cache of 0."""
        ids, ops, clock = make(Settings(operator_cache_s=1.0))
        token = new_token()
        ops.add(token, ALICE)
        assert await ids.resolve(f"Bearer {token}") == ALICE
        ops.revoke(token)
        clock.now += 0.5
        assert await ids.resolve(f"Bearer {token}") == ALICE  # within the bound: still honoured
        clock.now += 0.6
        assert await ids.resolve(f"Bearer {token}") is None
        assert ops.lookups == 2

        uncached, ops2, _ = make(Settings(operator_cache_s=0))
        ops2.add(token, ALICE)
        assert await uncached.resolve(f"Bearer {token}") == ALICE
        ops2.revoke(token)
        assert await uncached.resolve(f"Bearer {token}") is None

    async def test_cache_is_bounded(self, monkeypatch: pytest.MonkeyPatch):
        """A flood of distinct unknown tokens cannot grow the cache past its bound."""
        monkeypatch.setattr(identity, "MAX_CACHED", 8)
        ids, _, _ = make(Settings())
        for i in range(50):
            assert await ids.resolve(f"Bearer unknown-{i}") is None
        assert len(ids._cache) <= 8


class TestOperatorRules:
    def test_tokens(self):
        """Tokens are 256 random bits, URL-safe; only their SHA-256 is stored."""
        a, b = new_token(), new_token()
        assert a != b
        assert len(a) >= 43
        assert len(token_digest(a)) == 32

    @pytest.mark.parametrize("name", ["", "Alice", "env-operator", "env-feed-330200", "dev-open", "a b", "x" * 64])
    def test_bad_names(self, name: str):
        """Reserved and malformed names are refused, saying why."""
        with pytest.raises(ValueError, match="name"):
            check_name(name)

    @pytest.mark.parametrize(
        ("role", "region", "match"),
        [("root", None, "role"), ("feed", None, "region"), ("feed", "33020", "region"), ("monitor", "330200", "only")],
    )
    def test_bad_roles(self, role: str, region: str | None, match: str):
        """A feed needs one 6-digit region; other roles none; unknown roles are named."""
        with pytest.raises(ValueError, match=match):
            check_role(role, region)
