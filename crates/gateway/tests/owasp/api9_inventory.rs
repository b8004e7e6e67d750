//! OWASP API9:2023 Improper Inventory Management.
//!
//! The inventory is `/openapi.json`. Every operation it lists is answered
//! by the router (never `route_not_found` or `method_not_allowed`); every
//! route the router declares (read from the router's source, so a new
//! route cannot slip by) is in it; and the paths an attacker tries first —
//! admin and debug pages, other API versions, the simulator's control API,
//! framework defaults, dotfiles — are 404 `route_not_found` on the gateway.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// The router's source: `(path, method)` of every `.route(...)`.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let src = include_str!("../../src/lib.rs");
    let start = src.find("pub fn router(").expect("the router function");
    let body = &src[start..];
    let end = body
        .find(".fallback(")
        .expect("the fallback ends the routes");
    let body = &body[..end];
    let mut out = BTreeSet::new();
    for chunk in body.split(".route(").skip(1) {
        let path = chunk
            .split('"')
            .nth(1)
            .expect("a route's path literal")
            .to_owned();
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = [format!("{method}("), format!(".{method}(")];
            let declares = chunk
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '(' || c == '.'))
                .any(|word| {
                    called
                        .iter()
                        .any(|c| word.starts_with(c.as_str()) || word == c.as_str())
                });
            if declares {
                out.insert((path.clone(), method.to_owned()));
            }
        }
    }
    out
}

fn routes_in_openapi(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.insert((path.clone(), method.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn api9_the_router_and_openapi_list_the_same_operations_and_each_is_answered() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let documented = routes_in_openapi(&doc);
    let declared = routes_in_source();
    assert!(
        declared.len() >= 30,
        "the source parse found the routes: {declared:?}"
    );
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from /openapi.json: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&declared).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    // Probe every documented operation: the router answers it.
    let erp = app.token_for(&app.erp, None).await;
    for (path, method) in &documented {
        let concrete = path
            .replace("{id}", "east-1")
            .replace("{chunk_no}", "1")
            .replace("{delivery_id}", "whd_1");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = app
            .http
            .request(method.clone(), app.url(&concrete))
            .bearer_auth(&erp);
        if method == Method::POST {
            req = req
                .header("idempotency-key", format!("k-{}", uuid::Uuid::new_v4()))
                .json(&json!({}));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        assert!(
            code != "route_not_found" && code != "method_not_allowed" && status != 405,
            "{method} {concrete}: the documented operation is not routed: {status} {text}"
        );
        assert_ne!(status, 500, "{method} {concrete}: {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn api9_undocumented_paths_are_not_there() {
    let app = TestApp::spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let probes = [
        "/admin",
        "/admin/",
        "/admin/users",
        "/debug",
        "/debug/pprof",
        "/debug/vars",
        "/internal",
        "/v2/payments",
        "/v2/accounts",
        "/v0/accounts",
        "/v1",
        "/v1/",
        "/api/v1/accounts",
        "/v1/users",
        "/v1/clients",
        "/v1/config",
        "/v1/keys",
        "/v1/secrets",
        "/v1/audit/verify",
        "/v1/bank-exchanges",
        "/_sim/executions",
        "/_sim/faults",
        "/_sim/payments/config",
        "/.env",
        "/.git/config",
        "/actuator",
        "/actuator/health",
        "/swagger.json",
        "/swagger-ui.html",
        "/graphql",
        "/server-status",
        "/console",
        "/metrics/json",
        "/v1/payments/pay_01ARZ3NDEKTSV4RRFFQ69G5FAV/execute",
        "/v1/payments/pay_01ARZ3NDEKTSV4RRFFQ69G5FAV/history",
        "/v1/accounts/east-1/balance:set",
    ];
    for path in probes {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            let resp = app
                .http
                .request(method.clone(), app.url(path))
                .bearer_auth(&erp)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_eq!(
                (status, v["code"].as_str()),
                (404, Some("route_not_found")),
                "{method} {path}: {text}"
            );
        }
    }
    app.stop().await;
}
