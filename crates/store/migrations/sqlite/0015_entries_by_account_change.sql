-- bankdirect schema 15 (SQLite): statement entries indexed by account and change_seq.
--
-- The gateway keeps each account's entries in memory for its transaction pages and catches
-- that copy up with `entries_changed_since` for the one account, after the last change_seq
-- it read: `WHERE change_seq > ? AND account_id IN (?) ORDER BY change_seq`. Without this
-- index SQLite reads every entry of the account by (account_id, booking_date) and sorts
-- them, on every catch-up (once a second per account being read); with it, the catch-up
-- reads only what changed. The change feed of a few accounts uses it the same way.
CREATE INDEX statement_entries_account_change ON statement_entries (account_id, change_seq);
