//! The PostgreSQL statements behind bank exchanges: the row, its references and its audit
//! record in one transaction (the audit insert last, as `insert_audit` wants); reads from
//! the pool.
//!
//! Exchanges are written in groups, as payment status changes are (`transitions.rs`): an
//! audit insert holds the audit-order lock until its commit has flushed, so one exchange per
//! transaction meant one exchange per commit flush across the cluster, and every dispatched
//! payment records one (BENCHMARKS.md, issue 5). A few group tasks each take the exchanges
//! queued (up to [`GROUP_MAX`]), insert their rows and references in ONE transaction, then
//! append all their audit records in one statement under one hold of the lock, and commit
//! (`group.rs`).
//! An exchange has no outcome of its own to keep apart (its rows were checked before it was
//! queued), so there are no savepoints: when anything in the group fails, nothing of it was
//! stored and each exchange is handed back to run in a transaction of its own, where a
//! faulty one fails alone. Only a COMMIT whose outcome is unknown answers `OutcomeUnknown`,
//! as the one-exchange path does.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::append_audits;
use super::group::{self, CommitFailed, GroupQueue};
use super::{PgStore, BACKEND};
use crate::codec::{self, AuditRow};
use crate::error::statement_error;
use crate::exchanges::{
    self as shared, ExchangeColumns, NewBankExchange, StoredBankExchange, EXCHANGE_COLUMNS,
};
use crate::{NewAuditRecord, StoreError};

/// Most exchanges written in one transaction.
const GROUP_MAX: usize = 128;
/// Group tasks: while one appends its audit records and commits, another inserts rows.
const GROUP_TASKS: usize = 2;

/// A checked exchange and its audit record, as queued for a group.
pub(super) struct ExchangeRows {
    new: NewBankExchange,
    audit: NewAuditRecord,
}

type Job = group::Job<ExchangeRows, i64>;
/// The callers' side: a queue read by [`GROUP_TASKS`] tasks on the pool.
pub(super) type GroupExchanges = GroupQueue<ExchangeRows, i64>;

/// Starts the group tasks. Needs a tokio runtime; they end when the store is dropped.
pub(super) fn spawn(pool: PgPool) -> GroupExchanges {
    GroupQueue::spawn(pool, GROUP_TASKS, GROUP_MAX, |tx, jobs| {
        Box::pin(write_group(tx, jobs))
    })
}

fn err(op: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| statement_error(BACKEND, op, e)
}

fn exchange_from_row(row: &PgRow) -> Result<StoredBankExchange, StoreError> {
    const T: &str = "bank_exchanges";
    ExchangeColumns {
        id: codec::column(row, T, "id")?,
        at: codec::column(row, T, "at")?,
        bank_id: codec::column(row, T, "bank_id")?,
        connection_id: codec::column(row, T, "connection_id")?,
        function: codec::column(row, T, "function")?,
        reference: codec::column(row, T, "reference")?,
        outcome: codec::column(row, T, "outcome")?,
        bank_code: codec::column(row, T, "bank_code")?,
        elapsed_ms: codec::column(row, T, "elapsed_ms")?,
        request_masked: codec::column(row, T, "request_masked")?,
        request_truncated: codec::column(row, T, "request_truncated")?,
        response_masked: codec::column(row, T, "response_masked")?,
        response_truncated: codec::column(row, T, "response_truncated")?,
    }
    .into_stored()
}

