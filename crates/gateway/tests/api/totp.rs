//! People's second factor (TOTP, RFC 6238): a user with a `totp_secret`
//! logs in only with the authenticator app's current code (or the previous
//! step's), each step once; every failure is the same 401 as a wrong
//! password and is audited with its reason, never with the code.
//!
//! The gateway runs on the system clock; the codes are made from the same
//! clock, away from a step's end so a step does not turn mid-request.

use std::time::Duration;

use base64::Engine as _;
use crypto::totp::{TotpKey, AUTHENTICATOR};
use domain::UserId;
use gateway::config::{Role, UserConfig};
use serde_json::Value;

use crate::helpers::{split, Options, TestApp};

/// 160 bits, as `bankdirect users totp-secret` makes them.
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn person(id: &str, totp: bool) -> UserConfig {
    UserConfig {
        id: UserId::parse(id).unwrap(),
        name: String::new(),
        roles: vec![Role::Approver],
        accounts: vec!["*".to_owned()],
        password_hash: Some(crypto::password::hash_password(&format!("pw-{id}")).unwrap()),
        // Lower case and spaced, as an app shows it.
        totp_secret: totp.then(|| {
            crypto::SecretString::new("jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp".to_owned())
        }),
    }
}

/// alice and carol have an authenticator app; bob does not.
async fn spawn() -> TestApp {
    TestApp::spawn_with(Options {
        users: vec![
            person("alice", true),
            person("bob", false),
            person("carol", true),
        ],
        ..Options::default()
    })
    .await
}

/// Waits until at least 5 s remain in the current step, and returns it.
async fn step_with_time_left(app: &TestApp) -> u64 {
    loop {
        let now_ms = app.state.clock.now().timestamp_millis();
        let step_ms = i64::try_from(AUTHENTICATOR.step_s).unwrap() * 1000;
        let left_ms = step_ms - now_ms.rem_euclid(step_ms);
        if left_ms >= 5000 {
            return u64::try_from(now_ms / step_ms).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(u64::try_from(left_ms).unwrap() + 100)).await;
    }
}

fn code(step: u64) -> String {
    TotpKey::from_base32(SECRET)
        .unwrap()
        .code(step, AUTHENTICATOR)
}

async fn login(app: &TestApp, user: &str, password: &str, totp: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", user),
        ("password", password),
    ];
    if let Some(totp) = totp {
        form.push(("totp", totp));
    }
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    split(resp).await
}

