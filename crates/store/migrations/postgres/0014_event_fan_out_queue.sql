-- bankdirect schema 14 (PostgreSQL): the events still to fan out to webhooks are kept in a
-- queue of their own instead of being marked one by one.
--
-- Marking an event (`fanned_out_at`) after its commit rewrote its whole row (the JSON
-- data included) with a new entry in each of its indexes, and a partial index kept the
-- unmarked ones: about a twelfth of the server's time at payment intake (BENCHMARKS.md,
-- issue 5). Now every statement that appends events also queues their `seq` (one
-- statement-level trigger, so no writer can forget it), and the fan-out deletes what it
-- has fanned out. `fanned_out_at` is no longer written; events fanned out before this
-- migration keep theirs. (SQLite keeps a cursor instead: its events commit in `seq`
-- order, these do not.)
CREATE TABLE event_fan_out_queue (
    -- An event's seq, queued by the trigger below in the statement that appended it.
    seq BIGINT PRIMARY KEY
);

INSERT INTO event_fan_out_queue (seq)
SELECT seq FROM events WHERE fanned_out_at IS NULL;

CREATE FUNCTION queue_events_for_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_fan_out_queue (seq) SELECT seq FROM appended;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_queue_for_fan_out
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT
    EXECUTE FUNCTION queue_events_for_fan_out();

DROP INDEX events_to_fan_out;
