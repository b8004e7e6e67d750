//! Webhooks delivered from the event outbox: what both backends share.
//!
//! The records that cross the boundary ([`NewWebhook`], [`StoredWebhook`],
//! [`ClaimedDelivery`], [`StoredDelivery`], [`NewAttempt`]…), the checks the schema cannot
//! express, and the one rule that decides what an attempt does to its delivery
//! ([`next_state`]). The SQL is in `sqlite/webhooks.rs` and `postgres/webhooks.rs`.
//!
//! Promises (both backends, the suite checks them):
//! - the fan-out makes at most one delivery per (webhook, event), for every active webhook
//!   subscribed to the event's type, in the same transaction that marks the event fanned
//!   out, so an event is fanned out once even with several instances (PostgreSQL: an
//!   advisory lock; SQLite: the single writer);
//! - a claim never hands out a delivery while an earlier delivery (lower `object_seq`) of
//!   the same webhook and object is still `pending`: per object, deliveries go out one at
//!   a time and in order. A `dead` or `skipped` delivery no longer holds later ones back;
//! - an attempt is recorded only by the holder of the delivery's current lease token;
//! - re-driving a dead delivery makes it `pending` and due now, with its `attempts`
//!   counter RESET to 0 (a full new budget of attempts); `attempts_total` keeps counting
//!   and numbers the attempt rows, so the history of earlier attempts is kept;
//! - a webhook's secret is only ever read back by the claim (for signing); no listing or
//!   read returns it, and `Debug` of the records that carry it prints `[redacted]`.

use chrono::{DateTime, Utc};

use crate::events::{EventType, StoredEvent};
use crate::payments::IdempotencyClaim;
use crate::StoreError;

/// Most event types one webhook subscribes to (the schema agrees).
pub const WEBHOOK_EVENT_TYPES_MAX: usize = 16;
/// Most active webhooks of one client.
pub const WEBHOOKS_PER_CLIENT_MAX: u32 = 20;
/// Longest webhook URL, in characters (the schema agrees).
pub const WEBHOOK_URL_MAX_CHARS: usize = 2048;
/// Shortest and longest secret, in characters (the schema agrees).
pub const WEBHOOK_SECRET_MIN_CHARS: usize = 32;
pub const WEBHOOK_SECRET_MAX_CHARS: usize = 256;
/// Longest secret as stored: the gateway stores it sealed (`sealed:v1:…`,
/// AES-256-GCM under its data key), which is longer than the secret itself.
pub const WEBHOOK_STORED_SECRET_MAX_CHARS: usize = 512;
/// Longest stored error text of an attempt; longer text is cut, not refused.
pub const WEBHOOK_ERROR_MAX_CHARS: usize = 512;
/// Most webhooks or deliveries one list call returns.
pub const WEBHOOK_QUERY_MAX_LIMIT: u32 = 100;
/// Most attempts listed per delivery (the latest ones).
pub const WEBHOOK_ATTEMPTS_LISTED_MAX: usize = 50;
/// Most events one fan-out call takes.
pub const FAN_OUT_MAX_EVENTS: u32 = 1000;
/// Most deliveries one claim takes.
pub const DELIVERY_CLAIM_MAX_LIMIT: u32 = 256;

/// A webhook to register. `Debug` does not print the secret.
#[derive(Clone)]
pub struct NewWebhook {
    /// `whk_…`, 5–64 characters.
    pub id: String,
    pub client_id: String,
    /// An http(s) URL, checked by the caller; at most [`WEBHOOK_URL_MAX_CHARS`].
    pub url: String,
    /// The HMAC key deliveries are signed with.
    pub secret: String,
    /// 1..=[`WEBHOOK_EVENT_TYPES_MAX`] distinct types.
    pub event_types: Vec<EventType>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewWebhook")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("event_types", &self.event_types)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A registered webhook as read back: never with its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhook {
    pub id: String,
    pub client_id: String,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What `create_webhook` did.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookCreateOutcome {
    Created(StoredWebhook),
    /// The Idempotency-Key was used before with the same request: its stored answer.
    Replay {
        status: u16,
        body: String,
    },
    /// The key was used with another request; nothing written.
    KeyReused,
    /// The key's first request has not finished; nothing written.
    InProgress,
    /// The client has [`WEBHOOKS_PER_CLIENT_MAX`] active webhooks; nothing written.
    LimitReached,
}

/// The state of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its next attempt (or in flight, under a lease).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every allowed attempt failed; waits for a re-drive.
    Dead,
    /// Not sent: the webhook's owner may not see the event's account, or the webhook was
    /// deleted first.
    Skipped,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Dead,
        DeliveryState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
            DeliveryState::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A delivery leased to one worker, with everything needed to send it. `Debug` does not
/// print the secret.
#[derive(Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: i64,
    /// Name it when recording the attempt.
    pub lease_token: i64,
    /// Attempts since creation or the last re-drive.
    pub attempts: i32,
    pub webhook_id: String,
    /// The webhook's owner: the delivery is sent only while it may see the account.
    pub client_id: String,
    pub url: String,
    pub secret: String,
    pub event: StoredEvent,
}

