-- bankdirect schema 7 (PostgreSQL): the audit chain (crates/store/src/audit.rs).
--
-- Every audit record gets its position in commit order (1, 2, 3… without gaps), the hash of
-- the record before it and its own hash (SHA-256 over prev_hash and the record's fields,
-- encoding version 1 in audit.rs). Records are inserted unlinked (all three NULL); one
-- chainer at a time (advisory lock) links them shortly after commit, in id order, which is
-- commit order under the audit-order lock. Records from before this migration are linked
-- by its first runs.
ALTER TABLE audit_log
    ADD COLUMN position BIGINT
        CONSTRAINT audit_position_positive CHECK (position IS NULL OR position >= 1),
    ADD COLUMN prev_hash BYTEA
        CONSTRAINT audit_prev_hash_length CHECK (prev_hash IS NULL OR octet_length(prev_hash) = 32),
    ADD COLUMN hash BYTEA
        CONSTRAINT audit_hash_length CHECK (hash IS NULL OR octet_length(hash) = 32);

-- One record per position: the chain cannot fork (NULLs are distinct).
CREATE UNIQUE INDEX audit_log_position ON audit_log (position);
-- What the chainer looks for.
CREATE INDEX audit_log_unlinked ON audit_log (id) WHERE position IS NULL;

-- Signed checkpoints over the chain's head. The signing key is not in the database.
CREATE TABLE audit_checkpoints (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    position  BIGINT NOT NULL
              CONSTRAINT audit_checkpoint_position_positive CHECK (position >= 1),
    hash      BYTEA NOT NULL
              CONSTRAINT audit_checkpoint_hash_length CHECK (octet_length(hash) = 32),
    at        TIMESTAMPTZ NOT NULL,
    key_id    TEXT NOT NULL
              CONSTRAINT audit_checkpoint_key_id_length CHECK (char_length(key_id) BETWEEN 1 AND 128),
    signature BYTEA NOT NULL
              CONSTRAINT audit_checkpoint_signature_length CHECK (octet_length(signature) BETWEEN 1 AND 512)
);

CREATE UNIQUE INDEX audit_checkpoints_position ON audit_checkpoints (position);
