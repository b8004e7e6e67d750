-- bankdirect schema 3 (SQLite): payments, their history, idempotency keys.
--
-- Conventions of 0001 apply (STRICT tables, instants as 27-character UTC text, money as
-- INTEGER minor units, named CHECK constraints); business dates are TEXT 'YYYY-MM-DD' as in
-- 0002. Text limits mirror crates/store/src/payments.rs. The status vocabulary is the state
-- machine of DESIGN.md ("Payment state machine"); which transitions are legal is the
-- domain's business, the schema only refuses words outside it.

CREATE TABLE payments (
    id                       TEXT NOT NULL PRIMARY KEY
                             CONSTRAINT payment_id_format CHECK (
                                 length(id) = 30 AND substr(id, 1, 4) = 'pay_'
                                 AND NOT substr(id, 5) GLOB '*[^0-9A-HJKMNP-TV-Z]*'),
    client_id                TEXT NOT NULL
                             CONSTRAINT payment_client_id_length CHECK (length(client_id) BETWEEN 1 AND 128),
    debtor_account_id        TEXT NOT NULL
                             CONSTRAINT payment_debtor_account_id_length
                             CHECK (length(debtor_account_id) BETWEEN 1 AND 128),
    amount_minor             INTEGER NOT NULL
                             CONSTRAINT payment_amount_positive CHECK (amount_minor > 0),
    currency                 TEXT NOT NULL
                             CONSTRAINT payment_currency_format CHECK (length(currency) = 3),
    creditor_name            TEXT NOT NULL
                             CONSTRAINT payment_creditor_name_length CHECK (length(creditor_name) BETWEEN 1 AND 256),
    creditor_account         TEXT NOT NULL
                             CONSTRAINT payment_creditor_account_length
                             CHECK (length(creditor_account) BETWEEN 1 AND 64),
    creditor_bank_code       TEXT
                             CONSTRAINT payment_creditor_bank_code_format
                             CHECK (creditor_bank_code IS NULL OR length(creditor_bank_code) = 12),
    creditor_bic             TEXT
                             CONSTRAINT payment_creditor_bic_format
                             CHECK (creditor_bic IS NULL OR length(creditor_bic) IN (8, 11)),
    creditor_bank_name       TEXT
                             CONSTRAINT payment_creditor_bank_name_length
                             CHECK (creditor_bank_name IS NULL OR length(creditor_bank_name) BETWEEN 1 AND 256),
    creditor_type            TEXT NOT NULL
                             CONSTRAINT payment_creditor_type CHECK (creditor_type IN ('corporate', 'personal')),
    remittance               TEXT NOT NULL
                             CONSTRAINT payment_remittance_length CHECK (length(remittance) BETWEEN 1 AND 1024),
    purpose                  TEXT
                             CONSTRAINT payment_purpose_length CHECK (purpose IS NULL OR length(purpose) BETWEEN 1 AND 256),
    end_to_end_id            TEXT
                             CONSTRAINT payment_end_to_end_id_length
                             CHECK (end_to_end_id IS NULL OR length(end_to_end_id) BETWEEN 1 AND 35),
    requested_execution_date TEXT NOT NULL
                             CONSTRAINT payment_execution_date_format
                             CHECK (date(requested_execution_date) IS requested_execution_date),
    urgency                  TEXT NOT NULL
                             CONSTRAINT payment_urgency CHECK (urgency IN ('normal', 'urgent')),
    business_reference       TEXT NOT NULL
                             CONSTRAINT payment_business_reference_length
                             CHECK (length(business_reference) BETWEEN 1 AND 35),
    status                   TEXT NOT NULL
                             CONSTRAINT payment_status CHECK (status IN (
                                 'received', 'pending_approval', 'approved', 'declined', 'queued',
                                 'submitting', 'accepted', 'settled', 'returned', 'failed',
                                 'unknown', 'needs_review', 'cancelled')),
    ever_sent                INTEGER NOT NULL CONSTRAINT payment_ever_sent_bool CHECK (ever_sent IN (0, 1)),
    first_sent_at            TEXT
                             CONSTRAINT payment_first_sent_at_format
                             CHECK (first_sent_at IS NULL OR (length(first_sent_at) = 27 AND substr(first_sent_at, 27, 1) = 'Z')),
    last_sent_at             TEXT
                             CONSTRAINT payment_last_sent_at_format
                             CHECK (last_sent_at IS NULL OR (length(last_sent_at) = 27 AND substr(last_sent_at, 27, 1) = 'Z')),
    send_attempts            INTEGER NOT NULL CONSTRAINT payment_send_attempts_range CHECK (send_attempts >= 0),
    bank_payment_id          TEXT
                             CONSTRAINT payment_bank_payment_id_length
                             CHECK (bank_payment_id IS NULL OR length(bank_payment_id) BETWEEN 1 AND 128),
    last_bank_code           TEXT
                             CONSTRAINT payment_last_bank_code_length
                             CHECK (last_bank_code IS NULL OR length(last_bank_code) BETWEEN 1 AND 64),
    last_bank_message        TEXT
                             CONSTRAINT payment_last_bank_message_length
                             CHECK (last_bank_message IS NULL OR length(last_bank_message) BETWEEN 1 AND 1024),
    -- When a worker should look at the payment next; NULL: nothing is due (final, or
    -- waiting for a person).
    next_attempt_at          TEXT
                             CONSTRAINT payment_next_attempt_at_format
                             CHECK (next_attempt_at IS NULL OR (length(next_attempt_at) = 27 AND substr(next_attempt_at, 27, 1) = 'Z')),
    lease_owner              TEXT
                             CONSTRAINT payment_lease_owner_length
                             CHECK (lease_owner IS NULL OR length(lease_owner) BETWEEN 1 AND 128),
    lease_expires_at         TEXT
                             CONSTRAINT payment_lease_expires_at_format
                             CHECK (lease_expires_at IS NULL OR (length(lease_expires_at) = 27 AND substr(lease_expires_at, 27, 1) = 'Z')),
    -- Grows by one on every claim; a write-back names the token it holds.
    fencing_token            INTEGER NOT NULL CONSTRAINT payment_fencing_token_range CHECK (fencing_token >= 0),
    created_at               TEXT NOT NULL
                             CONSTRAINT payment_created_at_format CHECK (length(created_at) = 27 AND substr(created_at, 27, 1) = 'Z'),
    updated_at               TEXT NOT NULL
                             CONSTRAINT payment_updated_at_format CHECK (length(updated_at) = 27 AND substr(updated_at, 27, 1) = 'Z'),
    version                  INTEGER NOT NULL CONSTRAINT payment_version_positive CHECK (version >= 1),
    CONSTRAINT payment_creditor_bank CHECK (creditor_bank_code IS NOT NULL OR creditor_bic IS NOT NULL),
    CONSTRAINT payment_lease_whole CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL)),
    CONSTRAINT payment_business_reference_unique UNIQUE (business_reference)
) STRICT;

