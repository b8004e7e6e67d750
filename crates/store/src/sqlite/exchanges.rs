//! The SQLite statements behind bank exchanges: the row, its references and its audit
//! record in one writer job; reads from the read pool. Instants are TEXT in the fixed form
//! of `codec.rs`.

use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, BACKEND};
use crate::codec;
use crate::error::statement_error;
use crate::exchanges::{
    self as shared, ExchangeColumns, NewBankExchange, StoredBankExchange, EXCHANGE_COLUMNS,
};
use crate::{NewAuditRecord, StoreError};

fn err(op: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| statement_error(BACKEND, op, e)
}

fn exchange_from_row(row: &SqliteRow) -> Result<StoredBankExchange, StoreError> {
    const T: &str = "bank_exchanges";
    let at: String = codec::column(row, T, "at")?;
    ExchangeColumns {
        id: codec::column(row, T, "id")?,
        at: codec::instant_from_text(&at, T, "at")?,
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

/// What a failed record says it was doing.
pub(super) const RECORD_OP: &str = "recording a bank exchange";

pub(super) const INSERT_EXCHANGE_SQL: &str =
    "INSERT INTO bank_exchanges (at, bank_id, connection_id, function, reference, outcome, \
       bank_code, elapsed_ms, request_masked, request_truncated, response_masked, \
       response_truncated) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

pub(super) const INSERT_REFERENCE_SQL: &str =
    "INSERT INTO bank_exchange_references (reference, exchange_id) VALUES (?, ?)";

/// The row, its references and its audit record in one direct writer job
/// (`DirectPayments::record_exchange`): a bank call's record costs the writer no round
/// trip to sqlx's thread.
pub(super) async fn record(
    store: &SqliteStore,
    new: NewBankExchange,
    audit: NewAuditRecord,
) -> Result<i64, StoreError> {
    let new = shared::checked(new)?;
    store
        .writer
        .write_direct(move |db| db.record_exchange(&new, audit.clone()))
        .await
}

pub(super) async fn get(
    store: &SqliteStore,
    id: i64,
) -> Result<Option<StoredBankExchange>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {EXCHANGE_COLUMNS} FROM bank_exchanges e WHERE e.id = ?"
    ))
    .bind(id)
    .fetch_optional(&store.readers)
    .await
    .map_err(err("reading a bank exchange"))?;
    row.as_ref().map(exchange_from_row).transpose()
}

pub(super) async fn by_reference(
    store: &SqliteStore,
    reference: &str,
    limit: u32,
) -> Result<Vec<StoredBankExchange>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {EXCHANGE_COLUMNS} FROM bank_exchange_references r \
         JOIN bank_exchanges e ON e.id = r.exchange_id \
         WHERE r.reference = ? ORDER BY e.id LIMIT ?"
    ))
    .bind(reference)
    .bind(shared::list_limit(limit))
    .fetch_all(&store.readers)
    .await
    .map_err(err("listing the bank exchanges of a reference"))?;
    rows.iter().map(exchange_from_row).collect()
}

pub(super) async fn reference_object(
    store: &SqliteStore,
    reference: &str,
) -> Result<Option<String>, StoreError> {
    let object: Option<String> = sqlx::query_scalar(
        "SELECT 'payment:' || id FROM payments WHERE business_reference = ?1 \
         UNION ALL \
         SELECT 'payment_batch:' || batch_id FROM payment_batch_chunks \
           WHERE business_reference = ?1 \
         LIMIT 1",
    )
    .bind(reference)
    .fetch_optional(&store.readers)
    .await
    .map_err(err("finding what a business reference belongs to"))?;
    Ok(object)
}
