-- bankdirect schema 4 (PostgreSQL): the event outbox. See the SQLite twin
-- (migrations/sqlite/0004_events.sql) for what the columns promise.
--
-- `seq` orders the outbox for scanning only; it is drawn from a sequence and therefore NOT
-- in commit order across transactions. Nothing relies on it being so: the delivery side
-- picks events by `fanned_out_at IS NULL`, and the order that matters (per object) is
-- `object_seq`, which the object's own row lock serialises.

CREATE TABLE events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT COLLATE "C" NOT NULL
                 CONSTRAINT event_id_length CHECK (char_length(id) BETWEEN 5 AND 200 AND substr(id, 1, 4) = 'evt_'),
    type         TEXT COLLATE "C" NOT NULL
                 CONSTRAINT event_type_known CHECK (type IN (
                     'payment.status_changed', 'payment_batch.status_changed',
                     'payment_batch.completed', 'transaction.booked')),
    version      INTEGER NOT NULL CONSTRAINT event_version_positive CHECK (version >= 1),
    object_type  TEXT COLLATE "C" NOT NULL
                 CONSTRAINT event_object_type CHECK (object_type IN ('payment', 'payment_batch', 'transaction')),
    object_id    TEXT COLLATE "C" NOT NULL CONSTRAINT event_object_id_length CHECK (char_length(object_id) BETWEEN 1 AND 128),
    object_seq   BIGINT NOT NULL CONSTRAINT event_object_seq_positive CHECK (object_seq >= 1),
    account_id   TEXT COLLATE "C" NOT NULL CONSTRAINT event_account_id_length CHECK (char_length(account_id) BETWEEN 1 AND 128),
    occurred_at  TIMESTAMPTZ NOT NULL,
    data         JSONB NOT NULL CONSTRAINT event_data_size CHECK (octet_length(data::text) <= 65536),
    fanned_out_at TIMESTAMPTZ,
    CONSTRAINT event_id_unique UNIQUE (id),
    CONSTRAINT event_object_seq_unique UNIQUE (object_type, object_id, object_seq)
);

CREATE INDEX events_to_fan_out ON events (seq) WHERE fanned_out_at IS NULL;
