//! [`StoreError`], the one error type of the store boundary, and the mapping from `sqlx`
//! errors into it.
//!
//! Messages say what failed and never contain bound values: those may be account numbers
//! or audit details. A database's own message is kept as the `source` (sqlx's text holds
//! the server's primary message, not the row), so the chain is printed once, by the caller.

use std::path::PathBuf;
use std::sync::Arc;

use crate::Backend;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported store URL scheme {scheme:?}: expected postgres://, postgresql://, sqlite:// or a file path")]
    UnsupportedUrl { scheme: String },

    #[error("invalid store options: {reason}")]
    InvalidOptions { reason: String },

    #[error("cannot create the directory {path} for the SQLite database")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot open the {backend} database")]
    Connect {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },

    /// The database accepted a setting but reports another value (e.g. a file system
    /// without WAL support): running on would break durability promises.
    #[error("{backend} setting {name} is {actual:?}, expected {expected:?}")]
    Setting {
        backend: Backend,
        name: &'static str,
        expected: String,
        actual: String,
    },

    #[error("migrating the {backend} database failed")]
    Migrate {
        backend: Backend,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// A statement failed; its transaction (or SQLite savepoint) was rolled back, so nothing
    /// of this write was stored.
    #[error("{backend} error while {op}; nothing of this write was stored")]
    Database {
        backend: Backend,
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// The SQLite writer could not begin, keep or commit the transaction that carried this
    /// write along with others; the transaction was rolled back, nothing in it was stored.
    #[error("SQLite write batch failed while {op}; nothing in the batch was stored")]
    BatchFailed {
        op: &'static str,
        #[source]
        source: Arc<sqlx::Error>,
    },

    /// The connection broke during `COMMIT`: the transaction may or may not have been
    /// committed. Find out by reading before retrying.
    #[error("{backend} connection failed during commit; the write may or may not be stored")]
    OutcomeUnknown {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },

    /// Input the store refuses: a field longer than its limit, an empty field, a value
    /// outside the range a column can carry. Nothing was written.
    #[error("the store refused the input: {reason}")]
    Invalid { reason: String },

    /// A stored row cannot be mapped back to domain types (an unknown currency code, an
    /// unparsable instant…): the database was changed outside this crate or is damaged.
    #[error("stored {table}.{column} cannot be read back: {reason}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        reason: String,
    },

    #[error("the database has no {what}: run the migrations first")]
    Uninitialised { what: &'static str },

    #[error("{what} exceeds the limit of {limit} rows")]
    TooManyRows { what: &'static str, limit: usize },

    /// A compare-and-set write found the row changed since the caller read it (another
    /// status, or a newer fencing token: the caller's lease was taken over). Nothing was
    /// written; the caller must re-read, never retry blindly.
    #[error("payment {payment_id} changed underneath: it is now {status} with fencing token {fencing_token}; nothing was written")]
    Conflict {
        payment_id: String,
        status: String,
        fencing_token: i64,
    },

    #[error("no {what} {id}")]
    NotFound { what: &'static str, id: String },

    /// A concurrent change made this write impossible to decide now (e.g. a row purged while
    /// in use). Nothing was written; retrying is safe.
    #[error("concurrent change: {what}; nothing was written, retry")]
    Contention { what: &'static str },

    #[error("the store is closed; nothing was written")]
    Closed,

    /// The writer task ended (it panicked or the runtime shut down) after taking the write:
    /// the outcome is unknown.
    #[error("the SQLite writer stopped before answering; the write may or may not be stored")]
    WriterLost,

    /// A write job panicked (a bug); its savepoint was rolled back, the others in its batch
    /// were not affected.
    #[error("a write job panicked; its changes were rolled back")]
    JobPanicked,

    /// A test failpoint (`store::failpoints`) failed the write just before its commit; the
    /// whole write was rolled back.
    #[error("failpoint {point} failed the write before its commit; nothing was written")]
    Injected { point: &'static str },
}

/// Maps a statement's error. A CHECK violation is the schema refusing input (a limit), so it
/// becomes [`StoreError::Invalid`] naming the constraint; a closed pool means the store was
/// closed.
pub(crate) fn statement_error(backend: Backend, op: &'static str, err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.kind() == sqlx::error::ErrorKind::CheckViolation {
            // PostgreSQL names the constraint; SQLite puts it after the colon of
            // "CHECK constraint failed: name".
            let constraint = db
                .constraint()
                .map(str::to_owned)
                .or_else(|| {
                    db.message()
                        .rsplit_once(": ")
                        .map(|(_, name)| name.trim().to_owned())
                })
                .unwrap_or_else(|| "unnamed".to_owned());
            return StoreError::Invalid {
                reason: format!("{op}: a value breaks the limit {constraint}"),
            };
        }
    }
    if matches!(err, sqlx::Error::PoolClosed) {
        return StoreError::Closed;
    }
    StoreError::Database {
        backend,
        op,
        source: err,
    }
}

impl StoreError {
    /// A copy for each job of a failed SQLite batch: every caller gets its own error value.
    pub(crate) fn batch_failed(op: &'static str, source: &Arc<sqlx::Error>) -> StoreError {
        StoreError::BatchFailed {
            op,
            source: Arc::clone(source),
        }
    }
}
