//! Maker-checker approvals end to end: a payment above its rule's threshold
//! never reaches the bank (the simulator's executions) until the required
//! distinct approvals are in; a declined one never does; self-approval, a
//! second approval by one person, a replayed approval and a client token are
//! refused; people log in with their password.

use std::time::{Duration, Instant};

use domain::{Currency, UserId};
use gateway::config::{ApprovalRuleConfig, Role, UserConfig};
use serde_json::{json, Value};

use crate::helpers::{split, Options, TestApp};

fn user(id: &str, role: Role) -> UserConfig {
    UserConfig {
        id: UserId::parse(id).unwrap(),
        name: String::new(),
        roles: vec![role],
        accounts: vec!["*".to_owned()],
        password_hash: Some(crypto::password::hash_password(&format!("pw-{id}")).unwrap()),
        totp_secret: None,
    }
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options {
        users: vec![
            user("maker", Role::Maker),
            user("approver1", Role::Approver),
            user("approver2", Role::Approver),
        ],
        approval_rules: vec![ApprovalRuleConfig {
            debtor_account: "*".to_owned(),
            currency: Currency::CNY,
            above: "1000000.00".to_owned(),
            approvers: 2,
        }],
        ..Options::default()
    })
    .await
}

async fn login(app: &TestApp, id: &str) -> String {
    let (status, body) = app.login(id, &format!("pw-{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn body(amount: &str) -> Value {
    json!({
        "debtor_account_id": "east-1",
        "amount": amount,
        "currency": "CNY",
        "creditor": {
            "name": "上海测试贸易有限公司",
            "account": "6222020000001234",
            "bank_code": "102290000001",
            "bank_name": "中国工商银行上海分行",
            "type": "corporate"
        },
        "remittance": "设备款",
    })
}

async fn create(app: &TestApp, token: &str, key: &str, b: &Value) -> Value {
    let resp = app
        .http
        .post(app.url("/v1/payments"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(b)
        .send()
        .await
        .unwrap();
    let (status, v) = split(resp).await;
    assert_eq!(status, 201, "{v}");
    v
}

/// A decision, with a fixed request id so a repeat is a replay.
async fn decide(
    app: &TestApp,
    token: &str,
    id: &str,
    what: &str,
    request_id: &str,
) -> (u16, Value) {
    post_decision(app, token, &format!("/v1/payments/{id}/{what}"), request_id).await
}

/// POSTs a decision with a comment to `path`.
async fn post_decision(app: &TestApp, token: &str, path: &str, request_id: &str) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .header("x-request-id", request_id)
        .json(&json!({ "comment": "checked against the contract" }))
        .send()
        .await
        .unwrap();
    split(resp).await
}

/// Runs every worker round a few times: what may be sent is sent.
async fn rounds(app: &TestApp, n: usize) {
    for _ in 0..n {
        let w = &app.state.payment_workers;
        w.dispatch_round().await.unwrap();
        w.reap_round().await.unwrap();
        w.poll_round().await.unwrap();
    }
}

async fn drive_to(app: &TestApp, token: &str, id: &str, want: &str) -> Value {
    let started = Instant::now();
    loop {
        rounds(app, 1).await;
        let (_, p) = app.get(&format!("/v1/payments/{id}"), token).await;
        if p["status"] == want {
            return p;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_large_payment_waits_for_two_distinct_approvals_then_settles_once() {
    let app = spawn().await;
    let maker = login(&app, "maker").await;
    let a1 = login(&app, "approver1").await;
    let a2 = login(&app, "approver2").await;
    let erp = app.token_for(&app.erp, None).await;

    // Small payments go straight through.
    let small = create(&app, &erp, "small", &body("1000000.00")).await;
    assert_eq!(small["status"], "queued", "{small}");
    assert_eq!(small["approvals"]["required"], 0);

    let big = create(&app, &maker, "big", &body("1500000.00")).await;
    assert_eq!(big["status"], "pending_approval", "{big}");
    assert_eq!(big["approvals"]["required"], 2);
    assert_eq!(big["on_behalf_of"], "user:maker");
    let id = big["id"].as_str().unwrap().to_owned();
    let reference = big["business_reference"].as_str().unwrap().to_owned();

    rounds(&app, 5).await;
    assert_eq!(app.executions("east").await.get(&reference), None);

    // The maker never approves their own; a client token never approves.
    let (s, v) = decide(&app, &maker, &id, "approve", "r-maker").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{v}"
    );
    let (s, v) = decide(&app, &erp, &id, "approve", "r-erp").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (403, Some("user_token_required")),
        "{v}"
    );

    let (s, v) = decide(&app, &a1, &id, "approve", "r-a1").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "pending_approval");
    assert_eq!(v["approvals"]["given"][0]["user"], "user:approver1");
    // The same request replayed, and a second approval by the same person.
    let (s, v) = decide(&app, &a1, &id, "approve", "r-a1").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("already_decided")),
        "{v}"
    );
    let (s, v) = decide(&app, &a1, &id, "approve", "r-a1-again").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("already_decided")),
        "{v}"
    );
    rounds(&app, 5).await;
    assert_eq!(app.executions("east").await.get(&reference), None);
    let (_, p) = app.get(&format!("/v1/payments/{id}"), &a2).await;
    assert_eq!(
        p["status"], "pending_approval",
        "one person counts once: {p}"
    );

    let (s, v) = decide(&app, &a2, &id, "approve", "r-a2").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "queued", "{v}");
    let done = drive_to(&app, &maker, &id, "settled").await;
    let given: Vec<&str> = done["approvals"]["given"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["user"].as_str().unwrap())
        .collect();
    assert_eq!(given, ["user:approver1", "user:approver2"]);
    let path: Vec<&str> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        path[..5],
        [
            "received",
            "pending_approval",
            "approved",
            "queued",
            "submitting"
        ]
    );
    assert_eq!(app.executions("east").await.get(&reference), Some(&1));
    // Decided for good.
    let (s, v) = decide(&app, &a1, &id, "decline", "r-late").await;
    assert_eq!(s, 409, "{v}");
    app.stop().await;
}