impl std::fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("delivery_id", &self.delivery_id)
            .field("lease_token", &self.lease_token)
            .field("attempts", &self.attempts)
            .field("webhook_id", &self.webhook_id)
            .field("client_id", &self.client_id)
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("event", &self.event.id)
            .finish()
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered,
    /// Anything else; try again at `retry_at`, unless this was the last allowed attempt.
    Failed { retry_at: DateTime<Utc> },
    /// Not sent (no entitlement): no attempt row, the delivery ends `skipped`.
    Skipped,
}

/// One attempt to record.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub at: DateTime<Utc>,
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    pub response_status: Option<u16>,
    /// What went wrong (timeout, connection refused…) or why it was skipped; cut to
    /// [`WEBHOOK_ERROR_MAX_CHARS`].
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
    /// A failure that makes `attempts` reach this ends the delivery `dead`.
    pub max_attempts: u32,
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    /// 1, 2, … over the delivery's whole life (re-drives included).
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub response_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A delivery as listed, with its latest attempts (at most [`WEBHOOK_ATTEMPTS_LISTED_MAX`],
/// oldest first).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    pub id: i64,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: EventType,
    pub object_type: String,
    pub object_id: String,
    pub object_seq: i64,
    pub state: DeliveryState,
    pub attempts: i32,
    pub attempts_total: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempt_log: Vec<DeliveryAttempt>,
}

/// Which deliveries `list_webhook_deliveries` returns: the webhook's, in `state` if given,
/// with `id > after_id`, ascending by id, at most `min(limit, WEBHOOK_QUERY_MAX_LIMIT)`
/// (0: the maximum).
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub webhook_id: String,
    pub state: Option<DeliveryState>,
    pub after_id: i64,
    pub limit: u32,
}

impl DeliveryQuery {
    pub(crate) fn effective_limit(&self) -> u32 {
        effective_limit(self.limit)
    }
}

pub(crate) fn effective_limit(limit: u32) -> u32 {
    if limit == 0 {
        WEBHOOK_QUERY_MAX_LIMIT
    } else {
        limit.min(WEBHOOK_QUERY_MAX_LIMIT)
    }
}

/// What one fan-out did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOutReport {
    /// Events marked fanned out.
    pub events: usize,
    /// Deliveries made for them.
    pub deliveries: u64,
}

fn invalid(reason: String) -> StoreError {
    StoreError::Invalid { reason }
}

fn refuse_nul(what: &str, text: &str) -> Result<(), StoreError> {
    if text.contains('\0') {
        return Err(invalid(format!("{what} contains a NUL character")));
    }
    Ok(())
}

/// A checked webhook, ready to bind.
#[derive(Clone)]
pub(crate) struct WebhookRow {
    pub new: NewWebhook,
    /// JSON array text of the event type names.
    pub event_types: String,
    pub claim: Option<IdempotencyClaim>,
    pub audit: crate::codec::AuditRow,
}

