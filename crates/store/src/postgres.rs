//! [`PgStore`]: the PostgreSQL backend, for several gateway instances sharing one database.
//!
//! Every write is one transaction on a pooled connection (the server does the group commit).
//! Audit ids must ascend in commit order, which an identity column alone does not give under
//! concurrency (ids are drawn before commit); so an audit insert first takes a
//! transaction-scoped advisory lock, held until commit, and is the last statement of its
//! transaction to keep that hold short. The price: audited writes commit one at a time
//! across the cluster. New payments, the bulk of them, therefore share transactions: the
//! group commit of `intake.rs` writes many creates in one, with one hold of the lock.
//!
//! Instants are TIMESTAMPTZ (microseconds), money BIGINT minor units beside a TEXT code,
//! audit details a `json` column (kept byte for byte, unlike `jsonb`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};

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

mod batches;
mod chain;
mod events;
mod exchanges;
mod group;
mod intake;
mod payments;
mod resolutions;
mod statements;
mod transitions;
mod webhooks;

const BACKEND: Backend = Backend::Postgres;

/// The advisory lock key that orders audit inserts ("bdaudit" in ASCII).
const AUDIT_ORDER_LOCK_KEY: i64 = 0x0062_6461_7564_6974;
const IDLE_TIMEOUT_S: u64 = 600;
const MAX_LIFETIME_S: u64 = 1_800;
/// A pooled connection idle for at least this long (since it went back to the pool) is
/// pinged before it is handed out, and replaced when the ping fails (a server restarted, a
/// firewall that dropped an idle session; sqlx logs each such failure at warn). One used
/// more recently is handed out as it is: pinging every connection on every acquire cost a
/// round trip before each statement outside the groups (a bank exchange's look-up, a
/// claim, every read; BENCHMARKS.md, issue 5), and a ping cannot promise the next
/// statement's fate anyway, since the connection may break right after it. (sqlx also
/// pings a connection as it is returned, in a task of its own, off the caller's path.)
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// The PostgreSQL store. See the module documentation.
pub struct PgStore {
    pool: PgPool,
    pool_size: u32,
    /// The install id never changes once migrated: read once.
    install_id: tokio::sync::OnceCell<String>,
    chain: crate::audit::AuditChainOptions,
    /// Group commit of new payments (`intake.rs`).
    intake: intake::GroupIntake,
    /// Group commit of payment status changes (`transitions.rs`).
    transitions: transitions::GroupTransitions,
    /// Group commit of bank exchange records (`exchanges.rs`).
    exchanges: exchanges::GroupExchanges,
}

// By hand: the pool's own Debug prints its connect options, password included.
impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/postgres")
}

impl PgStore {
    /// Connects a pool to `url` (checking one connection works) and migrates when
    /// `opts.migrate`.
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<PgStore, StoreError> {
        opts.validate()?;
        let connect = PgConnectOptions::from_str(url)
            .map_err(|source| StoreError::Connect {
                backend: BACKEND,
                source,
            })?
            .application_name("bankdirect")
            .statement_cache_capacity(STATEMENT_CACHE_CAPACITY)
            .options([
                (
                    "statement_timeout",
                    format!("{}ms", opts.pg_statement_timeout_ms),
                ),
                ("timezone", "UTC".to_owned()),
                // Read by `audit_append_linked` (migration 0016): link records as appended.
                (
                    "bankdirect.audit_link",
                    if opts.audit_chain.enabled {
                        "on"
                    } else {
                        "off"
                    }
                    .to_owned(),
                ),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.pg_pool_size)
            .min_connections(0)
            .acquire_timeout(Duration::from_millis(opts.acquire_timeout_ms))
            .idle_timeout(Duration::from_secs(IDLE_TIMEOUT_S))
            .max_lifetime(Duration::from_secs(MAX_LIFETIME_S))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect)
            .await
            .map_err(|source| StoreError::Connect {
                backend: BACKEND,
                source,
            })?;
        let store = PgStore {
            intake: intake::spawn(pool.clone()),
            transitions: transitions::spawn(pool.clone()),
            exchanges: exchanges::spawn(pool.clone()),
            pool,
            pool_size: opts.pg_pool_size,
            install_id: tokio::sync::OnceCell::new(),
            chain: opts.audit_chain.clone(),
        };
        if opts.migrate {
            store.migrate().await?;
        }
        tracing::info!("PostgreSQL store open");
        Ok(store)
    }

