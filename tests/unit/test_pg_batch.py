"""Group commit (adapters/pg_batch.py) with a fake statement: batches form under concurrency, results go back
in order, a data error fails only its own item, a connection error fails the whole batch, and deadlines: an
item leaves the queue unsent when its time is up, and a flush is given the time its items have left."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adapters.pg_batch import MIN_BUDGET_S, Batcher
from adapters.pg_pool import PgTimeout


class Statement:
    """A fake statement: records batch sizes; a negative item is a constraint violation."""

    def __init__(self, connection_error: bool = False) -> None:
        self.sizes: list[int] = []
        self.budgets: list[float] = []
        self.gate = asyncio.Event()
        self.connection_error = connection_error

    async def run(self, items: Sequence[int], budget: float) -> list[int]:
        self.sizes.append(len(items))
        self.budgets.append(budget)
        await self.gate.wait()
        if self.connection_error:
            raise ConnectionResetError("server closed the connection")
        if any(i < 0 for i in items):
            raise ValueError("constraint violated")
        return [i * 10 for i in items]


async def test_concurrent_items_share_batches_and_get_their_own_results() -> None:
    st = Statement()
    b = Batcher(st.run, slots=1, max_batch=100)
    tasks = [asyncio.create_task(b.submit(i)) for i in range(1, 21)]
    await asyncio.sleep(0)  # all 20 queued; the first flush took the first item only
    st.gate.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(1, 21)]
    assert sum(st.sizes) == 20
    assert max(st.sizes) > 1, st.sizes
    assert b.batches == len(st.sizes)


async def test_max_batch_bounds_a_statement() -> None:
    st = Statement()
    st.gate.set()
    b = Batcher(st.run, slots=1, max_batch=3)
    assert await asyncio.gather(*(b.submit(i) for i in range(10))) == [i * 10 for i in range(10)]
    assert max(st.sizes) <= 3


async def test_a_bad_item_fails_alone() -> None:
    st = Statement()
    st.gate.set()
    b = Batcher(st.run, slots=1, max_batch=100)
    results = await asyncio.gather(*(b.submit(i) for i in (1, 2, -3, 4)), return_exceptions=True)
    assert results[0] == 10
    assert results[1] == 20
    assert isinstance(results[2], ValueError)
    assert results[3] == 40


async def test_a_connection_error_fails_the_batch_without_retrying_each() -> None:
    st = Statement(connection_error=True)
    st.gate.set()
    b = Batcher(st.run, slots=1, max_batch=100)
    tasks = [asyncio.create_task(b.submit(i)) for i in range(5)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ConnectionResetError) for r in results)
    assert sum(st.sizes) == 5  # each item ran once: no one-by-one retry of a dead connection


async def test_an_item_still_queued_at_its_deadline_is_not_sent() -> None:
    """While the only slot is stuck in a stalled statement, the items queued behind it fail PgTimeout at their
    deadline, unsent; the stalled statement's own items wait for it."""
    st = Statement()
    b = Batcher(st.run, slots=1, max_batch=100, timeout_s=0.2)
    first = asyncio.create_task(b.submit(1))
    await asyncio.sleep(0)
    queued = asyncio.create_task(b.submit(2))
    await asyncio.sleep(0.3)  # both deadlines passed; the flush of item 1 is still waiting on the gate
    assert not first.done()
    st.gate.set()
    assert await first == 10
    with pytest.raises(PgTimeout, match="not sent"):
        await queued
    assert st.sizes == [1]  # item 2 never reached the statement


async def test_a_flush_gets_the_time_its_items_have_left() -> None:
    st = Statement()
    st.gate.set()
    b = Batcher(st.run, slots=1, max_batch=100, timeout_s=1.0)
    assert await b.submit(3) == 30
    assert MIN_BUDGET_S <= st.budgets[0] <= 1.0


def test_bad_sizes_are_refused() -> None:
    async def run(items: Sequence[int], budget: float) -> list[int]:
        return list(items)

    with pytest.raises(ValueError, match="at least 1"):
        Batcher(run, slots=0, max_batch=1)
