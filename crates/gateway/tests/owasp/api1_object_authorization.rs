//! OWASP API1:2023 Broken Object Level Authorization.
//!
//! A caller names another tenant's object by its id — an account, a
//! payment, a batch, a webhook, a bank exchange — on every route that takes
//! one. The answer must be the 404 a missing object gets (same status, same
//! code), never a 403 that confirms the object exists, and lists must not
//! carry it.

use serde_json::{json, Value};

use crate::helpers::{batch_body, TestApp};

const MISSING_PAYMENT: &str = "pay_01ARZ3NDEKTSV4RRFFQ69G5FAV";
const MISSING_BATCH: &str = "bat_01ARZ3NDEKTSV4RRFFQ69G5FAV";
const MISSING_WEBHOOK: &str = "whk_0000000000000000000000000000000a";

/// Calls `method path` as `token` and returns status and code.
async fn call(app: &TestApp, token: &str, method: &str, path: &str) -> (u16, String) {
    let (s, v) = match method {
        "GET" => app.get(path, token).await,
        "DELETE" => app.delete(path, token).await,
        _ => {
            let body = if path.ends_with("/resolve") {
                json!({"decision": "failed", "reason": "checked by phone"})
            } else if path.ends_with("/approve") || path.ends_with("/decline") {
                json!({"comment": "checked"})
            } else {
                json!({})
            };
            app.post(path, token, &body).await
        }
    };
    (s, v["code"].as_str().unwrap_or("").to_owned())
}

