//! The SQLite statements behind statement storage: [`SqliteIngest`] (the backend side of the
//! shared ingest algorithm, run inside a writer job) and the row readers. Dates are TEXT
//! `YYYY-MM-DD`, instants TEXT in the fixed form of `codec.rs`.
//!
//! The counters need no lock here: every write runs on the one writer connection, one job
//! after another, so values are drawn and committed in the same order.

use std::borrow::Cow;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::sqlite::SqliteRow;
use sqlx::SqliteConnection;

use super::BACKEND;
use crate::codec;
use crate::error::statement_error;
use crate::model::{ContinuityBreak, StoredEntry, SyncState};
use crate::statements::{
    self, Booking, BreakColumns, BreakRow, Counters, EntryColumns, EntryColumnsOf, EntryRow, Found,
    IngestTx, SyncRow, BREAKS_TABLE, ENTRIES_TABLE, SYNC_TABLE,
};
use crate::StoreError;

const OP: &str = "ingesting statement entries";

pub(super) struct SqliteIngest<'c> {
    pub conn: &'c mut SqliteConnection,
}

#[async_trait]
impl IngestTx for SqliteIngest<'_> {
    async fn lock_counters(&mut self) -> Result<Counters, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT name, value FROM statement_counters")
            .fetch_all(&mut *self.conn)
            .await
            .map_err(|e| statement_error(BACKEND, OP, e))?;
        statements::counters_from(rows)
    }

    async fn save_counters(&mut self, counters: Counters) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE statement_counters \
             SET value = CASE name WHEN 'seq' THEN ? ELSE ? END",
        )
        .bind(counters.seq)
        .bind(counters.change_seq)
        .execute(&mut *self.conn)
        .await
        .map_err(|e| statement_error(BACKEND, OP, e))?;
        Ok(())
    }

    async fn find_by_dedupe_key(
        &mut self,
        account_id: &str,
        dedupe_key: &str,
    ) -> Result<Option<Found>, StoreError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT id, status FROM statement_entries WHERE account_id = ? AND dedupe_key = ?",
        )
        .bind(account_id)
        .bind(dedupe_key)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(|e| statement_error(BACKEND, OP, e))?;
        statements::found(row)
    }

    async fn find_by_match_key(
        &mut self,
        account_id: &str,
        pending_match_key: &str,
        pending_only: bool,
    ) -> Result<Option<Found>, StoreError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT id, status FROM statement_entries \
             WHERE account_id = ? AND pending_match_key = ? \
               AND (? = 0 OR status = 'pending') \
             ORDER BY seq LIMIT 1",
        )
        .bind(account_id)
        .bind(pending_match_key)
        .bind(pending_only)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(|e| statement_error(BACKEND, OP, e))?;
        statements::found(row)
    }

    async fn insert_event(&mut self, row: &crate::events::EventRow) -> Result<(), StoreError> {
        super::events::insert(&mut *self.conn, row).await
    }

    async fn book(&mut self, b: &Booking<'_>) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE statement_entries SET \
               status = 'booked', \
               dedupe_key = COALESCE(?, dedupe_key), \
               pending_match_key = COALESCE(?, pending_match_key), \
               booking_date = ?, value_date = ?, running_balance_minor = ?, \
               change_seq = ?, updated_at = ? \
             WHERE id = ? AND status = 'pending'",
        )
        .bind(b.new_dedupe_key)
        .bind(b.pending_match_key)
        .bind(statements::date_text(b.booking_date))
        .bind(statements::date_text(b.value_date))
        .bind(b.running_balance_minor)
        .bind(b.change_seq)
        .bind(codec::instant_text(b.updated_at))
        .bind(b.id)
        .execute(&mut *self.conn)
        .await
        .map_err(|e| statement_error(BACKEND, OP, e))?;
        statements::booked_one(done.rows_affected())
    }

    async fn insert(
        &mut self,
        row: &EntryRow,
        seq: i64,
        change_seq: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = codec::instant_text(at);
        sqlx::query(
            "INSERT INTO statement_entries \
               (id, account_id, seq, change_seq, dedupe_key, pending_match_key, direction, \
                amount_minor, currency, booking_date, value_date, status, counterparty_name, \
                counterparty_account, counterparty_bank, remittance, bank_transaction_id, \
                end_to_end_id, running_balance_minor, ingested_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&row.id)
        .bind(&row.account_id)
        .bind(seq)
        .bind(change_seq)
        .bind(&row.dedupe_key)
        .bind(&row.pending_match_key)
        .bind(row.direction)
        .bind(row.amount_minor)
        .bind(row.currency)
        .bind(statements::date_text(row.booking_date))
        .bind(statements::date_text(row.value_date))
        .bind(statements::status_text(row.status))
        .bind(&row.counterparty_name)
        .bind(&row.counterparty_account)
        .bind(&row.counterparty_bank)
        .bind(&row.remittance)
        .bind(&row.bank_transaction_id)
        .bind(&row.end_to_end_id)
        .bind(row.running_balance_minor)
        .bind(&at)
        .bind(&at)
        .execute(&mut *self.conn)
        .await
        .map_err(|e| statement_error(BACKEND, OP, e))?;
        Ok(())
    }
}

