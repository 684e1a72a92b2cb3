-- onecard-gateway schema v1: registry, sign-in sessions, journal (idempotency), settlements,
-- default-PIN usage, blacklist lists of record, reversal queue. Money columns are bigint fen.

CREATE TABLE institutions (
    fixmedins_code  text PRIMARY KEY CHECK (length(fixmedins_code) = 12),
    fixmedins_name  text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('hospital', 'pharmacy')),
    level           smallint NOT NULL CHECK (level BETWEEN 0 AND 3),
    region          text NOT NULL CHECK (region ~ '^[0-9]{6}$')
);

CREATE TABLE psams (
    psam_no         text PRIMARY KEY CHECK (psam_no ~ '^[0-9]{12}$'),
    fixmedins_code  text NOT NULL REFERENCES institutions,
    status          text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'REVOKED'))
);

CREATE TABLE cards (
    card_sn         text PRIMARY KEY CHECK (card_sn ~ '^[0-9]{6}D156000005[0-9A-F]{16}$'),
    card_no         text NOT NULL,
    psn_no          text NOT NULL,
    pin_mode        text NOT NULL CHECK (pin_mode IN ('PIN', 'DEFAULT')),
    status          text NOT NULL,
    alg             text NOT NULL CHECK (alg IN ('3DES', 'SM4')),
    kv              smallint NOT NULL,
    valid_from      date,
    valid_until     date
);
CREATE INDEX cards_psn_no ON cards (psn_no);

CREATE TABLE blacklist_cards (
    card_sn         text PRIMARY KEY,
    reason          text NOT NULL CHECK (reason IN ('01', '02', '03', '04', '05', '06', '07')),
    source          text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blacklist_persons (
    psn_no          text PRIMARY KEY,
    reason          text NOT NULL CHECK (reason IN ('11', '12')),
    source          text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sign_sessions (
    sign_no         text PRIMARY KEY,
    fixmedins_code  text NOT NULL,
    psam_no         text NOT NULL,
    opter_no        text NOT NULL,
    signed_in_at    timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    signed_out_at   timestamptz
);

-- Every authenticated request and its response. (fixmedins_code, msgid) is the idempotency key
-- (SPEC §5.2): a row is claimed as PENDING before any effect and completed with the exact bytes sent.
CREATE TABLE journal (
    id              bigserial PRIMARY KEY,
    fixmedins_code  text NOT NULL,
    msgid           text NOT NULL,
    infno           text NOT NULL,
    psam_no         text NOT NULL,
    card_sn         text,
    content_hash    bytea NOT NULL,
    request         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'DONE')),
    err_code        text,
    http_status     smallint,
    response        bytea,
    received_at     timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    UNIQUE (fixmedins_code, msgid)
);

-- Settlements (2207/2102) and their life cycle. UNKNOWN: the core may have posted; a reversal is queued.
CREATE TABLE settlements (
    fixmedins_code  text NOT NULL,
    msgid           text NOT NULL,
    setl_id         text UNIQUE,
    infno           text NOT NULL,
    psn_no          text NOT NULL,
    card_sn         text NOT NULL,
    state           text NOT NULL CHECK (state IN ('POSTED', 'CANCELLING', 'CANCELLED', 'REVERSED', 'UNKNOWN')),
    pin             text NOT NULL,
    default_pin     boolean NOT NULL DEFAULT false,
    medfee_sumamt   bigint NOT NULL,
    inscp_scp_amt   bigint NOT NULL,
    fund_pay_sumamt bigint NOT NULL,
    acct_pay        bigint NOT NULL,
    psn_cash_pay    bigint NOT NULL,
    setl_time       timestamptz NOT NULL,
    cancel_msgid    text,
    cancel_setl_id  text,
    cancelled_at    timestamptz,
    PRIMARY KEY (fixmedins_code, msgid)
);
CREATE INDEX settlements_day ON settlements (fixmedins_code, setl_time);

CREATE TABLE default_pin_usage (
    card_sn         text NOT NULL,
    day             date NOT NULL,
    count           integer NOT NULL DEFAULT 0,
    acct_sum        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (card_sn, day)
);

-- Reversals the gateway owes the core (SPEC §5: -1 CORE_TIMEOUT means one is queued).
CREATE TABLE reversal_queue (
    id              bigserial PRIMARY KEY,
    fixmedins_code  text NOT NULL,
    omsgid          text NOT NULL,
    oinfno          text NOT NULL,
    psn_no          text NOT NULL,
    state           text NOT NULL DEFAULT 'QUEUED' CHECK (state IN ('QUEUED', 'DONE', 'DEAD')),
    attempts        integer NOT NULL DEFAULT 0,
    next_at         timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (fixmedins_code, omsgid)
);
