-- Issue 12 (SPEC §6.7): inpatient stays reuse visits, fee_batches and fee_lines. Each 2301 call is a batch of
-- its own ('IPT' + a number); a 2304 claims every unsettled batch of the stay at once. A refund line is
-- negative and names the line it refunds; the stay's final settlement is visits.final_msgid, live by the same
-- rule as a batch's claim (journal row PENDING, settlement UNKNOWN, POSTED or CANCELLING).
ALTER TABLE fee_lines DROP CONSTRAINT IF EXISTS fee_lines_amount_check;
ALTER TABLE fee_lines ADD COLUMN init_feedetl_sn text;
ALTER TABLE fee_lines ADD CONSTRAINT fee_lines_refund_check
    CHECK (amount >= 0 OR init_feedetl_sn IS NOT NULL);
ALTER TABLE visits ADD COLUMN final_msgid text;
