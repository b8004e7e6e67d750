//! OWASP API10:2023 Unsafe Consumption of APIs.
//!
//! The gateway consumes bank APIs and must trust their answers no more than
//! a caller's request. A bank answer with a DOCTYPE (XXE with an external
//! entity, "billion laughs"), an oversized, garbled, truncated, torn,
//! wrongly encoded or wrongly typed answer, an HTML error page or JSON
//! where XML belongs: the API answers with a clear problem (502/503/504
//! naming the bank), never a 500, a panic or internals, never the content
//! of a local file; and a payment whose submit got such an answer is
//! executed at most once (the simulator's executions).
//!
//! The hostile answers come from a proxy in front of a real simulated bank
//! that rewrites its answers (so the bank really executed what it was
//! sent), and from the simulator's own fault injection.

use std::sync::{Arc, Mutex};

use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post, Router};
use serde_json::{json, Value};

use crate::helpers::{add_bank, split, Options, TestApp};

/// How the proxy spoils the bank's next answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spoil {
    /// A DOCTYPE declaring an external entity read from a local file.
    Xxe,
    /// Nested entity expansion.
    BillionLaughs,
    /// The first decimal amount in the answer becomes text.
    WronglyTyped,
    /// An HTML error page with status 200.
    Html,
    /// JSON where the family speaks XML.
    Json,
    /// 6 MiB of a valid-looking packet (above the bank's 4 MiB limit).
    Oversized,
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    /// The spoiling and how many answers it still takes.
    plan: Mutex<Option<(Spoil, u32)>>,
    spoiled: Mutex<u32>,
}

fn spoil(kind: Spoil, body: &[u8]) -> Vec<u8> {
    let text = body.to_vec();
    let after_decl = text
        .windows(2)
        .position(|w| w == b"?>")
        .map(|p| p + 2)
        .unwrap_or(0);
    let insert = |doctype: &str| {
        let mut out = text[..after_decl].to_vec();
        out.extend_from_slice(doctype.as_bytes());
        out.extend_from_slice(&text[after_decl..]);
        out
    };
    match kind {
        Spoil::Xxe => insert(
            "<!DOCTYPE CMBSDKPGK [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>",
        ),
        Spoil::BillionLaughs => {
            let mut d = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
            for i in 1..10 {
                let prev = if i == 1 { "lol".to_owned() } else { format!("lol{}", i - 1) };
                d.push_str(&format!("<!ENTITY lol{i} \"{}\">", format!("&{prev};").repeat(10)));
            }
            d.push_str("]>");
            insert(&d)
        }
        Spoil::WronglyTyped => {
            // `>digits.digits<` → `>12,3x.4<`
            let mut out = text.clone();
            let mut i = 0;
            while i < out.len() {
                if out[i] == b'>' {
                    let start = i + 1;
                    let mut j = start;
                    while j < out.len() && (out[j].is_ascii_digit() || out[j] == b'.') {
                        j += 1;
                    }
                    let run = &out[start..j];
                    if j < out.len() && out[j] == b'<' && run.contains(&b'.') && run.len() >= 3 {
                        let mut spoiled = out[..start].to_vec();
                        spoiled.extend_from_slice(b"12,3x.4");
                        spoiled.extend_from_slice(&out[j..]);
                        return spoiled;
                    }
                }
                i += 1;
            }
            out.truncate(0);
            out.extend_from_slice(b"<no-amount-found/>");
            out
        }
        Spoil::Html => b"<html><body><h1>502 Bad Gateway</h1><pre>at com.bank.Front(Front.java:12)</pre></body></html>".to_vec(),
        Spoil::Json => br#"{"code":"0","balance":"1e9999","accounts":[null]}"#.to_vec(),
        Spoil::Oversized => {
            let mut out = text.clone();
            let pad = format!("<!--{}-->", "x".repeat(6 * 1024 * 1024));
            out.extend_from_slice(pad.as_bytes());
            out
        }
    }
}

