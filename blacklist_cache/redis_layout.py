"""The blacklist in Redis: fingerprint-bucketed listpack hashes, rebuilt from PostgreSQL, fed by the change log.

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

import asyncio
import contextlib
import logging
import struct
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
from redis.asyncio import Redis

from blacklist_cache.fingerprint import card_field, card_from_field, fingerprint, person_field

log = logging.getLogger("onecard.blacklist")

CHUNK = 1000  # changes per atomic apply
LOAD_BATCH = 4000  # rows per bulk-load script call (a few ms of Redis time)
STREAM_MAXLEN = 100_000
MEAN_BUCKET = 64
LOCK_MS = 30_000

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
_APPLY = (
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
_LOAD = """
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
_SWITCH = """
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
_UNLOAD = """
local m = redis.call('HMGET', KEYS[1], 'gen', 'version')
if m[1] == ARGV[1] and m[2] == ARGV[2] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""

# KEYS: meta. ARGV: prefix, card field ('' = none), card hi, person field ('' = none), person hi.
# Returns {card value or '', person value or ''}, or -1 when unloaded.
_LOOKUP = (
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

_LOCK_KEEP = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_LOCK_FREE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RebuildInterrupted(RuntimeError):
    """A rebuild or catch-up could not finish (Redis wiped or restarted under it, another rebuild took over, the
    change log moved on): nothing half-done is live; the publisher tries again."""


class BlacklistUnloaded(Exception):
    """Redis holds no blacklist (never built, or lost): nothing can be concluded until `rebuild`."""


class Op(NamedTuple):
    """One change of a stream entry: list 'C'|'P', op 'A'|'R'|'D', key (card_sn or psn_no), reason ('' on delete)."""

    list: str
    op: str
    key: str
    reason: str


def bits_for(entries: int) -> int:
    """Bucket bits so that the mean bucket holds at most MEAN_BUCKET (and, above that size, more than half)."""
    return min(32, (max(1, -(-entries // MEAN_BUCKET)) - 1).bit_length())


def field_of(list_: str, key: str) -> bytes | None:
    """The Redis field of a key, or None when the key cannot be one (not a SPEC card_sn, not ASCII)."""
    try:
        return card_field(key) if list_ == "C" else person_field(key)
    except ValueError:
        return None


def reason_code(value: bytes | str | None) -> str:
    """Wire form of a stored reason: 3 → '03', 11 → '11'; None/empty → '' (not listed)."""
    return f"{int(value):02d}" if value else ""


def _reason_int(reason: str | None) -> int:
    return int(reason) if reason and reason.isdigit() and 0 < int(reason) < 256 else 0


def encode_ops(changes: Sequence[tuple[str, str, str, str | None]]) -> bytes:
    """Stream payload of (list, op, key, reason) changes, one record per version, in version order.

    Record: 1 byte flags (bit 0: delete, else add; bit 1: person list, else card list; bit 2: the key is
    text, not an 11-byte card field; bit 3: a reason change of a listed key, op 'R'), 1 byte reason (1..7,
    11, 12; 0 on delete), 1 byte key length n, then n
    key bytes: for a card the 11-byte `card_field` (or, flag bit 2, the key's UTF-8 when it is not a SPEC card_sn);
    for a person the psn_no's bytes. Keys are cut at 255 bytes (no real key is that long).
    """
    out = bytearray()
    for list_, op, key, reason in changes:
        flags = (2 if list_ == "P" else 0) | (1 if op == "D" else 0) | (8 if op == "R" else 0)
        raw = field_of("C", key) if list_ == "C" else None
        if raw is None:
            raw, flags = key.encode("utf-8", "replace")[:255], flags | (4 if list_ == "C" else 0)
        out += bytes((flags, _reason_int(reason) if op != "D" else 0, len(raw)))
        out += raw
    return bytes(out)


def decode_ops(payload: bytes) -> list[Op]:
    """The changes of a stream entry's `ops` (inverse of `encode_ops`): (list, op, key, reason) each."""
    out: list[Op] = []
    i, n = 0, len(payload)
    while i < n:
        flags, reason, size = payload[i], payload[i + 1], payload[i + 2]
        raw = payload[i + 3 : i + 3 + size]
        i += 3 + size
        card = not flags & 2
        key = card_from_field(raw) if card and not flags & 4 else raw.decode("utf-8", "replace")
        op = "D" if flags & 1 else ("R" if flags & 8 else "A")
        out.append(Op("P" if flags & 2 else "C", op, key, f"{reason:02d}" if reason else ""))
    return out


class RedisBlacklist:
    """Builds, follows and reads the Redis-resident blacklist (layout above). Needs decode_responses=False."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.base = f"{prefix}bl:"
        self.meta_key = f"{prefix}bl:meta"
        self.stream_key = f"{prefix}bl:stream"
        self._apply = redis.register_script(_APPLY)
        self._load = redis.register_script(_LOAD)
        self._switch = redis.register_script(_SWITCH)
        self._unload = redis.register_script(_UNLOAD)
        self._lookup = redis.register_script(_LOOKUP)
        self._keep = redis.register_script(_LOCK_KEEP)
        self._free = redis.register_script(_LOCK_FREE)

    # reading -------------------------------------------------------------------------------------------------
    async def version(self) -> int | None:
        """The version Redis reflects, or None when unloaded."""
        v = await self.redis.hget(self.meta_key, "version")
        return None if v is None else int(v)

    async def lookup(self, card_sn: str | None, psn_no: str | None) -> tuple[str, str]:
        """(card reason, person reason), '' when not listed.

        Raises:
            BlacklistUnloaded: Redis holds no blacklist.
        """
        cf = field_of("C", card_sn) if card_sn else None
        pf = field_of("P", psn_no) if psn_no else None
        args: list[str | bytes | int] = [self.prefix, cf or b"", _hi(cf), pf or b"", _hi(pf)]
        res = await self._lookup(keys=[self.meta_key], args=args)
        if res == -1:
            raise BlacklistUnloaded("the blacklist is not loaded in Redis")
        return reason_code(res[0]), reason_code(res[1])

    async def stats(self) -> dict[str, Any]:
        """gen, bits, version, bucket counts, entries and mean bucket fill; {'loaded': False} when unloaded."""
        raw = await self.redis.hgetall(self.meta_key)
        if not raw:
            return {"loaded": False}
        m = {k.decode(): int(v) for k, v in raw.items()}
        cb, pb = 1 << m["cbits"], 1 << m["pbits"]
        fill = max(m.get("ccount", 0) / cb, m.get("pcount", 0) / pb)
        return {
            "loaded": True,
            "gen": m["gen"],
            "cbits": m["cbits"],
            "pbits": m["pbits"],
            "version": m["version"],
            "card_buckets": cb,
            "person_buckets": pb,
            "cards": m.get("ccount", 0),
            "persons": m.get("pcount", 0),
            "max_mean_fill": round(fill, 1),
            "rebuild_advised": fill > 1.5 * MEAN_BUCKET,
        }

    # following the change log ----------------------------------------------------------------------------------
    async def catch_up(self, pool: asyncpg.Pool) -> int:
        """Apply the change log after meta.version; returns the version Redis reflects, -1 when unloaded.

        Safe to run from many processes at once: each chunk applies only on top of the version it follows.
        When the log no longer reaches back to meta.version (pruned), or Redis claims a version PostgreSQL never
        reached, the state is unknown: meta is dropped (→ UNLOADED, requests refused) and -1 returned.
        """
        return await self._follow(pool, self.meta_key, publish=True)

    async def _follow(self, pool: asyncpg.Pool, meta_key: str, *, publish: bool) -> int:
        while True:
            gen, ver = await self.redis.hmget(meta_key, ["gen", "version"])
            if gen is None:
                return -1
            v = int(ver)
            head = int(await pool.fetchval("SELECT version FROM blacklist_meta"))
            if head == v:
                return v
            rows = [] if head < v else await pool.fetch(
                "SELECT version, list, key, op, reason FROM blacklist_changes WHERE version > $1"
                " ORDER BY version LIMIT $2", v, CHUNK,
            )  # fmt: skip
            if not rows or rows[0]["version"] != v + 1:
                if not publish:
                    raise RebuildInterrupted(f"blacklist change log does not continue version {v}")
                log.error("blacklist in Redis at version %d cannot follow PostgreSQL (%d): unloading", v, head)
                await self._unload(keys=[meta_key], args=[gen, ver])
                continue
            rows = [r for i, r in enumerate(rows) if r["version"] == v + 1 + i]  # gap-free by construction
            await self._apply_rows(meta_key, rows, publish)

    async def _apply_rows(self, meta_key: str, rows: Sequence[asyncpg.Record], publish: bool) -> int:
        changes = [(r["list"], r["op"], r["key"], r["reason"]) for r in rows]
        args: list[Any] = [self.prefix, rows[0]["version"], rows[-1]["version"], "1" if publish else "0"]
        args += [encode_ops(changes), STREAM_MAXLEN]
        for list_, op, key, reason in changes:
            field = field_of(list_, key)
            if field is None or (op != "D" and not _reason_int(reason)):
                log.warning("blacklist change of an invalid %s key or reason skipped in Redis", list_)
                continue
            args += ["c" if list_ == "C" else "p", _hi(field), field, _reason_int(reason) if op != "D" else ""]
        return int(await self._apply(keys=[meta_key, self.stream_key], args=args))

    # rebuilding ----------------------------------------------------------------------------------------------
    async def rebuild(self, pool: asyncpg.Pool) -> int:
        """Build a new generation from the lists of record, make it live, drop the old; returns the version.

        One rebuild at a time (a Redis lock); a caller that finds one running waits for it and catches up. The
        old generation keeps serving (and following the log) until the switch. Returns the version Redis
        reflects afterwards (≥ the snapshot's version).
        """
        token = uuid.uuid4().hex
        lock = f"{self.base}lock"
        while not await self.redis.set(lock, token, nx=True, px=LOCK_MS):
            await asyncio.sleep(0.2)
            if not await self.redis.exists(lock) and await self.version() is not None:
                return await self.catch_up(pool)
        keeper = asyncio.create_task(self._keep_lock(lock, token))
        try:
            gen = int(await self.redis.incr(f"{self.base}genseq"))
            stage = f"{self.base}{gen}:meta"
            await self._build(pool, gen, stage, token)
            await self._follow(pool, stage, publish=False)
            old = await self._make_live(pool, stage, token)
            await self._drop_gens(keep=gen)
            log.info("blacklist generation %d live (replaced %s)", gen, old or "nothing")
            return await self.catch_up(pool)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a failed renewal must not mask ours
                await keeper
            await self._free(keys=[lock], args=[token])

    async def _keep_lock(self, lock: str, token: str) -> None:
        while True:
            await asyncio.sleep(LOCK_MS / 3000)
            await self._keep(keys=[lock], args=[token, LOCK_MS])

    async def _build(self, pool: asyncpg.Pool, gen: int, stage: str, token: str) -> None:
        """Write generation `gen` from one consistent snapshot; its staging meta records the snapshot version."""
        lists = (("C", "blacklist_cards", "card_sn"), ("P", "blacklist_persons", "psn_no"))
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            version = int(await conn.fetchval("SELECT version FROM blacklist_meta"))
            bits = [bits_for(int(await conn.fetchval(f"SELECT count(*) FROM {t}"))) for _, t, _ in lists]  # noqa: S608
            await self.redis.hset(f"{self.base}gens", str(gen), f"{bits[0]}:{bits[1]}")
            await self.redis.hset(stage, "token", token)
            added = [
                await self._load_list(conn, f"SELECT {col}, reason FROM {table}", list_, (gen, b, stage, token))  # noqa: S608
                for (list_, table, col), b in zip(lists, bits, strict=True)
            ]
        meta = {"gen": gen, "cbits": bits[0], "pbits": bits[1], "version": version, "ccount": added[0],
                "pcount": added[1]}  # fmt: skip
        await self.redis.hset(stage, mapping=meta)
        log.info("blacklist generation %d built at version %d: %d cards, %d persons", gen, version, *added)

    async def _load_list(self, conn: asyncpg.Connection, sql: str, list_: str, into: tuple[int, int, str, str]) -> int:
        """Stream one list through a cursor into its buckets; one load script call in flight while reading on."""
        gen, bits, stage, token = into
        base = f"{self.base}{gen}:{list_.lower()}:"
        shift = 64 - bits
        pack = struct.Struct(">IBB").pack
        added, pending = 0, None
        cur = await conn.cursor(sql)
        try:
            while rows := await cur.fetch(LOAD_BATCH):
                parts = []
                for key, reason in rows:
                    field = field_of(list_, key)
                    if field is not None and len(field) < 256:
                        parts.append(pack(fingerprint(field) >> shift, _reason_int(reason), len(field)) + field)
                if pending is not None:
                    added += _loaded(await pending)
                pending = asyncio.ensure_future(self._load(keys=[stage], args=[base, b"".join(parts), token]))
            if pending is not None:
                added += _loaded(await pending)
                pending = None
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
        return added

    async def _make_live(self, pool: asyncpg.Pool, stage: str, token: str) -> str:
        for attempt in range(50):
            res = await self._switch(keys=[self.meta_key, stage], args=["1" if attempt >= 40 else "0", token])
            kind = res[0].decode()
            log.debug("blacklist switch attempt %d: %s", attempt, kind)
            if kind == "OK":
                return str(res[1].decode())
            if kind == "LOST":
                raise RebuildInterrupted("Redis lost the blacklist generation being built")
            if kind == "AHEAD":
                await self._follow(pool, stage, publish=False)
            else:
                await self.catch_up(pool)
        raise RebuildInterrupted("blacklist generation could not be made live")

    async def _drop_gens(self, keep: int) -> None:
        """UNLINK every generation but `keep` (the old live one, leftovers of failed rebuilds), in batches."""
        gens_key = f"{self.base}gens"
        for gen_b, bits_b in (await self.redis.hgetall(gens_key)).items():
            gen = int(gen_b)
            if gen == keep:
                continue
            cbits, pbits = (int(x) for x in bits_b.decode().split(":"))
            keys = [f"{self.base}{gen}:meta"]
            keys += [f"{self.base}{gen}:c:{b}" for b in range(1 << cbits)]
            keys += [f"{self.base}{gen}:p:{b}" for b in range(1 << pbits)]
            pipe = self.redis.pipeline(transaction=False)
            for i in range(0, len(keys), 1000):
                pipe.unlink(*keys[i : i + 1000])
            await pipe.execute()
            await self.redis.hdel(gens_key, gen_b)


def _loaded(res: Any) -> int:
    if int(res) < 0:
        raise RebuildInterrupted("the blacklist generation being built was lost (Redis wiped, or another rebuild)")
    return int(res)


def _hi(field: bytes | None) -> int:
    """Top 32 bits of a field's fingerprint (what the Lua scripts shift), 0 for no field."""
    return fingerprint(field) >> 32 if field else 0
