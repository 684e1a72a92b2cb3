-- Issue 11 item 9: personal data at rest. A journal row's request and response are either in clear (request
-- jsonb, response bytea: every row before this version, and rows written with journal_encryption = false) or
-- sealed (request_enc, response_enc: AES-256-GCM envelopes of gateway/domain/sealed.py, data_key_version the
-- key of the request's envelope; each envelope names its own key too). A row is one or the other, whole.
ALTER TABLE journal
    ALTER COLUMN request DROP NOT NULL,
    ADD COLUMN data_key_version integer,
    ADD COLUMN request_enc bytea,
    ADD COLUMN response_enc bytea,
    ADD CONSTRAINT journal_clear_or_sealed CHECK (
        (data_key_version IS NULL AND request IS NOT NULL AND request_enc IS NULL AND response_enc IS NULL)
        OR (data_key_version IS NOT NULL AND request IS NULL AND request_enc IS NOT NULL AND response IS NULL)
    ) NOT VALID;  -- every existing row is clear; NOT VALID skips a full scan under the table lock

-- The completion stores the answer where its row keeps bodies: the caller seals it for a sealed row.
CREATE OR REPLACE FUNCTION journal_complete(p_id bigint, p_response bytea, p_status smallint, p_err text,
                                            p_effects jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE journal SET state = 'DONE',
                       response = CASE WHEN data_key_version IS NULL THEN p_response END,
                       response_enc = CASE WHEN data_key_version IS NOT NULL THEN p_response END,
                       http_status = p_status, err_code = p_err, completed_at = now()
     WHERE id = p_id AND state = 'PENDING';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM apply_effects(p_effects);
    RETURN true;
END;
$$;

-- Retention (`onecard journal archive`): the chain's rows up to `seq` were archived to `archive` and deleted;
-- `hash` is the row_hash of the last of them, i.e. the prev_hash the first remaining row must link to, so
-- `journal verify` starts there instead of at the genesis hash.
CREATE TABLE journal_checkpoint (
    chain           text PRIMARY KEY REFERENCES journal_chain,
    seq             bigint NOT NULL,
    last_id         bigint NOT NULL,
    hash            bytea NOT NULL,
    archived_rows   bigint NOT NULL,
    archive         text NOT NULL,
    archived_at     timestamptz NOT NULL DEFAULT now()
);
