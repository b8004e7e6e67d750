//! Webhook routes: register (optional Idempotency-Key), list, read, delete, list
//! deliveries with their attempts, and re-drive dead deliveries.
//!
//! Every route needs `payments:write`: webhooks are the event side of the payment API, and
//! an integrator that may pay may also be told what happened (see docs/webhooks.md). A
//! webhook belongs to the client that registered it; another client's webhook is a 404
//! like a missing one. The secret is returned once, in the 201 of the create call, and
//! never again: not in reads, not in an idempotent replay, not in audit records or logs.
//!
//! URLs are http(s) without credentials; a host that is loopback, private, link-local or
//! `localhost` is refused unless `webhooks.allow_private_urls` or the host is in
//! `webhooks.allowed_hosts`. The check is on the URL as written (an IP literal or a
//! name); names are not resolved here but at each delivery, where every address a name
//! resolves to is checked the same way and the connection goes to a checked address
//! only ([`crate::webhook_delivery`]).

use std::net::IpAddr;

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use base64::Engine;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{
    DeliveryQuery, DeliveryState, EventType, IdempotencyClaim, NewAuditRecord, NewWebhook,
    StoredDelivery, StoredWebhook, WebhookCreateOutcome,
};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Scope,
    config::WebhooksConfig,
    extract::{request_id, ApiQuery, Caller},
    payment_intake::{canonical_hash, check_idempotency_key},
    problem::{ApiError, Problem},
    routes::page_limit,
    AppState,
};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub created_at: DateTime<Utc>,
    /// Only in the 201 answer of the create call that generated or took it; keep it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<WebhookView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectRef {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub response_status: Option<u16>,
    /// What went wrong when it did not (timeout, connection refused).
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// `whd_<n>`.
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub object: ObjectRef,
    pub sequence: i64,
    /// `pending`, `delivered`, `dead` or `skipped`.
    pub state: String,
    /// Attempts since the delivery was made or last re-driven.
    pub attempt_count: i32,
    #[serde(serialize_with = "serialize_opt_instant")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub updated_at: DateTime<Utc>,
    /// The latest attempts, oldest first, over the delivery's whole life.
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redriven {
    /// How many dead deliveries are pending again.
    pub redriven: u64,
}

fn serialize_opt_instant<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => crate::timefmt::serialize(t, s),
        None => s.serialize_none(),
    }
}

fn view(w: &StoredWebhook, secret: Option<String>) -> WebhookView {
    WebhookView {
        id: w.id.clone(),
        url: w.url.clone(),
        event_types: w
            .event_types
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
        created_at: w.created_at,
        secret,
    }
}

fn delivery_view(d: &StoredDelivery) -> DeliveryView {
    DeliveryView {
        id: format!("whd_{}", d.id),
        event_id: d.event_id.clone(),
        event_type: d.event_type.as_str().to_owned(),
        object: ObjectRef {
            kind: d.object_type.clone(),
            id: d.object_id.clone(),
        },
        sequence: d.object_seq,
        state: d.state.as_str().to_owned(),
        attempt_count: d.attempts,
        next_attempt_at: d.next_attempt_at,
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        created_at: d.created_at,
        updated_at: d.updated_at,
        attempts: d
            .attempt_log
            .iter()
            .map(|a| AttemptView {
                attempt: a.attempt,
                at: a.at,
                response_status: a.response_status,
                error: a.error.clone(),
                duration_ms: a.duration_ms,
            })
            .collect(),
    }
}

fn invalid(code: &str, field: impl Into<String>, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail).with_field(field)
}

fn webhook_not_found() -> ApiError {
    ApiError::not_found(
        "webhook_not_found",
        "path.id",
        "no webhook with this id is registered by you; list yours with GET /v1/webhooks",
    )
}

