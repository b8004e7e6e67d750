-- bankdirect schema 19 (PostgreSQL): statement entries indexed by account and change_seq.
--
-- The gateway keeps each account's entries in memory for its transaction pages and catches
-- that copy up with `entries_changed_since` for the one account, after the last change_seq
-- it read: `WHERE change_seq > $1 AND account_id = ANY($2) ORDER BY change_seq`. With this
-- index the catch-up reads only what changed, instead of every entry of the account (or
-- every later entry of every account). Building it blocks writes to statement_entries
-- while it runs (migrations run in a transaction, where CONCURRENTLY is not allowed); on a
-- large existing table, create it CONCURRENTLY by hand before upgrading, under this name.
CREATE INDEX IF NOT EXISTS statement_entries_account_change
    ON statement_entries (account_id, change_seq);
