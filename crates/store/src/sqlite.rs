//! [`SqliteStore`]: the embedded backend, one database file in WAL mode.
//!
//! Writes go through the single writer in `sqlite/writer.rs` (one connection, group commit);
//! reads use a pool of read-only connections, which WAL lets run beside the writer. The
//! queries of each operation follow the `Store` impl, the settings of both connection kinds
//! are at the top. Instants are TEXT in the fixed form of `codec.rs`; money is INTEGER minor
//! units beside a TEXT currency code.

mod batches;
mod chain;
mod checkpointer;
mod direct;
mod events;
mod exchanges;
mod payments;
mod resolutions;
mod statements;
mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};

use crate::audit;
use crate::codec::{self, AuditRow, SnapshotRow, StoredSnapshot};
use crate::error::statement_error;
use crate::model::{
    effective_feed_limit, BALANCES_MAX_ROWS, BOOKED_ENTRIES_PER_DAY_MAX, CHANGE_FEED_MAX_ACCOUNTS,
    CONTINUITY_BREAKS_MAX_ROWS, SNAPSHOTS_PER_SAVE_MAX,
};
use crate::payments::{self as pay, HISTORY_COLUMNS, PAYMENT_COLUMNS};
use crate::statements::{self as shared, BreakRow, SyncRow, ENTRY_COLUMNS};
use crate::{
    Actor, ClaimedPayment, CreateOutcome, IdempotencyClaim, IdempotencyRecord, NewPayment,
    PaymentChange, PaymentHistoryEntry, PaymentQuery, StoredPayment, TransitionGuard,
    PAYMENT_HISTORY_MAX_ROWS,
};
use crate::{
    AuditQuery, AuditRecord, Backend, BalanceSnapshot, ContinuityBreak, EntryQuery, IngestEntry,
    IngestReport, NewAuditRecord, Store, StoreError, StoreOptions, StoredEntry, SyncState,
};

pub use writer::WriterStats;
use writer::{WorkFuture, Writer};

const BACKEND: Backend = Backend::Sqlite;

/// Prepared statements kept per connection (sqlx's cache); our statement set is small.
const STATEMENT_CACHE_CAPACITY: usize = 64;
/// Read connections idle this long are closed.
const READ_IDLE_TIMEOUT_S: u64 = 600;
/// Read connections are replaced after this long, so a long-lived process does not keep
/// one connection's caches for ever.
const READ_MAX_LIFETIME_S: u64 = 3_600;
/// Opening the migration connection involves no waiting on others (busy_timeout covers
/// locks), so this only bounds a stuck file system.
const MIGRATION_ACQUIRE_TIMEOUT_MS: u64 = 30_000;

/// The settings of the writer connection as SQLite reports them, for health checks and
/// tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterPragmas {
    /// Expected "wal".
    pub journal_mode: String,
    /// Expected 2 (FULL): every commit is fsynced.
    pub synchronous: i64,
    pub foreign_keys: bool,
    pub busy_timeout_ms: i64,
}

/// The SQLite store. See the module documentation.
pub struct SqliteStore {
    path: PathBuf,
    write_options: SqliteConnectOptions,
    writer: Writer,
    /// WAL checkpoints beside the writer (`checkpointer.rs`).
    checkpointer: checkpointer::Checkpointer,
    readers: SqlitePool,
    /// The install id never changes once migrated: read once.
    install_id: tokio::sync::OnceCell<String>,
    chain: crate::audit::AuditChainOptions,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

fn write_options(path: &Path, opts: &StoreOptions) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .read_only(false)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .locking_mode(SqliteLockingMode::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_millis(opts.busy_timeout_ms))
        .statement_cache_capacity(STATEMENT_CACHE_CAPACITY)
        // Each write job runs in a savepoint, whose undo pages (the statement journal)
        // would otherwise spill to a temporary file once past 64 KiB: kept in memory.
        .pragma("temp_store", "memory")
        // Checkpoints are the checkpointer's (sqlite/checkpointer.rs); this is its backstop.
        .pragma(
            "wal_autocheckpoint",
            checkpointer::WRITER_AUTOCHECKPOINT_PAGES,
        )
}

fn read_options(path: &Path, opts: &StoreOptions) -> SqliteConnectOptions {
    // No journal_mode here: WAL is a property of the file, set by the writer, and a
    // read-only connection may not change it.
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(true)
        .foreign_keys(true)
        .busy_timeout(Duration::from_millis(opts.busy_timeout_ms))
        .statement_cache_capacity(STATEMENT_CACHE_CAPACITY)
}

fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/sqlite")
}

fn connect_error(source: sqlx::Error) -> StoreError {
    StoreError::Connect {
        backend: BACKEND,
        source,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and its parent directory,
    /// checks the writer's settings took effect, migrates when `opts.migrate`, then starts
    /// the writer task and the read pool. Needs a tokio runtime.
    pub async fn open(path: &Path, opts: &StoreOptions) -> Result<SqliteStore, StoreError> {
        opts.validate()?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| StoreError::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
        let write_options = write_options(path, opts);
        if opts.migrate {
            run_migrations(&write_options).await?;
        }
        let mut conn = SqliteConnection::connect_with(&write_options)
            .await
            .map_err(connect_error)?;
        let pragmas = read_pragmas(&mut conn).await?;
        check_setting("journal_mode", "wal", &pragmas.journal_mode)?;
        check_setting("synchronous", "2", &pragmas.synchronous.to_string())?;
        check_setting("foreign_keys", "true", &pragmas.foreign_keys.to_string())?;
        let readers = SqlitePoolOptions::new()
            .max_connections(opts.read_pool_size)
            .min_connections(0)
            .acquire_timeout(Duration::from_millis(opts.acquire_timeout_ms))
            .idle_timeout(Duration::from_secs(READ_IDLE_TIMEOUT_S))
            .max_lifetime(Duration::from_secs(READ_MAX_LIFETIME_S))
            .test_before_acquire(false)
            .connect_with(read_options(path, opts))
            .await
            .map_err(connect_error)?;
        let writer = Writer::spawn(
            conn,
            opts.write_queue_capacity,
            opts.max_batch,
            opts.audit_chain.clone(),
        );
        let checkpointer = match checkpointer::Checkpointer::spawn(&write_options).await {
            Ok(c) => c,
            Err(err) => {
                writer.shutdown().await;
                readers.close().await;
                return Err(err);
            }
        };
        tracing::info!(path = %path.display(), "SQLite store open");
        Ok(SqliteStore {
            path: path.to_path_buf(),
            write_options,
            writer,
            checkpointer,
            readers,
            install_id: tokio::sync::OnceCell::new(),
            chain: opts.audit_chain.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits and jobs of the writer so far: `commits < jobs` shows group commit at work.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Asks the writer connection itself for its settings (through the write queue).
    pub async fn writer_pragmas(&self) -> Result<WriterPragmas, StoreError> {
        self.writer.write(|conn| Box::pin(read_pragmas(conn))).await
    }

    /// Runs `work` through the single writer, in a savepoint of the next batch.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WorkFuture<'c, T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.write(work).await
    }
}

/// Migrates on a connection of its own, not the writer's: the migrator runs its own
/// transactions, which cannot nest in a batch; SQLite's file lock (with busy_timeout) keeps
/// it and the writer apart. A one-connection pool because sqlx's migrator accepts a pool
/// (or a connection) only through `Acquire`, and a borrowed connection there makes the
/// future fail the `Send` check of `async_trait`.
async fn run_migrations(options: &SqliteConnectOptions) -> Result<(), StoreError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_millis(MIGRATION_ACQUIRE_TIMEOUT_MS))
        .connect_with(options.clone())
        .await
        .map_err(connect_error)?;
    let result = migrator().run(&pool).await;
    pool.close().await;
    result.map_err(|source| StoreError::Migrate {
        backend: BACKEND,
        source,
    })
}

fn check_setting(name: &'static str, expected: &str, actual: &str) -> Result<(), StoreError> {
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(StoreError::Setting {
            backend: BACKEND,
            name,
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        })
    }
}

