//! Webhooks end to end: a real axum receiver on 127.0.0.1:0 gets every event of payments
//! that go to settled, signed, deduplicable by id and per object in ascending sequence,
//! although it fails its first requests; a change that rolls back emits nothing; a
//! receiver that always fails leaves dead letters, listed with each attempt's status, and
//! a re-drive delivers them once it recovers; bad input is refused naming the field, and
//! another client's webhook is a 404. A webhook a person registered is delivered by that
//! person's current entitlement.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use gateway::config::WebhooksConfig;
use serde_json::{json, Value};
use store::{EventQuery, EventType, NewAuditRecord, NewWebhook};

use crate::helpers::{split, Options, TestApp};

/// Bound on each wait of these tests.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Got {
    id_header: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    answered: u16,
}

#[derive(Default)]
struct Behaviour {
    log: Mutex<Vec<Got>>,
    /// Answer 500 to this many requests first.
    fail_first: AtomicUsize,
    /// Answer 503 to everything while set.
    down: AtomicBool,
    /// Answer 500 to the first request of every event id.
    fail_each_first: AtomicBool,
    seen: Mutex<BTreeSet<String>>,
}

struct Receiver {
    url: String,
    state: Arc<Behaviour>,
    server: tokio::task::JoinHandle<()>,
}

