//! Bad input and failing banks: every answer is a clear problem+json (the
//! `split` helper asserts the content type, `code`, `detail`, and that no
//! answer is a 500), and a failed refresh stores nothing.

use std::time::{Duration, Instant};

use banksim::{Fault, FaultRule};

use crate::helpers::{Options, TestApp};

async fn refresh_fails_with(
    app: &TestApp,
    fault: Fault,
    status: u16,
    code: &str,
) -> serde_json::Value {
    let token = app.token_for(&app.erp, None).await;
    app.sim("east").faults().clear();
    app.sim("east").faults().inject(FaultRule {
        fault,
        function: None,
        remaining: Some(1),
    });
    let (s, body) = app
        .post("/v1/accounts/east-2/balance:refresh", &token)
        .await;
    assert_eq!(s, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["bank_id"], "east", "{body}");
    // Nothing was stored: the account still has no snapshot.
    let (s, body2) = app.get("/v1/accounts/east-2/balance", &token).await;
    assert_eq!(s, 503, "no partial write: {body2}");
    body
}

#[tokio::test]
async fn malformed_truncated_garbled_and_wrongly_encoded_bank_xml_is_a_502() {
    let app = TestApp::spawn().await;
    for fault in [Fault::Truncated, Fault::Garbled, Fault::WrongEncoding] {
        refresh_fails_with(&app, fault, 502, "bank_bad_response").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bank_error_code_is_a_502_that_keeps_the_banks_code_and_message() {
    let app = TestApp::spawn().await;
    let body = refresh_fails_with(
        &app,
        Fault::ErrorCode {
            code: "NO_PERMISSION".to_owned(),
            message: "无查询权限".to_owned(),
        },
        502,
        "bank_rejected",
    )
    .await;
    assert_eq!(body["bank_code"], "NO_PERMISSION");
    assert_eq!(body["bank_message"], "无查询权限");
    app.stop().await;
}

#[tokio::test]
async fn a_bank_that_times_out_is_a_504_within_the_configured_bound() {
    let app = TestApp::spawn_with(Options {
        bank_timeout_ms: Some(400),
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    refresh_fails_with(&app, Fault::Delay { ms: 3_000 }, 504, "bank_timeout").await;
    assert!(started.elapsed() < Duration::from_secs(3), "never a hang");
    app.stop().await;
}

#[tokio::test]
async fn a_bank_answering_http_500_is_a_502_with_the_status_kept() {
    let app = TestApp::spawn().await;
    let body = refresh_fails_with(
        &app,
        Fault::HttpStatus { status: 500 },
        502,
        "bank_bad_response",
    )
    .await;
    assert_eq!(body["bank_code"], "HTTP 500");
    app.stop().await;
}

#[tokio::test]
async fn a_bank_that_refuses_connections_is_a_503_and_shows_in_health() {
    let app = TestApp::spawn_with(Options {
        dead_bank: true,
        ..Options::default()
    })
    .await;
    let token = app.token_for(&app.erp, None).await;
    let (status, body) = app
        .post("/v1/accounts/dead-1/balance:refresh", &token)
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "bank_unavailable");
    assert_eq!(body["bank_id"], "dead");
    let (_, banks) = app.get("/v1/banks", &token).await;
    let dead = banks["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == "dead")
        .unwrap();
    assert_eq!(dead["health"], "down");
    assert_eq!(dead["family"], "cn-xml");
    assert!(dead["capabilities"]
        .as_array()
        .unwrap()
        .contains(&"balances".into()));
    app.stop().await;
}

#[tokio::test]
async fn bad_query_parameters_name_the_field() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    for (path, field) in [
        ("/v1/accounts?limit=abc", "query.limit"),
        ("/v1/accounts?limit=0", "query.limit"),
        ("/v1/accounts?limit=100000", "query.limit"),
        ("/v1/accounts?cursor=%%%", "query.cursor"),
        ("/v1/accounts?cursor=bm90LWEtY3Vyc29y", "query.cursor"),
    ] {
        let (status, body) = app.get(path, &token).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_json() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let (status, body) = app.get("/v1/nothing-here", &token).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "route_not_found");
    let (status, body) = app.post("/v1/balances", &token).await;
    assert_eq!(status, 405);
    assert_eq!(body["code"], "method_not_allowed");
    // An id that is not even a valid id is the same 404 as a missing one.
    let (status, body) = app.get("/v1/accounts/%E4%B8%AD%20x", &token).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "account_not_found");
    app.stop().await;
}
