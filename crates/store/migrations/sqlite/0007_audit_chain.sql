-- bankdirect schema 7 (SQLite): the audit chain (crates/store/src/audit.rs).
--
-- Every audit record gets its position in commit order (1, 2, 3… without gaps), the hash of
-- the record before it and its own hash (SHA-256 over prev_hash and the record's fields,
-- encoding version 1 in audit.rs). The single writer links the records of a group commit in
-- the same transaction; records from before this migration are linked by its first runs.
-- Unlinked: all three NULL.
ALTER TABLE audit_log ADD COLUMN position INTEGER
    CONSTRAINT audit_position_positive CHECK (position IS NULL OR position >= 1);
ALTER TABLE audit_log ADD COLUMN prev_hash BLOB
    CONSTRAINT audit_prev_hash_length CHECK (prev_hash IS NULL OR length(prev_hash) = 32);
ALTER TABLE audit_log ADD COLUMN hash BLOB
    CONSTRAINT audit_hash_length CHECK (hash IS NULL OR length(hash) = 32);

-- One record per position: the chain cannot fork.
CREATE UNIQUE INDEX audit_log_position ON audit_log (position) WHERE position IS NOT NULL;
-- What the chainer looks for at every commit: small, since it links at once.
CREATE INDEX audit_log_unlinked ON audit_log (id) WHERE position IS NULL;

-- Signed checkpoints over the chain's head. The signing key is not in the database.
CREATE TABLE audit_checkpoints (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    position  INTEGER NOT NULL
              CONSTRAINT audit_checkpoint_position_positive CHECK (position >= 1),
    hash      BLOB NOT NULL
              CONSTRAINT audit_checkpoint_hash_length CHECK (length(hash) = 32),
    at        TEXT NOT NULL
              CONSTRAINT audit_checkpoint_at_format CHECK (length(at) = 27 AND substr(at, 27, 1) = 'Z'),
    key_id    TEXT NOT NULL
              CONSTRAINT audit_checkpoint_key_id_length CHECK (length(key_id) BETWEEN 1 AND 128),
    signature BLOB NOT NULL
              CONSTRAINT audit_checkpoint_signature_length CHECK (length(signature) BETWEEN 1 AND 512)
) STRICT;

CREATE UNIQUE INDEX audit_checkpoints_position ON audit_checkpoints (position);
