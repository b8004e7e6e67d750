//! The one layer every request passes through ([`EdgeLayer`]), doing in one
//! future what would otherwise be nine stacked middlewares, each of which
//! would clone the route and box a future per request (BENCHMARKS.md,
//! "Middleware"). Outermost first:
//!
//! 1. security headers on every response, errors, timeouts and panics
//!    included ([`HeaderPolicy`]);
//! 2. the request id: the caller's `x-request-id` when it sent one, a fresh
//!    one otherwise; it is on the request the handlers see and echoed on
//!    the response;
//! 3. a `request` tracing span (debug level) and an error line for every
//!    5xx answer;
//! 4. metrics: `http_requests_total` and `http_request_duration_seconds` by
//!    route template, method and status ([`crate::ops::record_http`]),
//!    timeouts included;
//! 5. CORS, when origins are configured (`[server.cors]`): preflights are
//!    answered here, before authentication;
//! 6. the request timeout (`server.request_timeout_ms`): a 503 problem;
//! 7. a panic in a handler: a 500 problem, the panic logged;
//! 8. the per-client rate limit ([`Guard::admit`]), which verifies the
//!    bearer token once for the handler too;
//! 9. the request shape: query length and JSON depth before the handler,
//!    axum's plain-text rejections as problem+json after it
//!    ([`Guard::check_query`], `Guard::check_json_depth`,
//!    [`Guard::shape_answer`]);
//! 10. the default body limit (`server.max_body_bytes`) for the handler's
//!     body extractors, on requests that have a body; a route may set its
//!     own, closer to its handler.
//!
//! The layer is applied with `Router::layer`, so it wraps each route (and
//! the fallbacks) and sees the matched route template.

use std::{
    cell::Cell,
    convert::Infallible,
    future::Future,
    panic::AssertUnwindSafe,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::HttpBody,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use futures::{future::BoxFuture, FutureExt};
use tower::{Layer, Service};
use tower_http::cors::CorsLayer;
use tracing::Instrument;

use crate::{
    hardening::{self, Guard, HeaderPolicy},
    ops,
    problem::ApiError,
};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A new request id in UUID form, without a system call or a shared write:
/// a random 64-bit prefix drawn once per thread, and a counter per thread.
/// Unique within a thread by the counter, and across threads and processes
/// by the prefix.
fn next_request_id() -> HeaderValue {
    thread_local! {
        static NEXT: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
    }
    let (prefix, n) = NEXT.with(|next| {
        let (prefix, n) = next
            .get()
            .unwrap_or_else(|| (domain::RandomSource::next_u64(&domain::ThreadRandom), 0));
        next.set(Some((prefix, n.wrapping_add(1))));
        (prefix, n)
    });
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&prefix.to_be_bytes());
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut text);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"))
}

/// What every route's [`Edge`] shares.
struct Shared {
    guard: Arc<Guard>,
    headers: HeaderPolicy,
    cors: Option<CorsLayer>,
    timeout: Duration,
    body_limit: DefaultBodyLimit,
}

/// Wraps each route in an [`Edge`].
#[derive(Clone)]
pub struct EdgeLayer {
    shared: Arc<Shared>,
}

impl EdgeLayer {
    /// `cors`: CORS for the configured origins, if any
    /// ([`crate::hardening::cors_layer`]); `timeout`: the longest a request
    /// may take before it is answered 503; `max_body`: the largest request
    /// body the handlers' extractors read, where a route sets no other
    /// limit (applied here rather than as a layer of its own, which would
    /// box every route once more).
    pub fn new(
        guard: Arc<Guard>,
        headers: HeaderPolicy,
        cors: Option<CorsLayer>,
        timeout: Duration,
        max_body: usize,
    ) -> EdgeLayer {
        EdgeLayer {
            shared: Arc::new(Shared {
                guard,
                headers,
                cors,
                timeout,
                body_limit: DefaultBodyLimit::max(max_body),
            }),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            shared: Arc::clone(&self.shared),
            inner,
        }
    }
}

/// One route behind the edge; see the module documentation.
#[derive(Clone)]
pub struct Edge<S> {
    shared: Arc<Shared>,
    inner: S,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone is the one made ready by poll_ready's caller; keep it for
        // this call and leave a fresh clone behind (tower's usual swap).
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        Shared::handle(Arc::clone(&self.shared), inner, req)
            .map(Ok)
            .boxed()
    }
}

