//! The PostgreSQL statements behind payment batches: [`BatchTx`] for the shared create,
//! chunk transition and cancel algorithms (inside one transaction, on the payment
//! statements' connection wrapper), the chunk work queue and the readers.
//!
//! Concurrency: every write to a batch first locks its row (`lock_batch`), so chunk
//! transitions of one batch on several instances serialise their history sequence, derived
//! status and event sequence; the chunk claim uses `FOR UPDATE SKIP LOCKED` like payments.

use async_trait::async_trait;
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use domain::ItemStatus;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::payments::PgPayments;
use super::BACKEND;
use crate::batches::{
    BatchColumns, BatchHistoryRow, BatchQuery, BatchRow, BatchTx, ChunkColumns, ChunkRow,
    ChunkTransitionRows, ItemColumns, ItemRow, StoredBatch, StoredBatchItem, StoredChunk,
    BATCHES_TABLE, BATCH_COLUMNS, CHUNKS_TABLE, CHUNK_COLUMNS, ITEMS_TABLE, ITEM_COLUMNS,
};
use crate::codec;
use crate::error::statement_error;
use crate::payments::{Current, IdempotencyClaim};
use crate::StoreError;

const OP: &str = "writing a payment batch";
/// Rows per multi-row item INSERT: 15 parameters each, well under PostgreSQL's 65,535.
const ITEMS_PER_INSERT: usize = 500;

fn err(e: sqlx::Error) -> StoreError {
    statement_error(BACKEND, OP, e)
}

