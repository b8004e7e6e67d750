//! OWASP API6:2023 Unrestricted Access to Sensitive Business Flows.
//!
//! The flows that move money hold against a caller who follows every rule
//! of the API but not of the business: a maker who is also an approver
//! cannot approve their own payment; an approval replayed (the same request
//! again) or given twice by one person counts once; a payment that was sent
//! cannot be cancelled (409); a `needs_review` resolution by one operator
//! is only a proposal, and that operator repeating it changes nothing.

use gateway::config::{ApprovalRuleConfig, Role};
use serde_json::{json, Value};

use crate::helpers::{split, user, Options, TestApp};

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options {
        users: vec![
            user("both", &[Role::Maker, Role::Approver]),
            user("checker1", &[Role::Approver]),
            user("checker2", &[Role::Approver]),
            user("ops1", &[Role::Admin]),
        ],
        approval_rules: vec![ApprovalRuleConfig {
            debtor_account: "*".to_owned(),
            currency: domain::Currency::CNY,
            above: "100.00".to_owned(),
            approvers: 2,
        }],
        ..Options::default()
    })
    .await
}

async fn decide(app: &TestApp, token: &str, path: &str, request_id: &str) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .header("x-request-id", request_id)
        .json(&json!({"comment": "checked"}))
        .send()
        .await
        .unwrap();
    split(resp).await
}

#[tokio::test]
async fn api6_self_approval_replay_and_double_approval_count_for_nothing() {
    let app = spawn().await;
    let both = app.login("both").await;
    let c1 = app.login("checker1").await;
    let c2 = app.login("checker2").await;
    let erp = app.token_for(&app.erp, None).await;
    let p = app.pay(&both, "east-1", "900.00").await;
    assert_eq!(p["status"], "pending_approval", "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let approve = format!("/v1/payments/{id}/approve");

    // The maker holds the approver role: still not their own approver.
    let (s, v) = decide(&app, &both, &approve, "self-1").await;
    assert_eq!((s, v["code"].as_str()), (403, Some("own_payment")), "{v}");
    // One approval, then the same request replayed, then again fresh.
    let (s, v) = decide(&app, &c1, &approve, "c1-1").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = decide(&app, &c1, &approve, "c1-1").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("already_decided")),
        "{v}"
    );
    let (s, v) = decide(&app, &c1, &approve, "c1-2").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("already_decided")),
        "{v}"
    );
    let (_, still) = app.get(&format!("/v1/payments/{id}"), &erp).await;
    assert_eq!(
        still["status"], "pending_approval",
        "one person counts once: {still}"
    );
    // Nothing reached the bank.
    app.drive_rounds(3).await;
    let reference = still["business_reference"].as_str().unwrap().to_owned();
    assert!(!app.executions("east").await.contains_key(&reference));
    // A second person completes it; a decision afterwards is refused.
    let (s, v) = decide(&app, &c2, &approve, "c2-1").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = decide(&app, &c2, &format!("/v1/payments/{id}/decline"), "c2-2").await;
    assert_eq!(s, 409, "{v}");
    let done = app.drive_to(&erp, &id, &["settled"]).await;
    assert_eq!(
        app.executions("east").await.get(&reference),
        Some(&1),
        "{done}"
    );
    app.stop().await;
}

#[tokio::test]
async fn api6_a_sent_payment_cannot_be_cancelled() {
    let app = spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let p = app.pay(&erp, "east-1", "6.00").await;
    let id = p["id"].as_str().unwrap().to_owned();
    let settled = app.drive_to(&erp, &id, &["settled"]).await;
    let (s, v) = app
        .post(&format!("/v1/payments/{id}/cancel"), &erp, &json!({}))
        .await;
    assert_eq!(s, 409, "{v}");
    let (_, after) = app.get(&format!("/v1/payments/{id}"), &erp).await;
    assert_eq!(after["status"], settled["status"]);
    // A payment in flight (accepted by the bank, not settled) neither: the
    // simulator holds the answer back while it executes.
    let sim = app.sim("east").url();
    let r = app
        .http
        .post(format!("{sim}_sim/faults"))
        .json(&json!({"kind": "http_error", "status": 500, "when": "after", "function": "SubmitPayment", "remaining": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let p = app.pay(&erp, "east-1", "6.01").await;
    let id = p["id"].as_str().unwrap().to_owned();
    app.drive_rounds(1).await;
    let (_, mid) = app.get(&format!("/v1/payments/{id}"), &erp).await;
    assert_ne!(mid["status"], "queued", "it was sent: {mid}");
    let (s, v) = app
        .post(&format!("/v1/payments/{id}/cancel"), &erp, &json!({}))
        .await;
    assert_eq!(s, 409, "{mid}: {v}");
    let done = app.drive_to(&erp, &id, &["settled"]).await;
    let reference = done["business_reference"].as_str().unwrap();
    assert_eq!(app.executions("east").await.get(reference), Some(&1));
    app.stop().await;
}

#[tokio::test]
async fn api6_one_operator_alone_cannot_resolve_a_payment_in_review() {
    let app = spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let ops1 = app.login("ops1").await;
    let p = app.pay(&erp, "east-1", "7.00").await;
    let id = p["id"].as_str().unwrap().to_owned();
    // Put it where a long-unknown payment ends up.
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
            store::PaymentChange {
                to_status: "needs_review".to_owned(),
                cause: "max_age_exceeded".to_owned(),
                bank_code: None,
                bank_message: None,
                bank_payment_id: None,
                mark_sent: true,
                next_attempt_at: None,
                release_lease: true,
            },
            store::Actor {
                name: "owasp".to_owned(),
                request_id: None,
            },
            store::NewAuditRecord {
                at: chrono::Utc::now(),
                actor: "owasp".to_owned(),
                action: "test.transition".to_owned(),
                object: format!("payment:{id}"),
                request_id: None,
                outcome: "needs_review".to_owned(),
                details: json!({}),
            },
        )
        .await
        .unwrap();
    let path = format!("/v1/payments/{id}/resolve");
    // The body cannot name a second operator: the field is not read.
    let body = json!({"decision": "failed", "reason": "checked by phone", "proposed_by": "user:ops2", "confirmed_by": "user:ops2"});
    let (s, v) = app.post(&path, &ops1, &body).await;
    assert_eq!(s, 202, "a proposal only: {v}");
    assert_eq!(v["status"], "needs_review", "{v}");
    assert_eq!(v["resolution_proposal"]["proposed_by"], "user:ops1", "{v}");
    // The same operator again, by another route to the same person.
    let (s, v) = app.post(&path, &ops1, &body).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("already_proposed")),
        "{v}"
    );
    let (_, after) = app.get(&format!("/v1/payments/{id}"), &erp).await;
    assert_eq!(after["status"], "needs_review", "{after}");
    // A second operator applies it (the control).
    let (s, v) = app.post(&path, &erp, &body).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    app.stop().await;
}
