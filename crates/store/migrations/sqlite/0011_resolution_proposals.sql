-- bankdirect schema 11 (SQLite): four-eyes resolutions of `needs_review` (docs/approvals.md).
--
-- An operator's resolution of a payment or chunk in review is first a proposal; a second,
-- different operator confirming the same decision applies it. One open proposal per object;
-- `snapshot` is the object's state when proposed (a payment's version, a chunk's fencing
-- token and last change), so a proposal about an earlier review is never confirmed.
CREATE TABLE resolution_proposals (
    object_kind TEXT NOT NULL CONSTRAINT proposal_object_kind CHECK (object_kind IN ('payment', 'chunk')),
    object_id   TEXT NOT NULL CONSTRAINT proposal_object_id_length CHECK (length(object_id) BETWEEN 1 AND 64),
    decision    TEXT NOT NULL CONSTRAINT proposal_decision CHECK (decision IN ('accepted', 'failed', 'queued')),
    reason      TEXT NOT NULL CONSTRAINT proposal_reason_length CHECK (length(reason) BETWEEN 1 AND 500),
    proposed_by TEXT NOT NULL CONSTRAINT proposal_proposed_by_length CHECK (length(proposed_by) BETWEEN 1 AND 256),
    snapshot    TEXT NOT NULL CONSTRAINT proposal_snapshot_length CHECK (length(snapshot) BETWEEN 1 AND 128),
    request_id  TEXT CONSTRAINT proposal_request_id_length CHECK (request_id IS NULL OR length(request_id) <= 128),
    at          TEXT NOT NULL
                CONSTRAINT proposal_at_format CHECK (length(at) = 27 AND substr(at, 27, 1) = 'Z'),
    PRIMARY KEY (object_kind, object_id)
) STRICT;
