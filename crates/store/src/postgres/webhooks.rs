//! The PostgreSQL statements behind webhooks: registration (with its optional
//! Idempotency-Key and audit record in one transaction), the fan-out, the delivery claim,
//! attempts, listing and re-drive.
//!
//! Concurrency: the fan-out takes a transaction-level advisory lock before it reads the
//! outbox, so instances fan out one at a time and an event is fanned out once (the unique
//! (webhook, event) constraint backs this up). Claims lock their candidates with
//! `FOR UPDATE SKIP LOCKED`; recording an attempt locks the delivery row and checks the
//! lease token.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{PgStore, BACKEND};
use crate::codec;
use crate::error::statement_error;
use crate::events::EVENT_COLUMNS;
use crate::webhooks::{
    self as shared, AttemptRow, ClaimedDelivery, DeliveryAttempt, DeliveryQuery, DeliveryState,
    FanOutReport, StoredDelivery, StoredWebhook, WebhookColumns, WebhookCreateOutcome, WebhookRow,
    WEBHOOKS_PER_CLIENT_MAX,
};
use crate::StoreError;

/// The advisory lock key that makes one instance fan out at a time ("bdwhfan" in ASCII).
const FAN_OUT_LOCK_KEY: i64 = 0x0062_6477_6866_616e;

const WEBHOOK_COLUMNS: &str =
    "id, client_id, url, event_types::text AS event_types, created_at, deleted_at";

fn err(op: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| statement_error(BACKEND, op, e)
}

fn webhook_from_row(row: &PgRow) -> Result<StoredWebhook, StoreError> {
    const T: &str = "webhooks";
    WebhookColumns {
        id: codec::column(row, T, "id")?,
        client_id: codec::column(row, T, "client_id")?,
        url: codec::column(row, T, "url")?,
        event_types: codec::column(row, T, "event_types")?,
        created_at: codec::column(row, T, "created_at")?,
        deleted_at: codec::column(row, T, "deleted_at")?,
    }
    .into_domain()
}

pub(super) async fn create(
    store: &PgStore,
    row: WebhookRow,
) -> Result<WebhookCreateOutcome, StoreError> {
    store
        .write("registering a webhook", move |conn| {
            Box::pin(async move { create_in(conn, &row).await })
        })
        .await
}

async fn create_in(
    conn: &mut PgConnection,
    row: &WebhookRow,
) -> Result<WebhookCreateOutcome, StoreError> {
    const OP: &str = "registering a webhook";
    let w = &row.new;
    if let Some(claim) = &row.claim {
        // Waits for a concurrent transaction holding the same key, then sees its row.
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys \
               (client_id, key, request_hash, state, created_at, expires_at) \
             VALUES ($1, $2, $3, 'in_progress', $4, $5) \
             ON CONFLICT (client_id, key) DO NOTHING",
        )
        .bind(&claim.client_id)
        .bind(&claim.key)
        .bind(&claim.request_hash)
        .bind(w.created_at)
        .bind(claim.expires_at)
        .execute(&mut *conn)
        .await
        .map_err(err(OP))?
        .rows_affected()
            == 1;
        if !inserted {
            let stored: Option<(String, String, Option<i32>, Option<String>)> = sqlx::query_as(
                "SELECT request_hash, state, response_status, response_body \
                 FROM idempotency_keys WHERE client_id = $1 AND key = $2",
            )
            .bind(&claim.client_id)
            .bind(&claim.key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err(OP))?;
            return shared::replay_outcome(
                claim,
                stored.map(|(h, s, st, b)| (h, s, st.map(i64::from), b)),
            );
        }
    }
    // Serialise a client's registrations so the count below cannot be outrun.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
        .bind(&w.client_id)
        .execute(&mut *conn)
        .await
        .map_err(err(OP))?;
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhooks WHERE client_id = $1 AND deleted_at IS NULL",
    )
    .bind(&w.client_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(err(OP))?;
    if active >= i64::from(WEBHOOKS_PER_CLIENT_MAX) {
        if let Some(claim) = &row.claim {
            sqlx::query("DELETE FROM idempotency_keys WHERE client_id = $1 AND key = $2")
                .bind(&claim.client_id)
                .bind(&claim.key)
                .execute(&mut *conn)
                .await
                .map_err(err(OP))?;
        }
        return Ok(WebhookCreateOutcome::LimitReached);
    }
    sqlx::query(
        "INSERT INTO webhooks (id, client_id, url, secret, event_types, created_at) \
         VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
    )
    .bind(&w.id)
    .bind(&w.client_id)
    .bind(&w.url)
    .bind(&w.secret)
    .bind(&row.event_types)
    .bind(w.created_at)
    .execute(&mut *conn)
    .await
    .map_err(err(OP))?;
    if let Some(claim) = &row.claim {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'completed', response_status = $3, \
               response_body = $4 \
             WHERE client_id = $1 AND key = $2",
        )
        .bind(&claim.client_id)
        .bind(&claim.key)
        .bind(i32::from(claim.response_status))
        .bind(&claim.response_body)
        .execute(&mut *conn)
        .await
        .map_err(err(OP))?;
    }
    // Last, so the audit-order lock is held only until the imminent commit.
    super::insert_audit(conn, &row.audit).await?;
    Ok(WebhookCreateOutcome::Created(StoredWebhook {
        id: w.id.clone(),
        client_id: w.client_id.clone(),
        url: w.url.clone(),
        event_types: w.event_types.clone(),
        created_at: w.created_at,
        deleted_at: None,
    }))
}

