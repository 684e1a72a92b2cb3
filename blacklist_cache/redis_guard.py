"""Replay state and the blacklist in Redis, checked in ONE round trip per card-bearing request.

Keys (under a prefix): `tseq:{psam_no}:{tseq}` → msgid (expires after twice the freshness window: an
older replay is stale anyway, since MAC1 covers inf_time); `atc:{card_sn}` → highest accepted ATC;
hashes `bl:card` (card_sn → reason) and `bl:psn` (psn_no → reason): O(1) lookups whatever their size.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from gateway.domain.journal import GuardResult

# KEYS: tseq, atc, bl:card, bl:psn, bl:loaded   ARGV: msgid, ttl, atc, card_sn ('' = card-less), psn_no
_CHECK = """
if redis.call('EXISTS', KEYS[5]) == 0 then return {'UNLOADED', '', '', ''} end
local prev = redis.call('GET', KEYS[1])
if prev and prev ~= ARGV[1] then return {'TSEQ', prev, '', ''} end
local card = ARGV[4]
if card ~= '' and not prev then
  local last = redis.call('GET', KEYS[2])
  if last and tonumber(ARGV[3]) <= tonumber(last) then return {'ATC', last, '', ''} end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local creason, preason = false, false
if card ~= '' then
  if not prev then redis.call('SET', KEYS[2], ARGV[3]) end
  creason = redis.call('HGET', KEYS[3], card)
end
if ARGV[5] ~= '' then preason = redis.call('HGET', KEYS[4], ARGV[5]) end
return {'OK', '', creason or '', preason or ''}
"""


class RedisGuard:
    """Freshness/replay (SPEC §5.1) and blacklist (SPEC §8.1) state in Redis."""

    def __init__(self, redis: Redis, prefix: str, tseq_ttl: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.tseq_ttl = tseq_ttl
        self._check = redis.register_script(_CHECK)
        self.card_key = f"{prefix}bl:card"
        self.psn_key = f"{prefix}bl:psn"
        self.loaded_key = f"{prefix}bl:loaded"

    async def check(
        self, msgid: str, psam_no: str, tseq: int, card_sn: str | None, atc: int, psn_no: str | None
    ) -> GuardResult:
        """Record (psam_no, tseq) and the card's ATC unless replayed, and read both blacklist entries."""
        p = self.prefix
        keys = [
            f"{p}tseq:{psam_no}:{tseq}",
            f"{p}atc:{card_sn or ''}",
            self.card_key,
            self.psn_key,
            self.loaded_key,
        ]
        res = await self._check(keys=keys, args=[msgid, self.tseq_ttl, atc, card_sn or "", psn_no or ""])
        kind, detail, creason, preason = (x.decode() if isinstance(x, bytes) else str(x) for x in res)
        return GuardResult(None if kind == "OK" else kind, detail, creason, preason)

    async def blacklist_card(self, card_sn: str, reason: str | None) -> None:
        """Put a card on the list (reason) or take it off (None)."""
        if reason is None:
            await self.redis.hdel(self.card_key, card_sn)
        else:
            await self.redis.hset(self.card_key, card_sn, reason)

    async def blacklist_person(self, psn_no: str, reason: str | None) -> None:
        """Put a person on the list (reason) or take them off (None)."""
        if reason is None:
            await self.redis.hdel(self.psn_key, psn_no)
        else:
            await self.redis.hset(self.psn_key, psn_no, reason)

    async def is_loaded(self) -> bool:
        """True once the lists were loaded from PostgreSQL (they vanish with a Redis restart)."""
        return bool(await self.redis.exists(self.loaded_key))

    async def load(self, cards: Iterable[tuple[str, str]], persons: Iterable[tuple[str, str]]) -> None:
        """Replace both lists with the lists of record, then mark them loaded."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.card_key, self.psn_key)
        for key, rows in ((self.card_key, list(cards)), (self.psn_key, list(persons))):
            for i in range(0, len(rows), 10_000):
                chunk = dict(rows[i : i + 10_000])
                if chunk:
                    pipe.hset(key, mapping=chunk)
        pipe.set(self.loaded_key, "1")
        await pipe.execute()