    /// Runs `work` in one transaction: committed if it returns `Ok`, rolled back otherwise.
    pub(crate) async fn write<T, F>(&self, op: &'static str, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send,
        T: Send,
    {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| statement_error(BACKEND, op, e))?;
        // On error `tx` is dropped, which rolls it back.
        let value = work(&mut tx).await?;
        tx.commit().await.map_err(|e| committing_error(op, e))?;
        Ok(value)
    }
}

/// The error of a COMMIT, or of a write that is one statement (it commits as it ends).
fn committing_error(op: &'static str, err: sqlx::Error) -> StoreError {
    match err {
        // The server answered: it rolled the transaction back.
        sqlx::Error::Database(_) => statement_error(BACKEND, op, err),
        // The connection broke: the COMMIT may or may not have been applied.
        other => StoreError::OutcomeUnknown {
            backend: BACKEND,
            source: other,
        },
    }
}

impl PgStore {
    /// A pooled connection, outside any transaction: for reads of several statements, and
    /// for a write that is one statement (it commits as it ends).
    async fn read_conn(&self) -> Result<sqlx::pool::PoolConnection<Postgres>, StoreError> {
        self.pool
            .acquire()
            .await
            .map_err(|e| statement_error(BACKEND, "taking a connection", e))
    }
}

async fn insert_audit(conn: &mut PgConnection, row: &AuditRow) -> Result<i64, StoreError> {
    only_id(&append_audits(conn, &[row]).await?, "audit_log")
}

/// The id drawn for the one row written to `table` by a statement that writes many.
fn only_id(ids: &[i64], table: &'static str) -> Result<i64, StoreError> {
    ids.first().copied().ok_or_else(|| StoreError::Corrupt {
        table,
        column: "id",
        reason: "no id was drawn for the row".to_owned(),
    })
}

/// Audit records as the arrays `audit_append_linked` (migration 0016) takes, in order.
pub(super) struct AuditColumns<'a> {
    pub at: Vec<DateTime<Utc>>,
    pub actor: Vec<&'a str>,
    pub action: Vec<&'a str>,
    pub object: Vec<&'a str>,
    pub request_id: Vec<Option<&'a str>>,
    pub outcome: Vec<&'a str>,
    pub details: Vec<&'a str>,
}

impl<'a> AuditColumns<'a> {
    pub(super) fn of(audits: impl ExactSizeIterator<Item = &'a AuditRow>) -> Self {
        let n = audits.len();
        let mut c = AuditColumns {
            at: Vec::with_capacity(n),
            actor: Vec::with_capacity(n),
            action: Vec::with_capacity(n),
            object: Vec::with_capacity(n),
            request_id: Vec::with_capacity(n),
            outcome: Vec::with_capacity(n),
            details: Vec::with_capacity(n),
        };
        for a in audits {
            c.at.push(a.at);
            c.actor.push(a.actor.as_str());
            c.action.push(a.action.as_str());
            c.object.push(a.object.as_str());
            c.request_id.push(a.request_id.as_deref());
            c.outcome.push(a.outcome.as_str());
            c.details.push(a.details.as_str());
        }
        c
    }
}

/// Appends `audits` in order under one hold of the audit-order lock (held until commit);
/// returns their ids. `audit_append_linked` (migration 0016) takes the lock, reads the
/// chain's head, draws the ids and inserts the records linked after that head, or
/// unlinked when the head is not linked (a backlog, or the chain off), for the chainer:
/// one statement, so the lock is not held across a round trip to the store before the
/// COMMIT's.
pub(super) async fn append_audits(
    conn: &mut PgConnection,
    audits: &[&AuditRow],
) -> Result<Vec<i64>, StoreError> {
    const OP: &str = "appending audit records";
    let c = AuditColumns::of(audits.iter().copied());
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT audit_append_linked($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(AUDIT_ORDER_LOCK_KEY)
            .bind(&c.at)
            .bind(&c.actor)
            .bind(&c.action)
            .bind(&c.object)
            .bind(&c.request_id)
            .bind(&c.outcome)
            .bind(&c.details)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| statement_error(BACKEND, OP, e))?;
    if ids.len() != audits.len() {
        return Err(StoreError::Corrupt {
            table: "audit_log",
            column: "id",
            reason: format!("{} ids drawn for {} records", ids.len(), audits.len()),
        });
    }
    Ok(ids)
}