/// True for addresses a webhook must not reach unless allowed: loopback, private,
/// link-local, unspecified, "this network", CGNAT, broadcast, multicast, reserved,
/// unique-local, and the IPv4-mapped and NAT64 forms of these. Checked on the URL as
/// written here, and on every resolved address at delivery ([`crate::webhook_delivery`]).
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., a, b, c, d] = v6.octets();
                return is_private(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            let first = segments[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// True when the operator listed `host` (a name or an IP literal, brackets and a
/// trailing dot ignored) in `webhooks.allowed_hosts`.
pub(crate) fn host_listed(settings: &WebhooksConfig, host: &str) -> bool {
    let bare = |h: &str| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase()
    };
    let host = bare(host);
    settings.allowed_hosts.iter().any(|h| bare(h) == host)
}

/// Checks a webhook URL; the problem names `body.url`.
pub fn check_url(raw: &str, settings: &WebhooksConfig) -> Result<String, ApiError> {
    const FIELD: &str = "body.url";
    if raw.chars().count() > store::WEBHOOK_URL_MAX_CHARS {
        return Err(invalid(
            "invalid_url",
            FIELD,
            format!(
                "url is longer than {} characters",
                store::WEBHOOK_URL_MAX_CHARS
            ),
        ));
    }
    let url = reqwest::Url::parse(raw)
        .map_err(|e| invalid("invalid_url", FIELD, format!("url is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            "unsupported_url_scheme",
            FIELD,
            "url must be an http:// or https:// URL",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "url_has_credentials",
            FIELD,
            "url must not carry a user name or password; every delivery is signed with the webhook's secret instead",
        ));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(invalid("invalid_url", FIELD, "url names no host"));
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    // `localhost.` is `localhost`: the root's dot changes nothing for the resolver.
    let lower = bare.trim_end_matches('.').to_ascii_lowercase();
    let private = match bare.parse::<IpAddr>() {
        Ok(ip) => is_private(ip),
        Err(_) => lower == "localhost" || lower.ends_with(".localhost"),
    };
    let allowed = settings.allow_private_urls || host_listed(settings, bare);
    if private && !allowed {
        return Err(invalid(
            "url_not_allowed",
            FIELD,
            "url points to a loopback, private or link-local address; the operator must allow it (webhooks.allow_private_urls or webhooks.allowed_hosts)",
        ));
    }
    Ok(url.to_string())
}

/// A valid create request.
struct CreateRequest {
    url: String,
    event_types: Vec<EventType>,
    secret: Option<String>,
}

fn parse_create(json: &Value, settings: &WebhooksConfig) -> Result<CreateRequest, ApiError> {
    let Some(obj) = json.as_object() else {
        return Err(invalid(
            "invalid_body",
            "body",
            "the body must be a JSON object {url, event_types, secret?}",
        ));
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "url" | "event_types" | "secret"))
    {
        return Err(invalid(
            "unknown_field",
            format!("body.{unknown}"),
            format!(
                "{unknown} is not a webhook field; send url, event_types and optionally secret"
            ),
        ));
    }
    let url = match obj.get("url") {
        Some(Value::String(u)) => check_url(u, settings)?,
        Some(_) => return Err(invalid("invalid_url", "body.url", "url must be a string")),
        None => return Err(invalid("missing_field", "body.url", "url is required")),
    };
    let types = match obj.get("event_types") {
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(invalid(
                "invalid_event_types",
                "body.event_types",
                "event_types must be an array of event type names",
            ))
        }
        None => {
            return Err(invalid(
                "missing_field",
                "body.event_types",
                "event_types is required, e.g. [\"payment.status_changed\"]",
            ))
        }
    };
    if types.is_empty() {
        return Err(invalid(
            "invalid_event_types",
            "body.event_types",
            "event_types must name at least one event type",
        ));
    }
    if types.len() > store::WEBHOOK_EVENT_TYPES_MAX {
        return Err(invalid(
            "too_many_event_types",
            "body.event_types",
            format!(
                "at most {} event types per webhook",
                store::WEBHOOK_EVENT_TYPES_MAX
            ),
        ));
    }
    let mut event_types = Vec::new();
    for (i, t) in types.iter().enumerate() {
        let parsed = t.as_str().and_then(EventType::parse).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            invalid(
                "unknown_event_type",
                format!("body.event_types[{i}]"),
                format!("not an event type; known: {}", known.join(", ")),
            )
        })?;
        if !event_types.contains(&parsed) {
            event_types.push(parsed);
        }
    }
    // Stored and shown in name order, whatever order they came in.
    event_types.sort_by_key(|t| t.as_str());
    let secret = match obj.get("secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if !(store::WEBHOOK_SECRET_MIN_CHARS..=store::WEBHOOK_SECRET_MAX_CHARS).contains(&n)
                || !s.chars().all(|c| c.is_ascii_graphic())
            {
                // Never echo it.
                return Err(invalid(
                    "invalid_secret",
                    "body.secret",
                    format!(
                        "secret must be {} to {} visible ASCII characters (omit it to get a generated 256-bit one)",
                        store::WEBHOOK_SECRET_MIN_CHARS,
                        store::WEBHOOK_SECRET_MAX_CHARS
                    ),
                ));
            }
            Some(s.clone())
        }
        Some(_) => {
            return Err(invalid(
                "invalid_secret",
                "body.secret",
                "secret must be a string",
            ))
        }
    };
    Ok(CreateRequest {
        url,
        event_types,
        secret,
    })
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Registers a webhook. `Idempotency-Key` is optional; a replay answers the same webhook
/// WITHOUT its secret. Without `secret`, a 256-bit one is generated; either way the 201
/// answer is the only place it is ever returned. Needs `payments:write`.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    params(("Idempotency-Key" = Option<String>, Header, description = "Optional; resend it to retry safely")),
    request_body(content = Object, description = "url (http(s)), event_types [payment.status_changed, payment_batch.status_changed, payment_batch.completed, transaction.booked], secret? (32-256 visible ASCII)"),
    responses((status = 201, body = WebhookView), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            check_idempotency_key(Some(v.to_str().unwrap_or("\u{0}")))
                .map_err(|p| ApiError::bad_request(p.code, &p.field, p.detail))?,
        ),
    };
    let json: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            "body",
            format!("the body is not valid JSON ({e}); send a JSON object"),
        )
    })?;
    let req = parse_create(&json, &state.config.webhooks)?;
    let now = state.clock.now();
    let generated = req.secret.is_none();
    let secret = match req.secret {
        Some(s) => s,
        None => format!("whsec_{}", crypto::generate_client_secret().expose_secret()),
    };
    let id = format!("whk_{}", uuid::Uuid::now_v7().simple());
    let stored_view = WebhookView {
        id: id.clone(),
        url: req.url.clone(),
        event_types: req
            .event_types
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
        created_at: now,
        secret: None,
    };
    // What a replay answers: the same webhook, never its secret.
    let replay_body = serde_json::to_string(&stored_view)
        .map_err(|e| ApiError::internal("webhook response", &e))?;
    let claim = key.map(|key| IdempotencyClaim {
        client_id: caller.subject.clone(),
        key,
        // The body as sent, secret included (a retry with another secret is another
        // request); secrets are at least 32 characters, so the SHA-256 reveals nothing
        // usable. Wrapped so it can never equal a payment body's hash.
        request_hash: canonical_hash(&serde_json::json!({"webhook": json})),
        expires_at: now
            + ChronoDuration::seconds(
                i64::try_from(state.config.payments.idempotency_ttl_s).unwrap_or(i64::MAX / 2),
            ),
        response_status: 201,
        response_body: replay_body,
    });
    let outcome = state
        .store
        .create_webhook(
            NewWebhook {
                id: id.clone(),
                client_id: caller.subject.clone(),
                url: req.url.clone(),
                // Stored sealed under the data key: a copy of the database alone does
                // not give the secret away.
                secret: state.webhook_secret_key.seal(&secret),
                event_types: req.event_types.clone(),
                created_at: now,
            },
            claim,
            NewAuditRecord {
                at: now,
                actor: caller.actor(),
                action: "webhook.create".to_owned(),
                object: format!("webhook:{id}"),
                request_id: request_id(&headers),
                outcome: "created".to_owned(),
                details: serde_json::json!({
                    "host": host_of(&req.url),
                    "event_types": stored_view.event_types,
                    "secret_generated": generated,
                }),
            },
        )
        .await
        .map_err(|e| ApiError::storage(&e))?;
    match outcome {
        WebhookCreateOutcome::Created(w) => {
            let body = serde_json::to_string(&view(&w, Some(secret)))
                .map_err(|e| ApiError::internal("webhook response", &e))?;
            Ok(json_response(StatusCode::CREATED, body, false))
        }
        WebhookCreateOutcome::Replay { status, body } => Ok(json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body,
            true,
        )),
        WebhookCreateOutcome::KeyReused => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different body; use a new key",
        )
        .with_field("header.Idempotency-Key")),
        WebhookCreateOutcome::InProgress => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being handled; retry in a moment",
        )
        .with_field("header.Idempotency-Key")
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))),
        WebhookCreateOutcome::LimitReached => Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_webhooks",
            format!(
                "a client has at most {} webhooks; delete one first",
                store::WEBHOOKS_PER_CLIENT_MAX
            ),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct WebhookListParams {
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

const WEBHOOK_CURSOR: &str = "w1";
const DELIVERY_CURSOR: &str = "d1";

fn encode_cursor(kind: &str, value: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}|{value}"))
}

