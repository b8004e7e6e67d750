-- bankdirect schema 1 (SQLite): install id, audit log, balance snapshots.
--
-- Conventions for every table of this database:
-- * Instants are TEXT in one fixed RFC 3339 UTC form with six fractional digits,
--   'YYYY-MM-DDTHH:MM:SS.ffffffZ' (27 characters), so text order is time order.
-- * Money is INTEGER minor units beside a TEXT ISO 4217 code; never REAL.
-- * Tables are STRICT: a value of the wrong type is an error, not a silent conversion.
-- * Limits on input live here as named CHECK constraints (the store maps a violation to
--   StoreError::Invalid naming the constraint); crates/store/src/model.rs mirrors them.

CREATE TABLE install (
    key   TEXT NOT NULL PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 64),
    value TEXT NOT NULL CHECK (length(value) BETWEEN 1 AND 256)
) STRICT;

-- Created once, here; business references are built from it so they stay unique across
-- installs. randomblob() draws from SQLite's OS-seeded generator.
INSERT INTO install (key, value) VALUES ('install_id', lower(hex(randomblob(8))));

-- Append-only. AUTOINCREMENT: ids are never reused, and with the single writer they ascend
-- in commit order. A later migration adds the hash chain columns.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL
               CONSTRAINT audit_at_format CHECK (length(at) = 27 AND substr(at, 27, 1) = 'Z'),
    actor      TEXT NOT NULL
               CONSTRAINT audit_actor_length CHECK (length(actor) BETWEEN 1 AND 256),
    action     TEXT NOT NULL
               CONSTRAINT audit_action_length CHECK (length(action) BETWEEN 1 AND 256),
    object     TEXT NOT NULL
               CONSTRAINT audit_object_length CHECK (length(object) BETWEEN 1 AND 256),
    request_id TEXT
               CONSTRAINT audit_request_id_length
               CHECK (request_id IS NULL OR length(request_id) BETWEEN 1 AND 256),
    outcome    TEXT NOT NULL
               CONSTRAINT audit_outcome_length CHECK (length(outcome) BETWEEN 1 AND 256),
    details    TEXT NOT NULL
               CONSTRAINT audit_details_json
               CHECK (json_valid(details) AND length(CAST(details AS BLOB)) <= 65536)
) STRICT;

-- With id last, a filtered listing reads the index in id order and stops at the limit.
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_object ON audit_log (object, id);
CREATE INDEX audit_log_action ON audit_log (action, id);

-- The latest known balance per account and currency (history is the statements' job).
CREATE TABLE balance_snapshots (
    account_id      TEXT NOT NULL
                    CONSTRAINT balance_account_id_length CHECK (length(account_id) BETWEEN 1 AND 128),
    currency        TEXT NOT NULL
                    CONSTRAINT balance_currency_format CHECK (length(currency) = 3),
    booked_minor    INTEGER NOT NULL,
    available_minor INTEGER NOT NULL,
    as_of           TEXT NOT NULL
                    CONSTRAINT balance_as_of_format CHECK (length(as_of) = 27 AND substr(as_of, 27, 1) = 'Z'),
    fetched_at      TEXT NOT NULL
                    CONSTRAINT balance_fetched_at_format CHECK (length(fetched_at) = 27 AND substr(fetched_at, 27, 1) = 'Z'),
    PRIMARY KEY (account_id, currency)
) STRICT, WITHOUT ROWID;
