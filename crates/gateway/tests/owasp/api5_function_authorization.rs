//! OWASP API5:2023 Broken Function Level Authorization.
//!
//! Each role reaches only its functions, whatever route it tries: a viewer
//! cannot pay, a maker cannot approve, an approver cannot create payments,
//! only `admin` resolves what is in review, managing webhooks needs
//! `payments:write`, reading the audit trail and bank exchanges needs
//! `audit:read`; a token cannot be widened at the token endpoint. Refusals
//! are 403 `insufficient_scope` (or `user_token_required`) and change
//! nothing.

use gateway::config::Role;
use serde_json::{json, Value};

use crate::helpers::{batch_body, payment_body, split, user, Options, TestApp};

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options {
        users: vec![
            user("viewer", &[Role::Viewer]),
            user("maker", &[Role::Maker]),
            user("approver", &[Role::Approver]),
            user("admin1", &[Role::Admin]),
        ],
        approval_rules: vec![gateway::config::ApprovalRuleConfig {
            debtor_account: "*".to_owned(),
            currency: domain::Currency::CNY,
            above: "100.00".to_owned(),
            approvers: 1,
        }],
        ..Options::default()
    })
    .await
}

fn assert_forbidden(context: &str, (s, v): &(u16, Value)) {
    assert_eq!(*s, 403, "{context}: {v}");
    let code = v["code"].as_str().unwrap_or("");
    assert!(
        code == "insufficient_scope" || code == "user_token_required",
        "{context}: {v}"
    );
}

#[tokio::test]
async fn api5_each_role_reaches_only_its_functions() {
    let app = spawn().await;
    let viewer = app.login("viewer").await;
    let maker = app.login("maker").await;
    let approver = app.login("approver").await;
    let admin = app.login("admin1").await;
    let erp = app.token_for(&app.erp, None).await;
    let limited = app.token_for(&app.limited, None).await;
    let auditor = app.token_for(&app.auditor, None).await;

    // A payment waiting for approval, and one queued.
    let pending = app.pay(&maker, "east-1", "500.00").await;
    assert_eq!(pending["status"], "pending_approval", "{pending}");
    let pid = pending["id"].as_str().unwrap().to_owned();
    let queued = app.pay(&erp, "east-1", "5.00").await;
    let qid = queued["id"].as_str().unwrap().to_owned();

    let pay = payment_body("east-1", "1.00");
    let batch = batch_body("east-1", 2);
    let hook =
        json!({"url": "https://hooks.example.com/a", "event_types": ["payment.status_changed"]});
    let decision = json!({"comment": "ok"});
    let resolution = json!({"decision": "failed", "reason": "checked"});
    let approve = format!("/v1/payments/{pid}/approve");
    let decline = format!("/v1/payments/{pid}/decline");
    let resolve = format!("/v1/payments/{qid}/resolve");

    for (who, token) in [
        ("viewer", &viewer),
        ("approver", &approver),
        ("limited client", &limited),
        ("auditor", &auditor),
    ] {
        assert_forbidden(
            &format!("{who} pays"),
            &app.post("/v1/payments", token, &pay).await,
        );
        assert_forbidden(
            &format!("{who} makes a batch"),
            &app.post("/v1/payment-batches", token, &batch).await,
        );
        assert_forbidden(
            &format!("{who} registers a webhook"),
            &app.post("/v1/webhooks", token, &hook).await,
        );
        assert_forbidden(
            &format!("{who} lists webhooks"),
            &app.get("/v1/webhooks", token).await,
        );
    }
    for (who, token) in [
        ("viewer", &viewer),
        ("maker", &maker),
        ("limited client", &limited),
    ] {
        assert_forbidden(
            &format!("{who} approves"),
            &app.post(&approve, token, &decision).await,
        );
        assert_forbidden(
            &format!("{who} declines"),
            &app.post(&decline, token, &decision).await,
        );
    }
    // A client, even with every scope, is not a person: it cannot approve.
    assert_forbidden(
        "a client approves",
        &app.post(&approve, &erp, &decision).await,
    );
    for (who, token) in [
        ("viewer", &viewer),
        ("maker", &maker),
        ("approver", &approver),
    ] {
        assert_forbidden(
            &format!("{who} resolves"),
            &app.post(&resolve, token, &resolution).await,
        );
        assert_forbidden(
            &format!("{who} resolves a chunk"),
            &app.post(
                "/v1/payment-batches/bat_01ARZ3NDEKTSV4RRFFQ69G5FAV/chunks/1/resolve",
                token,
                &resolution,
            )
            .await,
        );
    }
    for (who, token) in [
        ("viewer", &viewer),
        ("maker", &maker),
        ("approver", &approver),
        (
            "erp without audit:read",
            &app.token_for(&app.erp, Some("accounts:read payments:write"))
                .await,
        ),
    ] {
        assert_forbidden(
            &format!("{who} reads the audit"),
            &app.get("/v1/audit", token).await,
        );
        assert_forbidden(
            &format!("{who} reads an exchange"),
            &app.get("/v1/bank-exchanges/1", token).await,
        );
    }
    // An auditor reads the audit but not the money.
    assert_eq!(app.get("/v1/audit", &auditor).await.0, 200);
    assert_eq!(app.get("/v1/audit", &admin).await.0, 200);
    assert_forbidden(
        "auditor reads payments",
        &app.get("/v1/payments", &auditor).await,
    );
    assert_forbidden(
        "auditor reads accounts",
        &app.get("/v1/accounts", &auditor).await,
    );
    // The viewer's only way in is reading.
    assert_eq!(app.get("/v1/accounts", &viewer).await.0, 200);

    // Nothing changed: the pending payment still waits, nothing else exists.
    let (_, p) = app.get(&format!("/v1/payments/{pid}"), &erp).await;
    assert_eq!(p["status"], "pending_approval", "{p}");
    let (_, list) = app.get("/v1/payments", &erp).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    // The right role does it (the control).
    let (s, v) = app.post(&approve, &approver, &decision).await;
    assert_eq!(s, 200, "{v}");
    app.stop().await;
}

#[tokio::test]
async fn api5_a_token_cannot_be_widened_at_the_token_endpoint() {
    let app = spawn().await;
    // A client asks for a scope it is not allowed.
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(app.limited.id, Some(&app.limited.secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "accounts:read admin"),
        ])
        .send()
        .await
        .unwrap();
    let (s, v) = split(resp).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_scope")),
        "{v}"
    );
    // A person asks for a scope their roles do not give.
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "maker"),
            ("password", "pw-maker"),
            ("scope", "payments:approve"),
        ])
        .send()
        .await
        .unwrap();
    let (s, v) = split(resp).await;
    assert_eq!(s, 400, "{v}");
    // A narrowed token stays narrow.
    let narrow = app.token_for(&app.erp, Some("accounts:read")).await;
    assert_forbidden(
        "a narrowed token pays",
        &app.post("/v1/payments", &narrow, &payment_body("east-1", "1.00"))
            .await,
    );
    app.stop().await;
}
