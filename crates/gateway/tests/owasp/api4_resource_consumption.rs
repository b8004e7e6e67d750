//! OWASP API4:2023 Unrestricted Resource Consumption.
//!
//! Every size has a limit and a refusal that names it: a body over
//! `max_body_bytes` (413 `body_too_large`), a batch over `max_batch_items`
//! (422 `too_many_items` at `body.items`), a page over `max_page_size` (400
//! `invalid_limit` at `query.limit`), JSON nested deeper than
//! `max_json_depth` (413 `body_too_deep`), a query string over
//! `max_query_bytes` (414 `query_too_long`), an over-long token or
//! Idempotency-Key; and a client over its request rate gets 429 with
//! Retry-After while another client is served. Small limits are configured
//! so the test is quick; the defaults are in docs/security.md.

use std::sync::Arc;

use gateway::config::RequestLimits;
use serde_json::{json, Value};

use crate::helpers::{batch_body, payment_body, split, Options, TestApp};

async fn small_limits() -> TestApp {
    TestApp::spawn_with(Options {
        configure: Some(Arc::new(|c: &mut gateway::config::Config| {
            c.server.max_body_bytes = 16 * 1024;
            c.server.max_page_size = 50;
            c.server.default_page_size = 20;
            c.server.limits = RequestLimits {
                max_json_depth: 8,
                max_query_bytes: 512,
                ..RequestLimits::default()
            };
            c.payments.max_batch_items = 5;
            c.payments.max_batch_body_bytes = 64 * 1024;
        })),
        ..Options::default()
    })
    .await
}

async fn post_raw(app: &TestApp, path: &str, token: &str, body: String) -> (u16, Value) {
    post_typed(app, path, token, "application/json", body).await
}

/// POSTs `body` as `content_type`, with a fresh Idempotency-Key.
async fn post_typed(
    app: &TestApp,
    path: &str,
    token: &str,
    content_type: &str,
    body: String,
) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .header("idempotency-key", format!("k-{}", uuid::Uuid::new_v4()))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    split(resp).await
}

