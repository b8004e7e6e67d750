//! The PostgreSQL statements behind bank exchanges: the row, its references and its audit
//! record in one statement (the audit append last, where it takes the audit-order lock);
//! reads from the pool.
//!
//! Exchanges are written in groups, as payment status changes are (`transitions.rs`): an
//! audit insert holds the audit-order lock until its commit has flushed, so one exchange per
//! transaction meant one exchange per commit flush across the cluster, and every dispatched
//! payment records one (BENCHMARKS.md, issue 5). One group task takes the exchanges
//! queued (up to [`GROUP_MAX`]), draws their ids, and writes their rows, references and
//! audit records with ONE statement ([`GROUP_SQL`]) outside any explicit transaction, so
//! the server commits it as it ends, as intake's groups are (`intake.rs`): the lock is
//! held from the audit append to the end of the commit (the references' foreign-key
//! checks, run as the statement ends, included) with no round trip to the gateway in
//! between. (In a transaction it was held across the COMMIT's round trip too, and in a
//! dispatch two in three of the lock's holds were exchange groups: BENCHMARKS.md.)
//! An exchange has no outcome of its own to keep apart (its rows were checked before it was
//! queued): when the server refuses the statement, nothing of the group was stored and
//! each exchange runs alone, the same statement for it only, where a faulty one fails
//! alone. Only a statement whose answer was lost answers `OutcomeUnknown`.

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres};

use super::group::{self, GroupQueue};
use super::{AuditColumns, PgStore, AUDIT_ORDER_LOCK_KEY, BACKEND};
use crate::codec::{self, AuditRow};
use crate::error::statement_error;
use crate::exchanges::{
    self as shared, ExchangeColumns, NewBankExchange, StoredBankExchange, EXCHANGE_COLUMNS,
};
use crate::{NewAuditRecord, StoreError};

/// Most exchanges written in one statement.
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
    GroupQueue::spawn(pool, GROUP_TASKS, GROUP_MAX, |conn, jobs| {
        Box::pin(write_group(conn, jobs))
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
    const OP: &str = "recording a bank exchange";
    let mut conn = store.read_conn().await?;
    match write_rows(&mut conn, &[&rows]).await {
        Ok(ids) => super::only_id(&ids, "bank_exchanges"),
        Err(Failed::Invalid(e)) => Err(e),
        Err(Failed::Sent(e)) => Err(super::committing_error(OP, e)),
    }
}

/// Writes one group; see the module documentation.
async fn write_group(mut conn: PoolConnection<Postgres>, jobs: Vec<Job>) {
    let rows: Vec<&ExchangeRows> = jobs.iter().map(|j| &*j.rows).collect();
    match write_rows(&mut conn, &rows).await {
        Ok(ids) => {
            for (job, id) in jobs.into_iter().zip(ids) {
                job.done(id);
            }
        }
        Err(Failed::Invalid(e)) => {
            tracing::warn!(exchanges = jobs.len(), error = %e, "bank exchange group not written; its exchanges run alone");
            jobs.into_iter().for_each(Job::alone);
        }
        Err(Failed::Sent(e)) => {
            group::CommitFailed::of(e, "bank exchange group", jobs.len()).answer_all(jobs);
        }
    }
}

/// Why [`write_rows`] wrote nothing, or may have.
enum Failed {
    /// Refused before anything was sent to write (an audit record that cannot be built, or
    /// the ids not drawn): nothing is stored.
    Invalid(StoreError),
    /// The statement failed: refused by the server (nothing stored) or sent with no
    /// answer back (stored or not, nobody knows), as a COMMIT would (`group::CommitFailed`).
    Sent(sqlx::Error),
}

/// The exchanges, their references and their audit records in ONE statement (the
/// module documentation): first the ids are drawn, so each audit record can name its
/// exchange. Every array's order is `rows`'; the rows go in with `unnest`, so the text
/// never changes with the group's size and stays prepared.
/// 1. `x`, `r`: the exchanges and their references.
/// 2. Last, once both inserts have run (the call reads their counts), the audit records
///    in `rows`' order: `audit_append_linked` (migration 0016) takes the audit-order lock,
///    links them after the chain's head and inserts them.
const GROUP_SQL: &str = "\
WITH x AS (
    INSERT INTO bank_exchanges (id, at, bank_id, connection_id, function, reference, outcome,
        bank_code, elapsed_ms, request_masked, request_truncated, response_masked,
        response_truncated)
    OVERRIDING SYSTEM VALUE
    SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::boolean[],
        $12::text[], $13::boolean[])
    RETURNING 1
), r AS (
    INSERT INTO bank_exchange_references (reference, exchange_id)
    SELECT * FROM unnest($14::text[], $15::bigint[])
    RETURNING 1
)
SELECT audit_append_linked($16, $17, $18, $19, $20, $21, $22, $23)
FROM (SELECT count(*) FROM x) AS xx(n),
     -- Read here so that both inserts have run before the lock is taken.
     (SELECT count(*) FROM r) AS rr(n)";

/// Writes `rows` (a group's, or one exchange's on its own); returns their ids in order.
async fn write_rows(conn: &mut PgConnection, rows: &[&ExchangeRows]) -> Result<Vec<i64>, Failed> {
    let n = i32::try_from(rows.len()).map_err(|_| {
        Failed::Invalid(StoreError::Invalid {
            reason: format!("{} bank exchanges in one group", rows.len()),
        })
    })?;
    // The sequence is looked up once (a materialised CTE), not once per id.
    let ids: Vec<i64> = sqlx::query_scalar(
        "WITH q AS MATERIALIZED \
           (SELECT pg_get_serial_sequence('bank_exchanges', 'id')::regclass AS seq) \
         SELECT nextval(q.seq) FROM q, generate_series(1, $1)",
    )
    .bind(n)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Failed::Invalid(statement_error(BACKEND, "drawing bank exchange ids", e)))?;
    if ids.len() != rows.len() {
        return Err(Failed::Invalid(StoreError::Corrupt {
            table: "bank_exchanges",
            column: "id",
            reason: format!("{} ids drawn for {} exchanges", ids.len(), rows.len()),
        }));
    }
    let audits = rows
        .iter()
        .zip(&ids)
        .map(|(r, id)| shared::audit_row(r.audit.clone(), *id))
        .collect::<Result<Vec<AuditRow>, StoreError>>()
        .map_err(Failed::Invalid)?;
    let a = AuditColumns::of(audits.iter());
    let len = rows.len();
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
    for (row, id) in rows.iter().zip(&ids) {
        let new = &row.new;
        at.push(new.at);
        bank_id.push(new.bank_id.as_str());
        connection_id.push(new.connection_id.as_str());
        function.push(new.function.as_str());
        reference.push(new.references.first().map(String::as_str));
        outcome.push(new.outcome.as_str());
        bank_code.push(new.bank_code.as_deref());
        // `checked` refused what does not fit 63 bits.
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
    sqlx::query(GROUP_SQL)
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
        .bind(&ref_text)
        .bind(&ref_id)
        .bind(AUDIT_ORDER_LOCK_KEY)
        .bind(&a.at)
        .bind(&a.actor)
        .bind(&a.action)
        .bind(&a.object)
        .bind(&a.request_id)
        .bind(&a.outcome)
        .bind(&a.details)
        .execute(&mut *conn)
        .await
        .map_err(Failed::Sent)?;
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
