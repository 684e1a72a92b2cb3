"""The Lua scripts of the Redis blacklist, and its layout: fingerprint-bucketed listpack hashes.

Layout (under `prefix`; every key below starts with `{prefix}bl:`):
- `meta` hash: `gen`, `cbits`, `pbits`, `version` (the blacklist version Redis reflects), `ccount`, `pcount`
  (entries). No meta = unloaded: nobody may conclude that a card is clear.
- `{gen}:c:{bucket}` / `{gen}:p:{bucket}` hashes: field `card_field(card_sn)` (11 bytes) or `person_field(psn_no)`,
  value the reason as a small integer (1..7, 11, 12). bucket = the top `cbits`/`pbits` bits of
  `fingerprint(field)`; the bits are chosen at rebuild so that the mean bucket holds at most 64 entries, which keeps
  each bucket a listpack (about 15 bytes per card entry) and a lookup's cost independent of the list's size.
- `stream`: one entry per applied chunk of changes, ID `{to}-0`, fields `from`, `to`, `ops` (see `encode_ops`).
- `gens` hash (gen → "cbits:pbits" of every generation that may have keys), `genseq`, `lock` (one rebuild at a
  time), `{gen}:meta` (the staging meta of the generation being built).

Lua cannot shift 64-bit integers (its numbers are doubles), so callers pass the TOP 32 BITS of the fingerprint
as a decimal integer `hi`, and the scripts compute `bucket = floor(hi / 2^(32 - bits))` (bits ≤ 32), which
equals `fingerprint >> (64 - bits)`. Bucket keys are built inside the scripts: standalone Redis only.
"""

from __future__ import annotations

# Lua: bucket key of a field. base = '{prefix}bl:{gen}:', kind 'c'|'p', hi = top 32 bits of the fingerprint.
BUCKET_LUA = """
local function bucket_key(base, kind, bits, hi)
  return base .. kind .. ':' .. math.floor(tonumber(hi) / 2 ^ (32 - tonumber(bits)))
end
"""

# KEYS: meta (live or staging), stream. ARGV: prefix, first, last, publish ('1'|'0'), ops payload, then per change
# kind ('c'|'p'), hi, field, value ('' = delete). Applies only if meta.version == first - 1; returns the version
# meta now holds (last when applied), or -1 when meta is missing. Publishes BEFORE writing, so an error leaves
# nothing half-done; the XADD is skipped when the stream already reached `last`.
APPLY = (
    BUCKET_LUA
    + """
local m = redis.call('HMGET', KEYS[1], 'gen', 'cbits', 'pbits', 'version')
if not m[1] then return -1 end
if tonumber(m[4]) ~= tonumber(ARGV[2]) - 1 then return tonumber(m[4]) end
if ARGV[4] == '1' then
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  local done = top[1] and tonumber(string.match(top[1][1], '^(%d+)')) or 0
  if done < tonumber(ARGV[3]) then
    redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], ARGV[3] .. '-0',
      'from', ARGV[2], 'to', ARGV[3], 'ops', ARGV[5])
  end
end
local base = ARGV[1] .. 'bl:' .. m[1] .. ':'
local bits = {c = m[2], p = m[3]}
local delta = {c = 0, p = 0}
for i = 7, #ARGV, 4 do
  local kind = ARGV[i]
  local key = bucket_key(base, kind, bits[kind], ARGV[i + 1])
  if ARGV[i + 3] == '' then
    delta[kind] = delta[kind] - redis.call('HDEL', key, ARGV[i + 2])
  else
    delta[kind] = delta[kind] + redis.call('HSET', key, ARGV[i + 2], ARGV[i + 3])
  end
end
redis.call('HSET', KEYS[1], 'version', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'ccount', delta.c)
redis.call('HINCRBY', KEYS[1], 'pcount', delta.p)
return tonumber(ARGV[3])
"""
)

