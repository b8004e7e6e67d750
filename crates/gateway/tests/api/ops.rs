use serde_json::Value;

use crate::helpers::{Options, TestApp};

#[tokio::test]
async fn operational_endpoints_answer_without_a_token() {
    let app = TestApp::spawn().await;
    let resp = app.get_raw("/healthz").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));

    let openapi: Value = app.get_raw("/openapi.json").await.json().await.unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/oauth/token",
        "/v1/banks",
        "/v1/accounts",
        "/v1/accounts/{id}",
        "/v1/accounts/{id}/balance",
        "/v1/accounts/{id}/balance:refresh",
        "/v1/balances",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} documented");
    }
    let docs = app.get_raw("/docs/").await;
    assert_eq!(docs.status(), 200);
    assert!(docs
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("swagger"));
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_sent_by_the_client_is_echoed() {
    let app = TestApp::spawn().await;
    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "erp-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "erp-req-42");
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_labelled_by_route_template_and_count_bank_calls() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    app.post("/v1/accounts/east-1/balance:refresh", &token)
        .await;
    app.get("/v1/accounts/east-1", &token).await;
    let text = app.get_raw("/metrics").await.text().await.unwrap();
    assert!(text.contains("route=\"/v1/accounts/{id}\""), "{text}");
    assert!(
        !text.contains("route=\"/v1/accounts/east-1\""),
        "raw paths never become labels"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "latency histogram"
    );
    // Other tests in this process share the recorder, so look for the line
    // of this bank's successful calls among the others.
    assert!(
        text.lines().any(|l| l.starts_with("bank_calls_total")
            && l.contains("bank=\"east\"")
            && l.contains("function=")
            && l.contains("outcome=\"ok\"")),
        "bank calls counted by bank, function and outcome: {text}"
    );
    assert!(
        text.contains("bank_call_duration_seconds_bucket"),
        "bank latency histogram"
    );
    app.stop().await;
}

#[tokio::test]
async fn closed_operational_endpoints_need_an_admin_token() {
    let app = TestApp::spawn_with(Options {
        closed_ops: true,
        ..Options::default()
    })
    .await;
    let reader = app.token_for(&app.erp, Some("accounts:read")).await;
    let admin = app.token_for(&app.erp, Some("admin")).await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
        assert_eq!(
            app.get_raw(path).await.status(),
            401,
            "{path} without a token"
        );
        let resp = app
            .http
            .get(app.url(path))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{path} without admin");
        let resp = app
            .http
            .get(app.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        // /readyz is 503 here (no snapshot yet): past the gate all the same.
        assert!(
            [200, 503].contains(&resp.status().as_u16()),
            "{path} with admin: {}",
            resp.status()
        );
    }
    app.stop().await;
}
