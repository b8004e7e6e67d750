-- bankdirect schema 2 (SQLite): statement entries, their counters, continuity breaks, sync state.
--
-- Conventions of 0001 apply. Business dates are TEXT 'YYYY-MM-DD'; `date(x) IS x` accepts
-- exactly the calendar dates in that form (SQLite's date() normalises 2026-02-30 to
-- 2026-03-02, so the comparison fails). Text limits mirror domain::statement and
-- crates/store/src/model.rs.

-- Two store-wide counters, `seq` (assigned at insert, never changed: the paging key) and
-- `change_seq` (assigned at insert and when a pending entry is booked: the change feed).
-- Rows, not AUTOINCREMENT, because an update needs a fresh change_seq too. With the single
-- writer, values ascend in commit order.
CREATE TABLE statement_counters (
    name  TEXT NOT NULL PRIMARY KEY CHECK (name IN ('seq', 'change_seq')),
    value INTEGER NOT NULL CHECK (value >= 0)
) STRICT;

INSERT INTO statement_counters (name, value) VALUES ('seq', 0), ('change_seq', 0);

CREATE TABLE statement_entries (
    id                    TEXT NOT NULL PRIMARY KEY
                          CONSTRAINT entry_id_format CHECK (
                              length(id) = 30 AND substr(id, 1, 4) = 'txn_'
                              AND NOT substr(id, 5) GLOB '*[^0-9A-HJKMNP-TV-Z]*'),
    account_id            TEXT NOT NULL
                          CONSTRAINT entry_account_id_length CHECK (length(account_id) BETWEEN 1 AND 128),
    seq                   INTEGER NOT NULL UNIQUE CONSTRAINT entry_seq_positive CHECK (seq > 0),
    change_seq            INTEGER NOT NULL UNIQUE
                          CONSTRAINT entry_change_seq_positive CHECK (change_seq > 0),
    dedupe_key            TEXT NOT NULL
                          CONSTRAINT entry_dedupe_key_length CHECK (length(dedupe_key) BETWEEN 1 AND 256),
    pending_match_key     TEXT
                          CONSTRAINT entry_pending_match_key_length
                          CHECK (pending_match_key IS NULL OR length(pending_match_key) BETWEEN 1 AND 256),
    direction             TEXT NOT NULL
                          CONSTRAINT entry_direction CHECK (direction IN ('credit', 'debit')),
    amount_minor          INTEGER NOT NULL
                          CONSTRAINT entry_amount_positive CHECK (amount_minor > 0),
    currency              TEXT NOT NULL
                          CONSTRAINT entry_currency_format CHECK (length(currency) = 3),
    booking_date          TEXT NOT NULL
                          CONSTRAINT entry_booking_date_format CHECK (date(booking_date) IS booking_date),
    value_date            TEXT NOT NULL
                          CONSTRAINT entry_value_date_format CHECK (date(value_date) IS value_date),
    status                TEXT NOT NULL
                          CONSTRAINT entry_status CHECK (status IN ('pending', 'booked')),
    counterparty_name     TEXT
                          CONSTRAINT entry_counterparty_name_length
                          CHECK (counterparty_name IS NULL OR length(counterparty_name) BETWEEN 1 AND 256),
    counterparty_account  TEXT
                          CONSTRAINT entry_counterparty_account_length
                          CHECK (counterparty_account IS NULL OR length(counterparty_account) BETWEEN 1 AND 64),
    counterparty_bank     TEXT
                          CONSTRAINT entry_counterparty_bank_length
                          CHECK (counterparty_bank IS NULL OR length(counterparty_bank) BETWEEN 1 AND 256),
    remittance            TEXT
                          CONSTRAINT entry_remittance_length
                          CHECK (remittance IS NULL OR length(remittance) BETWEEN 1 AND 1024),
    bank_transaction_id   TEXT
                          CONSTRAINT entry_bank_transaction_id_length
                          CHECK (bank_transaction_id IS NULL OR length(bank_transaction_id) BETWEEN 1 AND 128),
    end_to_end_id         TEXT
                          CONSTRAINT entry_end_to_end_id_length
                          CHECK (end_to_end_id IS NULL OR length(end_to_end_id) BETWEEN 1 AND 128),
    -- In the entry's currency; may be negative (overdraft).
    running_balance_minor INTEGER,
    ingested_at           TEXT NOT NULL
                          CONSTRAINT entry_ingested_at_format
                          CHECK (length(ingested_at) = 27 AND substr(ingested_at, 27, 1) = 'Z'),
    updated_at            TEXT NOT NULL
                          CONSTRAINT entry_updated_at_format
                          CHECK (length(updated_at) = 27 AND substr(updated_at, 27, 1) = 'Z'),
    CONSTRAINT entry_dedupe_key_unique UNIQUE (account_id, dedupe_key)
) STRICT;

-- Paging one account by seq; the UNIQUE on change_seq is the change feed's index.
CREATE INDEX statement_entries_account_seq ON statement_entries (account_id, seq);
-- Matching a booked entry to its pending one, and a late pending report to either.
CREATE INDEX statement_entries_match ON statement_entries (account_id, pending_match_key, seq)
    WHERE pending_match_key IS NOT NULL;
-- Date-filtered listings and the continuity check's day read.
CREATE INDEX statement_entries_account_booking ON statement_entries (account_id, booking_date, seq);

-- Current, unresolved breaks: a row is deleted when its day becomes consistent.
CREATE TABLE continuity_breaks (
    account_id        TEXT NOT NULL
                      CONSTRAINT break_account_id_length CHECK (length(account_id) BETWEEN 1 AND 128),
    date              TEXT NOT NULL CONSTRAINT break_date_format CHECK (date(date) IS date),
    currency          TEXT NOT NULL CONSTRAINT break_currency_format CHECK (length(currency) = 3),
    opening_minor     INTEGER NOT NULL,
    closing_minor     INTEGER NOT NULL,
    entries_sum_minor INTEGER NOT NULL,
    gap_minor         INTEGER NOT NULL CONSTRAINT break_gap_non_zero CHECK (gap_minor <> 0),
    detected_at       TEXT NOT NULL
                      CONSTRAINT break_detected_at_format
                      CHECK (length(detected_at) = 27 AND substr(detected_at, 27, 1) = 'Z'),
    PRIMARY KEY (account_id, date)
) STRICT, WITHOUT ROWID;

CREATE TABLE statement_sync (
    account_id      TEXT NOT NULL PRIMARY KEY
                    CONSTRAINT sync_account_id_length CHECK (length(account_id) BETWEEN 1 AND 128),
    synced_through  TEXT
                    CONSTRAINT sync_synced_through_format
                    CHECK (synced_through IS NULL OR date(synced_through) IS synced_through),
    last_success_at TEXT
                    CONSTRAINT sync_last_success_at_format
                    CHECK (last_success_at IS NULL
                           OR (length(last_success_at) = 27 AND substr(last_success_at, 27, 1) = 'Z')),
    last_error      TEXT
                    CONSTRAINT sync_last_error_length
                    CHECK (last_error IS NULL OR length(last_error) BETWEEN 1 AND 1024)
) STRICT, WITHOUT ROWID;