fn subject(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

/// The `details` of the refused logins of `user`, oldest first.
async fn refusals(app: &TestApp, user: &str) -> Vec<Value> {
    let auditor = app.token_for(&app.auditor, None).await;
    let (status, audit) = app
        .get(
            &format!("/v1/audit?action=auth.token&actor=user:{user}&limit=100"),
            &auditor,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    let mut details: Vec<Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "denied")
        .map(|r| r["details"].clone())
        .collect();
    details.sort_by_key(|d| d.to_string());
    details
}

fn assert_refused_like_a_wrong_password(got: &(u16, Value), wrong_password: &Value) {
    assert_eq!(got.0, 401, "{}", got.1);
    assert_eq!(got.1["error"], "invalid_grant", "{}", got.1);
    assert_eq!(got.1["detail"], wrong_password["detail"], "{}", got.1);
    assert_eq!(got.1["code"], wrong_password["code"], "{}", got.1);
}

#[tokio::test]
async fn the_current_code_logs_in_once_and_the_token_names_the_person() {
    let app = spawn().await;
    let step = step_with_time_left(&app).await;
    let now = code(step);
    let (s, v) = login(&app, "alice", "pw-alice", Some(&now)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(subject(v["access_token"].as_str().unwrap()), "user:alice");
    assert_eq!(v["scope"], "payments:approve");

    // The same code again (a replay, or a second login in the same 30 s) is refused.
    let (_, wrong_password) = login(&app, "alice", "not-it", Some(&now)).await;
    let again = login(&app, "alice", "pw-alice", Some(&now)).await;
    assert_refused_like_a_wrong_password(&again, &wrong_password);

    // Another person's steps are their own: carol's first use of the step is fine.
    let (s, v) = login(&app, "carol", "pw-carol", Some(&now)).await;
    assert_eq!(s, 200, "{v}");

    let reasons: Vec<Value> = refusals(&app, "alice")
        .await
        .iter()
        .map(|d| d["reason"].clone())
        .collect();
    assert_eq!(
        reasons,
        vec![
            Value::from("totp replayed"),
            Value::from("wrong username or password")
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_missing_wrong_or_malformed_code_is_the_same_401_as_a_wrong_password_and_audited_without_it(
) {
    let app = spawn().await;
    let step = step_with_time_left(&app).await;
    let (_, wrong_password) = login(&app, "alice", "not-it", Some(&code(step))).await;
    assert_eq!(wrong_password["error"], "invalid_grant");

    let missing = login(&app, "alice", "pw-alice", None).await;
    assert_refused_like_a_wrong_password(&missing, &wrong_password);

    // A code of another time, well outside the window (unless it happens to
    // equal one inside it, one chance in 10^5).
    let window = [code(step - 1), code(step), code(step + 1)];
    let wrong = code(step + 10);
    assert!(!window.contains(&wrong), "an unlucky collision; rerun");
    let wrong_code = login(&app, "alice", "pw-alice", Some(&wrong)).await;
    assert_refused_like_a_wrong_password(&wrong_code, &wrong_password);

    let malformed = ["12345", "1234567", "12a456", " 12345", ""];
    for bad in malformed {
        let got = login(&app, "alice", "pw-alice", Some(bad)).await;
        assert_refused_like_a_wrong_password(&got, &wrong_password);
    }

    // None of the failures used up the step: the right code still works.
    let (s, v) = login(&app, "alice", "pw-alice", Some(&code(step))).await;
    assert_eq!(s, 200, "{v}");

    let details = refusals(&app, "alice").await;
    let reasons: Vec<&str> = details
        .iter()
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    let mut want = vec!["totp malformed"; malformed.len()];
    want.extend(["totp missing", "totp wrong", "wrong username or password"]);
    assert_eq!(reasons, want);
    let text = serde_json::to_string(&details).unwrap();
    for secret in [
        &code(step),
        &wrong,
        "JBSWY3DP",
        "jbsw",
        "pw-alice",
        "12a456",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_previous_steps_code_is_accepted_and_two_steps_ago_refused() {
    let app = spawn().await;
    let step = step_with_time_left(&app).await;
    let (two_ago, previous) = (code(step - 2), code(step - 1));
    assert!(
        ![code(step), previous.clone(), code(step + 1)].contains(&two_ago),
        "an unlucky collision; rerun"
    );
    let (s, v) = login(&app, "alice", "pw-alice", Some(&two_ago)).await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = login(&app, "alice", "pw-alice", Some(&previous)).await;
    assert_eq!(s, 200, "{v}");
    // Once a step is used, an earlier one is not accepted either…
    let (s, v) = login(&app, "alice", "pw-alice", Some(&previous)).await;
    assert_eq!(s, 401, "{v}");
    // …but a later one is.
    let (s, v) = login(&app, "alice", "pw-alice", Some(&code(step))).await;
    assert_eq!(s, 200, "{v}");
    app.stop().await;
}

#[tokio::test]
async fn a_person_without_a_totp_secret_logs_in_as_before() {
    let app = spawn().await;
    let (s, v) = login(&app, "bob", "pw-bob", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(subject(v["access_token"].as_str().unwrap()), "user:bob");
    // A code sent anyway changes nothing.
    let (s, v) = login(&app, "bob", "pw-bob", Some("123456")).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = login(&app, "bob", "not-it", None).await;
    assert_eq!(s, 401);
    app.stop().await;
}
