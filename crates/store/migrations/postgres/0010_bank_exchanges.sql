-- bankdirect schema 10 (PostgreSQL): every exchange with a bank, its bodies kept apart
-- from the audit chain. See the SQLite twin (migrations/sqlite/0010_bank_exchanges.sql)
-- for what the columns promise.

CREATE TABLE bank_exchanges (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                 TIMESTAMPTZ NOT NULL,
    bank_id            TEXT COLLATE "C" NOT NULL CONSTRAINT exchange_bank_id_length CHECK (char_length(bank_id) BETWEEN 1 AND 128),
    connection_id      TEXT COLLATE "C" NOT NULL CONSTRAINT exchange_connection_id_length CHECK (char_length(connection_id) BETWEEN 1 AND 128),
    function           TEXT COLLATE "C" NOT NULL CONSTRAINT exchange_function_length CHECK (char_length(function) BETWEEN 1 AND 64),
    reference          TEXT COLLATE "C" CONSTRAINT exchange_reference_length CHECK (reference IS NULL OR char_length(reference) BETWEEN 1 AND 128),
    outcome            TEXT COLLATE "C" NOT NULL CONSTRAINT exchange_outcome_length CHECK (char_length(outcome) BETWEEN 1 AND 64),
    bank_code          TEXT CONSTRAINT exchange_bank_code_length CHECK (bank_code IS NULL OR char_length(bank_code) BETWEEN 1 AND 64),
    elapsed_ms         BIGINT NOT NULL CONSTRAINT exchange_elapsed_ms_range CHECK (elapsed_ms >= 0),
    request_masked     TEXT CONSTRAINT exchange_request_length CHECK (request_masked IS NULL OR char_length(request_masked) <= 65536),
    request_truncated  BOOLEAN NOT NULL,
    response_masked    TEXT CONSTRAINT exchange_response_length CHECK (response_masked IS NULL OR char_length(response_masked) <= 65536),
    response_truncated BOOLEAN NOT NULL
);

CREATE TABLE bank_exchange_references (
    reference   TEXT COLLATE "C" NOT NULL CONSTRAINT exchange_ref_length CHECK (char_length(reference) BETWEEN 1 AND 128),
    exchange_id BIGINT NOT NULL REFERENCES bank_exchanges (id),
    PRIMARY KEY (reference, exchange_id)
);
