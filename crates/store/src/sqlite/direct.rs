//! The payment writes run directly on the writer's SQLite connection.
//!
//! sqlx runs each SQLite connection on a thread of its own, and every statement is a round
//! trip to it: a channel send and a wake-up each way. A payment is about ten statements, all
//! on the one writer, one after another, so intake was bounded by those hand-offs (see
//! BENCHMARKS.md, issue 5), not by SQLite or the disk. Here a write job takes the
//! connection's lock once (`SqliteConnection::lock_handle`: one round trip) and runs the
//! payment's statements synchronously on the connection's raw handle through `rusqlite`
//! (the same `libsqlite3-sys`, so the same SQLite library). The transaction, savepoint and
//! commit stay the writer's: nothing about atomicity or group commit changes, only how the
//! statements inside a job are issued.
//!
//! [`DirectPayments`] implements the same [`PaymentTx`] as `payments.rs`'s sqlx version, with
//! the same SQL, so the shared create and transition algorithms run unchanged on either.
//! Errors are mapped to sqlx's `DatabaseError` shape so the store's one error mapping
//! (CHECK violations name their constraint) applies to both.

use std::borrow::Cow;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::SqliteConnection;

use super::BACKEND;
use crate::audit::AppendHead;
use crate::codec::{self, AuditRow};
use crate::error::statement_error;
use crate::events::EventRow;
use crate::payments::{
    Current, HistoryRow, IdempotencyClaim, KeyColumns, PaymentColumns, PaymentRow, PaymentTx,
    StoredPayment, TransitionRows, PAYMENTS_TABLE, PAYMENT_COLUMNS,
};
use crate::statements::{date_from_text, date_text};
use crate::StoreError;

const OP: &str = "writing a payment";

/// What an audit append needs, in one row even when the log is empty: AUTOINCREMENT's
/// counter (the highest id it ever gave) and the newest record, which tells whether the
/// append can be linked as written.
const APPEND_HEAD_SQL: &str = "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), \
            a.id, a.position, a.hash \
     FROM (SELECT 1) \
     LEFT JOIN (SELECT id, position, hash FROM audit_log ORDER BY id DESC LIMIT 1) AS a";
/// An audit record appended, linked with the id it was drawn or unlinked (id and link
/// columns NULL: SQLite draws the id).
const INSERT_AUDIT_DIRECT_SQL: &str =
    "INSERT INTO audit_log (id, at, actor, action, object, request_id, outcome, details, \
                            position, prev_hash, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// A rusqlite error in the shape of a sqlx database error.
#[derive(Debug)]
struct DirectError {
    message: String,
    kind: ErrorKind,
    code: Option<String>,
}

impl fmt::Display for DirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DirectError {}

impl DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.as_deref().map(Cow::Borrowed)
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.kind {
            ErrorKind::CheckViolation => ErrorKind::CheckViolation,
            ErrorKind::UniqueViolation => ErrorKind::UniqueViolation,
            ErrorKind::ForeignKeyViolation => ErrorKind::ForeignKeyViolation,
            ErrorKind::NotNullViolation => ErrorKind::NotNullViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// A rusqlite error as a sqlx database error, so the store's one mapping applies.
pub(super) fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    let (kind, code) = match &e {
        rusqlite::Error::SqliteFailure(f, _) => {
            let kind = match f.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ErrorKind::UniqueViolation,
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
                rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
                _ => ErrorKind::Other,
            };
            (kind, Some(f.extended_code.to_string()))
        }
        _ => (ErrorKind::Other, None),
    };
    let message = match &e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        other => other.to_string(),
    };
    sqlx::Error::Database(Box::new(DirectError {
        message,
        kind,
        code,
    }))
}

fn err(e: rusqlite::Error) -> StoreError {
    statement_error(BACKEND, OP, to_sqlx(e))
}

/// Takes the connection's lock (one round trip to sqlx's thread) for the direct view.
pub(super) async fn lock(
    conn: &mut SqliteConnection,
) -> Result<sqlx::sqlite::LockedSqliteHandle<'_>, sqlx::Error> {
    conn.lock_handle().await
}