/// Every `(method, path)` is answered to `intruder` exactly as the same
/// route with `missing` in place of `id` is: a 404 with the same code.
async fn assert_hidden(
    app: &TestApp,
    intruder: &str,
    routes: &[(&str, String)],
    id: &str,
    missing: &str,
) {
    for (method, path) in routes {
        let (s, code) = call(app, intruder, method, path).await;
        let (ms, mcode) = call(app, intruder, method, &path.replace(id, missing)).await;
        assert_eq!(
            s, 404,
            "{method} {path}: another tenant's object must be a 404"
        );
        assert_eq!(
            (s, &code),
            (ms, &mcode),
            "{method} {path}: must look exactly like a missing one"
        );
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn api1_another_tenants_account_is_a_404_on_every_account_route() {
    let app = TestApp::spawn().await;
    // `other` may see south-1 only; east-1 exists.
    let other = app.token_for(&app.other, None).await;
    let routes: Vec<(&str, String)> = [
        ("GET", ""),
        ("GET", "/balance"),
        ("POST", "/balance:refresh"),
        ("GET", "/transactions"),
        ("POST", "/transactions:refresh"),
        ("GET", "/continuity-breaks"),
    ]
    .iter()
    .map(|(m, suffix)| (*m, format!("/v1/accounts/east-1{suffix}")))
    .collect();
    assert_hidden(&app, &other, &routes, "east-1", "nowhere-9").await;
    // Its own account answers (the control).
    let (s, v) = app.get("/v1/accounts/south-1", &other).await;
    assert_eq!(s, 200, "{v}");
    let (_, list) = app.get("/v1/accounts", &other).await;
    assert_eq!(ids(&list), vec!["south-1"]);
    let (_, balances) = app.get("/v1/balances", &other).await;
    assert!(!balances.to_string().contains("east-1"), "{balances}");
    // A payment from an account it cannot see is refused like an unknown one.
    let (s, v) = app
        .post(
            "/v1/payments",
            &other,
            &crate::helpers::payment_body("east-1", "1.00"),
        )
        .await;
    let (ms, mv) = app
        .post(
            "/v1/payments",
            &other,
            &crate::helpers::payment_body("nowhere-9", "1.00"),
        )
        .await;
    assert_eq!((s, &v["code"]), (ms, &mv["code"]), "{v} / {mv}");
    assert!(s == 404 || s == 422, "{s} {v}");
    app.stop().await;
}

#[tokio::test]
async fn api1_another_tenants_payment_and_batch_are_404_on_every_route() {
    let app = TestApp::spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let other = app.token_for(&app.other, None).await;
    let payment = app.pay(&erp, "east-1", "3.00").await;
    let pid = payment["id"].as_str().unwrap().to_owned();
    let routes: Vec<(&str, String)> = ["", "/cancel", "/approve", "/decline", "/resolve"]
        .iter()
        .map(|suffix| {
            let method = if suffix.is_empty() { "GET" } else { "POST" };
            (method, format!("/v1/payments/{pid}{suffix}"))
        })
        .collect();
    assert_hidden(&app, &other, &routes, &pid, MISSING_PAYMENT).await;
    let (_, list) = app.get("/v1/payments", &other).await;
    assert!(!ids(&list).contains(&pid), "{list}");
    // Nothing the intruder sent changed it.
    let (_, still) = app.get(&format!("/v1/payments/{pid}"), &erp).await;
    assert_eq!(still["status"], "queued", "{still}");

    let (s, batch) = app
        .post("/v1/payment-batches", &erp, &batch_body("east-1", 2))
        .await;
    assert_eq!(s, 201, "{batch}");
    let bid = batch["id"].as_str().unwrap().to_owned();
    let routes: Vec<(&str, String)> = [
        ("GET", String::new()),
        ("POST", "/cancel".to_owned()),
        ("POST", "/approve".to_owned()),
        ("POST", "/decline".to_owned()),
        ("POST", "/chunks/1/resolve".to_owned()),
    ]
    .into_iter()
    .map(|(m, suffix)| (m, format!("/v1/payment-batches/{bid}{suffix}")))
    .collect();
    assert_hidden(&app, &other, &routes, &bid, MISSING_BATCH).await;
    let (_, list) = app.get("/v1/payment-batches", &other).await;
    assert!(!ids(&list).contains(&bid), "{list}");
    let (_, still) = app.get(&format!("/v1/payment-batches/{bid}"), &erp).await;
    assert_ne!(still["status"], "cancelled", "{still}");
    app.stop().await;
}

#[tokio::test]
async fn api1_another_clients_webhook_is_a_404_on_every_route() {
    let app = TestApp::spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let other = app.token_for(&app.other, None).await;
    let (s, hook) = app
        .post(
            "/v1/webhooks",
            &erp,
            &json!({"url": "https://hooks.example.com/erp", "event_types": ["payment.status_changed"]}),
        )
        .await;
    assert_eq!(s, 201, "{hook}");
    let wid = hook["id"].as_str().unwrap().to_owned();
    let routes: Vec<(&str, String)> = vec![
        ("GET", format!("/v1/webhooks/{wid}")),
        ("GET", format!("/v1/webhooks/{wid}/deliveries")),
        ("POST", format!("/v1/webhooks/{wid}/redrive")),
        (
            "POST",
            format!("/v1/webhooks/{wid}/deliveries/whd_1/redrive"),
        ),
        ("DELETE", format!("/v1/webhooks/{wid}")),
    ];
    assert_hidden(&app, &other, &routes, &wid, MISSING_WEBHOOK).await;
    let (_, list) = app.get("/v1/webhooks", &other).await;
    assert!(!ids(&list).contains(&wid), "{list}");
    // The DELETE did nothing: the owner still has it.
    let (s, _) = app.get(&format!("/v1/webhooks/{wid}"), &erp).await;
    assert_eq!(s, 200);
    app.stop().await;
}

#[tokio::test]
async fn api1_a_bank_exchange_about_an_account_the_auditor_may_not_see_is_a_404() {
    let app = TestApp::spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let payment = app.pay(&erp, "east-1", "4.00").await;
    let pid = payment["id"].as_str().unwrap().to_owned();
    app.drive_to(&erp, &pid, &["settled"]).await;
    let records = app
        .state
        .store
        .list_audit(&store::AuditQuery {
            action: Some("bank.exchange".to_owned()),
            object: Some(format!("payment:{pid}")),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let exchange_id = records
        .iter()
        .find_map(|r| r.details["exchange_id"].as_i64())
        .expect("the payment's exchange is audited");
    let path = format!("/v1/bank-exchanges/{exchange_id}");
    // The all-accounts auditor reads it (the control).
    let auditor = app.token_for(&app.auditor, None).await;
    let (s, v) = app.get(&path, &auditor).await;
    assert_eq!(s, 200, "{v}");
    // An auditor entitled to south-1 only gets what a missing id gets.
    let narrow = app.token_for(&app.narrow_auditor, None).await;
    let (s, v) = app.get(&path, &narrow).await;
    let (ms, mv) = app.get("/v1/bank-exchanges/999999999", &narrow).await;
    assert_eq!(s, 404, "{v}");
    assert_eq!((s, &v["code"]), (ms, &mv["code"]));
    // Audit records have no by-id route to probe.
    let (s, v) = app
        .get(&format!("/v1/audit/{}", records[0].id), &auditor)
        .await;
    assert_eq!((s, v["code"].as_str()), (404, Some("route_not_found")));
    app.stop().await;
}
