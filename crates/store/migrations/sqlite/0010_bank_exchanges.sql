-- bankdirect schema 10 (SQLite): every exchange with a bank, its bodies kept apart from
-- the audit chain.
--
-- `bank_exchanges`: one row per call to a bank (one function code or order type, one
-- request and its answer), written in the same transaction as its `bank.exchange` audit
-- record, whose details name this row's id. The bodies are masked by the banks crate
-- before they get here (account numbers keep their last four characters, secret fields
-- are removed) and cut at 64 KiB; `*_truncated` says when. A NULL body: nothing was sent,
-- or no answer body was read. `reference` is the first of the exchange's references, for
-- reading; every reference is in `bank_exchange_references`.
--
-- `bank_exchange_references`: what an exchange concerns (our business references, or the
-- account ids asked about), for listing the exchanges of one payment, chunk or account.

CREATE TABLE bank_exchanges (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    at                 TEXT NOT NULL CONSTRAINT exchange_at_format CHECK (length(at) = 27),
    bank_id            TEXT NOT NULL CONSTRAINT exchange_bank_id_length CHECK (length(bank_id) BETWEEN 1 AND 128),
    connection_id      TEXT NOT NULL CONSTRAINT exchange_connection_id_length CHECK (length(connection_id) BETWEEN 1 AND 128),
    function           TEXT NOT NULL CONSTRAINT exchange_function_length CHECK (length(function) BETWEEN 1 AND 64),
    reference          TEXT CONSTRAINT exchange_reference_length CHECK (reference IS NULL OR length(reference) BETWEEN 1 AND 128),
    outcome            TEXT NOT NULL CONSTRAINT exchange_outcome_length CHECK (length(outcome) BETWEEN 1 AND 64),
    bank_code          TEXT CONSTRAINT exchange_bank_code_length CHECK (bank_code IS NULL OR length(bank_code) BETWEEN 1 AND 64),
    elapsed_ms         INTEGER NOT NULL CONSTRAINT exchange_elapsed_ms_range CHECK (elapsed_ms >= 0),
    request_masked     TEXT CONSTRAINT exchange_request_length CHECK (request_masked IS NULL OR length(request_masked) <= 65536),
    request_truncated  INTEGER NOT NULL CONSTRAINT exchange_request_truncated_bool CHECK (request_truncated IN (0, 1)),
    response_masked    TEXT CONSTRAINT exchange_response_length CHECK (response_masked IS NULL OR length(response_masked) <= 65536),
    response_truncated INTEGER NOT NULL CONSTRAINT exchange_response_truncated_bool CHECK (response_truncated IN (0, 1))
);

CREATE TABLE bank_exchange_references (
    reference   TEXT NOT NULL CONSTRAINT exchange_ref_length CHECK (length(reference) BETWEEN 1 AND 128),
    exchange_id INTEGER NOT NULL REFERENCES bank_exchanges (id),
    PRIMARY KEY (reference, exchange_id)
) WITHOUT ROWID;
