//! The SQLite statements behind webhooks: registration (with its optional Idempotency-Key
//! and audit record in one writer job), the fan-out, the delivery claim, attempts, listing
//! and re-drive. Instants are TEXT in the fixed form of `codec.rs`.
//!
//! Concurrency: every write is a job of the one writer, so the fan-out's read of the
//! outbox, its inserts and its marks see every earlier write and no later one, and a claim
//! cannot race another claim or an attempt being recorded.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::{SqliteStore, BACKEND};
use crate::codec;
use crate::error::statement_error;
use crate::events::EVENT_COLUMNS;
use crate::webhooks::{
    self as shared, AttemptRow, ClaimedDelivery, DeliveryAttempt, DeliveryQuery, DeliveryState,
    FanOutReport, StoredDelivery, StoredWebhook, WebhookColumns, WebhookCreateOutcome, WebhookRow,
    WEBHOOKS_PER_CLIENT_MAX,
};
use crate::StoreError;

const WEBHOOK_COLUMNS: &str = "id, client_id, url, event_types, created_at, deleted_at";

fn err(op: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| statement_error(BACKEND, op, e)
}

fn instant(
    row: &SqliteRow,
    table: &'static str,
    column: &'static str,
) -> Result<DateTime<Utc>, StoreError> {
    let text: String = codec::column(row, table, column)?;
    codec::instant_from_text(&text, table, column)
}

fn maybe_instant(
    row: &SqliteRow,
    table: &'static str,
    column: &'static str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let text: Option<String> = codec::column(row, table, column)?;
    text.map(|t| codec::instant_from_text(&t, table, column))
        .transpose()
}

fn webhook_from_row(row: &SqliteRow) -> Result<StoredWebhook, StoreError> {
    const T: &str = "webhooks";
    WebhookColumns {
        id: codec::column(row, T, "id")?,
        client_id: codec::column(row, T, "client_id")?,
        url: codec::column(row, T, "url")?,
        event_types: codec::column(row, T, "event_types")?,
        created_at: instant(row, T, "created_at")?,
        deleted_at: maybe_instant(row, T, "deleted_at")?,
    }
    .into_domain()
}

/// A JSON array of ids, bound once and read with `json_each`.
fn id_list(ids: &[i64]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

pub(super) async fn create(
    store: &SqliteStore,
    row: WebhookRow,
) -> Result<WebhookCreateOutcome, StoreError> {
    store
        .write(move |conn| Box::pin(async move { create_in(conn, &row).await }))
        .await
}

async fn create_in(
    conn: &mut SqliteConnection,
    row: &WebhookRow,
) -> Result<WebhookCreateOutcome, StoreError> {
    const OP: &str = "registering a webhook";
    let w = &row.new;
    if let Some(claim) = &row.claim {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys \
               (client_id, key, request_hash, state, created_at, expires_at) \
             VALUES (?1, ?2, ?3, 'in_progress', ?4, ?5) \
             ON CONFLICT (client_id, key) DO NOTHING",
        )
        .bind(&claim.client_id)
        .bind(&claim.key)
        .bind(&claim.request_hash)
        .bind(codec::instant_text(w.created_at))
        .bind(codec::instant_text(claim.expires_at))
        .execute(&mut *conn)
        .await
        .map_err(err(OP))?
        .rows_affected()
            == 1;
        if !inserted {
            let stored: Option<(String, String, Option<i64>, Option<String>)> = sqlx::query_as(
                "SELECT request_hash, state, response_status, response_body \
                 FROM idempotency_keys WHERE client_id = ?1 AND key = ?2",
            )
            .bind(&claim.client_id)
            .bind(&claim.key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err(OP))?;
            return shared::replay_outcome(claim, stored);
        }
    }
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhooks WHERE client_id = ?1 AND deleted_at IS NULL",
    )
    .bind(&w.client_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(err(OP))?;
    if active >= i64::from(WEBHOOKS_PER_CLIENT_MAX) {
        if let Some(claim) = &row.claim {
            sqlx::query("DELETE FROM idempotency_keys WHERE client_id = ?1 AND key = ?2")
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
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(&w.id)
    .bind(&w.client_id)
    .bind(&w.url)
    .bind(&w.secret)
    .bind(&row.event_types)
    .bind(codec::instant_text(w.created_at))
    .execute(&mut *conn)
    .await
    .map_err(err(OP))?;
    if let Some(claim) = &row.claim {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'completed', response_status = ?3, \
               response_body = ?4 \
             WHERE client_id = ?1 AND key = ?2",
        )
        .bind(&claim.client_id)
        .bind(&claim.key)
        .bind(i32::from(claim.response_status))
        .bind(&claim.response_body)
        .execute(&mut *conn)
        .await
        .map_err(err(OP))?;
    }
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
    store: &SqliteStore,
    client_id: &str,
    after_id: Option<&str>,
    limit: u32,
) -> Result<Vec<StoredWebhook>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks \
         WHERE client_id = ?1 AND deleted_at IS NULL AND id > ?2 ORDER BY id LIMIT ?3"
    ))
    .bind(client_id)
    .bind(after_id.unwrap_or(""))
    .bind(i64::from(shared::effective_limit(limit)))
    .fetch_all(&store.readers)
    .await
    .map_err(err("listing webhooks"))?;
    rows.iter().map(webhook_from_row).collect()
}