pub(super) async fn list(
    store: &PgStore,
    client_id: &str,
    after_id: Option<&str>,
    limit: u32,
) -> Result<Vec<StoredWebhook>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks \
         WHERE client_id = $1 AND deleted_at IS NULL AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(client_id)
    .bind(after_id.unwrap_or(""))
    .bind(i64::from(shared::effective_limit(limit)))
    .fetch_all(&store.pool)
    .await
    .map_err(err("listing webhooks"))?;
    rows.iter().map(webhook_from_row).collect()
}

pub(super) async fn get(
    store: &PgStore,
    client_id: &str,
    id: &str,
) -> Result<Option<StoredWebhook>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks \
         WHERE client_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(client_id)
    .bind(id)
    .fetch_optional(&store.pool)
    .await
    .map_err(err("reading a webhook"))?;
    row.as_ref().map(webhook_from_row).transpose()
}

pub(super) async fn delete(
    store: &PgStore,
    client_id: String,
    id: String,
    audit: codec::AuditRow,
) -> Result<bool, StoreError> {
    const OP: &str = "deleting a webhook";
    store
        .write(OP, move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE webhooks SET deleted_at = $3 \
                     WHERE client_id = $1 AND id = $2 AND deleted_at IS NULL",
                )
                .bind(&client_id)
                .bind(&id)
                .bind(audit.at)
                .execute(&mut *conn)
                .await
                .map_err(err(OP))?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'skipped', next_attempt_at = NULL, \
                       lease_owner = NULL, lease_expires_at = NULL, \
                       last_error = 'the webhook was deleted', updated_at = $2 \
                     WHERE webhook_id = $1 AND state = 'pending'",
                )
                .bind(&id)
                .bind(audit.at)
                .execute(&mut *conn)
                .await
                .map_err(err(OP))?;
                super::insert_audit(conn, &audit).await?;
                Ok(true)
            })
        })
        .await
}

