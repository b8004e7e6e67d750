-- bankdirect schema 6 (PostgreSQL): payment batches (DESIGN.md, "Batches").
--
-- A batch has one debtor account, currency and execution date; it is split into chunks,
-- each sent to the bank as one submission under its own business reference and walking
-- the payment state machine (with its own lease and fencing token, like a payment); items
-- carry what the bank reports for each of them. The batch's `status` is derived from its
-- chunks and items after every change (domain::batch::aggregate) and `event_seq` counts
-- its events (the per-object sequence of `payment_batch.*` events).
-- Conventions of 0001-0003 apply.

CREATE TABLE payment_batches (
    id                       TEXT COLLATE "C" NOT NULL PRIMARY KEY
                             CONSTRAINT batch_id_format CHECK (char_length(id) = 30 AND substr(id, 1, 4) = 'bat_'),
    client_id                TEXT NOT NULL CONSTRAINT batch_client_id_length CHECK (char_length(client_id) BETWEEN 1 AND 128),
    debtor_account_id        TEXT NOT NULL
                             CONSTRAINT batch_debtor_account_id_length CHECK (char_length(debtor_account_id) BETWEEN 1 AND 128),
    currency                 TEXT NOT NULL CONSTRAINT batch_currency_format CHECK (char_length(currency) = 3),
    kind                     TEXT NOT NULL CONSTRAINT batch_kind CHECK (kind IN ('supplier', 'payroll')),
    requested_execution_date DATE NOT NULL,
    item_count               BIGINT NOT NULL CONSTRAINT batch_item_count_positive CHECK (item_count >= 1),
    control_sum_minor        BIGINT NOT NULL CONSTRAINT batch_control_sum_positive CHECK (control_sum_minor > 0),
    chunk_count              BIGINT NOT NULL CONSTRAINT batch_chunk_count_positive CHECK (chunk_count >= 1),
    business_reference       TEXT NOT NULL
                             CONSTRAINT batch_business_reference_length CHECK (char_length(business_reference) BETWEEN 1 AND 35),
    status                   TEXT NOT NULL CONSTRAINT batch_status CHECK (status IN (
                                 'received', 'pending_approval', 'queued', 'submitting', 'accepted',
                                 'unknown', 'needs_review', 'completed', 'failed', 'cancelled')),
    event_seq                BIGINT NOT NULL CONSTRAINT batch_event_seq_range CHECK (event_seq >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT batch_business_reference_unique UNIQUE (business_reference)
);

CREATE INDEX payment_batches_created ON payment_batches (created_at, id);
CREATE INDEX payment_batches_account_created ON payment_batches (debtor_account_id, created_at, id);

CREATE TABLE payment_batch_chunks (
    batch_id           TEXT NOT NULL REFERENCES payment_batches (id),
    chunk_no           BIGINT NOT NULL CONSTRAINT chunk_no_range CHECK (chunk_no >= 1),
    business_reference TEXT NOT NULL
                       CONSTRAINT chunk_business_reference_length CHECK (char_length(business_reference) BETWEEN 1 AND 35),
    item_count         BIGINT NOT NULL CONSTRAINT chunk_item_count_positive CHECK (item_count >= 1),
    status             TEXT NOT NULL CONSTRAINT chunk_status CHECK (status IN (
                           'received', 'pending_approval', 'approved', 'declined', 'queued',
                           'submitting', 'accepted', 'settled', 'returned', 'failed',
                           'unknown', 'needs_review', 'cancelled')),
    ever_sent          BOOLEAN NOT NULL,
    first_sent_at TIMESTAMPTZ,
    last_sent_at TIMESTAMPTZ,
    send_attempts      BIGINT NOT NULL CONSTRAINT chunk_send_attempts_range CHECK (send_attempts >= 0),
    bank_batch_id      TEXT CONSTRAINT chunk_bank_batch_id_length CHECK (bank_batch_id IS NULL OR char_length(bank_batch_id) BETWEEN 1 AND 128),
    last_bank_code     TEXT CONSTRAINT chunk_last_bank_code_length CHECK (last_bank_code IS NULL OR char_length(last_bank_code) BETWEEN 1 AND 64),
    last_bank_message  TEXT CONSTRAINT chunk_last_bank_message_length CHECK (last_bank_message IS NULL OR char_length(last_bank_message) BETWEEN 1 AND 1024),
    next_attempt_at TIMESTAMPTZ,
    lease_owner        TEXT CONSTRAINT chunk_lease_owner_length CHECK (lease_owner IS NULL OR char_length(lease_owner) BETWEEN 1 AND 128),
    lease_expires_at TIMESTAMPTZ,
    fencing_token      BIGINT NOT NULL CONSTRAINT chunk_fencing_token_range CHECK (fencing_token >= 0),
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT chunk_lease_whole CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL)),
    CONSTRAINT chunk_business_reference_unique UNIQUE (business_reference),
    PRIMARY KEY (batch_id, chunk_no)
);