async fn forward(
    State(p): State<Arc<Proxy>>,
    headers: HeaderMap,
    body: Bytes,
) -> (axum::http::StatusCode, Vec<u8>) {
    let mut req = p.http.post(&p.upstream).body(body);
    if let Some(ct) = headers.get("content-type") {
        req = req.header("content-type", ct.clone());
    }
    let answer = req.send().await.unwrap();
    let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let bytes = answer.bytes().await.unwrap().to_vec();
    let mut plan = p.plan.lock().unwrap();
    if let Some((kind, left)) = *plan {
        *plan = (left > 1).then_some((kind, left - 1));
        *p.spoiled.lock().unwrap() += 1;
        return (axum::http::StatusCode::OK, spoil(kind, &bytes));
    }
    (status, bytes)
}

/// A proxy on loopback in front of `upstream`.
async fn start_proxy(upstream: String) -> (String, Arc<Proxy>) {
    let proxy = Arc::new(Proxy {
        upstream,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        plan: Mutex::new(None),
        spoiled: Mutex::new(0),
    });
    let app = Router::new()
        .route("/", post(forward))
        .route("/{*path}", post(forward))
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, proxy)
}

/// The app with a third bank `hostile` reached through a proxy in front of
/// a simulated bank of its own.
async fn spawn_with_proxy() -> (TestApp, Arc<Proxy>, banksim::SimServer) {
    let sim = banksim::SimServer::start(
        banksim::SimBankConfig {
            bank_id: "hostile".to_owned(),
            family: "cn-xml".to_owned(),
            seed: 31,
            login: "HOSTILE01".to_owned(),
            cny_accounts: 1,
            usd_accounts: 0,
            eur_accounts: 0,
            time_zone: "Asia/Shanghai".to_owned(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let (url, proxy) = start_proxy(sim.url()).await;
    let number = sim.ledger().accounts()[0].number.clone();
    let app = TestApp::spawn_with(Options {
        configure: Some(Arc::new(move |c: &mut gateway::config::Config| {
            add_bank(c, "hostile", url.clone(), "HOSTILE01", &number);
        })),
        ..Options::default()
    })
    .await;
    (app, proxy, sim)
}

fn assert_clear_bank_problem(context: &str, status: u16, v: &Value) {
    assert!(
        [502, 503, 504].contains(&status),
        "{context}: a bank's bad answer is a 502/503/504, got {status}: {v}"
    );
    assert!(
        v["code"].as_str().unwrap_or("").starts_with("bank_"),
        "{context}: {v}"
    );
    let text = v.to_string();
    assert!(
        !text.contains("root:x:0:0"),
        "{context}: a local file leaked: {v}"
    );
    assert!(
        !text.contains("lollollol"),
        "{context}: an entity was expanded: {v}"
    );
    assert!(
        !text.contains("Front.java"),
        "{context}: the bank's page is not relayed: {v}"
    );
}

#[tokio::test]
async fn api10_hostile_bank_answers_to_a_read_are_clear_problems() {
    let (app, proxy, sim) = spawn_with_proxy().await;
    let erp = app.token_for(&app.erp, None).await;
    // The control: through the proxy, unspoiled, a refresh works.
    let (s, v) = app
        .post("/v1/accounts/hostile-1/balance:refresh", &erp, &json!({}))
        .await;
    assert_eq!(s, 200, "{v}");
    for kind in [
        Spoil::Xxe,
        Spoil::BillionLaughs,
        Spoil::WronglyTyped,
        Spoil::Html,
        Spoil::Json,
        Spoil::Oversized,
    ] {
        *proxy.plan.lock().unwrap() = Some((kind, 1));
        let before = *proxy.spoiled.lock().unwrap();
        let (s, v) = app
            .post("/v1/accounts/hostile-1/balance:refresh", &erp, &json!({}))
            .await;
        assert_eq!(
            *proxy.spoiled.lock().unwrap(),
            before + 1,
            "{kind:?}: the answer was spoiled"
        );
        assert_clear_bank_problem(&format!("{kind:?}"), s, &v);
        // The stored balance was not replaced by anything from that answer.
        let (s, b) = app.get("/v1/accounts/hostile-1/balance", &erp).await;
        assert_eq!(s, 200, "{kind:?}: {b}");
        assert!(!b.to_string().contains("12,3x"), "{kind:?}: {b}");
    }
    // The simulator's own faults on a read.
    let faults = [
        json!({"kind": "garbled"}),
        json!({"kind": "truncated"}),
        json!({"kind": "wrong_encoding"}),
        json!({"kind": "torn_body"}),
        json!({"kind": "oversized", "bytes": 5 * 1024 * 1024}),
        json!({"kind": "http_error", "status": 500}),
    ];
    for fault in faults {
        let mut rule = fault.clone();
        rule["remaining"] = json!(1);
        let r = app
            .http
            .post(format!("{}_sim/faults", app.sim("east").url()))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{fault}");
        let (s, v) = app
            .post("/v1/accounts/east-1/balance:refresh", &erp, &json!({}))
            .await;
        assert_clear_bank_problem(&fault.to_string(), s, &v);
    }
    app.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn api10_a_payment_whose_submit_got_a_hostile_answer_is_paid_at_most_once() {
    let (app, proxy, sim) = spawn_with_proxy().await;
    let erp = app.token_for(&app.erp, None).await;
    let executions = |sim: &banksim::SimServer, reference: &str| {
        sim.executions()
            .iter()
            .filter(|e| e.reference == reference)
            .map(|e| u64::from(e.count))
            .sum::<u64>()
    };
    for (i, kind) in [
        Spoil::Xxe,
        Spoil::BillionLaughs,
        Spoil::WronglyTyped,
        Spoil::Html,
        Spoil::Oversized,
    ]
    .into_iter()
    .enumerate()
    {
        let p = app.pay(&erp, "hostile-1", &format!("3.{i:02}")).await;
        let id = p["id"].as_str().unwrap().to_owned();
        // The submit's answer is spoiled; the bank did execute it.
        *proxy.plan.lock().unwrap() = Some((kind, 1));
        let done = app
            .drive_to(&erp, &id, &["settled", "failed", "needs_review"])
            .await;
        let reference = done["business_reference"].as_str().unwrap();
        assert_eq!(
            done["status"], "settled",
            "{kind:?}: found by its reference: {done}"
        );
        assert_eq!(executions(&sim, reference), 1, "{kind:?}: paid once");
    }
    // The simulator's faults after execution, on the submit.
    let east = app.sim("east").url();
    for (i, fault) in [
        json!({"kind": "garbled"}),
        json!({"kind": "truncated"}),
        json!({"kind": "wrong_encoding"}),
        json!({"kind": "torn_body"}),
        json!({"kind": "oversized", "bytes": 5 * 1024 * 1024}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rule = fault.clone();
        rule["function"] = json!("SubmitPayment");
        rule["remaining"] = json!(1);
        let r = app
            .http
            .post(format!("{east}_sim/faults"))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{fault}");
        let p = app.pay(&erp, "east-1", &format!("4.{i:02}")).await;
        let id = p["id"].as_str().unwrap().to_owned();
        let done = app
            .drive_to(&erp, &id, &["settled", "failed", "needs_review"])
            .await;
        let reference = done["business_reference"].as_str().unwrap();
        assert_eq!(done["status"], "settled", "{fault}: {done}");
        assert_eq!(
            app.executions("east").await.get(reference),
            Some(&1),
            "{fault}"
        );
    }
    // Reading the payments afterwards is still clean.
    let (s, list) = split(
        app.http
            .get(app.url("/v1/payments"))
            .bearer_auth(&erp)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{list}");
    app.stop().await;
    sim.shutdown().await;
}
