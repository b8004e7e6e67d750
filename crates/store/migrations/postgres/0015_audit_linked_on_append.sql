-- bankdirect schema 15 (PostgreSQL): audit records are linked as they are appended.
--
-- Until now every record went in unlinked and the chainer rewrote it after its commit to
-- set its position and hashes: a second version of every audit row, with a new entry in
-- each of its indexes (BENCHMARKS.md, issue 5). An append already holds the audit-order
-- lock until its commit, so it can link its records itself: this function takes the lock
-- and then, in a statement of its own (a volatile function's statements each see what was
-- committed before they began, so this one sees every record appended under the lock
-- before), reads the newest record and draws the ids of the records to append. The store
-- computes their links after that head (crates/store/src/audit.rs, "Who links") and
-- inserts them linked. When the newest record is not linked (a backlog from an older
-- database, or a store with the chain off) the head is NULL: the records go in unlinked
-- and the chainer links them, oldest first, as before.
--
-- A store with the chain off opens its sessions without `bankdirect.audit_link = 'on'`:
-- its records stay unlinked.
CREATE FUNCTION audit_append_begin(
    lock_key BIGINT,
    n INTEGER,
    OUT head_position BIGINT,
    OUT head_hash BYTEA,
    OUT ids BIGINT[]
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    newest_id BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    IF current_setting('bankdirect.audit_link', true) = 'on' THEN
        SELECT a.id, a.position, a.hash INTO newest_id, head_position, head_hash
        FROM audit_log AS a ORDER BY a.id DESC LIMIT 1;
        IF newest_id IS NULL THEN
            -- An empty log: the first record is position 1, after the genesis hash.
            head_position := 0;
            head_hash := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
        ELSIF head_position IS NULL THEN
            head_hash := NULL;
        END IF;
    END IF;
    -- Drawn under the lock: ids ascend in commit order.
    ids := ARRAY(
        SELECT nextval(pg_get_serial_sequence('audit_log', 'id'))
        FROM generate_series(1, n)
    );
END;
$$;
