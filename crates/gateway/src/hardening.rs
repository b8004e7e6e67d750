//! Request hardening (DESIGN.md's security model; docs/security.md): rate
//! limits, request shape limits, security headers and CORS. All but the
//! token-failure throttle run inside [`crate::edge`], the one layer every
//! request passes through.
//!
//! - [`Guard::admit`]: a token bucket per authenticated subject (a client
//!   id, or `user:<id>`); an empty bucket is a 429 with `Retry-After`.
//! - [`throttle_token_failures`]: on `POST /oauth/token` only, a stricter
//!   bucket per source address that only FAILED attempts (401) drain; once
//!   empty, the address gets 429s before its credentials are even looked at,
//!   so a guesser learns nothing more, a busy integrator that logs in right
//!   is never throttled.
//! - [`Guard::check_query`], `Guard::check_json_depth` and
//!   [`Guard::shape_answer`]: query string length, JSON nesting depth (the
//!   body is scanned before any handler parses it), and problem+json for
//!   bodies over the size limit.
//! - [`HeaderPolicy::apply`]: on every response, errors and timeouts included.
//! - [`cors_layer`]: CORS for the configured origins only; none by default.
//!
//! The buckets are [`governor`]'s GCRA on the monotonic clock; keys are
//! forgotten when idle so that memory stays bounded.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    num::NonZeroU32,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, HttpBody},
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use governor::{
    clock::{Clock as _, DefaultClock},
    DefaultKeyedRateLimiter, Quota, RateLimiter,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    auth::token::Claims,
    config::{Config, CorsConfig, RequestLimits},
    problem::{ApiError, PROBLEM_JSON},
    AppState,
};

/// Keys a limiter holds before the idle ones are forgotten.
const MAX_LIMITER_KEYS: usize = 100_000;
/// Requests a worker thread lets through between two looks at the client
/// limiter's size. The size is read under the limiter's one lock, which every
/// request on every worker takes once already; reading it on every request
/// took it twice. The bound is passed by at most this many new keys per
/// worker (keys are client ids, so in practice never).
const LIMITER_SIZE_CHECK_EVERY: u32 = 1024;

/// Whether this request is the one in [`LIMITER_SIZE_CHECK_EVERY`] on its
/// thread that checks the client limiter's size (a count per thread: no
/// shared write).
fn limiter_size_check_due() -> bool {
    thread_local! {
        static ADMITTED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    ADMITTED.with(|admitted| {
        let n = admitted.get().wrapping_add(1) % LIMITER_SIZE_CHECK_EVERY;
        admitted.set(n);
        n == 0
    })
}

/// Throttled addresses remembered before the expired ones are dropped.
const MAX_THROTTLED_ADDRESSES: usize = 10_000;

/// The middleware's state: the limits and the buckets. One per router.
pub struct Guard {
    state: AppState,
    limits: RequestLimits,
    /// The largest body any route takes; JSON bodies are buffered up to it
    /// for the depth scan (each route's own limit still applies after).
    max_body_bytes: usize,
    clock: DefaultClock,
    clients: DefaultKeyedRateLimiter<String>,
    token_failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses whose failed token attempts emptied their bucket, until when.
    throttled: Mutex<HashMap<IpAddr, Instant>>,
}

fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Guard {
    pub fn new(state: AppState) -> Guard {
        let config: &Config = &state.config;
        let limits = config.server.limits.clone();
        let clients = RateLimiter::keyed(
            Quota::per_second(at_least_one(limits.client_requests_per_s))
                .allow_burst(at_least_one(limits.client_burst)),
        );
        let token_failures = RateLimiter::keyed(
            Quota::per_minute(at_least_one(limits.token_failures_per_minute))
                .allow_burst(at_least_one(limits.token_failure_burst)),
        );
        let max_body_bytes = config
            .server
            .max_body_bytes
            .max(config.payments.max_batch_body_bytes);
        Guard {
            state,
            limits,
            max_body_bytes,
            clock: DefaultClock::default(),
            clients,
            token_failures,
            throttled: Mutex::new(HashMap::new()),
        }
    }

    /// The claims of a valid bearer token, if the request carries one. An
    /// invalid token is left to the handler (a 401 there).
    fn bearer(&self, req: &Request) -> Option<Arc<Claims>> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.state
            .tokens
            .verify_shared(token.trim(), self.state.clock.now())
            .ok()
    }

    fn throttled_until(&self, address: IpAddr, now: Instant) -> Option<Instant> {
        let throttled = self
            .throttled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        throttled
            .get(&address)
            .copied()
            .filter(|until| *until > now)
    }

    fn throttle(&self, address: IpAddr, until: Instant, now: Instant) {
        let mut throttled = self
            .throttled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if throttled.len() >= MAX_THROTTLED_ADDRESSES {
            throttled.retain(|_, u| *u > now);
        }
        throttled.insert(address, until);
    }
}

