"""Who sent an admin request: the bearer token resolved to an `Operator`. The environment's tokens first (the
bootstrap identities `env-operator` and `env-feed-<region>`, compared in constant time), then the named
operators through the `Operators` port by the token's SHA-256, remembered per process for at most
`operator_cache_s` (<= 1 s): a revoked or rotated token stops working in every worker within that bound."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from gateway.domain.feeds import parse_feed_tokens
from gateway.domain.operators import DEV_OPEN, ENV_FEED_PREFIX, ENV_OPERATOR, Operator, Role, token_digest
from gateway.ports.operators import Operators
from gateway.settings import Settings

MAX_CACHED = 4096  # distinct tokens remembered at once; past it the cache starts afresh (a flood of bad tokens)
_BEARER = "Bearer "


class Identities:
    """Resolves an Authorization header to an identity, or None (no, malformed or unknown token)."""

    def __init__(
        self, settings: Settings, operators: Operators, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._env: list[tuple[bytes, Operator]] = []
        if settings.admin_token is not None:
            self._env.append((settings.admin_token.encode(), Operator(ENV_OPERATOR, Role.OPERATOR)))
        for token, region in parse_feed_tokens(settings.feed_tokens).items():
            self._env.append((token.encode(), Operator(ENV_FEED_PREFIX + region, Role.FEED, region)))
        self._open = settings.dev_mode and not self._env
        self._operators = operators
        self._ttl = settings.operator_cache_s
        self._clock = clock
        self._cache: dict[bytes, tuple[float, Operator | None]] = {}

    @property
    def open_for_development(self) -> bool:
        """Development mode with no environment token: a request without a token is `dev-open` (every role)."""
        return self._open

    async def resolve(self, authorization: str | None) -> Operator | None:
        """The identity of this header's token."""
        if not authorization:
            return Operator(DEV_OPEN, Role.OPERATOR, everything=True) if self._open else None
        if not authorization.startswith(_BEARER) or len(authorization) > 1024:
            return None
        token = authorization[len(_BEARER) :].strip()
        if not token:
            return None
        given = token.encode()
        found: Operator | None = None
        for secret, who in self._env:  # every one compared: the time does not tell which matched
            if hmac.compare_digest(given, secret) and found is None:
                found = who
        if found is not None:
            return found
        return await self._named(token_digest(token))

    async def _named(self, digest: bytes) -> Operator | None:
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        who = await self._operators.by_digest(digest)
        if self._ttl > 0:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, who)
        return who
