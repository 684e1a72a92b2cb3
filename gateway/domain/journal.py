"""Results of the journal's idempotency claim (SPEC §5.2) and of the Redis guard's combined check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request owns the idempotency key; `journal_id` completes it."""

    journal_id: int


@dataclass(frozen=True, slots=True)
class Existing:
    """The key was already used: by the same content or not, done (with its response) or still pending."""

    same_content: bool
    done: bool
    response: bytes | None
    http_status: int | None
    err_code: str | None = None


ClaimResult = Claimed | Existing


@dataclass(frozen=True, slots=True)
class GuardResult:
    """Outcome of the combined check: 'TSEQ'/'ATC' replay or 'UNLOADED' lists, else reasons ('' = clear)."""

    replay: str | None
    detail: str
    card_reason: str
    person_reason: str


@dataclass(frozen=True, slots=True)
class ReversalJob:
    """A queued 2601 the gateway owes the core, leased to one worker for one attempt."""

    id: int
    fixmedins_code: str
    omsgid: str
    oinfno: str
    psn_no: str
    attempts: int
    age_s: float


@dataclass(frozen=True, slots=True)
class StaleClaim:
    """A journal claim still PENDING past the recovery grace period: its process died mid-request."""

    journal_id: int
    fixmedins_code: str
    msgid: str
    infno: str
    request_json: str  # the canonical request body, as claimed
    received_at: datetime
