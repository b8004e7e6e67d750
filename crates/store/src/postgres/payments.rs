//! The PostgreSQL statements behind payments: [`PgPayments`] (the backend side of the shared
//! create and transition algorithms, inside one transaction), the work-queue claim and the
//! row readers.
//!
//! Concurrency: the key insert (`ON CONFLICT DO NOTHING`) waits for a concurrent
//! transaction holding the same (client, key) and, once that one committed, sees its row;
//! the end-to-end id's unique index does the same for business duplicates. The CAS update
//! re-checks its `WHERE` on the newest row version after waiting for a concurrent writer
//! (READ COMMITTED), so two transitions from the same state cannot both apply. Claims lock
//! the candidate rows with `FOR UPDATE SKIP LOCKED`, so concurrent claimers take disjoint
//! sets without waiting on each other.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgConnection;

use super::BACKEND;
use crate::codec::{self, AuditRow};
use crate::error::statement_error;
use crate::payments::{
    Current, HistoryColumns, HistoryRow, IdempotencyClaim, KeyColumns, PaymentColumns,
    PaymentHistoryEntry, PaymentRow, PaymentTx, StoredPayment, TransitionRows, HISTORY_TABLE,
    PAYMENTS_TABLE, PAYMENT_COLUMNS,
};
use crate::StoreError;

const OP: &str = "writing a payment";

pub(super) struct PgPayments<'c> {
    pub conn: &'c mut PgConnection,
}