pub(crate) fn webhook_row(
    new: NewWebhook,
    claim: Option<IdempotencyClaim>,
    audit: crate::NewAuditRecord,
) -> Result<WebhookRow, StoreError> {
    if !new.id.starts_with("whk_") || !(5..=64).contains(&new.id.len()) {
        return Err(invalid(format!(
            "webhook id {:?} is not whk_… of 5 to 64 characters",
            new.id
        )));
    }
    for (what, text) in [
        ("webhook id", &new.id),
        ("webhook client id", &new.client_id),
        ("webhook url", &new.url),
        ("webhook secret", &new.secret),
    ] {
        refuse_nul(what, text)?;
    }
    if new.url.chars().count() > WEBHOOK_URL_MAX_CHARS {
        return Err(invalid(format!(
            "webhook url is longer than {WEBHOOK_URL_MAX_CHARS} characters"
        )));
    }
    let secret_chars = new.secret.chars().count();
    if !(WEBHOOK_SECRET_MIN_CHARS..=WEBHOOK_STORED_SECRET_MAX_CHARS).contains(&secret_chars) {
        // The length only: never the secret.
        return Err(invalid(format!(
            "a stored webhook secret has {WEBHOOK_SECRET_MIN_CHARS} to {WEBHOOK_STORED_SECRET_MAX_CHARS} characters, not {secret_chars}"
        )));
    }
    let mut types: Vec<&str> = new.event_types.iter().map(|t| t.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    if types.is_empty() || types.len() != new.event_types.len() {
        return Err(invalid(
            "a webhook subscribes to at least one event type, each once".to_owned(),
        ));
    }
    if types.len() > WEBHOOK_EVENT_TYPES_MAX {
        return Err(invalid(format!(
            "a webhook subscribes to at most {WEBHOOK_EVENT_TYPES_MAX} event types"
        )));
    }
    let event_types =
        serde_json::to_string(&types).map_err(|e| invalid(format!("webhook event types: {e}")))?;
    let audit = crate::codec::AuditRow::new(audit)?;
    let new = NewWebhook {
        created_at: crate::codec::instant(new.created_at, "webhook created_at")?,
        ..new
    };
    let claim = claim
        .map(|c| -> Result<IdempotencyClaim, StoreError> {
            for (what, text) in [
                ("idempotency client id", &c.client_id),
                ("idempotency key", &c.key),
                ("idempotency request hash", &c.request_hash),
                ("idempotency response body", &c.response_body),
            ] {
                refuse_nul(what, text)?;
            }
            if c.response_body.len() > crate::IDEMPOTENCY_RESPONSE_MAX_BYTES {
                return Err(invalid(
                    "the idempotent response body is over its limit".to_owned(),
                ));
            }
            if (c.expires_at - new.created_at).num_seconds() < crate::IDEMPOTENCY_RETENTION_MIN_S {
                return Err(invalid(format!(
                    "an idempotency key must be kept at least {} s after its request",
                    crate::IDEMPOTENCY_RETENTION_MIN_S
                )));
            }
            Ok(IdempotencyClaim {
                expires_at: crate::codec::instant(c.expires_at, "idempotency expires_at")?,
                ..c
            })
        })
        .transpose()?;
    Ok(WebhookRow {
        new,
        event_types,
        claim,
        audit,
    })
}

/// What a stored key says about a repeated create (the key was not inserted).
pub(crate) fn replay_outcome(
    claim: &IdempotencyClaim,
    stored: Option<(String, String, Option<i64>, Option<String>)>,
) -> Result<WebhookCreateOutcome, StoreError> {
    let Some((hash, state, status, body)) = stored else {
        // Inserted by nobody and yet not insertable: a purge raced us.
        return Err(StoreError::Contention {
            what: "an Idempotency-Key was purged while in use",
        });
    };
    if hash != claim.request_hash {
        return Ok(WebhookCreateOutcome::KeyReused);
    }
    match (state.as_str(), status, body) {
        ("completed", Some(status), Some(body)) => Ok(WebhookCreateOutcome::Replay {
            status: u16::try_from(status).map_err(|_| StoreError::Corrupt {
                table: "idempotency_keys",
                column: "response_status",
                reason: format!("{status} is not an HTTP status"),
            })?,
            body,
        }),
        _ => Ok(WebhookCreateOutcome::InProgress),
    }
}

/// Column values of one `webhooks` row as read.
pub(crate) struct WebhookColumns {
    pub id: String,
    pub client_id: String,
    pub url: String,
    pub event_types: String,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub(crate) fn parse_event_types(text: &str) -> Result<Vec<EventType>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        table: "webhooks",
        column: "event_types",
        reason,
    };
    let names: Vec<String> =
        serde_json::from_str(text).map_err(|e| corrupt(format!("not a JSON array ({e})")))?;
    names
        .iter()
        .map(|n| EventType::parse(n).ok_or_else(|| corrupt(format!("unknown event type {n:?}"))))
        .collect()
}