pub(super) fn entry_from_row(row: &SqliteRow) -> Result<StoredEntry, StoreError> {
    const T: &str = ENTRIES_TABLE;
    let booking_date: String = codec::column(row, T, "booking_date")?;
    let value_date: String = codec::column(row, T, "value_date")?;
    let ingested_at: String = codec::column(row, T, "ingested_at")?;
    let updated_at: String = codec::column(row, T, "updated_at")?;
    EntryColumns {
        id: codec::column(row, T, "id")?,
        account_id: codec::column(row, T, "account_id")?,
        seq: codec::column(row, T, "seq")?,
        change_seq: codec::column(row, T, "change_seq")?,
        direction: codec::column(row, T, "direction")?,
        amount_minor: codec::column(row, T, "amount_minor")?,
        currency: codec::column(row, T, "currency")?,
        booking_date: statements::date_from_text(&booking_date, T, "booking_date")?,
        value_date: statements::date_from_text(&value_date, T, "value_date")?,
        status: codec::column(row, T, "status")?,
        counterparty_name: codec::column(row, T, "counterparty_name")?,
        counterparty_account: codec::column(row, T, "counterparty_account")?,
        counterparty_bank: codec::column(row, T, "counterparty_bank")?,
        remittance: codec::column(row, T, "remittance")?,
        bank_transaction_id: codec::column(row, T, "bank_transaction_id")?,
        end_to_end_id: codec::column(row, T, "end_to_end_id")?,
        running_balance_minor: codec::column(row, T, "running_balance_minor")?,
        ingested_at: codec::instant_from_text(&ingested_at, T, "ingested_at")?,
        updated_at: codec::instant_from_text(&updated_at, T, "updated_at")?,
    }
    .into_domain()
}

/// The SELECT that turns a page of entry rows into one JSON array of arrays, each holding
/// the `ENTRY_COLUMNS` values in their order; the row query follows it, then `)`. sqlx
/// copies every column value of every row (one allocation each, under SQLite's memory
/// mutex) and hands each row from its connection thread to the caller separately: a page of
/// 51 rows of 19 columns cost ~1 000 copies and dozens of thread wake-ups. As one value it
/// is one copy and one hand-off. The aggregate's element order is not promised by SQLite,
/// so [`entries_from_json`] puts the page back in order itself.
pub(super) const ENTRY_PAGE_JSON: &str = "SELECT json_group_array(json_array(id, account_id, \
     seq, change_seq, direction, amount_minor, currency, booking_date, value_date, status, \
     counterparty_name, counterparty_account, counterparty_bank, remittance, \
     bank_transaction_id, end_to_end_id, running_balance_minor, ingested_at, updated_at)) FROM (";

/// One element of [`ENTRY_PAGE_JSON`]'s array: the `ENTRY_COLUMNS` values in order. Texts
/// without escapes are borrowed from the JSON; a value of another JSON type than its column
/// (a damaged row) fails the whole page, which the caller then reads row by row.
#[derive(Deserialize)]
struct JsonEntry<'a>(
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    i64,
    i64,
    #[serde(borrow)] Cow<'a, str>,
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
);

/// Decodes [`ENTRY_PAGE_JSON`]'s text with the same checks as [`entry_from_row`] (every
/// value goes through `EntryColumnsOf::into_domain`), sorted by `order` (the page's ORDER
/// BY column: `seq` or `change_seq`, both unique). Any error means "read this page row by
/// row": that path names the damaged column exactly as before.
pub(super) fn entries_from_json(
    text: &str,
    order: fn(&StoredEntry) -> i64,
) -> Result<Vec<StoredEntry>, StoreError> {
    const T: &str = ENTRIES_TABLE;
    let rows: Vec<JsonEntry<'_>> =
        serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
            table: T,
            column: "*",
            reason: format!("a page of entries as JSON does not decode ({err})"),
        })?;
    rows.into_iter()
        .map(|r| {
            EntryColumnsOf {
                id: r.0,
                account_id: r.1,
                seq: r.2,
                change_seq: r.3,
                direction: r.4,
                amount_minor: r.5,
                currency: r.6,
                booking_date: statements::date_from_text(&r.7, T, "booking_date")?,
                value_date: statements::date_from_text(&r.8, T, "value_date")?,
                status: r.9,
                counterparty_name: r.10,
                counterparty_account: r.11,
                counterparty_bank: r.12,
                remittance: r.13,
                bank_transaction_id: r.14,
                end_to_end_id: r.15,
                running_balance_minor: r.16,
                ingested_at: codec::instant_from_text(&r.17, T, "ingested_at")?,
                updated_at: codec::instant_from_text(&r.18, T, "updated_at")?,
            }
            .into_domain()
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|mut entries| {
            // Already in order in practice: a linear check.
            entries.sort_unstable_by_key(order);
            entries
        })
}

