-- bankdirect schema 1 (PostgreSQL 13 or later): install id, audit log, balance snapshots.
--
-- Conventions for every table of this database:
-- * Instants are TIMESTAMPTZ (microsecond precision, as the store truncates on both backends).
-- * Money is BIGINT minor units beside a TEXT ISO 4217 code; never float or numeric.
-- * Identifiers that the store orders by use COLLATE "C", so the order is byte order, as on
--   SQLite, whatever the database's locale.
-- * Limits on input live here as named CHECK constraints (the store maps a violation to
--   StoreError::Invalid naming the constraint); crates/store/src/model.rs mirrors them.

CREATE TABLE install (
    key   TEXT NOT NULL PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 64),
    value TEXT NOT NULL CHECK (char_length(value) BETWEEN 1 AND 256)
);

-- Created once, here: 16 hex digits from the server's strong random source
-- (gen_random_uuid is built in since PostgreSQL 13).
INSERT INTO install (key, value)
VALUES ('install_id', encode(substring(sha256(uuid_send(gen_random_uuid())) FROM 1 FOR 8), 'hex'));

-- Append-only. Ids ascend in commit order because inserts serialise on an advisory lock
-- held until commit (see crates/store/src/postgres.rs). `details` is json, not jsonb: it is
-- kept byte for byte as the store wrote it. A later migration adds the hash chain columns.
CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL
               CONSTRAINT audit_actor_length CHECK (char_length(actor) BETWEEN 1 AND 256),
    action     TEXT NOT NULL
               CONSTRAINT audit_action_length CHECK (char_length(action) BETWEEN 1 AND 256),
    object     TEXT NOT NULL
               CONSTRAINT audit_object_length CHECK (char_length(object) BETWEEN 1 AND 256),
    request_id TEXT
               CONSTRAINT audit_request_id_length
               CHECK (request_id IS NULL OR char_length(request_id) BETWEEN 1 AND 256),
    outcome    TEXT NOT NULL
               CONSTRAINT audit_outcome_length CHECK (char_length(outcome) BETWEEN 1 AND 256),
    details    JSON NOT NULL
               CONSTRAINT audit_details_size CHECK (octet_length(details::text) <= 65536)
);

-- With id last, a filtered listing reads the index in id order and stops at the limit.
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_object ON audit_log (object, id);
CREATE INDEX audit_log_action ON audit_log (action, id);

-- The latest known balance per account and currency (history is the statements' job).
CREATE TABLE balance_snapshots (
    account_id      TEXT COLLATE "C" NOT NULL
                    CONSTRAINT balance_account_id_length CHECK (char_length(account_id) BETWEEN 1 AND 128),
    currency        TEXT COLLATE "C" NOT NULL
                    CONSTRAINT balance_currency_format CHECK (char_length(currency) = 3),
    booked_minor    BIGINT NOT NULL,
    available_minor BIGINT NOT NULL,
    as_of           TIMESTAMPTZ NOT NULL,
    fetched_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, currency)
);