async fn receive(State(b): State<Arc<Behaviour>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let first_of_event = b.fail_each_first.load(Ordering::SeqCst)
        && b.seen.lock().unwrap().insert(
            headers
                .get("bankdirect-webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
        );
    let answered = if b.down.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else if first_of_event
        || b.fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    b.log.lock().unwrap().push(Got {
        id_header: h("bankdirect-webhook-id"),
        timestamp: h("bankdirect-webhook-timestamp"),
        signature: h("bankdirect-webhook-signature"),
        body: body.to_vec(),
        answered: answered.as_u16(),
    });
    answered
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let state = Arc::new(Behaviour {
            fail_first: AtomicUsize::new(fail_first),
            ..Behaviour::default()
        });
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            state,
            server,
        }
    }

    fn log(&self) -> Vec<Got> {
        self.state.log.lock().unwrap().clone()
    }

    /// Events the receiver accepted (answered 2xx), in arrival order, deduplicated by id
    /// (first arrival kept), as parsed JSON.
    fn accepted(&self) -> Vec<Value> {
        let mut seen = BTreeSet::new();
        self.log()
            .into_iter()
            .filter(|g| (200..300).contains(&g.answered))
            .map(|g| serde_json::from_slice::<Value>(&g.body).unwrap())
            .filter(|v| seen.insert(v["id"].as_str().unwrap().to_owned()))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn hex_hmac(secret: &str, message: &[u8]) -> String {
    crypto::hmac_sha256(secret.as_bytes(), message)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every request carries a valid signature over its exact body, and its id header is the
/// body's id.
fn assert_signed(got: &[Got], secret: &str) {
    let now = chrono::Utc::now().timestamp();
    for g in got {
        let mut message = g.timestamp.as_bytes().to_vec();
        message.push(b'.');
        message.extend_from_slice(&g.body);
        assert_eq!(
            g.signature,
            format!("v1={}", hex_hmac(secret, &message)),
            "signature of {}",
            g.id_header
        );
        let ts: i64 = g.timestamp.parse().unwrap();
        assert!((now - ts).abs() < 300, "timestamp {ts} is now-ish");
        let body: Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(body["id"], g.id_header.as_str());
        for key in [
            "id",
            "type",
            "version",
            "object",
            "sequence",
            "occurred_at",
            "account_id",
            "data",
        ] {
            assert!(!body[key].is_null(), "{key} in {body}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------------------

fn hooks_config(max_attempts: u32) -> WebhooksConfig {
    WebhooksConfig {
        worker_enabled: false,
        poll_interval_ms: 20,
        backoff_base_ms: 20,
        backoff_max_ms: 200,
        max_attempts,
        request_timeout_ms: 2_000,
        connect_timeout_ms: 500,
        lease_duration_ms: 5_000,
        allowed_hosts: vec!["127.0.0.1".to_owned()],
        ..WebhooksConfig::default()
    }
}

/// The app with payment workers off (payments are driven by hand, so one can stay queued)
/// and the webhook worker running on its own.
struct Hooked {
    app: TestApp,
    stop: tokio::sync::watch::Sender<bool>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

impl Hooked {
    async fn start(max_attempts: u32) -> Hooked {
        let mut hooked = Hooked::without_worker(max_attempts).await;
        hooked.start_worker();
        hooked
    }

    async fn without_worker(max_attempts: u32) -> Hooked {
        Hooked::with_users(max_attempts, Vec::new()).await
    }

    async fn with_users(max_attempts: u32, users: Vec<gateway::config::UserConfig>) -> Hooked {
        let app = TestApp::spawn_with(Options {
            webhooks: Some(hooks_config(max_attempts)),
            users,
            ..Options::default()
        })
        .await;
        let (stop, _) = tokio::sync::watch::channel(false);
        Hooked {
            app,
            stop,
            worker: None,
        }
    }

    fn start_worker(&mut self) {
        self.worker = Some(tokio::spawn(gateway::webhook_delivery::run_webhook_worker(
            self.app.state.webhooks.clone(),
            self.stop.subscribe(),
        )));
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(worker) = self.worker {
            let _ = tokio::time::timeout(Duration::from_secs(5), worker).await;
        }
        self.app.stop().await;
    }
}

async fn send_json(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let headers = resp.headers().clone();
    let (s, v) = split(resp).await;
    (s, v, headers)
}

async fn register(app: &TestApp, token: &str, url: &str, types: &[&str]) -> (String, String) {
    let (s, v, _) = send_json(
        app,
        reqwest::Method::POST,
        "/v1/webhooks",
        token,
        None,
        Some(&json!({"url": url, "event_types": types})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let secret = v["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 49,
        "256 bits"
    );
    (v["id"].as_str().unwrap().to_owned(), secret)
}

fn payment_body(amount: &str) -> Value {
    json!({
        "debtor_account_id": "east-1",
        "amount": amount,
        "currency": "CNY",
        "creditor": {
            "name": "上海测试贸易有限公司",
            "account": "6222020000001234",
            "bank_code": "102290000001",
            "type": "corporate"
        },
        "remittance": "货款",
    })
}

async fn create_payment(app: &TestApp, token: &str, amount: &str) -> String {
    let (s, v, _) = send_json(
        app,
        reqwest::Method::POST,
        "/v1/payments",
        token,
        Some(&format!("wh-{amount}")),
        Some(&payment_body(amount)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// Runs the payment workers' rounds by hand until every payment is settled (bounded).
async fn drive_to_settled(app: &TestApp, token: &str, ids: &[String]) {
    let started = Instant::now();
    loop {
        let w = &app.state.payment_workers;
        w.dispatch_round().await.unwrap();
        w.reap_round().await.unwrap();
        w.poll_round().await.unwrap();
        let mut all = true;
        for id in ids {
            let (_, p) = app.get(&format!("/v1/payments/{id}"), token).await;
            all &= p["status"] == "settled";
        }
        if all {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "payments not settled within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The outbox's events of these objects, by id.
async fn outbox(app: &TestApp, ids: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for id in ids {
        for e in app
            .state
            .store
            .list_events(&EventQuery {
                object_id: Some(id.clone()),
                ..EventQuery::default()
            })
            .await
            .unwrap()
        {
            out.insert(e.id);
        }
    }
    out
}

/// Waits (bounded) until the receiver accepted every one of `expected`.
async fn wait_for_all(receiver: &Receiver, expected: &BTreeSet<String>) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let accepted = receiver.accepted();
        let ids: BTreeSet<String> = accepted
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect();
        if expected.is_subset(&ids) {
            return accepted;
        }
        assert!(
            started.elapsed() < WAIT,
            "still missing {:?} after {WAIT:?}",
            expected.difference(&ids).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn per_object(accepted: &[Value]) -> BTreeMap<String, Vec<i64>> {
    let mut map: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for v in accepted {
        map.entry(v["object"]["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(v["sequence"].as_i64().unwrap());
    }
    map
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_deliver_every_event_signed_deduplicable_and_in_order_despite_failures() {
    // The worker starts only once every payment is settled, so each payment has all its
    // deliveries waiting at once, and the receiver refuses the first request of EVERY
    // event: order per object must come from the claim rule, not from timing.
    let mut hooked = Hooked::without_worker(12).await;
    let token = hooked.app.token_for(&hooked.app.erp, None).await;
    let receiver = Receiver::start(0).await;
    receiver.state.fail_each_first.store(true, Ordering::SeqCst);
    let (hook_id, secret) = register(
        &hooked.app,
        &token,
        &receiver.url,
        &["payment.status_changed"],
    )
    .await;

    let app = &hooked.app;
    let ids = vec![
        create_payment(app, &token, "31.00").await,
        create_payment(app, &token, "32.00").await,
        create_payment(app, &token, "33.00").await,
    ];
    drive_to_settled(app, &token, &ids).await;
    let expected = outbox(app, &ids).await;
    hooked.start_worker();
    let app = &hooked.app;
    assert!(
        expected.len() >= 3 * 4,
        "received→queued, submitting, accepted, settled: {expected:?}"
    );

    let accepted = wait_for_all(&receiver, &expected).await;
    let got: BTreeSet<String> = accepted
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, expected, "after dedupe by id: exactly the outbox");
    for (object, seqs) in per_object(&accepted) {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{object}: sequences {seqs:?} must ascend"
        );
    }
    let log = receiver.log();
    assert_signed(&log, &secret);
    assert_eq!(
        log.iter().filter(|g| g.answered == 500).count(),
        expected.len(),
        "the first request of every event was refused, and retried"
    );
    for v in &accepted {
        assert_eq!(v["type"], "payment.status_changed");
        assert_eq!(v["object"]["type"], "payment");
        assert_eq!(v["account_id"], "east-1");
        assert_eq!(v["version"], 1);
    }
    let settled = accepted
        .iter()
        .filter(|v| v["data"]["status"] == "settled")
        .count();
    assert_eq!(settled, 3);

    // The API shows the refused attempts and the delivery that followed (the
    // receiver sees the last request just before the worker records its answer).
    let items = wait_for_deliveries(app, &token, &hook_id, "delivered", |items| {
        items.len() == expected.len()
    })
    .await;
    assert_eq!(items.len(), expected.len());
    let codes: Vec<Vec<u64>> = items
        .iter()
        .map(|d| {
            d["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["response_status"].as_u64().unwrap())
                .collect()
        })
        .collect();
    assert!(codes.iter().all(|c| c == &[500, 200]), "{codes:?}");
    hooked.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_a_change_that_rolls_back_emits_nothing() {
    let hooked = Hooked::start(12).await;
    let app = &hooked.app;
    let token = app.token_for(&app.erp, None).await;
    let receiver = Receiver::start(0).await;
    let (_, secret) = register(app, &token, &receiver.url, &["payment.status_changed"]).await;

    // The dispatcher does not run by itself here: both stay queued, so both can be
    // cancelled.
    let doomed = create_payment(app, &token, "41.00").await;
    let other = create_payment(app, &token, "42.00").await;
    store::failpoints::fail_once(
        store::failpoints::PAYMENT_TRANSITION_BEFORE_COMMIT,
        &doomed,
        "cancelled",
    );
    let (s, v) = app
        .post(&format!("/v1/payments/{doomed}/cancel"), &token)
        .await;
    assert!(s >= 500, "the cancel failed: {s} {v}");
    let (_, p) = app.get(&format!("/v1/payments/{doomed}"), &token).await;
    assert_eq!(p["status"], "queued", "rolled back");
    let (s, v) = app
        .post(&format!("/v1/payments/{other}/cancel"), &token)
        .await;
    assert_eq!(s, 200, "{v}");
    drive_to_settled(app, &token, std::slice::from_ref(&doomed)).await;

    let ids = vec![doomed.clone(), other.clone()];
    let expected = outbox(app, &ids).await;
    let accepted = wait_for_all(&receiver, &expected).await;
    let got: BTreeSet<String> = accepted
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, expected);
    let statuses = |id: &str| -> Vec<String> {
        accepted
            .iter()
            .filter(|v| v["object"]["id"] == id)
            .map(|v| v["data"]["status"].as_str().unwrap().to_owned())
            .collect()
    };
    let doomed_statuses = statuses(&doomed);
    assert!(
        !doomed_statuses.contains(&"cancelled".to_owned()),
        "no event of the rolled-back cancel: {doomed_statuses:?}"
    );
    assert_eq!(doomed_statuses.first().map(String::as_str), Some("queued"));
    assert_eq!(doomed_statuses.last().map(String::as_str), Some("settled"));
    assert_eq!(statuses(&other), ["queued", "cancelled"]);
    // And nothing more arrives for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!receiver
        .accepted()
        .iter()
        .any(|v| v["object"]["id"] == doomed.as_str() && v["data"]["status"] == "cancelled"));
    assert_signed(&receiver.log(), &secret);
    hooked.stop().await;
}

/// Polls the deliveries of a webhook in `state` until `check` accepts the list (bounded).
async fn wait_for_deliveries(
    app: &TestApp,
    token: &str,
    hook_id: &str,
    state: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let (s, list, _) = send_json(
            app,
            reqwest::Method::GET,
            &format!("/v1/webhooks/{hook_id}/deliveries?state={state}"),
            token,
            None,
            None,
        )
        .await;
        assert_eq!(s, 200, "{list}");
        let items = list["items"].as_array().unwrap().clone();
        if check(&items) {
            return items;
        }
        assert!(
            started.elapsed() < WAIT,
            "deliveries in {state} after {WAIT:?}: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_dead_letters_are_listed_with_their_codes_and_redriven_once_the_receiver_recovers()
{
    let hooked = Hooked::start(3).await;
    let app = &hooked.app;
    let token = app.token_for(&app.erp, None).await;
    let receiver = Receiver::start(0).await;
    receiver.state.down.store(true, Ordering::SeqCst);
    let (hook_id, _) = register(app, &token, &receiver.url, &["payment.status_changed"]).await;
    let payment = create_payment(app, &token, "51.00").await;

    let dead = wait_for_deliveries(app, &token, &hook_id, "dead", |items| items.len() == 1).await;
    let d = &dead[0];
    assert_eq!(d["object"]["id"], payment.as_str());
    assert_eq!(d["state"], "dead");
    assert_eq!(d["attempt_count"], 3);
    assert_eq!(d["last_status"], 503);
    assert!(d["next_attempt_at"].is_null());
    let codes: Vec<u64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["response_status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        codes,
        [503, 503, 503],
        "each attempt with its response code"
    );
    let delivery_id = d["id"].as_str().unwrap().to_owned();
    assert!(receiver.accepted().is_empty());

    // Not dead: nothing to re-drive; unknown: 404.
    let (s, v, _) = send_json(
        app,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{hook_id}/deliveries/whd_999999/redrive"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (404, Some("path.delivery_id")),
        "{v}"
    );

    receiver.state.down.store(false, Ordering::SeqCst);
    let (s, v, _) = send_json(
        app,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{hook_id}/redrive"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["redriven"], 1);
    let delivered =
        wait_for_deliveries(app, &token, &hook_id, "delivered", |items| items.len() == 1).await;
    let codes: Vec<u64> = delivered[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["response_status"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [503, 503, 503, 200]);
    assert_eq!(
        delivered[0]["attempt_count"], 1,
        "the counter restarts on re-drive"
    );
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["object"]["id"], payment.as_str());

    let (s, v, _) = send_json(
        app,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{hook_id}/deliveries/{delivery_id}/redrive"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("delivery_not_dead")),
        "{v}"
    );

    // Re-drives are audited, without the secret.
    let audits = app
        .state
        .store
        .list_audit(&store::AuditQuery {
            action: Some("webhook.redrive".to_owned()),
            ..store::AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(audits.len(), 1);
    hooked.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_bad_input_names_the_field_and_another_clients_webhook_is_404() {
    let hooked = Hooked::start(12).await;
    let app = &hooked.app;
    let token = app.token_for(&app.erp, None).await;
    let post = |body: Value, key: Option<&'static str>| {
        let token = token.clone();
        async move {
            send_json(
                app,
                reqwest::Method::POST,
                "/v1/webhooks",
                &token,
                key,
                Some(&body),
            )
            .await
        }
    };
    let ok_types = json!(["payment.status_changed"]);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"url": "ftp://hooks.example.com/x", "event_types": ok_types}),
            "body.url",
            "unsupported_url_scheme",
        ),
        (
            json!({"url": "https://u:p@hooks.example.com/x", "event_types": ok_types}),
            "body.url",
            "url_has_credentials",
        ),
        (
            json!({"url": "http://10.0.0.7/x", "event_types": ok_types}),
            "body.url",
            "url_not_allowed",
        ),
        (
            json!({"url": "http://localhost:9/x", "event_types": ok_types}),
            "body.url",
            "url_not_allowed",
        ),
        (
            json!({"event_types": ok_types}),
            "body.url",
            "missing_field",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "event_types": ["payment.status_changed", "payment.created"]}),
            "body.event_types[1]",
            "unknown_event_type",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "event_types": vec!["transaction.booked"; 17]}),
            "body.event_types",
            "too_many_event_types",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "event_types": []}),
            "body.event_types",
            "invalid_event_types",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "event_types": ok_types, "secret": "too-short"}),
            "body.secret",
            "invalid_secret",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "event_types": ok_types, "colour": "red"}),
            "body.colour",
            "unknown_field",
        ),
    ];
    for (body, field, code) in cases {
        let (s, v, _) = post(body.clone(), None).await;
        assert_eq!(s, 422, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
        assert_eq!(v["code"], code, "{body}: {v}");
        assert!(!v["detail"].as_str().unwrap().contains("too-short"));
    }
    let resp = app
        .http
        .post(app.url("/v1/webhooks"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (s, v) = split(resp).await;
    assert_eq!((s, v["field"].as_str()), (400, Some("body")), "{v}");
    let (_, list, _) = send_json(
        app,
        reqwest::Method::GET,
        "/v1/webhooks",
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing stored");

    // Without payments:write: 403.
    let limited = app.token_for(&app.limited, None).await;
    let (s, v, _) = send_json(
        app,
        reqwest::Method::GET,
        "/v1/webhooks",
        &limited,
        None,
        None,
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (403, Some("insufficient_scope")));

    // A caller-given secret is never echoed; an Idempotency-Key replays without it.
    let body = json!({
        "url": "https://hooks.example.com/erp",
        "event_types": ["transaction.booked", "payment.status_changed"],
        "secret": "my-own-secret-of-at-least-32-characters!"
    });
    let (s, first, headers) = post(body.clone(), Some("wh-key-1")).await;
    assert_eq!(s, 201, "{first}");
    assert!(!headers.contains_key("idempotent-replayed"));
    assert_eq!(first["secret"], "my-own-secret-of-at-least-32-characters!");
    let id = first["id"].as_str().unwrap().to_owned();
    let (s, replay, headers) = post(body.clone(), Some("wh-key-1")).await;
    assert_eq!(s, 201);
    assert!(headers.contains_key("idempotent-replayed"));
    assert_eq!(replay["id"], id.as_str());
    assert!(
        replay.get("secret").is_none(),
        "never returned again: {replay}"
    );
    let mut other_body = body.clone();
    other_body["url"] = json!("https://hooks.example.com/other");
    let (s, v, _) = post(other_body, Some("wh-key-1")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );

    let (s, got, _) = send_json(
        app,
        reqwest::Method::GET,
        &format!("/v1/webhooks/{id}"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{got}");
    assert!(got.get("secret").is_none());
    assert_eq!(
        got["event_types"],
        json!(["payment.status_changed", "transaction.booked"]),
        "in name order"
    );
    let (_, list, _) = send_json(
        app,
        reqwest::Method::GET,
        "/v1/webhooks?limit=1",
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["next_cursor"].is_null());
    assert!(!list.to_string().contains("my-own-secret"));

    // Another client's webhook is a 404 like a missing one, on every route.
    app.state
        .store
        .create_webhook(
            NewWebhook {
                id: "whk_someone_else".to_owned(),
                client_id: "someone-else".to_owned(),
                url: "https://hooks.example.com/else".to_owned(),
                secret: "someone-else-secret-0123456789abcdef".to_owned(),
                event_types: vec![EventType::PaymentStatusChanged],
                created_at: chrono::Utc::now(),
            },
            None,
            NewAuditRecord {
                at: chrono::Utc::now(),
                actor: "test".to_owned(),
                action: "webhook.create".to_owned(),
                object: "webhook:whk_someone_else".to_owned(),
                request_id: None,
                outcome: "created".to_owned(),
                details: json!({}),
            },
        )
        .await
        .unwrap();
    for (method, path) in [
        (reqwest::Method::GET, "/v1/webhooks/whk_someone_else"),
        (reqwest::Method::DELETE, "/v1/webhooks/whk_someone_else"),
        (
            reqwest::Method::GET,
            "/v1/webhooks/whk_someone_else/deliveries",
        ),
        (
            reqwest::Method::POST,
            "/v1/webhooks/whk_someone_else/redrive",
        ),
        (reqwest::Method::GET, "/v1/webhooks/whk_missing"),
    ] {
        let (s, v, _) = send_json(app, method.clone(), path, &token, None, None).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (404, Some("webhook_not_found")),
            "{method} {path}: {v}"
        );
        assert_eq!(v["field"], "path.id");
    }
    let (s, v, _) = send_json(
        app,
        reqwest::Method::GET,
        &format!("/v1/webhooks/{id}/deliveries?state=lost"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("query.state")));

    // Delete: 204, then gone.
    let resp = app
        .http
        .delete(app.url(&format!("/v1/webhooks/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (s, _, _) = send_json(
        app,
        reqwest::Method::GET,
        &format!("/v1/webhooks/{id}"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(s, 404);

    // The secrets are in no audit record.
    let audits = app
        .state
        .store
        .list_audit(&store::AuditQuery {
            limit: 1000,
            ..store::AuditQuery::default()
        })
        .await
        .unwrap();
    let creates = audits
        .iter()
        .filter(|a| a.action == "webhook.create")
        .count();
    assert!(creates >= 1);
    assert!(audits.iter().any(|a| a.action == "webhook.delete"));
    for a in &audits {
        assert!(!a.details.to_string().contains("my-own-secret"), "{a:?}");
    }
    hooked.stop().await;
}

fn maker(id: &str, accounts: &[&str]) -> gateway::config::UserConfig {
    gateway::config::UserConfig {
        id: domain::UserId::parse(id).unwrap(),
        name: String::new(),
        roles: vec![gateway::config::Role::Maker],
        accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
        password_hash: Some(crypto::password::hash_password(&format!("pw-{id}")).unwrap()),
        totp_secret: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_a_person_registered_are_delivered_by_that_persons_entitlement() {
    let mut hooked = Hooked::with_users(
        3,
        vec![maker("mk-all", &["*"]), maker("mk-east2", &["east-2"])],
    )
    .await;
    let app = &hooked.app;
    let erp = app.token_for(&app.erp, None).await;
    let mut person = Vec::new();
    for id in ["mk-all", "mk-east2"] {
        let (s, v) = app.login(id, &format!("pw-{id}")).await;
        assert_eq!(s, 200, "{v}");
        person.push(v["access_token"].as_str().unwrap().to_owned());
    }
    let seen_all = Receiver::start(0).await;
    let seen_none = Receiver::start(0).await;
    let (hook_all, secret) =
        register(app, &person[0], &seen_all.url, &["payment.status_changed"]).await;
    let (hook_none, _) =
        register(app, &person[1], &seen_none.url, &["payment.status_changed"]).await;

    let ids = vec![create_payment(app, &erp, "41.00").await];
    drive_to_settled(app, &erp, &ids).await;
    let expected = outbox(app, &ids).await;
    hooked.start_worker();
    let app = &hooked.app;

    // Entitled to every account: every event, signed.
    let accepted = wait_for_all(&seen_all, &expected).await;
    assert!(accepted.iter().all(|v| v["account_id"] == "east-1"));
    assert_signed(&seen_all.log(), &secret);
    // Entitled to east-2 only: the events of east-1 are skipped, never sent.
    let skipped = wait_for_deliveries(app, &person[1], &hook_none, "skipped", |items| {
        items.len() == expected.len()
    })
    .await;
    assert_eq!(skipped.len(), expected.len());
    assert!(seen_none.log().is_empty(), "nothing reached the receiver");
    // The receiver sees a request just before the worker records its answer.
    wait_for_deliveries(app, &person[0], &hook_all, "delivered", |items| {
        items.len() == expected.len()
    })
    .await;
    hooked.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_secrets_are_stored_sealed_and_still_sign_deliveries() {
    let mut hooked = Hooked::without_worker(3).await;
    let app = &hooked.app;
    let token = app.token_for(&app.erp, None).await;
    let receiver = Receiver::start(0).await;
    let (_, secret) = register(app, &token, &receiver.url, &["payment.status_changed"]).await;

    // The database (file and write-ahead log) holds the secret sealed under
    // the data key in the data dir, never as given.
    let mut bytes = Vec::new();
    for file in ["bankdirect.db", "bankdirect.db-wal"] {
        if let Ok(b) = std::fs::read(app.config.data_dir.join(file)) {
            bytes.extend(b);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains(&secret),
        "the secret is in the database as given"
    );
    let at = text.find("sealed:v1:").expect("a sealed secret is stored");
    let sealed: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_'))
        .collect();
    let key =
        crypto::sealed::MasterKey::load_or_create(&app.config.data_dir.join("webhook-secrets.key"))
            .unwrap();
    assert_eq!(key.open(&sealed).unwrap().expose_secret(), secret);

    // Deliveries are still signed with the secret as given.
    let ids = vec![create_payment(app, &token, "51.00").await];
    drive_to_settled(app, &token, &ids).await;
    let expected = outbox(app, &ids).await;
    hooked.start_worker();
    wait_for_all(&receiver, &expected).await;
    assert_signed(&receiver.log(), &secret);
    hooked.stop().await;
}