CREATE INDEX payment_batch_chunks_due ON payment_batch_chunks (status, next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX payment_batch_chunks_lease ON payment_batch_chunks (status, lease_expires_at) WHERE lease_expires_at IS NOT NULL;

CREATE TABLE payment_batch_items (
    batch_id           TEXT NOT NULL REFERENCES payment_batches (id),
    item_no            BIGINT NOT NULL CONSTRAINT item_no_range CHECK (item_no >= 1),
    id                 TEXT NOT NULL CONSTRAINT item_id_format CHECK (char_length(id) = 30 AND substr(id, 1, 4) = 'itm_'),
    chunk_no           BIGINT NOT NULL CONSTRAINT item_chunk_no_range CHECK (chunk_no >= 1),
    business_reference TEXT NOT NULL
                       CONSTRAINT item_business_reference_length CHECK (char_length(business_reference) BETWEEN 1 AND 35),
    amount_minor       BIGINT NOT NULL CONSTRAINT item_amount_positive CHECK (amount_minor > 0),
    creditor_name      TEXT NOT NULL CONSTRAINT item_creditor_name_length CHECK (char_length(creditor_name) BETWEEN 1 AND 256),
    creditor_account   TEXT NOT NULL CONSTRAINT item_creditor_account_length CHECK (char_length(creditor_account) BETWEEN 1 AND 64),
    creditor_bank_code TEXT CONSTRAINT item_creditor_bank_code_format CHECK (creditor_bank_code IS NULL OR char_length(creditor_bank_code) = 12),
    creditor_bic       TEXT CONSTRAINT item_creditor_bic_format CHECK (creditor_bic IS NULL OR char_length(creditor_bic) IN (8, 11)),
    creditor_bank_name TEXT CONSTRAINT item_creditor_bank_name_length CHECK (creditor_bank_name IS NULL OR char_length(creditor_bank_name) BETWEEN 1 AND 256),
    creditor_type      TEXT NOT NULL CONSTRAINT item_creditor_type CHECK (creditor_type IN ('corporate', 'personal')),
    remittance         TEXT NOT NULL CONSTRAINT item_remittance_length CHECK (char_length(remittance) BETWEEN 1 AND 1024),
    purpose            TEXT CONSTRAINT item_purpose_length CHECK (purpose IS NULL OR char_length(purpose) BETWEEN 1 AND 256),
    end_to_end_id      TEXT CONSTRAINT item_end_to_end_id_length CHECK (end_to_end_id IS NULL OR char_length(end_to_end_id) BETWEEN 1 AND 35),
    status             TEXT NOT NULL CONSTRAINT item_status CHECK (status IN (
                           'pending', 'accepted', 'settled', 'failed', 'returned', 'cancelled', 'needs_review')),
    bank_code          TEXT CONSTRAINT item_bank_code_length CHECK (bank_code IS NULL OR char_length(bank_code) BETWEEN 1 AND 64),
    bank_message       TEXT CONSTRAINT item_bank_message_length CHECK (bank_message IS NULL OR char_length(bank_message) BETWEEN 1 AND 1024),
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT item_creditor_bank CHECK (creditor_bank_code IS NOT NULL OR creditor_bic IS NOT NULL),
    CONSTRAINT item_id_unique UNIQUE (id),
    CONSTRAINT item_business_reference_unique UNIQUE (business_reference),
    PRIMARY KEY (batch_id, item_no)
);

CREATE INDEX payment_batch_items_chunk ON payment_batch_items (batch_id, chunk_no, item_no);
-- An item's end-to-end id is unique within its batch.
CREATE UNIQUE INDEX payment_batch_items_end_to_end ON payment_batch_items (batch_id, end_to_end_id)
    WHERE end_to_end_id IS NOT NULL;

CREATE TABLE payment_batch_history (
    batch_id     TEXT NOT NULL REFERENCES payment_batches (id),
    seq          BIGINT NOT NULL CONSTRAINT batch_history_seq_positive CHECK (seq >= 1),
    at TIMESTAMPTZ NOT NULL,
    -- NULL for a change of the batch as a whole (creation, cancel).
    chunk_no     BIGINT,
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    cause        TEXT NOT NULL CONSTRAINT batch_history_cause_length CHECK (char_length(cause) BETWEEN 1 AND 256),
    bank_code    TEXT CONSTRAINT batch_history_bank_code_length CHECK (bank_code IS NULL OR char_length(bank_code) BETWEEN 1 AND 64),
    bank_message TEXT CONSTRAINT batch_history_bank_message_length CHECK (bank_message IS NULL OR char_length(bank_message) BETWEEN 1 AND 1024),
    actor        TEXT NOT NULL CONSTRAINT batch_history_actor_length CHECK (char_length(actor) BETWEEN 1 AND 256),
    request_id   TEXT,
    PRIMARY KEY (batch_id, seq)
);

-- A batch's Idempotency-Key points at the batch (a payment's at the payment).
ALTER TABLE idempotency_keys ADD COLUMN batch_id TEXT REFERENCES payment_batches (id);
