-- City-scale blacklist (SPEC §8): one global version, an append-only change log, feed idempotency.

-- The global version. Writers take it with UPDATE ... RETURNING inside their transaction: the row lock
-- serialises them, so versions are gap-free and become visible in commit order (a follower that has
-- applied version V and sees V+2 knows it missed V+1).
CREATE TABLE blacklist_meta (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    version         bigint NOT NULL DEFAULT 0
);
INSERT INTO blacklist_meta DEFAULT VALUES;

-- Append-only: one row per change of either list. Retained for a configurable window (delta API).
CREATE TABLE blacklist_changes (
    version         bigint PRIMARY KEY,
    list            text NOT NULL CHECK (list IN ('C', 'P')),      -- C: card_sn, P: psn_no
    key             text NOT NULL,
    op              text NOT NULL CHECK (op IN ('A', 'R', 'D')),   -- A: listed, R: reason of a listed key changed, D: delisted
    reason          text,
    source          text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX blacklist_changes_at ON blacklist_changes (at);

-- From here on the lists are the one truth on refusals: cards.status keeps what the registry was loaded with
-- and is not updated by list changes (a bulk import then writes one row per change, not two).
ALTER TABLE blacklist_cards ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE blacklist_persons ADD COLUMN version bigint NOT NULL DEFAULT 0;

-- Versions of what existed before this migration (world loads, admin calls): give them log entries.
DO $$
DECLARE n bigint;
BEGIN
    WITH rows AS (
        SELECT 'C' AS list, card_sn AS key, reason, source FROM blacklist_cards
        UNION ALL SELECT 'P', psn_no, reason, source FROM blacklist_persons
    ), numbered AS (
        SELECT row_number() OVER (ORDER BY list, key) AS version, list, key, reason, source FROM rows
    )
    INSERT INTO blacklist_changes (version, list, key, op, reason, source)
    SELECT version, list, key, 'A', reason, source FROM numbered;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE blacklist_meta SET version = n;
    UPDATE blacklist_cards c SET version = ch.version FROM blacklist_changes ch WHERE ch.list = 'C' AND ch.key = c.card_sn;
    UPDATE blacklist_persons p SET version = ch.version FROM blacklist_changes ch WHERE ch.list = 'P' AND ch.key = p.psn_no;
END $$;

-- Accepted feed events (SPEC §8.3): (source, source_seq) makes a resent event or batch change nothing.
-- A rejected event is not recorded: the source may correct it and send it again under the same number.
CREATE TABLE feed_events (
    source          text NOT NULL,
    source_seq      bigint NOT NULL,
    event           text NOT NULL,
    subject         text NOT NULL,
    content_hash    bytea NOT NULL,
    version         bigint,                 -- the last blacklist version it produced (NULL: no list change)
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, source_seq)
);
