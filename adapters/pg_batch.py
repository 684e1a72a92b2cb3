"""Group commit for the journal: concurrent requests' claims (and completions) ride in one statement, one
round trip and one commit, and each request still waits for its own row to be committed before it goes on.

Batching is natural, never timed: a flush starts as soon as a slot is free, with whatever is queued; while
`slots` flushes are in flight, new items queue for the next one. At low load every batch holds one item and
nothing waits; under load, batches grow and PostgreSQL's per-statement and per-commit costs are shared.

A batch that fails on a data error (a constraint, a deadlock) is retried item by item, so one bad item fails
alone; a connection failure fails the whole batch (every item would fail alone just the same).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import asyncpg

log = logging.getLogger("onecard.journal")

In = TypeVar("In")
Out = TypeVar("Out")

_CONNECTION_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError)


class Batcher(Generic[In, Out]):
    """Runs `run(items) -> results` (same order, same length) over batches of concurrently submitted items."""

    def __init__(self, run: Callable[[Sequence[In]], Awaitable[Sequence[Out]]], *, slots: int, max_batch: int) -> None:
        if slots < 1 or max_batch < 1:
            raise ValueError("slots and max_batch must be at least 1")
        self._run = run
        self._slots = slots
        self._max = max_batch
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # flushes done (tests and metrics read these)
        self.items = 0

    async def submit(self, item: In) -> Out:
        """The item's result once its batch is committed; its own error if it failed."""
        fut: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._in_flight < self._slots:
            self._in_flight += 1
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(fut)

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                await self._one_batch(batch)
        finally:
            self._in_flight -= 1

    async def _one_batch(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = await self._run([item for item, _ in batch])
        except _CONNECTION_ERRORS as exc:
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
                await self._one_batch([one])
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)


def _fail(batch: list[tuple[In, asyncio.Future[Out]]], exc: BaseException) -> None:
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(exc)
