"""Blacklist lookups in Redis for the entries the in-process cache cannot clear, in ONE script call.

Replay state is not here: PostgreSQL holds it (SPEC §5.1, the journal claim), so a Redis that lost its data,
or stalls, can neither let a replay through nor refuse a fresh request. The lists are the layout of
`blacklist_cache.redis_scripts` (bucket keys computed inside the script from `bl:meta`).

Every call has a deadline (`connect_redis`: socket timeouts, no retries, and a hard bound around the call),
and a stalled or unreachable Redis becomes `DependencyUnavailable`.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from blacklist_cache.fingerprint import fingerprint
from blacklist_cache.redis_codec import field_of, reason_code
from blacklist_cache.redis_scripts import LOOKUP_REASONS
from gateway.domain.errors import DependencyUnavailable


def connect_redis(url: str, timeout_s: float) -> Redis:
    """A client whose every command, connecting included, fails after `timeout_s` and is never retried (redis-py
    retries three times with up to 10 s of backoff by default: a stall would cost a terminal 14 s)."""
    client: Redis = Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
    )
    return client


class RedisLookup:
    """Card and person list lookups (SPEC §8.1) for keys the in-process cache could not clear."""

    def __init__(self, redis: Redis, prefix: str, timeout_s: float = 1.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.meta_key = f"{prefix}bl:meta"
        self._lookup = redis.register_script(LOOKUP_REASONS)

    async def reasons(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str] | None:
        """(card reason, person reason) for the keys given ('' = not listed), or None while the lists are not
        loaded in Redis. A key that cannot be listed (not a SPEC card_sn) reads as not listed.

        Raises:
            DependencyUnavailable: Redis failed or did not answer within the deadline.
        """
        cf = (field_of("C", card_sn) or b"") if card_sn else None
        pf = (field_of("P", psn_no) or b"") if psn_no else None
        args = [self.prefix, *_lookup_args(cf), *_lookup_args(pf)]
        try:
            async with asyncio.timeout(self.timeout_s):
                res = await self._lookup(keys=[self.meta_key], args=args)
        except TimeoutError as exc:
            raise DependencyUnavailable(f"Redis did not answer within {self.timeout_s:g} s") from exc
        except (RedisError, OSError) as exc:
            raise DependencyUnavailable(f"Redis unavailable ({type(exc).__name__})") from exc
        kind = res[0].decode() if isinstance(res[0], bytes) else str(res[0])
        if kind != "OK":
            return None
        return reason_code(res[1]), reason_code(res[2])

    async def is_loaded(self) -> bool:
        """True while Redis holds a blacklist (`RedisBlacklist.version()` is not None)."""
        async with asyncio.timeout(self.timeout_s):
            return bool(await self.redis.exists(self.meta_key))


def _lookup_args(field: bytes | None) -> tuple[bytes | str, int]:
    """(field, top 32 bits of its fingerprint) for the script; a key that cannot be listed reads a sentinel."""
    if field is None:
        return "", 0
    if not field:
        return b"\x00", 0  # no 1-byte field is ever stored
    return field, fingerprint(field) >> 32