#[tokio::test]
async fn a_declined_payment_never_reaches_the_bank() {
    let app = spawn().await;
    let a1 = login(&app, "approver1").await;
    let erp = app.token_for(&app.erp, None).await;
    // The ERP acts for the maker.
    let mut b = body("2000000.00");
    b["on_behalf_of"] = json!("maker");
    let big = create(&app, &erp, "big", &b).await;
    assert_eq!(big["status"], "pending_approval", "{big}");
    assert_eq!(big["on_behalf_of"], "user:maker");
    let id = big["id"].as_str().unwrap().to_owned();
    let reference = big["business_reference"].as_str().unwrap().to_owned();

    let (s, v) = decide(&app, &a1, &id, "decline", "r-no").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "declined");
    assert_eq!(v["approvals"]["declined_by"], "user:approver1");
    rounds(&app, 5).await;
    assert_eq!(app.executions("east").await.get(&reference), None);
    let a2 = login(&app, "approver2").await;
    let (s, v) = decide(&app, &a2, &id, "approve", "r-yes").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("not_pending_approval")),
        "{v}"
    );

    // Only a configured maker may be named.
    let mut b = body("5.00");
    b["on_behalf_of"] = json!("approver1");
    let resp = app
        .http
        .post(app.url("/v1/payments"))
        .bearer_auth(&erp)
        .header("idempotency-key", "bad-obo")
        .json(&b)
        .send()
        .await
        .unwrap();
    let (s, v) = split(resp).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (422, Some("body.on_behalf_of")),
        "{v}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_maker_never_approves_their_own_even_as_an_approver() {
    let mut both = user("both", Role::Maker);
    both.roles.push(Role::Approver);
    let app = TestApp::spawn_with(Options {
        users: vec![both, user("approver1", Role::Approver)],
        approval_rules: vec![ApprovalRuleConfig {
            debtor_account: "east-1".to_owned(),
            currency: Currency::CNY,
            above: "10".to_owned(),
            approvers: 1,
        }],
        ..Options::default()
    })
    .await;
    let both = login(&app, "both").await;
    let p = create(&app, &both, "k", &body("10.01")).await;
    assert_eq!(p["status"], "pending_approval", "{p}");
    let id = p["id"].as_str().unwrap();
    let (s, v) = decide(&app, &both, id, "approve", "r1").await;
    assert_eq!((s, v["code"].as_str()), (403, Some("own_payment")), "{v}");
    let (_, p) = app.get(&format!("/v1/payments/{id}"), &both).await;
    assert_eq!(p["approvals"]["given"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_failed_login_is_401_without_saying_whether_the_user_exists() {
    let app = spawn().await;
    let (s1, wrong) = app.login("maker", "not-it").await;
    let (s2, nobody) = app.login("nobody", "pw-nobody").await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong["detail"], nobody["detail"]);
    assert_eq!(wrong["error"], "invalid_grant");
    // Roles make scopes: an approver cannot write payments.
    let (s, v) = app.login("approver1", "pw-approver1").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["scope"], "payments:approve");
    // Refusals are audited, never with the password.
    let auditor = app.token_for(&app.auditor, None).await;
    let (_, audit) = app.get("/v1/audit?action=auth.token", &auditor).await;
    let text = audit.to_string();
    // An unknown name is kept as a keyed fingerprint only (it may be a
    // password typed in the wrong field); a known person is named.
    assert!(!text.contains("nobody"), "{text}");
    assert!(
        text.contains("user:?") && text.contains("username_fingerprint"),
        "{text}"
    );
    assert!(text.contains("user:maker"), "{text}");
    assert!(
        !text.contains("not-it") && !text.contains("pw-nobody"),
        "{text}"
    );
    app.stop().await;
}

