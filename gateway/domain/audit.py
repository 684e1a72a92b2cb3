"""One admin request as the audit trail records it (issue 11 item 6); the chain over these rows is the
adapter's (adapters/audit_codec.py). Pure: stdlib only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what from where, with which body (its SHA-256) and what it was answered."""

    at: datetime
    who: str
    role: str | None
    address: str
    method: str
    path: str
    body_sha256: bytes
    status: int


@dataclass(frozen=True, slots=True)
class AuditRow:
    """An appended entry with its place in the chain."""

    seq: int
    entry: AuditEntry
    row_hash: bytes


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """`admin audit verify`: intact, or the first row that does not match and why."""

    ok: bool
    rows: int
    first_broken_seq: int | None = None
    reason: str | None = None
    head_seq: int = 0
    head_hash: str = ""
