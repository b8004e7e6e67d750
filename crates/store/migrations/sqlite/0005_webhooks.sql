-- bankdirect schema 5 (SQLite): webhooks delivered from the event outbox.
--
-- `webhooks`: a client's registered endpoints. The secret is kept as given (the gateway
-- signs every delivery with it, so it cannot be a one-way hash); the API never returns it
-- after the create call. A deleted webhook keeps its row (`deleted_at`) so its deliveries
-- and attempts stay readable for audits.
--
-- `webhook_deliveries`: one per (webhook, event), made by the fan-out in the same
-- transaction that marks the event `fanned_out_at`. `object_type`, `object_id` and
-- `object_seq` are the event's, copied so the claim can refuse a delivery while an earlier
-- one (lower `object_seq`) of the same webhook and object is still pending: per object, a
-- receiver sees events in order (a dead or skipped delivery no longer holds the next
-- back). `attempts` counts attempts since creation or the last re-drive (it is compared
-- with the maximum); `attempts_total` never goes back and numbers the attempt rows.
-- `lease_token` grows with every claim; an attempt is recorded only by the holder of the
-- current token.
--
-- `webhook_attempts`: one row per HTTP attempt, with the response status or the error.

CREATE TABLE webhooks (
    id           TEXT NOT NULL PRIMARY KEY
                 CONSTRAINT webhook_id_format CHECK (length(id) BETWEEN 5 AND 64 AND substr(id, 1, 4) = 'whk_'),
    client_id    TEXT NOT NULL CONSTRAINT webhook_client_id_length CHECK (length(client_id) BETWEEN 1 AND 128),
    url          TEXT NOT NULL CONSTRAINT webhook_url_length CHECK (length(url) BETWEEN 8 AND 2048),
    secret       TEXT NOT NULL CONSTRAINT webhook_secret_length CHECK (length(secret) BETWEEN 32 AND 256),
    -- A JSON array of event type names, at least one.
    event_types  TEXT NOT NULL
                 CONSTRAINT webhook_event_types_array
                 CHECK (json_valid(event_types) AND json_type(event_types) = 'array'
                        AND json_array_length(event_types) BETWEEN 1 AND 16),
    created_at   TEXT NOT NULL
                 CONSTRAINT webhook_created_at_format CHECK (length(created_at) = 27 AND substr(created_at, 27, 1) = 'Z'),
    deleted_at   TEXT
                 CONSTRAINT webhook_deleted_at_format
                 CHECK (deleted_at IS NULL OR (length(deleted_at) = 27 AND substr(deleted_at, 27, 1) = 'Z'))
) STRICT, WITHOUT ROWID;

CREATE INDEX webhooks_of_client ON webhooks (client_id, id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id),
    event_id         TEXT NOT NULL REFERENCES events (id),
    object_type      TEXT NOT NULL,
    object_id        TEXT NOT NULL,
    object_seq       INTEGER NOT NULL,
    state            TEXT NOT NULL
                     CONSTRAINT delivery_state CHECK (state IN ('pending', 'delivered', 'dead', 'skipped')),
    attempts         INTEGER NOT NULL DEFAULT 0 CONSTRAINT delivery_attempts_range CHECK (attempts >= 0),
    attempts_total   INTEGER NOT NULL DEFAULT 0 CONSTRAINT delivery_attempts_total_range CHECK (attempts_total >= attempts),
    -- Set while pending; NULL once final.
    next_attempt_at  TEXT
                     CONSTRAINT delivery_next_attempt_at_format
                     CHECK (next_attempt_at IS NULL OR (length(next_attempt_at) = 27 AND substr(next_attempt_at, 27, 1) = 'Z')),
    lease_owner      TEXT CONSTRAINT delivery_lease_owner_length CHECK (lease_owner IS NULL OR length(lease_owner) BETWEEN 1 AND 128),
    lease_expires_at TEXT
                     CONSTRAINT delivery_lease_expires_at_format
                     CHECK (lease_expires_at IS NULL OR (length(lease_expires_at) = 27 AND substr(lease_expires_at, 27, 1) = 'Z')),
    lease_token      INTEGER NOT NULL DEFAULT 0,
    last_status      INTEGER CONSTRAINT delivery_last_status_range CHECK (last_status IS NULL OR last_status BETWEEN 100 AND 599),
    last_error       TEXT CONSTRAINT delivery_last_error_length CHECK (last_error IS NULL OR length(last_error) <= 512),
    created_at       TEXT NOT NULL
                     CONSTRAINT delivery_created_at_format CHECK (length(created_at) = 27 AND substr(created_at, 27, 1) = 'Z'),
    updated_at       TEXT NOT NULL
                     CONSTRAINT delivery_updated_at_format CHECK (length(updated_at) = 27 AND substr(updated_at, 27, 1) = 'Z'),
    CONSTRAINT delivery_pending_is_due CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL)),
    CONSTRAINT delivery_once_per_event UNIQUE (webhook_id, event_id)
) STRICT;

-- The claim's scan: due pending deliveries.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
-- The claim's order check: an earlier pending delivery of the same webhook and object.
CREATE INDEX webhook_deliveries_per_object
    ON webhook_deliveries (webhook_id, object_type, object_id, object_seq) WHERE state = 'pending';
-- Listing a webhook's deliveries by state.
CREATE INDEX webhook_deliveries_of_webhook ON webhook_deliveries (webhook_id, state, id);

CREATE TABLE webhook_attempts (
    delivery_id      INTEGER NOT NULL REFERENCES webhook_deliveries (id),
    attempt          INTEGER NOT NULL CONSTRAINT attempt_number_positive CHECK (attempt >= 1),
    at               TEXT NOT NULL
                     CONSTRAINT attempt_at_format CHECK (length(at) = 27 AND substr(at, 27, 1) = 'Z'),
    response_status  INTEGER CONSTRAINT attempt_status_range CHECK (response_status IS NULL OR response_status BETWEEN 100 AND 599),
    error            TEXT CONSTRAINT attempt_error_length CHECK (error IS NULL OR length(error) <= 512),
    duration_ms      INTEGER NOT NULL CONSTRAINT attempt_duration_range CHECK (duration_ms >= 0),
    CONSTRAINT attempt_has_outcome CHECK (response_status IS NOT NULL OR error IS NOT NULL),
    PRIMARY KEY (delivery_id, attempt)
) STRICT, WITHOUT ROWID;
