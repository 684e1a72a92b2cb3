"""Personal data at rest (issue 11 item 9) against real PostgreSQL: sealed bodies, retries byte-identical, recovery
of a sealed PENDING claim, a moved ciphertext refused, key rotation, clear and sealed rows in one chain, and
archive-then-delete with `journal verify` green before and after."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from adapters.journal_sealing import JournalSealing
from adapters.pg_claims import PgJournal
from adapters.pg_journal_archive import ArchiveRefused, archive
from adapters.pg_journal_chain import seal_once
from adapters.pg_journal_verify import verify
from adapters.pg_pool import Pg
from gateway.domain.journal import Claimed, Existing
from gateway.domain.sealed import DataKeyRing, UnreadableRecord

CODE = "H33020000019"
NAME = "欧阳秀英"
CERTNO = "330211197112102158"
_n = itertools.count(1)
K1, K2 = bytes(range(32)), bytes(range(32, 64))
RING1 = DataKeyRing({1: K1}, 1)
RING12 = DataKeyRing({1: K1, 2: K2}, 2)


def sealed(pool: Pg, ring: DataKeyRing = RING1) -> PgJournal:
    """A journal that seals new rows with `ring`."""
    return PgJournal(pool, sealing=JournalSealing(ring))


async def claim(store: PgJournal) -> tuple[int, str, str, bytes]:
    """A PENDING row through the real claim: (id, msgid, request text, content hash)."""
    n = next(_n)
    msgid = f"S{n:029d}"
    req = orjson.dumps({"infno": "1101", "msgid": msgid, "input": {"psn_name": NAME, "certno": CERTNO, "n": n}})
    digest = hashlib.sha256(req).digest()
    res, _ = await store.claim_with_card(CODE, msgid, "1101", "330200000001", None, digest, req.decode(), None)
    assert isinstance(res, Claimed)
    return res.journal_id, msgid, req.decode(), digest


def answer(n: int) -> bytes:
    """A response naming the person, with bytes a JSON re-encoding would not keep (spacing, key order)."""
    return ('{"infcode":0, "output":{"psn_name":"' + NAME + '","certno":"' + CERTNO + f'","z":1,"a":{n}}}}}').encode()


async def test_stored_body_is_not_plaintext_and_retry_is_byte_identical(pool: Pg):
    """The raw row holds neither the name nor the certno anywhere; a same-msgid lookup returns the exact bytes."""
    store = sealed(pool)
    jid, msgid, _, digest = await claim(store)
    body = answer(jid)
    assert await store.complete(jid, body, 200, None)
    raw = await pool.fetchrow("SELECT * FROM journal WHERE id = $1", jid)
    assert raw is not None
    assert raw["request"] is None
    assert raw["response"] is None
    assert raw["data_key_version"] == 1
    for value in dict(raw).values():
        blob = bytes(value) if isinstance(value, bytes) else str(value).encode()
        assert NAME.encode() not in blob
        assert CERTNO.encode() not in blob
    hits = await pool.fetchval(
        "SELECT count(*) FROM journal WHERE position(convert_to($1, 'UTF8') IN"
        " coalesce(request_enc, '') || coalesce(response_enc, '') || convert_to(coalesce(request::text, ''), 'UTF8')"
        " || coalesce(response, '')) > 0 AND data_key_version IS NOT NULL",
        NAME,
    )
    assert hits == 0
    again = await store.existing(CODE, msgid, digest)
    assert again == Existing(True, True, body, 200, None)
    assert (await store.reply_of(jid)).response == body


async def test_recovery_of_a_sealed_pending_claim(pool: Pg):
    """A PENDING sealed claim is read back by recovery with its exact request; its completion is sealed too."""
    jid, msgid, req, _ = await claim(sealed(pool))
    fresh = sealed(pool)  # another process: it knows nothing of the claim but what the row says
    stale = [c for c in await fresh.stale_claims(0.0, 1000) if c.journal_id == jid]
    assert len(stale) == 1
    assert stale[0].request_json == req
    assert stale[0].msgid == msgid
    assert (await fresh.pending_claim(jid)) == stale[0]
    other = sealed(pool)  # a third one completes it without having read it: the row's key is read back
    assert await other.complete(jid, answer(jid), 200, "CORE_TIMEOUT")
    assert (await fresh.reply_of(jid)).response == answer(jid)
    assert await pool.fetchval("SELECT response FROM journal WHERE id = $1", jid) is None


async def test_ciphertext_moved_to_another_row_does_not_open(pool: Pg):
    """Row B given row A's sealed response and request: a clear UnreadableRecord naming the msgid, no body."""
    store = sealed(pool)
    a, _, _, _ = await claim(store)
    b, msgid_b, _, digest_b = await claim(store)
    await store.complete(a, answer(a), 200, None)
    await store.complete(b, answer(b), 200, None)
    await pool.execute(
        "UPDATE journal SET response_enc = (SELECT response_enc FROM journal WHERE id = $1) WHERE id = $2", a, b
    )
    with pytest.raises(UnreadableRecord, match=f"response of msgid {msgid_b}.*moved from another row") as exc:
        await store.existing(CODE, msgid_b, digest_b)
    assert NAME not in str(exc.value)
    c, _, _, _ = await claim(store)
    await pool.execute(
        "UPDATE journal SET request_enc = (SELECT request_enc FROM journal WHERE id = $1) WHERE id = $2", a, c
    )
    with pytest.raises(UnreadableRecord, match="request of msgid"):
        await store.pending_claim(c)
    assert c not in [s.journal_id for s in await store.stale_claims(0.0, 1000)]  # skipped, the others recovered
    await store.complete(c, b"{}", 200, "CORE_TIMEOUT")