/// Inserts the exchange's row and its references; returns its id.
async fn insert_rows(conn: &mut PgConnection, new: &NewBankExchange) -> Result<i64, StoreError> {
    const OP: &str = "recording a bank exchange";
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bank_exchanges (at, bank_id, connection_id, function, \
           reference, outcome, bank_code, elapsed_ms, request_masked, \
           request_truncated, response_masked, response_truncated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(new.at)
    .bind(&new.bank_id)
    .bind(&new.connection_id)
    .bind(&new.function)
    .bind(new.references.first())
    .bind(&new.outcome)
    .bind(&new.bank_code)
    .bind(new.elapsed_ms as i64)
    .bind(&new.request_masked)
    .bind(new.request_truncated)
    .bind(&new.response_masked)
    .bind(new.response_truncated)
    .fetch_one(&mut *conn)
    .await
    .map_err(err(OP))?;
    for reference in &new.references {
        sqlx::query(
            "INSERT INTO bank_exchange_references (reference, exchange_id) VALUES ($1, $2)",
        )
        .bind(reference)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(err(OP))?;
    }
    Ok(id)
}

pub(super) async fn record(
    store: &PgStore,
    new: NewBankExchange,
    audit: NewAuditRecord,
) -> Result<i64, StoreError> {
    let new = shared::checked(new)?;
    // Committed with concurrent exchanges; on its own only when its group failed.
    let rows = match store.exchanges.submit(ExchangeRows { new, audit }).await? {
        group::Grouped::Done(id) => return Ok(id),
        group::Grouped::Alone(rows) => *rows,
    };
    store
        .write("recording a bank exchange", move |conn| {
            Box::pin(async move {
                let id = insert_rows(conn, &rows.new).await?;
                let audit = shared::audit_row(rows.audit, id)?;
                super::insert_audit(conn, &audit).await?;
                Ok(id)
            })
        })
        .await
}

/// Writes one group; see the module documentation.
async fn write_group(mut tx: Transaction<'static, Postgres>, jobs: Vec<Job>) {
    let ids = match write_rows(&mut tx, &jobs).await {
        Ok(ids) => ids,
        Err(e) => {
            // Dropping `tx` rolls the group back: nothing of it is stored.
            drop(tx);
            tracing::warn!(error = %e, "bank exchange group rolled back; its exchanges run alone");
            jobs.into_iter().for_each(Job::alone);
            return;
        }
    };
    match group::commit(tx, "bank exchange group", jobs.len()).await {
        Ok(()) => {
            for (job, id) in jobs.into_iter().zip(ids) {
                job.done(id);
            }
        }
        Err(CommitFailed::Refused) => jobs.into_iter().for_each(Job::alone),
        Err(CommitFailed::Unknown(reason)) => {
            for job in jobs {
                job.answer(Err(group::outcome_unknown(&reason)));
            }
        }
    }
}

/// The group's rows and references, then all its audit records in one statement; the
/// exchanges' ids in the jobs' order.
async fn write_rows(conn: &mut PgConnection, jobs: &[Job]) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(jobs.len());
    let mut audits: Vec<AuditRow> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let id = insert_rows(conn, &job.rows.new).await?;
        audits.push(shared::audit_row(job.rows.audit.clone(), id)?);
        ids.push(id);
    }
    append_audits(conn, &audits.iter().collect::<Vec<_>>()).await?;
    Ok(ids)
}

pub(super) async fn get(
    store: &PgStore,
    id: i64,
) -> Result<Option<StoredBankExchange>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {EXCHANGE_COLUMNS} FROM bank_exchanges e WHERE e.id = $1"
    ))
    .bind(id)
    .fetch_optional(&store.pool)
    .await
    .map_err(err("reading a bank exchange"))?;
    row.as_ref().map(exchange_from_row).transpose()
}

pub(super) async fn by_reference(
    store: &PgStore,
    reference: &str,
    limit: u32,
) -> Result<Vec<StoredBankExchange>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {EXCHANGE_COLUMNS} FROM bank_exchange_references r \
         JOIN bank_exchanges e ON e.id = r.exchange_id \
         WHERE r.reference = $1 ORDER BY e.id LIMIT $2"
    ))
    .bind(reference)
    .bind(shared::list_limit(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(err("listing the bank exchanges of a reference"))?;
    rows.iter().map(exchange_from_row).collect()
}

pub(super) async fn reference_object(
    store: &PgStore,
    reference: &str,
) -> Result<Option<String>, StoreError> {
    let object: Option<String> = sqlx::query_scalar(
        "SELECT 'payment:' || id FROM payments WHERE business_reference = $1 \
         UNION ALL \
         SELECT 'payment_batch:' || batch_id FROM payment_batch_chunks \
           WHERE business_reference = $1 \
         LIMIT 1",
    )
    .bind(reference)
    .fetch_optional(&store.pool)
    .await
    .map_err(err("finding what a business reference belongs to"))?;
    Ok(object)
}
