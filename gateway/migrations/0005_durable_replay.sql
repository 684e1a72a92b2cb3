-- Issue 9: replay state of record in PostgreSQL, node ids for minted ids, completions with a deadline.

-- SPEC §5.1: a (psam_no, tseq) pair is accepted for one msgid only, ever. A row is taken by the journal claim
-- statement (adapters/pg_journal.py) in the same transaction as the claim, only for a fresh request; the
-- primary key makes concurrent uses of one pair resolve to one acceptance.
CREATE TABLE psam_tseq (
    psam_no         text NOT NULL,
    tseq            bigint NOT NULL,
    journal_id      bigint NOT NULL,  -- the request that used it
    PRIMARY KEY (psam_no, tseq)
);

-- SPEC §5.1: a card's atc must be strictly greater than the highest accepted. Raised by the claim statement
-- with ON CONFLICT ... DO UPDATE ... WHERE atc < new: the row lock orders concurrent requests for one card.
CREATE TABLE card_atc (
    card_sn         text PRIMARY KEY,
    atc             integer NOT NULL
);

-- Upgrade from a version that kept this state in Redis only: seed it from the journal, which holds every
-- authenticated request. Every pair journaled counts as used (a pair is single-use, so over-counting refuses
-- nothing legitimate); a card's atc is the highest of its requests not refused as stale or replayed (the two
-- refusals that never raised it). Processes of the old version must be stopped before this version serves:
-- what they accept after this snapshot is recorded in Redis only.
INSERT INTO psam_tseq (psam_no, tseq, journal_id)
SELECT DISTINCT ON (psam_no, tseq) psam_no, tseq, id
  FROM (SELECT psam_no, (request->'dev_safe_info'->>'tseq')::bigint AS tseq, id FROM journal
         WHERE request->'dev_safe_info' ? 'tseq') j
 ORDER BY psam_no, tseq, id;
INSERT INTO card_atc (card_sn, atc)
SELECT card_sn, max((request->'dev_safe_info'->>'atc')::integer)
  FROM journal
 WHERE card_sn IS NOT NULL AND request->'dev_safe_info' ? 'atc'
   AND err_code IS DISTINCT FROM 'REPLAY' AND err_code IS DISTINCT FROM 'STALE_REQUEST'
 GROUP BY card_sn;

-- Ids the gateway mints carry a 4-digit node id; each live process holds one (adapters/pg_nodes.py).
CREATE TABLE gateway_nodes (
    node_id         integer PRIMARY KEY CHECK (node_id BETWEEN 0 AND 9999),
    holder          text NOT NULL,      -- a token unique to the holding process
    host            text NOT NULL,
    pid             integer NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    renewed_at      timestamptz NOT NULL DEFAULT now()
);

-- A journal completion sent with a deadline (the database's clock) refuses to commit when it runs past it:
-- a statement that sat in a stalled server until its caller gave up and told the terminal -1 must not then
-- settle behind the terminal's back. The caller's -1 stays true, the claim stays PENDING and is recovered.
CREATE FUNCTION journal_deadline(p_deadline timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_deadline IS NOT NULL AND clock_timestamp() > p_deadline THEN
        RAISE EXCEPTION 'journal completion ran past its caller''s deadline' USING ERRCODE = 'query_canceled';
    END IF;
END;
$$;

CREATE FUNCTION journal_complete(p_id bigint, p_response bytea, p_status smallint, p_err text, p_effects jsonb,
                                 p_deadline timestamptz)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    done boolean;
BEGIN
    done := journal_complete(p_id, p_response, p_status, p_err, p_effects);
    PERFORM journal_deadline(p_deadline);
    RETURN done;
END;
$$;

CREATE FUNCTION journal_complete_batch(p_ids bigint[], p_responses bytea[], p_status smallint[], p_errs text[],
                                       p_effects text[], p_deadline timestamptz)
RETURNS boolean[]
LANGUAGE plpgsql AS $$
DECLARE
    done boolean[];
BEGIN
    done := journal_complete_batch(p_ids, p_responses, p_status, p_errs, p_effects);
    PERFORM journal_deadline(p_deadline);
    RETURN done;
END;
$$;
