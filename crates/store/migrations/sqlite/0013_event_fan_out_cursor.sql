-- bankdirect schema 13 (SQLite): the delivery side remembers how far it has fanned the
-- outbox out, instead of marking every event.
--
-- On SQLite every write goes through the one writer, so events are inserted, and
-- committed, in `seq` order, and the fan-out (a writer job itself) always takes the oldest
-- events not yet fanned out: what has been fanned out is a prefix of the outbox, and one
-- number says where it ends. Marking each event rewrote its row (and kept a partial index
-- over the unmarked ones) after its commit: at intake, a fifth of what the writer could do
-- (BENCHMARKS.md, issue 5). `fanned_out_at` is no longer written here; events fanned out
-- before this migration keep theirs. PostgreSQL draws `seq` from a sequence, not in commit
-- order, and keeps marking events.
CREATE TABLE event_fan_out (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    -- Every event with `seq` up to this one has been fanned out.
    last_seq INTEGER NOT NULL CHECK (last_seq >= 0)
) STRICT;

INSERT INTO event_fan_out (id, last_seq)
VALUES (1, COALESCE((SELECT MIN(seq) - 1 FROM events WHERE fanned_out_at IS NULL),
                    (SELECT MAX(seq) FROM events),
                    0));

DROP INDEX events_to_fan_out;
