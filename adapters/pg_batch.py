"""Group commit for the journal: concurrent requests' claims (and completions) ride in one statement, one
round trip and one commit, and each request still waits for its own row to be committed before it goes on.

Batching is natural, never timed: a flush starts as soon as a slot is free, with whatever is queued; while
`slots` flushes are in flight, new items queue for the next one. At low load every batch holds one item and
nothing waits; under load, batches grow and PostgreSQL's per-statement and per-commit costs are shared.

A batch that fails on a data error (a constraint, a deadlock) is retried item by item, so one bad item fails
alone; a connection failure or a stall fails the whole batch (every item would fail alone just the same).

Deadlines: an item waits at most `timeout_s` from its submission. It leaves the queue unsent when the deadline
passes first, and a flush's statements get the time its most pressed item has left (at least MIN_BUDGET_S).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from adapters.pg_pool import UNAVAILABLE, PgTimeout

log = logging.getLogger("onecard.journal")

In = TypeVar("In")
Out = TypeVar("Out")

MIN_BUDGET_S = 0.2  # a flush gets at least this long, however little its items had left


class Batcher(Generic[In, Out]):
    """Runs `run(items, budget_s) -> results` (same order, same length) over batches of concurrently submitted
    items. Each item has a deadline: it leaves the queue unsent once the deadline passes (PgTimeout), and a
    flush is given the time its most pressed item has left, so a submitter waits about its own budget."""

    def __init__(
        self,
        run: Callable[[Sequence[In], float], Awaitable[Sequence[Out]]],
        *,
        slots: int,
        max_batch: int,
        timeout_s: float = 2.0,
    ) -> None:
        if slots < 1 or max_batch < 1:
            raise ValueError("slots and max_batch must be at least 1")
        self._run = run
        self._slots = slots
        self._max = max_batch
        self.timeout_s = timeout_s
        self._queue: list[tuple[In, asyncio.Future[Out], float]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # flushes done (tests and metrics read these)
        self.items = 0

    async def submit(self, item: In) -> Out:
        """The item's result once its batch is committed; its own error if it failed.

        Raises:
            PgTimeout: the deadline passed, before the item was sent (nothing applied) or in flight (unknown).
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Out] = loop.create_future()
        self._queue.append((item, fut, loop.time() + self.timeout_s))
        if self._in_flight < self._slots:
            self._in_flight += 1
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(fut)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                now = loop.time()
                live = []
                for entry in self._queue:
                    if entry[2] > now:
                        live.append(entry)
                    elif not entry[1].done():
                        entry[1].set_exception(PgTimeout("no journal statement slot before the deadline (not sent)"))
                batch, self._queue = live[: self._max], live[self._max :]
                if batch:
                    deadline = max(now + MIN_BUDGET_S, min(deadline for _, _, deadline in batch))
                    await self._one_batch([(item, fut) for item, fut, _ in batch], deadline)
        finally:
            self._in_flight -= 1

    async def _one_batch(self, batch: list[tuple[In, asyncio.Future[Out]]], deadline: float) -> None:
        self.batches += 1
        self.items += len(batch)
        budget = max(MIN_BUDGET_S, deadline - asyncio.get_running_loop().time())
        try:
            results = await self._run([item for item, _ in batch], budget)
        except UNAVAILABLE as exc:  # the database, not an item: every item would fail alone just the same
            _fail(batch, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a data error: find the guilty item(s) by running each alone
            if len(batch) == 1:
                _fail(batch, exc)
                return
            log.warning(
                "journal batch of %d failed (%s); retrying its items one by one", len(batch), type(exc).__name__
            )
            for one in batch:
                await self._one_batch([one], deadline)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)


def _fail(batch: list[tuple[In, asyncio.Future[Out]]], exc: BaseException) -> None:
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(exc)
