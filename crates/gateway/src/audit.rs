//! The audit chain's moving parts in the gateway (the chain itself is `store::audit`):
//!
//! - [`CheckpointKey`]: the Ed25519 key that signs checkpoints, read from the file named by
//!   `[audit] checkpoint_key_file` (created 0600 on first start) and handed to the store as
//!   its [`store::audit::CheckpointSigner`]; the store never holds the key itself, and the
//!   key is never written to the database;
//! - [`run_chainer`]: the worker that runs the store's chainer every `chain_interval_ms`
//!   (on PostgreSQL it links what was committed since; on both it signs a checkpoint when
//!   `checkpoint_every_s` has passed);
//! - `GET /v1/audit` ([`list_audit`]) for scope `audit:read`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Scope;
use crate::extract::{ApiQuery, Caller};
use crate::problem::ApiError;
use crate::routes::page_limit;
use crate::AppState;

/// The prefix of a checkpoint key id; the rest is the public key in hex.
pub const KEY_ID_PREFIX: &str = "ed25519:";

/// The key id of a checkpoint key: `ed25519:` and its public key in lowercase hex, so a
/// verifier sees which key signed and checks it is the one it holds.
pub fn key_id(public: &crypto::Ed25519PublicKey) -> String {
    format!(
        "{KEY_ID_PREFIX}{}",
        store::audit::to_hex(&public.to_bytes())
    )
}

/// The checkpoint signing key.
pub struct CheckpointKey {
    key: crypto::Ed25519Key,
    key_id: String,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl CheckpointKey {
    /// Loads the key from `path`, or creates it there (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<CheckpointKey, crypto::CryptoError> {
        let key = crypto::Ed25519Key::load_or_create(path)?;
        let key_id = key_id(&key.public_key());
        Ok(CheckpointKey { key, key_id })
    }

    pub fn public_key(&self) -> crypto::Ed25519PublicKey {
        self.key.public_key()
    }
}

impl store::audit::CheckpointSigner for CheckpointKey {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign_bytes(message).to_vec()
    }
}

/// Checks a checkpoint's signature with `public` (and that it names that key).
pub fn check_checkpoint(
    public: &crypto::Ed25519PublicKey,
    cp: &store::audit::AuditCheckpoint,
) -> Result<(), String> {
    use crypto::Verifier;
    let expected = key_id(public);
    if cp.key_id != expected {
        return Err(format!(
            "signed by key {}, not by the configured key {expected}",
            cp.key_id
        ));
    }
    let message = cp
        .message()
        .ok_or_else(|| "its hash is not 32 bytes".to_owned())?;
    public
        .verify(&message, &cp.signature)
        .map_err(|_| "the signature is not valid for its position, hash and time".to_owned())
}

/// Runs the store's chainer every `interval` until `stop` turns true.
pub async fn run_chainer(
    store: Arc<dyn store::Store>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let full_batch = store::audit::CHAIN_LINK_BATCH_MAX as u64;
    loop {
        match store.audit_chain_tick().await {
            Ok(tick) if tick.linked > 0 || tick.checkpoint.is_some() => {
                tracing::debug!(
                    linked = tick.linked,
                    checkpoint = ?tick.checkpoint,
                    "audit chain advanced"
                );
                // A full batch: more may be waiting (a backlog); go on at once.
                if tick.linked >= full_batch && !*stop.borrow() {
                    continue;
                }
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "audit chainer run failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

// --- GET /v1/audit ---------------------------------------------------------------------

/// Filters of `GET /v1/audit`; every given one must match exactly.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditListParams {
    /// Who acted, e.g. `client:erp`.
    pub actor: Option<String>,
    /// What was acted on, e.g. `payment:pay_…`.
    pub object: Option<String>,
    /// What was done, e.g. `payment.create`.
    pub action: Option<String>,
    /// Records at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Records before this instant (RFC 3339).
    pub to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

/// One audit record with its place in the chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    /// Position in the hash chain (commit order); null until linked (PostgreSQL links
    /// within moments of the commit).
    pub position: Option<i64>,
    /// SHA-256 chain hash in hex; null until linked.
    pub hash: Option<String>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub request_id: Option<String>,
    pub outcome: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditView>,
    pub next_cursor: Option<String>,
}

const AUDIT_CURSOR: &str = "a1";

fn bad_cursor() -> ApiError {
    ApiError::bad_request(
        "invalid_cursor",
        "query.cursor",
        "the cursor is not one this API returned; start again without it",
    )
}

fn decode_cursor(raw: &str) -> Result<i64, ApiError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| bad_cursor())?;
    match text.split_once('|') {
        Some((AUDIT_CURSOR, id)) => id
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(bad_cursor),
        _ => Err(bad_cursor()),
    }
}

fn encode_cursor(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{AUDIT_CURSOR}|{id}"))
}

fn text_filter(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > store::AUDIT_TEXT_MAX_CHARS => {
            Err(ApiError::bad_request(
                "invalid_query",
                &format!("query.{name}"),
                format!(
                    "{name} must be 1 to {} characters",
                    store::AUDIT_TEXT_MAX_CHARS
                ),
            ))
        }
        other => Ok(other),
    }
}

fn instant_filter(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_query",
                        &format!("query.{name}"),
                        format!("{name} must be an RFC 3339 instant, e.g. 2026-06-30T00:00:00Z"),
                    )
                })
        })
        .transpose()
}

/// Audit records matching every given filter, oldest first, each with its position and
/// hash in the audit chain. Needs `audit:read`.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditListParams),
    responses((status = 200, body = AuditList), (status = 400, body = crate::problem::Problem),
        (status = 401, body = crate::problem::Problem), (status = 403, body = crate::problem::Problem)),
    security(("bearer" = ["audit:read"])))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditListParams>,
) -> Result<Json<AuditList>, ApiError> {
    caller.require(Scope::AuditRead)?;
    let limit =
        page_limit(&state, params.limit.as_deref())?.min(store::AUDIT_QUERY_MAX_LIMIT as usize - 1);
    let from = instant_filter("from", params.from.as_deref())?;
    let to = instant_filter("to", params.to.as_deref())?;
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(ApiError::bad_request(
                "invalid_query",
                "query.to",
                "to must not be before from",
            ));
        }
    }
    let query = store::AuditQuery {
        actor: text_filter("actor", params.actor)?,
        action: text_filter("action", params.action)?,
        object: text_filter("object", params.object)?,
        from,
        to,
        after_id: params.cursor.as_deref().map(decode_cursor).transpose()?,
        limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
    };
    let rows = state
        .store
        .list_audit(&query)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let page = &rows[..rows.len().min(limit)];
    let next_cursor = (rows.len() > limit)
        .then(|| page.last().map(|r| encode_cursor(r.id)))
        .flatten();
    Ok(Json(AuditList {
        items: page
            .iter()
            .map(|r| AuditView {
                id: r.id,
                position: r.position,
                hash: r.hash.as_deref().map(store::audit::to_hex),
                at: r.at,
                actor: r.actor.clone(),
                action: r.action.clone(),
                object: r.object.clone(),
                request_id: r.request_id.clone(),
                outcome: r.outcome.clone(),
                details: r.details.clone(),
            })
            .collect(),
        next_cursor,
    }))
}
