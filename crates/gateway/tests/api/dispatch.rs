//! The running dispatcher (workers on, as in production): it keeps payments
//! in flight continuously, so a slow payment holds one slot and not the
//! others; with many payments queued and small claims, each payment is still
//! sent exactly once; the batch-chunk dispatcher gets its turn meanwhile.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use gateway::config::{BankLimits, PaymentsConfig};
use serde_json::{json, Value};

use crate::helpers::{split, Options, TestApp};

fn payment(amount: &str) -> Value {
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

/// Creates a payment; its id and business reference.
async fn create(app: &TestApp, token: &str, key: &str, amount: &str) -> (String, String) {
    let resp = app
        .http
        .post(app.url("/v1/payments"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&payment(amount))
        .send()
        .await
        .unwrap();
    let (s, v) = split(resp).await;
    assert_eq!(s, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_owned(),
        v["business_reference"].as_str().unwrap().to_owned(),
    )
}

async fn status_of(app: &TestApp, token: &str, id: &str) -> Value {
    let (s, p) = app.get(&format!("/v1/payments/{id}"), token).await;
    assert_eq!(s, 200, "{p}");
    p
}

/// Waits (bounded) until every payment of `ids` has a status in `wanted`.
async fn wait_for(app: &TestApp, token: &str, ids: &[String], wanted: &[&str], within: Duration) {
    let started = Instant::now();
    for id in ids {
        loop {
            let p = status_of(app, token, id).await;
            if wanted.contains(&p["status"].as_str().unwrap_or("")) {
                break;
            }
            assert!(
                started.elapsed() < within,
                "payment {id} is {} after {within:?}, expected one of {wanted:?}",
                p["status"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The simulated bank settles at once (no poller round needed).
async fn settle_at_once(app: &TestApp) {
    let sim = app.sim("east").url();
    let mut cfg: Value = app
        .http
        .get(format!("{sim}_sim/payments/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    cfg["settle_delay_ms"] = json!(0);
    let r = app
        .http
        .put(format!("{sim}_sim/payments/config"))
        .json(&cfg)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "sim config {}", r.status());
}

/// Delays the bank's answer to SubmitPayment by `ms` (`remaining` times, or always).
async fn delay_submissions(app: &TestApp, ms: u64, remaining: Option<u32>) {
    let sim = app.sim("east").url();
    let mut rule = json!({"kind": "delay", "ms": ms, "function": "SubmitPayment"});
    if let Some(n) = remaining {
        rule["remaining"] = json!(n);
    }
    let r = app
        .http
        .post(format!("{sim}_sim/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "fault {}", r.status());
}

/// The history's `to` states in order.
fn path(p: &Value) -> Vec<String> {
    p["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_slow_payment_holds_one_dispatch_slot_and_the_others_go_on() {
    // Regression: the dispatcher sent its claims in rounds and claimed again
    // only when the whole round was answered, so one slow bank call held up
    // every payment queued behind it.
    let app = TestApp::spawn_with(Options {
        workers: true,
        bank_timeout_ms: Some(15_000),
        bank_limits: Some(BankLimits {
            concurrency: 16,
            queries_per_second: 1_000,
            ..BankLimits::default()
        }),
        ..Options::default()
    })
    .await;
    let token = app.token_for(&app.erp, None).await;
    settle_at_once(&app).await;
    delay_submissions(&app, 6_000, Some(1)).await;
    let (slow, slow_ref) = create(&app, &token, "slow", "10.00").await;
    wait_for(
        &app,
        &token,
        std::slice::from_ref(&slow),
        &["submitting"],
        Duration::from_secs(5),
    )
    .await;
    let mut others = Vec::new();
    let mut refs = vec![slow_ref];
    for i in 0..5 {
        let (id, r) = create(&app, &token, &format!("quick-{i}"), &format!("1.0{i}")).await;
        others.push(id);
        refs.push(r);
    }
    wait_for(&app, &token, &others, &["settled"], Duration::from_secs(4)).await;
    assert_eq!(
        status_of(&app, &token, &slow).await["status"],
        "submitting",
        "the others were sent while the slow one was still at the bank"
    );
    wait_for(
        &app,
        &token,
        std::slice::from_ref(&slow),
        &["settled"],
        Duration::from_secs(15),
    )
    .await;
    let executions = app.executions("east").await;
    for r in &refs {
        assert_eq!(executions.get(r), Some(&1), "{r} executed exactly once");
    }
    app.stop().await;
}

#[tokio::test]
async fn many_queued_payments_are_each_sent_once_and_a_batch_is_not_starved() {
    // Small claims and few slots: many refills of the pipeline while
    // payments keep arriving, each refill a new claim with new fencing tokens.
    let app = TestApp::spawn_with(Options {
        workers: true,
        bank_limits: Some(BankLimits {
            concurrency: 16,
            queries_per_second: 100_000,
            ..BankLimits::default()
        }),
        payments: Some(PaymentsConfig {
            max_in_flight: 4,
            claim_batch: 3,
            ..PaymentsConfig::default()
        }),
        ..Options::default()
    })
    .await;
    let token = app.token_for(&app.erp, None).await;
    settle_at_once(&app).await;
    // Every single payment takes 100 ms at the bank, so with 4 in flight the
    // dispatcher stays busy for seconds.
    delay_submissions(&app, 100, None).await;
    let n = 200;
    let mut ids = Vec::new();
    let mut refs = Vec::new();
    for i in 0..n {
        let (id, r) = create(&app, &token, &format!("many-{i}"), &format!("{}.00", i + 1)).await;
        ids.push(id);
        refs.push(r);
    }
    // A batch created while payments are still queued is sent before they
    // are all done: the chunk dispatcher gets its turn.
    let items: Vec<Value> = (0..3)
        .map(|i| {
            json!({
                "amount": "1.00",
                "creditor": {"name": format!("员工{i}"), "account": format!("62220200{i:08}"),
                             "bank_code": "102290000001", "type": "personal"},
                "remittance": "工资",
            })
        })
        .collect();
    let body = json!({
        "debtor_account_id": "east-1", "currency": "CNY", "kind": "payroll",
        "count": items.len(), "control_sum": "3.00", "items": items,
    });
    let resp = app
        .http
        .post(app.url("/v1/payment-batches"))
        .bearer_auth(&token)
        .header("idempotency-key", "batch-amid-payments")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (s, batch) = split(resp).await;
    assert_eq!(s, 201, "{batch}");
    let batch_id = batch["id"].as_str().unwrap();
    let started = Instant::now();
    loop {
        let (_, b) = app
            .get(&format!("/v1/payment-batches/{batch_id}"), &token)
            .await;
        if b["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] != "queued")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the batch was not sent: {b}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut waiting = 0;
    for status in ["queued", "submitting"] {
        let (_, list) = app
            .get(&format!("/v1/payments?status={status}"), &token)
            .await;
        waiting += list["items"].as_array().unwrap().len();
    }
    assert!(
        waiting > 0,
        "the batch went out while single payments were still being sent"
    );

    wait_for(&app, &token, &ids, &["settled"], Duration::from_secs(60)).await;
    let executions = app.executions("east").await;
    let twice: HashMap<&String, &u64> = executions.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "executed more than once: {twice:?}");
    for (id, r) in ids.iter().zip(&refs) {
        assert_eq!(executions.get(r), Some(&1), "{r} executed exactly once");
        let p = status_of(&app, &token, id).await;
        let sent = path(&p).iter().filter(|s| *s == "submitting").count();
        assert_eq!(sent, 1, "{id} went to submitting once: {:?}", path(&p));
    }
    app.stop().await;
}
