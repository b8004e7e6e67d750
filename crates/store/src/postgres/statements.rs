//! The PostgreSQL statements behind statement storage: [`PgIngest`] (the backend side of
//! the shared ingest algorithm, inside one transaction) and the row readers. Dates are DATE,
//! instants TIMESTAMPTZ.
//!
//! Commit order of the counters: [`PgIngest::lock_counters`] takes a transaction-level
//! advisory lock before it reads them, and the lock is held until the transaction ends.
//! PostgreSQL makes a commit visible before it releases the transaction's locks, so the
//! next ingest, which can only read the counters after taking the lock, sees every value
//! the previous one committed and draws larger ones; no reader can see N + 1 before N.
//! The cost: ingests commit one at a time across the cluster (they are bank-paced, and
//! their audit records serialise on the audit lock anyway).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use domain::BusinessDate;
use sqlx::postgres::PgRow;
use sqlx::PgConnection;

use super::BACKEND;
use crate::codec;
use crate::error::statement_error;
use crate::model::{ContinuityBreak, StoredEntry, SyncState};
use crate::statements::{
    self, Booking, BreakColumns, BreakRow, Counters, EntryColumns, EntryRow, Found, IngestTx,
    SyncRow, BREAKS_TABLE, ENTRIES_TABLE, SYNC_TABLE,
};
use crate::StoreError;

/// The advisory lock key that orders statement counters ("bdstmts" in ASCII). Taken before
/// the audit lock by every transaction that takes both, so the two cannot deadlock.
const STATEMENT_ORDER_LOCK_KEY: i64 = 0x0062_6473_746d_7473;

const OP: &str = "ingesting statement entries";

pub(super) struct PgIngest<'c> {
    pub conn: &'c mut PgConnection,
}

pub(super) fn naive(date: BusinessDate) -> NaiveDate {
    date.naive()
}

#[async_trait]
impl IngestTx for PgIngest<'_> {
    async fn lock_counters(&mut self) -> Result<Counters, StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(STATEMENT_ORDER_LOCK_KEY)
            .execute(&mut *self.conn)
            .await
            .map_err(|e| statement_error(BACKEND, OP, e))?;
        // A new statement, so a new snapshot: it sees what the lock's previous holder
        // committed. FOR UPDATE as well, so the counters stay right even for a writer that
        // forgot the advisory lock (it would then wait here instead of drawing duplicates).
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, value FROM statement_counters FOR UPDATE")
                .fetch_all(&mut *self.conn)
                .await
                .map_err(|e| statement_error(BACKEND, OP, e))?;
        statements::counters_from(rows)
    }

    async fn save_counters(&mut self, counters: Counters) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE statement_counters \
             SET value = CASE name WHEN 'seq' THEN $1 ELSE $2 END",
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
            "SELECT id, status FROM statement_entries WHERE account_id = $1 AND dedupe_key = $2",
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
             WHERE account_id = $1 AND pending_match_key = $2 \
               AND (NOT $3 OR status = 'pending') \
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
               dedupe_key = COALESCE($1, dedupe_key), \
               pending_match_key = COALESCE($2, pending_match_key), \
               booking_date = $3, value_date = $4, running_balance_minor = $5, \
               change_seq = $6, updated_at = $7 \
             WHERE id = $8 AND status = 'pending'",
        )
        .bind(b.new_dedupe_key)
        .bind(b.pending_match_key)
        .bind(naive(b.booking_date))
        .bind(naive(b.value_date))
        .bind(b.running_balance_minor)
        .bind(b.change_seq)
        .bind(b.updated_at)
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
        sqlx::query(
            "INSERT INTO statement_entries \
               (id, account_id, seq, change_seq, dedupe_key, pending_match_key, direction, \
                amount_minor, currency, booking_date, value_date, status, counterparty_name, \
                counterparty_account, counterparty_bank, remittance, bank_transaction_id, \
                end_to_end_id, running_balance_minor, ingested_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, $19, $20, $20)",
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
        .bind(naive(row.booking_date))
        .bind(naive(row.value_date))
        .bind(statements::status_text(row.status))
        .bind(&row.counterparty_name)
        .bind(&row.counterparty_account)
        .bind(&row.counterparty_bank)
        .bind(&row.remittance)
        .bind(&row.bank_transaction_id)
        .bind(&row.end_to_end_id)
        .bind(row.running_balance_minor)
        .bind(at)
        .execute(&mut *self.conn)
        .await
        .map_err(|e| statement_error(BACKEND, OP, e))?;
        Ok(())
    }
}

/// DATE reaches far beyond the years 1–9999 every constructor of `BusinessDate` accepts; a
/// stored date outside them was not written by this crate.
fn date_column(
    row: &PgRow,
    table: &'static str,
    column: &'static str,
) -> Result<BusinessDate, StoreError> {
    let date = BusinessDate::from_naive(codec::column::<_, NaiveDate>(row, table, column)?);
    statements::check_date(column, date).map_err(|err| StoreError::Corrupt {
        table,
        column,
        reason: err.to_string(),
    })?;
    Ok(date)
}