pub(super) async fn fan_out(
    store: &PgStore,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<FanOutReport, StoreError> {
    const OP: &str = "fanning out events";
    shared::check_fan_out_limit(limit)?;
    let now = codec::instant(now, "fan-out now")?;
    store
        .write(OP, move |conn| {
            Box::pin(async move {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(FAN_OUT_LOCK_KEY)
                    .execute(&mut *conn)
                    .await
                    .map_err(err(OP))?;
                // Read after the lock: what an earlier holder fanned out has left the queue
                // (migration 0014).
                let seqs: Vec<i64> =
                    sqlx::query_scalar("SELECT seq FROM event_fan_out_queue ORDER BY seq LIMIT $1")
                        .bind(i64::from(limit))
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(err(OP))?;
                if seqs.is_empty() {
                    return Ok(FanOutReport::default());
                }
                let made = sqlx::query(
                    "INSERT INTO webhook_deliveries \
                       (webhook_id, event_id, object_type, object_id, object_seq, state, \
                        next_attempt_at, created_at, updated_at) \
                     SELECT w.id, e.id, e.object_type, e.object_id, e.object_seq, 'pending', \
                            $2, $2, $2 \
                     FROM events e JOIN webhooks w ON w.deleted_at IS NULL \
                       AND w.event_types @> jsonb_build_array(e.type) \
                     WHERE e.seq = ANY($1) \
                     ORDER BY e.seq, w.id \
                     ON CONFLICT (webhook_id, event_id) DO NOTHING",
                )
                .bind(&seqs)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(err(OP))?
                .rows_affected();
                sqlx::query("DELETE FROM event_fan_out_queue WHERE seq = ANY($1)")
                    .bind(&seqs)
                    .execute(&mut *conn)
                    .await
                    .map_err(err(OP))?;
                Ok(FanOutReport {
                    events: seqs.len(),
                    deliveries: made,
                })
            })
        })
        .await
}

pub(super) async fn claim(
    store: &PgStore,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
    owner: String,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    const OP: &str = "claiming webhook deliveries";
    store
        .write(OP, move |conn| {
            Box::pin(async move {
                let claimed: Vec<(i64, i64, i32)> = sqlx::query_as(
                    "WITH due AS ( \
                       SELECT d.id FROM webhook_deliveries d \
                       WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
                         AND (d.lease_expires_at IS NULL OR d.lease_expires_at < $1) \
                         AND NOT EXISTS ( \
                           SELECT 1 FROM webhook_deliveries p \
                           WHERE p.webhook_id = d.webhook_id AND p.object_type = d.object_type \
                             AND p.object_id = d.object_id AND p.object_seq < d.object_seq \
                             AND p.state = 'pending') \
                       ORDER BY d.next_attempt_at, d.id \
                       LIMIT $4 \
                       FOR UPDATE SKIP LOCKED) \
                     UPDATE webhook_deliveries d SET lease_owner = $2, lease_expires_at = $3, \
                       lease_token = d.lease_token + 1 \
                     FROM due WHERE d.id = due.id \
                     RETURNING d.id, d.lease_token, d.attempts",
                )
                .bind(now)
                .bind(&owner)
                .bind(expires)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await
                .map_err(err(OP))?;
                if claimed.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<i64> = claimed.iter().map(|c| c.0).collect();
                let event_columns = EVENT_COLUMNS
                    .split(", ")
                    .map(|c| {
                        if c == "data" {
                            "e.data::text AS data".to_owned()
                        } else {
                            format!("e.{c}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let rows = sqlx::query(&format!(
                    "SELECT d.id AS delivery_id, d.webhook_id, w.client_id, w.url, w.secret, \
                       {event_columns} \
                     FROM webhook_deliveries d \
                     JOIN webhooks w ON w.id = d.webhook_id \
                     JOIN events e ON e.id = d.event_id \
                     WHERE d.id = ANY($1)"
                ))
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await
                .map_err(err(OP))?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    let id: i64 = codec::column(row, "webhook_deliveries", "delivery_id")?;
                    let Some(&(_, lease_token, attempts)) = claimed.iter().find(|c| c.0 == id)
                    else {
                        continue;
                    };
                    out.push(ClaimedDelivery {
                        delivery_id: id,
                        lease_token,
                        attempts,
                        webhook_id: codec::column(row, "webhook_deliveries", "webhook_id")?,
                        client_id: codec::column(row, "webhooks", "client_id")?,
                        url: codec::column(row, "webhooks", "url")?,
                        secret: row.try_get("secret").map_err(|_| StoreError::Corrupt {
                            table: "webhooks",
                            column: "secret",
                            reason: "not text".to_owned(),
                        })?,
                        event: super::events::event_from_row(row)?,
                    });
                }
                out.sort_by_key(|c| (c.event.seq, c.delivery_id));
                Ok(out)
            })
        })
        .await
}

pub(super) async fn record(
    store: &PgStore,
    delivery_id: i64,
    lease_token: i64,
    a: AttemptRow,
) -> Result<Option<DeliveryState>, StoreError> {
    const OP: &str = "recording a webhook attempt";
    store
        .write(OP, move |conn| {
            Box::pin(async move {
                let current: Option<(i32, i32)> = sqlx::query_as(
                    "SELECT attempts, attempts_total FROM webhook_deliveries \
                     WHERE id = $1 AND lease_token = $2 AND state = 'pending' FOR UPDATE",
                )
                .bind(delivery_id)
                .bind(lease_token)
                .fetch_optional(&mut *conn)
                .await
                .map_err(err(OP))?;
                let Some((attempts, total)) = current else {
                    return Ok(None);
                };
                let next = shared::next_state(attempts, &a);
                let total = if next.counts {
                    let total = total.saturating_add(1);
                    sqlx::query(
                        "INSERT INTO webhook_attempts \
                           (delivery_id, attempt, at, response_status, error, duration_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(delivery_id)
                    .bind(total)
                    .bind(a.at)
                    .bind(a.response_status)
                    .bind(&a.error)
                    .bind(a.duration_ms)
                    .execute(&mut *conn)
                    .await
                    .map_err(err(OP))?;
                    total
                } else {
                    total
                };
                sqlx::query(
                    "UPDATE webhook_deliveries SET state = $2, attempts = $3, \
                       attempts_total = $4, next_attempt_at = $5, lease_owner = NULL, \
                       lease_expires_at = NULL, last_status = COALESCE($6, last_status), \
                       last_error = $7, updated_at = $8 \
                     WHERE id = $1",
                )
                .bind(delivery_id)
                .bind(next.state.as_str())
                .bind(next.attempts)
                .bind(total)
                .bind(next.next_attempt_at)
                .bind(a.response_status)
                .bind(&a.error)
                .bind(a.at)
                .execute(&mut *conn)
                .await
                .map_err(err(OP))?;
                Ok(Some(next.state))
            })
        })
        .await
}

pub(super) async fn list_deliveries(
    store: &PgStore,
    q: &DeliveryQuery,
) -> Result<Vec<StoredDelivery>, StoreError> {
    const OP: &str = "listing webhook deliveries";
    const T: &str = "webhook_deliveries";
    let rows = sqlx::query(
        "SELECT d.id, d.webhook_id, d.event_id, e.type AS event_type, d.object_type, \
           d.object_id, d.object_seq, d.state, d.attempts, d.attempts_total, d.next_attempt_at, \
           d.last_status, d.last_error, d.created_at, d.updated_at \
         FROM webhook_deliveries d JOIN events e ON e.id = d.event_id \
         WHERE d.webhook_id = $1 AND ($2::text IS NULL OR d.state = $2) AND d.id > $3 \
         ORDER BY d.id LIMIT $4",
    )
    .bind(&q.webhook_id)
    .bind(q.state.map(DeliveryState::as_str))
    .bind(q.after_id)
    .bind(i64::from(q.effective_limit()))
    .fetch_all(&store.pool)
    .await
    .map_err(err(OP))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let event_type: String = codec::column(row, T, "event_type")?;
        let state: String = codec::column(row, T, "state")?;
        let last_status: Option<i32> = codec::column(row, T, "last_status")?;
        out.push(StoredDelivery {
            id: codec::column(row, T, "id")?,
            webhook_id: codec::column(row, T, "webhook_id")?,
            event_id: codec::column(row, T, "event_id")?,
            event_type: shared::event_type_from_text(&event_type)?,
            object_type: codec::column(row, T, "object_type")?,
            object_id: codec::column(row, T, "object_id")?,
            object_seq: codec::column(row, T, "object_seq")?,
            state: shared::state_from_text(&state)?,
            attempts: codec::column(row, T, "attempts")?,
            attempts_total: codec::column(row, T, "attempts_total")?,
            next_attempt_at: codec::column(row, T, "next_attempt_at")?,
            last_status: shared::http_status(last_status.map(i64::from), T)?,
            last_error: codec::column(row, T, "last_error")?,
            created_at: codec::column(row, T, "created_at")?,
            updated_at: codec::column(row, T, "updated_at")?,
            attempt_log: Vec::new(),
        });
    }
    if out.is_empty() {
        return Ok(out);
    }
    let ids: Vec<i64> = out.iter().map(|d| d.id).collect();
    let attempts = sqlx::query(
        "SELECT delivery_id, attempt, at, response_status, error, duration_ms \
         FROM webhook_attempts WHERE delivery_id = ANY($1) \
         ORDER BY delivery_id, attempt",
    )
    .bind(&ids)
    .fetch_all(&store.pool)
    .await
    .map_err(err(OP))?;
    const A: &str = "webhook_attempts";
    for row in &attempts {
        let delivery_id: i64 = codec::column(row, A, "delivery_id")?;
        let status: Option<i32> = codec::column(row, A, "response_status")?;
        let attempt = DeliveryAttempt {
            attempt: codec::column(row, A, "attempt")?,
            at: codec::column(row, A, "at")?,
            response_status: shared::http_status(status.map(i64::from), A)?,
            error: codec::column(row, A, "error")?,
            duration_ms: codec::column(row, A, "duration_ms")?,
        };
        if let Some(d) = out.iter_mut().find(|d| d.id == delivery_id) {
            d.attempt_log.push(attempt);
        }
    }
    for d in &mut out {
        d.attempt_log = shared::keep_latest(std::mem::take(&mut d.attempt_log));
    }
    Ok(out)
}

pub(super) async fn redrive(
    store: &PgStore,
    webhook_id: String,
    delivery_id: Option<i64>,
    now: DateTime<Utc>,
    audit: codec::AuditRow,
) -> Result<u64, StoreError> {
    const OP: &str = "re-driving webhook deliveries";
    let now = codec::instant(now, "re-drive now")?;
    store
        .write(OP, move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, \
                       next_attempt_at = $3, lease_owner = NULL, lease_expires_at = NULL, \
                       updated_at = $3 \
                     WHERE webhook_id = $1 AND state = 'dead' AND ($2::bigint IS NULL OR id = $2)",
                )
                .bind(&webhook_id)
                .bind(delivery_id)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(err(OP))?
                .rows_affected();
                if done > 0 {
                    super::insert_audit(conn, &audit).await?;
                }
                Ok(done)
            })
        })
        .await
}
