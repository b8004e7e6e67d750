//! OWASP API3:2023 Broken Object Property Level Authorization.
//!
//! Mass assignment: the properties the gateway owns (`id`, `status`, the
//! business references, approvals, `initiated_by`, `on_behalf_of`, a
//! webhook's owner, an approval's approver) cannot be set through a create
//! or decision body. The gateway refuses them: 422 `unknown_field` naming
//! the field, nothing stored. Excessive data exposure: no response shows a
//! client secret hash, a password hash, the token signing key, or a webhook
//! secret after the response that created it.

use serde_json::{json, Value};

use crate::helpers::{batch_body, payment_body, user, Options, TestApp};
use gateway::config::{ApprovalRuleConfig, Role};

/// Asserts a 422 `unknown_field` naming `field` (first or among `errors`).
fn assert_refused_naming(context: &str, status: u16, v: &Value, field: &str) {
    assert_eq!(status, 422, "{context}: {v}");
    let mut named: Vec<(String, String)> = vec![(
        v["field"].as_str().unwrap_or("").to_owned(),
        v["code"].as_str().unwrap_or("").to_owned(),
    )];
    if let Some(errors) = v["errors"].as_array() {
        named.extend(errors.iter().map(|e| {
            (
                e["field"].as_str().unwrap_or("").to_owned(),
                e["code"].as_str().unwrap_or("").to_owned(),
            )
        }));
    }
    assert!(
        named.contains(&(field.to_owned(), "unknown_field".to_owned())),
        "{context}: expected unknown_field at {field}: {v}"
    );
}

#[tokio::test]
async fn api3_server_owned_properties_cannot_be_set_through_a_body() {
    let app = TestApp::spawn_with(Options {
        users: vec![
            user("maker", &[Role::Maker]),
            user("checker", &[Role::Approver]),
        ],
        approval_rules: vec![ApprovalRuleConfig {
            debtor_account: "*".to_owned(),
            currency: domain::Currency::CNY,
            above: "100.00".to_owned(),
            approvers: 1,
        }],
        ..Options::default()
    })
    .await;
    let erp = app.token_for(&app.erp, None).await;
    let owned: Vec<(&str, Value)> = vec![
        ("id", json!("pay_01ARZ3NDEKTSV4RRFFQ69G5FAV")),
        ("status", json!("settled")),
        ("business_reference", json!("EAST0000000001")),
        ("approvals", json!({"required": 0, "given": []})),
        ("initiated_by", json!("client:someone-else")),
        ("ever_sent", json!(true)),
        ("history", json!([])),
    ];
    for (field, value) in &owned {
        let mut body = payment_body("east-1", "500.00");
        body[*field] = value.clone();
        let (s, v) = app.post("/v1/payments", &erp, &body).await;
        assert_refused_naming(&format!("payment {field}"), s, &v, &format!("body.{field}"));

        let mut batch = batch_body("east-1", 2);
        batch[*field] = value.clone();
        let (s, v) = app.post("/v1/payment-batches", &erp, &batch).await;
        assert_refused_naming(&format!("batch {field}"), s, &v, &format!("body.{field}"));

        let mut batch = batch_body("east-1", 2);
        batch["items"][1][*field] = value.clone();
        let (s, v) = app.post("/v1/payment-batches", &erp, &batch).await;
        assert_refused_naming(
            &format!("batch item {field}"),
            s,
            &v,
            &format!("body.items[1].{field}"),
        );
    }
    for (field, value) in [
        ("id", json!("whk_mine")),
        ("client_id", json!("other")),
        ("status", json!("active")),
    ] {
        let (s, v) = app
            .post(
                "/v1/webhooks",
                &erp,
                &json!({"url": "https://hooks.example.com/a", "event_types": ["payment.status_changed"], field: value}),
            )
            .await;
        assert_refused_naming(&format!("webhook {field}"), s, &v, &format!("body.{field}"));
    }
    // `on_behalf_of` is an input (a client acting for a maker), and only a
    // maker can be named: not an approver, not an unknown person.
    for who in ["user:checker", "user:nobody", "client:other"] {
        let mut body = payment_body("east-1", "500.00");
        body["on_behalf_of"] = json!(who);
        let (s, v) = app.post("/v1/payments", &erp, &body).await;
        assert_eq!(
            (s, v["code"].as_str(), v["field"].as_str()),
            (422, Some("invalid_on_behalf_of"), Some("body.on_behalf_of")),
            "{who}: {v}"
        );
    }
    // Nothing was stored by any refused body.
    for list in ["/v1/payments", "/v1/payment-batches", "/v1/webhooks"] {
        let (_, v) = app.get(list, &erp).await;
        assert_eq!(v["items"], json!([]), "{list}: {v}");
    }

    // A decision cannot name its approver or its outcome.
    let maker = app.login("maker").await;
    let checker = app.login("checker").await;
    let p = app.pay(&maker, "east-1", "500.00").await;
    assert_eq!(p["status"], "pending_approval", "{p}");
    let id = p["id"].as_str().unwrap();
    for (field, value) in [
        ("approved_by", json!("user:maker")),
        ("status", json!("approved")),
        ("approvals", json!(5)),
    ] {
        let (s, v) = app
            .post(
                &format!("/v1/payments/{id}/approve"),
                &checker,
                &json!({"comment": "ok", field: value}),
            )
            .await;
        assert_refused_naming(&format!("approve {field}"), s, &v, &format!("body.{field}"));
    }
    let (_, still) = app.get(&format!("/v1/payments/{id}"), &erp).await;
    assert_eq!(still["status"], "pending_approval", "{still}");
    // The properties the gateway sets are its own.
    let (s, ok) = app
        .post(
            &format!("/v1/payments/{id}/approve"),
            &checker,
            &json!({"comment": "ok"}),
        )
        .await;
    assert_eq!(s, 200, "{ok}");
    assert_eq!(ok["initiated_by"], "user:maker", "{ok}");
    assert_eq!(ok["on_behalf_of"], "user:maker", "{ok}");
    app.stop().await;
}