#[tokio::test]
async fn api4_sizes_depths_pages_and_batches_are_bounded_and_named() {
    let app = small_limits().await;
    let erp = app.token_for(&app.erp, None).await;

    // A body over the limit, on a route and on the batch route's own limit.
    let mut big = payment_body("east-1", "1.00");
    big["remittance"] = json!("x".repeat(20 * 1024));
    let (s, v) = post_raw(&app, "/v1/payments", &erp, big.to_string()).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );
    assert_eq!(v["field"], "body");
    // The batch route's own limit is the one that counts there: a batch
    // body over the general limit but under its own is read (and judged on
    // its content instead).
    let mut long_batch = batch_body("east-1", 2);
    long_batch["items"][0]["remittance"] = json!("x".repeat(20 * 1024));
    let (s, v) = post_raw(&app, "/v1/payment-batches", &erp, long_batch.to_string()).await;
    assert_ne!(v["code"].as_str(), Some("body_too_large"), "{s}: {v}");
    assert!((400..500).contains(&s), "{s}: {v}");
    let mut huge_batch = batch_body("east-1", 2);
    huge_batch["items"][0]["remittance"] = json!("x".repeat(80 * 1024));
    let (s, v) = post_raw(&app, "/v1/payment-batches", &erp, huge_batch.to_string()).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );

    // A batch over the item limit; the limit itself is accepted.
    let (s, v) = app
        .post("/v1/payment-batches", &erp, &batch_body("east-1", 6))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (422, Some("too_many_items")),
        "{v}"
    );
    assert_eq!(v["field"], "body.items");
    let (s, v) = app
        .post("/v1/payment-batches", &erp, &batch_body("east-1", 5))
        .await;
    assert_eq!(s, 201, "{v}");

    // Deep JSON is refused before any handler parses it, on every route.
    let mut deep = String::new();
    for _ in 0..40 {
        deep.push_str("{\"a\":");
    }
    deep.push('1');
    deep.push_str(&"}".repeat(40));
    for path in ["/v1/payments", "/v1/payment-batches", "/v1/webhooks"] {
        let (s, v) = post_raw(&app, path, &erp, deep.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (413, Some("body_too_deep")),
            "{path}: {v}"
        );
        assert_eq!(v["field"], "body");
    }
    let arrays = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let (s, v) = post_raw(&app, "/v1/payments", &erp, arrays).await;
    assert_eq!((s, v["code"].as_str()), (413, Some("body_too_deep")), "{v}");

    // Pages over the maximum, on every list.
    let auditor = app.token_for(&app.auditor, None).await;
    for (path, token) in [
        ("/v1/accounts", &erp),
        ("/v1/payments", &erp),
        ("/v1/payment-batches", &erp),
        ("/v1/webhooks", &erp),
        ("/v1/transactions", &erp),
        ("/v1/accounts/east-1/transactions", &erp),
        ("/v1/audit", &auditor),
    ] {
        let (s, v) = app.get(&format!("{path}?limit=51"), token).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("invalid_limit")),
            "{path}: {v}"
        );
        assert_eq!(v["field"], "query.limit", "{path}");
        let (s, v) = app.get(&format!("{path}?limit=50"), token).await;
        assert_eq!(s, 200, "{path} at the maximum: {v}");
    }

    // A long query string.
    let (s, v) = app
        .get(&format!("/v1/payments?cursor={}", "a".repeat(600)), &erp)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (414, Some("query_too_long")),
        "{v}"
    );
    assert_eq!(v["field"], "query");

    // An over-long bearer token is refused without being parsed.
    let (s, _) = app.get("/v1/payments", &"a".repeat(10_000)).await;
    assert_eq!(s, 401);
    // An over-long Idempotency-Key.
    let (s, v) = app
        .post_keyed(
            "/v1/payments",
            &erp,
            &"k".repeat(300),
            &payment_body("east-1", "1.00"),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["field"], "header.Idempotency-Key");
    app.stop().await;
}

#[tokio::test]
async fn api4_a_client_over_its_rate_gets_429_with_retry_after_and_others_are_served() {
    let app = TestApp::spawn_with(Options {
        configure: Some(Arc::new(|c: &mut gateway::config::Config| {
            c.server.limits = RequestLimits {
                client_requests_per_s: 1,
                client_burst: 5,
                ..RequestLimits::default()
            };
        })),
        ..Options::default()
    })
    .await;
    let erp = app.token_for(&app.erp, None).await;
    let other = app.token_for(&app.other, None).await;
    let mut limited_at = None;
    for i in 0..20 {
        let resp = app
            .http
            .get(app.url("/v1/accounts"))
            .bearer_auth(&erp)
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            let (_, v) = split(resp).await;
            assert_eq!(v["code"], "rate_limited");
            limited_at = Some(i);
            break;
        }
        assert_eq!(resp.status(), 200);
    }
    let at = limited_at.expect("20 requests at once exceed a burst of 5");
    assert!(at >= 5, "the burst is served first: limited at {at}");
    // Another client has its own bucket.
    let (s, _) = app.get("/v1/accounts", &other).await;
    assert_eq!(s, 200);
    app.stop().await;
}