async fn read_pragmas(conn: &mut SqliteConnection) -> Result<WriterPragmas, StoreError> {
    let err = |e| statement_error(BACKEND, "reading connection settings", e);
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    let busy_timeout_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    Ok(WriterPragmas {
        journal_mode,
        synchronous,
        foreign_keys: foreign_keys == 1,
        busy_timeout_ms,
    })
}

/// An account's entries by `seq` (`Store::list_entries`), the row SELECT wrapped in `head`
/// and `tail` (empty, or `ENTRY_PAGE_JSON` and `)`).
fn entry_list_query<'q>(
    head: &str,
    q: &'q EntryQuery,
    tail: &str,
) -> Result<QueryBuilder<'q, Sqlite>, StoreError> {
    let mut query = QueryBuilder::<Sqlite>::new(format!(
        "{head}SELECT {ENTRY_COLUMNS} FROM statement_entries WHERE account_id = "
    ));
    query.push_bind(q.account_id.as_str());
    query.push(" AND seq > ").push_bind(q.after_seq);
    if let Some(from) = q.from {
        shared::check_date("entry query from", from)?;
        query
            .push(" AND booking_date >= ")
            .push_bind(shared::date_text(from));
    }
    if let Some(to) = q.to {
        shared::check_date("entry query to", to)?;
        query
            .push(" AND booking_date <= ")
            .push_bind(shared::date_text(to));
    }
    if let Some(status) = q.status {
        query
            .push(" AND status = ")
            .push_bind(shared::status_text(status));
    }
    query
        .push(" ORDER BY seq LIMIT ")
        .push_bind(i64::from(q.effective_limit()))
        .push(tail);
    Ok(query)
}

/// Entries of some accounts by `change_seq` (`Store::entries_changed_since`), wrapped as in
/// [`entry_list_query`].
fn change_feed_query<'q>(
    head: &str,
    account_ids: &'q [domain::AccountId],
    after_change_seq: i64,
    limit: u32,
    tail: &str,
) -> QueryBuilder<'q, Sqlite> {
    let mut query = QueryBuilder::<Sqlite>::new(format!(
        "{head}SELECT {ENTRY_COLUMNS} FROM statement_entries WHERE change_seq > "
    ));
    query
        .push_bind(after_change_seq)
        .push(" AND account_id IN (");
    let mut ids = query.separated(", ");
    for id in account_ids {
        ids.push_bind(id.as_str());
    }
    query
        .push(") ORDER BY change_seq LIMIT ")
        .push_bind(i64::from(effective_feed_limit(limit)))
        .push(tail);
    query
}

impl SqliteStore {
    /// Runs a page query wrapped by `statements::ENTRY_PAGE_JSON`: one value, one hand-off
    /// from sqlx's connection thread; `order` is the page's ORDER BY column. `None` when the page must be read row by row instead:
    /// SQLite refused to build the JSON or it does not decode into valid entries, which
    /// only a damaged row causes; the row-by-row read then reports it as it always did
    /// (`Corrupt`, naming the column). Other errors (pool, IO) are returned as they are.
    async fn entry_page(
        &self,
        page: &mut QueryBuilder<'_, Sqlite>,
        order: fn(&StoredEntry) -> i64,
        op: &'static str,
    ) -> Result<Option<Vec<StoredEntry>>, StoreError> {
        let text: String = match page.build_query_scalar().fetch_one(&self.readers).await {
            Ok(text) => text,
            Err(
                err @ (sqlx::Error::Database(_)
                | sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::Decode(_)),
            ) => {
                tracing::warn!(error = %err, "{op}: the page as JSON failed; reading it row by row");
                return Ok(None);
            }
            Err(err) => return Err(statement_error(BACKEND, op, err)),
        };
        match statements::entries_from_json(&text, order) {
            Ok(entries) => Ok(Some(entries)),
            Err(err) => {
                tracing::warn!(error = %err, "{op}: the page as JSON failed; reading it row by row");
                Ok(None)
            }
        }
    }
}

/// Appends one audit record unlinked (the chainer links it); the writer's direct appends
/// have their own statement, which links (`direct.rs`).
const INSERT_AUDIT_SQL: &str =
    "INSERT INTO audit_log (at, actor, action, object, request_id, outcome, details) \
         VALUES (?, ?, ?, ?, ?, ?, ?)";

async fn insert_audit(conn: &mut SqliteConnection, row: &AuditRow) -> Result<i64, StoreError> {
    let done = sqlx::query(INSERT_AUDIT_SQL)
        .bind(codec::instant_text(row.at))
        .bind(&row.actor)
        .bind(&row.action)
        .bind(&row.object)
        .bind(&row.request_id)
        .bind(&row.outcome)
        .bind(&row.details)
        .execute(&mut *conn)
        .await
        .map_err(|e| statement_error(BACKEND, "appending an audit record", e))?;
    Ok(done.last_insert_rowid())
}

async fn upsert_snapshot(conn: &mut SqliteConnection, row: &SnapshotRow) -> Result<(), StoreError> {
    // Row-value comparison on the fixed-width instant text is time order: an older
    // snapshot arriving late is ignored rather than moving the balance backwards.
    sqlx::query(
        "INSERT INTO balance_snapshots \
           (account_id, currency, booked_minor, available_minor, as_of, fetched_at) \
         VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (account_id, currency) DO UPDATE SET \
           booked_minor = excluded.booked_minor, \
           available_minor = excluded.available_minor, \
           as_of = excluded.as_of, \
           fetched_at = excluded.fetched_at \
         WHERE (excluded.as_of, excluded.fetched_at) \
            >= (balance_snapshots.as_of, balance_snapshots.fetched_at)",
    )
    .bind(&row.account_id)
    .bind(row.currency)
    .bind(row.booked_minor)
    .bind(row.available_minor)
    .bind(codec::instant_text(row.as_of))
    .bind(codec::instant_text(row.fetched_at))
    .execute(&mut *conn)
    .await
    .map_err(|e| statement_error(BACKEND, "saving a balance snapshot", e))?;
    Ok(())
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    const T: &str = "audit_log";
    let at: String = codec::column(row, T, "at")?;
    let details: String = codec::column(row, T, "details")?;
    Ok(AuditRecord {
        id: codec::column(row, T, "id")?,
        position: codec::column(row, T, "position")?,
        hash: codec::column(row, T, "hash")?,
        at: codec::instant_from_text(&at, T, "at")?,
        actor: codec::column(row, T, "actor")?,
        action: codec::column(row, T, "action")?,
        object: codec::column(row, T, "object")?,
        request_id: codec::column(row, T, "request_id")?,
        outcome: codec::column(row, T, "outcome")?,
        details: codec::details_from_text(&details)?,
    })
}

fn checkpoint_from_row(row: &SqliteRow) -> Result<audit::AuditCheckpoint, StoreError> {
    const T: &str = "audit_checkpoints";
    let at: String = codec::column(row, T, "at")?;
    Ok(audit::AuditCheckpoint {
        position: codec::column(row, T, "position")?,
        hash: codec::column(row, T, "hash")?,
        at: codec::instant_from_text(&at, T, "at")?,
        key_id: codec::column(row, T, "key_id")?,
        signature: codec::column(row, T, "signature")?,
    })
}