// Every request's future is boxed once and moved into place: it is kept
// small (about 1.5 KB, the route's own future included) by polling the
// guarded answer where it is pinned, and by boxing the other paths (CORS,
// a JSON body to scan, a 4xx to reshape, a timer for an answer that is not
// ready at once) when they are taken, rather than carrying their futures in
// every request's; a cached read takes none of them (BENCHMARKS.md, run
// 15). Nesting one async fn in another by value copies the inner one's
// state into the outer one's, whole, at each level: it was 4.7 KB.
impl Shared {
    async fn handle<S>(self: Arc<Self>, inner: S, mut req: Request) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send,
        S::Future: Send,
    {
        let started = Instant::now();
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().cloned();
        let docs = req.uri().path().starts_with("/docs");
        let request_id = match req.headers().get(&X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = next_request_id();
                req.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        };
        // The path only: query strings carry cursors.
        let span = tracing::debug_span!(
            "request",
            method = %method,
            path = %req.uri().path(),
            request_id = ?request_id,
        );
        let mut resp = match &self.cors {
            None => {
                within(self.timeout, std::pin::pin!(self.guarded(inner, req)))
                    .instrument(span.clone())
                    .await
            }
            Some(cors) => {
                Box::pin(self.with_cors(cors, inner, req))
                    .instrument(span.clone())
                    .await
            }
        };
        let status = resp.status();
        let elapsed = started.elapsed();
        ops::record_http(route.as_ref(), &method, status.as_u16(), elapsed);
        span.in_scope(|| {
            let latency_ms = elapsed.as_millis();
            if status.is_server_error() {
                tracing::error!(status = status.as_u16(), latency_ms, "request failed");
            } else {
                tracing::debug!(status = status.as_u16(), latency_ms, "request finished");
            }
        });
        let headers = resp.headers_mut();
        if !headers.contains_key(&X_REQUEST_ID) {
            headers.insert(X_REQUEST_ID, request_id);
        }
        self.headers.apply(headers, docs);
        resp
    }

    /// CORS around the bounded answer: preflights are answered before
    /// authentication, and refusals, timeouts and panics carry the CORS
    /// headers a browser needs to read them.
    async fn with_cors<S>(&self, cors: &CorsLayer, inner: S, req: Request) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send,
        S::Future: Send,
    {
        let mut inner = Some(inner);
        let route = tower::service_fn(|req: Request| {
            let inner = inner.take();
            async move {
                Ok::<_, Infallible>(match inner {
                    Some(inner) => {
                        within(self.timeout, std::pin::pin!(self.guarded(inner, req))).await
                    }
                    // Cors calls its inner service at most once per request.
                    None => internal_error(),
                })
            }
        });
        match tower::ServiceExt::oneshot(cors.layer(route), req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }

    /// The rate limit and the shape checks around the route itself.
    async fn guarded<S>(&self, mut inner: S, req: Request) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        // One request binding is held across an await at a time (the
        // route's future owns it): each binding so held is a slot in this
        // future.
        let answer = match self.admitted(req) {
            Err(refused) => return *refused,
            Ok(req) if hardening::carries_json(&req) => {
                match Box::pin(self.guard.check_json_depth(req)).await {
                    Ok(req) => inner.call(self.body_limited(req)),
                    Err(refused) => return *refused,
                }
            }
            Ok(req) => inner.call(self.body_limited(req)),
        };
        let resp = match answer.await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        if resp.status().is_client_error() {
            Box::pin(self.guard.shape_answer(resp)).await
        } else {
            resp
        }
    }

    /// The rate limit and the query's length: the request to go on with,
    /// or the refusal.
    fn admitted(&self, req: Request) -> Result<Request, Box<Response>> {
        let req = self.guard.admit(req)?;
        self.guard.check_query(&req)?;
        Ok(req)
    }

    /// The default body limit, on a request that has a body: one with none
    /// has nothing for it to bound.
    fn body_limited(&self, mut req: Request) -> Request {
        if !req.body().is_end_stream() {
            self.body_limit.apply(&mut req);
        }
        req
    }
}