/// Sends `head` and a body in HTTP/1.1 chunks (no Content-Length) over a
/// plain connection, and returns the answer's status and problem JSON.
async fn post_chunked(app: &TestApp, head: &str, body: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .unwrap()
    .unwrap();
    let mut request =
        format!("{head}Host: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .into_bytes();
    for chunk in body.chunks(4096) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The gateway may answer (and close) before it has read every chunk.
    let _ = conn.write_all(&request).await;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    // A fixed-length answer (problem+json bodies are): the JSON is the body.
    let json = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    (status, json)
}

/// The default body limit bounds what a handler reads when the JSON scan
/// does not: a body with another content type, a chunked body with no
/// Content-Length. A GET's JSON body is scanned like any other, up to the
/// largest limit of any route (the batch route's), and refused past it; an
/// empty body is not over any limit; and a body too deep is refused
/// whatever Content-Type it declares.
#[tokio::test]
async fn api4_body_limits_hold_for_any_type_chunked_and_on_a_get() {
    let app = small_limits().await;
    let erp = app.token_for(&app.erp, None).await;
    let big = "x".repeat(20 * 1024);

    let (s, v) = post_typed(&app, "/v1/payments", &erp, "text/plain", big.clone()).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );
    assert_eq!(v["field"], "body");

    for content_type in ["text/plain", "application/json"] {
        let head = format!(
            "POST /v1/payments HTTP/1.1\r\nAuthorization: Bearer {erp}\r\nIdempotency-Key: k-chunked-{content_type}\r\nContent-Type: {content_type}\r\n"
        );
        let (s, v) = post_chunked(&app, &head, big.as_bytes()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (413, Some("body_too_large")),
            "{content_type}: {v}"
        );
    }

    let get = app
        .http
        .get(app.url("/v1/accounts"))
        .bearer_auth(&erp)
        .header("content-type", "application/json")
        .body(format!("{{\"pad\":\"{}\"}}", "x".repeat(80 * 1024)))
        .send()
        .await
        .unwrap();
    let (s, v) = split(get).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );

    // An empty body is sent with Content-Length: 0.
    let (s, v) = post_typed(
        &app,
        "/v1/payments",
        &erp,
        "application/json",
        String::new(),
    )
    .await;
    assert!((400..500).contains(&s) && s != 413, "{s}: {v}");

    // The depth limit does not depend on the declared type: the payment
    // route parses any body as JSON.
    let deep = format!("{}1{}", "[".repeat(20), "]".repeat(20));
    let (s, v) = post_typed(&app, "/v1/payments", &erp, "text/plain", deep).await;
    assert_eq!((s, v["code"].as_str()), (413, Some("body_too_deep")), "{v}");
}

/// A request that takes longer than `server.request_timeout_ms` (here a
/// balance refresh whose bank answers late) is answered 503
/// `request_timeout` through the whole edge, with the caller's request id,
/// the security headers and, when CORS is configured, the CORS headers; the
/// next request is served as usual.
#[tokio::test]
async fn api4_a_request_past_the_timeout_is_a_503_problem_with_every_header() {
    let origin = "https://erp.example.com";
    for cors in [false, true] {
        let app = TestApp::spawn_with(Options {
            configure: Some(Arc::new(move |c: &mut gateway::config::Config| {
                c.server.request_timeout_ms = 300;
                if cors {
                    c.server.cors.allowed_origins = vec![origin.to_owned()];
                }
            })),
            ..Options::default()
        })
        .await;
        let erp = app.token_for(&app.erp, None).await;
        app.sim("east").faults().inject(banksim::FaultRule {
            fault: banksim::Fault::Delay { ms: 3_000 },
            function: None,
            remaining: Some(1),
        });
        let resp = app
            .http
            .post(app.url("/v1/accounts/east-1/balance:refresh"))
            .bearer_auth(&erp)
            .header("origin", origin)
            .header("x-request-id", "slow-probe")
            .send()
            .await
            .unwrap();
        let headers = resp.headers().clone();
        let (s, v) = split(resp).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (503, Some("request_timeout")),
            "cors {cors}: {v}"
        );
        assert_eq!(headers["x-request-id"], "slow-probe");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(
            headers
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_owned()),
            cors.then(|| origin.to_owned()),
            "cors {cors}"
        );
        let (s, v) = app.get("/v1/banks", &erp).await;
        assert_eq!(s, 200, "cors {cors}: {v}");
        app.stop().await;
    }
}