fn snapshot_from_row(row: &SqliteRow) -> Result<BalanceSnapshot, StoreError> {
    const T: &str = "balance_snapshots";
    let as_of: String = codec::column(row, T, "as_of")?;
    let fetched_at: String = codec::column(row, T, "fetched_at")?;
    StoredSnapshot {
        account_id: codec::column(row, T, "account_id")?,
        currency: codec::column(row, T, "currency")?,
        booked_minor: codec::column(row, T, "booked_minor")?,
        available_minor: codec::column(row, T, "available_minor")?,
        as_of: codec::instant_from_text(&as_of, T, "as_of")?,
        fetched_at: codec::instant_from_text(&fetched_at, T, "fetched_at")?,
    }
    .into_domain()
}

/// Limit + 1 rows are fetched so "exactly at the limit" and "over it" differ.
fn snapshots_within_limit(rows: &[SqliteRow]) -> Result<(), StoreError> {
    if rows.len() > BALANCES_MAX_ROWS {
        return Err(StoreError::TooManyRows {
            what: "balance snapshots",
            limit: BALANCES_MAX_ROWS,
        });
    }
    Ok(())
}

const SNAPSHOT_COLUMNS: &str =
    "SELECT account_id, currency, booked_minor, available_minor, as_of, fetched_at \
     FROM balance_snapshots";

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        run_migrations(&self.write_options).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(|e| statement_error(BACKEND, "pinging", e))?;
        Ok(())
    }

    async fn install_id(&self) -> Result<String, StoreError> {
        self.install_id
            .get_or_try_init(|| async {
                sqlx::query_scalar::<_, String>(
                    "SELECT value FROM install WHERE key = 'install_id'",
                )
                .fetch_optional(&self.readers)
                .await
                .map_err(|e| statement_error(BACKEND, "reading the install id", e))?
                .ok_or(StoreError::Uninitialised { what: "install id" })
            })
            .await
            .cloned()
    }

    async fn append_audit(&self, rec: NewAuditRecord) -> Result<i64, StoreError> {
        let row = AuditRow::new(rec)?;
        self.writer
            .write_direct(move |db| db.append_audit(&row))
            .await
    }

    async fn audit_chain_tick(&self) -> Result<audit::ChainTick, StoreError> {
        if !self.chain.enabled {
            return Ok(audit::ChainTick::default());
        }
        let opts = self.chain.clone();
        self.writer
            .write_direct(move |db| chain::link(db.connection(), &opts))
            .await
    }

    async fn audit_chain_page(
        &self,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<audit::ChainedRecord>, StoreError> {
        const T: &str = "audit_log";
        let rows = sqlx::query(
            "SELECT position, id, at, actor, action, object, request_id, outcome, details, \
                    prev_hash, hash \
             FROM audit_log WHERE position > ?1 ORDER BY position LIMIT ?2",
        )
        .bind(after_position)
        .bind(i64::from(limit.clamp(1, audit::CHAIN_PAGE_MAX)))
        .fetch_all(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading the audit chain", e))?;
        rows.iter()
            .map(|row| {
                let at: String = codec::column(row, T, "at")?;
                Ok(audit::ChainedRecord {
                    position: codec::column(row, T, "position")?,
                    fields: audit::AuditFields {
                        id: codec::column(row, T, "id")?,
                        at: codec::instant_from_text(&at, T, "at")?,
                        actor: codec::column(row, T, "actor")?,
                        action: codec::column(row, T, "action")?,
                        object: codec::column(row, T, "object")?,
                        request_id: codec::column(row, T, "request_id")?,
                        outcome: codec::column(row, T, "outcome")?,
                        details: codec::column(row, T, "details")?,
                    },
                    prev_hash: codec::column::<_, Option<Vec<u8>>>(row, T, "prev_hash")?
                        .unwrap_or_default(),
                    hash: codec::column::<_, Option<Vec<u8>>>(row, T, "hash")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn audit_chain_length(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, Option<i64>>("SELECT max(position) FROM audit_log")
            .fetch_one(&self.readers)
            .await
            .map(Option::unwrap_or_default)
            .map_err(|e| statement_error(BACKEND, "reading the audit chain", e))
    }

    async fn audit_unlinked(&self) -> Result<audit::UnlinkedSummary, StoreError> {
        let (count, min_id): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), min(id) FROM audit_log WHERE position IS NULL")
                .fetch_one(&self.readers)
                .await
                .map_err(|e| statement_error(BACKEND, "reading the audit chain", e))?;
        Ok(audit::UnlinkedSummary { count, min_id })
    }

    async fn audit_checkpoints(
        &self,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<audit::AuditCheckpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT position, hash, at, key_id, signature FROM audit_checkpoints \
             WHERE position > ?1 ORDER BY position LIMIT ?2",
        )
        .bind(after_position)
        .bind(i64::from(limit.clamp(1, audit::CHAIN_PAGE_MAX)))
        .fetch_all(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading audit checkpoints", e))?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<audit::AuditCheckpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT position, hash, at, key_id, signature FROM audit_checkpoints \
             ORDER BY position DESC LIMIT 1",
        )
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading audit checkpoints", e))?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT id, position, hash, at, actor, action, object, request_id, outcome, details \
             FROM audit_log WHERE 1 = 1",
        );
        if let Some(actor) = &q.actor {
            query.push(" AND actor = ").push_bind(actor);
        }
        if let Some(action) = &q.action {
            query.push(" AND action = ").push_bind(action);
        }
        if let Some(object) = &q.object {
            query.push(" AND object = ").push_bind(object);
        }
        // Instants are fixed-width text: text order is time order.
        if let Some(from) = q.from {
            query
                .push(" AND at >= ")
                .push_bind(codec::instant_text(from));
        }
        if let Some(to) = q.to {
            query.push(" AND at < ").push_bind(codec::instant_text(to));
        }
        if let Some(after_id) = q.after_id {
            query.push(" AND id > ").push_bind(after_id);
        }
        query
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(q.effective_limit()));
        let rows = query
            .build()
            .fetch_all(&self.readers)
            .await
            .map_err(|e| statement_error(BACKEND, "listing audit records", e))?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn save_balances(
        &self,
        snapshots: &[BalanceSnapshot],
        audit: NewAuditRecord,
    ) -> Result<(), StoreError> {
        if snapshots.len() > SNAPSHOTS_PER_SAVE_MAX {
            return Err(StoreError::Invalid {
                reason: format!(
                    "{} balance snapshots in one save, more than the limit of {SNAPSHOTS_PER_SAVE_MAX}",
                    snapshots.len()
                ),
            });
        }
        let rows = snapshots
            .iter()
            .map(SnapshotRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        let audit = AuditRow::new(audit)?;
        self.write(move |conn| {
            Box::pin(async move {
                for row in &rows {
                    upsert_snapshot(conn, row).await?;
                }
                insert_audit(conn, &audit).await?;
                Ok(())
            })
        })
        .await
    }

    async fn latest_balances(&self) -> Result<Vec<BalanceSnapshot>, StoreError> {
        let limit = i64::try_from(BALANCES_MAX_ROWS + 1).unwrap_or(i64::MAX);
        let rows = sqlx::query(&format!(
            "{SNAPSHOT_COLUMNS} ORDER BY account_id, currency LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading balance snapshots", e))?;
        snapshots_within_limit(&rows)?;
        rows.iter().map(snapshot_from_row).collect()
    }

    async fn latest_balances_for(
        &self,
        account_id: &domain::AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError> {
        let limit = i64::try_from(BALANCES_MAX_ROWS + 1).unwrap_or(i64::MAX);
        let rows = sqlx::query(&format!(
            "{SNAPSHOT_COLUMNS} WHERE account_id = ? ORDER BY currency LIMIT ?"
        ))
        .bind(account_id.as_str())
        .bind(limit)
        .fetch_all(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading balance snapshots", e))?;
        snapshots_within_limit(&rows)?;
        rows.iter().map(snapshot_from_row).collect()
    }

    async fn ingest_entries(
        &self,
        account_id: &domain::AccountId,
        entries: Vec<IngestEntry>,
        audit: NewAuditRecord,
    ) -> Result<IngestReport, StoreError> {
        let rows = shared::entry_rows(account_id, entries)?;
        let audit = AuditRow::new(audit)?;
        self.write(move |conn| {
            Box::pin(async move {
                let mut tx = statements::SqliteIngest { conn };
                let report = shared::ingest(&mut tx, &rows, audit.at).await?;
                insert_audit(tx.conn, &audit).await?;
                Ok(report)
            })
        })
        .await
    }

    async fn list_entries(&self, q: &EntryQuery) -> Result<Vec<StoredEntry>, StoreError> {
        const OP: &str = "listing statement entries";
        let mut page = entry_list_query(statements::ENTRY_PAGE_JSON, q, ")")?;
        if let Some(entries) = self.entry_page(&mut page, |e| e.seq, OP).await? {
            return Ok(entries);
        }
        let mut query = entry_list_query("", q, "")?;
        let rows = query
            .build()
            .fetch_all(&self.readers)
            .await
            .map_err(|e| statement_error(BACKEND, OP, e))?;
        rows.iter().map(statements::entry_from_row).collect()
    }

    async fn entries_changed_since(
        &self,
        account_ids: &[domain::AccountId],
        after_change_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        const OP: &str = "reading the statement change feed";
        if account_ids.len() > CHANGE_FEED_MAX_ACCOUNTS {
            return Err(StoreError::Invalid {
                reason: format!(
                    "{} accounts in one change-feed read, more than the limit of {CHANGE_FEED_MAX_ACCOUNTS}",
                    account_ids.len()
                ),
            });
        }
        if account_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut page = change_feed_query(
            statements::ENTRY_PAGE_JSON,
            account_ids,
            after_change_seq,
            limit,
            ")",
        );
        if let Some(entries) = self.entry_page(&mut page, |e| e.change_seq, OP).await? {
            return Ok(entries);
        }
        let mut query = change_feed_query("", account_ids, after_change_seq, limit, "");
        let rows = query
            .build()
            .fetch_all(&self.readers)
            .await
            .map_err(|e| statement_error(BACKEND, OP, e))?;
        rows.iter().map(statements::entry_from_row).collect()
    }

    async fn booked_entries_on(
        &self,
        account_id: &domain::AccountId,
        date: domain::BusinessDate,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        shared::check_date("booking date", date)?;
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM statement_entries \
             WHERE account_id = ? AND booking_date = ? AND status = 'booked' \
             ORDER BY seq LIMIT ?"
        ))
        .bind(account_id.as_str())
        .bind(shared::date_text(date))
        .bind(shared::fetch_bound(BOOKED_ENTRIES_PER_DAY_MAX))
        .fetch_all(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading the booked entries of a day", e))?;
        shared::within_limit(
            &rows,
            "booked entries of one day",
            BOOKED_ENTRIES_PER_DAY_MAX,
        )?;
        rows.iter().map(statements::entry_from_row).collect()
    }

    async fn record_continuity(
        &self,
        account_id: &domain::AccountId,
        date: domain::BusinessDate,
        result: Option<ContinuityBreak>,
    ) -> Result<(), StoreError> {
        shared::check_date("continuity date", date)?;
        match result {
            Some(found) => {
                let row = BreakRow::new(account_id, date, &found)?;
                self.write(move |conn| {
                    Box::pin(async move { statements::upsert_break(conn, &row).await })
                })
                .await
            }
            None => {
                let account_id = account_id.as_str().to_owned();
                let date = shared::date_text(date);
                self.write(move |conn| {
                    Box::pin(async move { statements::clear_break(conn, &account_id, &date).await })
                })
                .await
            }
        }
    }

    async fn continuity_breaks(
        &self,
        account_id: &domain::AccountId,
        from: Option<domain::BusinessDate>,
        to: Option<domain::BusinessDate>,
    ) -> Result<Vec<ContinuityBreak>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT account_id, date, currency, opening_minor, closing_minor, \
             entries_sum_minor, gap_minor, detected_at FROM continuity_breaks WHERE account_id = ",
        );
        query.push_bind(account_id.as_str());
        if let Some(from) = from {
            shared::check_date("continuity breaks from", from)?;
            query
                .push(" AND date >= ")
                .push_bind(shared::date_text(from));
        }
        if let Some(to) = to {
            shared::check_date("continuity breaks to", to)?;
            query.push(" AND date <= ").push_bind(shared::date_text(to));
        }
        query
            .push(" ORDER BY date LIMIT ")
            .push_bind(shared::fetch_bound(CONTINUITY_BREAKS_MAX_ROWS));
        let rows = query
            .build()
            .fetch_all(&self.readers)
            .await
            .map_err(|e| statement_error(BACKEND, "listing continuity breaks", e))?;
        shared::within_limit(&rows, "continuity breaks", CONTINUITY_BREAKS_MAX_ROWS)?;
        rows.iter().map(statements::break_from_row).collect()
    }

    async fn sync_state(
        &self,
        account_id: &domain::AccountId,
    ) -> Result<Option<SyncState>, StoreError> {
        let row = sqlx::query(
            "SELECT account_id, synced_through, last_success_at, last_error \
             FROM statement_sync WHERE account_id = ?",
        )
        .bind(account_id.as_str())
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading the statement sync state", e))?;
        row.as_ref().map(statements::sync_from_row).transpose()
    }

    async fn save_sync_state(&self, state: &SyncState) -> Result<(), StoreError> {
        let row = SyncRow::new(state)?;
        self.write(move |conn| Box::pin(async move { statements::upsert_sync(conn, &row).await }))
            .await
    }

    async fn list_payments(&self, q: &PaymentQuery) -> Result<Vec<StoredPayment>, StoreError> {
        q.check()?;
        if q.account_ids.as_ref().is_some_and(|ids| ids.is_empty()) {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE 1 = 1"
        ));
        if let Some(status) = &q.status {
            query.push(" AND status = ").push_bind(status.clone());
        }
        if let Some(ids) = &q.account_ids {
            query.push(" AND debtor_account_id IN (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(id.as_str().to_owned());
            }
            query.push(")");
        }
        if let Some(from) = q.created_from {
            query
                .push(" AND created_at >= ")
                .push_bind(codec::instant_text(codec::instant(
                    from,
                    "payment query created_from",
                )?));
        }
        if let Some(before) = q.created_before {
            query
                .push(" AND created_at < ")
                .push_bind(codec::instant_text(codec::instant(
                    before,
                    "payment query created_before",
                )?));
        }
        if let Some(after) = &q.after {
            query
                .push(" AND (created_at, id) > (")
                .push_bind(codec::instant_text(codec::instant(
                    after.created_at,
                    "payment cursor",
                )?))
                .push(", ")
                .push_bind(after.id.as_str().to_owned())
                .push(")");
        }
        query
            .push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(q.effective_limit()));
        let rows = query
            .build()
            .fetch_all(&self.readers)
            .await
            .map_err(|e| statement_error(BACKEND, "listing payments", e))?;
        rows.iter().map(payments::payment_from_row).collect()
    }

    async fn find_idempotency_key(
        &self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT request_hash, state, response_status, response_body \
             FROM idempotency_keys WHERE client_id = ? AND key = ?",
        )
        .bind(client_id)
        .bind(key)
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading an idempotency key", e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let request_hash: String = codec::column(&row, "idempotency_keys", "request_hash")?;
        let state: String = codec::column(&row, "idempotency_keys", "state")?;
        let status: Option<i64> = codec::column(&row, "idempotency_keys", "response_status")?;
        let response_body: Option<String> =
            codec::column(&row, "idempotency_keys", "response_body")?;
        let response_status = status
            .map(|s| {
                u16::try_from(s).map_err(|_| StoreError::Corrupt {
                    table: "idempotency_keys",
                    column: "response_status",
                    reason: format!("{s} is not an HTTP status"),
                })
            })
            .transpose()?;
        Ok(Some(IdempotencyRecord {
            request_hash,
            completed: state == "completed",
            response_status,
            response_body,
        }))
    }

    async fn get_payment(
        &self,
        id: &domain::PaymentId,
    ) -> Result<Option<StoredPayment>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading a payment", e))?;
        row.as_ref().map(payments::payment_from_row).transpose()
    }

    async fn payment_history(
        &self,
        id: &domain::PaymentId,
    ) -> Result<Vec<PaymentHistoryEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {HISTORY_COLUMNS} FROM payment_history WHERE payment_id = ? \
             ORDER BY seq LIMIT ?"
        ))
        .bind(id.as_str())
        .bind(shared::fetch_bound(PAYMENT_HISTORY_MAX_ROWS))
        .fetch_all(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading a payment history", e))?;
        shared::within_limit(&rows, "payment history rows", PAYMENT_HISTORY_MAX_ROWS)?;
        rows.iter().map(payments::history_from_row).collect()
    }

    async fn expired_submitting(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StoredPayment>, StoreError> {
        pay::check_scan_limit(limit)?;
        let now = codec::instant(now, "reaper now")?;
        let rows = sqlx::query(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments \
             WHERE status = 'submitting' AND (lease_expires_at IS NULL OR lease_expires_at < ?) \
             ORDER BY lease_expires_at, id LIMIT ?"
        ))
        .bind(codec::instant_text(now))
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "finding expired submissions", e))?;
        rows.iter().map(payments::payment_from_row).collect()
    }

    async fn create_payment(
        &self,
        new: NewPayment,
        idempotency: IdempotencyClaim,
        audit: NewAuditRecord,
    ) -> Result<CreateOutcome, StoreError> {
        let rows = pay::create_rows(new, idempotency, audit)?;
        self.writer
            .write_direct(move |tx| {
                // The direct statements never wait: the algorithm completes in one poll.
                pay::create(tx, &rows)
                    .now_or_never()
                    .unwrap_or(Err(StoreError::WriterLost))
            })
            .await
    }

    async fn decide_payment(
        &self,
        decision: crate::ApprovalDecision,
        audit: NewAuditRecord,
    ) -> Result<crate::DecisionOutcome, StoreError> {
        if decision.object != crate::ApprovalObject::Payment {
            return Err(pay::invalid(
                "decide_payment takes payment decisions".to_owned(),
            ));
        }
        let rows = crate::approvals::decision_rows(decision, audit)?;
        self.write(move |conn| {
            Box::pin(async move {
                let mut tx = payments::SqlitePayments { conn };
                crate::approvals::decide_payment(&mut tx, &rows).await
            })
        })
        .await
    }

    async fn decide_batch(
        &self,
        decision: crate::ApprovalDecision,
        audit: NewAuditRecord,
    ) -> Result<crate::BatchDecisionOutcome, StoreError> {
        if decision.object != crate::ApprovalObject::Batch {
            return Err(pay::invalid(
                "decide_batch takes batch decisions".to_owned(),
            ));
        }
        let rows = crate::approvals::decision_rows(decision, audit)?;
        self.write(move |conn| {
            Box::pin(async move {
                let mut tx = payments::SqlitePayments { conn };
                crate::approvals::decide_batch(&mut tx, &rows).await
            })
        })
        .await
    }

    async fn propose_resolution(
        &self,
        proposal: crate::ResolutionProposal,
        audit: NewAuditRecord,
    ) -> Result<crate::ProposalOutcome, StoreError> {
        let (proposal, audit) = crate::resolutions::proposal_rows(proposal, audit)?;
        self.write(move |conn| {
            Box::pin(async move {
                let mut tx = payments::SqlitePayments { conn };
                crate::resolutions::propose(&mut tx, &proposal, &audit).await
            })
        })
        .await
    }

    async fn resolution_proposal(
        &self,
        object: crate::ResolutionObject,
        id: &str,
    ) -> Result<Option<crate::ResolutionProposal>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM resolution_proposals WHERE object_kind = ? AND object_id = ?",
            crate::resolutions::PROPOSAL_COLUMNS
        ))
        .bind(object.as_str())
        .bind(id)
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading a resolution proposal", e))?;
        row.as_ref().map(resolutions::proposal_from_row).transpose()
    }

    async fn approval_decisions(
        &self,
        object: crate::ApprovalObject,
        id: &str,
    ) -> Result<Vec<crate::ApprovalDecision>, StoreError> {
        let rows = sqlx::query(
            "SELECT object_kind, object_id, decided_by, decision, comment, request_id, at \
             FROM approval_decisions WHERE object_kind = ? AND object_id = ? \
             ORDER BY at, decided_by LIMIT ?",
        )
        .bind(object.as_str())
        .bind(id)
        .bind(crate::APPROVAL_DECISIONS_MAX)
        .fetch_all(&self.readers)
        .await
        .map_err(|e| statement_error(BACKEND, "reading approval decisions", e))?;
        rows.iter().map(payments::decision_from_row).collect()
    }

    async fn transition_payment_steps(
        &self,
        id: &domain::PaymentId,
        expected: TransitionGuard,
        steps: Vec<crate::PaymentStep>,
        actor: Actor,
    ) -> Result<StoredPayment, StoreError> {
        let steps = pay::steps_rows(id, expected, steps, actor)?;
        // One writer job: its savepoint takes every step back when one fails.
        self.writer
            .write_direct(move |tx| {
                // The direct statements never wait: the algorithm completes in one poll.
                pay::transition_steps(tx, &steps)
                    .now_or_never()
                    .unwrap_or(Err(StoreError::WriterLost))
            })
            .await
    }

    async fn claim_due_payments(
        &self,
        statuses: &[&str],
        now: DateTime<Utc>,
        lease_owner: &str,
        lease_duration_ms: u64,
        limit: u32,
    ) -> Result<Vec<ClaimedPayment>, StoreError> {
        let (now, expires) =
            pay::check_claim_args(statuses, now, lease_owner, lease_duration_ms, limit)?;
        let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
        let owner = lease_owner.to_owned();
        let claimed = self
            .write(move |conn| {
                Box::pin(async move {
                    payments::claim(conn, statuses, now, &owner, expires, limit).await
                })
            })
            .await?;
        Ok(pay::handed_out(claimed))
    }

    async fn reschedule_payment(
        &self,
        id: &domain::PaymentId,
        fencing_token: i64,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let next = next_attempt_at
            .map(|t| codec::instant(t, "next attempt"))
            .transpose()?;
        let id = id.as_str().to_owned();
        let what = "rescheduling a payment";
        self.write(move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE payments SET \
                       next_attempt_at = ?, \
                       lease_owner = NULL, lease_expires_at = NULL, version = version + 1 \
                     WHERE id = ? AND fencing_token = ?",
                )
                .bind(next.map(codec::instant_text))
                .bind(&id)
                .bind(fencing_token)
                .execute(&mut *conn)
                .await
                .map_err(|e| statement_error(BACKEND, what, e))?;
                if done.rows_affected() == 1 {
                    Ok(())
                } else {
                    let current = payments::current(conn, &id).await?;
                    Err(pay::release_failure(&id, current))
                }
            })
        })
        .await
    }

    async fn create_batch(
        &self,
        new: crate::NewBatch,
        idempotency: IdempotencyClaim,
        audit: NewAuditRecord,
    ) -> Result<crate::CreateBatchOutcome, StoreError> {
        let rows = crate::batches::create_batch_rows(new, idempotency, audit)?;
        self.write(move |conn| {
            Box::pin(async move {
                let mut tx = payments::SqlitePayments { conn };
                crate::batches::create(&mut tx, &rows).await
            })
        })
        .await
    }

    async fn get_batch(
        &self,
        id: &domain::BatchId,
    ) -> Result<Option<crate::StoredBatch>, StoreError> {
        let mut conn = self.read_conn().await?;
        let Some(mut batch) = batches::batch_header(&mut conn, id.as_str()).await? else {
            return Ok(None);
        };
        batch.chunks = batches::chunks_of(&mut conn, id.as_str()).await?;
        batch.item_counts = batches::item_counts(&mut conn, id.as_str()).await?;
        Ok(Some(batch))
    }

    async fn list_batches(
        &self,
        q: &crate::BatchQuery,
    ) -> Result<Vec<crate::StoredBatch>, StoreError> {
        let mut conn = self.read_conn().await?;
        batches::list(&mut conn, q).await
    }

    async fn batch_items(
        &self,
        id: &domain::BatchId,
        chunk_no: Option<i64>,
        after_item_no: i64,
        limit: u32,
    ) -> Result<Vec<crate::StoredBatchItem>, StoreError> {
        let limit = match limit {
            0 => crate::BATCH_ITEMS_PAGE_MAX,
            n => n.min(crate::BATCH_ITEMS_PAGE_MAX),
        };
        let mut conn = self.read_conn().await?;
        let batch = batches::batch_header(&mut conn, id.as_str())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "batch",
                id: id.as_str().to_owned(),
            })?;
        batches::items(&mut conn, &batch, chunk_no, after_item_no, limit).await
    }

    async fn transition_chunk(
        &self,
        id: &domain::BatchId,
        chunk_no: i64,
        expected: TransitionGuard,
        change: PaymentChange,
        items: crate::ItemUpdate,
        actor: Actor,
        audit: NewAuditRecord,
    ) -> Result<crate::StoredBatch, StoreError> {
        let rows = crate::batches::chunk_transition_rows(
            id, chunk_no, expected, change, items, actor, audit,
        )?;
        self.write(move |conn| {
            Box::pin(async move {
                let mut tx = payments::SqlitePayments { conn };
                crate::batches::transition_chunk(&mut tx, &rows).await
            })
        })
        .await
    }

    async fn claim_due_chunks(
        &self,
        statuses: &[&str],
        now: DateTime<Utc>,
        lease_owner: &str,
        lease_duration_ms: u64,
        limit: u32,
    ) -> Result<Vec<crate::ClaimedChunk>, StoreError> {
        let (now, expires) =
            pay::check_claim_args(statuses, now, lease_owner, lease_duration_ms, limit)?;
        let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
        let owner = lease_owner.to_owned();
        self.write(move |conn| {
            Box::pin(async move {
                let mut chunks =
                    batches::claim(conn, statuses, now, &owner, expires, limit).await?;
                chunks.sort_by(|a, b| {
                    (a.next_attempt_at, a.batch_id.as_str(), a.chunk_no).cmp(&(
                        b.next_attempt_at,
                        b.batch_id.as_str(),
                        b.chunk_no,
                    ))
                });
                let mut claimed = Vec::with_capacity(chunks.len());
                for chunk in chunks {
                    let batch = batches::batch_header(conn, chunk.batch_id.as_str())
                        .await?
                        .ok_or_else(|| StoreError::Corrupt {
                            table: "payment_batch_chunks",
                            column: "batch_id",
                            reason: format!("chunk of a missing batch {}", chunk.batch_id.as_str()),
                        })?;
                    claimed.push(crate::ClaimedChunk { batch, chunk });
                }
                Ok(claimed)
            })
        })
        .await
    }

    async fn expired_submitting_chunks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<crate::StoredChunk>, StoreError> {
        pay::check_scan_limit(limit)?;
        let now = codec::instant(now, "reaper now")?;
        let mut conn = self.read_conn().await?;
        batches::expired_submitting(&mut conn, now, limit).await
    }

    async fn reschedule_chunk(
        &self,
        id: &domain::BatchId,
        chunk_no: i64,
        fencing_token: i64,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let next = next_attempt_at
            .map(|t| codec::instant(t, "next attempt"))
            .transpose()?;
        let id = id.as_str().to_owned();
        self.write(move |conn| {
            Box::pin(async move {
                if batches::reschedule(conn, &id, chunk_no, fencing_token, next).await? {
                    return Ok(());
                }
                let mut tx = payments::SqlitePayments { conn };
                let current =
                    crate::batches::BatchTx::chunk_current(&mut tx, &id, chunk_no).await?;
                Err(match current {
                    None => StoreError::NotFound {
                        what: "batch chunk",
                        id: format!("{id}#{chunk_no}"),
                    },
                    Some(c) => StoreError::Conflict {
                        payment_id: format!("{id}#{chunk_no}"),
                        status: c.status,
                        fencing_token: c.fencing_token,
                    },
                })
            })
        })
        .await
    }

    async fn cancel_batch(
        &self,
        id: &domain::BatchId,
        actor: Actor,
        audit: NewAuditRecord,
    ) -> Result<crate::CancelBatchOutcome, StoreError> {
        let audit = AuditRow::new(audit)?;
        let id = id.as_str().to_owned();
        self.write(move |conn| {
            Box::pin(async move {
                let mut tx = payments::SqlitePayments { conn };
                crate::batches::cancel(&mut tx, &id, &actor, &audit).await
            })
        })
        .await
    }

    async fn list_events(
        &self,
        q: &crate::events::EventQuery,
    ) -> Result<Vec<crate::events::StoredEvent>, StoreError> {
        events::list(&self.readers, q).await
    }

    async fn idempotency_purge(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = codec::instant(now, "purge now")?;
        self.write(move |conn| {
            Box::pin(async move {
                let done = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at < ?")
                    .bind(codec::instant_text(now))
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| statement_error(BACKEND, "purging idempotency keys", e))?;
                Ok(done.rows_affected())
            })
        })
        .await
    }

    async fn close(&self) {
        self.writer.shutdown().await;
        self.checkpointer.shutdown().await;
        self.readers.close().await;
    }

    async fn create_webhook(
        &self,
        new: crate::NewWebhook,
        idempotency: Option<IdempotencyClaim>,
        audit: NewAuditRecord,
    ) -> Result<crate::WebhookCreateOutcome, StoreError> {
        webhooks::create(self, crate::webhooks::webhook_row(new, idempotency, audit)?).await
    }

    async fn list_webhooks(
        &self,
        client_id: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::StoredWebhook>, StoreError> {
        webhooks::list(self, client_id, after_id, limit).await
    }

    async fn get_webhook(
        &self,
        client_id: &str,
        id: &str,
    ) -> Result<Option<crate::StoredWebhook>, StoreError> {
        webhooks::get(self, client_id, id).await
    }

    async fn delete_webhook(
        &self,
        client_id: &str,
        id: &str,
        audit: NewAuditRecord,
    ) -> Result<bool, StoreError> {
        let audit = AuditRow::new(audit)?;
        webhooks::delete(self, client_id.to_owned(), id.to_owned(), audit).await
    }

    async fn fan_out_events(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<crate::FanOutReport, StoreError> {
        webhooks::fan_out(self, now, limit).await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_owner: &str,
        lease_duration_ms: u64,
        limit: u32,
    ) -> Result<Vec<crate::ClaimedDelivery>, StoreError> {
        let (now, expires) =
            crate::webhooks::check_claim_args(now, lease_owner, lease_duration_ms, limit)?;
        webhooks::claim(self, now, expires, lease_owner.to_owned(), limit).await
    }

    async fn record_webhook_attempt(
        &self,
        delivery_id: i64,
        lease_token: i64,
        attempt: crate::NewAttempt,
    ) -> Result<Option<crate::DeliveryState>, StoreError> {
        let row = crate::webhooks::attempt_row(attempt)?;
        webhooks::record(self, delivery_id, lease_token, row).await
    }

    async fn list_webhook_deliveries(
        &self,
        q: &crate::DeliveryQuery,
    ) -> Result<Vec<crate::StoredDelivery>, StoreError> {
        webhooks::list_deliveries(self, q).await
    }

    async fn redrive_webhook_deliveries(
        &self,
        webhook_id: &str,
        delivery_id: Option<i64>,
        now: DateTime<Utc>,
        audit: NewAuditRecord,
    ) -> Result<u64, StoreError> {
        let audit = AuditRow::new(audit)?;
        webhooks::redrive(self, webhook_id.to_owned(), delivery_id, now, audit).await
    }
    async fn record_bank_exchange(
        &self,
        exchange: crate::NewBankExchange,
        audit: NewAuditRecord,
    ) -> Result<i64, StoreError> {
        exchanges::record(self, exchange, audit).await
    }

    async fn get_bank_exchange(
        &self,
        id: i64,
    ) -> Result<Option<crate::StoredBankExchange>, StoreError> {
        exchanges::get(self, id).await
    }

    async fn bank_exchanges_by_reference(
        &self,
        reference: &str,
        limit: u32,
    ) -> Result<Vec<crate::StoredBankExchange>, StoreError> {
        exchanges::by_reference(self, reference, limit).await
    }

    async fn bank_reference_object(&self, reference: &str) -> Result<Option<String>, StoreError> {
        exchanges::reference_object(self, reference).await
    }
}

impl SqliteStore {
    /// A connection of the read pool, for reads of several statements.
    async fn read_conn(&self) -> Result<sqlx::pool::PoolConnection<Sqlite>, StoreError> {
        self.readers
            .acquire()
            .await
            .map_err(|e| statement_error(BACKEND, "taking a read connection", e))
    }
}

#[cfg(test)]
mod tests {
    //! The writer's batch semantics, with jobs placed deterministically in one batch: a
    //! gate job holds the writer until the jobs under test are queued.

    use super::*;
    use chrono::Utc;
    use tokio::sync::oneshot;

    async fn open_store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("bankdirect.db"), &StoreOptions::default())
            .await
            .unwrap()
    }

    fn audit(actor: &str) -> AuditRow {
        AuditRow::new(NewAuditRecord {
            at: Utc::now(),
            actor: actor.to_owned(),
            action: "test.write".to_owned(),
            object: "batch".to_owned(),
            request_id: None,
            outcome: "ok".to_owned(),
            details: serde_json::json!({}),
        })
        .unwrap()
    }

    /// Queues a job that blocks the writer inside its own batch until `release` fires, and
    /// returns once the writer is running it (so later jobs queue behind it).
    async fn hold_writer(
        store: &SqliteStore,
    ) -> (
        oneshot::Sender<()>,
        oneshot::Receiver<Result<(), StoreError>>,
    ) {
        let (release, gate) = oneshot::channel::<()>();
        let (started_tx, started) = oneshot::channel::<()>();
        let held = store
            .writer
            .submit(move |_conn| {
                Box::pin(async move {
                    let _ = started_tx.send(());
                    let _ = gate.await;
                    Ok(())
                })
            })
            .await
            .unwrap();
        started.await.unwrap();
        (release, held)
    }

    async fn submit_audit(
        store: &SqliteStore,
        row: AuditRow,
    ) -> oneshot::Receiver<Result<i64, StoreError>> {
        store
            .writer
            .submit(move |conn| Box::pin(async move { insert_audit(conn, &row).await }))
            .await
            .unwrap()
    }

    async fn stored_actors(store: &SqliteStore) -> Vec<String> {
        store
            .list_audit(&AuditQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.actor)
            .collect()
    }

    #[tokio::test]
    async fn a_failing_or_panicking_job_is_rolled_back_alone_and_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;
        let (release, held) = hold_writer(&store).await;

        let first = submit_audit(&store, audit("first")).await;
        let too_long = submit_audit(&store, audit(&"x".repeat(257))).await;
        let panicking = store
            .writer
            .submit(|conn| {
                Box::pin(async move {
                    insert_audit(conn, &audit("panicker")).await?;
                    panic!("a bug inside a write job");
                    #[allow(unreachable_code)]
                    Ok(())
                })
            })
            .await
            .unwrap();
        let last = submit_audit(&store, audit("last")).await;
        release.send(()).unwrap();

        held.await.unwrap().unwrap();
        let first_id = first.await.unwrap().unwrap();
        assert!(
            matches!(too_long.await.unwrap(), Err(StoreError::Invalid { reason }) if reason.contains("audit_actor_length"))
        );
        assert!(matches!(
            panicking.await.unwrap(),
            Err(StoreError::JobPanicked)
        ));
        let last_id = last.await.unwrap().unwrap();
        assert!(first_id < last_id);

        assert_eq!(stored_actors(&store).await, ["first", "last"]);
        // The gate's batch and the batch of the four jobs.
        assert_eq!(
            store.writer_stats(),
            WriterStats {
                commits: 2,
                jobs: 5
            }
        );
        store.close().await;
    }

    #[tokio::test]
    async fn when_sqlite_drops_the_transaction_every_job_of_the_batch_is_told_nothing_was_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;
        let (release, held) = hold_writer(&store).await;

        let before = submit_audit(&store, audit("before")).await;
        // What SQLite does by itself on a full disk or an I/O error: the whole transaction
        // is rolled back and the savepoints are gone.
        let dropper = store
            .writer
            .submit(|conn| {
                Box::pin(async move {
                    sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
                    Err::<(), _>(StoreError::Invalid {
                        reason: "simulated disk full".to_owned(),
                    })
                })
            })
            .await
            .unwrap();
        let after = submit_audit(&store, audit("after")).await;
        release.send(()).unwrap();

        held.await.unwrap().unwrap();
        assert!(matches!(
            before.await.unwrap(),
            Err(StoreError::BatchFailed {
                op: "closing a savepoint",
                ..
            })
        ));
        assert!(matches!(
            dropper.await.unwrap(),
            Err(StoreError::Invalid { .. })
        ));
        assert!(matches!(
            after.await.unwrap(),
            Err(StoreError::BatchFailed { .. })
        ));
        assert!(stored_actors(&store).await.is_empty());

        // The writer recovers: the next batch starts a clean transaction.
        store
            .write(|conn| Box::pin(async move { insert_audit(conn, &audit("later")).await }))
            .await
            .unwrap();
        assert_eq!(stored_actors(&store).await, ["later"]);
        store.close().await;
    }

    async fn submit_direct_audit(
        store: &SqliteStore,
        row: AuditRow,
    ) -> oneshot::Receiver<Result<i64, StoreError>> {
        store
            .writer
            .submit_direct(move |db| db.append_audit(&row))
            .await
            .unwrap()
    }

    /// An all-direct batch runs first without savepoints; a job that fails after writing
    /// (or panics) takes that run back: it is answered its own error, nothing it wrote
    /// stays, and the jobs before and after it are stored exactly once, in order.
    #[tokio::test]
    async fn a_direct_job_failing_after_its_writes_leaves_nothing_and_the_others_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;
        let (release, held) = hold_writer(&store).await;
        let a = submit_direct_audit(&store, audit("a")).await;
        let half = store
            .writer
            .submit_direct(|db| {
                db.append_audit(&audit("half"))?;
                Err::<(), _>(StoreError::Invalid {
                    reason: "fails after a write".to_owned(),
                })
            })
            .await
            .unwrap();
        let b = submit_direct_audit(&store, audit("b")).await;
        let panics = store
            .writer
            .submit_direct(|db| -> Result<(), StoreError> {
                db.append_audit(&audit("panicked"))?;
                panic!("a bug in a job");
            })
            .await
            .unwrap();
        let c = submit_direct_audit(&store, audit("c")).await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        let ids = [
            a.await.unwrap().unwrap(),
            b.await.unwrap().unwrap(),
            c.await.unwrap().unwrap(),
        ];
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(matches!(
            half.await.unwrap(),
            Err(StoreError::Invalid { .. })
        ));
        assert!(matches!(
            panics.await.unwrap(),
            Err(StoreError::JobPanicked)
        ));
        assert_eq!(stored_actors(&store).await, ["a", "b", "c"]);
        // One commit for the held job, one for the batch (its first run was rolled back).
        assert_eq!(
            store.writer_stats(),
            WriterStats {
                commits: 2,
                jobs: 6
            }
        );
        store.close().await;
    }

    #[tokio::test]
    async fn direct_jobs_begin_and_commit_their_batch_in_their_own_lock_beside_sqlx_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;

        // An all-direct batch, one job failing alone: BEGIN, jobs and COMMIT in one lock.
        let (release, held) = hold_writer(&store).await;
        let a = submit_direct_audit(&store, audit("a")).await;
        let too_long = submit_direct_audit(&store, audit(&"x".repeat(257))).await;
        let b = submit_direct_audit(&store, audit("b")).await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        a.await.unwrap().unwrap();
        assert!(too_long.await.unwrap().is_err());
        b.await.unwrap().unwrap();
        assert_eq!(stored_actors(&store).await, ["a", "b"]);
        assert_eq!(
            store.writer_stats(),
            WriterStats {
                commits: 2,
                jobs: 4
            }
        );

        // Direct, sqlx, direct: begun in the first direct lock, committed in the last.
        let (release, held) = hold_writer(&store).await;
        let c = submit_direct_audit(&store, audit("c")).await;
        let d = submit_audit(&store, audit("d")).await;
        let e = submit_direct_audit(&store, audit("e")).await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        for answer in [c, d, e] {
            answer.await.unwrap().unwrap();
        }
        // Direct then sqlx: begun in the direct lock, committed the sqlx way.
        let (release, held) = hold_writer(&store).await;
        let f = submit_direct_audit(&store, audit("f")).await;
        let g = submit_audit(&store, audit("g")).await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        f.await.unwrap().unwrap();
        g.await.unwrap().unwrap();
        assert_eq!(
            stored_actors(&store).await,
            ["a", "b", "c", "d", "e", "f", "g"]
        );
        assert_eq!(store.writer_stats().commits, 6);

        // A batch whose transaction SQLite dropped in a direct job: nothing of it is
        // stored, the next batch begins clean.
        let (release, held) = hold_writer(&store).await;
        let h = submit_direct_audit(&store, audit("h")).await;
        let dropper = store
            .writer
            .submit_direct(|db| {
                db.execute_fixed("ROLLBACK").unwrap();
                Err::<(), _>(StoreError::Invalid {
                    reason: "simulated disk full".to_owned(),
                })
            })
            .await
            .unwrap();
        let i = submit_direct_audit(&store, audit("i")).await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        assert!(matches!(
            h.await.unwrap(),
            Err(StoreError::BatchFailed { .. })
        ));
        assert!(dropper.await.unwrap().is_err());
        assert!(i.await.unwrap().is_err());
        store
            .writer
            .write_direct(|db| db.append_audit(&audit("j")))
            .await
            .unwrap();
        assert_eq!(
            stored_actors(&store).await,
            ["a", "b", "c", "d", "e", "f", "g", "j"]
        );
        store.close().await;
    }

    #[tokio::test]
    async fn writes_after_close_are_refused_and_queued_ones_finish() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;
        let (release, held) = hold_writer(&store).await;
        let queued = submit_audit(&store, audit("queued")).await;
        let closing = async {
            store.close().await;
        };
        let releasing = async {
            // Close has taken the sender by the time it waits for the task; release then.
            tokio::task::yield_now().await;
            release.send(()).unwrap();
        };
        tokio::join!(closing, releasing);
        held.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        assert!(matches!(
            store
                .write(|conn| Box::pin(async move { insert_audit(conn, &audit("late")).await }))
                .await,
            Err(StoreError::Closed)
        ));
    }

    /// The position and previous hash of audit record `id` as the job's transaction sees
    /// it, and whether any record is still unlinked.
    fn link_of(
        db: &direct::DirectPayments,
        id: i64,
    ) -> Result<(Option<i64>, Option<Vec<u8>>), StoreError> {
        db.connection()
            .query_row(
                "SELECT position, prev_hash FROM audit_log WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| StoreError::Invalid {
                reason: e.to_string(),
            })
    }

    /// With the chain on, a direct append is linked as it is written, before the batch's
    /// chainer runs; behind a record that is not linked yet it goes in unlinked, and the
    /// chainer links both after the batch's jobs, in id order.
    #[tokio::test]
    async fn direct_audit_appends_are_linked_as_written_unless_behind_an_unlinked_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;
        let append_and_look = |actor: &'static str| {
            move |db: &mut direct::DirectPayments| {
                let id = db.append_audit(&audit(actor))?;
                Ok((id, link_of(db, id)?))
            }
        };
        let (first, (position, prev)) = store
            .writer
            .write_direct(append_and_look("first"))
            .await
            .unwrap();
        assert_eq!(position, Some(1), "linked as written");
        assert_eq!(prev.as_deref(), Some(&audit::GENESIS_HASH[..]));
        let (second, (position, _)) = store
            .writer
            .write_direct(append_and_look("second"))
            .await
            .unwrap();
        assert_eq!((second, position), (first + 1, Some(2)));

        // In one batch: a record from the sqlx path (unlinked), then a direct append.
        let (release, held) = hold_writer(&store).await;
        let unlinked = submit_audit(&store, audit("unlinked")).await;
        let behind = store
            .writer
            .submit_direct(append_and_look("behind"))
            .await
            .unwrap();
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        let unlinked = unlinked.await.unwrap().unwrap();
        let (behind, (position, _)) = behind.await.unwrap().unwrap();
        assert_eq!(position, None, "not linked past an unlinked record");
        assert!(unlinked < behind);

        assert_eq!(store.audit_unlinked().await.unwrap().count, 0);
        let page = store.audit_chain_page(0, 10).await.unwrap();
        let order: Vec<(i64, i64)> = page.iter().map(|r| (r.position, r.fields.id)).collect();
        assert_eq!(
            order,
            [(1, first), (2, second), (3, unlinked), (4, behind)],
            "positions follow ids"
        );
        let report = audit::verify(&store, &|_| Ok(()), None, &mut |_, _| {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(report.records, 4);
        store.close().await;
    }
}