/// `answer` if it comes within `limit` without panicking; a 503 problem
/// past the limit, a 500 problem on a panic (which the panic hook has
/// logged). `answer` is polled where it is pinned, not moved in.
///
/// The limit counts from the first poll. The timeout is set up only when
/// the answer does not come at that poll: most answers (a page from memory,
/// a cached balance) come at once, and setting it up takes the runtime's
/// handle (a reference count every worker shares, raised and dropped) even
/// when its timer is never polled.
async fn within<F>(limit: Duration, answer: std::pin::Pin<&mut F>) -> Response
where
    F: Future<Output = Response>,
{
    let started = tokio::time::Instant::now();
    let mut answer = AssertUnwindSafe(answer).catch_unwind();
    let outcome = match futures::poll!(&mut answer) {
        Poll::Ready(outcome) => Ok(outcome),
        // Boxed: only answers that wait (on the store, on a bank) get here,
        // and the timer would otherwise make every request's future larger.
        Poll::Pending => Box::pin(tokio::time::timeout_at(started + limit, answer)).await,
    };
    match outcome {
        Ok(Ok(resp)) => resp,
        Ok(Err(_panic)) => internal_error(),
        Err(_elapsed) => ops::timed_out().into_response(),
    }
}

fn internal_error() -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the gateway failed to handle this request; it has been logged",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn problem_code(resp: Response) -> (StatusCode, String) {
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (status, json["code"].as_str().unwrap_or_default().to_owned())
    }

    #[tokio::test]
    async fn a_slow_answer_is_a_503_problem_and_a_panic_a_500() {
        let ok = within(
            Duration::from_secs(5),
            std::pin::pin!(async { StatusCode::NO_CONTENT.into_response() }),
        )
        .await;
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        // Not ready at the first poll: answered after, under the timer.
        let later = within(
            Duration::from_secs(5),
            std::pin::pin!(async {
                tokio::task::yield_now().await;
                StatusCode::ACCEPTED.into_response()
            }),
        )
        .await;
        assert_eq!(later.status(), StatusCode::ACCEPTED);

        let slow = within(
            Duration::from_millis(20),
            std::pin::pin!(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                StatusCode::NO_CONTENT.into_response()
            }),
        )
        .await;
        assert_eq!(
            problem_code(slow).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout".to_owned()
            )
        );

        #[allow(clippy::panic)]
        let panics_at_once = within(
            Duration::from_secs(5),
            std::pin::pin!(async {
                panic!("a handler bug at the first poll");
            }),
        )
        .await;
        assert_eq!(
            problem_code(panics_at_once).await,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error".to_owned()
            )
        );

        #[allow(clippy::panic)]
        let panics = within(
            Duration::from_secs(5),
            std::pin::pin!(async {
                tokio::task::yield_now().await;
                panic!("a handler bug");
            }),
        )
        .await;
        assert_eq!(
            problem_code(panics).await,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error".to_owned()
            )
        );
    }

    #[test]
    fn request_ids_are_uuids_unique_by_counter_and_by_thread() {
        let a = next_request_id();
        let b = next_request_id();
        assert_ne!(a, b);
        // Another thread draws its own prefix: no id of its is one of these.
        let others: Vec<HeaderValue> =
            std::thread::spawn(|| (0..3).map(|_| next_request_id()).collect())
                .join()
                .unwrap();
        let mut all = vec![a, b];
        all.extend(others);
        let distinct: std::collections::HashSet<&HeaderValue> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
        // The same thread's ids share the prefix and count up.
        assert_eq!(all[0].as_bytes()[..18], all[1].as_bytes()[..18]);
        assert_ne!(all[0].as_bytes()[..18], all[2].as_bytes()[..18]);
        let count =
            |id: &HeaderValue| u64::from_str_radix(&id.to_str().unwrap()[24..], 16).unwrap();
        assert_eq!(count(&all[1]), count(&all[0]) + 1);
        assert_eq!(count(&all[3]), count(&all[2]) + 1);
        for id in &all {
            let text = id.to_str().unwrap();
            assert_eq!(text.len(), 36, "{text}");
            assert!(uuid::Uuid::parse_str(text).is_ok(), "{text}");
        }
    }
}
