"""PostgreSQL with a deadline on everything: pool acquisition, every statement, every block of statements.

`Pg` wraps an asyncpg pool with the pool's calling surface (`fetch`, `fetchrow`, `fetchval`, `execute`,
`acquire`). A call or an `acquire()` block must finish within its budget (`timeout_s`, or `bulk_timeout_s` for
the `bulk` view used by snapshot loads, world loads, imports and chain verification). When the budget runs out
the connection is *terminated*, not cancelled: a stalled or partitioned server cannot acknowledge a cancel, and
asyncpg would wait for that acknowledgement (in a rollback, in the pool's release) for as long as the stall
lasts. Whatever was waiting on the connection fails at once, and the block raises `PgTimeout`.

`PgTimeout` is a `TimeoutError`, hence an `OSError`: code that already treats OSError as "the database is
away" handles a stall the same way. The database's clock offset is measured on demand (`measure_clock`) so a
statement can carry a deadline in the server's own time (`db_deadline`, used by journal completions).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg

from gateway.settings import Settings

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

# A connection as adapters receive it: one of their own, or one lent by a pool.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# Errors meaning "PostgreSQL cannot be used right now" (stall, restart, network, exhausted server), as opposed to
# bugs or data errors.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # PgTimeout and asyncio's TimeoutError included
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,  # statement_timeout, a cancel, or a completion past its deadline
    # raised when a connection broke in the middle of an operation (e.g. the server restarted under a
    # transaction and the rollback finds the protocol mid-flight): the connection is gone, not our state
    asyncpg.InternalClientError,
)


# What a background loop (sealer, follower, publisher) logs and retries: the database away, or refusing.
RETRYABLE: tuple[type[BaseException], ...] = (*UNAVAILABLE, asyncpg.PostgresError)


class PgTimeout(TimeoutError):
    """PostgreSQL did not answer within the budget; the connection was terminated."""


def where(dsn: str) -> str:
    """host:port/database of a DSN, for messages (never the password)."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 5432}/{parts.path.lstrip('/') or 'postgres'}"


