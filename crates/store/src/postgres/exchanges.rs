//! The PostgreSQL statements behind bank exchanges: the row, its references and its audit
//! record in one transaction (the audit insert last, as `insert_audit` wants); reads from
//! the pool.

use sqlx::postgres::PgRow;

use super::{PgStore, BACKEND};
use crate::codec;
use crate::error::statement_error;
use crate::exchanges::{
    self as shared, ExchangeColumns, NewBankExchange, StoredBankExchange, EXCHANGE_COLUMNS,
};
use crate::{NewAuditRecord, StoreError};

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
    const OP: &str = "recording a bank exchange";
    let new = shared::checked(new)?;
    store
        .write(OP, move |conn| {
            Box::pin(async move {
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
                        "INSERT INTO bank_exchange_references (reference, exchange_id) \
                         VALUES ($1, $2)",
                    )
                    .bind(reference)
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map_err(err(OP))?;
                }
                let audit = shared::audit_row(audit, id)?;
                super::insert_audit(conn, &audit).await?;
                Ok(id)
            })
        })
        .await
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
