//! Operational endpoints: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`
//! and the docs page, plus the HTTP metrics middleware and the global
//! Prometheus recorder.
//!
//! The five endpoints answer without a token unless closed in the config
//! (`server.open_endpoints`); a closed one needs a token with `admin`.

use std::{
    cell::RefCell,
    collections::{BTreeSet, HashMap},
    sync::OnceLock,
    time::Duration,
};

use axum::{
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::{auth::Scope, extract::Caller, problem::ApiError, AppState};

const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its
/// handle. `None` if another recorder was installed first (then `/metrics`
/// says so instead of lying with an empty page).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS_S)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::error!(error = %e, "could not install the metrics recorder");
                    None
                }
            }
        })
        .clone()
}

/// Records when the certificates of `pem` stop being valid, as
/// `tls_certificate_not_after_seconds{kind, name}` (Unix seconds of the
/// earliest `notAfter` among them: a chain expires with its first member), so
/// that an alert can fire well before (`… - time() < 14 * 86400`). `kind`:
/// `api` (the API's certificate), `bank_client` (ours toward a bank),
/// `bank_ca` (the CA a bank's certificate must chain to). A certificate
/// within 30 days of its end is also logged at warn. Returns the instant.
pub fn certificate_expiry(
    kind: &'static str,
    name: &str,
    pem: &str,
) -> Option<std::time::SystemTime> {
    let certs = crypto::Certificate::all_from_pem_or_der(pem.as_bytes()).ok()?;
    // Bank connections are made before the app state installs the recorder.
    let _ = metrics_handle();
    let not_after = certs.iter().map(crypto::Certificate::not_after).min()?;
    let seconds = not_after
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!("tls_certificate_not_after_seconds", "kind" => kind, "name" => name.to_owned())
        .set(seconds);
    let left = not_after
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    if left < Duration::from_secs(30 * 86_400) {
        tracing::warn!(
            kind,
            name,
            not_after = %crypto::cert::format_utc(not_after),
            "a certificate ends within 30 days (or has ended): renew it"
        );
    }
    Some(not_after)
}

/// Metric handles of one route, by method and status.
type RouteHandles = HashMap<(&'static str, u16), (metrics::Counter, metrics::Histogram)>;

thread_local! {
    /// Registered handles by route template, kept per thread. Route
    /// templates are the router's finite set, so each map stays small; it
    /// spares every request building label sets and looking them up in the
    /// registry (measurable on the cheapest reads, see BENCHMARKS.md), and
    /// being per thread it takes no lock that other workers write too.
    static HTTP_HANDLES: RefCell<HashMap<String, RouteHandles>> = RefCell::new(HashMap::new());
}

/// Counts and times one request under `(route, method, status)`, with the
/// handles kept for it (made, and registered in the one registry, the first
/// time a thread sees them). The thread's map is not borrowed while the
/// registry is called, and a thread whose locals are gone (at its exit)
/// records through the registry directly.
fn record_with_handles(route: &str, method: &'static str, status: u16, seconds: f64) {
    // Used in place: cloning the handles would touch their reference counts.
    let recorded = HTTP_HANDLES.try_with(|map| {
        let map = map.try_borrow().ok()?;
        let (requests, duration) = map.get(route)?.get(&(method, status))?;
        requests.increment(1);
        duration.record(seconds);
        Some(())
    });
    if let Ok(Some(())) = recorded {
        return;
    }
    let (requests, duration) = (
        metrics::counter!("http_requests_total", "method" => method, "route" => route.to_owned(), "status" => status.to_string()),
        metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route.to_owned()),
    );
    requests.increment(1);
    duration.record(seconds);
    let _ = HTTP_HANDLES.try_with(|map| {
        if let Ok(mut map) = map.try_borrow_mut() {
            map.entry(route.to_owned())
                .or_default()
                .insert((method, status), (requests, duration));
        }
    });
}

/// Counts and times one request, labelled by route template (never by raw
/// path, so ids do not explode the label space; `None`: no route matched).
pub fn record_http(
    route: Option<&MatchedPath>,
    method: &axum::http::Method,
    status: u16,
    elapsed: Duration,
) {
    // Standard methods as static labels: no allocation per request.
    let method: &'static str = match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let route = route.map_or("unmatched", MatchedPath::as_str);
    record_with_handles(route, method, status, elapsed.as_secs_f64());
}