fn batch_item(amount: &str, account: &str) -> Value {
    json!({
        "amount": amount,
        "creditor": {"name": "张三", "account": account, "bank_code": "102290000001", "type": "personal"},
        "remittance": "十一月工资",
    })
}

/// Two items of `each`, so each may be below the threshold and the total above it.
fn two_item_batch(each: &str, sum: &str) -> Value {
    let items = vec![
        batch_item(each, "6222021234567890"),
        batch_item(each, "6222021234567891"),
    ];
    json!({
        "debtor_account_id": "east-1", "currency": "CNY", "kind": "payroll",
        "count": items.len(), "control_sum": sum, "items": items,
    })
}

async fn create_batch(app: &TestApp, token: &str, key: &str, b: &Value) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/v1/payment-batches"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(b)
        .send()
        .await
        .unwrap();
    split(resp).await
}

async fn decide_batch(
    app: &TestApp,
    token: &str,
    id: &str,
    what: &str,
    request_id: &str,
) -> (u16, Value) {
    post_decision(
        app,
        token,
        &format!("/v1/payment-batches/{id}/{what}"),
        request_id,
    )
    .await
}

/// Runs the batch workers' rounds until the batch has `want`, bounded in time.
async fn drive_batch_to(app: &TestApp, token: &str, id: &str, want: &str) -> Value {
    let started = Instant::now();
    loop {
        batch_rounds(app, 1).await;
        let (_, b) = app.get(&format!("/v1/payment-batches/{id}"), token).await;
        if b["status"] == want {
            return b;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn batch_rounds(app: &TestApp, n: usize) {
    for _ in 0..n {
        let w = &app.state.payment_workers;
        w.dispatch_chunk_round().await.unwrap();
        w.reap_chunk_round().await.unwrap();
        w.poll_chunk_round().await.unwrap();
    }
}

fn item_references(batch: &Value) -> Vec<String> {
    batch["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["business_reference"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_batch_whose_total_needs_approval_waits_for_two_distinct_approvers_then_pays_once() {
    let app = spawn().await;
    let maker = login(&app, "maker").await;
    let a1 = login(&app, "approver1").await;
    let a2 = login(&app, "approver2").await;
    let erp = app.token_for(&app.erp, None).await;

    // Exactly the threshold is not above it: straight through.
    let (s, small) = create_batch(
        &app,
        &erp,
        "small",
        &two_item_batch("500000.00", "1000000.00"),
    )
    .await;
    assert_eq!(s, 201, "{small}");
    assert_eq!(small["status"], "queued", "{small}");
    assert_eq!(small["approvals"]["required"], 0);

    // Two items of 600,000: each below the threshold, the total above it.
    let (s, big) = create_batch(
        &app,
        &maker,
        "big",
        &two_item_batch("600000.00", "1200000.00"),
    )
    .await;
    assert_eq!(s, 201, "{big}");
    assert_eq!(big["status"], "pending_approval", "{big}");
    assert_eq!(big["approvals"]["required"], 2);
    assert_eq!(big["on_behalf_of"], "user:maker");
    let id = big["id"].as_str().unwrap().to_owned();
    let (_, full) = app.get(&format!("/v1/payment-batches/{id}"), &a1).await;
    let references = item_references(&full);
    assert_eq!(references.len(), 2);
    assert!(full["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "pending_approval"));

    batch_rounds(&app, 5).await;
    let executed = app.executions("east").await;
    assert!(references.iter().all(|r| !executed.contains_key(r)));

    // The maker never approves their own batch; a client token never approves.
    let (s, v) = decide_batch(&app, &maker, &id, "approve", "b-maker").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{v}"
    );
    let (s, v) = decide_batch(&app, &erp, &id, "approve", "b-erp").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (403, Some("user_token_required")),
        "{v}"
    );

    let (s, v) = decide_batch(&app, &a1, &id, "approve", "b-a1").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "pending_approval", "{v}");
    assert_eq!(v["approvals"]["given"][0]["user"], "user:approver1");
    // Replayed, and a second approval by the same person.
    for request in ["b-a1", "b-a1-again"] {
        let (s, v) = decide_batch(&app, &a1, &id, "approve", request).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (409, Some("already_decided")),
            "{v}"
        );
    }
    batch_rounds(&app, 5).await;
    let executed = app.executions("east").await;
    assert!(
        references.iter().all(|r| !executed.contains_key(r)),
        "one approval of two sends nothing"
    );

    let (s, v) = decide_batch(&app, &a2, &id, "approve", "b-a2").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "queued", "{v}");
    let done = drive_batch_to(&app, &maker, &id, "completed").await;
    let given: Vec<&str> = done["approvals"]["given"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["user"].as_str().unwrap())
        .collect();
    assert_eq!(given, ["user:approver1", "user:approver2"]);
    let executed = app.executions("east").await;
    for r in &references {
        assert_eq!(executed.get(r), Some(&1), "item {r} paid once");
    }
    // Decided for good.
    let (s, v) = decide_batch(&app, &a1, &id, "decline", "b-late").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("not_pending_approval")),
        "{v}"
    );

    // Every decision, and every refusal, is in the audit log.
    let auditor = app.token_for(&app.erp, Some("audit:read")).await;
    let (s, audit) = app
        .get(&format!("/v1/audit?object=payment_batch:{id}"), &auditor)
        .await;
    assert_eq!(s, 200, "{audit}");
    let actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("payment_batch.create", "created"),
        ("payment_batch.approve", "approved"),
        ("payment_batch.approve", "refused"),
        ("payment_batch.release", "queued"),
        ("payment_batch.decline", "refused"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, o)| (a.as_str(), o.as_str()) == want),
            "{want:?} in {actions:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_declined_batch_never_reaches_the_bank() {
    let app = spawn().await;
    let a1 = login(&app, "approver1").await;
    let erp = app.token_for(&app.erp, None).await;
    // The ERP acts for the maker.
    let mut b = two_item_batch("900000.00", "1800000.00");
    b["on_behalf_of"] = json!("maker");
    let (s, big) = create_batch(&app, &erp, "big", &b).await;
    assert_eq!(s, 201, "{big}");
    assert_eq!(big["status"], "pending_approval", "{big}");
    assert_eq!(big["on_behalf_of"], "user:maker");
    let id = big["id"].as_str().unwrap().to_owned();

    let (s, v) = decide_batch(&app, &a1, &id, "decline", "b-no").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "declined", "{v}");
    assert_eq!(v["approvals"]["declined_by"], "user:approver1");
    assert_eq!(v["items_by_status"], json!({"cancelled": 2}));
    assert!(v["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "declined"));
    batch_rounds(&app, 5).await;
    assert!(app.executions("east").await.is_empty());
    let a2 = login(&app, "approver2").await;
    let (s, v) = decide_batch(&app, &a2, &id, "approve", "b-yes").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("not_pending_approval")),
        "{v}"
    );
    let (_, list) = app.get("/v1/payment-batches?status=declined", &erp).await;
    assert_eq!(list["items"][0]["id"], id.as_str(), "{list}");
    // A batch that needs no approval takes no decisions.
    let (s, small) = create_batch(&app, &erp, "small", &two_item_batch("1.00", "2.00")).await;
    assert_eq!(s, 201, "{small}");
    let small_id = small["id"].as_str().unwrap();
    let (s, v) = decide_batch(&app, &a1, small_id, "approve", "b-small").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("not_pending_approval")),
        "{v}"
    );
    app.stop().await;
}
