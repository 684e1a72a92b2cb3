"""Why the Redis blacklist cannot answer or be built (a leaf module, so every part can raise them)."""

from __future__ import annotations


class RebuildInterrupted(RuntimeError):
    """A rebuild or catch-up could not finish (Redis wiped or restarted under it, another rebuild took over, the
    change log moved on): nothing half-done is live; the publisher tries again."""


class BlacklistUnloaded(Exception):
    """Redis holds no blacklist (never built, or lost): nothing can be concluded until `rebuild`."""