fn decode_cursor(kind: &str, raw: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "query.cursor",
            "the cursor is not one this API returned; start again without it",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    match text.split_once('|') {
        Some((k, v)) if k == kind && !v.is_empty() => Ok(v.to_owned()),
        _ => Err(bad()),
    }
}

fn list_limit(state: &AppState, raw: Option<&str>) -> Result<usize, ApiError> {
    let limit = page_limit(state, raw)?;
    Ok(limit.min(store::WEBHOOK_QUERY_MAX_LIMIT as usize - 1))
}

/// The caller's webhooks, oldest first (never their secrets). Needs `payments:write`.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(WebhookListParams),
    responses((status = 200, body = WebhookList), (status = 400, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<WebhookListParams>,
) -> Result<Json<WebhookList>, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let limit = list_limit(&state, params.limit.as_deref())?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor(WEBHOOK_CURSOR, c))
        .transpose()?;
    let rows = state
        .store
        .list_webhooks(
            &caller.subject,
            after.as_deref(),
            u32::try_from(limit + 1).unwrap_or(u32::MAX),
        )
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let page = &rows[..rows.len().min(limit)];
    let next_cursor = (rows.len() > limit)
        .then(|| page.last().map(|w| encode_cursor(WEBHOOK_CURSOR, &w.id)))
        .flatten();
    Ok(Json(WebhookList {
        items: page.iter().map(|w| view(w, None)).collect(),
        next_cursor,
    }))
}

