//! The PostgreSQL statements behind bank exchanges: the row, its references and its audit
//! record in one transaction (the audit insert last, as `insert_audit` wants); reads from
//! the pool.
//!
//! Exchanges are written in groups, as payment status changes are (`transitions.rs`): an
//! audit insert holds the audit-order lock until its commit has flushed, so one exchange per
//! transaction meant one exchange per commit flush across the cluster, and every dispatched
//! payment records one (BENCHMARKS.md, issue 5). One group task takes the exchanges
//! queued (up to [`GROUP_MAX`]), inserts their rows and references in ONE transaction, with
//! three statements for the whole group ([`insert_group_rows`]), then appends all their
//! audit records in one statement under one hold of the lock, and commits (`group.rs`).
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
/// Group tasks: one, for the reason given at `transitions.rs`'s `GROUP_TASKS` (measured
/// together with it).
const GROUP_TASKS: usize = 1;

/// A checked exchange and its audit record, as queued for a group.
pub(super) struct ExchangeRows {
    new: NewBankExchange,
    audit: NewAuditRecord,
}

type Job = group::Job<ExchangeRows, i64>;
/// The callers' side: a queue read by [`GROUP_TASKS`] group task(s).
pub(super) type GroupExchanges = GroupQueue<ExchangeRows, i64>;

/// Starts the group task(s) (`group.rs`); they end when the store is dropped.
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
                let id = super::only_id(
                    &insert_group_rows(conn, &[&rows.new]).await?,
                    "bank_exchanges",
                )?;
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
    let news: Vec<&NewBankExchange> = jobs.iter().map(|j| &j.rows.new).collect();
    let ids = insert_group_rows(conn, &news).await?;
    let mut audits: Vec<AuditRow> = Vec::with_capacity(jobs.len());
    for (job, id) in jobs.iter().zip(&ids) {
        audits.push(shared::audit_row(job.rows.audit.clone(), *id)?);
    }
    append_audits(conn, &audits.iter().collect::<Vec<_>>()).await?;
    Ok(ids)
}

/// Exchange rows and references in three statements, whatever their number (a group's, or
/// one exchange's on its own; row by row, it was two round trips per exchange inside a
/// group's transaction): the ids are
/// drawn first, so each exchange knows its own without relying on the order `RETURNING`
/// gives, then every row goes in with one `INSERT … FROM unnest(…)`, then every reference.
/// Returns the ids in the order of `news`.
async fn insert_group_rows(
    conn: &mut PgConnection,
    news: &[&NewBankExchange],
) -> Result<Vec<i64>, StoreError> {
    const OP: &str = "recording a group of bank exchanges";
    let n = i32::try_from(news.len()).map_err(|_| StoreError::Invalid {
        reason: format!("{} bank exchanges in one group", news.len()),
    })?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('bank_exchanges', 'id')) \
         FROM generate_series(1, $1)",
    )
    .bind(n)
    .fetch_all(&mut *conn)
    .await
    .map_err(err(OP))?;
    if ids.len() != news.len() {
        return Err(StoreError::Corrupt {
            table: "bank_exchanges",
            column: "id",
            reason: format!("{} ids drawn for {} exchanges", ids.len(), news.len()),
        });
    }
    let len = news.len();
    let mut at = Vec::with_capacity(len);
    let mut bank_id = Vec::with_capacity(len);
    let mut connection_id = Vec::with_capacity(len);
    let mut function = Vec::with_capacity(len);
    let mut reference: Vec<Option<&str>> = Vec::with_capacity(len);
    let mut outcome = Vec::with_capacity(len);
    let mut bank_code: Vec<Option<&str>> = Vec::with_capacity(len);
    let mut elapsed_ms = Vec::with_capacity(len);
    let mut request_masked: Vec<Option<&str>> = Vec::with_capacity(len);
    let mut request_truncated = Vec::with_capacity(len);
    let mut response_masked: Vec<Option<&str>> = Vec::with_capacity(len);
    let mut response_truncated = Vec::with_capacity(len);
    let (mut ref_text, mut ref_id): (Vec<&str>, Vec<i64>) = (Vec::new(), Vec::new());
    for (new, id) in news.iter().zip(&ids) {
        at.push(new.at);
        bank_id.push(new.bank_id.as_str());
        connection_id.push(new.connection_id.as_str());
        function.push(new.function.as_str());
        reference.push(new.references.first().map(String::as_str));
        outcome.push(new.outcome.as_str());
        bank_code.push(new.bank_code.as_deref());
        // As the one-exchange path binds it: the column's CHECK refuses what wrapped.
        elapsed_ms.push(new.elapsed_ms as i64);
        request_masked.push(new.request_masked.as_deref());
        request_truncated.push(new.request_truncated);
        response_masked.push(new.response_masked.as_deref());
        response_truncated.push(new.response_truncated);
        for r in &new.references {
            ref_text.push(r.as_str());
            ref_id.push(*id);
        }
    }
    sqlx::query(
        "INSERT INTO bank_exchanges (id, at, bank_id, connection_id, function, reference, \
           outcome, bank_code, elapsed_ms, request_masked, request_truncated, \
           response_masked, response_truncated) \
         OVERRIDING SYSTEM VALUE \
         SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], \
           $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], \
           $11::boolean[], $12::text[], $13::boolean[])",
    )
    .bind(&ids)
    .bind(&at)
    .bind(&bank_id)
    .bind(&connection_id)
    .bind(&function)
    .bind(&reference)
    .bind(&outcome)
    .bind(&bank_code)
    .bind(&elapsed_ms)
    .bind(&request_masked)
    .bind(&request_truncated)
    .bind(&response_masked)
    .bind(&response_truncated)
    .execute(&mut *conn)
    .await
    .map_err(err(OP))?;
    if !ref_text.is_empty() {
        sqlx::query(
            "INSERT INTO bank_exchange_references (reference, exchange_id) \
             SELECT * FROM unnest($1::text[], $2::bigint[])",
        )
        .bind(&ref_text)
        .bind(&ref_id)
        .execute(&mut *conn)
        .await
        .map_err(err(OP))?;
    }
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