pub(super) fn entry_from_row(row: &PgRow) -> Result<StoredEntry, StoreError> {
    const T: &str = ENTRIES_TABLE;
    EntryColumns {
        id: codec::column(row, T, "id")?,
        account_id: codec::column(row, T, "account_id")?,
        seq: codec::column(row, T, "seq")?,
        change_seq: codec::column(row, T, "change_seq")?,
        direction: codec::column(row, T, "direction")?,
        amount_minor: codec::column(row, T, "amount_minor")?,
        currency: codec::column(row, T, "currency")?,
        booking_date: date_column(row, T, "booking_date")?,
        value_date: date_column(row, T, "value_date")?,
        status: codec::column(row, T, "status")?,
        counterparty_name: codec::column(row, T, "counterparty_name")?,
        counterparty_account: codec::column(row, T, "counterparty_account")?,
        counterparty_bank: codec::column(row, T, "counterparty_bank")?,
        remittance: codec::column(row, T, "remittance")?,
        bank_transaction_id: codec::column(row, T, "bank_transaction_id")?,
        end_to_end_id: codec::column(row, T, "end_to_end_id")?,
        running_balance_minor: codec::column(row, T, "running_balance_minor")?,
        ingested_at: codec::column(row, T, "ingested_at")?,
        updated_at: codec::column(row, T, "updated_at")?,
    }
    .into_domain()
}

pub(super) async fn upsert_break(
    conn: &mut PgConnection,
    row: &BreakRow,
) -> Result<(), StoreError> {
    // detected_at is not updated: it says since when the day has been broken.
    sqlx::query(
        "INSERT INTO continuity_breaks \
           (account_id, date, currency, opening_minor, closing_minor, entries_sum_minor, \
            gap_minor, detected_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (account_id, date) DO UPDATE SET \
           currency = excluded.currency, \
           opening_minor = excluded.opening_minor, \
           closing_minor = excluded.closing_minor, \
           entries_sum_minor = excluded.entries_sum_minor, \
           gap_minor = excluded.gap_minor",
    )
    .bind(&row.account_id)
    .bind(naive(row.date))
    .bind(row.currency)
    .bind(row.opening_minor)
    .bind(row.closing_minor)
    .bind(row.entries_sum_minor)
    .bind(row.gap_minor)
    .bind(row.detected_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| statement_error(BACKEND, "recording a continuity break", e))?;
    Ok(())
}

pub(super) async fn clear_break(
    conn: &mut PgConnection,
    account_id: &str,
    date: NaiveDate,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM continuity_breaks WHERE account_id = $1 AND date = $2")
        .bind(account_id)
        .bind(date)
        .execute(&mut *conn)
        .await
        .map_err(|e| statement_error(BACKEND, "clearing a continuity break", e))?;
    Ok(())
}

pub(super) fn break_from_row(row: &PgRow) -> Result<ContinuityBreak, StoreError> {
    const T: &str = BREAKS_TABLE;
    BreakColumns {
        account_id: codec::column(row, T, "account_id")?,
        date: date_column(row, T, "date")?,
        currency: codec::column(row, T, "currency")?,
        opening_minor: codec::column(row, T, "opening_minor")?,
        closing_minor: codec::column(row, T, "closing_minor")?,
        entries_sum_minor: codec::column(row, T, "entries_sum_minor")?,
        gap_minor: codec::column(row, T, "gap_minor")?,
        detected_at: codec::column(row, T, "detected_at")?,
    }
    .into_domain()
}

pub(super) async fn upsert_sync(conn: &mut PgConnection, row: &SyncRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO statement_sync (account_id, synced_through, last_success_at, last_error) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (account_id) DO UPDATE SET \
           synced_through = excluded.synced_through, \
           last_success_at = excluded.last_success_at, \
           last_error = excluded.last_error",
    )
    .bind(&row.account_id)
    .bind(row.synced_through.map(naive))
    .bind(row.last_success_at)
    .bind(&row.last_error)
    .execute(&mut *conn)
    .await
    .map_err(|e| statement_error(BACKEND, "saving the statement sync state", e))?;
    Ok(())
}

pub(super) fn sync_from_row(row: &PgRow) -> Result<SyncState, StoreError> {
    const T: &str = SYNC_TABLE;
    let account_id: String = codec::column(row, T, "account_id")?;
    let synced_through: Option<NaiveDate> = codec::column(row, T, "synced_through")?;
    let synced_through = synced_through
        .map(|d| {
            let date = BusinessDate::from_naive(d);
            statements::check_date("synced_through", date)
                .map(|()| date)
                .map_err(|err| StoreError::Corrupt {
                    table: T,
                    column: "synced_through",
                    reason: err.to_string(),
                })
        })
        .transpose()?;
    statements::sync_from_columns(
        &account_id,
        synced_through,
        codec::column(row, T, "last_success_at")?,
        codec::column(row, T, "last_error")?,
    )
}
