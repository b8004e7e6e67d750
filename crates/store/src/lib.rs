//! Persistence for bankdirect: the only crate that knows SQL.
//!
//! Two backends sit behind one object-safe [`Store`] trait:
//!
//! - [`SqliteStore`] (`sqlite.rs`, writer in `sqlite/writer.rs`): the embedded default, one
//!   file in WAL mode with `synchronous=FULL`. All writes go through ONE writer task that owns
//!   ONE connection and commits queued writes together (group commit: many callers share one
//!   fsync); reads use a separate pool of read-only connections.
//! - [`PgStore`] (`postgres.rs`): PostgreSQL for several gateway instances sharing one
//!   database; each write is one transaction on a pooled connection.
//!
//! [`open`] picks the backend from a URL. The other modules:
//!
//! - `model.rs`: the records that cross the boundary ([`NewAuditRecord`], [`AuditRecord`],
//!   [`AuditQuery`], [`BalanceSnapshot`], [`IngestEntry`], [`StoredEntry`], [`EntryQuery`],
//!   [`ContinuityBreak`], [`SyncState`]…), [`StoreOptions`] and the size limits.
//! - `statements.rs`: what both backends share for statements: the checks the schema cannot
//!   express, the row mapping, and the ingest algorithm (dedupe, pending → booked) written
//!   once against a small trait each backend implements with its SQL
//!   (`sqlite/statements.rs`, `postgres/statements.rs`).
//! - `codec.rs`: the mapping between domain values and column values that both backends share
//!   (instants truncated to microseconds, JSON details, money as minor units + currency code).
//! - `error.rs`: [`StoreError`].
//!
//! Schemas live in `migrations/sqlite` and `migrations/postgres`, one folder per database,
//! embedded at build time. Limits that the schema enforces (field lengths) are also exported
//! here as constants so callers can check early; the suite tests both agree.
//!
//! Invariants: money is an integer count of minor units beside its currency code, never a
//! float; instants are UTC with microsecond precision on both backends; audit ids and the
//! statement counters (`seq`, `change_seq`) ascend in commit order; an entry's `seq` never
//! changes; a write reported as done has been committed (SQLite: after the batch's
//! `COMMIT` returned).

mod codec;
mod error;
mod model;
mod postgres;
mod sqlite;
mod statements;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

