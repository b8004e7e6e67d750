-- bankdirect schema 2 (PostgreSQL): statement entries, their counters, continuity breaks,
-- sync state.
--
-- Conventions of 0001 apply. Business dates are DATE. Text limits mirror domain::statement
-- and crates/store/src/model.rs.

-- Two store-wide counters, `seq` (assigned at insert, never changed: the paging key) and
-- `change_seq` (assigned at insert and when a pending entry is booked: the change feed).
-- Rows, not sequences: a sequence hands out values in call order, not commit order, so a
-- change-feed reader could see 8 commit before 7 and skip 7 for ever. Every ingest takes a
-- transaction-level advisory lock before reading these rows (crates/store/src/postgres.rs),
-- so values ascend in commit order across instances.
CREATE TABLE statement_counters (
    name  TEXT COLLATE "C" NOT NULL PRIMARY KEY CHECK (name IN ('seq', 'change_seq')),
    value BIGINT NOT NULL CHECK (value >= 0)
);

INSERT INTO statement_counters (name, value) VALUES ('seq', 0), ('change_seq', 0);

CREATE TABLE statement_entries (
    id                    TEXT COLLATE "C" NOT NULL PRIMARY KEY
                          CONSTRAINT entry_id_format CHECK (id ~ '^txn_[0-9A-HJKMNP-TV-Z]{26}$'),
    account_id            TEXT COLLATE "C" NOT NULL
                          CONSTRAINT entry_account_id_length CHECK (char_length(account_id) BETWEEN 1 AND 128),
    seq                   BIGINT NOT NULL UNIQUE CONSTRAINT entry_seq_positive CHECK (seq > 0),
    change_seq            BIGINT NOT NULL UNIQUE
                          CONSTRAINT entry_change_seq_positive CHECK (change_seq > 0),
    dedupe_key            TEXT COLLATE "C" NOT NULL
                          CONSTRAINT entry_dedupe_key_length CHECK (char_length(dedupe_key) BETWEEN 1 AND 256),
    pending_match_key     TEXT COLLATE "C"
                          CONSTRAINT entry_pending_match_key_length
                          CHECK (pending_match_key IS NULL OR char_length(pending_match_key) BETWEEN 1 AND 256),
    direction             TEXT NOT NULL
                          CONSTRAINT entry_direction CHECK (direction IN ('credit', 'debit')),
    amount_minor          BIGINT NOT NULL
                          CONSTRAINT entry_amount_positive CHECK (amount_minor > 0),
    currency              TEXT COLLATE "C" NOT NULL
                          CONSTRAINT entry_currency_format CHECK (char_length(currency) = 3),
    booking_date          DATE NOT NULL,
    value_date            DATE NOT NULL,
    status                TEXT NOT NULL
                          CONSTRAINT entry_status CHECK (status IN ('pending', 'booked')),
    counterparty_name     TEXT
                          CONSTRAINT entry_counterparty_name_length
                          CHECK (counterparty_name IS NULL OR char_length(counterparty_name) BETWEEN 1 AND 256),
    counterparty_account  TEXT
                          CONSTRAINT entry_counterparty_account_length
                          CHECK (counterparty_account IS NULL OR char_length(counterparty_account) BETWEEN 1 AND 64),
    counterparty_bank     TEXT
                          CONSTRAINT entry_counterparty_bank_length
                          CHECK (counterparty_bank IS NULL OR char_length(counterparty_bank) BETWEEN 1 AND 256),
    remittance            TEXT
                          CONSTRAINT entry_remittance_length
                          CHECK (remittance IS NULL OR char_length(remittance) BETWEEN 1 AND 1024),
    bank_transaction_id   TEXT
                          CONSTRAINT entry_bank_transaction_id_length
                          CHECK (bank_transaction_id IS NULL OR char_length(bank_transaction_id) BETWEEN 1 AND 128),
    end_to_end_id         TEXT
                          CONSTRAINT entry_end_to_end_id_length
                          CHECK (end_to_end_id IS NULL OR char_length(end_to_end_id) BETWEEN 1 AND 128),
    -- In the entry's currency; may be negative (overdraft).
    running_balance_minor BIGINT,
    ingested_at           TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    CONSTRAINT entry_dedupe_key_unique UNIQUE (account_id, dedupe_key)
);

-- Paging one account by seq; the UNIQUE on change_seq is the change feed's index.
CREATE INDEX statement_entries_account_seq ON statement_entries (account_id, seq);
-- Matching a booked entry to its pending one, and a late pending report to either.
CREATE INDEX statement_entries_match ON statement_entries (account_id, pending_match_key, seq)
    WHERE pending_match_key IS NOT NULL;
-- Date-filtered listings and the continuity check's day read.
CREATE INDEX statement_entries_account_booking ON statement_entries (account_id, booking_date, seq);

-- Current, unresolved breaks: a row is deleted when its day becomes consistent.
CREATE TABLE continuity_breaks (
    account_id        TEXT COLLATE "C" NOT NULL
                      CONSTRAINT break_account_id_length CHECK (char_length(account_id) BETWEEN 1 AND 128),
    date              DATE NOT NULL,
    currency          TEXT COLLATE "C" NOT NULL
                      CONSTRAINT break_currency_format CHECK (char_length(currency) = 3),
    opening_minor     BIGINT NOT NULL,
    closing_minor     BIGINT NOT NULL,
    entries_sum_minor BIGINT NOT NULL,
    gap_minor         BIGINT NOT NULL CONSTRAINT break_gap_non_zero CHECK (gap_minor <> 0),
    detected_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, date)
);

CREATE TABLE statement_sync (
    account_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY
                    CONSTRAINT sync_account_id_length CHECK (char_length(account_id) BETWEEN 1 AND 128),
    synced_through  DATE,
    last_success_at TIMESTAMPTZ,
    last_error      TEXT
                    CONSTRAINT sync_last_error_length
                    CHECK (last_error IS NULL OR char_length(last_error) BETWEEN 1 AND 1024)
);
