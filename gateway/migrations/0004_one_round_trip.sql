-- Issue 5: the end of a request in one round trip. journal_complete() does what PgStore.complete used to do
-- statement by statement inside BEGIN ... COMMIT: complete the PENDING journal row first (its row lock orders
-- a late owner against crash recovery), then apply the request's effects, all in the calling statement's
-- transaction. Effects arrive as a JSON array of {"kind": ..., fields...} (gateway/domain/effects.py).
CREATE FUNCTION journal_complete(p_id bigint, p_response bytea, p_status smallint, p_err text, p_effects jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
BEGIN
    UPDATE journal SET state = 'DONE', response = p_response, http_status = p_status, err_code = p_err,
                       completed_at = now()
     WHERE id = p_id AND state = 'PENDING';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    FOR e IN SELECT * FROM jsonb_array_elements(coalesce(p_effects, '[]'::jsonb)) LOOP
        CASE e->>'kind'
        WHEN 'settlement' THEN
            INSERT INTO settlements (fixmedins_code, msgid, setl_id, infno, psn_no, card_sn, state, pin, default_pin,
                                     medfee_sumamt, inscp_scp_amt, fund_pay_sumamt, acct_pay, psn_cash_pay,
                                     setl_time, cancel_msgid, cancel_setl_id)
            VALUES (e->>'fixmedins_code', e->>'msgid', e->>'setl_id', e->>'infno', e->>'psn_no', e->>'card_sn',
                    e->>'state', e->>'pin', (e->>'default_pin')::boolean, (e->>'medfee_sumamt')::bigint,
                    (e->>'inscp_scp_amt')::bigint, (e->>'fund_pay_sumamt')::bigint, (e->>'acct_pay')::bigint,
                    (e->>'psn_cash_pay')::bigint, (e->>'setl_time')::timestamptz, e->>'cancel_msgid',
                    e->>'cancel_setl_id');
        WHEN 'state' THEN
            UPDATE settlements SET state = e->>'state', cancel_msgid = coalesce(e->>'cancel_msgid', cancel_msgid),
                   cancel_setl_id = coalesce(e->>'cancel_setl_id', cancel_setl_id),
                   cancelled_at = coalesce((e->>'cancelled_at')::timestamptz, cancelled_at)
             WHERE fixmedins_code = e->>'fixmedins_code' AND msgid = e->>'msgid';
        WHEN 'reversal' THEN
            INSERT INTO reversal_queue (fixmedins_code, omsgid, oinfno, psn_no)
            VALUES (e->>'fixmedins_code', e->>'omsgid', e->>'oinfno', e->>'psn_no')
            ON CONFLICT (fixmedins_code, omsgid) DO NOTHING;
        WHEN 'release_pin' THEN
            UPDATE default_pin_usage SET count = greatest(count - 1, 0),
                   acct_sum = greatest(acct_sum - (e->>'acct')::bigint, 0)
             WHERE card_sn = e->>'card_sn' AND day = (e->>'day')::date;
        ELSE
            RAISE EXCEPTION 'journal_complete: unknown effect kind %', e->>'kind';
        END CASE;
    END LOOP;
    RETURN true;
END;
$$;

-- Group commit (adapters/pg_batch.py): many requests' completions in one statement and one commit, each
-- exactly as journal_complete() alone would do it. Returns one flag per row, in order.
CREATE FUNCTION journal_complete_batch(p_ids bigint[], p_responses bytea[], p_status smallint[], p_errs text[],
                                       p_effects text[])
RETURNS boolean[]
LANGUAGE plpgsql AS $$
DECLARE
    done boolean[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        done := done || journal_complete(p_ids[i], p_responses[i], p_status[i], p_errs[i], p_effects[i]::jsonb);
    END LOOP;
    RETURN done;
END;
$$;