async fn own_webhook(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<StoredWebhook, ApiError> {
    if !id.starts_with("whk_") || id.len() > 64 {
        return Err(webhook_not_found());
    }
    state
        .store
        .get_webhook(&caller.subject, id)
        .await
        .map_err(|e| ApiError::storage(&e))?
        .ok_or_else(webhook_not_found)
}

/// One of the caller's webhooks (never its secret). Needs `payments:write`.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView), (status = 404, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let w = own_webhook(&state, &caller, &id).await?;
    Ok(Json(view(&w, None)))
}

/// Deletes one of the caller's webhooks: nothing more is sent to it (its pending
/// deliveries end `skipped`). Needs `payments:write`.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let w = own_webhook(&state, &caller, &id).await?;
    let deleted = state
        .store
        .delete_webhook(
            &caller.subject,
            &w.id,
            NewAuditRecord {
                at: state.clock.now(),
                actor: caller.actor(),
                action: "webhook.delete".to_owned(),
                object: format!("webhook:{}", w.id),
                request_id: request_id(&headers),
                outcome: "deleted".to_owned(),
                details: serde_json::json!({ "host": host_of(&w.url) }),
            },
        )
        .await
        .map_err(|e| ApiError::storage(&e))?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(webhook_not_found())
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveryListParams {
    /// `pending`, `delivered`, `dead` or `skipped`.
    pub state: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

/// A webhook's deliveries, oldest first, each with its latest attempts and their response
/// codes. Needs `payments:write`.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), DeliveryListParams),
    responses((status = 200, body = DeliveryList), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeliveryListParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let w = own_webhook(&state, &caller, &id).await?;
    let limit = list_limit(&state, params.limit.as_deref())?;
    let delivery_state = params
        .state
        .as_deref()
        .map(|s| {
            DeliveryState::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_state",
                    "query.state",
                    "state must be pending, delivered, dead or skipped",
                )
            })
        })
        .transpose()?;
    let after_id = params
        .cursor
        .as_deref()
        .map(|c| {
            decode_cursor(DELIVERY_CURSOR, c)?
                .parse::<i64>()
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_cursor",
                        "query.cursor",
                        "the cursor is not one this API returned; start again without it",
                    )
                })
        })
        .transpose()?
        .unwrap_or(0);
    let rows = state
        .store
        .list_webhook_deliveries(&DeliveryQuery {
            webhook_id: w.id,
            state: delivery_state,
            after_id,
            limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
        })
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let page = &rows[..rows.len().min(limit)];
    let next_cursor = (rows.len() > limit)
        .then(|| {
            page.last()
                .map(|d| encode_cursor(DELIVERY_CURSOR, &d.id.to_string()))
        })
        .flatten();
    Ok(Json(DeliveryList {
        items: page.iter().map(delivery_view).collect(),
        next_cursor,
    }))
}