#[async_trait]
impl BatchTx for PgPayments<'_> {
    async fn insert_key(
        &mut self,
        claim: &IdempotencyClaim,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.insert_key_row(claim, at, None).await
    }

    async fn complete_batch_key(
        &mut self,
        claim: &IdempotencyClaim,
        batch_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'completed', response_status = $3, \
               response_body = $4, batch_id = $5 \
             WHERE client_id = $1 AND key = $2",
        )
        .bind(&claim.client_id)
        .bind(&claim.key)
        .bind(i32::from(claim.response_status))
        .bind(&claim.response_body)
        .bind(batch_id)
        .execute(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn insert_batch(&mut self, b: &BatchRow, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO payment_batches \
               (id, client_id, debtor_account_id, currency, kind, requested_execution_date, \
                item_count, control_sum_minor, chunk_count, business_reference, status, \
                event_seq, created_at, updated_at, approvals_required, on_behalf_of) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'received', 0, $11, $11, $12, $13) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&b.id)
        .bind(&b.client_id)
        .bind(&b.debtor_account_id)
        .bind(b.currency)
        .bind(&b.kind)
        .bind(b.requested_execution_date.naive())
        .bind(b.item_count)
        .bind(b.control_sum_minor)
        .bind(b.chunk_count)
        .bind(&b.business_reference)
        .bind(at)
        .bind(i32::try_from(b.approvals_required).unwrap_or(i32::MAX))
        .bind(&b.on_behalf_of)
        .execute(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_chunks(
        &mut self,
        b: &BatchRow,
        chunks: &[ChunkRow],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for part in chunks.chunks(ITEMS_PER_INSERT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO payment_batch_chunks \
                   (batch_id, chunk_no, business_reference, item_count, status, ever_sent, \
                    send_attempts, next_attempt_at, fencing_token, updated_at) ",
            );
            q.push_values(part, |mut row, c| {
                row.push_bind(&b.id)
                    .push_bind(c.chunk_no)
                    .push_bind(&c.business_reference)
                    .push_bind(c.item_count)
                    .push_bind(&b.chunk_status)
                    .push("FALSE")
                    .push("0")
                    .push_bind(b.next_attempt_at)
                    .push("0")
                    .push_bind(at);
            });
            q.build().execute(&mut *self.conn).await.map_err(err)?;
        }
        Ok(())
    }

    async fn insert_items(
        &mut self,
        batch_id: &str,
        items: &[ItemRow],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for part in items.chunks(ITEMS_PER_INSERT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO payment_batch_items \
                   (batch_id, item_no, id, chunk_no, business_reference, amount_minor, \
                    creditor_name, creditor_account, creditor_bank_code, creditor_bic, \
                    creditor_bank_name, creditor_type, remittance, purpose, end_to_end_id, \
                    status, updated_at) ",
            );
            q.push_values(part, |mut row, i| {
                row.push_bind(batch_id)
                    .push_bind(i.item_no)
                    .push_bind(&i.id)
                    .push_bind(i.chunk_no)
                    .push_bind(&i.business_reference)
                    .push_bind(i.amount_minor)
                    .push_bind(&i.creditor_name)
                    .push_bind(&i.creditor_account)
                    .push_bind(&i.creditor_bank_code)
                    .push_bind(&i.creditor_bic)
                    .push_bind(&i.creditor_bank_name)
                    .push_bind(i.creditor_type)
                    .push_bind(&i.remittance)
                    .push_bind(&i.purpose)
                    .push_bind(&i.end_to_end_id)
                    .push("'pending'")
                    .push_bind(at);
            });
            q.build().execute(&mut *self.conn).await.map_err(err)?;
        }
        Ok(())
    }

    async fn insert_batch_history(&mut self, h: &BatchHistoryRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO payment_batch_history \
               (batch_id, seq, at, chunk_no, from_status, to_status, cause, bank_code, \
                bank_message, actor, request_id) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM payment_batch_history \
                          WHERE batch_id = $1), $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&h.batch_id)
        .bind(h.at)
        .bind(h.chunk_no)
        .bind(&h.from_status)
        .bind(&h.to_status)
        .bind(&h.cause)
        .bind(&h.bank_code)
        .bind(&h.bank_message)
        .bind(&h.actor)
        .bind(&h.request_id)
        .execute(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn batch_header(&mut self, batch_id: &str) -> Result<Option<StoredBatch>, StoreError> {
        batch_header(&mut *self.conn, batch_id).await
    }

    async fn chunks_of(&mut self, batch_id: &str) -> Result<Vec<StoredChunk>, StoreError> {
        chunks_of(&mut *self.conn, batch_id).await
    }

    async fn item_counts(&mut self, batch_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        item_counts(&mut *self.conn, batch_id).await
    }

    async fn update_chunk(&mut self, t: &ChunkTransitionRows) -> Result<bool, StoreError> {
        let c = &t.change;
        let done = sqlx::query(
            "UPDATE payment_batch_chunks SET \
               status = $4, \
               last_bank_code = COALESCE($6, last_bank_code), \
               last_bank_message = COALESCE($7, last_bank_message), \
               bank_batch_id = COALESCE($8, bank_batch_id), \
               ever_sent = ever_sent OR $9, \
               first_sent_at = CASE WHEN $9 THEN COALESCE(first_sent_at, $10) ELSE first_sent_at END, \
               last_sent_at = CASE WHEN $9 THEN $10 ELSE last_sent_at END, \
               send_attempts = send_attempts + CASE WHEN $9 THEN 1 ELSE 0 END, \
               next_attempt_at = $11, \
               lease_owner = CASE WHEN $12 THEN NULL ELSE lease_owner END, \
               lease_expires_at = CASE WHEN $12 THEN NULL ELSE lease_expires_at END, \
               updated_at = CASE WHEN status = $4 THEN updated_at ELSE $10 END \
             WHERE batch_id = $1 AND chunk_no = $2 AND status = $3 \
               AND ($5::BIGINT IS NULL OR fencing_token = $5)",
        )
        .bind(&t.batch_id)
        .bind(t.chunk_no)
        .bind(&t.guard.from_status)
        .bind(&c.to_status)
        .bind(t.guard.fencing_token)
        .bind(&c.bank_code)
        .bind(&c.bank_message)
        .bind(&c.bank_payment_id)
        .bind(c.mark_sent)
        .bind(t.audit.at)
        .bind(c.next_attempt_at)
        .bind(c.release_lease)
        .execute(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn chunk_current(
        &mut self,
        batch_id: &str,
        chunk_no: i64,
    ) -> Result<Option<Current>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT status, fencing_token FROM payment_batch_chunks \
             WHERE batch_id = $1 AND chunk_no = $2",
        )
        .bind(batch_id)
        .bind(chunk_no)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(row.map(|(status, fencing_token)| Current {
            status,
            fencing_token,
        }))
    }

    async fn update_items(
        &mut self,
        batch_id: &str,
        chunk_no: Option<i64>,
        reference: Option<&str>,
        froms: &[ItemStatus],
        to: ItemStatus,
        bank_code: Option<&str>,
        bank_message: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if froms.is_empty() {
            return Ok(0);
        }
        let mut q = QueryBuilder::<Postgres>::new("UPDATE payment_batch_items SET status = ");
        q.push_bind(to.as_str())
            .push(", bank_code = COALESCE(")
            .push_bind(bank_code)
            .push(", bank_code), bank_message = COALESCE(")
            .push_bind(bank_message)
            .push(", bank_message), updated_at = ")
            .push_bind(at)
            .push(" WHERE batch_id = ")
            .push_bind(batch_id);
        if let Some(chunk_no) = chunk_no {
            q.push(" AND chunk_no = ").push_bind(chunk_no);
        }
        if let Some(reference) = reference {
            q.push(" AND business_reference = ").push_bind(reference);
        }
        q.push(" AND status IN (");
        let mut list = q.separated(", ");
        for s in froms {
            list.push_bind(s.as_str());
        }
        q.push(")");
        let done = q.build().execute(&mut *self.conn).await.map_err(err)?;
        Ok(done.rows_affected())
    }

    async fn set_batch_status(
        &mut self,
        batch_id: &str,
        status: &str,
        event_seq: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE payment_batches SET status = $2, event_seq = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(batch_id)
        .bind(status)
        .bind(event_seq)
        .bind(at)
        .execute(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn lock_batch(&mut self, batch_id: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM payment_batches WHERE id = $1 FOR UPDATE")
            .bind(batch_id)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn lock_chunks(&mut self, batch_id: &str) -> Result<Vec<StoredChunk>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHUNK_COLUMNS} FROM payment_batch_chunks WHERE batch_id = $1 \
             ORDER BY chunk_no FOR UPDATE"
        ))
        .bind(batch_id)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(err)?;
        rows.iter().map(chunk_from_row).collect()
    }

    async fn cancel_chunks(&mut self, batch_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE payment_batch_chunks SET status = 'cancelled', next_attempt_at = NULL, \
               lease_owner = NULL, lease_expires_at = NULL, updated_at = $2 \
             WHERE batch_id = $1",
        )
        .bind(batch_id)
        .bind(at)
        .execute(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(())
    }
}

