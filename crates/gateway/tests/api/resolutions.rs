//! Four-eyes resolutions of `needs_review` (docs/approvals.md): the first
//! operator's resolution is a proposal (202, nothing changes), the same
//! operator repeating it is refused, a second operator with the same decision
//! applies it; a different decision replaces the proposal; only `admin` may
//! resolve, only what is in review, and every step is audited. For single
//! payments and for batch chunks.

use domain::UserId;
use gateway::config::{Role, UserConfig};
use serde_json::{json, Value};

use crate::helpers::{split, Options, TestApp};

fn admin(id: &str) -> UserConfig {
    UserConfig {
        id: UserId::parse(id).unwrap(),
        name: String::new(),
        roles: vec![Role::Admin],
        accounts: vec!["*".to_owned()],
        password_hash: Some(crypto::password::hash_password(&format!("pw-{id}")).unwrap()),
        totp_secret: None,
    }
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options {
        users: vec![admin("ops2"), admin("ops3")],
        ..Options::default()
    })
    .await
}

async fn login(app: &TestApp, id: &str) -> String {
    let (status, body) = app.login(id, &format!("pw-{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    split(resp).await
}

fn resolution(decision: &str, reason: &str) -> Value {
    json!({ "decision": decision, "reason": reason })
}

fn payment_body() -> Value {
    json!({
        "debtor_account_id": "east-1",
        "amount": "7.00",
        "currency": "CNY",
        "creditor": {
            "name": "上海测试贸易有限公司",
            "account": "6222020000001234",
            "bank_code": "102290000001",
            "type": "corporate"
        },
        "remittance": "设备款",
    })
}

fn test_audit(object: String, outcome: &str) -> store::NewAuditRecord {
    store::NewAuditRecord {
        at: chrono::Utc::now(),
        actor: "test".to_owned(),
        action: "test.transition".to_owned(),
        object,
        request_id: None,
        outcome: outcome.to_owned(),
        details: json!({}),
    }
}

fn to_review() -> store::PaymentChange {
    store::PaymentChange {
        to_status: "needs_review".to_owned(),
        cause: "max_age_exceeded".to_owned(),
        bank_code: None,
        bank_message: None,
        bank_payment_id: None,
        mark_sent: true,
        next_attempt_at: None,
        release_lease: true,
    }
}

fn tester() -> store::Actor {
    store::Actor {
        name: "test".to_owned(),
        request_id: None,
    }
}

#[tokio::test]
async fn a_payment_in_review_is_resolved_only_by_two_different_operators() {
    let app = spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let writer = app.token_for(&app.erp, Some("payments:write")).await;
    let ops2 = login(&app, "ops2").await;
    let ops3 = login(&app, "ops3").await;
    let resp = app
        .http
        .post(app.url("/v1/payments"))
        .bearer_auth(&erp)
        .header("idempotency-key", "r-1")
        .json(&payment_body())
        .send()
        .await
        .unwrap();
    let (s, created) = split(resp).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/payments/{id}/resolve");
    // Resolving is only for what is in review.
    let (s, v) = post(&app, &erp, &path, resolution("failed", "checked by phone")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("invalid_transition")),
        "{v}"
    );

    // Put it where a long-unknown payment ends up (the path there takes the
    // bank's maximum age; the store is driven directly to save that time).
    let pid = domain::PaymentId::parse(&id).unwrap();
    let stored = app.state.store.get_payment(&pid).await.unwrap().unwrap();
    app.state
        .store
        .transition_payment(
            &pid,
            store::TransitionGuard {
                from_status: "queued".to_owned(),
                fencing_token: Some(stored.fencing_token),
            },
            to_review(),
            tester(),
            test_audit(format!("payment:{id}"), "needs_review"),
        )
        .await
        .unwrap();

    let reason = "statement shows no debit; confirmed with the bank";
    let (s, v) = post(&app, &writer, &path, resolution("failed", reason)).await;
    assert_eq!(s, 403, "admin only: {v}");
    let (s, v) = post(&app, &erp, &path, resolution("settled", reason)).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (422, Some("body.decision")),
        "{v}"
    );
    let (s, v) = post(&app, &erp, &path, resolution("failed", "  ")).await;
    assert_eq!((s, v["field"].as_str()), (422, Some("body.reason")), "{v}");

    // The first operator proposes: nothing changes yet.
    let (s, v) = post(&app, &erp, &path, resolution("failed", reason)).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "needs_review");
    assert_eq!(v["resolution_proposal"]["decision"], "failed");
    assert_eq!(v["resolution_proposal"]["proposed_by"], "client:erp");
    let (_, shown) = app.get(&format!("/v1/payments/{id}"), &erp).await;
    assert_eq!(shown["resolution_proposal"]["reason"], reason, "{shown}");
    // Repeating it does not make two people.
    let (s, v) = post(&app, &erp, &path, resolution("failed", reason)).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("already_proposed")),
        "{v}"
    );

    // A second operator who disagrees replaces the proposal; the first one,
    // agreeing with that, is the second pair of eyes.
    let (s, v) = post(
        &app,
        &ops2,
        &path,
        resolution("queued", "bank says it never arrived"),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["resolution_proposal"]["proposed_by"], "user:ops2");
    assert_eq!(v["resolution_proposal"]["decision"], "queued");
    let (s, v) = post(&app, &ops3, &path, resolution("failed", reason)).await;
    assert_eq!(s, 202, "another disagreement replaces again: {v}");
    let (s, v) = post(
        &app,
        &erp,
        &path,
        resolution("failed", "agreed after the call"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "failed");
    assert!(v.get("resolution_proposal").is_none(), "{v}");
    let last = v["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["cause"], "operator_decision");
    assert_eq!(last["actor"], "client:erp");
    let message = last["bank_message"].as_str().unwrap();
    assert!(
        message.contains("user:ops3") && message.contains("agreed after the call"),
        "{message}"
    );

    // Every step is in the audit log: the proposals, the refusal, the application.
    let auditor = app.token_for(&app.auditor, None).await;
    let (_, audit) = app
        .get(
            &format!("/v1/audit?object=payment:{id}&action=payment.resolve"),
            &auditor,
        )
        .await;
    let outcomes: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "proposed").count(),
        3,
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&"refused") && outcomes.contains(&"failed"),
        "{outcomes:?}"
    );
    let applied = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["outcome"] == "failed")
        .unwrap();
    assert_eq!(applied["details"]["proposed_by"], "user:ops3", "{applied}");
    assert_eq!(
        applied["details"]["confirmed_by"], "client:erp",
        "{applied}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_chunk_in_review_is_resolved_only_by_two_different_operators() {
    let app = spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let ops2 = login(&app, "ops2").await;
    let items: Vec<Value> = (0..3)
        .map(|i| {
            json!({
                "amount": "10.00",
                "creditor": {"name": "张三", "account": format!("622202123456789{i}"), "bank_code": "102290000001", "type": "personal"},
                "remittance": "十一月工资",
            })
        })
        .collect();
    let resp = app
        .http
        .post(app.url("/v1/payment-batches"))
        .bearer_auth(&erp)
        .header("idempotency-key", "b-1")
        .json(&json!({
            "debtor_account_id": "east-1", "currency": "CNY", "kind": "payroll",
            "count": 3, "control_sum": "30.00", "items": items,
        }))
        .send()
        .await
        .unwrap();
    let (s, created) = split(resp).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let bid = domain::BatchId::parse(&id).unwrap();
    let path = format!("/v1/payment-batches/{id}/chunks/1/resolve");
    let (s, v) = post(&app, &erp, &path, resolution("failed", "checked")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("invalid_transition")),
        "{v}"
    );
    let (s, v) = post(
        &app,
        &erp,
        &format!("/v1/payment-batches/{id}/chunks/9/resolve"),
        resolution("failed", "checked"),
    )
    .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (404, Some("path.chunk_no")),
        "{v}"
    );

    // Where a long-unknown chunk ends up, its open items with it.
    let batch = app.state.store.get_batch(&bid).await.unwrap().unwrap();
    app.state
        .store
        .transition_chunk(
            &bid,
            1,
            store::TransitionGuard {
                from_status: "queued".to_owned(),
                fencing_token: Some(batch.chunks[0].fencing_token),
            },
            to_review(),
            store::ItemUpdate::AllOpen {
                status: domain::ItemStatus::NeedsReview,
                bank_code: None,
                bank_message: None,
            },
            tester(),
            test_audit(format!("payment_batch:{id}"), "needs_review"),
        )
        .await
        .unwrap();

    let reason = "the bank's file shows none of the three";
    let (s, v) = post(&app, &erp, &path, resolution("failed", reason)).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "needs_review", "{v}");
    let (_, shown) = app.get(&format!("/v1/payment-batches/{id}"), &erp).await;
    assert_eq!(
        shown["chunks"][0]["resolution_proposal"]["proposed_by"], "client:erp",
        "{shown}"
    );
    let (s, v) = post(&app, &erp, &path, resolution("failed", reason)).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("already_proposed")),
        "{v}"
    );
    let (s, v) = post(
        &app,
        &ops2,
        &path,
        resolution("failed", "seen in the bank's file too"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["chunks"][0]["status"], "failed");
    assert_eq!(v["items_by_status"], json!({"failed": 3}), "{v}");
    let (_, shown) = app.get(&format!("/v1/payment-batches/{id}"), &erp).await;
    let item = &shown["items"][0];
    assert_eq!(item["status"], "failed", "{item}");
    assert!(
        item["bank_message"].as_str().unwrap().contains("user:ops2"),
        "{item}"
    );
    // Nothing reached the bank.
    assert!(app.executions("east").await.is_empty());
    app.stop().await;
}