/// The payment statements on a direct connection. The writer keeps one for its whole life
/// (its prepared statements stay cached) and uses it only while it holds the connection's
/// lock; it drops it before closing the connection (dropping finalizes the statements and
/// never closes the handle).
pub(super) struct DirectPayments {
    db: rusqlite::Connection,
    /// Audit records are linked as they are appended (the chain is on).
    link_audits: bool,
}

impl DirectPayments {
    /// A direct view of the locked connection.
    #[allow(unsafe_code)]
    pub(super) fn open(
        handle: &mut sqlx::sqlite::LockedSqliteHandle<'_>,
        link_audits: bool,
    ) -> Result<DirectPayments, rusqlite::Error> {
        let raw = handle.as_raw_handle();
        // SAFETY: `raw` is the open connection sqlx owns. The view is used only while the
        // writer holds the connection's lock (`handle` here, and later locks of the same
        // connection), so sqlx's thread never runs a statement at the same time, and the
        // writer drops the view before it closes the connection. `from_handle` never closes
        // the handle.
        let db = unsafe { rusqlite::Connection::from_handle(raw.as_ptr()) }?;
        db.set_prepared_statement_cache_capacity(64);
        Ok(DirectPayments { db, link_audits })
    }

    /// The raw connection, for the audit chainer (`chain.rs`).
    pub(super) fn connection(&self) -> &rusqlite::Connection {
        &self.db
    }