pub(super) async fn batch_header(
    conn: &mut PgConnection,
    batch_id: &str,
) -> Result<Option<StoredBatch>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {BATCH_COLUMNS} FROM payment_batches WHERE id = $1"
    ))
    .bind(batch_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err)?;
    row.as_ref().map(batch_from_row).transpose()
}

pub(super) async fn chunks_of(
    conn: &mut PgConnection,
    batch_id: &str,
) -> Result<Vec<StoredChunk>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {CHUNK_COLUMNS} FROM payment_batch_chunks WHERE batch_id = $1 ORDER BY chunk_no"
    ))
    .bind(batch_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?;
    rows.iter().map(chunk_from_row).collect()
}

pub(super) async fn item_counts(
    conn: &mut PgConnection,
    batch_id: &str,
) -> Result<Vec<(String, i64)>, StoreError> {
    sqlx::query_as(
        "SELECT status, COUNT(*) FROM payment_batch_items WHERE batch_id = $1 \
         GROUP BY status ORDER BY status",
    )
    .bind(batch_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(err)
}

/// Items of a batch (one chunk of it when given) after `after_item_no`, ascending.
pub(super) async fn items(
    conn: &mut PgConnection,
    batch: &StoredBatch,
    chunk_no: Option<i64>,
    after_item_no: i64,
    limit: u32,
) -> Result<Vec<StoredBatchItem>, StoreError> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {ITEM_COLUMNS} FROM payment_batch_items WHERE batch_id = "
    ));
    q.push_bind(batch.id.as_str());
    if let Some(chunk_no) = chunk_no {
        q.push(" AND chunk_no = ").push_bind(chunk_no);
    }
    q.push(" AND item_no > ")
        .push_bind(after_item_no)
        .push(" ORDER BY item_no LIMIT ")
        .push_bind(i64::from(limit));
    let rows = q.build().fetch_all(&mut *conn).await.map_err(err)?;
    let currency = batch.control_sum.currency();
    rows.iter().map(|r| item_from_row(r, currency)).collect()
}

