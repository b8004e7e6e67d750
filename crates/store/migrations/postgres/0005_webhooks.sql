-- bankdirect schema 5 (PostgreSQL): webhooks delivered from the event outbox. See the
-- SQLite twin (migrations/sqlite/0005_webhooks.sql) for what the columns promise.
--
-- The fan-out takes a transaction-level advisory lock first, so one instance fans out at a
-- time; claims lock candidate deliveries with FOR UPDATE SKIP LOCKED.

CREATE TABLE webhooks (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY
                 CONSTRAINT webhook_id_format CHECK (char_length(id) BETWEEN 5 AND 64 AND substr(id, 1, 4) = 'whk_'),
    client_id    TEXT COLLATE "C" NOT NULL CONSTRAINT webhook_client_id_length CHECK (char_length(client_id) BETWEEN 1 AND 128),
    url          TEXT NOT NULL CONSTRAINT webhook_url_length CHECK (char_length(url) BETWEEN 8 AND 2048),
    secret       TEXT NOT NULL CONSTRAINT webhook_secret_length CHECK (char_length(secret) BETWEEN 32 AND 256),
    event_types  JSONB NOT NULL
                 CONSTRAINT webhook_event_types_array
                 CHECK (jsonb_typeof(event_types) = 'array' AND jsonb_array_length(event_types) BETWEEN 1 AND 16),
    created_at   TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ
);

CREATE INDEX webhooks_of_client ON webhooks (client_id, id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       TEXT COLLATE "C" NOT NULL REFERENCES webhooks (id),
    event_id         TEXT COLLATE "C" NOT NULL REFERENCES events (id),
    object_type      TEXT COLLATE "C" NOT NULL,
    object_id        TEXT COLLATE "C" NOT NULL,
    object_seq       BIGINT NOT NULL,
    state            TEXT COLLATE "C" NOT NULL
                     CONSTRAINT delivery_state CHECK (state IN ('pending', 'delivered', 'dead', 'skipped')),
    attempts         INTEGER NOT NULL DEFAULT 0 CONSTRAINT delivery_attempts_range CHECK (attempts >= 0),
    attempts_total   INTEGER NOT NULL DEFAULT 0 CONSTRAINT delivery_attempts_total_range CHECK (attempts_total >= attempts),
    next_attempt_at  TIMESTAMPTZ,
    lease_owner      TEXT CONSTRAINT delivery_lease_owner_length CHECK (lease_owner IS NULL OR char_length(lease_owner) BETWEEN 1 AND 128),
    lease_expires_at TIMESTAMPTZ,
    lease_token      BIGINT NOT NULL DEFAULT 0,
    last_status      INTEGER CONSTRAINT delivery_last_status_range CHECK (last_status IS NULL OR last_status BETWEEN 100 AND 599),
    last_error       TEXT CONSTRAINT delivery_last_error_length CHECK (last_error IS NULL OR char_length(last_error) <= 512),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT delivery_pending_is_due CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL)),
    CONSTRAINT delivery_once_per_event UNIQUE (webhook_id, event_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_per_object
    ON webhook_deliveries (webhook_id, object_type, object_id, object_seq) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_of_webhook ON webhook_deliveries (webhook_id, state, id);

CREATE TABLE webhook_attempts (
    delivery_id      BIGINT NOT NULL REFERENCES webhook_deliveries (id),
    attempt          INTEGER NOT NULL CONSTRAINT attempt_number_positive CHECK (attempt >= 1),
    at               TIMESTAMPTZ NOT NULL,
    response_status  INTEGER CONSTRAINT attempt_status_range CHECK (response_status IS NULL OR response_status BETWEEN 100 AND 599),
    error            TEXT CONSTRAINT attempt_error_length CHECK (error IS NULL OR char_length(error) <= 512),
    duration_ms      BIGINT NOT NULL CONSTRAINT attempt_duration_range CHECK (duration_ms >= 0),
    CONSTRAINT attempt_has_outcome CHECK (response_status IS NOT NULL OR error IS NOT NULL),
    PRIMARY KEY (delivery_id, attempt)
);