class Pg:
    """An asyncpg pool under deadlines (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, *, timeout_s: float, bulk_timeout_s: float | None = None) -> None:
        self.raw = pool
        self.timeout_s = timeout_s
        self.bulk_timeout_s = bulk_timeout_s if bulk_timeout_s is not None else timeout_s
        self.clock_offset_s: float | None = None  # database clock minus ours
        self.clock_error_s = 0.0

    @property
    def bulk(self) -> Pg:
        """The same pool with the bulk budget as default (large reads and writes)."""
        return self.with_timeout(self.bulk_timeout_s)

    def with_timeout(self, timeout_s: float) -> Pg:
        """The same pool with another default budget."""
        view = Pg(self.raw, timeout_s=timeout_s, bulk_timeout_s=self.bulk_timeout_s)
        view.clock_offset_s, view.clock_error_s = self.clock_offset_s, self.clock_error_s
        return view

    @contextlib.asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> AsyncIterator[Conn]:
        """A connection for a block of statements that must all finish within `timeout` (default `timeout_s`),
        the wait for a free connection included."""
        budget = self.timeout_s if timeout is None else timeout
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            conn = await self.raw.acquire(timeout=budget)
        except TimeoutError:
            raise PgTimeout(f"no PostgreSQL connection within {budget:g} s") from None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            conn.terminate()  # everything waiting on it fails now; the server rolls back what was open

        timer = loop.call_at(start + budget, expire)
        try:
            yield conn
        except Exception as exc:
            if expired:
                raise PgTimeout(f"PostgreSQL did not answer within {budget:g} s") from exc
            raise
        except BaseException:  # cancelled from outside: the connection's state is unknown, do not reuse it
            conn.terminate()
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(Exception):  # a reset that fails terminates the connection itself
                await self.raw.release(conn, timeout=max(0.1, start + budget - loop.time()))

    async def ping(self) -> None:
        """One trivial statement within the default budget (readiness)."""
        await self.fetchval("SELECT 1")

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[asyncpg.Record]:
        """Rows of one statement."""
        async with self.acquire(timeout) as conn:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> asyncpg.Record | None:
        """The first row of one statement."""
        async with self.acquire(timeout) as conn:
            row: asyncpg.Record | None = await conn.fetchrow(query, *args)
            return row

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        """One value of one statement."""
        async with self.acquire(timeout) as conn:
            return await conn.fetchval(query, *args, column=column)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        """Run a statement; its status tag."""
        async with self.acquire(timeout) as conn:
            status: str = await conn.execute(query, *args)
            return status

    async def executemany(self, command: str, args: Any, *, timeout: float | None = None) -> None:
        """Run a statement for each argument tuple."""
        async with self.acquire(timeout) as conn:
            await conn.executemany(command, args)

    async def measure_clock(self) -> float:
        """Measure the database clock's offset from ours (`clock_offset_s`, error `clock_error_s`); returns it."""
        t0 = time.time()
        db: datetime = await self.fetchval("SELECT clock_timestamp()")
        t1 = time.time()
        self.clock_offset_s = db.timestamp() - (t0 + t1) / 2
        self.clock_error_s = (t1 - t0) / 2
        return self.clock_offset_s

    def db_deadline(self, local_epoch: float) -> datetime | None:
        """Our wall-clock instant `local_epoch` in the database's time, rounded early by the measurement error;
        None until the offset was measured (then a statement carries no deadline)."""
        if self.clock_offset_s is None:
            return None
        return datetime.fromtimestamp(local_epoch + self.clock_offset_s - self.clock_error_s, UTC)

    async def close(self) -> None:
        """Close every connection (bounded by the budget, then terminated)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.raw.close()
        except UNAVAILABLE:  # TimeoutError (the budget) is an OSError, hence among them
            self.raw.terminate()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # PostgreSQL 14+: a backend checks every second that its client is still there while it runs a statement,
    # so a statement whose client gave up (a terminated connection) stops holding locks and CPU.
    if conn.get_server_version().major >= 14:
        await conn.execute("SET client_connection_check_interval = 1000")


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool. Ours never LISTEN, SET (but the above) or hold
    session locks (the migration lock is released explicitly), so only an open transaction is rolled back:
    asyncpg's default reset costs a round trip on every release, three per request."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def open_pg(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    timeout_s: float,
    bulk_timeout_s: float,
    connect_timeout_s: float,
) -> Pg:
    """A pool under deadlines; its first connections are opened within `connect_timeout_s`.

    Raises:
        PgTimeout: the server did not answer in time (other connection errors as asyncpg raises them).
    """
    try:  # asyncio.timeout, never wait_for here: Python 3.11's wait_for can swallow a cancellation
        async with asyncio.timeout(connect_timeout_s):
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout_s,
                init=_init_connection,
                reset=_reset_connection,
            )
    except TimeoutError:
        raise PgTimeout(f"PostgreSQL at {where(dsn)} did not answer within {connect_timeout_s:g} s") from None
    return Pg(pool, timeout_s=timeout_s, bulk_timeout_s=bulk_timeout_s)


async def open_pg_for(settings: Settings, *, min_size: int = 1, max_size: int = 2) -> Pg:
    """`open_pg` with the settings' DSN and deadlines (operator commands: a small pool)."""
    return await open_pg(
        settings.pg_dsn,
        min_size=min_size,
        max_size=max_size,
        timeout_s=settings.pg_timeout_s,
        bulk_timeout_s=settings.pg_bulk_timeout_s,
        connect_timeout_s=settings.pg_connect_timeout_s,
    )


async def connect(dsn: str, timeout_s: float) -> asyncpg.Connection:
    """One connection within `timeout_s` (operator commands).

    Raises:
        PgTimeout: the server did not answer in time (other connection errors as asyncpg raises them).
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncpg.connect(dsn, timeout=timeout_s)
    except TimeoutError:
        raise PgTimeout(f"PostgreSQL at {where(dsn)} did not answer within {timeout_s:g} s") from None


def describe(exc: BaseException, dsn: str) -> str:
    """One line saying what failed and what to check, for operators (no DSN password)."""
    target = where(dsn)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"PostgreSQL at {target}: the database does not exist (run `onecard migrate`, or check the DSN)"
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return f"PostgreSQL at {target} refused the login: check the user and password of ONECARD_PG_DSN"
    if isinstance(exc, TimeoutError):
        return f"PostgreSQL at {target} did not answer in time: is it running and reachable (ONECARD_PG_DSN)?"
    if isinstance(exc, ConnectionRefusedError):
        return f"PostgreSQL at {target} refused the connection: is it running (ONECARD_PG_DSN)?"
    return f"PostgreSQL at {target} is unavailable ({type(exc).__name__}): is it running (ONECARD_PG_DSN)?"