pub(super) async fn list(
    conn: &mut PgConnection,
    query: &BatchQuery,
) -> Result<Vec<StoredBatch>, StoreError> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {BATCH_COLUMNS} FROM payment_batches WHERE 1 = 1"
    ));
    if let Some(status) = &query.status {
        q.push(" AND status = ").push_bind(status.clone());
    }
    if let Some(ids) = &query.account_ids {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        q.push(" AND debtor_account_id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id.as_str().to_owned());
        }
        q.push(")");
    }
    if let Some(after) = &query.after {
        q.push(" AND (created_at, id) > (")
            .push_bind(after.created_at)
            .push(", ")
            .push_bind(after.id.as_str().to_owned())
            .push(")");
    }
    q.push(" ORDER BY created_at, id LIMIT ")
        .push_bind(i64::from(query.effective_limit()));
    let rows = q.build().fetch_all(&mut *conn).await.map_err(err)?;
    rows.iter().map(batch_from_row).collect()
}

/// Leases due chunks in one statement: the CTE picks and locks candidates, skipping rows
/// another claimer holds, and the UPDATE leases them and draws a new fencing token.
pub(super) async fn claim(
    conn: &mut PgConnection,
    statuses: Vec<String>,
    now: DateTime<Utc>,
    lease_owner: &str,
    lease_expires_at: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<StoredChunk>, StoreError> {
    let columns = CHUNK_COLUMNS
        .split(", ")
        .map(|c| format!("c.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = sqlx::query(&format!(
        "WITH due AS ( \
           SELECT batch_id, chunk_no FROM payment_batch_chunks \
           WHERE status = ANY($1) AND next_attempt_at <= $2 \
             AND (lease_expires_at IS NULL OR lease_expires_at < $2) \
           ORDER BY next_attempt_at, batch_id, chunk_no \
           LIMIT $5 \
           FOR UPDATE SKIP LOCKED) \
         UPDATE payment_batch_chunks c SET lease_owner = $3, lease_expires_at = $4, \
           fencing_token = c.fencing_token + 1 \
         FROM due WHERE c.batch_id = due.batch_id AND c.chunk_no = due.chunk_no \
         RETURNING {columns}"
    ))
    .bind(statuses)
    .bind(now)
    .bind(lease_owner)
    .bind(lease_expires_at)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| statement_error(BACKEND, "claiming due batch chunks", e))?;
    rows.iter().map(chunk_from_row).collect()
}

pub(super) async fn expired_submitting(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<StoredChunk>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {CHUNK_COLUMNS} FROM payment_batch_chunks WHERE status = 'submitting' \
           AND (lease_expires_at IS NULL OR lease_expires_at < $1) \
         ORDER BY lease_expires_at, batch_id, chunk_no LIMIT $2"
    ))
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?;
    rows.iter().map(chunk_from_row).collect()
}

/// Sets the next look and ends the lease if the chunk still carries the token.
pub(super) async fn reschedule(
    conn: &mut PgConnection,
    batch_id: &str,
    chunk_no: i64,
    fencing_token: i64,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE payment_batch_chunks SET next_attempt_at = $4, lease_owner = NULL, \
           lease_expires_at = NULL \
         WHERE batch_id = $1 AND chunk_no = $2 AND fencing_token = $3",
    )
    .bind(batch_id)
    .bind(chunk_no)
    .bind(fencing_token)
    .bind(next_attempt_at)
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    Ok(done.rows_affected() == 1)
}

