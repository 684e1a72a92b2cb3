-- Tamper-evident journal (issue 4): one global hash chain over completed journal rows, appended in the
-- background by the sealer (adapters/pg_journal_chain.py), never on the settlement hot path.
-- row_hash = SHA-256(prev_hash || canonical encoding of the row's immutable fields); chain_seq 1, 2, 3 ...
-- is the row's position. A row is sealed once (unique chain_seq) and only after it is DONE.

ALTER TABLE journal
    ADD COLUMN chain_seq bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN row_hash  bytea,
    ADD CONSTRAINT journal_chain_sealed_together CHECK (
        (chain_seq IS NULL) = (row_hash IS NULL) AND (chain_seq IS NULL) = (prev_hash IS NULL)
    ) NOT VALID;  -- existing rows are all unsealed; NOT VALID skips a full scan under the table lock
CREATE UNIQUE INDEX journal_chain_seq ON journal (chain_seq) WHERE chain_seq IS NOT NULL;
-- What the sealer scans: rows not yet in the chain (PENDING ones and DONE ones waiting), in id order.
CREATE INDEX journal_unsealed ON journal (id) WHERE chain_seq IS NULL;

-- The chain head: the last sealed position and hash. Sealers lock this row (FOR UPDATE SKIP LOCKED), so
-- any number of gateway processes may run one and each row is still sealed exactly once.
CREATE TABLE journal_chain (
    chain       text PRIMARY KEY,
    last_seq    bigint NOT NULL DEFAULT 0,
    last_id     bigint,
    last_hash   bytea NOT NULL,
    sealed_at   timestamptz
);
INSERT INTO journal_chain (chain, last_hash) VALUES ('journal', '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);

-- Crash recovery scans for requests claimed but never answered.
CREATE INDEX journal_pending ON journal (received_at) WHERE state = 'PENDING';