impl WebhookColumns {
    pub(crate) fn into_domain(self) -> Result<StoredWebhook, StoreError> {
        Ok(StoredWebhook {
            event_types: parse_event_types(&self.event_types)?,
            id: self.id,
            client_id: self.client_id,
            url: self.url,
            created_at: self.created_at,
            deleted_at: self.deleted_at,
        })
    }
}

pub(crate) fn state_from_text(text: &str) -> Result<DeliveryState, StoreError> {
    DeliveryState::parse(text).ok_or_else(|| StoreError::Corrupt {
        table: "webhook_deliveries",
        column: "state",
        reason: format!("unknown delivery state {text:?}"),
    })
}

pub(crate) fn http_status(
    value: Option<i64>,
    table: &'static str,
) -> Result<Option<u16>, StoreError> {
    value
        .map(|s| {
            u16::try_from(s).map_err(|_| StoreError::Corrupt {
                table,
                column: "response_status",
                reason: format!("{s} is not an HTTP status"),
            })
        })
        .transpose()
}

pub(crate) fn event_type_from_text(text: &str) -> Result<EventType, StoreError> {
    EventType::parse(text).ok_or_else(|| StoreError::Corrupt {
        table: "events",
        column: "type",
        reason: format!("unknown event type {text:?}"),
    })
}

/// The arguments of a claim, checked: (now, lease expiry).
pub(crate) fn check_claim_args(
    now: DateTime<Utc>,
    lease_owner: &str,
    lease_duration_ms: u64,
    limit: u32,
) -> Result<(DateTime<Utc>, DateTime<Utc>), StoreError> {
    if lease_owner.is_empty() || lease_owner.chars().count() > 128 {
        return Err(invalid("a lease owner has 1 to 128 characters".to_owned()));
    }
    refuse_nul("lease owner", lease_owner)?;
    if lease_duration_ms == 0 || lease_duration_ms > crate::LEASE_DURATION_MAX_MS {
        return Err(invalid(format!(
            "a lease lasts 1 to {} ms, not {lease_duration_ms}",
            crate::LEASE_DURATION_MAX_MS
        )));
    }
    if limit == 0 || limit > DELIVERY_CLAIM_MAX_LIMIT {
        return Err(invalid(format!(
            "a claim takes 1 to {DELIVERY_CLAIM_MAX_LIMIT} deliveries, not {limit}"
        )));
    }
    let now = crate::codec::instant(now, "claim now")?;
    let millis = i64::try_from(lease_duration_ms).unwrap_or(i64::MAX);
    let expires = now
        .checked_add_signed(chrono::Duration::milliseconds(millis))
        .ok_or_else(|| invalid("the lease expiry is out of range".to_owned()))?;
    Ok((now, crate::codec::instant(expires, "lease expiry")?))
}

pub(crate) fn check_fan_out_limit(limit: u32) -> Result<(), StoreError> {
    if limit == 0 || limit > FAN_OUT_MAX_EVENTS {
        return Err(invalid(format!(
            "a fan-out takes 1 to {FAN_OUT_MAX_EVENTS} events, not {limit}"
        )));
    }
    Ok(())
}

/// An attempt checked and cut to the column limits.
#[derive(Debug, Clone)]
pub(crate) struct AttemptRow {
    pub at: DateTime<Utc>,
    pub duration_ms: i64,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
    pub max_attempts: i32,
}

pub(crate) fn attempt_row(a: NewAttempt) -> Result<AttemptRow, StoreError> {
    if let Some(s) = a.response_status {
        if !(100..=599).contains(&s) {
            return Err(invalid(format!("{s} is not an HTTP status")));
        }
    }
    let error = a
        .error
        .map(|e| {
            e.replace('\0', " ")
                .chars()
                .take(WEBHOOK_ERROR_MAX_CHARS)
                .collect::<String>()
        })
        .filter(|e| !e.is_empty());
    if a.response_status.is_none() && error.is_none() {
        return Err(invalid(
            "an attempt has a response status or an error".to_owned(),
        ));
    }
    if a.max_attempts == 0 {
        return Err(invalid("max_attempts is at least 1".to_owned()));
    }
    let outcome = match a.outcome {
        AttemptOutcome::Failed { retry_at } => AttemptOutcome::Failed {
            retry_at: crate::codec::instant(retry_at, "retry at")?,
        },
        other => other,
    };
    Ok(AttemptRow {
        at: crate::codec::instant(a.at, "attempt at")?,
        duration_ms: i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
        response_status: a.response_status.map(i32::from),
        error,
        outcome,
        max_attempts: i32::try_from(a.max_attempts).unwrap_or(i32::MAX),
    })
}

