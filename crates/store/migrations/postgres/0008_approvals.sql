-- bankdirect schema 8 (PostgreSQL): maker-checker approvals (docs/approvals.md).
--
-- A payment or batch matched by an approval rule at intake carries the number of distinct
-- approvals it needs (0: none) and, when a person made it, that person (`user:<id>`).
ALTER TABLE payments ADD COLUMN approvals_required INTEGER NOT NULL DEFAULT 0
    CONSTRAINT payment_approvals_required_range CHECK (approvals_required BETWEEN 0 AND 16);
ALTER TABLE payments ADD COLUMN on_behalf_of TEXT
    CONSTRAINT payment_on_behalf_of_length CHECK (on_behalf_of IS NULL OR char_length(on_behalf_of) BETWEEN 1 AND 128);
ALTER TABLE payment_batches ADD COLUMN approvals_required INTEGER NOT NULL DEFAULT 0
    CONSTRAINT batch_approvals_required_range CHECK (approvals_required BETWEEN 0 AND 16);
ALTER TABLE payment_batches ADD COLUMN on_behalf_of TEXT
    CONSTRAINT batch_on_behalf_of_length CHECK (on_behalf_of IS NULL OR char_length(on_behalf_of) BETWEEN 1 AND 128);

-- Every approval decision: one per person and object, so a person counts once and a
-- replayed decision cannot count twice (the primary key refuses it).
CREATE TABLE approval_decisions (
    object_kind  TEXT NOT NULL CONSTRAINT decision_object_kind CHECK (object_kind IN ('payment', 'batch')),
    object_id    TEXT COLLATE "C" NOT NULL CONSTRAINT decision_object_id_length CHECK (char_length(object_id) BETWEEN 1 AND 64),
    decided_by   TEXT NOT NULL CONSTRAINT decision_decided_by_length CHECK (char_length(decided_by) BETWEEN 1 AND 128),
    decision     TEXT NOT NULL CONSTRAINT decision_kind CHECK (decision IN ('approve', 'decline')),
    comment      TEXT CONSTRAINT decision_comment_length CHECK (comment IS NULL OR char_length(comment) <= 1024),
    request_id   TEXT CONSTRAINT decision_request_id_length CHECK (request_id IS NULL OR char_length(request_id) <= 128),
    at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (object_kind, object_id, decided_by)
);