/// Lets through a request to an operational endpoint when it is open, or
/// when it carries a token with `admin`.
async fn gate(
    state: &AppState,
    open: bool,
    parts: &mut axum::http::request::Parts,
) -> Result<(), ApiError> {
    if open {
        return Ok(());
    }
    let caller =
        <Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await?;
    caller.require(Scope::Admin)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<Health>, ApiError> {
    let (mut parts, _) = req.into_parts();
    gate(
        &state,
        state.config.server.open_endpoints.healthz,
        &mut parts,
    )
    .await?;
    Ok(Json(Health { status: "ok" }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    pub checks: Vec<ReadinessCheck>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessCheck {
    /// `database` or `connection:<id>`.
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Readiness: the database answers and every bank connection has a stored
/// balance snapshot (so balance reads have something true to serve).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (mut parts, _) = req.into_parts();
    gate(
        &state,
        state.config.server.open_endpoints.readyz,
        &mut parts,
    )
    .await?;
    let mut checks = Vec::new();
    let db = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let db_ok = matches!(db, Ok(Ok(())));
    checks.push(ReadinessCheck {
        name: "database".to_owned(),
        ok: db_ok,
        detail: match db {
            Ok(Ok(())) => "reachable".to_owned(),
            Ok(Err(e)) => format!("not reachable: {e}"),
            Err(_) => "no answer within 2 s".to_owned(),
        },
    });
    let with_snapshot: BTreeSet<String> = if db_ok {
        match state.store.latest_balances().await {
            Ok(s) => s.into_iter().map(|s| s.account_id.to_string()).collect(),
            Err(_) => BTreeSet::new(),
        }
    } else {
        BTreeSet::new()
    };
    for conn in state.directory.connections.values() {
        let ok = conn.accounts.is_empty()
            || conn
                .accounts
                .iter()
                .any(|a| with_snapshot.contains(a.id.as_str()));
        let health = conn.health();
        checks.push(ReadinessCheck {
            name: format!("connection:{}", conn.config.id),
            ok,
            detail: if ok {
                format!("balance snapshot stored; bank health {:?}", health.status).to_lowercase()
            } else {
                format!(
                    "no balance snapshot stored yet; last attempt: {}",
                    health
                        .last_error
                        .map(|e| e.detail)
                        .unwrap_or_else(|| "none yet".to_owned())
                )
            },
        });
    }
    let ready = checks.iter().all(|c| c.ok);
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(body)).into_response())
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics_endpoint(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let (mut parts, _) = req.into_parts();
    gate(
        &state,
        state.config.server.open_endpoints.metrics,
        &mut parts,
    )
    .await?;
    let Some(handle) = state.metrics.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "the metrics recorder could not be installed in this process",
        ));
    };
    let mut resp = Response::new(Body::from(handle.render()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

/// The OpenAPI 3.1 description of this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI document", body = Object)))]
pub async fn openapi_json(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<utoipa::openapi::OpenApi>, ApiError> {
    let (mut parts, _) = req.into_parts();
    gate(
        &state,
        state.config.server.open_endpoints.openapi,
        &mut parts,
    )
    .await?;
    Ok(Json(crate::ApiDoc::openapi()))
}

/// Guards the docs page (served by utoipa-swagger-ui from assets embedded
/// in the binary) with the same open/closed switch.
pub async fn docs_gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    if let Err(e) = gate(&state, state.config.server.open_endpoints.docs, &mut parts).await {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Any path no route matches.
pub async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!(
            "no route for {} {}; see /docs or /openapi.json",
            req.method(),
            req.uri().path()
        ),
    )
}

/// A request that hit the overall time limit.
pub fn timed_out() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "request_timeout",
        "the request took longer than the gateway's limit; retry later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_ends_are_metrics_by_kind_and_name() {
        let handle = metrics_handle().expect("recorder");
        let expired = crypto::pki::Pki::generate_with_validity(
            &["localhost".to_owned()],
            "client",
            crypto::pki::Validity::standard(),
            crypto::pki::Validity::expired(3),
        )
        .unwrap();
        let ends = certificate_expiry("bank_client", "unit-test-conn", &expired.client_cert_pem)
            .expect("a certificate");
        assert!(ends < std::time::SystemTime::now());
        // A bundle ends with its first member to end.
        let bundle = format!("{}{}", expired.ca_cert_pem, expired.client_cert_pem);
        assert_eq!(
            certificate_expiry("bank_ca", "unit-test-conn", &bundle),
            Some(ends)
        );
        assert_eq!(
            certificate_expiry("bank_ca", "unit-test-none", "not a certificate"),
            None
        );
        let text = handle.render();
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("tls_certificate_not_after_seconds")
                    && l.contains("kind=\"bank_client\"")
                    && l.contains("name=\"unit-test-conn\"")
            })
            .unwrap_or_else(|| panic!("{text}"));
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        let expected = ends
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((value - expected).abs() < 1.0, "{line}");
    }
}