# KEYS: staging meta. ARGV: base ('{prefix}bl:{gen}:c:'), records (bucket u32 BE, value u8, field length u8,
# field), the rebuild's token. Returns the number of new fields, or -1 (writing nothing) when the staging meta is
# not this rebuild's any more (Redis was wiped, or another rebuild took over): a stale rebuild cannot pollute.
LOAD = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[3] then return -1 end
local base, blob = ARGV[1], ARGV[2]
local i, n, added = 1, #blob, 0
while i <= n do
  local b1, b2, b3, b4, v, l = string.byte(blob, i, i + 5)
  local key = base .. (((b1 * 256 + b2) * 256 + b3) * 256 + b4)
  added = added + redis.call('HSET', key, string.sub(blob, i + 6, i + 5 + l), v)
  i = i + 6 + l
end
return added
"""

# KEYS: meta, staging meta. ARGV: force ('1' = accept a forward jump), the rebuild's token. Makes the staging
# generation live only when it is this rebuild's and reflects exactly meta's version (or meta is missing): never
# backwards, never skipping a publication.
# Returns {'OK', old gen or ''} | {'AHEAD', meta version} | {'LAG', meta version} | {'LOST'}.
SWITCH = """
local s = redis.call('HMGET', KEYS[2], 'gen', 'cbits', 'pbits', 'version', 'ccount', 'pcount', 'token')
if not s[4] or s[7] ~= ARGV[2] then return {'LOST'} end
local m = redis.call('HMGET', KEYS[1], 'gen', 'version')
if m[1] then
  if tonumber(m[2]) > tonumber(s[4]) then return {'AHEAD', m[2]} end
  if tonumber(m[2]) < tonumber(s[4]) and ARGV[1] ~= '1' then return {'LAG', m[2]} end
end
redis.call('HSET', KEYS[1], 'gen', s[1], 'cbits', s[2], 'pbits', s[3], 'version', s[4], 'ccount', s[5], 'pcount', s[6])
redis.call('DEL', KEYS[2])
return {'OK', m[1] or ''}
"""

# KEYS: meta. ARGV: gen, version. Drops meta (state unknown → UNLOADED) only if it still is that gen and version.
UNLOAD = """
local m = redis.call('HMGET', KEYS[1], 'gen', 'version')
if m[1] == ARGV[1] and m[2] == ARGV[2] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""

# KEYS: meta. ARGV: prefix, card field ('' = none), card hi, person field ('' = none), person hi.
# Returns {card value or '', person value or ''}, or -1 when unloaded.
LOOKUP = (
    BUCKET_LUA
    + """
local m = redis.call('HMGET', KEYS[1], 'gen', 'cbits', 'pbits')
if not m[1] then return -1 end
local base = ARGV[1] .. 'bl:' .. m[1] .. ':'
local c, p = false, false
if ARGV[2] ~= '' then c = redis.call('HGET', bucket_key(base, 'c', m[2], ARGV[3]), ARGV[2]) end
if ARGV[4] ~= '' then p = redis.call('HGET', bucket_key(base, 'p', m[3], ARGV[5]), ARGV[4]) end
return {c or '', p or ''}
"""
)

LOCK_KEEP = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
LOCK_FREE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

# KEYS: bl:meta. ARGV: key prefix, card field ('' = no card lookup), card hi, person field ('' = none), person
# hi. hi = top 32 bits of the field's 64-bit fingerprint. Without meta the lists are not loaded: 'UNLOADED'.
# Returns {'OK' | 'UNLOADED', card value or '', person value or ''}.
LOOKUP_REASONS = (
    BUCKET_LUA
    + """
local m = redis.call('HMGET', KEYS[1], 'gen', 'cbits', 'pbits')
if not m[1] then return {'UNLOADED', '', ''} end
local base = ARGV[1] .. 'bl:' .. m[1] .. ':'
local creason, preason = false, false
if ARGV[2] ~= '' then creason = redis.call('HGET', bucket_key(base, 'c', m[2], ARGV[3]), ARGV[2]) end
if ARGV[4] ~= '' then preason = redis.call('HGET', bucket_key(base, 'p', m[3], ARGV[5]), ARGV[4]) end
return {'OK', creason or '', preason or ''}
"""
)
