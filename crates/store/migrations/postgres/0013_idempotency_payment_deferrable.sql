-- bankdirect schema 13 (PostgreSQL): an idempotency key's reference to its payment may be
-- checked at commit. The group intake (`postgres/intake.rs`) then inserts each key already
-- completed, with the answer it replays and its payment's id, before the payments of the
-- group, instead of inserting it in progress and updating it once the payment is in.
-- Checked at once unless a transaction asks otherwise (SET CONSTRAINTS … DEFERRED).
ALTER TABLE idempotency_keys ALTER CONSTRAINT idempotency_keys_payment_id_fkey
    DEFERRABLE INITIALLY IMMEDIATE;
