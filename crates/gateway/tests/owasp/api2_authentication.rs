//! OWASP API2:2023 Broken Authentication.
//!
//! Forged, stale and altered tokens (alg none, HS256 keyed with our public
//! key, expired, not yet valid, wrong issuer or audience, a tampered
//! payload, a foreign signature, a token in the query string) are 401s; a
//! still-unexpired token of a client or person removed from the
//! configuration stops working at once; guessing secrets or passwords on
//! `/oauth/token` is throttled with 429 and Retry-After, and then even the
//! right secret from that address is refused until the window passes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use gateway::{
    auth::{testing, Claims},
    config::{RequestLimits, Role},
};
use serde_json::Value;

use crate::helpers::{split, user, Options, TestApp};

fn claims(app: &TestApp, sub: &str, scope: &str) -> Claims {
    let now = Utc::now().timestamp();
    Claims {
        iss: app.config.auth.issuer.clone(),
        sub: sub.to_owned(),
        aud: app.config.auth.audience.clone(),
        exp: now + 300,
        nbf: now - 5,
        iat: now - 5,
        jti: "owasp-jti".to_owned(),
        scope: scope.to_owned(),
    }
}

fn signing_key(app: &TestApp) -> crypto::Ed25519Key {
    let path = app.config.data_path(&app.config.auth.signing_key_file);
    crypto::Ed25519Key::from_pkcs8_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `GET /v1/payments` with `token` as a bearer.
async fn with_token(app: &TestApp, token: &str) -> (u16, Value) {
    app.get("/v1/payments", token).await
}

/// The token with its payload replaced by `edit(payload)`, signature kept.
fn tamper(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut payload);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    )
}