/// Registered once, on first use (after the recorder is installed).
struct Metrics {
    client_limited: metrics::Counter,
    token_limited: metrics::Counter,
    query_too_long: metrics::Counter,
    body_too_deep: metrics::Counter,
    body_too_large: metrics::Counter,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        client_limited: metrics::counter!("http_rate_limited_total", "limit" => "client"),
        token_limited: metrics::counter!("http_rate_limited_total", "limit" => "token_address"),
        query_too_long: metrics::counter!("http_requests_refused_total", "reason" => "query_too_long"),
        body_too_deep: metrics::counter!("http_requests_refused_total", "reason" => "body_too_deep"),
        body_too_large: metrics::counter!("http_requests_refused_total", "reason" => "body_too_large"),
    })
}

/// A 429 telling the caller how long to wait, in whole seconds (at least 1).
fn too_many(wait: Duration, detail: &str) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{detail}; retry after {seconds} s"),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
    .into_response()
}

impl Guard {
    /// The per-subject token bucket (`server.limits.client_requests_per_s`,
    /// `client_burst`). Requests without a valid token pass: they are
    /// refused by the handler, or are open endpoints. A verified token's
    /// claims ride on in the request as [`VerifiedBearer`], so that the
    /// handler's [`crate::extract::Caller`] does not verify it again.
    pub fn admit(&self, mut req: Request) -> Result<Request, Box<Response>> {
        let Some(claims) = self.bearer(&req) else {
            return Ok(req);
        };
        if let Err(not_until) = self.clients.check_key(&claims.sub) {
            metrics().client_limited.increment(1);
            tracing::debug!(subject = %claims.sub, "request rate limited");
            return Err(Box::new(too_many(
                not_until.wait_time_from(self.clock.now()),
                "this client sent more requests than server.limits allows",
            )));
        }
        if limiter_size_check_due() && self.clients.len() > MAX_LIMITER_KEYS {
            self.clients.retain_recent();
        }
        req.extensions_mut().insert(VerifiedBearer(claims));
        Ok(req)
    }
}

/// The claims of the request's own bearer token, verified by
/// [`Guard::admit`] a moment before the handler runs. Only the gateway puts
/// it into a request; a client cannot send extensions.
#[derive(Clone)]
pub struct VerifiedBearer(pub Arc<Claims>);

/// The key a source address is counted under: IPv4 (mapped forms too) as
/// is, IPv6 by its /64, which one host usually holds whole.
fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Throttles failed `POST /oauth/token` attempts per source address
/// (`server.limits.token_failures_per_minute`, `token_failure_burst`).
/// Without the peer address (a server run without connect info) every
/// caller shares one bucket: stricter, never open.
pub async fn throttle_token_failures(
    State(guard): State<std::sync::Arc<Guard>>,
    req: Request,
    next: Next,
) -> Response {
    let address = address_key(
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
    );
    let now = guard.clock.now();
    if let Some(until) = guard.throttled_until(address, now) {
        metrics().token_limited.increment(1);
        return too_many(
            until.saturating_duration_since(now),
            "too many failed token requests from your address",
        );
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::UNAUTHORIZED {
        if let Err(not_until) = guard.token_failures.check_key(&address) {
            let now = guard.clock.now();
            guard.throttle(address, now + not_until.wait_time_from(now), now);
            tracing::warn!(%address, "failed token requests from this address are throttled");
        }
        if guard.token_failures.len() > MAX_LIMITER_KEYS {
            guard.token_failures.retain_recent();
        }
    }
    resp
}

/// True when the request has a body a handler may parse as JSON: any body
/// but a form (`application/x-www-form-urlencoded`, which only
/// `POST /oauth/token` takes). Its Content-Type alone does not exempt a
/// body: the handlers that read raw bytes (payments, approvals,
/// resolutions, webhooks) parse them as JSON whatever it says, so a deep
/// body sent as `text/plain` is scanned like one sent as JSON.
pub(crate) fn carries_json(req: &Request) -> bool {
    if req.body().size_hint().exact() == Some(0) {
        return false;
    }
    match req.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => {
            let essence = value
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            essence != "application/x-www-form-urlencoded"
        }
    }
}

/// True when `bytes`, read as JSON, nests arrays and objects deeper than
/// `max`. Brackets inside strings do not count; invalid JSON is left to
/// the parser.
pub fn json_deeper_than(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn body_too_large(max: usize) -> ApiError {
    metrics().body_too_large.increment(1);
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is larger than this endpoint accepts (at most {max} bytes here; see server.max_body_bytes)"),
    )
    .with_field("body")
}

