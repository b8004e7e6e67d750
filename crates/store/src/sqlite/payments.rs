//! The SQLite statements behind payments: [`SqlitePayments`] (the backend side of the shared
//! create and transition algorithms, inside a writer job), the work-queue claim and the row
//! readers. Instants are TEXT in the fixed form of `codec.rs`, dates TEXT `YYYY-MM-DD`.
//!
//! Concurrency: every write runs on the one writer connection, one job after another, so a
//! key check, a CAS update or a claim sees every earlier write and no later one: the
//! serialisation PostgreSQL gets from row locks and `SKIP LOCKED`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use super::BACKEND;
use crate::codec::{self, AuditRow};
use crate::error::statement_error;
use crate::payments::{
    Current, HistoryColumns, HistoryRow, IdempotencyClaim, KeyColumns, PaymentColumns,
    PaymentHistoryEntry, PaymentRow, PaymentTx, StoredPayment, TransitionRows, HISTORY_TABLE,
    PAYMENTS_TABLE, PAYMENT_COLUMNS,
};
use crate::statements::{date_from_text, date_text};
use crate::StoreError;

const OP: &str = "writing a payment";

// The statements both SQLite paths run: this module's (through sqlx) and `direct.rs`'s
// (on the writer's raw handle).
/// A new key unless (client, key) exists: completed, with the answer it replays, when
/// its payment's id (`?6`) is given; else `in_progress` (a batch completes it later).
pub(super) const INSERT_KEY_SQL: &str = "INSERT INTO idempotency_keys \
               (client_id, key, request_hash, state, response_status, response_body, \
                payment_id, created_at, expires_at) \
             VALUES (?1, ?2, ?3, CASE WHEN ?6 IS NULL THEN 'in_progress' ELSE 'completed' END, \
                     ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (client_id, key) DO NOTHING";
pub(super) const FIND_KEY_SQL: &str =
    "SELECT request_hash, state, response_status, response_body, payment_id \
                 FROM idempotency_keys WHERE client_id = ?1 AND key = ?2";
pub(super) const DELETE_KEY_SQL: &str =
    "DELETE FROM idempotency_keys WHERE client_id = ?1 AND key = ?2";
pub(super) const DELETE_PAYMENT_SQL: &str = "DELETE FROM payments WHERE id = ?1";
pub(super) const INSERT_PAYMENT_SQL: &str = "INSERT INTO payments \
               (id, client_id, debtor_account_id, amount_minor, currency, creditor_name, \
                creditor_account, creditor_bank_code, creditor_bic, creditor_bank_name, \
                creditor_type, remittance, purpose, end_to_end_id, requested_execution_date, \
                urgency, business_reference, status, ever_sent, send_attempts, \
                next_attempt_at, fencing_token, created_at, updated_at, version, on_behalf_of, \
                approvals_required) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                     ?17, ?18, 0, 0, ?19, 0, ?20, ?20, 1, ?21, ?22) \
             ON CONFLICT DO NOTHING";
pub(super) const FIND_END_TO_END_SQL: &str =
    "SELECT id FROM payments WHERE debtor_account_id = ?1 AND end_to_end_id = ?2";
pub(super) const UPDATE_PAYMENT_SQL: &str = "UPDATE payments SET \
               status = ?3, \
               last_bank_code = COALESCE(?5, last_bank_code), \
               last_bank_message = COALESCE(?6, last_bank_message), \
               bank_payment_id = COALESCE(?7, bank_payment_id), \
               ever_sent = (ever_sent OR ?8), \
               first_sent_at = CASE WHEN ?8 THEN COALESCE(first_sent_at, ?9) ELSE first_sent_at END, \
               last_sent_at = CASE WHEN ?8 THEN ?9 ELSE last_sent_at END, \
               send_attempts = send_attempts + CASE WHEN ?8 THEN 1 ELSE 0 END, \
               next_attempt_at = ?10, \
               lease_owner = CASE WHEN ?11 THEN NULL ELSE lease_owner END, \
               lease_expires_at = CASE WHEN ?11 THEN NULL ELSE lease_expires_at END, \
               updated_at = ?9, \
               version = version + 1 \
             WHERE id = ?1 AND status = ?2 AND (?4 IS NULL OR fencing_token = ?4)";
pub(super) const NEXT_HISTORY_SEQ_SQL: &str =
    "SELECT COALESCE(MAX(seq), 0) + 1 FROM payment_history WHERE payment_id = ?1";
pub(super) const INSERT_HISTORY_SQL: &str = "INSERT INTO payment_history \
               (payment_id, seq, at, from_status, to_status, cause, bank_code, bank_message, \
                actor, request_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
