//! Limits and hardening over real HTTP: rate limits per client and per address on the
//! token endpoint, security headers on every kind of response, CORS off unless
//! configured, JSON depth and query length, and webhook SSRF refused at delivery.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use domain::{ClientId, SystemClock};
use gateway::{
    auth::Scope,
    config::{
        AuthConfig, ClientConfig, Config, CorsConfig, HeadersConfig, RequestLimits, ServerConfig,
        WebhooksConfig,
    },
    App, BuildOptions,
};
use serde_json::{json, Value};

use crate::helpers::{split, Options, TestApp, CALL_TIMEOUT};

/// A gateway with no banks and one client, configured by `server`.
struct Small {
    base_url: String,
    http: reqwest::Client,
    secret: String,
    _data_dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Small {
    async fn spawn(server: ServerConfig) -> Small {
        let data_dir = tempfile::tempdir().unwrap();
        let hasher = crypto::KeyedHasher::load_or_create(
            &data_dir
                .path()
                .join(AuthConfig::default().secret_hash_key_file),
        )
        .unwrap();
        let secret = crypto::generate_client_secret().expose_secret().to_owned();
        // From TOML, so that sections added later keep their defaults here.
        let text = "data_dir = \".\"\n\n[balances]\nworker_enabled = false\n\n[statements]\nworker_enabled = false\n\n[payments]\nworkers_enabled = false\n\n[webhooks]\nworker_enabled = false\n";
        let mut config = Config::from_toml(text, data_dir.path()).unwrap();
        config.server = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..server
        };
        config.clients = vec![ClientConfig {
            id: ClientId::parse("erp").unwrap(),
            secret_hash: hasher.hash(&secret),
            scopes: Scope::ALL.to_vec(),
            accounts: vec!["*".to_owned()],
        }];
        config.validate().unwrap();
        let app = App::build(
            config,
            BuildOptions {
                clock: Arc::new(SystemClock),
                run_workers: false,
            },
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            app.serve(listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Small {
            base_url: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .no_proxy()
                .build()
                .unwrap(),
            secret,
            _data_dir: data_dir,
            shutdown: Some(tx),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn token_request(&self, secret: &str) -> reqwest::Response {
        self.http
            .post(self.url("/oauth/token"))
            .basic_auth("erp", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
    }

    async fn token(&self) -> String {
        let resp = self.token_request(&self.secret.clone()).await;
        let (s, v) = split(resp).await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Small {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .expect("429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn hardening_a_client_over_its_burst_gets_429_with_retry_after_and_a_metric() {
    let small = Small::spawn(ServerConfig {
        limits: RequestLimits {
            client_requests_per_s: 1,
            client_burst: 5,
            ..RequestLimits::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let token = small.token().await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..8 {
        let resp = small
            .http
            .get(small.url("/v1/accounts"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 && limited.is_none() {
            limited = Some(resp);
        }
    }
    assert_eq!(&statuses[..5], &[200; 5], "the burst passes: {statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let resp = limited.unwrap();
    assert!((1..=2).contains(&retry_after(&resp)));
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let (_, problem) = split(resp).await;
    assert_eq!(problem["code"], "rate_limited", "{problem}");
    assert_eq!(problem["status"], 429);

    // Requests without a token are not this bucket's: the open health check answers.
    let resp = small.http.get(small.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = small
        .http
        .get(small.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_rate_limited_total{limit=\"client\"}"),
        "the 429s are counted"
    );
}

#[tokio::test]
async fn hardening_failed_token_requests_are_throttled_per_address_not_a_busy_client() {
    let small = Small::spawn(ServerConfig {
        limits: RequestLimits {
            token_failures_per_minute: 1,
            token_failure_burst: 3,
            ..RequestLimits::default()
        },
        ..ServerConfig::default()
    })
    .await;
    // Right secrets never drain the failure bucket.
    for _ in 0..10 {
        small.token().await;
    }
    let token = small.token().await;
    for i in 0..4 {
        let resp = small.token_request("wrong-secret").await;
        assert_eq!(resp.status(), 401, "failed attempt {i} is answered");
    }
    // The address is throttled now: even the right secret gets a 429, before it is
    // checked, so a guesser cannot tell a hit.
    for secret in ["wrong-secret", small.secret.as_str()] {
        let resp = small.token_request(secret).await;
        assert_eq!(resp.status(), 429);
        let wait = retry_after(&resp);
        assert!((1..=60).contains(&wait), "{wait}");
        let (_, problem) = split(resp).await;
        assert_eq!(problem["code"], "rate_limited", "{problem}");
    }
    // A token already issued keeps working: the throttle is the token endpoint's.
    let resp = small
        .http
        .get(small.url("/v1/banks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn assert_security_headers(resp: &reqwest::Response, what: &str) {
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(
        h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'",
        "{what}"
    );
    assert_eq!(h["cache-control"], "no-store", "{what}");
    assert!(h.get("server").is_none(), "{what}: no server banner");
    assert!(
        h.get("strict-transport-security").is_none(),
        "{what}: no HSTS over plain HTTP"
    );
    assert!(
        h.keys().all(|k| !k.as_str().starts_with("access-control-")),
        "{what}: no CORS unless configured"
    );
}

#[tokio::test]
async fn hardening_every_response_has_the_security_headers_and_no_cors_by_default() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let origin = "https://evil.example";
    let cases = [
        (
            "200",
            app.http.get(app.url("/v1/banks")).bearer_auth(&token),
        ),
        ("open 200", app.http.get(app.url("/healthz"))),
        ("401", app.http.get(app.url("/v1/accounts"))),
        (
            "404 route",
            app.http.get(app.url("/v1/nope")).bearer_auth(&token),
        ),
        (
            "404 object",
            app.http
                .get(app.url("/v1/payments/pay_00000000000000000000000000"))
                .bearer_auth(&token),
        ),
        (
            "405",
            app.http.delete(app.url("/v1/banks")).bearer_auth(&token),
        ),
        (
            "422 problem",
            app.http
                .post(app.url("/v1/payments"))
                .bearer_auth(&token)
                .json(&json!({"amount": "x"})),
        ),
        (
            "token 401",
            app.http
                .post(app.url("/oauth/token"))
                .basic_auth("erp", Some("wrong"))
                .form(&[("grant_type", "client_credentials")]),
        ),
    ];
    for (what, req) in cases {
        let resp = req.header("origin", origin).send().await.unwrap();
        assert_security_headers(&resp, what);
    }
    // A preflight gets no CORS answer either: browsers keep other origins out.
    let resp = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/v1/payments"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        resp.headers()
    );
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    app.stop().await;
}

#[tokio::test]
async fn hardening_cors_answers_exactly_the_configured_origins_and_hsts_when_set() {
    let allowed = "https://erp.example.com";
    let small = Small::spawn(ServerConfig {
        cors: CorsConfig {
            allowed_origins: vec![allowed.to_owned()],
        },
        headers: HeadersConfig {
            hsts: true,
            ..HeadersConfig::default()
        },
        limits: RequestLimits {
            client_requests_per_s: 1,
            client_burst: 2,
            ..RequestLimits::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let preflight = |origin: &str| {
        small
            .http
            .request(reqwest::Method::OPTIONS, small.url("/v1/payments"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    let resp = preflight(allowed).await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], allowed);
    let methods = h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    for m in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "x-request-id",
    ] {
        assert!(headers.contains(name), "{headers}");
    }
    assert!(h.get("access-control-allow-credentials").is_none());
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["strict-transport-security"], "max-age=31536000");

    let resp = preflight("https://evil.example").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let token = small.token().await;
    let resp = small
        .http
        .get(small.url("/v1/banks"))
        .bearer_auth(&token)
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], allowed);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );

    // A refusal made before the route (here the client's rate limit) still
    // carries CORS, so the browser lets the page read it, and the request id.
    let mut limited = None;
    for _ in 0..4 {
        let resp = small
            .http
            .get(small.url("/v1/banks"))
            .bearer_auth(&token)
            .header("origin", allowed)
            .header("x-request-id", "cors-limit-probe")
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
    }
    let resp = limited.expect("the burst of 2 is spent within 4 requests");
    assert_eq!(resp.headers()["access-control-allow-origin"], allowed);
    assert_eq!(resp.headers()["x-request-id"], "cors-limit-probe");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn hardening_deep_json_long_queries_and_large_bodies_are_refused_naming_them() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;

    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let body = format!(r#"{{"debtor_account_id":"east-1","amount":"1.00","x":{deep}}}"#);
    for path in ["/v1/payments", "/v1/payment-batches", "/v1/webhooks"] {
        let resp = app
            .http
            .post(app.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let (s, problem) = split(resp).await;
        assert_eq!(s, 413, "{path}: {problem}");
        assert_eq!(problem["code"], "body_too_deep", "{problem}");
        assert_eq!(problem["field"], "body", "{problem}");
    }
    // Brackets in strings are text, not depth: this body goes on to the handler.
    let text = json!({"remittance": "[".repeat(100)});
    let (s, problem) = {
        let resp = app
            .http
            .post(app.url("/v1/payments"))
            .bearer_auth(&token)
            .json(&text)
            .send()
            .await
            .unwrap();
        split(resp).await
    };
    assert_ne!(problem["code"], "body_too_deep", "{s} {problem}");

    let long = "a".repeat(5_000);
    let (s, problem) = app
        .get(&format!("/v1/payments?cursor={long}"), &token)
        .await;
    assert_eq!(s, 414, "{problem}");
    assert_eq!(problem["code"], "query_too_long");
    assert_eq!(problem["field"], "query");

    let big = format!(r#"{{"remittance":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let resp = app
        .http
        .post(app.url("/v1/payments"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let (s, problem) = split(resp).await;
    assert_eq!(s, 413, "{problem}");
    assert_eq!(problem["code"], "body_too_large");
    assert_eq!(problem["field"], "body");
    app.stop().await;
}

/// A receiver on 127.0.0.1 that counts what reaches it.
async fn counting_receiver() -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (port, hits)
}

#[tokio::test]
async fn hardening_a_webhook_name_resolving_to_loopback_is_refused_at_delivery_unless_allowed() {
    // The app lets `localhost` be registered and delivered to (as an operator may for a
    // local receiver); a second worker on the same store runs without that allowance,
    // as after the operator withdrew it, or as for a name that resolved elsewhere when
    // it was registered.
    let allowing = WebhooksConfig {
        worker_enabled: false,
        backoff_base_ms: 20,
        backoff_max_ms: 40,
        allowed_hosts: vec!["localhost".to_owned()],
        ..WebhooksConfig::default()
    };
    let app = TestApp::spawn_with(Options {
        webhooks: Some(allowing.clone()),
        ..Options::default()
    })
    .await;
    let token = app.token_for(&app.erp, None).await;
    let (port, hits) = counting_receiver().await;
    let (s, hook) = {
        let resp = app
            .http
            .post(app.url("/v1/webhooks"))
            .bearer_auth(&token)
            .json(&json!({
                "url": format!("http://localhost:{port}/hook"),
                "event_types": ["payment.status_changed"],
            }))
            .send()
            .await
            .unwrap();
        split(resp).await
    };
    assert_eq!(s, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let (s, payment) = {
        let resp = app
            .http
            .post(app.url("/v1/payments"))
            .bearer_auth(&token)
            .header("idempotency-key", "ssrf-1")
            .json(&json!({
                "debtor_account_id": "east-1",
                "amount": "12.34",
                "currency": "CNY",
                "creditor": {
                    "name": "上海测试贸易有限公司",
                    "account": "6222020000001234",
                    "bank_code": "102290000001",
                    "type": "corporate"
                },
                "remittance": "货款",
            }))
            .send()
            .await
            .unwrap();
        split(resp).await
    };
    assert_eq!(s, 201, "{payment}");

    let strict = gateway::webhook_delivery::WebhookWorker::new(
        &WebhooksConfig {
            allowed_hosts: vec!["203.0.113.1".to_owned()],
            ..allowing.clone()
        },
        app.state.store.clone(),
        Arc::new(SystemClock),
        app.state.clients.clone(),
        &[],
        app.state.webhook_secret_key.clone(),
    )
    .unwrap();
    strict.fan_out_round().await.unwrap();
    assert!(
        strict.deliver_round().await.unwrap() >= 1,
        "a delivery was due"
    );
    let deliveries = deliveries(&app, &token, &hook_id).await;
    let errors: Vec<String> = deliveries
        .iter()
        .flat_map(|d| d["attempts"].as_array().unwrap().clone())
        .map(|a| a["error"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!errors.is_empty(), "{deliveries:?}");
    for e in &errors {
        assert!(
            e.starts_with("not sent: localhost is or resolves to 127.0.0.1"),
            "{e}"
        );
        assert!(e.contains("webhooks.allowed_hosts"), "{e}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing reached the receiver"
    );

    // The allowed worker of the app delivers the same deliveries once their retry is due.
    let started = std::time::Instant::now();
    while hits.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.state.webhooks.deliver_round().await.unwrap();
    }
    app.stop().await;
}

async fn deliveries(app: &TestApp, token: &str, hook_id: &str) -> Vec<Value> {
    let (s, list) = app
        .get(&format!("/v1/webhooks/{hook_id}/deliveries"), token)
        .await;
    assert_eq!(s, 200, "{list}");
    list["items"].as_array().unwrap().clone()
}
