"""Connection-level PostgreSQL failures leave an adapter as `DependencyUnavailable` (-1 OVERLOADED), never as an
asyncpg exception (STYLE §4): one class decorator for every adapter that answers the request path."""

from __future__ import annotations

import functools
import inspect
from typing import Any, TypeVar

from adapters.pg_pool import UNAVAILABLE, PgTimeout
from gateway.domain.errors import DependencyUnavailable

T = TypeVar("T")


def map_unavailable(cls: type[T]) -> type[T]:
    """Wrap every public coroutine method: connection-level failures leave the adapter as
    `DependencyUnavailable` (-1 OVERLOADED), never as an asyncpg exception (STYLE §4)."""
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(fn):
            continue

        def wrap(fn: Any, name: str = name) -> Any:
            @functools.wraps(fn)
            async def mapped(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except PgTimeout as exc:
                    raise DependencyUnavailable(f"PostgreSQL did not answer in time ({name})") from exc
                except UNAVAILABLE as exc:
                    raise DependencyUnavailable(f"PostgreSQL unavailable ({type(exc).__name__} in {name})") from exc

            return mapped

        setattr(cls, name, wrap(fn))
    return cls
