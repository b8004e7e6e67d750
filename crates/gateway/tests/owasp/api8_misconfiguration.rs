//! OWASP API8:2023 Security Misconfiguration.
//!
//! Every response, success or error, carries the security headers and no
//! server banner; no 4xx or 5xx body shows a stack trace, panic text, an
//! internal path or a library's own error (each is problem+json with a
//! code); CORS is off unless configured (no `Access-Control-*` header, even
//! to a preflight); unknown routes and methods are problem+json.

use reqwest::Method;

use crate::helpers::{assert_no_internals, TestApp};

const HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

fn assert_hardened(context: &str, resp: &reqwest::Response) {
    let h = resp.headers();
    for (name, want) in HEADERS {
        assert_eq!(
            h.get(*name).and_then(|v| v.to_str().ok()),
            Some(*want),
            "{context}: {name}"
        );
    }
    let csp = h
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(csp.contains("default-src 'none'"), "{context}: CSP {csp:?}");
    for banner in ["server", "x-powered-by", "strict-transport-security"] {
        assert!(
            h.get(banner).is_none(),
            "{context}: {banner} sent over plain HTTP"
        );
    }
    for name in h.keys() {
        assert!(
            !name.as_str().starts_with("access-control-"),
            "{context}: CORS header {name} without CORS configured"
        );
    }
}

/// Method, path, with a token, content type, body, expected status.
type Case = (Method, String, bool, &'static str, Vec<u8>, u16);

#[tokio::test]
async fn api8_every_response_is_hardened_and_no_error_shows_internals() {
    let app = TestApp::spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let origin = "https://evil.example";
    let pid_like = "pay_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let cases: Vec<Case> = vec![
        (Method::GET, "/v1/accounts".into(), true, "", vec![], 200),
        (Method::GET, "/healthz".into(), false, "", vec![], 200),
        (Method::GET, "/openapi.json".into(), false, "", vec![], 200),
        (Method::GET, "/v1/accounts".into(), false, "", vec![], 401),
        (Method::GET, format!("/v1/payments/{pid_like}"), true, "", vec![], 404),
        (Method::GET, "/v1/payments/..%2F..%2Fetc%2Fpasswd".into(), true, "", vec![], 404),
        (Method::GET, "/v1/payments/%00%ff%fe".into(), true, "", vec![], 404),
        (Method::GET, format!("/v1/payments/{}", "9".repeat(3000)), true, "", vec![], 404),
        (Method::GET, "/v1/bank-exchanges/-1".into(), true, "", vec![], 404),
        (Method::GET, "/v1/bank-exchanges/99999999999999999999999".into(), true, "", vec![], 404),
        (Method::GET, "/v1/payments?limit=-1".into(), true, "", vec![], 400),
        (Method::GET, "/v1/payments?limit=%ff".into(), true, "", vec![], 400),
        (Method::GET, "/v1/payments?cursor=%00".into(), true, "", vec![], 400),
        (Method::GET, "/v1/audit?from=yesterday".into(), true, "", vec![], 400),
        (Method::GET, "/v1/audit?colour=red".into(), true, "", vec![], 400),
        (Method::GET, "/no/such/route".into(), false, "", vec![], 404),
        (Method::DELETE, "/v1/accounts".into(), true, "", vec![], 405),
        (Method::PUT, "/v1/payments".into(), true, "application/json", b"{}".to_vec(), 405),
        (Method::TRACE, "/v1/payments".into(), true, "", vec![], 405),
        (Method::POST, "/v1/payments".into(), true, "application/json", b"{not json".to_vec(), 400),
        (Method::POST, "/v1/payments".into(), true, "application/json", vec![0xff, 0xfe, 0x00, 0x7b], 400),
        (Method::POST, "/v1/payments".into(), true, "application/json", b"[1,2,3]".to_vec(), 422),
        (Method::POST, "/v1/payments".into(), true, "application/json", b"{\"amount\": 1e400}".to_vec(), 400),
        (Method::POST, "/v1/payments".into(), true, "text/plain", b"amount=1".to_vec(), 415),
        (Method::POST, "/v1/payments".into(), true, "application/json", br#"{"debtor_account_id":"east-1","amount":"NaN","currency":"CNY","creditor":{"name":"x","account":"6222020000001234","bank_code":"102290000001","type":"corporate"},"remittance":"r"}"#.to_vec(), 422),
        (Method::POST, "/v1/payments".into(), true, "application/json", br#"{"debtor_account_id":"east-1","amount":"99999999999999999999999999.99","currency":"CNY","creditor":{"name":"x","account":"6222020000001234","bank_code":"102290000001","type":"corporate"},"remittance":"r"}"#.to_vec(), 422),
        (Method::POST, "/v1/payment-batches".into(), true, "application/json", b"{\"items\": {}}".to_vec(), 422),
        (Method::POST, "/v1/webhooks".into(), true, "application/json", b"\"a string\"".to_vec(), 422),
        (Method::POST, "/oauth/token".into(), false, "application/x-www-form-urlencoded", b"grant_type=client_credentials&client_id=erp&client_secret=wrong".to_vec(), 401),
        (Method::POST, "/oauth/token".into(), false, "application/x-www-form-urlencoded", vec![0xff, 0x3d, 0xfe], 400),
        (Method::POST, "/oauth/token".into(), false, "application/json", b"{}".to_vec(), 400),
    ];
    for (method, path, auth, ctype, body, want) in cases {
        let mut req = app
            .http
            .request(method.clone(), app.url(&path))
            .header("origin", origin);
        if auth {
            req = req.bearer_auth(&erp);
        }
        if !ctype.is_empty() {
            req = req.header("content-type", ctype);
        }
        if method == Method::POST || method == Method::PUT {
            req = req.header("idempotency-key", format!("k-{}", uuid::Uuid::new_v4()));
        }
        let resp = req.body(body).send().await.unwrap();
        let context = format!("{method} {}", &path[..path.len().min(80)]);
        let status = resp.status().as_u16();
        assert_hardened(&context, &resp);
        let ctype_got = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp.text().await.unwrap();
        if want >= 400 {
            assert!(
                (400..500).contains(&status),
                "{context}: expected a 4xx like {want}, got {status}: {text}"
            );
            assert_eq!(ctype_got, "application/problem+json", "{context}: {text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(
                v["code"].is_string() && v["detail"].is_string(),
                "{context}: {v}"
            );
            assert_no_internals(&context, &text);
        } else {
            assert_eq!(status, want, "{context}: {text}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn api8_cors_is_off_by_default_even_for_a_preflight() {
    let app = TestApp::spawn().await;
    let resp = app
        .http
        .request(Method::OPTIONS, app.url("/v1/payments"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_hardened("preflight", &resp);
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("origin", "null")
        .send()
        .await
        .unwrap();
    assert_hardened("null origin", &resp);
    app.stop().await;
}
