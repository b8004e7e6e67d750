-- bankdirect schema 14 (SQLite): idempotency keys kept in a rowid table.
--
-- Until now the keys were a WITHOUT ROWID table ordered by (client, key): every key, with
-- the whole answer it replays (about a kilobyte for a payment), went into the b-tree at the
-- place its client-chosen key sorts to, a random one, so each new key rewrote a random leaf
-- of three or four rows and split one about every other insert; at intake that leaf, its
-- split and its parent were written to the WAL at each commit (BENCHMARKS.md, issue 5).
-- Here the rows go in rowid order, at the end, where a commit's keys share their pages,
-- and only the small (client, key) entry of the unique index lands at a random place.
-- Nothing references this table, so it is rebuilt under a new name and renamed; the
-- columns and CHECKs are those of 0003 and 0006, in the same order.
CREATE TABLE idempotency_keys_by_rowid (
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
    batch_id        TEXT REFERENCES payment_batches (id),
    -- A completed key carries the response it replays.
    CONSTRAINT idempotency_completed_has_response
    CHECK (state = 'in_progress' OR (response_status IS NOT NULL AND response_body IS NOT NULL)),
    CONSTRAINT idempotency_retention CHECK (expires_at > created_at)
) STRICT;

INSERT INTO idempotency_keys_by_rowid
    (client_id, key, request_hash, state, response_status, response_body, payment_id,
     created_at, expires_at, batch_id)
SELECT client_id, key, request_hash, state, response_status, response_body, payment_id,
       created_at, expires_at, batch_id
FROM idempotency_keys
ORDER BY created_at;

DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_by_rowid RENAME TO idempotency_keys;

-- The key itself: one per client, and the look-up of a retried request.
CREATE UNIQUE INDEX idempotency_keys_client_key ON idempotency_keys (client_id, key);
-- The purge of expired keys.
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