fn batch_from_row(row: &PgRow) -> Result<StoredBatch, StoreError> {
    const T: &str = BATCHES_TABLE;
    let date: NaiveDate = codec::column(row, T, "requested_execution_date")?;
    BatchColumns {
        id: codec::column(row, T, "id")?,
        client_id: codec::column(row, T, "client_id")?,
        debtor_account_id: codec::column(row, T, "debtor_account_id")?,
        currency: codec::column(row, T, "currency")?,
        kind: codec::column(row, T, "kind")?,
        requested_execution_date: domain::BusinessDate::from_naive(date),
        item_count: codec::column(row, T, "item_count")?,
        control_sum_minor: codec::column(row, T, "control_sum_minor")?,
        business_reference: codec::column(row, T, "business_reference")?,
        status: codec::column(row, T, "status")?,
        event_seq: codec::column(row, T, "event_seq")?,
        created_at: codec::column(row, T, "created_at")?,
        updated_at: codec::column(row, T, "updated_at")?,
        approvals_required: i64::from(codec::column::<_, i32>(row, T, "approvals_required")?),
        on_behalf_of: codec::column(row, T, "on_behalf_of")?,
    }
    .into_domain()
}

fn chunk_from_row(row: &PgRow) -> Result<StoredChunk, StoreError> {
    const T: &str = CHUNKS_TABLE;
    ChunkColumns {
        batch_id: codec::column(row, T, "batch_id")?,
        chunk_no: codec::column(row, T, "chunk_no")?,
        business_reference: codec::column(row, T, "business_reference")?,
        item_count: codec::column(row, T, "item_count")?,
        status: codec::column(row, T, "status")?,
        ever_sent: codec::column(row, T, "ever_sent")?,
        first_sent_at: codec::column(row, T, "first_sent_at")?,
        last_sent_at: codec::column(row, T, "last_sent_at")?,
        send_attempts: codec::column(row, T, "send_attempts")?,
        bank_batch_id: codec::column(row, T, "bank_batch_id")?,
        last_bank_code: codec::column(row, T, "last_bank_code")?,
        last_bank_message: codec::column(row, T, "last_bank_message")?,
        next_attempt_at: codec::column(row, T, "next_attempt_at")?,
        lease_owner: codec::column(row, T, "lease_owner")?,
        lease_expires_at: codec::column(row, T, "lease_expires_at")?,
        fencing_token: codec::column(row, T, "fencing_token")?,
        updated_at: codec::column(row, T, "updated_at")?,
    }
    .into_domain()
}

fn item_from_row(row: &PgRow, currency: domain::Currency) -> Result<StoredBatchItem, StoreError> {
    const T: &str = ITEMS_TABLE;
    ItemColumns {
        id: codec::column(row, T, "id")?,
        item_no: codec::column(row, T, "item_no")?,
        chunk_no: codec::column(row, T, "chunk_no")?,
        business_reference: codec::column(row, T, "business_reference")?,
        amount_minor: codec::column(row, T, "amount_minor")?,
        creditor_name: codec::column(row, T, "creditor_name")?,
        creditor_account: codec::column(row, T, "creditor_account")?,
        creditor_bank_code: codec::column(row, T, "creditor_bank_code")?,
        creditor_bic: codec::column(row, T, "creditor_bic")?,
        creditor_bank_name: codec::column(row, T, "creditor_bank_name")?,
        creditor_type: codec::column(row, T, "creditor_type")?,
        remittance: codec::column(row, T, "remittance")?,
        purpose: codec::column(row, T, "purpose")?,
        end_to_end_id: codec::column(row, T, "end_to_end_id")?,
        status: codec::column(row, T, "status")?,
        bank_code: codec::column(row, T, "bank_code")?,
        bank_message: codec::column(row, T, "bank_message")?,
        updated_at: codec::column(row, T, "updated_at")?,
    }
    .into_domain(currency)
}