pub use error::StoreError;
pub use model::{
    AuditQuery, AuditRecord, BalanceSnapshot, ContinuityBreak, EntryQuery, IngestEntry,
    IngestReport, NewAuditRecord, StoreOptions, StoredEntry, SyncState, ACCOUNT_ID_MAX_CHARS,
    AUDIT_DETAILS_MAX_BYTES, AUDIT_QUERY_DEFAULT_LIMIT, AUDIT_QUERY_MAX_LIMIT,
    AUDIT_TEXT_MAX_CHARS, BALANCES_MAX_ROWS, BOOKED_ENTRIES_PER_DAY_MAX, CHANGE_FEED_MAX_ACCOUNTS,
    CONTINUITY_BREAKS_MAX_ROWS, ENTRY_KEY_MAX_CHARS, ENTRY_QUERY_DEFAULT_LIMIT,
    ENTRY_QUERY_MAX_LIMIT, INGEST_ENTRIES_MAX, SNAPSHOTS_PER_SAVE_MAX, SYNC_ERROR_MAX_CHARS,
};
pub use postgres::PgStore;
pub use sqlite::{SqliteStore, WriterPragmas, WriterStats};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// The persistence boundary. Object-safe so the gateway holds an `Arc<dyn Store>` and does
/// not care which database is behind it.
///
/// Every write either commits completely or not at all. A returned `Ok` means committed; an
/// error says whether nothing was written or the outcome is unknown
/// ([`StoreError::OutcomeUnknown`], [`StoreError::WriterLost`]). Dropping a write's future
/// after it was queued does not cancel it.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    fn backend(&self) -> Backend;

    /// Applies the pending migrations of this backend's folder. Idempotent. The first run
    /// also creates the install id.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// A trivial read on the read side: proves a read connection can be had.
    async fn ping(&self) -> Result<(), StoreError>;

    /// A random identifier (16 lowercase hex digits) created by the first migration and
    /// stable afterwards; business references are built from it so they stay unique across
    /// installs.
    async fn install_id(&self) -> Result<String, StoreError>;

    /// Appends one audit record and returns its id. `details` is written exactly as given:
    /// masking secrets and account numbers is the caller's duty.
    async fn append_audit(&self, rec: NewAuditRecord) -> Result<i64, StoreError>;

    /// Audit records matching every given filter, ascending by id, at most
    /// `min(q.limit, AUDIT_QUERY_MAX_LIMIT)` of them.
    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// In ONE transaction: upserts the latest snapshot per (account, currency) and appends
    /// `audit`; both or neither. A snapshot older than the stored one (by `as_of`, then
    /// `fetched_at`) leaves the stored one in place, so a late, out-of-order refresh cannot
    /// move a balance backwards; the audit record is written either way.
    async fn save_balances(
        &self,
        snapshots: &[BalanceSnapshot],
        audit: NewAuditRecord,
    ) -> Result<(), StoreError>;

    /// Every stored snapshot, ordered by account id then currency code (byte order).
    async fn latest_balances(&self) -> Result<Vec<BalanceSnapshot>, StoreError>;

    /// The stored snapshots of one account, ordered by currency code.
    async fn latest_balances_for(
        &self,
        account_id: &domain::AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError>;

    /// In ONE transaction with `audit`: offers `entries` (all of `account_id`) for storage,
    /// in order. For each: if the account already has its `dedupe_key`, it is unchanged —
    /// unless the stored one is pending and this one booked, which books the stored entry
    /// (status, booking and value dates, running balance; id, seq and dedupe key kept).
    /// Else a booked entry whose `pending_match_key` matches a stored PENDING entry of the
    /// account books that entry (the oldest, if several), which keeps its id and `seq` and
    /// takes this dedupe key; a pending entry whose `pending_match_key` any stored entry of
    /// the account has is unchanged. Else it is inserted with its own id. Inserts draw a new
    /// `seq`; inserts and bookings draw a new `change_seq`; both ascend in commit order.
    /// `ingested_at`/`updated_at` are `audit.at`. Nothing of the call is stored if any
    /// entry is refused.
    async fn ingest_entries(
        &self,
        account_id: &domain::AccountId,
        entries: Vec<IngestEntry>,
        audit: NewAuditRecord,
    ) -> Result<IngestReport, StoreError>;

    /// Entries of `q.account_id` with `seq > q.after_seq` matching the filters, ascending by
    /// `seq`, at most `min(q.limit, ENTRY_QUERY_MAX_LIMIT)` (0: the default).
    async fn list_entries(&self, q: &EntryQuery) -> Result<Vec<StoredEntry>, StoreError>;

    /// The change feed: entries of any of `account_ids` with `change_seq >
    /// after_change_seq`, ascending by `change_seq`, at most `min(limit,
    /// ENTRY_QUERY_MAX_LIMIT)` (0: the default). A reader that passes the last `change_seq`
    /// it saw misses nothing: values appear in commit order. At most
    /// [`CHANGE_FEED_MAX_ACCOUNTS`] accounts; none gives an empty feed.
    async fn entries_changed_since(
        &self,
        account_ids: &[domain::AccountId],
        after_change_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// Every booked entry of the account with this booking date, ascending by `seq`, for the
    /// continuity check; more than [`BOOKED_ENTRIES_PER_DAY_MAX`] is an error.
    async fn booked_entries_on(
        &self,
        account_id: &domain::AccountId,
        date: domain::BusinessDate,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// Stores the continuity result of one account and day: `Some` records (or updates) the
    /// break, keeping the `detected_at` of a break already stored for the day; `None` says
    /// the day is consistent now and clears a stored break. The break must be for this
    /// account and day, in one currency, with a non-zero gap that adds up.
    async fn record_continuity(
        &self,
        account_id: &domain::AccountId,
        date: domain::BusinessDate,
        result: Option<ContinuityBreak>,
    ) -> Result<(), StoreError>;

    /// The current (unresolved) breaks of the account with dates in `from..=to` (either
    /// bound optional), ascending by date; more than [`CONTINUITY_BREAKS_MAX_ROWS`] is an
    /// error.
    async fn continuity_breaks(
        &self,
        account_id: &domain::AccountId,
        from: Option<domain::BusinessDate>,
        to: Option<domain::BusinessDate>,
    ) -> Result<Vec<ContinuityBreak>, StoreError>;

    /// The statement sync state of the account, if one was ever saved.
    async fn sync_state(
        &self,
        account_id: &domain::AccountId,
    ) -> Result<Option<SyncState>, StoreError>;

    /// Replaces the account's sync state with `state`.
    async fn save_sync_state(&self, state: &SyncState) -> Result<(), StoreError>;

    /// Finishes the queued writes, then closes every connection. Idempotent; later writes
    /// fail with [`StoreError::Closed`].
    async fn close(&self);
}

/// Opens the store named by `url`:
///
/// - `postgres://…` or `postgresql://…`: [`PgStore`];
/// - `sqlite://<path>`, `sqlite:<path>` or a plain file path: [`SqliteStore`], creating the
///   file and its parent directory. Connection settings come from `opts`, so a `?query` in a
///   SQLite URL is refused rather than half-honoured; `:memory:` is refused because the
///   writer and the read pool must share one database.
///
/// Runs the migrations first when `opts.migrate` is true.
pub async fn open(url: &str, opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    match Target::parse(url)? {
        Target::Postgres => Ok(Arc::new(PgStore::open(url, opts).await?)),
        Target::Sqlite(path) => Ok(Arc::new(SqliteStore::open(&path, opts).await?)),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Target {
    Postgres,
    Sqlite(PathBuf),
}

impl Target {
    fn parse(url: &str) -> Result<Target, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres);
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreError::UnsupportedUrl {
                scheme: scheme.chars().take(32).collect(),
            });
        } else {
            url
        };
        if path.is_empty() {
            return Err(StoreError::Invalid {
                reason: "the SQLite URL names no file".to_owned(),
            });
        }
        if path.contains('?') {
            return Err(StoreError::Invalid {
                reason:
                    "a SQLite URL takes no ?options: connection settings come from StoreOptions"
                        .to_owned(),
            });
        }
        if path == ":memory:" {
            return Err(StoreError::Invalid {
                reason: "an in-memory SQLite database cannot be shared by the writer and the read pool; give a file path"
                    .to_owned(),
            });
        }
        Ok(Target::Sqlite(PathBuf::from(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(
            Target::parse("postgres://u@h/db").unwrap(),
            Target::Postgres
        );
        assert_eq!(
            Target::parse("postgresql://h/db").unwrap(),
            Target::Postgres
        );
        assert_eq!(
            Target::parse("sqlite:///var/lib/bd/bankdirect.db").unwrap(),
            Target::Sqlite(PathBuf::from("/var/lib/bd/bankdirect.db"))
        );
        assert_eq!(
            Target::parse("sqlite://data/bankdirect.db").unwrap(),
            Target::Sqlite(PathBuf::from("data/bankdirect.db"))
        );
        assert_eq!(
            Target::parse("sqlite:bankdirect.db").unwrap(),
            Target::Sqlite(PathBuf::from("bankdirect.db"))
        );
        assert_eq!(
            Target::parse("/srv/bankdirect.db").unwrap(),
            Target::Sqlite(PathBuf::from("/srv/bankdirect.db"))
        );
    }

    #[test]
    fn unusable_urls_are_refused() {
        assert!(matches!(
            Target::parse("mysql://h/db"),
            Err(StoreError::UnsupportedUrl { scheme }) if scheme == "mysql"
        ));
        assert!(matches!(
            Target::parse("sqlite://"),
            Err(StoreError::Invalid { .. })
        ));
        assert!(matches!(Target::parse(""), Err(StoreError::Invalid { .. })));
        assert!(matches!(
            Target::parse("sqlite://x.db?mode=ro"),
            Err(StoreError::Invalid { .. })
        ));
        assert!(matches!(
            Target::parse("sqlite::memory:"),
            Err(StoreError::Invalid { .. })
        ));
    }
}
