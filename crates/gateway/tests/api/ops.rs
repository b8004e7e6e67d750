use serde_json::Value;

use crate::helpers::TestApp;

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
