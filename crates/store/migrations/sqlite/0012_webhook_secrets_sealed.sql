-- bankdirect schema 12 (SQLite): webhook secrets are stored sealed (docs/webhooks.md).
--
-- The gateway signs every delivery with the webhook's secret, so it cannot be a one-way
-- hash; it is now stored sealed (`sealed:v1:…`, AES-256-GCM under a data key kept in the
-- data dir, not in the database), which is longer than the secret: the stored length goes
-- from 256 to 512 characters. SQLite cannot alter a CHECK constraint, so `webhooks` is
-- rebuilt as `payment_batches` was in schema 9: the rows set aside, the table dropped and
-- created again under its own name, the rows put back, with foreign keys deferred to the
-- commit (the deliveries' references are whole again by then, or nothing changes).
PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE webhooks_copy AS SELECT * FROM webhooks;
DROP TABLE webhooks;

CREATE TABLE webhooks (
    id           TEXT NOT NULL PRIMARY KEY
                 CONSTRAINT webhook_id_format CHECK (length(id) BETWEEN 5 AND 64 AND substr(id, 1, 4) = 'whk_'),
    client_id    TEXT NOT NULL CONSTRAINT webhook_client_id_length CHECK (length(client_id) BETWEEN 1 AND 128),
    url          TEXT NOT NULL CONSTRAINT webhook_url_length CHECK (length(url) BETWEEN 8 AND 2048),
    secret       TEXT NOT NULL CONSTRAINT webhook_secret_length CHECK (length(secret) BETWEEN 32 AND 512),
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

INSERT INTO webhooks SELECT * FROM temp.webhooks_copy;
DROP TABLE temp.webhooks_copy;

CREATE INDEX webhooks_of_client ON webhooks (client_id, id) WHERE deleted_at IS NULL;