#[tokio::test]
async fn api2_forged_stale_and_tampered_tokens_are_401() {
    let app = TestApp::spawn().await;
    let key = signing_key(&app);
    let kid = app.state.tokens.kid().to_owned();
    let now = Utc::now().timestamp();
    let good = claims(&app, "erp", "payments:write");
    let jwk_x = app.state.tokens.jwks()["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let limited = app.token_for(&app.limited, None).await;
    let cases: Vec<(&str, String)> = vec![
        ("alg none", testing::forge_alg_none(&good)),
        (
            "HS256 keyed with the raw public key",
            testing::forge_hs256_with_key(&good, &key.public_key_bytes(), &kid),
        ),
        (
            "HS256 keyed with the JWK x",
            testing::forge_hs256_with_key(&good, jwk_x.as_bytes(), &kid),
        ),
        (
            "expired",
            testing::sign_with(
                &key,
                &kid,
                &Claims {
                    exp: now - 60,
                    nbf: now - 1000,
                    iat: now - 1000,
                    ..good.clone()
                },
            ),
        ),
        (
            "not yet valid",
            testing::sign_with(
                &key,
                &kid,
                &Claims {
                    nbf: now + 600,
                    exp: now + 1200,
                    ..good.clone()
                },
            ),
        ),
        (
            "wrong issuer",
            testing::sign_with(
                &key,
                &kid,
                &Claims {
                    iss: "https://evil.example".to_owned(),
                    ..good.clone()
                },
            ),
        ),
        (
            "wrong audience",
            testing::sign_with(
                &key,
                &kid,
                &Claims {
                    aud: "another-api".to_owned(),
                    ..good.clone()
                },
            ),
        ),
        (
            "signed by another key under our kid",
            testing::sign_with(&crypto::Ed25519Key::generate(), &kid, &good),
        ),
        (
            "a real token with a wider scope and another subject written in",
            tamper(&limited, |p| {
                p["scope"] = Value::from("accounts:read payments:write admin");
                p["sub"] = Value::from("erp");
            }),
        ),
        (
            "a real token with its expiry pushed out",
            tamper(&limited, |p| {
                p["exp"] = Value::from(now + 86_400 * 365);
            }),
        ),
        (
            "truncated signature",
            limited[..limited.len() - 4].to_owned(),
        ),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (name, token) in &cases {
        let (s, v) = with_token(&app, token).await;
        assert_eq!(s, 401, "{name}: {v}");
        assert_eq!(v["code"], "unauthorized", "{name}: {v}");
    }
    // The control: the same claims correctly signed are accepted.
    let (s, v) = with_token(&app, &testing::sign_with(&key, &kid, &good)).await;
    assert_eq!(s, 200, "{v}");

    // Tokens travel in the Authorization header only.
    let erp = app.token_for(&app.erp, None).await;
    for url in [
        format!("/v1/payments?access_token={erp}"),
        format!("/v1/payments?token={erp}"),
    ] {
        let (s, v) = split(app.http.get(app.url(&url)).send().await.unwrap()).await;
        assert_eq!(s, 401, "{url}: {v}");
    }
    let (s, v) = split(
        app.http
            .get(app.url("/v1/payments"))
            .basic_auth(app.erp.id, Some(&app.erp.secret))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401, "client credentials are not a bearer token: {v}");
    app.stop().await;
}

#[tokio::test]
async fn api2_a_removed_clients_or_persons_unexpired_token_is_refused() {
    let mut app = TestApp::spawn_with(Options {
        users: vec![user("leaver", &[Role::Viewer])],
        ..Options::default()
    })
    .await;
    let other = app.token_for(&app.other, None).await;
    let leaver = app.login("leaver").await;
    assert_eq!(app.get("/v1/accounts", &other).await.0, 200);
    assert_eq!(app.get("/v1/accounts", &leaver).await.0, 200);
    // The operator removes the client and the person; the signing key stays.
    app.restart_with(|c| {
        c.clients.retain(|cl| cl.id.as_str() != "other");
        c.users.retain(|u| u.id.as_str() != "leaver");
    })
    .await;
    for (who, token) in [("client", &other), ("person", &leaver)] {
        let (s, v) = app.get("/v1/accounts", token).await;
        assert_eq!(s, 401, "a removed {who}'s token: {v}");
    }
    // Tokens of those still configured keep working across the restart.
    let erp = app.token_for(&app.erp, None).await;
    assert_eq!(app.get("/v1/accounts", &erp).await.0, 200);
    // And the removed client cannot get a new one.
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(app.other.id, Some(&app.other.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (s, v) = split(resp).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")));
    app.stop().await;
}

#[tokio::test]
async fn api2_guessing_secrets_and_passwords_is_throttled_with_429() {
    let app = TestApp::spawn_with(Options {
        users: vec![user("alice", &[Role::Viewer])],
        configure: Some(std::sync::Arc::new(|c: &mut gateway::config::Config| {
            c.server.limits = RequestLimits {
                token_failures_per_minute: 1,
                token_failure_burst: 3,
                ..RequestLimits::default()
            };
        })),
        ..Options::default()
    })
    .await;
    let guess = |secret: String| {
        let app = &app;
        async move {
            let resp = app
                .http
                .post(app.url("/oauth/token"))
                .basic_auth(app.erp.id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let (s, v) = split(resp).await;
            (s, v, retry_after)
        }
    };
    let mut statuses = Vec::new();
    for i in 0..8 {
        let (s, v, retry_after) = guess(format!("guess-{i}")).await;
        statuses.push(s);
        if s == 429 {
            assert_eq!(v["code"], "rate_limited", "{v}");
            let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
            assert!((1..=120).contains(&secs), "{secs}");
        } else {
            assert_eq!(s, 401, "{v}");
        }
    }
    // The burst (3, and the one the bucket's rate lets through) is allowed;
    // from then on every attempt is refused before it is checked.
    assert_eq!(&statuses[..3], &[401, 401, 401], "the burst is allowed");
    let first_429 = statuses.iter().position(|s| *s == 429).expect("throttled");
    assert!(first_429 <= 4, "{statuses:?}");
    assert!(
        statuses[first_429..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
    // Now the right secret from this address is refused too: a guesser
    // cannot tell a hit.
    let (s, _, _) = guess(app.erp.secret.clone()).await;
    assert_eq!(s, 429);
    // And password guessing is the same endpoint and the same bucket.
    let (s, v) = app.login_with("alice", "pw-alice").await;
    assert_eq!((s, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
    app.stop().await;
}
