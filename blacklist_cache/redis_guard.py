"""Replay state and blacklist lookups in Redis, checked in ONE round trip per request.

Replay keys (under a prefix): `tseq:{psam_no}:{tseq}` → msgid (expires after twice the freshness window: an
older replay is stale anyway, since MAC1 covers inf_time); `atc:{card_sn}` → highest accepted ATC. The
blacklist is the layout of `blacklist_cache.redis_layout` (bucket keys computed inside the script from `bl:meta`).
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from blacklist_cache.fingerprint import fingerprint
from blacklist_cache.redis_layout import BUCKET_LUA, field_of, reason_code
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.journal import GuardResult

# KEYS: tseq, atc, bl:meta.
# ARGV: msgid, ttl, atc, card_sn ('' = card-less), key prefix, card field ('' = no card lookup), card hi,
#       person field ('' = no person lookup), person hi. hi = top 32 bits of the field's 64-bit fingerprint.
# A lookup needs meta: without it → UNLOADED before anything is consumed; with no lookup, meta is not read.
# Returns {kind 'OK'|'TSEQ'|'ATC'|'UNLOADED', detail, card value or '', person value or ''}.
_CHECK = (
    BUCKET_LUA
    + """
local m = false
if ARGV[6] ~= '' or ARGV[8] ~= '' then
  m = redis.call('HMGET', KEYS[3], 'gen', 'cbits', 'pbits')
  if not m[1] then return {'UNLOADED', '', '', ''} end
end
local prev = redis.call('GET', KEYS[1])
if prev and prev ~= ARGV[1] then return {'TSEQ', prev, '', ''} end
local card = ARGV[4]
if card ~= '' and not prev then
  local last = redis.call('GET', KEYS[2])
  if last and tonumber(ARGV[3]) <= tonumber(last) then return {'ATC', last, '', ''} end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if card ~= '' and not prev then redis.call('SET', KEYS[2], ARGV[3]) end
local creason, preason = false, false
if m then
  local base = ARGV[5] .. 'bl:' .. m[1] .. ':'
  if ARGV[6] ~= '' then creason = redis.call('HGET', bucket_key(base, 'c', m[2], ARGV[7]), ARGV[6]) end
  if ARGV[8] ~= '' then preason = redis.call('HGET', bucket_key(base, 'p', m[3], ARGV[9]), ARGV[8]) end
end
return {'OK', '', creason or '', preason or ''}
"""
)


class RedisGuard:
    """Freshness/replay (SPEC §5.1) and the Redis blacklist lookups (SPEC §8.1) in one script call."""

    def __init__(self, redis: Redis, prefix: str, tseq_ttl: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.tseq_ttl = tseq_ttl
        self.meta_key = f"{prefix}bl:meta"
        self._check = redis.register_script(_CHECK)

    async def check(
        self,
        msgid: str,
        psam_no: str,
        tseq: int,
        card_sn: str | None,
        atc: int,
        psn_no: str | None,
        *,
        lookup_card: bool = True,
        lookup_person: bool = True,
    ) -> GuardResult:
        """Record (psam_no, tseq) and the card's ATC unless replayed, and read the requested blacklist entries.

        lookup_card/lookup_person False: the caller (the in-process cache) already cleared that key, so Redis
        is not asked and its blacklist need not be loaded. A requested lookup of a key that cannot be listed
        in Redis (not a SPEC card_sn) reads nothing but still requires the blacklist to be loaded.
        """
        p = self.prefix
        cf = (field_of("C", card_sn) or b"") if card_sn and lookup_card else None
        pf = (field_of("P", psn_no) or b"") if psn_no and lookup_person else None
        keys = [f"{p}tseq:{psam_no}:{tseq}", f"{p}atc:{card_sn or ''}", self.meta_key]
        args = [msgid, self.tseq_ttl, atc, card_sn or "", p, *_lookup_args(cf), *_lookup_args(pf)]
        try:
            res = await self._check(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            # Nothing was decided: the request is refused as not settled, and the terminal may retry.
            raise DependencyUnavailable(f"replay and blacklist state unavailable ({type(exc).__name__})") from exc
        kind, detail = (x.decode() if isinstance(x, bytes) else str(x) for x in res[:2])
        if kind != "OK":
            return GuardResult(kind, detail, "", "")
        return GuardResult(None, "", reason_code(res[2]), reason_code(res[3]))

    async def is_loaded(self) -> bool:
        """True while Redis holds a blacklist (`RedisBlacklist.version()` is not None)."""
        return bool(await self.redis.exists(self.meta_key))


def _lookup_args(field: bytes | None) -> tuple[bytes | str, int]:
    """(field, top 32 bits of its fingerprint) for the script; a requested but unlistable key reads a sentinel."""
    if field is None:
        return "", 0
    if not field:
        return b"\x00", 0  # forces the meta check; no 1-byte field is ever stored
    return field, fingerprint(field) >> 32
