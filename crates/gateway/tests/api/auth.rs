use chrono::Utc;
use gateway::auth::{testing, Claims};
use serde_json::Value;

use crate::helpers::{split, TestApp};

fn claims(app: &TestApp, sub: &str) -> Claims {
    let now = Utc::now().timestamp();
    Claims {
        iss: app.config.auth.issuer.clone(),
        sub: sub.to_owned(),
        aud: app.config.auth.audience.clone(),
        exp: now + 300,
        nbf: now - 5,
        iat: now - 5,
        jti: "test-jti".to_owned(),
        scope: "accounts:read".to_owned(),
    }
}

fn signing_key(app: &TestApp) -> crypto::Ed25519Key {
    let path = app.config.data_path(&app.config.auth.signing_key_file);
    crypto::Ed25519Key::from_pkcs8_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn status_with(app: &TestApp, token: Option<&str>) -> (u16, Value) {
    let mut req = app.http.get(app.url("/v1/accounts"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    split(req.send().await.unwrap()).await
}

#[tokio::test]
async fn a_token_from_the_token_endpoint_opens_the_api() {
    let app = TestApp::spawn().await;
    // client_secret_post
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.erp.id),
            ("client_secret", app.erp.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() <= 900);
    // No scope asked: every scope of the client.
    let granted: Vec<&str> = body["scope"].as_str().unwrap().split(' ').collect();
    for s in [
        "accounts:read",
        "payments:write",
        "payments:approve",
        "audit:read",
        "admin",
    ] {
        assert!(granted.contains(&s), "{granted:?}");
    }
    let token = body["access_token"].as_str().unwrap();
    // The token is an EdDSA JWT whose key is in the JWKS.
    let jwks: Value = app
        .get_raw("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    let (status, _) = status_with(&app, Some(token)).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn every_kind_of_bad_token_is_a_401() {
    let app = TestApp::spawn().await;
    let key = signing_key(&app);
    let kid = app.state.tokens.kid().to_owned();
    let good = claims(&app, "erp");
    let now = Utc::now().timestamp();

    let expired = Claims {
        exp: now - 120,
        iat: now - 1000,
        nbf: now - 1000,
        ..good.clone()
    };
    let not_yet_valid = Claims {
        nbf: now + 600,
        exp: now + 1200,
        ..good.clone()
    };
    let wrong_issuer = Claims {
        iss: "someone-else".to_owned(),
        ..good.clone()
    };
    let wrong_audience = Claims {
        aud: "another-api".to_owned(),
        ..good.clone()
    };
    let other_key = crypto::Ed25519Key::generate();
    let jwk_x = app.state.tokens.jwks()["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();

    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("garbage", Some("not-a-jwt".to_owned())),
        ("expired", Some(testing::sign_with(&key, &kid, &expired))),
        (
            "not yet valid",
            Some(testing::sign_with(&key, &kid, &not_yet_valid)),
        ),
        (
            "wrongly signed",
            Some(testing::sign_with(&other_key, &kid, &good)),
        ),
        ("alg none", Some(testing::forge_alg_none(&good))),
        (
            "HS256 with the public key",
            Some(testing::forge_hs256_with_key(
                &good,
                &key.public_key_bytes(),
                &kid,
            )),
        ),
        (
            "HS256 with the JWK x",
            Some(testing::forge_hs256_with_key(&good, jwk_x.as_bytes(), &kid)),
        ),
        (
            "wrong issuer",
            Some(testing::sign_with(&key, &kid, &wrong_issuer)),
        ),
        (
            "wrong audience",
            Some(testing::sign_with(&key, &kid, &wrong_audience)),
        ),
    ];
    for (name, token) in cases {
        let (status, body) = status_with(&app, token.as_deref()).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["code"], "unauthorized", "{name}");
    }
    // The control: the same claims, correctly signed, pass.
    let (status, _) = status_with(&app, Some(&testing::sign_with(&key, &kid, &good))).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_scope_is_a_403() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.auditor, None).await;
    let (status, body) = status_with(&app, Some(&token)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "insufficient_scope");
    // A narrower token of a broader client is limited to what it asked for.
    let token = app.token_for(&app.erp, Some("audit:read")).await;
    let (status, _) = status_with(&app, Some(&token)).await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn a_scope_the_client_does_not_have_is_refused_at_the_token_endpoint() {
    let app = TestApp::spawn().await;
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(app.limited.id, Some(&app.limited.secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .unwrap();
    let (status, body) = split(resp).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_scope");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_401_and_an_audit_record() {
    let app = TestApp::spawn().await;
    for (id, secret) in [(app.erp.id, "wrong-secret"), ("nobody", "whatever")] {
        let resp = app
            .http
            .post(app.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let (status, body) = split(resp).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
    }
    let denied = app
        .state
        .store
        .list_audit(&store::AuditQuery {
            action: Some("auth.token".to_owned()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let denied: Vec<_> = denied.iter().filter(|r| r.outcome == "denied").collect();
    assert_eq!(denied.len(), 2);
    assert_eq!(denied[0].actor, "client:erp");
    // An unknown id is kept as a keyed fingerprint only: it may be a secret
    // pasted in the wrong field.
    assert_eq!(denied[1].actor, "client:?");
    assert!(!denied[1].details.to_string().contains("nobody"));
    assert_eq!(
        denied[1].details["client_id_fingerprint"]
            .as_str()
            .map(str::len),
        Some(16)
    );
    // The presented secret is never stored.
    for r in &denied {
        assert!(!r.details.to_string().contains("wrong-secret"));
    }
    app.stop().await;
}

#[tokio::test]
async fn unsupported_grant_and_missing_credentials_are_clear_errors() {
    let app = TestApp::spawn().await;
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(app.erp.id, Some(&app.erp.secret))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .unwrap();
    let (status, body) = split(resp).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unsupported_grant_type");
    assert_eq!(body["field"], "body.grant_type");

    // People log in with grant_type=password (docs/approvals.md), which needs both fields.
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "password"), ("username", "someone")])
        .send()
        .await
        .unwrap();
    let (status, body) = split(resp).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");

    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (status, body) = split(resp).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    app.stop().await;
}