pub(super) const CURRENT_SQL: &str = "SELECT status, fencing_token FROM payments WHERE id = ?1";

pub(crate) struct SqlitePayments<'c> {
    pub conn: &'c mut SqliteConnection,
}

fn err(e: sqlx::Error) -> StoreError {
    statement_error(BACKEND, OP, e)
}

impl SqlitePayments<'_> {
    /// Runs [`INSERT_KEY_SQL`]; true when the key was inserted.
    pub(super) async fn insert_key_row(
        &mut self,
        claim: &IdempotencyClaim,
        at: DateTime<Utc>,
        payment_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let completed = payment_id.is_some();
        let done = sqlx::query(INSERT_KEY_SQL)
            .bind(&claim.client_id)
            .bind(&claim.key)
            .bind(&claim.request_hash)
            .bind(completed.then(|| i32::from(claim.response_status)))
            .bind(completed.then_some(claim.response_body.as_str()))
            .bind(payment_id)
            .bind(codec::instant_text(at))
            .bind(codec::instant_text(claim.expires_at))
            .execute(&mut *self.conn)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl PaymentTx for SqlitePayments<'_> {
    fn key_goes_first(&self) -> bool {
        false
    }

    async fn insert_completed_key(
        &mut self,
        claim: &IdempotencyClaim,
        at: DateTime<Utc>,
        payment_id: &str,
    ) -> Result<bool, StoreError> {
        self.insert_key_row(claim, at, Some(payment_id)).await
    }

    async fn find_key(
        &mut self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<KeyColumns>, StoreError> {
        let row: Option<(String, String, Option<i32>, Option<String>, Option<String>)> =
            sqlx::query_as(FIND_KEY_SQL)
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
        sqlx::query(DELETE_KEY_SQL)
            .bind(client_id)
            .bind(key)
            .execute(&mut *self.conn)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn delete_payment(&mut self, id: &str) -> Result<(), StoreError> {
        sqlx::query(DELETE_PAYMENT_SQL)
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
        let done = sqlx::query(INSERT_PAYMENT_SQL)
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
            .bind(date_text(p.requested_execution_date))
            .bind(p.urgency)
            .bind(&p.business_reference)
            .bind(&p.status)
            .bind(p.next_attempt_at.map(codec::instant_text))
            .bind(codec::instant_text(at))
            .bind(&p.on_behalf_of)
            .bind(p.approvals_required)
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
        sqlx::query_scalar(FIND_END_TO_END_SQL)
            .bind(debtor_account_id)
            .bind(end_to_end_id)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(err)
    }

    async fn update_payment(&mut self, t: &TransitionRows) -> Result<bool, StoreError> {
        let c = &t.change;
        let done = sqlx::query(UPDATE_PAYMENT_SQL)
            .bind(&t.id)
            .bind(&t.guard.from_status)
            .bind(&c.to_status)
            .bind(t.guard.fencing_token)
            .bind(&c.bank_code)
            .bind(&c.bank_message)
            .bind(&c.bank_payment_id)
            .bind(c.mark_sent)
            .bind(codec::instant_text(t.audit.at))
            .bind(c.next_attempt_at.map(codec::instant_text))
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
        sqlx::query_scalar(NEXT_HISTORY_SEQ_SQL)
            .bind(id)
            .fetch_one(&mut *self.conn)
            .await
            .map_err(err)
    }

    async fn insert_history(&mut self, h: &HistoryRow) -> Result<(), StoreError> {
        sqlx::query(INSERT_HISTORY_SQL)
            .bind(&h.payment_id)
            .bind(h.seq)
            .bind(codec::instant_text(h.at))
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
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ?1"
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
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<Current>, StoreError> {
    let row: Option<(String, i64)> = sqlx::query_as(CURRENT_SQL)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?;
    Ok(row.map(|(status, fencing_token)| Current {
        status,
        fencing_token,
    }))
}

/// Claims due payments in one statement; the single writer makes it atomic against every
/// other write, so concurrent claimers (queued one after another) get disjoint sets.
pub(super) async fn claim(
    conn: &mut SqliteConnection,
    statuses: Vec<String>,
    now: DateTime<Utc>,
    lease_owner: &str,
    lease_expires_at: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<StoredPayment>, StoreError> {
    let now = codec::instant_text(now);
    let mut query = QueryBuilder::<Sqlite>::new("UPDATE payments SET lease_owner = ");
    query
        .push_bind(lease_owner.to_owned())
        .push(", lease_expires_at = ")
        .push_bind(codec::instant_text(lease_expires_at))
        // Due again when the lease ends (`Store::claim_due_payments` says why).
        .push(", next_attempt_at = ")
        .push_bind(codec::instant_text(lease_expires_at))
        // A lease is not a change of the payment: `updated_at` keeps the time
        // of its last transition (the poller measures the return window from it).
        .push(", fencing_token = fencing_token + 1, version = version + 1")
        .push(" WHERE id IN (SELECT id FROM payments WHERE status IN (");
    let mut list = query.separated(", ");
    for status in statuses {
        list.push_bind(status);
    }
    query
        .push(") AND next_attempt_at <= ")
        .push_bind(now.clone())
        .push(" AND (lease_expires_at IS NULL OR lease_expires_at < ")
        .push_bind(now)
        .push(") ORDER BY next_attempt_at, id LIMIT ")
        .push_bind(i64::from(limit))
        .push(format!(") RETURNING {PAYMENT_COLUMNS}"));
    let rows = query
        .build()
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| statement_error(BACKEND, "claiming due payments", e))?;
    rows.iter().map(payment_from_row).collect()
}

pub(super) fn date(
    row: &SqliteRow,
    column: &'static str,
) -> Result<domain::BusinessDate, StoreError> {
    let text: String = codec::column(row, PAYMENTS_TABLE, column)?;
    date_from_text(&text, PAYMENTS_TABLE, column)
}

pub(super) fn instant(
    row: &SqliteRow,
    table: &'static str,
    column: &'static str,
) -> Result<DateTime<Utc>, StoreError> {
    let text: String = codec::column(row, table, column)?;
    codec::instant_from_text(&text, table, column)
}

pub(super) fn maybe_instant(
    row: &SqliteRow,
    table: &'static str,
    column: &'static str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let text: Option<String> = codec::column(row, table, column)?;
    text.map(|t| codec::instant_from_text(&t, table, column))
        .transpose()
}

pub(super) fn payment_from_row(row: &SqliteRow) -> Result<StoredPayment, StoreError> {
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
        first_sent_at: maybe_instant(row, T, "first_sent_at")?,
        last_sent_at: maybe_instant(row, T, "last_sent_at")?,
        send_attempts: codec::column(row, T, "send_attempts")?,
        bank_payment_id: codec::column(row, T, "bank_payment_id")?,
        last_bank_code: codec::column(row, T, "last_bank_code")?,
        last_bank_message: codec::column(row, T, "last_bank_message")?,
        next_attempt_at: maybe_instant(row, T, "next_attempt_at")?,
        lease_owner: codec::column(row, T, "lease_owner")?,
        lease_expires_at: maybe_instant(row, T, "lease_expires_at")?,
        fencing_token: codec::column(row, T, "fencing_token")?,
        created_at: instant(row, T, "created_at")?,
        updated_at: instant(row, T, "updated_at")?,
        version: codec::column(row, T, "version")?,
        on_behalf_of: codec::column(row, T, "on_behalf_of")?,
        approvals_required: codec::column(row, T, "approvals_required")?,
    }
    .into_domain()
}

pub(super) fn history_from_row(row: &SqliteRow) -> Result<PaymentHistoryEntry, StoreError> {
    const T: &str = HISTORY_TABLE;
    HistoryColumns {
        seq: codec::column(row, T, "seq")?,
        at: instant(row, T, "at")?,
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
impl crate::approvals::DecisionTx for SqlitePayments<'_> {
    async fn lock_for_decision(&mut self, id: &str) -> Result<Option<(Current, i64)>, StoreError> {
        // The single writer serialises every write: reading is locking enough.
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT status, fencing_token, approvals_required FROM payments WHERE id = ?1",
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
                required,
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (object_kind, object_id, decided_by) DO NOTHING",
        )
        .bind(d.object.as_str())
        .bind(&d.object_id)
        .bind(&d.decided_by)
        .bind(d.decision.as_str())
        .bind(&d.comment)
        .bind(&d.request_id)
        .bind(codec::instant_text(d.at))
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
             WHERE object_kind = ?1 AND object_id = ?2 AND decision = 'approve'",
        )
        .bind(object.as_str())
        .bind(id)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(err)
    }
}

pub(super) fn decision_from_row(
    row: &SqliteRow,
) -> Result<crate::approvals::ApprovalDecision, StoreError> {
    const T: &str = crate::approvals::DECISIONS_TABLE;
    crate::approvals::DecisionColumns {
        object_kind: codec::column(row, T, "object_kind")?,
        object_id: codec::column(row, T, "object_id")?,
        decided_by: codec::column(row, T, "decided_by")?,
        decision: codec::column(row, T, "decision")?,
        comment: codec::column(row, T, "comment")?,
        request_id: codec::column(row, T, "request_id")?,
        at: instant(row, T, "at")?,
    }
    .into_domain()
}
