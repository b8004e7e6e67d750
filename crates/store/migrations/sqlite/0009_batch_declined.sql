-- bankdirect schema 9 (SQLite): a batch can be `declined` by an approver (docs/approvals.md).
--
-- SQLite cannot alter a CHECK constraint, so `payment_batches` is rebuilt. The migrator runs
-- this in a transaction, where `PRAGMA foreign_keys` cannot be switched off, and renaming a
-- table with foreign keys on rewrites the REFERENCES of the chunk, item, history and
-- idempotency tables; so the rows are set aside, the table dropped and created again under
-- its own name, and the rows put back, with foreign keys deferred to the commit: the drop
-- counts one pending violation per referencing row and putting its batch back clears it, so
-- the commit fails (and nothing changes) unless every reference is whole again. The columns
-- are those of 0006 and 0008, in the same order, so `SELECT *` copies them one to one.
PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE payment_batches_copy AS SELECT * FROM payment_batches;
DROP TABLE payment_batches;

CREATE TABLE payment_batches (
    id                       TEXT NOT NULL PRIMARY KEY
                             CONSTRAINT batch_id_format CHECK (length(id) = 30 AND substr(id, 1, 4) = 'bat_'),
    client_id                TEXT NOT NULL CONSTRAINT batch_client_id_length CHECK (length(client_id) BETWEEN 1 AND 128),
    debtor_account_id        TEXT NOT NULL
                             CONSTRAINT batch_debtor_account_id_length CHECK (length(debtor_account_id) BETWEEN 1 AND 128),
    currency                 TEXT NOT NULL CONSTRAINT batch_currency_format CHECK (length(currency) = 3),
    kind                     TEXT NOT NULL CONSTRAINT batch_kind CHECK (kind IN ('supplier', 'payroll')),
    requested_execution_date TEXT NOT NULL
                             CONSTRAINT batch_execution_date_format CHECK (date(requested_execution_date) IS requested_execution_date),
    item_count               INTEGER NOT NULL CONSTRAINT batch_item_count_positive CHECK (item_count >= 1),
    control_sum_minor        INTEGER NOT NULL CONSTRAINT batch_control_sum_positive CHECK (control_sum_minor > 0),
    chunk_count              INTEGER NOT NULL CONSTRAINT batch_chunk_count_positive CHECK (chunk_count >= 1),
    business_reference       TEXT NOT NULL
                             CONSTRAINT batch_business_reference_length CHECK (length(business_reference) BETWEEN 1 AND 35),
    status                   TEXT NOT NULL CONSTRAINT batch_status CHECK (status IN (
                                 'received', 'pending_approval', 'queued', 'submitting', 'accepted',
                                 'unknown', 'needs_review', 'completed', 'failed', 'cancelled', 'declined')),
    event_seq                INTEGER NOT NULL CONSTRAINT batch_event_seq_range CHECK (event_seq >= 0),
    created_at               TEXT NOT NULL
                             CONSTRAINT batch_created_at_format CHECK (length(created_at) = 27 AND substr(created_at, 27, 1) = 'Z'),
    updated_at               TEXT NOT NULL
                             CONSTRAINT batch_updated_at_format CHECK (length(updated_at) = 27 AND substr(updated_at, 27, 1) = 'Z'),
    approvals_required       INTEGER NOT NULL DEFAULT 0
                             CONSTRAINT batch_approvals_required_range CHECK (approvals_required BETWEEN 0 AND 16),
    on_behalf_of             TEXT
                             CONSTRAINT batch_on_behalf_of_length CHECK (on_behalf_of IS NULL OR length(on_behalf_of) BETWEEN 1 AND 128),
    CONSTRAINT batch_business_reference_unique UNIQUE (business_reference)
) STRICT;

INSERT INTO payment_batches SELECT * FROM temp.payment_batches_copy;
DROP TABLE temp.payment_batches_copy;

CREATE INDEX payment_batches_created ON payment_batches (created_at, id);
CREATE INDEX payment_batches_account_created ON payment_batches (debtor_account_id, created_at, id);