async def test_key_rotation_keeps_old_rows_readable(pool: Pg):
    """v2 current: new rows carry version 2, rows of v1 still open; a store without v1 says which key it lacks."""
    old = sealed(pool, RING1)
    a, msgid_a, _, digest_a = await claim(old)
    await old.complete(a, answer(a), 200, None)
    new = sealed(pool, RING12)
    b, msgid_b, _, digest_b = await claim(new)
    await new.complete(b, answer(b), 200, None)
    versions = dict(await pool.fetch("SELECT id, data_key_version FROM journal WHERE id = ANY($1)", [a, b]))
    assert versions == {a: 1, b: 2}
    assert (await new.existing(CODE, msgid_a, digest_a)).response == answer(a)
    assert (await new.existing(CODE, msgid_b, digest_b)).response == answer(b)
    only2 = sealed(pool, DataKeyRing({2: K2}, 2))
    with pytest.raises(UnreadableRecord, match="data key v1, which the key store does not hold"):
        await only2.existing(CODE, msgid_a, digest_a)
    clear = PgJournal(pool)  # no keys at all
    with pytest.raises(UnreadableRecord, match="no journal data keys are configured"):
        await clear.existing(CODE, msgid_b, digest_b)


async def test_clear_and_sealed_rows_chain_and_archive(pool: Pg, tmp_path: Path):
    """Clear (legacy) and sealed rows in one chain verify; archive-then-delete keeps verify green; the archive
    holds ciphertext; a second archive continues from the checkpoint; an existing file is refused."""
    clear, store = PgJournal(pool), sealed(pool)
    for s in (clear, store, clear, store, store):
        jid, *_ = await claim(s)
        await s.complete(jid, answer(jid), 200, None)
    await seal_once(pool)
    assert (await verify(pool)).ok
    total = await pool.fetchval("SELECT count(*) FROM journal WHERE chain_seq IS NOT NULL")
    cut = await pool.fetchval("SELECT completed_at FROM journal WHERE chain_seq = $1", total - 2)
    out = tmp_path / "journal-1.jsonl"
    res = await archive(pool, cut, out)
    assert res.rows == total - 3
    assert res.to_seq == total - 3
    left = await verify(pool)
    assert left.ok, left.reason
    assert left.rows == 3
    lines = out.read_bytes().splitlines()
    assert json.loads(lines[0])["format"] == "onecard-journal-archive/1"
    assert json.loads(lines[-1])["checkpoint_hash"] == res.checkpoint_hash
    assert NAME.encode() not in b"".join(ln for ln in lines[1:-1] if b'"data_key_version":1' in ln)
    jid, *_ = await claim(store)  # life goes on after the archive
    await store.complete(jid, answer(jid), 200, None)
    await seal_once(pool)
    assert (await verify(pool)).ok
    today = datetime.now(UTC).date()
    assert (await verify(pool, day=today)).ok
    with pytest.raises(FileExistsError):
        await archive(pool, cut, out)
    res2 = await archive(pool, datetime.now(UTC) + timedelta(hours=1), tmp_path / "journal-2.jsonl")
    assert res2.from_seq == res.to_seq + 1
    assert res2.rows == 4
    empty = await verify(pool)
    assert empty.ok, empty.reason
    assert empty.rows == 0
    assert await pool.fetchval("SELECT archived_rows FROM journal_checkpoint") == total + 1


async def test_archive_refuses_a_broken_chain(pool: Pg, tmp_path: Path):
    """A row altered after sealing: the archive refuses, writes no file and deletes nothing."""
    store = sealed(pool)
    jid, *_ = await claim(store)
    await store.complete(jid, answer(jid), 200, None)
    await seal_once(pool)
    await pool.execute("UPDATE journal SET http_status = 500 WHERE id = $1", jid)
    before = await pool.fetchval("SELECT count(*) FROM journal")
    out = tmp_path / "broken.jsonl"
    with pytest.raises(ArchiveRefused, match=f"journal id {jid}"):
        await archive(pool, datetime.now(UTC) + timedelta(hours=1), out)
    assert sorted(os.listdir(tmp_path)) == []
    assert await pool.fetchval("SELECT count(*) FROM journal") == before
    await pool.execute("UPDATE journal SET http_status = 200 WHERE id = $1", jid)