    /// Runs a fixed statement without parameters (savepoints), prepared once.
    pub(super) fn execute_fixed(&mut self, sql: &str) -> Result<(), rusqlite::Error> {
        self.db.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// Appends one audit record; returns its id. With the chain on, the record is linked
    /// as it is written when every record before it is (`AppendHead::after`), so the
    /// chainer at the end of the batch has nothing left to rewrite; otherwise it goes in
    /// unlinked and the chainer links it.
    pub(super) fn append_audit(&mut self, a: &AuditRow) -> Result<i64, StoreError> {
        let fail = |e| statement_error(BACKEND, "appending an audit record", to_sqlx(e));
        let head = if self.link_audits {
            self.append_head().map_err(fail)?
        } else {
            None
        };
        // Unlinked: the id NULL (SQLite draws it) and the link columns NULL.
        let (id, link) = match head {
            Some((id, mut head)) => (Some(id), Some(head.link(id, a))),
            None => (None, None),
        };
        self.db
            .prepare_cached(INSERT_AUDIT_DIRECT_SQL)
            .and_then(|mut s| {
                s.insert(params![
                    id,
                    codec::instant_text(a.at),
                    a.actor,
                    a.action,
                    a.object,
                    a.request_id,
                    a.outcome,
                    a.details,
                    link.map(|l| l.position),
                    link.as_ref().map(|l| &l.prev_hash[..]),
                    link.as_ref().map(|l| &l.hash[..]),
                ])
            })
            .map_err(fail)
    }

    /// The id the next audit record gets and the head it links after, or `None` when it
    /// must go in unlinked. AUTOINCREMENT's counter (`sqlite_sequence`) is at least every
    /// id ever given, so the next id is one past it, as SQLite would draw it.
    fn append_head(&self) -> Result<Option<(i64, AppendHead)>, rusqlite::Error> {
        let mut stmt = self.db.prepare_cached(APPEND_HEAD_SQL)?;
        let mut rows = stmt.query([])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let counter: Option<i64> = r.get(0)?;
        let newest: Option<i64> = r.get(1)?;
        let head = match newest {
            None => AppendHead::after(None),
            Some(_) => {
                let position: Option<i64> = r.get(2)?;
                AppendHead::after(Some((position, r.get_ref(3)?.as_blob_or_null()?)))
            }
        };
        let next_id = counter.unwrap_or(0).max(newest.unwrap_or(0)) + 1;
        Ok(head.map(|head| (next_id, head)))
    }

    /// Stores a checked bank exchange, its references and its audit record (which names
    /// the exchange's id); returns the id. The statements of `exchanges.rs`.
    pub(super) fn record_exchange(
        &mut self,
        new: &crate::exchanges::NewBankExchange,
        audit: crate::NewAuditRecord,
    ) -> Result<i64, StoreError> {
        let fail =
            |e: rusqlite::Error| statement_error(BACKEND, super::exchanges::RECORD_OP, to_sqlx(e));
        let id = self
            .db
            .prepare_cached(super::exchanges::INSERT_EXCHANGE_SQL)
            .and_then(|mut s| {
                s.insert(params![
                    codec::instant_text(new.at),
                    new.bank_id,
                    new.connection_id,
                    new.function,
                    new.references.first(),
                    new.outcome,
                    new.bank_code,
                    i64::try_from(new.elapsed_ms).unwrap_or(i64::MAX),
                    new.request_masked,
                    new.request_truncated,
                    new.response_masked,
                    new.response_truncated,
                ])
            })
            .map_err(fail)?;
        for reference in &new.references {
            self.db
                .prepare_cached(super::exchanges::INSERT_REFERENCE_SQL)
                .and_then(|mut s| s.execute(params![reference, id]))
                .map_err(fail)?;
        }
        let audit = crate::exchanges::audit_row(audit, id)?;
        self.append_audit(&audit)?;
        Ok(id)
    }
}

/// The columns of [`PAYMENT_COLUMNS`] in their order. [`payment_from_row`] reads a row by
/// position: rusqlite finds a column by name by scanning the statement's column names,
/// which for 34 columns was a few percent of the writer's time (BENCHMARKS.md). A test
/// pins this list to `PAYMENT_COLUMNS`.
const PAYMENT_COLUMN_ORDER: [&str; 34] = [
    "id",
    "client_id",
    "debtor_account_id",
    "amount_minor",
    "currency",
    "creditor_name",
    "creditor_account",
    "creditor_bank_code",
    "creditor_bic",
    "creditor_bank_name",
    "creditor_type",
    "remittance",
    "purpose",
    "end_to_end_id",
    "requested_execution_date",
    "urgency",
    "business_reference",
    "status",
    "ever_sent",
    "first_sent_at",
    "last_sent_at",
    "send_attempts",
    "bank_payment_id",
    "last_bank_code",
    "last_bank_message",
    "next_attempt_at",
    "lease_owner",
    "lease_expires_at",
    "fencing_token",
    "created_at",
    "updated_at",
    "version",
    "on_behalf_of",
    "approvals_required",
];

/// The position of `name` in [`PAYMENT_COLUMN_ORDER`]; evaluated at compile time (an
/// unknown name does not compile).
const fn at(name: &str) -> usize {
    let name = name.as_bytes();
    let mut i = 0;
    while i < PAYMENT_COLUMN_ORDER.len() {
        let candidate = PAYMENT_COLUMN_ORDER[i].as_bytes();
        if candidate.len() == name.len() {
            let mut j = 0;
            while j < name.len() && candidate[j] == name[j] {
                j += 1;
            }
            if j == name.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a column of PAYMENT_COLUMNS")
}

/// Reads the payment column `$name` by its position, as the type the caller expects.
macro_rules! column {
    ($row:expr, $name:literal) => {
        $row.get(const { at($name) }).map_err(err)?
    };
}

fn instant(text: &str, column: &'static str) -> Result<DateTime<Utc>, StoreError> {
    codec::instant_from_text(text, PAYMENTS_TABLE, column)
}

fn maybe_instant(
    text: Option<String>,
    column: &'static str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(|t| instant(&t, column)).transpose()
}

fn payment_from_row(row: &Row<'_>) -> Result<StoredPayment, StoreError> {
    let date: String = column!(row, "requested_execution_date");
    let ever_sent: i64 = column!(row, "ever_sent");
    let created_at: String = column!(row, "created_at");
    let updated_at: String = column!(row, "updated_at");
    PaymentColumns {
        id: column!(row, "id"),
        client_id: column!(row, "client_id"),
        debtor_account_id: column!(row, "debtor_account_id"),
        amount_minor: column!(row, "amount_minor"),
        currency: column!(row, "currency"),
        creditor_name: column!(row, "creditor_name"),
        creditor_account: column!(row, "creditor_account"),
        creditor_bank_code: column!(row, "creditor_bank_code"),
        creditor_bic: column!(row, "creditor_bic"),
        creditor_bank_name: column!(row, "creditor_bank_name"),
        creditor_type: column!(row, "creditor_type"),
        remittance: column!(row, "remittance"),
        purpose: column!(row, "purpose"),
        end_to_end_id: column!(row, "end_to_end_id"),
        requested_execution_date: date_from_text(
            &date,
            PAYMENTS_TABLE,
            "requested_execution_date",
        )?,
        urgency: column!(row, "urgency"),
        business_reference: column!(row, "business_reference"),
        status: column!(row, "status"),
        ever_sent: ever_sent != 0,
        first_sent_at: maybe_instant(column!(row, "first_sent_at"), "first_sent_at")?,
        last_sent_at: maybe_instant(column!(row, "last_sent_at"), "last_sent_at")?,
        send_attempts: column!(row, "send_attempts"),
        bank_payment_id: column!(row, "bank_payment_id"),
        last_bank_code: column!(row, "last_bank_code"),
        last_bank_message: column!(row, "last_bank_message"),
        next_attempt_at: maybe_instant(column!(row, "next_attempt_at"), "next_attempt_at")?,
        lease_owner: column!(row, "lease_owner"),
        lease_expires_at: maybe_instant(column!(row, "lease_expires_at"), "lease_expires_at")?,
        fencing_token: column!(row, "fencing_token"),
        created_at: instant(&created_at, "created_at")?,
        updated_at: instant(&updated_at, "updated_at")?,
        version: column!(row, "version"),
        on_behalf_of: column!(row, "on_behalf_of"),
        approvals_required: column!(row, "approvals_required"),
    }
    .into_domain()
}

#[async_trait]
impl PaymentTx for DirectPayments {
    fn key_goes_first(&self) -> bool {
        false
    }

    async fn insert_completed_key(
        &mut self,
        claim: &IdempotencyClaim,
        at: DateTime<Utc>,
        payment_id: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .db
            .prepare_cached(super::payments::INSERT_KEY_SQL)
            .and_then(|mut s| {
                s.execute(params![
                    claim.client_id,
                    claim.key,
                    claim.request_hash,
                    i32::from(claim.response_status),
                    claim.response_body,
                    payment_id,
                    codec::instant_text(at),
                    codec::instant_text(claim.expires_at),
                ])
            })
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn find_key(
        &mut self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<KeyColumns>, StoreError> {
        self.db
            .prepare_cached(super::payments::FIND_KEY_SQL)
            .and_then(|mut s| {
                s.query_row(params![client_id, key], |r| {
                    Ok(KeyColumns {
                        request_hash: r.get(0)?,
                        state: r.get(1)?,
                        response_status: r.get(2)?,
                        response_body: r.get(3)?,
                        payment_id: r.get(4)?,
                    })
                })
                .optional()
            })
            .map_err(err)
    }

    async fn delete_key(&mut self, client_id: &str, key: &str) -> Result<(), StoreError> {
        self.db
            .prepare_cached(super::payments::DELETE_KEY_SQL)
            .and_then(|mut s| s.execute(params![client_id, key]))
            .map_err(err)?;
        Ok(())
    }

    async fn delete_payment(&mut self, id: &str) -> Result<(), StoreError> {
        self.db
            .prepare_cached(super::payments::DELETE_PAYMENT_SQL)
            .and_then(|mut s| s.execute(params![id]))
            .map_err(err)?;
        Ok(())
    }

    async fn insert_payment(
        &mut self,
        p: &PaymentRow,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .db
            .prepare_cached(super::payments::INSERT_PAYMENT_SQL)
            .and_then(|mut s| {
                s.execute(params![
                    p.id,
                    p.client_id,
                    p.debtor_account_id,
                    p.amount_minor,
                    p.currency,
                    p.creditor_name,
                    p.creditor_account,
                    p.creditor_bank_code,
                    p.creditor_bic,
                    p.creditor_bank_name,
                    p.creditor_type,
                    p.remittance,
                    p.purpose,
                    p.end_to_end_id,
                    date_text(p.requested_execution_date),
                    p.urgency,
                    p.business_reference,
                    p.status,
                    p.next_attempt_at.map(codec::instant_text),
                    codec::instant_text(at),
                    p.on_behalf_of,
                    p.approvals_required,
                ])
            })
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn find_end_to_end(
        &mut self,
        debtor_account_id: &str,
        end_to_end_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.db
            .prepare_cached(super::payments::FIND_END_TO_END_SQL)
            .and_then(|mut s| {
                s.query_row(params![debtor_account_id, end_to_end_id], |r| r.get(0))
                    .optional()
            })
            .map_err(err)
    }

    async fn update_payment(&mut self, t: &TransitionRows) -> Result<bool, StoreError> {
        let c = &t.change;
        let n = self
            .db
            .prepare_cached(super::payments::UPDATE_PAYMENT_SQL)
            .and_then(|mut s| {
                s.execute(params![
                    t.id,
                    t.guard.from_status,
                    c.to_status,
                    t.guard.fencing_token,
                    c.bank_code,
                    c.bank_message,
                    c.bank_payment_id,
                    c.mark_sent,
                    codec::instant_text(t.audit.at),
                    c.next_attempt_at.map(codec::instant_text),
                    c.release_lease,
                ])
            })
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn current(&mut self, id: &str) -> Result<Option<Current>, StoreError> {
        self.db
            .prepare_cached(super::payments::CURRENT_SQL)
            .and_then(|mut s| {
                s.query_row(params![id], |r| {
                    Ok(Current {
                        status: r.get(0)?,
                        fencing_token: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(err)
    }

    async fn next_history_seq(&mut self, id: &str) -> Result<i64, StoreError> {
        self.db
            .prepare_cached(super::payments::NEXT_HISTORY_SEQ_SQL)
            .and_then(|mut s| s.query_row(params![id], |r| r.get(0)))
            .map_err(err)
    }

    async fn insert_history(&mut self, h: &HistoryRow) -> Result<(), StoreError> {
        self.db
            .prepare_cached(super::payments::INSERT_HISTORY_SQL)
            .and_then(|mut s| {
                s.execute(params![
                    h.payment_id,
                    h.seq,
                    codec::instant_text(h.at),
                    h.from_status,
                    h.to_status,
                    h.cause,
                    h.bank_code,
                    h.bank_message,
                    h.actor,
                    h.request_id,
                ])
            })
            .map_err(err)?;
        Ok(())
    }

    async fn fetch(&mut self, id: &str) -> Result<Option<StoredPayment>, StoreError> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql =
            SQL.get_or_init(|| format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ?1"));
        let mut stmt = self.db.prepare_cached(sql).map_err(err)?;
        let mut rows = stmt.query(params![id]).map_err(err)?;
        match rows.next().map_err(err)? {
            Some(row) => payment_from_row(row).map(Some),
            None => Ok(None),
        }
    }

    async fn insert_event(&mut self, row: &EventRow) -> Result<(), StoreError> {
        self.db
            .prepare_cached(super::events::INSERT_EVENT_SQL)
            .and_then(|mut s| {
                s.execute(params![
                    row.id,
                    row.event_type.as_str(),
                    row.event_type.version(),
                    row.event_type.object_type(),
                    row.object_id,
                    row.object_seq,
                    row.account_id,
                    codec::instant_text(row.occurred_at),
                    row.data,
                ])
            })
            .map_err(err)?;
        Ok(())
    }

    async fn insert_audit(&mut self, a: &AuditRow) -> Result<(), StoreError> {
        self.append_audit(a).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payments_are_read_by_the_positions_of_payment_columns() {
        let listed: Vec<&str> = PAYMENT_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(listed, PAYMENT_COLUMN_ORDER);
        assert_eq!(at("id"), 0);
        assert_eq!(at("approvals_required"), PAYMENT_COLUMN_ORDER.len() - 1);
    }
}