-- A client's end-to-end id is unique per debtor account for ever (DESIGN.md, "References").
CREATE UNIQUE INDEX payment_end_to_end_id_unique ON payments (debtor_account_id, end_to_end_id)
    WHERE end_to_end_id IS NOT NULL;
-- The work queue: due payments of a status, oldest first.
CREATE INDEX payments_due ON payments (status, next_attempt_at) WHERE next_attempt_at IS NOT NULL;
-- The reaper's scan of expired leases.
CREATE INDEX payments_lease ON payments (status, lease_expires_at) WHERE lease_expires_at IS NOT NULL;
-- Listing pages by (created_at, id).
CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX payments_account_created ON payments (debtor_account_id, created_at, id);

CREATE TABLE payment_history (
    payment_id   TEXT NOT NULL REFERENCES payments (id),
    seq          INTEGER NOT NULL CONSTRAINT history_seq_positive CHECK (seq >= 1),
    at           TEXT NOT NULL
                 CONSTRAINT history_at_format CHECK (length(at) = 27 AND substr(at, 27, 1) = 'Z'),
    -- NULL only for the row that created the payment.
    from_status  TEXT
                 CONSTRAINT history_from_status CHECK (from_status IS NULL OR from_status IN (
                     'received', 'pending_approval', 'approved', 'declined', 'queued',
                     'submitting', 'accepted', 'settled', 'returned', 'failed',
                     'unknown', 'needs_review', 'cancelled')),
    to_status    TEXT NOT NULL
                 CONSTRAINT history_to_status CHECK (to_status IN (
                     'received', 'pending_approval', 'approved', 'declined', 'queued',
                     'submitting', 'accepted', 'settled', 'returned', 'failed',
                     'unknown', 'needs_review', 'cancelled')),
    cause        TEXT NOT NULL CONSTRAINT history_cause_length CHECK (length(cause) BETWEEN 1 AND 256),
    bank_code    TEXT
                 CONSTRAINT history_bank_code_length CHECK (bank_code IS NULL OR length(bank_code) BETWEEN 1 AND 64),
    bank_message TEXT
                 CONSTRAINT history_bank_message_length
                 CHECK (bank_message IS NULL OR length(bank_message) BETWEEN 1 AND 1024),
    actor        TEXT NOT NULL CONSTRAINT history_actor_length CHECK (length(actor) BETWEEN 1 AND 256),
    request_id   TEXT
                 CONSTRAINT history_request_id_length CHECK (request_id IS NULL OR length(request_id) BETWEEN 1 AND 256),
    PRIMARY KEY (payment_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    client_id       TEXT NOT NULL
                    CONSTRAINT idempotency_client_id_length CHECK (length(client_id) BETWEEN 1 AND 128),
    key             TEXT NOT NULL CONSTRAINT idempotency_key_length CHECK (length(key) BETWEEN 1 AND 256),
    request_hash    TEXT NOT NULL
                    CONSTRAINT idempotency_request_hash_length CHECK (length(request_hash) BETWEEN 1 AND 128),
    state           TEXT NOT NULL CONSTRAINT idempotency_state CHECK (state IN ('in_progress', 'completed')),
    response_status INTEGER
                    CONSTRAINT idempotency_response_status_range
                    CHECK (response_status IS NULL OR response_status BETWEEN 100 AND 599),
    response_body   TEXT
                    CONSTRAINT idempotency_response_body_size
                    CHECK (response_body IS NULL OR length(CAST(response_body AS BLOB)) <= 262144),
    payment_id      TEXT REFERENCES payments (id),
    created_at      TEXT NOT NULL
                    CONSTRAINT idempotency_created_at_format CHECK (length(created_at) = 27 AND substr(created_at, 27, 1) = 'Z'),
    expires_at      TEXT NOT NULL
                    CONSTRAINT idempotency_expires_at_format CHECK (length(expires_at) = 27 AND substr(expires_at, 27, 1) = 'Z'),
    -- A completed key carries the response it replays.
    CONSTRAINT idempotency_completed_has_response
    CHECK (state = 'in_progress' OR (response_status IS NOT NULL AND response_body IS NOT NULL)),
    CONSTRAINT idempotency_retention CHECK (expires_at > created_at),
    PRIMARY KEY (client_id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
