"""Results of the journal's idempotency claim (SPEC §5.2), which also takes the replay state (SPEC §5.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request owns the idempotency key; `journal_id` completes it. `replay` is 'TSEQ' when its
    (psam_no, tseq) was used before, 'ATC' when its atc is not above the card's last accepted, else None."""

    journal_id: int
    replay: str | None = None


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
