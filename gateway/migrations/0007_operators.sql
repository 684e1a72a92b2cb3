-- Issue 11, items 5 and 6: named operators with roles, the admin audit trail, and who changed the blacklist.

-- Operators: a name, one role, for `feed` one region; the token only as its SHA-256 (shown once, never stored).
-- A revoked operator keeps its row (the audit trail names it) with revoked_at set; rotating replaces the hash.
CREATE TABLE operators (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9._-]{0,62}$' AND name NOT LIKE 'env-%'),
    role          text NOT NULL CHECK (role IN ('operator', 'feed', 'auditor', 'monitor')),
    region        text CHECK (region ~ '^[0-9]{6}$'),
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    rotated_at    timestamptz,
    revoked_at    timestamptz,
    CHECK ((role = 'feed') = (region IS NOT NULL))
);

-- The audit trail: one row per admin request, appended before the answer, hash-chained as the journal is
-- (adapters/audit_codec.py): row_hash = SHA-256(prev_hash || canonical encoding of the row).
CREATE TABLE admin_audit (
    seq           bigint PRIMARY KEY,
    at            timestamptz NOT NULL,
    who           text NOT NULL,              -- the operator's name, env-operator, env-feed-<region>, or '-'
    role          text,                       -- NULL: not authenticated
    address       text NOT NULL,              -- the peer's address
    method        text NOT NULL,
    path          text NOT NULL,
    body_sha256   bytea NOT NULL,
    status        integer NOT NULL,
    prev_hash     bytea NOT NULL,
    row_hash      bytea NOT NULL
);
CREATE TABLE admin_audit_head (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_seq      bigint NOT NULL DEFAULT 0,
    last_hash     bytea NOT NULL
);
INSERT INTO admin_audit_head (last_hash) VALUES ('\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);

-- The identity that made each blacklist change (the authenticated operator or feed), not the claimed source.
-- NULL: a change made outside the admin API (world loads, `onecard blacklist import`, before this migration).
ALTER TABLE blacklist_changes ADD COLUMN actor text;