async fn upsert_snapshot(conn: &mut PgConnection, row: &SnapshotRow) -> Result<(), StoreError> {
    // An older snapshot arriving late is ignored rather than moving the balance backwards.
    sqlx::query(
        "INSERT INTO balance_snapshots \
           (account_id, currency, booked_minor, available_minor, as_of, fetched_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
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
    .bind(row.as_of)
    .bind(row.fetched_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| statement_error(BACKEND, "saving a balance snapshot", e))?;
    Ok(())
}

fn audit_from_row(row: &PgRow) -> Result<AuditRecord, StoreError> {
    const T: &str = "audit_log";
    let details: String = codec::column(row, T, "details")?;
    Ok(AuditRecord {
        id: codec::column(row, T, "id")?,
        position: codec::column(row, T, "position")?,
        hash: codec::column(row, T, "hash")?,
        at: codec::column::<_, DateTime<Utc>>(row, T, "at")?,
        actor: codec::column(row, T, "actor")?,
        action: codec::column(row, T, "action")?,
        object: codec::column(row, T, "object")?,
        request_id: codec::column(row, T, "request_id")?,
        outcome: codec::column(row, T, "outcome")?,
        details: codec::details_from_text(&details)?,
    })
}

fn snapshot_from_row(row: &PgRow) -> Result<BalanceSnapshot, StoreError> {
    const T: &str = "balance_snapshots";
    StoredSnapshot {
        account_id: codec::column(row, T, "account_id")?,
        currency: codec::column(row, T, "currency")?,
        booked_minor: codec::column(row, T, "booked_minor")?,
        available_minor: codec::column(row, T, "available_minor")?,
        as_of: codec::column(row, T, "as_of")?,
        fetched_at: codec::column(row, T, "fetched_at")?,
    }
    .into_domain()
}

fn snapshots_within_limit(rows: &[PgRow]) -> Result<(), StoreError> {
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
impl Store for PgStore {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx takes an advisory lock, so instances starting together migrate one by one.
        migrator()
            .run(&self.pool)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: BACKEND,
                source,
            })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
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
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| statement_error(BACKEND, "reading the install id", e))?
                .ok_or(StoreError::Uninitialised { what: "install id" })
            })
            .await
            .cloned()
    }

    async fn append_audit(&self, rec: NewAuditRecord) -> Result<i64, StoreError> {
        let row = AuditRow::new(rec)?;
        self.write("appending an audit record", |conn| {
            Box::pin(async move { insert_audit(conn, &row).await })
        })
        .await
    }

    async fn audit_chain_tick(&self) -> Result<audit::ChainTick, StoreError> {
        if !self.chain.enabled {
            return Ok(audit::ChainTick::default());
        }
        let opts = self.chain.clone();
        self.write("linking the audit chain", move |conn| {
            Box::pin(async move { chain::tick(conn, &opts).await })
        })
        .await
    }

    async fn audit_chain_page(
        &self,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<audit::ChainedRecord>, StoreError> {
        const T: &str = "audit_log";
        let rows = sqlx::query(
            "SELECT position, id, at, actor, action, object, request_id, outcome, \
                    details::text AS details, prev_hash, hash \
             FROM audit_log WHERE position > $1 ORDER BY position LIMIT $2",
        )
        .bind(after_position)
        .bind(i64::from(limit.clamp(1, audit::CHAIN_PAGE_MAX)))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| statement_error(BACKEND, "reading the audit chain", e))?;
        rows.iter()
            .map(|row| {
                Ok(audit::ChainedRecord {
                    position: codec::column(row, T, "position")?,
                    fields: chain::fields_from_row(row)?,
                    prev_hash: codec::column::<_, Option<Vec<u8>>>(row, T, "prev_hash")?
                        .unwrap_or_default(),
                    hash: codec::column::<_, Option<Vec<u8>>>(row, T, "hash")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn audit_chain_length(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, Option<i64>>("SELECT max(position) FROM audit_log")
            .fetch_one(&self.pool)
            .await
            .map(Option::unwrap_or_default)
            .map_err(|e| statement_error(BACKEND, "reading the audit chain", e))
    }

    async fn audit_unlinked(&self) -> Result<audit::UnlinkedSummary, StoreError> {
        let (count, min_id): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), min(id) FROM audit_log WHERE position IS NULL")
                .fetch_one(&self.pool)
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
             WHERE position > $1 ORDER BY position LIMIT $2",
        )
        .bind(after_position)
        .bind(i64::from(limit.clamp(1, audit::CHAIN_PAGE_MAX)))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| statement_error(BACKEND, "reading audit checkpoints", e))?;
        rows.iter().map(chain::checkpoint_from_row).collect()
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<audit::AuditCheckpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT position, hash, at, key_id, signature FROM audit_checkpoints \
             ORDER BY position DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| statement_error(BACKEND, "reading audit checkpoints", e))?;
        row.as_ref().map(chain::checkpoint_from_row).transpose()
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT id, position, hash, at, actor, action, object, request_id, outcome, \
                    details::text AS details \
             FROM audit_log WHERE TRUE",
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
        if let Some(from) = q.from {
            query.push(" AND at >= ").push_bind(from);
        }
        if let Some(to) = q.to {
            query.push(" AND at < ").push_bind(to);
        }
        if let Some(after_id) = q.after_id {
            query.push(" AND id > ").push_bind(after_id);
        }
        query
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(q.effective_limit()));
        let rows = query
            .build()
            .fetch_all(&self.pool)
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
        self.write("saving balances", |conn| {
            Box::pin(async move {
                for row in &rows {
                    upsert_snapshot(conn, row).await?;
                }
                // Last, so the audit-order lock is held only until the imminent commit.
                insert_audit(conn, &audit).await?;
                Ok(())
            })
        })
        .await
    }

    async fn latest_balances(&self) -> Result<Vec<BalanceSnapshot>, StoreError> {
        let limit = i64::try_from(BALANCES_MAX_ROWS + 1).unwrap_or(i64::MAX);
        let rows = sqlx::query(&format!(
            "{SNAPSHOT_COLUMNS} ORDER BY account_id, currency LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
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
            "{SNAPSHOT_COLUMNS} WHERE account_id = $1 ORDER BY currency LIMIT $2"
        ))
        .bind(account_id.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
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
        self.write("ingesting statement entries", |conn| {
            Box::pin(async move {
                let mut tx = statements::PgIngest { conn };
                let report = shared::ingest(&mut tx, &rows, audit.at).await?;
                // Last, so the audit-order lock is held only until the imminent commit.
                insert_audit(tx.conn, &audit).await?;
                Ok(report)
            })
        })
        .await
    }

    async fn list_entries(&self, q: &EntryQuery) -> Result<Vec<StoredEntry>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {ENTRY_COLUMNS} FROM statement_entries WHERE account_id = "
        ));
        query.push_bind(q.account_id.as_str());
        query.push(" AND seq > ").push_bind(q.after_seq);
        if let Some(from) = q.from {
            shared::check_date("entry query from", from)?;
            query
                .push(" AND booking_date >= ")
                .push_bind(statements::naive(from));
        }
        if let Some(to) = q.to {
            shared::check_date("entry query to", to)?;
            query
                .push(" AND booking_date <= ")
                .push_bind(statements::naive(to));
        }
        if let Some(status) = q.status {
            query
                .push(" AND status = ")
                .push_bind(shared::status_text(status));
        }
        query
            .push(" ORDER BY seq LIMIT ")
            .push_bind(i64::from(q.effective_limit()));
        let rows = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| statement_error(BACKEND, "listing statement entries", e))?;
        rows.iter().map(statements::entry_from_row).collect()
    }

    async fn entries_changed_since(
        &self,
        account_ids: &[domain::AccountId],
        after_change_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
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
        let ids: Vec<String> = account_ids
            .iter()
            .map(|id| id.as_str().to_owned())
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM statement_entries \
             WHERE change_seq > $1 AND account_id = ANY($2) \
             ORDER BY change_seq LIMIT $3"
        ))
        .bind(after_change_seq)
        .bind(ids)
        .bind(i64::from(effective_feed_limit(limit)))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| statement_error(BACKEND, "reading the statement change feed", e))?;
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
             WHERE account_id = $1 AND booking_date = $2 AND status = 'booked' \
             ORDER BY seq LIMIT $3"
        ))
        .bind(account_id.as_str())
        .bind(statements::naive(date))
        .bind(shared::fetch_bound(BOOKED_ENTRIES_PER_DAY_MAX))
        .fetch_all(&self.pool)
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
                self.write("recording a continuity break", |conn| {
                    Box::pin(async move { statements::upsert_break(conn, &row).await })
                })
                .await
            }
            None => {
                let account_id = account_id.as_str().to_owned();
                let date = statements::naive(date);
                self.write("clearing a continuity break", |conn| {
                    Box::pin(async move { statements::clear_break(conn, &account_id, date).await })
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
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT account_id, date, currency, opening_minor, closing_minor, \
             entries_sum_minor, gap_minor, detected_at FROM continuity_breaks WHERE account_id = ",
        );
        query.push_bind(account_id.as_str());
        if let Some(from) = from {
            shared::check_date("continuity breaks from", from)?;
            query
                .push(" AND date >= ")
                .push_bind(statements::naive(from));
        }
        if let Some(to) = to {
            shared::check_date("continuity breaks to", to)?;
            query.push(" AND date <= ").push_bind(statements::naive(to));
        }
        query
            .push(" ORDER BY date LIMIT ")
            .push_bind(shared::fetch_bound(CONTINUITY_BREAKS_MAX_ROWS));
        let rows = query
            .build()
            .fetch_all(&self.pool)
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
             FROM statement_sync WHERE account_id = $1",
        )
        .bind(account_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| statement_error(BACKEND, "reading the statement sync state", e))?;
        row.as_ref().map(statements::sync_from_row).transpose()
    }

    async fn save_sync_state(&self, state: &SyncState) -> Result<(), StoreError> {
        let row = SyncRow::new(state)?;
        self.write("saving the statement sync state", |conn| {
            Box::pin(async move { statements::upsert_sync(conn, &row).await })
        })
        .await
    }

    async fn list_payments(&self, q: &PaymentQuery) -> Result<Vec<StoredPayment>, StoreError> {
        q.check()?;
        if q.account_ids.as_ref().is_some_and(|ids| ids.is_empty()) {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Postgres>::new(format!(
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
                .push_bind(codec::instant(from, "payment query created_from")?);
        }
        if let Some(before) = q.created_before {
            query
                .push(" AND created_at < ")
                .push_bind(codec::instant(before, "payment query created_before")?);
        }
        if let Some(after) = &q.after {
            query
                .push(" AND (created_at, id) > (")
                .push_bind(codec::instant(after.created_at, "payment cursor")?)
                .push(", ")
                .push_bind(after.id.as_str().to_owned())
                .push(")");
        }
        query
            .push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(q.effective_limit()));
        let rows = query
            .build()
            .fetch_all(&self.pool)
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
             FROM idempotency_keys WHERE client_id = $1 AND key = $2",
        )
        .bind(client_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| statement_error(BACKEND, "reading an idempotency key", e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let request_hash: String = codec::column(&row, "idempotency_keys", "request_hash")?;
        let state: String = codec::column(&row, "idempotency_keys", "state")?;
        // INTEGER in PostgreSQL is 32 bits.
        let status: Option<i32> = codec::column(&row, "idempotency_keys", "response_status")?;
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
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| statement_error(BACKEND, "reading a payment", e))?;
        row.as_ref().map(payments::payment_from_row).transpose()
    }

    async fn payment_history(
        &self,
        id: &domain::PaymentId,
    ) -> Result<Vec<PaymentHistoryEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {HISTORY_COLUMNS} FROM payment_history WHERE payment_id = $1 \
             ORDER BY seq LIMIT $2"
        ))
        .bind(id.as_str())
        .bind(shared::fetch_bound(PAYMENT_HISTORY_MAX_ROWS))
        .fetch_all(&self.pool)
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
             WHERE status = 'submitting' AND (lease_expires_at IS NULL OR lease_expires_at < $1) \
             ORDER BY lease_expires_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        // Grouped with concurrent creates when it is the plain case; else on its own.
        let rows = match self.intake.submit(rows).await? {
            intake::Grouped::Done(outcome) => return Ok(outcome),
            intake::Grouped::Alone(rows) => rows,
        };
        self.write("creating a payment", move |conn| {
            Box::pin(async move {
                let mut tx = payments::PgPayments::new(conn);
                pay::create(&mut tx, &rows).await
            })
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
        self.write("deciding on a payment", move |conn| {
            Box::pin(async move {
                let mut tx = payments::PgPayments::new(conn);
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
        self.write("deciding on a payment batch", move |conn| {
            Box::pin(async move {
                let mut tx = payments::PgPayments::new(conn);
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
        self.write("proposing a resolution", move |conn| {
            Box::pin(async move {
                let mut tx = payments::PgPayments::new(conn);
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
            "SELECT {} FROM resolution_proposals WHERE object_kind = $1 AND object_id = $2",
            crate::resolutions::PROPOSAL_COLUMNS
        ))
        .bind(object.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
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
             FROM approval_decisions WHERE object_kind = $1 AND object_id = $2 \
             ORDER BY at, decided_by LIMIT $3",
        )
        .bind(object.as_str())
        .bind(id)
        .bind(crate::APPROVAL_DECISIONS_MAX)
        .fetch_all(&self.pool)
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
        // Committed with concurrent changes; on its own only when its group failed.
        let steps = match self.transitions.submit(steps).await? {
            transitions::Grouped::Done(outcome) => return *outcome,
            transitions::Grouped::Alone(steps) => steps,
        };
        self.write("changing a payment's status", move |conn| {
            Box::pin(async move {
                let mut tx = payments::PgPayments::new(conn);
                pay::transition_steps(&mut tx, &steps).await
            })
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
        // A claim of one status (the dispatcher's) has its plan pinned to the ordered scan
        // of `payments_due` that stops at the limit: with no statistics yet (a young
        // table, before autovacuum first analyses it) the planner guessed a handful of due
        // rows and chose a bitmap scan of EVERY due payment of the status and a sort of
        // them all, 6-16 ms per claim of 32 with 8 000 queued (BENCHMARKS.md, issue 5).
        // `SET LOCAL` lasts for this transaction only. A claim of several statuses (the
        // poller's) cannot use that order, so it keeps the planner's choice. A claim
        // whose commit is lost with its connection holds its payments until the lease
        // runs out, as a claimer that died would; the next claim takes them then.
        let owner = lease_owner.to_owned();
        let claimed = self
            .write("claiming payments", move |conn| {
                Box::pin(async move {
                    if statuses.len() == 1 {
                        sqlx::query("SET LOCAL enable_bitmapscan = off")
                            .execute(&mut *conn)
                            .await
                            .map_err(|e| statement_error(BACKEND, "pinning the claim's plan", e))?;
                    }
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
        self.write(what, move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE payments SET \
                       next_attempt_at = $1, \
                       lease_owner = NULL, lease_expires_at = NULL, version = version + 1 \
                     WHERE id = $2 AND fencing_token = $3",
                )
                .bind(next)
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
        self.write("creating a payment batch", move |conn| {
            Box::pin(async move {
                let mut tx = payments::PgPayments::new(conn);
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
        self.write("changing a batch chunk's status", move |conn| {
            Box::pin(async move {
                let mut tx = payments::PgPayments::new(conn);
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
        self.write("claiming due batch chunks", move |conn| {
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
        self.write("rescheduling a batch chunk", move |conn| {
            Box::pin(async move {
                if batches::reschedule(conn, &id, chunk_no, fencing_token, next).await? {
                    return Ok(());
                }
                let mut tx = payments::PgPayments::new(conn);
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
        self.write("cancelling a payment batch", move |conn| {
            Box::pin(async move {
                let mut tx = payments::PgPayments::new(conn);
                crate::batches::cancel(&mut tx, &id, &actor, &audit).await
            })
        })
        .await
    }

    async fn list_events(
        &self,
        q: &crate::events::EventQuery,
    ) -> Result<Vec<crate::events::StoredEvent>, StoreError> {
        events::list(&self.pool, q).await
    }

    async fn idempotency_purge(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = codec::instant(now, "purge now")?;
        self.write("purging idempotency keys", move |conn| {
            Box::pin(async move {
                let done = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at < $1")
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| statement_error(BACKEND, "purging idempotency keys", e))?;
                Ok(done.rows_affected())
            })
        })
        .await
    }

    async fn close(&self) {
        self.pool.close().await;
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
