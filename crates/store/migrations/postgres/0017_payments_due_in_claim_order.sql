-- bankdirect schema 17 (PostgreSQL): the work queue's index holds the claim's whole order.
--
-- A claim takes the oldest due payments of a status `ORDER BY next_attempt_at, id LIMIT n`.
-- `payments_due` held (status, next_attempt_at) only, so the order needed a sort on top of
-- the index. Where the planner's statistics were young (a table filled faster than
-- autovacuum analyses it), it then chose a bitmap scan of EVERY due payment of the status,
-- sorted them all and kept n: 6 ms per claim of 32 with 6 000 payments queued (BENCHMARKS.md,
-- issue 5). With `id` in the index the index's order is the claim's, so the scan that
-- stops at n needs no sort; the store pins the claim's plan to it (`SET LOCAL
-- enable_bitmapscan = off`, `postgres.rs`), since on young statistics the planner still
-- chose the bitmap scan. The index is rebuilt with writes to `payments` blocked until
-- it is built (seconds for a few million payments): upgrade in a quiet moment.
DROP INDEX payments_due;
CREATE INDEX payments_due ON payments (status, next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;