/// Reads a body whole, refusing it past `max` bytes.
async fn read_bounded(body: Body, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request(
                "body_unreadable",
                "body",
                "the request body could not be read to its end",
            )
        })?;
        if buf.len().saturating_add(chunk.len()) > max {
            return Err(body_too_large(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

impl Guard {
    /// The query string's length, checked before any handler: the refusal
    /// (boxed: refusals are rare, requests are not) when it is too long.
    /// Reads nothing, so it needs no future; a body that may be JSON is
    /// checked by `Guard::check_json_depth`.
    pub fn check_query(&self, req: &Request) -> Result<(), Box<Response>> {
        let limits = &self.limits;
        if let Some(query) = req.uri().query() {
            if query.len() > limits.max_query_bytes {
                metrics().query_too_long.increment(1);
                return Err(ApiError::new(
                    StatusCode::URI_TOO_LONG,
                    "query_too_long",
                    format!(
                        "the query string is longer than {} bytes (server.limits.max_query_bytes)",
                        limits.max_query_bytes
                    ),
                )
                .with_field("query")
                .into_response()
                .into());
            }
        }
        Ok(())
    }

    /// The JSON body's nesting depth, checked before any handler parses it:
    /// the request to go on with (its body buffered), or the refusal. For a
    /// request that [`carries_json`], which the edge has found before it
    /// calls this (and boxes this future only then).
    pub(crate) async fn check_json_depth(&self, req: Request) -> Result<Request, Box<Response>> {
        let (parts, body) = req.into_parts();
        let bytes = read_bounded(body, self.max_body_bytes)
            .await
            .map_err(|e| Box::new(e.into_response()))?;
        if json_deeper_than(&bytes, self.limits.max_json_depth) {
            metrics().body_too_deep.increment(1);
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_deep",
                format!(
                    "the JSON body nests arrays and objects deeper than {} levels (server.limits.max_json_depth)",
                    self.limits.max_json_depth
                ),
            )
            .with_field("body")
            .into_response()
            .into());
        }
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }

    /// A route's answer, with axum's own plain-text rejections (a body over
    /// the route's size limit, a path segment that is not UTF-8) turned
    /// into problem+json like every other error.
    pub async fn shape_answer(&self, resp: Response) -> Response {
        if !resp.status().is_client_error() {
            return resp;
        }
        let is_problem = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
        if is_problem {
            return resp;
        }
        if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
            // The route's DefaultBodyLimit.
            return body_too_large(self.state.config.server.max_body_bytes).into_response();
        }
        plain_rejection(resp).await.into_response()
    }
}

/// An axum rejection's plain text as problem+json; its text (axum's own,
/// about the request) becomes the detail.
async fn plain_rejection(resp: Response) -> ApiError {
    const MAX_DETAIL_BYTES: usize = 1024;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), MAX_DETAIL_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    let (code, field) = if text.starts_with("Invalid URL") {
        ("invalid_path", Some("path"))
    } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        ("unsupported_media_type", Some("header.Content-Type"))
    } else {
        ("invalid_request", None)
    };
    let detail = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_owned()
    } else {
        text
    };
    let err = ApiError::new(status, code, detail);
    match field {
        Some(field) => err.with_field(field),
        None => err,
    }
}

/// Which security headers every response gets.
#[derive(Clone)]
pub struct HeaderPolicy {
    hsts: Option<HeaderValue>,
}

impl HeaderPolicy {
    /// `hsts_max_age_s`: send `Strict-Transport-Security` with this max-age;
    /// `None` on plain HTTP, where browsers would ignore it anyway and a
    /// proxy in front may not speak TLS.
    pub fn new(hsts_max_age_s: Option<u64>) -> HeaderPolicy {
        HeaderPolicy {
            hsts: hsts_max_age_s.and_then(|s| HeaderValue::from_str(&format!("max-age={s}")).ok()),
        }
    }
}

/// A banner header some frameworks add; dropped from every answer.
const X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");

/// The API answers data, never pages: nothing may render, frame or cache
/// it. The Swagger UI under `/docs` is a page and gets a CSP that lets its
/// own scripts and styles run.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

impl HeaderPolicy {
    /// Adds the security headers to a response (set last, so handlers' and
    /// layers' answers alike get them) and drops any server banner. `docs`:
    /// the response is the Swagger UI's, a page.
    pub fn apply(&self, headers: &mut HeaderMap, docs: bool) {
        // Room for all six at once: one growth of the map at most, not two.
        headers.reserve(6);
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(if docs { DOCS_CSP } else { API_CSP }),
        );
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if let Some(hsts) = &self.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        headers.remove(header::SERVER);
        headers.remove(X_POWERED_BY);
    }
}

/// CORS for exactly the configured origins (`[server.cors]`), or `None`:
/// then no CORS header is ever sent and browsers keep other origins out.
pub fn cors_layer(config: &CorsConfig) -> Option<CorsLayer> {
    if config.allowed_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = config
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                header::LOCATION,
            ])
            .allow_credentials(false)
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_arrays_and_objects_but_not_brackets_in_strings() {
        assert!(!json_deeper_than(br#"{"a":[{"b":1}]}"#, 3));
        assert!(json_deeper_than(br#"{"a":[{"b":[]}]}"#, 3));
        assert!(!json_deeper_than(br#"{"a":"[[[[[[[[\"{{{{{"}"#, 1));
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert!(json_deeper_than(deep.as_bytes(), 32));
        assert!(!json_deeper_than(deep.as_bytes(), 33));
    }

    #[test]
    fn ipv6_callers_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let resp = too_many(Duration::from_millis(1_200), "slow down");
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        let resp = too_many(Duration::ZERO, "slow down");
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    }
}
