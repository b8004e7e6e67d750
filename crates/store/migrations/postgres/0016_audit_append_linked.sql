-- bankdirect schema 16 (PostgreSQL): an append that links its records in the server.
--
-- `audit_append_begin` (0015) takes the audit-order lock and hands the head to the store,
-- which links the records and sends them back in a second statement: the lock is held
-- across that round trip and the COMMIT's, and on a busy machine each round trip waits
-- for the gateway's thread and the server's process to be scheduled (BENCHMARKS.md, issue
-- 5). `audit_append_linked` does the whole append in the statement that calls it: it takes
-- the lock, reads the head, draws the ids, links each record after the one before and
-- inserts them. The payment intake groups call it at the end of their one statement, so
-- the lock is held only for the append and the commit that follows.
--
-- The link is the one of crates/store/src/audit.rs ("The link", version 1), written again
-- here: SHA-256 over lp("bankdirect.audit.v1"), the previous hash, the position, the id,
-- the instant in microseconds (each a big-endian i64), lp(actor), lp(action), lp(object),
-- 0x00 or 0x01 lp(request_id), lp(outcome), lp(details), where lp is a big-endian u32
-- byte length and the UTF-8 bytes. The store's tests link records both ways and compare
-- (crates/store/tests/suite.rs, `postgres_links_audit_records_in_the_server_as_the_store_does`),
-- and the chain's verification recomputes every hash in Rust.

-- Appends one record per array element, in order, and returns their ids. Linked when the
-- session links (`bankdirect.audit_link` = 'on', as for 0015) and the newest record is
-- linked (or there is none); otherwise unlinked, for the chainer. No records: nothing is
-- taken, nothing written.
CREATE FUNCTION audit_append_linked(
    lock_key BIGINT,
    ats TIMESTAMPTZ[],
    actors TEXT[],
    actions TEXT[],
    objects TEXT[],
    request_ids TEXT[],
    outcomes TEXT[],
    details TEXT[]
) RETURNS BIGINT[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n INTEGER := coalesce(cardinality(ats), 0);
    newest_id BIGINT;
    head_position BIGINT;
    head_hash BYTEA;
    link BOOLEAN := current_setting('bankdirect.audit_link', true) = 'on';
    ids BIGINT[];
    positions BIGINT[] := array_fill(NULL::BIGINT, ARRAY[n]);
    prev_hashes BYTEA[] := array_fill(NULL::BYTEA, ARRAY[n]);
    hashes BYTEA[] := array_fill(NULL::BYTEA, ARRAY[n]);
    -- lp("bankdirect.audit.v1").
    domain CONSTANT BYTEA := int4send(19) || convert_to('bankdirect.audit.v1', 'UTF8');
BEGIN
    IF n = 0 THEN
        RETURN '{}'::BIGINT[];
    END IF;
    IF cardinality(actors) <> n OR cardinality(actions) <> n OR cardinality(objects) <> n
       OR cardinality(request_ids) <> n OR cardinality(outcomes) <> n
       OR cardinality(details) <> n THEN
        RAISE EXCEPTION 'audit_append_linked: the record arrays differ in length';
    END IF;
    PERFORM pg_advisory_xact_lock(lock_key);
    IF link THEN
        -- A statement of its own, so it sees every record committed under the lock before.
        SELECT a.id, a.position, a.hash INTO newest_id, head_position, head_hash
        FROM audit_log AS a ORDER BY a.id DESC LIMIT 1;
        IF newest_id IS NULL THEN
            head_position := 0;
            head_hash := '\x0000000000000000000000000000000000000000000000000000000000000000'::BYTEA;
        ELSIF head_position IS NULL THEN
            link := false;
        END IF;
    END IF;
    -- Drawn under the lock: ids ascend in commit order.
    ids := ARRAY(
        SELECT nextval(pg_get_serial_sequence('audit_log', 'id'))
        FROM generate_series(1, n)
    );
    IF link THEN
        FOR i IN 1 .. n LOOP
            head_position := head_position + 1;
            positions[i] := head_position;
            prev_hashes[i] := head_hash;
            -- The encoding in one expression: a call of an SQL function per record
            -- cost some fifty microseconds each, under the lock, where this costs three.
            -- EXTRACT gives numeric seconds, exact to the microsecond a TIMESTAMPTZ holds.
            head_hash := sha256(
                domain
                || head_hash
                || int8send(head_position)
                || int8send(ids[i])
                || int8send((EXTRACT(EPOCH FROM ats[i]) * 1000000)::BIGINT)
                || int4send(length(convert_to(actors[i], 'UTF8')))
                || convert_to(actors[i], 'UTF8')
                || int4send(length(convert_to(actions[i], 'UTF8')))
                || convert_to(actions[i], 'UTF8')
                || int4send(length(convert_to(objects[i], 'UTF8')))
                || convert_to(objects[i], 'UTF8')
                || CASE WHEN request_ids[i] IS NULL THEN '\x00'::BYTEA
                        ELSE '\x01'::BYTEA
                             || int4send(length(convert_to(request_ids[i], 'UTF8')))
                             || convert_to(request_ids[i], 'UTF8') END
                || int4send(length(convert_to(outcomes[i], 'UTF8')))
                || convert_to(outcomes[i], 'UTF8')
                || int4send(length(convert_to(details[i], 'UTF8')))
                || convert_to(details[i], 'UTF8'));
            hashes[i] := head_hash;
        END LOOP;
    END IF;
    INSERT INTO audit_log (id, at, actor, action, object, request_id, outcome, details,
                           position, prev_hash, hash)
    OVERRIDING SYSTEM VALUE
    SELECT u.id, u.at, u.actor, u.action, u.object, u.request_id, u.outcome,
           u.details::json, u.position, u.prev_hash, u.hash
    FROM unnest(ids, ats, actors, actions, objects, request_ids, outcomes, details,
                positions, prev_hashes, hashes)
         AS u(id, at, actor, action, object, request_id, outcome, details, position,
              prev_hash, hash);
    RETURN ids;
END;
$$;