pub(super) async fn get(
    store: &SqliteStore,
    client_id: &str,
    id: &str,
) -> Result<Option<StoredWebhook>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks \
         WHERE client_id = ?1 AND id = ?2 AND deleted_at IS NULL"
    ))
    .bind(client_id)
    .bind(id)
    .fetch_optional(&store.readers)
    .await
    .map_err(err("reading a webhook"))?;
    row.as_ref().map(webhook_from_row).transpose()
}

pub(super) async fn delete(
    store: &SqliteStore,
    client_id: String,
    id: String,
    audit: codec::AuditRow,
) -> Result<bool, StoreError> {
    const OP: &str = "deleting a webhook";
    store
        .write(move |conn| {
            Box::pin(async move {
                let at = codec::instant_text(audit.at);
                let done = sqlx::query(
                    "UPDATE webhooks SET deleted_at = ?3 \
                     WHERE client_id = ?1 AND id = ?2 AND deleted_at IS NULL",
                )
                .bind(&client_id)
                .bind(&id)
                .bind(&at)
                .execute(&mut *conn)
                .await
                .map_err(err(OP))?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                // Nothing more goes out for a deleted webhook.
                sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'skipped', next_attempt_at = NULL, \
                       lease_owner = NULL, lease_expires_at = NULL, \
                       last_error = 'the webhook was deleted', updated_at = ?2 \
                     WHERE webhook_id = ?1 AND state = 'pending'",
                )
                .bind(&id)
                .bind(&at)
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
    store: &SqliteStore,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<FanOutReport, StoreError> {
    shared::check_fan_out_limit(limit)?;
    let now = codec::instant_text(codec::instant(now, "fan-out now")?);
    // A direct job: under intake the fan-out runs back to back with the payment writes, and
    // as a sqlx job each of its rounds cost the writer hand-offs to sqlx's thread.
    store
        .writer
        .write_direct(move |db| fan_out_direct(db.connection(), &now, limit))
        .await
}

/// The outbox past the fan-out's cursor, oldest first (migration 0013: on SQLite, events
/// commit in `seq` order, so the cursor never passes one still to come).
const FAN_OUT_NEXT_SQL: &str = "SELECT seq FROM events \
     WHERE seq > (SELECT last_seq FROM event_fan_out WHERE id = 1) \
     ORDER BY seq LIMIT ?1";
/// One delivery per subscribed webhook and event of the range.
const FAN_OUT_DELIVERIES_SQL: &str = "INSERT INTO webhook_deliveries \
       (webhook_id, event_id, object_type, object_id, object_seq, state, \
        next_attempt_at, created_at, updated_at) \
     SELECT w.id, e.id, e.object_type, e.object_id, e.object_seq, 'pending', ?3, ?3, ?3 \
     FROM events e JOIN webhooks w ON w.deleted_at IS NULL \
       AND EXISTS (SELECT 1 FROM json_each(w.event_types) t WHERE t.value = e.type) \
     WHERE e.seq BETWEEN ?1 AND ?2 \
     ORDER BY e.seq, w.id \
     ON CONFLICT (webhook_id, event_id) DO NOTHING";
const FAN_OUT_CURSOR_SQL: &str = "UPDATE event_fan_out SET last_seq = ?1 WHERE id = 1";

fn fan_out_direct(
    db: &rusqlite::Connection,
    now: &str,
    limit: u32,
) -> Result<FanOutReport, StoreError> {
    const OP: &str = "fanning out events";
    let err = |e: rusqlite::Error| statement_error(BACKEND, OP, super::direct::to_sqlx(e));
    let seqs: Vec<i64> = db
        .prepare_cached(FAN_OUT_NEXT_SQL)
        .and_then(|mut s| {
            s.query_map([i64::from(limit)], |row| row.get(0))?
                .collect::<Result<Vec<i64>, _>>()
        })
        .map_err(err)?;
    let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
        return Ok(FanOutReport::default());
    };
    let made = db
        .prepare_cached(FAN_OUT_DELIVERIES_SQL)
        .and_then(|mut s| s.execute(rusqlite::params![first, last, now]))
        .map_err(err)?;
    let moved = db
        .prepare_cached(FAN_OUT_CURSOR_SQL)
        .and_then(|mut s| s.execute([last]))
        .map_err(err)?;
    if moved != 1 {
        return Err(StoreError::Corrupt {
            table: "event_fan_out",
            column: "last_seq",
            reason: "the fan-out cursor row is missing".to_owned(),
        });
    }
    Ok(FanOutReport {
        events: seqs.len(),
        deliveries: u64::try_from(made).unwrap_or(u64::MAX),
    })
}

pub(super) async fn claim(
    store: &SqliteStore,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
    owner: String,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    const OP: &str = "claiming webhook deliveries";
    let now = codec::instant_text(now);
    let expires = codec::instant_text(expires);
    store
        .write(move |conn| {
            Box::pin(async move {
                // Due, not leased, and no earlier delivery of the same webhook and object
                // still pending: per object, one at a time and in order.
                let claimed: Vec<(i64, i64, i32)> = sqlx::query_as(
                    "UPDATE webhook_deliveries \
                     SET lease_owner = ?2, lease_expires_at = ?3, lease_token = lease_token + 1 \
                     WHERE id IN ( \
                       SELECT d.id FROM webhook_deliveries d \
                       WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 \
                         AND (d.lease_expires_at IS NULL OR d.lease_expires_at < ?1) \
                         AND NOT EXISTS ( \
                           SELECT 1 FROM webhook_deliveries p \
                           WHERE p.webhook_id = d.webhook_id AND p.object_type = d.object_type \
                             AND p.object_id = d.object_id AND p.object_seq < d.object_seq \
                             AND p.state = 'pending') \
                       ORDER BY d.next_attempt_at, d.id LIMIT ?4) \
                     RETURNING id, lease_token, attempts",
                )
                .bind(&now)
                .bind(&owner)
                .bind(&expires)
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
                    .map(|c| format!("e.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let rows = sqlx::query(&format!(
                    "SELECT d.id AS delivery_id, d.webhook_id, w.client_id, w.url, w.secret, \
                       {event_columns} \
                     FROM webhook_deliveries d \
                     JOIN webhooks w ON w.id = d.webhook_id \
                     JOIN events e ON e.id = d.event_id \
                     WHERE d.id IN (SELECT value FROM json_each(?1))"
                ))
                .bind(id_list(&ids))
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
                // Oldest event first, as picked.
                out.sort_by_key(|c| (c.event.seq, c.delivery_id));
                Ok(out)
            })
        })
        .await
}

pub(super) async fn record(
    store: &SqliteStore,
    delivery_id: i64,
    lease_token: i64,
    a: AttemptRow,
) -> Result<Option<DeliveryState>, StoreError> {
    const OP: &str = "recording a webhook attempt";
    store
        .write(move |conn| {
            Box::pin(async move {
                let current: Option<(i32, i32)> = sqlx::query_as(
                    "SELECT attempts, attempts_total FROM webhook_deliveries \
                     WHERE id = ?1 AND lease_token = ?2 AND state = 'pending'",
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
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .bind(delivery_id)
                    .bind(total)
                    .bind(codec::instant_text(a.at))
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
                    "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, \
                       attempts_total = ?4, next_attempt_at = ?5, lease_owner = NULL, \
                       lease_expires_at = NULL, last_status = COALESCE(?6, last_status), \
                       last_error = ?7, updated_at = ?8 \
                     WHERE id = ?1",
                )
                .bind(delivery_id)
                .bind(next.state.as_str())
                .bind(next.attempts)
                .bind(total)
                .bind(next.next_attempt_at.map(codec::instant_text))
                .bind(a.response_status)
                .bind(&a.error)
                .bind(codec::instant_text(a.at))
                .execute(&mut *conn)
                .await
                .map_err(err(OP))?;
                Ok(Some(next.state))
            })
        })
        .await
}

pub(super) async fn list_deliveries(
    store: &SqliteStore,
    q: &DeliveryQuery,
) -> Result<Vec<StoredDelivery>, StoreError> {
    const OP: &str = "listing webhook deliveries";
    const T: &str = "webhook_deliveries";
    let rows = sqlx::query(
        "SELECT d.id, d.webhook_id, d.event_id, e.type AS event_type, d.object_type, \
           d.object_id, d.object_seq, d.state, d.attempts, d.attempts_total, d.next_attempt_at, \
           d.last_status, d.last_error, d.created_at, d.updated_at \
         FROM webhook_deliveries d JOIN events e ON e.id = d.event_id \
         WHERE d.webhook_id = ?1 AND (?2 IS NULL OR d.state = ?2) AND d.id > ?3 \
         ORDER BY d.id LIMIT ?4",
    )
    .bind(&q.webhook_id)
    .bind(q.state.map(DeliveryState::as_str))
    .bind(q.after_id)
    .bind(i64::from(q.effective_limit()))
    .fetch_all(&store.readers)
    .await
    .map_err(err(OP))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let event_type: String = codec::column(row, T, "event_type")?;
        let state: String = codec::column(row, T, "state")?;
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
            next_attempt_at: maybe_instant(row, T, "next_attempt_at")?,
            last_status: shared::http_status(codec::column(row, T, "last_status")?, T)?,
            last_error: codec::column(row, T, "last_error")?,
            created_at: instant(row, T, "created_at")?,
            updated_at: instant(row, T, "updated_at")?,
            attempt_log: Vec::new(),
        });
    }
    if out.is_empty() {
        return Ok(out);
    }
    let ids: Vec<i64> = out.iter().map(|d| d.id).collect();
    let attempts = sqlx::query(
        "SELECT delivery_id, attempt, at, response_status, error, duration_ms \
         FROM webhook_attempts WHERE delivery_id IN (SELECT value FROM json_each(?1)) \
         ORDER BY delivery_id, attempt",
    )
    .bind(id_list(&ids))
    .fetch_all(&store.readers)
    .await
    .map_err(err(OP))?;
    const A: &str = "webhook_attempts";
    for row in &attempts {
        let delivery_id: i64 = codec::column(row, A, "delivery_id")?;
        let attempt = DeliveryAttempt {
            attempt: codec::column(row, A, "attempt")?,
            at: instant(row, A, "at")?,
            response_status: shared::http_status(codec::column(row, A, "response_status")?, A)?,
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
    store: &SqliteStore,
    webhook_id: String,
    delivery_id: Option<i64>,
    now: DateTime<Utc>,
    audit: codec::AuditRow,
) -> Result<u64, StoreError> {
    const OP: &str = "re-driving webhook deliveries";
    let now = codec::instant_text(codec::instant(now, "re-drive now")?);
    store
        .write(move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, \
                       next_attempt_at = ?3, lease_owner = NULL, lease_expires_at = NULL, \
                       updated_at = ?3 \
                     WHERE webhook_id = ?1 AND state = 'dead' AND (?2 IS NULL OR id = ?2)",
                )
                .bind(&webhook_id)
                .bind(delivery_id)
                .bind(&now)
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
