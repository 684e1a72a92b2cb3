-- Issue 10: one implementation of the journal's effects. apply_effects() is the effect loop of
-- journal_complete() (migration 0004), taken out so that a reversal closed by the reversal worker and a
-- default-PIN reservation given back apply their effects through the same SQL, not through a Python copy of it.
CREATE FUNCTION apply_effects(p_effects jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
BEGIN
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
            RAISE EXCEPTION 'apply_effects: unknown effect kind %', e->>'kind';
        END CASE;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION journal_complete(p_id bigint, p_response bytea, p_status smallint, p_err text,
                                            p_effects jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE journal SET state = 'DONE', response = p_response, http_status = p_status, err_code = p_err,
                       completed_at = now()
     WHERE id = p_id AND state = 'PENDING';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM apply_effects(p_effects);
    RETURN true;
END;
$$;