#[tokio::test]
async fn api3_no_response_shows_a_secret_hash_key_or_webhook_secret() {
    let app = TestApp::spawn_with(Options {
        users: vec![user("admin1", &[Role::Admin])],
        ..Options::default()
    })
    .await;
    let erp = app.token_for(&app.erp, None).await;
    let auditor = app.token_for(&app.auditor, None).await;
    let admin = app.login("admin1").await;

    let webhook_secret = "a-webhook-secret-of-at-least-32-characters-owasp";
    let (s, created) = app
        .post_keyed(
            "/v1/webhooks",
            &erp,
            "hook-1",
            &json!({"url": "https://hooks.example.com/a", "event_types": ["payment.status_changed"], "secret": webhook_secret}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["secret"], webhook_secret, "shown once, on creation");
    let hook = created["id"].as_str().unwrap().to_owned();
    // A generated secret is shown once too.
    let (_, generated) = app
        .post(
            "/v1/webhooks",
            &erp,
            &json!({"url": "https://hooks.example.com/b", "event_types": ["payment.status_changed"]}),
        )
        .await;
    let generated_secret = generated["secret"].as_str().unwrap().to_owned();
    assert!(generated_secret.len() >= 32, "{generated}");
    let p = app.pay(&erp, "east-1", "2.00").await;
    let pid = p["id"].as_str().unwrap().to_owned();
    app.drive_to(&erp, &pid, &["settled"]).await;

    let mut secrets: Vec<(String, String)> = vec![
        ("webhook secret".into(), webhook_secret.into()),
        ("generated webhook secret".into(), generated_secret),
        ("client secret".into(), app.erp.secret.clone()),
    ];
    for c in &app.config.clients {
        secrets.push((
            format!("{} secret hash", c.id.as_str()),
            c.secret_hash.clone(),
        ));
    }
    for u in &app.config.users {
        let hash = u.password_hash.clone().unwrap();
        secrets.push((format!("{} password hash", u.id.as_str()), hash.clone()));
        // The salt and digest parts of a PHC string on their own.
        for part in hash.split('$').filter(|p| p.len() >= 16) {
            secrets.push((format!("{} password hash part", u.id.as_str()), part.into()));
        }
    }
    let signing =
        std::fs::read_to_string(app.config.data_path(&app.config.auth.signing_key_file)).unwrap();
    let der = crypto::Ed25519Key::from_pkcs8_pem(&signing)
        .unwrap()
        .to_pkcs8_der()
        .unwrap();
    use base64::Engine as _;
    // PKCS#8 Ed25519: a 16-byte prefix ending in OCTET STRING (32), the seed.
    assert_eq!(&der[14..16], &[0x04, 0x20], "the seed's place in the DER");
    let seed = &der[16..48];
    secrets.push((
        "token signing key (base64url)".into(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(seed),
    ));
    secrets.push((
        "token signing key (base64)".into(),
        base64::engine::general_purpose::STANDARD.encode(seed),
    ));

    let (_, replay) = app
        .post_keyed(
            "/v1/webhooks",
            &erp,
            "hook-1",
            &json!({"url": "https://hooks.example.com/a", "event_types": ["payment.status_changed"], "secret": webhook_secret}),
        )
        .await;
    let mut seen = vec![replay.to_string()];
    for (path, token) in [
        ("/v1/banks", &erp),
        ("/v1/accounts", &erp),
        ("/v1/balances", &erp),
        ("/v1/payments", &erp),
        (&format!("/v1/payments/{pid}") as &str, &erp),
        ("/v1/payment-batches", &erp),
        ("/v1/webhooks", &erp),
        (&format!("/v1/webhooks/{hook}") as &str, &erp),
        (&format!("/v1/webhooks/{hook}/deliveries") as &str, &erp),
        ("/v1/audit?limit=500", &auditor),
        ("/v1/audit?limit=500", &admin),
        ("/v1/transactions", &erp),
    ] {
        let (s, v) = app.get(path, token).await;
        assert_eq!(s, 200, "{path}: {v}");
        seen.push(v.to_string());
    }
    for path in [
        "/.well-known/jwks.json",
        "/openapi.json",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        seen.push(resp.text().await.unwrap());
    }
    let jwks: Value = serde_json::from_str(&seen[seen.len() - 5]).unwrap();
    for k in jwks["keys"].as_array().unwrap() {
        assert!(k.get("d").is_none(), "the JWKS holds no private part: {k}");
    }
    for text in &seen {
        for (name, secret) in &secrets {
            assert!(!text.contains(secret.as_str()), "{name} leaked in {text}");
        }
    }
    app.stop().await;
}
