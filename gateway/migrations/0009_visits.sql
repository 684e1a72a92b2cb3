-- Issue 12 (SPEC §6.6): visits, their fee batches and fee lines, all scoped to the institution. A batch is
-- claimed by at most one settlement at a time (fee_batches.setl_msgid, taken under the batch's row lock); the
-- claim is live while that msgid's journal row is PENDING or its settlement is UNKNOWN, POSTED or CANCELLING,
-- so a cancel (CANCELLED) or a completed reversal (REVERSED) frees the batch with no further write.

-- mdtrt_id = region(6) + yyyyMMddHHmmss(14) + this sequence (10 digits): unique across every host sharing
-- the database.
CREATE SEQUENCE mdtrt_seq;

CREATE TABLE visits (
    id              bigserial PRIMARY KEY,
    fixmedins_code  text NOT NULL,
    mdtrt_id        text NOT NULL UNIQUE CHECK (length(mdtrt_id) = 30),
    kind            text NOT NULL CHECK (kind IN ('OUTPATIENT', 'INPATIENT')),
    ipt_otp_no      text NOT NULL,
    psn_no          text NOT NULL,
    insutype        text NOT NULL,
    psn_type        text NOT NULL,
    -- outpatient: REGISTERED -> CANCELLED (settled is derived from the batches' live claims);
    -- inpatient (issue 12, later): ADMITTED -> DISCHARGED -> SETTLED, CANCELLED
    state           text NOT NULL CHECK (state IN ('REGISTERED', 'ADMITTED', 'DISCHARGED', 'SETTLED', 'CANCELLED')),
    med_type        text,
    begntime        timestamp NOT NULL,
    info            jsonb NOT NULL DEFAULT '{}'::jsonb,  -- every other field of 2201/2203, stored as sent
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (fixmedins_code, kind, ipt_otp_no)
);

CREATE TABLE fee_batches (
    visit_id        bigint NOT NULL REFERENCES visits,
    chrg_bchno      text NOT NULL,
    setl_msgid      text,            -- the settlement (2207) that last claimed the batch
    version         bigint NOT NULL DEFAULT 0,  -- raised by every 2204/2205 touching the batch
    PRIMARY KEY (visit_id, chrg_bchno)
);

CREATE TABLE fee_lines (
    visit_id          bigint NOT NULL,
    feedetl_sn        text NOT NULL,
    chrg_bchno        text NOT NULL,
    med_list_codg     text NOT NULL,
    cnt               numeric NOT NULL,
    pric              numeric NOT NULL,
    amount            bigint NOT NULL CHECK (amount >= 0),
    fulamt_ownpay_amt bigint NOT NULL,
    overlmt_amt       bigint NOT NULL,
    preselfpay_amt    bigint NOT NULL,
    inscp_scp_amt     bigint NOT NULL,
    chrgitm_lv        text NOT NULL,
    extra             jsonb NOT NULL DEFAULT '{}'::jsonb,  -- the line's other fields, stored as sent
    PRIMARY KEY (visit_id, feedetl_sn),
    FOREIGN KEY (visit_id, chrg_bchno) REFERENCES fee_batches
);
CREATE INDEX fee_lines_batch ON fee_lines (visit_id, chrg_bchno);
