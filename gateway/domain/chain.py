"""The result of recomputing the journal's hash chain (`onecard journal verify`, `GET /admin/journal/verify`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """ok, or the first row whose link, hash or content does not match, and why.

    Completed rows still waiting for the sealer longer than `stale_s` are counted in `unsealed`: a stopped
    sealer, not a broken chain.
    """

    ok: bool
    rows: int
    first_broken_id: int | None = None
    reason: str | None = None
    unsealed: int = 0
    oldest_unsealed_id: int | None = None
    head_seq: int = 0
    head_hash: str = ""
