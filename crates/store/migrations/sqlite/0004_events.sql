-- bankdirect schema 4 (SQLite): the event outbox.
--
-- An event is written in the same transaction as the change that causes it (a payment's
-- status change, a batch's, a booked statement entry), so a change that rolls back emits
-- nothing and a committed change is never without its event. Webhook delivery reads the
-- outbox afterwards: `fanned_out_at` is NULL until the delivery side has made its
-- deliveries for the event.
--
-- `id` is derived from the object and its sequence (`evt_<object id>_<object_seq>`), so the
-- same change can never produce two events and a receiver deduplicates by id. `object_seq`
-- grows by at least one per event of the object (every event type of one object shares the
-- counter), so a receiver can drop a stale event by comparing sequences.

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL
                 CONSTRAINT event_id_length CHECK (length(id) BETWEEN 5 AND 200 AND substr(id, 1, 4) = 'evt_'),
    type         TEXT NOT NULL
                 CONSTRAINT event_type_known CHECK (type IN (
                     'payment.status_changed', 'payment_batch.status_changed',
                     'payment_batch.completed', 'transaction.booked')),
    version      INTEGER NOT NULL CONSTRAINT event_version_positive CHECK (version >= 1),
    object_type  TEXT NOT NULL
                 CONSTRAINT event_object_type CHECK (object_type IN ('payment', 'payment_batch', 'transaction')),
    object_id    TEXT NOT NULL CONSTRAINT event_object_id_length CHECK (length(object_id) BETWEEN 1 AND 128),
    object_seq   INTEGER NOT NULL CONSTRAINT event_object_seq_positive CHECK (object_seq >= 1),
    -- The account the event is about (entitlement decides who may see it).
    account_id   TEXT NOT NULL CONSTRAINT event_account_id_length CHECK (length(account_id) BETWEEN 1 AND 128),
    occurred_at  TEXT NOT NULL
                 CONSTRAINT event_occurred_at_format CHECK (length(occurred_at) = 27 AND substr(occurred_at, 27, 1) = 'Z'),
    -- The event's `data` object as JSON text.
    data         TEXT NOT NULL
                 CONSTRAINT event_data_size CHECK (json_valid(data) AND length(CAST(data AS BLOB)) <= 65536),
    fanned_out_at TEXT
                 CONSTRAINT event_fanned_out_at_format
                 CHECK (fanned_out_at IS NULL OR (length(fanned_out_at) = 27 AND substr(fanned_out_at, 27, 1) = 'Z')),
    CONSTRAINT event_id_unique UNIQUE (id),
    CONSTRAINT event_object_seq_unique UNIQUE (object_type, object_id, object_seq)
) STRICT;

-- The delivery side's scan: events not yet fanned out, oldest first.
CREATE INDEX events_to_fan_out ON events (seq) WHERE fanned_out_at IS NULL;
