"""Rate limits in the pipeline (issue 11 item 7), over fakes on a movable clock: where the limit sits in the
SPEC §5 order (after MAC1/TAC, before the idempotency claim), what a refusal journals (nothing), and that a
retry of a msgid already answered is answered from the journal and never counted."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from adapters.local_rate_limiter import LocalRateLimiter
from loadtest.terminal import Built
from rules.limits import parse_rate_limits
from tests.pipeline.conftest import World

BURST = 2


def limit(w: World, psam: str = f"{{ rate = 1, burst = {BURST} }}", institution: str | None = None) -> None:
    text = f"[rate_limits]\npsam = {psam}\n" + (f"institution = {institution}\n" if institution else "")
    w.deps.limiter = LocalRateLimiter(parse_rate_limits(text), monotonic=lambda: w.clock.now().timestamp())


async def call(w: World, b: Built) -> tuple[int, dict[str, Any], int | None, bytes]:
    reply, _ = await w.gateway.handle(orjson.dumps(b.body))
    return reply.status, orjson.loads(reply.body), reply.retry_after, reply.body


def query(w: World) -> Built:
    return w.terminal.person_info(w.card, now=w.clock.now())


class TestRefusal:
    async def test_over_the_limit(self, world: World):
        """Past its burst a PSAM hears -1 RATE_LIMITED, HTTP 429, Retry-After, with MAC2 (MAC1 verified), and
        nothing is journaled for it; time refills the bucket."""
        limit(world)
        for _ in range(BURST):
            status, r, _, _ = await call(world, query(world))
            assert (status, r["infcode"]) == (200, 0), r
        rows = len(world.store.rows)
        status, r, retry_after, _ = await call(world, query(world))
        assert (status, r["infcode"], r["err_code"]) == (429, -1, "RATE_LIMITED")
        assert retry_after == 1
        assert "psam 330200000001 is over its rate limit" in r["err_msg"]
        assert r["dev_safe_info"]["mac2"]
        assert len(world.store.rows) == rows  # no claim, no journal row
        assert world.metrics.counts["rate_limited:psam"] == 1
        assert world.metrics.counts["request:1101:RATE_LIMITED"] == 1
        world.clock.advance(1.0)
        status, r, _, _ = await call(world, query(world))
        assert (status, r["infcode"]) == (200, 0), r

    async def test_refused_msgid_is_fresh_later(self, world: World):
        """A request refused RATE_LIMITED took nothing: the same msgid sent again later is executed."""
        limit(world)
        for _ in range(BURST):
            await call(world, query(world))
        b = query(world)
        assert (await call(world, b))[0] == 429
        world.clock.advance(1.0)
        status, r, _, _ = await call(world, b)
        assert (status, r["infcode"]) == (200, 0), r

    async def test_institution_scope(self, world: World):
        """An institution's own limit refuses all its PSAMs, named as the institution."""
        limit(world, psam="{ rate = 100, burst = 100 }", institution="{ rate = 1, burst = 1 }")
        assert (await call(world, query(world)))[0] == 200
        status, r, retry_after, _ = await call(world, query(world))
        assert (status, r["err_code"], retry_after) == (429, "RATE_LIMITED", 1)
        assert "institution H33020000001" in r["err_msg"]
        assert world.metrics.counts["rate_limited:institution"] == 1

    async def test_forged_requests_spend_no_quota(self, world: World):
        """A request whose MAC1 fails is refused before the limit: nobody can spend a PSAM's quota for it."""
        limit(world)
        for _ in range(5):
            b = query(world)
            bad = copy.deepcopy(b.body)
            bad["dev_safe_info"]["mac"] = "0" * len(bad["dev_safe_info"]["mac"])
            reply, _ = await world.gateway.handle(orjson.dumps(bad))
            assert orjson.loads(reply.body)["err_code"] == "MAC_INVALID"
        for _ in range(BURST):
            assert (await call(world, query(world)))[0] == 200


class TestRetries:
    async def test_answered_msgid_during_a_burst(self, world: World):
        """Over the limit, a retry of an answered msgid still gets its journaled answer, byte for byte."""
        limit(world)
        settle = world.settle()
        status, r, _, first = await call(world, settle)
        assert (status, r["infcode"]) == (200, 0), r
        await call(world, query(world))  # the burst is spent
        assert (await call(world, query(world)))[0] == 429
        rows = len(world.store.rows)
        status, _, retry_after, again = await call(world, settle)
        assert (status, retry_after, again) == (200, None, first)
        assert len(world.store.rows) == rows

    async def test_retries_never_count(self, world: World):
        """Retries of an answered msgid give their token back: the PSAM's burst is still all there."""
        limit(world)
        b = query(world)
        assert (await call(world, b))[0] == 200  # one token spent
        for _ in range(10):
            assert (await call(world, b))[0] == 200  # answered from the journal, given back
        assert (await call(world, query(world)))[0] == 200  # the second token
        assert (await call(world, query(world)))[0] == 429

    async def test_conflicting_content_over_the_limit(self, world: World):
        """Over the limit, a used msgid with other content is still MSGID_CONFLICT (idempotency first)."""
        limit(world)
        b = query(world)
        await call(world, b)
        await call(world, query(world))
        other = world.terminal.person_info(world.card, now=world.clock.now(), msgid=b.body["msgid"])
        status, r, _, _ = await call(world, other)
        assert (status, r["err_code"]) == (200, "MSGID_CONFLICT")

    async def test_no_limits_configured(self, world: World):
        """Without a limiter nothing is ever RATE_LIMITED."""
        assert world.deps.limiter is None
        for _ in range(20):
            assert (await call(world, query(world)))[0] == 200