impl<'c> PgPayments<'c> {
    pub(super) fn new(conn: &'c mut PgConnection) -> PgPayments<'c> {
        PgPayments { conn }
    }
}

fn err(e: sqlx::Error) -> StoreError {
    statement_error(BACKEND, OP, e)
}

impl PgPayments<'_> {
    /// Inserts a key unless (client, key) exists; true when inserted. With its payment's
    /// id it goes in completed, with the answer it replays; without, `in_progress` (a
    /// batch completes it later).
    pub(super) async fn insert_key_row(
        &mut self,
        claim: &IdempotencyClaim,
        at: DateTime<Utc>,
        payment_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let completed = payment_id.is_some();
        let done = sqlx::query(
            "INSERT INTO idempotency_keys \
               (client_id, key, request_hash, state, response_status, response_body, \
                payment_id, created_at, expires_at) \
             VALUES ($1, $2, $3, CASE WHEN $6::text IS NULL THEN 'in_progress' ELSE 'completed' END, \
                     $4, $5, $6, $7, $8) \
             ON CONFLICT (client_id, key) DO NOTHING",
        )
        .bind(&claim.client_id)
        .bind(&claim.key)
        .bind(&claim.request_hash)
        .bind(completed.then(|| i32::from(claim.response_status)))
        .bind(completed.then_some(claim.response_body.as_str()))
        .bind(payment_id)
        .bind(at)
        .bind(claim.expires_at)
        .execute(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl PaymentTx for PgPayments<'_> {
    fn key_goes_first(&self) -> bool {
        true
    }

    async fn insert_completed_key(
        &mut self,
        claim: &IdempotencyClaim,
        at: DateTime<Utc>,
        payment_id: &str,
    ) -> Result<bool, StoreError> {
        // Its payment goes in next; the reference is checked at commit (migration 0013).
        sqlx::query("SET CONSTRAINTS idempotency_keys_payment_id_fkey DEFERRED")
            .execute(&mut *self.conn)
            .await
            .map_err(err)?;
        self.insert_key_row(claim, at, Some(payment_id)).await
    }

    async fn find_key(
        &mut self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<KeyColumns>, StoreError> {
        let row: Option<(String, String, Option<i32>, Option<String>, Option<String>)> =
            sqlx::query_as(
                "SELECT request_hash, state, response_status, response_body, payment_id \
                 FROM idempotency_keys WHERE client_id = $1 AND key = $2",
            )
            .bind(client_id)
            .bind(key)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(err)?;
        Ok(row.map(
            |(request_hash, state, status, body, payment_id)| KeyColumns {
                request_hash,
                state,
                response_status: status.map(i64::from),
                response_body: body,
                payment_id,
            },
        ))
    }

    async fn delete_key(&mut self, client_id: &str, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE client_id = $1 AND key = $2")
            .bind(client_id)
            .bind(key)
            .execute(&mut *self.conn)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn delete_payment(&mut self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM payments WHERE id = $1")
            .bind(id)
            .execute(&mut *self.conn)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn insert_payment(
        &mut self,
        p: &PaymentRow,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO payments \
               (id, client_id, debtor_account_id, amount_minor, currency, creditor_name, \
                creditor_account, creditor_bank_code, creditor_bic, creditor_bank_name, \
                creditor_type, remittance, purpose, end_to_end_id, requested_execution_date, \
                urgency, business_reference, status, ever_sent, send_attempts, \
                next_attempt_at, fencing_token, created_at, updated_at, version, on_behalf_of, \
                approvals_required) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, FALSE, 0, $19, 0, $20, $20, 1, $21, $22) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&p.id)
        .bind(&p.client_id)
        .bind(&p.debtor_account_id)
        .bind(p.amount_minor)
        .bind(p.currency)
        .bind(&p.creditor_name)
        .bind(&p.creditor_account)
        .bind(&p.creditor_bank_code)
        .bind(&p.creditor_bic)
        .bind(&p.creditor_bank_name)
        .bind(p.creditor_type)
        .bind(&p.remittance)
        .bind(&p.purpose)
        .bind(&p.end_to_end_id)
        .bind(p.requested_execution_date.naive())
        .bind(p.urgency)
        .bind(&p.business_reference)
        .bind(&p.status)
        .bind(p.next_attempt_at)
        .bind(at)
        .bind(&p.on_behalf_of)
        .bind(p.approvals_required as i32)
        .execute(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn find_end_to_end(
        &mut self,
        debtor_account_id: &str,
        end_to_end_id: &str,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT id FROM payments WHERE debtor_account_id = $1 AND end_to_end_id = $2",
        )
        .bind(debtor_account_id)
        .bind(end_to_end_id)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(err)
    }

    async fn update_payment(&mut self, t: &TransitionRows) -> Result<bool, StoreError> {
        let c = &t.change;
        let done = sqlx::query(
            "UPDATE payments SET \
               status = $3, \
               last_bank_code = COALESCE($5, last_bank_code), \
               last_bank_message = COALESCE($6, last_bank_message), \
               bank_payment_id = COALESCE($7, bank_payment_id), \
               ever_sent = ever_sent OR $8, \
               first_sent_at = CASE WHEN $8 THEN COALESCE(first_sent_at, $9) ELSE first_sent_at END, \
               last_sent_at = CASE WHEN $8 THEN $9 ELSE last_sent_at END, \
               send_attempts = send_attempts + CASE WHEN $8 THEN 1 ELSE 0 END, \
               next_attempt_at = $10, \
               lease_owner = CASE WHEN $11 THEN NULL ELSE lease_owner END, \
               lease_expires_at = CASE WHEN $11 THEN NULL ELSE lease_expires_at END, \
               updated_at = $9, \
               version = version + 1 \
             WHERE id = $1 AND status = $2 AND ($4::BIGINT IS NULL OR fencing_token = $4)",
        )
        .bind(&t.id)
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

    async fn current(&mut self, id: &str) -> Result<Option<Current>, StoreError> {
        current(&mut *self.conn, id).await
    }

    async fn next_history_seq(&mut self, id: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM payment_history WHERE payment_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(err)
    }

    async fn insert_history(&mut self, h: &HistoryRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO payment_history \
               (payment_id, seq, at, from_status, to_status, cause, bank_code, bank_message, \
                actor, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&h.payment_id)
        .bind(h.seq)
        .bind(h.at)
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

    async fn fetch(&mut self, id: &str) -> Result<Option<StoredPayment>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(err)?;
        row.as_ref().map(payment_from_row).transpose()
    }

    async fn insert_event(&mut self, row: &crate::events::EventRow) -> Result<(), StoreError> {
        super::events::insert(self.conn, row).await
    }

    async fn insert_audit(&mut self, audit: &AuditRow) -> Result<(), StoreError> {
        super::insert_audit(self.conn, audit).await.map(|_| ())
    }
}

pub(super) async fn current(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<Current>, StoreError> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT status, fencing_token FROM payments WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?;
    Ok(row.map(|(status, fencing_token)| Current {
        status,
        fencing_token,
    }))
}

/// The payment columns as `p.<column>`, for statements that update `payments p` and
/// return the rows as changed.
pub(super) fn returning_payment_columns() -> &'static str {
    static COLUMNS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COLUMNS.get_or_init(|| {
        PAYMENT_COLUMNS
            .split(',')
            .map(|c| format!("p.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Claims due payments in one statement: the CTE picks and locks candidates, skipping rows
/// another claimer holds, and the UPDATE leases them, draws a new fencing token and makes
/// each due again when its lease ends (`Store::claim_due_payments` says why).
pub(super) async fn claim(
    conn: &mut PgConnection,
    statuses: Vec<String>,
    now: DateTime<Utc>,
    lease_owner: &str,
    lease_expires_at: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<StoredPayment>, StoreError> {
    let columns = returning_payment_columns();
    // One status (the dispatcher's `queued`) is compared with `=`: PostgreSQL then reads
    // `payments_due` (status, next_attempt_at, id: migration 0017) in the claim's order
    // and stops at the limit. With `= ANY` it reads every due row of the statuses and
    // sorts them all, at every claim.
    let status = if statuses.len() == 1 {
        "status = $1[1]"
    } else {
        "status = ANY($1)"
    };
    let rows = sqlx::query(&format!(
        "WITH due AS ( \
           SELECT id FROM payments \
           WHERE {status} AND next_attempt_at <= $2 \
             AND (lease_expires_at IS NULL OR lease_expires_at < $2) \
           ORDER BY next_attempt_at, id \
           LIMIT $5 \
           FOR UPDATE SKIP LOCKED) \
         UPDATE payments p SET lease_owner = $3, lease_expires_at = $4, next_attempt_at = $4, \
           fencing_token = p.fencing_token + 1, version = p.version + 1 \
         FROM due WHERE p.id = due.id \
         RETURNING {columns}"
    ))
    .bind(statuses)
    .bind(now)
    .bind(lease_owner)
    .bind(lease_expires_at)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| statement_error(BACKEND, "claiming due payments", e))?;
    rows.iter().map(payment_from_row).collect()
}

fn date(row: &PgRow, column: &'static str) -> Result<domain::BusinessDate, StoreError> {
    let naive: NaiveDate = codec::column(row, PAYMENTS_TABLE, column)?;
    Ok(domain::BusinessDate::from_naive(naive))
}

pub(super) fn payment_from_row(row: &PgRow) -> Result<StoredPayment, StoreError> {
    const T: &str = PAYMENTS_TABLE;
    PaymentColumns {
        id: codec::column(row, T, "id")?,
        client_id: codec::column(row, T, "client_id")?,
        debtor_account_id: codec::column(row, T, "debtor_account_id")?,
        amount_minor: codec::column(row, T, "amount_minor")?,
        currency: codec::column(row, T, "currency")?,
        creditor_name: codec::column(row, T, "creditor_name")?,
        creditor_account: codec::column(row, T, "creditor_account")?,
        creditor_bank_code: codec::column(row, T, "creditor_bank_code")?,
        creditor_bic: codec::column(row, T, "creditor_bic")?,
        creditor_bank_name: codec::column(row, T, "creditor_bank_name")?,
        creditor_type: codec::column(row, T, "creditor_type")?,
        remittance: codec::column(row, T, "remittance")?,
        purpose: codec::column(row, T, "purpose")?,
        end_to_end_id: codec::column(row, T, "end_to_end_id")?,
        requested_execution_date: date(row, "requested_execution_date")?,
        urgency: codec::column(row, T, "urgency")?,
        business_reference: codec::column(row, T, "business_reference")?,
        status: codec::column(row, T, "status")?,
        ever_sent: codec::column(row, T, "ever_sent")?,
        first_sent_at: codec::column(row, T, "first_sent_at")?,
        last_sent_at: codec::column(row, T, "last_sent_at")?,
        send_attempts: codec::column(row, T, "send_attempts")?,
        bank_payment_id: codec::column(row, T, "bank_payment_id")?,
        last_bank_code: codec::column(row, T, "last_bank_code")?,
        last_bank_message: codec::column(row, T, "last_bank_message")?,
        next_attempt_at: codec::column(row, T, "next_attempt_at")?,
        lease_owner: codec::column(row, T, "lease_owner")?,
        lease_expires_at: codec::column(row, T, "lease_expires_at")?,
        fencing_token: codec::column(row, T, "fencing_token")?,
        created_at: codec::column(row, T, "created_at")?,
        updated_at: codec::column(row, T, "updated_at")?,
        version: codec::column(row, T, "version")?,
        on_behalf_of: codec::column(row, T, "on_behalf_of")?,
        approvals_required: i64::from(codec::column::<_, i32>(row, T, "approvals_required")?),
    }
    .into_domain()
}

pub(super) fn history_from_row(row: &PgRow) -> Result<PaymentHistoryEntry, StoreError> {
    const T: &str = HISTORY_TABLE;
    HistoryColumns {
        seq: codec::column(row, T, "seq")?,
        at: codec::column(row, T, "at")?,
        from_status: codec::column(row, T, "from_status")?,
        to_status: codec::column(row, T, "to_status")?,
        cause: codec::column(row, T, "cause")?,
        bank_code: codec::column(row, T, "bank_code")?,
        bank_message: codec::column(row, T, "bank_message")?,
        actor: codec::column(row, T, "actor")?,
        request_id: codec::column(row, T, "request_id")?,
    }
    .into_domain()
}

#[async_trait]
impl crate::approvals::DecisionTx for PgPayments<'_> {
    async fn lock_for_decision(&mut self, id: &str) -> Result<Option<(Current, i64)>, StoreError> {
        // The row lock serialises concurrent decisions on one payment: each one counts
        // the approvals committed before it.
        let row: Option<(String, i64, i32)> = sqlx::query_as(
            "SELECT status, fencing_token, approvals_required FROM payments WHERE id = $1 \
             FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(row.map(|(status, fencing_token, required)| {
            (
                Current {
                    status,
                    fencing_token,
                },
                i64::from(required),
            )
        }))
    }

    async fn insert_decision(
        &mut self,
        d: &crate::approvals::ApprovalDecision,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO approval_decisions \
               (object_kind, object_id, decided_by, decision, comment, request_id, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (object_kind, object_id, decided_by) DO NOTHING",
        )
        .bind(d.object.as_str())
        .bind(&d.object_id)
        .bind(&d.decided_by)
        .bind(d.decision.as_str())
        .bind(&d.comment)
        .bind(&d.request_id)
        .bind(d.at)
        .execute(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_approvals(
        &mut self,
        object: crate::approvals::ApprovalObject,
        id: &str,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM approval_decisions \
             WHERE object_kind = $1 AND object_id = $2 AND decision = 'approve'",
        )
        .bind(object.as_str())
        .bind(id)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(err)
    }
}

pub(super) fn decision_from_row(
    row: &PgRow,
) -> Result<crate::approvals::ApprovalDecision, StoreError> {
    const T: &str = crate::approvals::DECISIONS_TABLE;
    crate::approvals::DecisionColumns {
        object_kind: codec::column(row, T, "object_kind")?,
        object_id: codec::column(row, T, "object_id")?,
        decided_by: codec::column(row, T, "decided_by")?,
        decision: codec::column(row, T, "decision")?,
        comment: codec::column(row, T, "comment")?,
        request_id: codec::column(row, T, "request_id")?,
        at: codec::column(row, T, "at")?,
    }
    .into_domain()
}