/// What an attempt does to its delivery, given its `attempts` so far: the new state, the
/// new `attempts`, whether an attempt row is written, and the next due time.
pub(crate) struct NextState {
    pub state: DeliveryState,
    pub attempts: i32,
    pub counts: bool,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

pub(crate) fn next_state(attempts: i32, a: &AttemptRow) -> NextState {
    match a.outcome {
        AttemptOutcome::Delivered => NextState {
            state: DeliveryState::Delivered,
            attempts: attempts.saturating_add(1),
            counts: true,
            next_attempt_at: None,
        },
        AttemptOutcome::Failed { retry_at } => {
            let attempts = attempts.saturating_add(1);
            if attempts >= a.max_attempts {
                NextState {
                    state: DeliveryState::Dead,
                    attempts,
                    counts: true,
                    next_attempt_at: None,
                }
            } else {
                NextState {
                    state: DeliveryState::Pending,
                    attempts,
                    counts: true,
                    next_attempt_at: Some(retry_at),
                }
            }
        }
        AttemptOutcome::Skipped => NextState {
            state: DeliveryState::Skipped,
            attempts,
            counts: false,
            next_attempt_at: None,
        },
    }
}

/// The latest [`WEBHOOK_ATTEMPTS_LISTED_MAX`] of a delivery's attempts, oldest first.
pub(crate) fn keep_latest(mut attempts: Vec<DeliveryAttempt>) -> Vec<DeliveryAttempt> {
    if attempts.len() > WEBHOOK_ATTEMPTS_LISTED_MAX {
        attempts.drain(..attempts.len() - WEBHOOK_ATTEMPTS_LISTED_MAX);
    }
    attempts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(outcome: AttemptOutcome, max: i32) -> AttemptRow {
        AttemptRow {
            at: Utc::now(),
            duration_ms: 1,
            response_status: Some(500),
            error: None,
            outcome,
            max_attempts: max,
        }
    }

    #[test]
    fn a_failure_retries_until_the_last_allowed_attempt_then_is_dead() {
        let retry_at = Utc::now();
        let failed = row(AttemptOutcome::Failed { retry_at }, 3);
        let n = next_state(0, &failed);
        assert_eq!(
            (n.state, n.attempts, n.next_attempt_at),
            (DeliveryState::Pending, 1, Some(retry_at))
        );
        let n = next_state(2, &failed);
        assert_eq!((n.state, n.attempts), (DeliveryState::Dead, 3));
        assert!(n.next_attempt_at.is_none());
        let n = next_state(2, &row(AttemptOutcome::Delivered, 3));
        assert_eq!((n.state, n.attempts), (DeliveryState::Delivered, 3));
        let n = next_state(1, &row(AttemptOutcome::Skipped, 3));
        assert_eq!(
            (n.state, n.attempts, n.counts),
            (DeliveryState::Skipped, 1, false)
        );
    }

    #[test]
    fn the_secret_never_prints() {
        let new = NewWebhook {
            id: "whk_1".to_owned(),
            client_id: "erp".to_owned(),
            url: "https://example.com/hook".to_owned(),
            secret: "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t".to_owned(),
            event_types: vec![EventType::PaymentStatusChanged],
            created_at: Utc::now(),
        };
        assert!(!format!("{new:?}").contains("s3cr3t"));
        let too_short = NewWebhook {
            secret: "s3cr3t".to_owned(),
            ..new
        };
        let err = webhook_row(
            too_short,
            None,
            crate::NewAuditRecord {
                at: Utc::now(),
                actor: "a".to_owned(),
                action: "b".to_owned(),
                object: "c".to_owned(),
                request_id: None,
                outcome: "d".to_owned(),
                details: serde_json::json!({}),
            },
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("characters") && !err.contains("s3cr3t"),
            "{err}"
        );
    }
}
