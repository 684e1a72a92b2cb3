"""Card-centre and county feeds (SPEC §8.3), pure: the model, parsing, the transitions, batches and file formats.

The names most callers need are re-exported here; each concept lives in its own module.
"""

from gateway.domain.feeds.decide import decide, in_scope
from gateway.domain.feeds.model import (
    ACTIVE,
    CARD_REASONS,
    CITY,
    CLOSED,
    PERSON_EVENTS,
    PERSON_REASONS,
    Accepted,
    CardRecord,
    Decision,
    Delta,
    EventType,
    FeedError,
    FeedEvent,
    FeedState,
    ListChange,
    LoggedChange,
    Rejected,
)
from gateway.domain.feeds.parse import CSV_COLUMNS, parse_event, parse_feed_tokens

__all__ = [
    "ACTIVE",
    "CARD_REASONS",
    "CITY",
    "CLOSED",
    "CSV_COLUMNS",
    "PERSON_EVENTS",
    "PERSON_REASONS",
    "Accepted",
    "CardRecord",
    "Decision",
    "Delta",
    "EventType",
    "FeedError",
    "FeedEvent",
    "FeedState",
    "ListChange",
    "LoggedChange",
    "Rejected",
    "decide",
    "in_scope",
    "parse_event",
    "parse_feed_tokens",
]
