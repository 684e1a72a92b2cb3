"""Exit codes of the `onecard` commands, and the one line an operator reads when something is wrong.

| code | meaning |
|---|---|
| 0 | success |
| 1 | a finding: the journal chain is broken, reconciliation found breaks, an import rejected lines, a load
      test's check failed |
| 2 | usage or configuration: bad options or settings, a file that cannot be read, a database that refuses the
      login or does not exist, a node id another live process holds |
| 3 | a dependency unreachable: PostgreSQL, Redis or the insurance core did not answer |

A cron job can tell "the journal was tampered with" (1) from "the database was down" (3). Tracebacks are for
bugs only; every expected failure is one line on stderr naming the dependency and what to check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg

from adapters.pg_pool import UNAVAILABLE, describe, where
from gateway.domain.errors import ConfigError, DependencyUnavailable

USAGE, DEPENDENCY = 2, 3  # 0 and 1 are each command's own: success, a finding

# A file named by the operator that cannot be read: usage (2), never "the database is down".
FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
_REFUSED = (
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidAuthorizationSpecificationError,
)


class DependencyDown(Exception):
    """A server the command needs did not answer; the message says which and what to check (exit 3)."""


@contextlib.contextmanager
def needs_postgres(dsn: str) -> Iterator[None]:
    """Inside: PostgreSQL failures become one line (DependencyDown, or ConfigError for a refused login or a
    missing database)."""
    try:
        yield
    except FILE_ERRORS:
        raise
    except _REFUSED as exc:
        raise ConfigError(describe(exc, dsn)) from None
    except DependencyUnavailable as exc:
        raise DependencyDown(f"{exc} (PostgreSQL at {where(dsn)}, ONECARD_PG_DSN)") from None
    except UNAVAILABLE as exc:
        raise DependencyDown(describe(exc, dsn)) from None


def redis_down(url: str, exc: BaseException) -> str:
    """What to tell an operator when Redis at `url` failed."""
    p = urlsplit(url)
    where = f"{p.hostname or 'localhost'}:{p.port or 6379}"
    why = "did not answer in time" if isinstance(exc, TimeoutError) else f"is unavailable ({type(exc).__name__})"
    return f"Redis at {where} {why}: is it running and reachable (ONECARD_REDIS_URL)?"


@contextlib.contextmanager
def needs_core(url: str) -> Iterator[None]:
    """Inside: an unreachable insurance core becomes one line (DependencyDown)."""
    import aiohttp

    try:
        yield
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
        why = type(exc).__name__
        raise DependencyDown(f"the insurance core at {url} is unreachable ({why}): check --core-url") from None


def classify(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one line) for an expected failure; None for a bug (the caller shows its traceback)."""
    if isinstance(exc, ConfigError):
        return USAGE, str(exc)
    if isinstance(exc, DependencyDown):
        return DEPENDENCY, str(exc)
    if isinstance(exc, FILE_ERRORS):
        name = exc.filename if exc.filename is not None else "file"
        return USAGE, f"cannot read {name}: {exc.strerror or type(exc).__name__}"
    return None