async fn redrive(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    webhook_id: &str,
    delivery_id: Option<i64>,
) -> Result<u64, ApiError> {
    let now = state.clock.now();
    let n = state
        .store
        .redrive_webhook_deliveries(
            webhook_id,
            delivery_id,
            now,
            NewAuditRecord {
                at: now,
                actor: caller.actor(),
                action: "webhook.redrive".to_owned(),
                object: format!("webhook:{webhook_id}"),
                request_id: request_id(headers),
                outcome: "redriven".to_owned(),
                details: serde_json::json!({
                    "delivery": delivery_id.map(|d| format!("whd_{d}")),
                }),
            },
        )
        .await
        .map_err(|e| ApiError::storage(&e))?;
    if n > 0 {
        state.webhooks.wake.notify_one();
    }
    Ok(n)
}

/// Re-drives one dead delivery: pending again, due now, with a fresh budget of attempts.
/// Needs `payments:write`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redrive", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), ("delivery_id" = String, Path, description = "whd_<n>")),
    responses((status = 200, body = Redriven), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn redrive_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Redriven>, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let w = own_webhook(&state, &caller, &id).await?;
    let not_found = || {
        ApiError::not_found(
            "delivery_not_found",
            "path.delivery_id",
            "this webhook has no delivery with this id; list them with GET /v1/webhooks/{id}/deliveries",
        )
    };
    let n = delivery_id
        .strip_prefix("whd_")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(not_found)?;
    let found = state
        .store
        .list_webhook_deliveries(&DeliveryQuery {
            webhook_id: w.id.clone(),
            state: None,
            after_id: n - 1,
            limit: 1,
        })
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let Some(d) = found.first().filter(|d| d.id == n) else {
        return Err(not_found());
    };
    if d.state != DeliveryState::Dead {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery_not_dead",
            format!(
                "the delivery is {}; only dead deliveries are re-driven",
                d.state.as_str()
            ),
        )
        .with_field("path.delivery_id"));
    }
    let redriven = redrive(&state, &caller, &headers, &w.id, Some(n)).await?;
    Ok(Json(Redriven { redriven }))
}

/// Re-drives every dead delivery of the webhook. Needs `payments:write`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/redrive", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = Redriven), (status = 404, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn redrive_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Redriven>, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let w = own_webhook(&state, &caller, &id).await?;
    let redriven = redrive(&state, &caller, &headers, &w.id, None).await?;
    Ok(Json(Redriven { redriven }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WebhooksConfig {
        WebhooksConfig::default()
    }

    fn field_of(r: Result<String, ApiError>) -> (String, String) {
        let e = r.err().map(|e| *e.problem);
        e.map(|p| (p.code, p.field.unwrap_or_default()))
            .unwrap_or_default()
    }

    #[test]
    fn urls_are_http_without_credentials_and_public_unless_allowed() {
        let s = settings();
        assert!(check_url("https://erp.example.com/hooks/bd", &s).is_ok());
        assert!(check_url("http://203.0.113.9:8080/x", &s).is_ok());
        for (url, code) in [
            ("ftp://erp.example.com/x", "unsupported_url_scheme"),
            ("https://user:pw@erp.example.com/x", "url_has_credentials"),
            ("https://user@erp.example.com/x", "url_has_credentials"),
            ("http://127.0.0.1:9/x", "url_not_allowed"),
            ("http://localhost/x", "url_not_allowed"),
            ("http://10.1.2.3/x", "url_not_allowed"),
            ("http://169.254.169.254/latest", "url_not_allowed"),
            ("http://[::1]/x", "url_not_allowed"),
            ("http://[::ffff:192.168.0.1]/x", "url_not_allowed"),
            ("http://[fd00::1]/x", "url_not_allowed"),
            ("http://localhost./x", "url_not_allowed"),
            ("http://a.localhost./x", "url_not_allowed"),
            ("http://0.0.0.0/x", "url_not_allowed"),
            ("http://224.0.0.1/x", "url_not_allowed"),
            ("http://[ff02::1]/x", "url_not_allowed"),
            ("http://[64:ff9b::7f00:1]/x", "url_not_allowed"),
            ("not a url", "invalid_url"),
        ] {
            assert_eq!(
                field_of(check_url(url, &s)),
                (code.to_owned(), "body.url".to_owned()),
                "{url}"
            );
        }
        let allowed = WebhooksConfig {
            allowed_hosts: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
            ..settings()
        };
        assert!(check_url("http://127.0.0.1:9/x", &allowed).is_ok());
        assert!(check_url("http://[::1]:9/x", &allowed).is_ok());
        assert!(check_url("http://10.0.0.1/x", &allowed).is_err());
        let open = WebhooksConfig {
            allow_private_urls: true,
            ..settings()
        };
        assert!(check_url("http://10.0.0.1/x", &open).is_ok());
    }
}