pub(super) async fn upsert_break(
    conn: &mut SqliteConnection,
    row: &BreakRow,
) -> Result<(), StoreError> {
    // detected_at is not updated: it says since when the day has been broken.
    sqlx::query(
        "INSERT INTO continuity_breaks \
           (account_id, date, currency, opening_minor, closing_minor, entries_sum_minor, \
            gap_minor, detected_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (account_id, date) DO UPDATE SET \
           currency = excluded.currency, \
           opening_minor = excluded.opening_minor, \
           closing_minor = excluded.closing_minor, \
           entries_sum_minor = excluded.entries_sum_minor, \
           gap_minor = excluded.gap_minor",
    )
    .bind(&row.account_id)
    .bind(statements::date_text(row.date))
    .bind(row.currency)
    .bind(row.opening_minor)
    .bind(row.closing_minor)
    .bind(row.entries_sum_minor)
    .bind(row.gap_minor)
    .bind(codec::instant_text(row.detected_at))
    .execute(&mut *conn)
    .await
    .map_err(|e| statement_error(BACKEND, "recording a continuity break", e))?;
    Ok(())
}

pub(super) async fn clear_break(
    conn: &mut SqliteConnection,
    account_id: &str,
    date: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM continuity_breaks WHERE account_id = ? AND date = ?")
        .bind(account_id)
        .bind(date)
        .execute(&mut *conn)
        .await
        .map_err(|e| statement_error(BACKEND, "clearing a continuity break", e))?;
    Ok(())
}

pub(super) fn break_from_row(row: &SqliteRow) -> Result<ContinuityBreak, StoreError> {
    const T: &str = BREAKS_TABLE;
    let date: String = codec::column(row, T, "date")?;
    let detected_at: String = codec::column(row, T, "detected_at")?;
    BreakColumns {
        account_id: codec::column(row, T, "account_id")?,
        date: statements::date_from_text(&date, T, "date")?,
        currency: codec::column(row, T, "currency")?,
        opening_minor: codec::column(row, T, "opening_minor")?,
        closing_minor: codec::column(row, T, "closing_minor")?,
        entries_sum_minor: codec::column(row, T, "entries_sum_minor")?,
        gap_minor: codec::column(row, T, "gap_minor")?,
        detected_at: codec::instant_from_text(&detected_at, T, "detected_at")?,
    }
    .into_domain()
}

pub(super) async fn upsert_sync(
    conn: &mut SqliteConnection,
    row: &SyncRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO statement_sync (account_id, synced_through, last_success_at, last_error) \
         VALUES (?, ?, ?, ?) \
         ON CONFLICT (account_id) DO UPDATE SET \
           synced_through = excluded.synced_through, \
           last_success_at = excluded.last_success_at, \
           last_error = excluded.last_error",
    )
    .bind(&row.account_id)
    .bind(row.synced_through.map(statements::date_text))
    .bind(row.last_success_at.map(codec::instant_text))
    .bind(&row.last_error)
    .execute(&mut *conn)
    .await
    .map_err(|e| statement_error(BACKEND, "saving the statement sync state", e))?;
    Ok(())
}

pub(super) fn sync_from_row(row: &SqliteRow) -> Result<SyncState, StoreError> {
    const T: &str = SYNC_TABLE;
    let account_id: String = codec::column(row, T, "account_id")?;
    let synced_through: Option<String> = codec::column(row, T, "synced_through")?;
    let last_success_at: Option<String> = codec::column(row, T, "last_success_at")?;
    statements::sync_from_columns(
        &account_id,
        synced_through
            .map(|d| statements::date_from_text(&d, T, "synced_through"))
            .transpose()?,
        last_success_at
            .map(|at| codec::instant_from_text(&at, T, "last_success_at"))
            .transpose()?,
        codec::column(row, T, "last_error")?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_page_selects_the_entry_columns_in_their_order() {
        let inner = format!("json_array({}))", statements::ENTRY_COLUMNS);
        assert!(ENTRY_PAGE_JSON.contains(&inner), "{ENTRY_PAGE_JSON}");
    }
}
