//! Payment batches end to end: all-or-nothing intake with field-level
//! errors, idempotency, chunking, partial rejection reported per item,
//! payroll as one debit per chunk, cancel, and the batch's events.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{split, TestApp};

/// An item paying `amount` to a person; `account` and `name` decide what
/// the simulated bank does with it ("000…" does not exist, "错名…" does not
/// match its account).
fn item(amount: &str, account: &str, name: &str) -> Value {
    json!({
        "amount": amount,
        "creditor": {
            "name": name,
            "account": account,
            "bank_code": "102290000001",
            "type": "personal"
        },
        "remittance": "十一月工资",
    })
}

fn batch(kind: &str, items: Vec<Value>, control_sum: &str) -> Value {
    json!({
        "debtor_account_id": "east-1",
        "currency": "CNY",
        "kind": kind,
        "count": items.len(),
        "control_sum": control_sum,
        "items": items,
    })
}

/// `n` valid items of 1.00 each, accounts 62220200000xxxxx.
fn valid_items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| item("1.00", &format!("62220200{i:08}"), &format!("员工{i}")))
        .collect()
}

async fn create(app: &TestApp, token: &str, key: &str, body: &Value) -> (u16, Value, bool) {
    let resp = app
        .http
        .post(app.url("/v1/payment-batches"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = resp.headers().contains_key("idempotent-replayed");
    let (s, v) = split(resp).await;
    (s, v, replayed)
}

/// Runs the workers' rounds by hand until the batch is final (or in
/// needs_review), bounded in time.
async fn drive_batch(app: &TestApp, token: &str, id: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let w = &app.state.payment_workers;
        w.dispatch_chunk_round().await.unwrap();
        w.reap_chunk_round().await.unwrap();
        w.poll_chunk_round().await.unwrap();
        let (s, b) = app.get(&format!("/v1/payment-batches/{id}"), token).await;
        assert_eq!(s, 200, "{b}");
        let status = b["status"].as_str().unwrap_or("").to_owned();
        if ["completed", "failed", "cancelled", "needs_review"].contains(&status.as_str()) {
            return b;
        }
        assert!(
            started.elapsed() < within,
            "batch {id} still {status} after {within:?}: {}",
            b["chunks"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn no_batches(app: &TestApp, token: &str) {
    let (s, list) = app.get("/v1/payment-batches", token).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["items"], json!([]), "nothing was stored");
}

fn errors_by_field(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a batch problem lists its errors: {problem}"))
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn bad_batches_name_every_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;

    // Control sum and count that do not match the items.
    let (s, p, _) = create(
        &app,
        &token,
        "b-sum",
        &batch("payroll", valid_items(3), "3.01"),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(
        errors_by_field(&p),
        vec![(
            "body.control_sum".to_owned(),
            "control_sum_mismatch".to_owned()
        )]
    );
    let mut wrong_count = batch("payroll", valid_items(3), "3.00");
    wrong_count["count"] = json!(4);
    let (s, p, _) = create(&app, &token, "b-count", &wrong_count).await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["field"], "body.count");
    assert_eq!(p["code"], "count_mismatch");

    // Bad items: each problem names its item and field; the good ones pass.
    let mut items = valid_items(5);
    items[1]["amount"] = json!("abc");
    items[3]["creditor"]["bank_code"] = json!("12");
    items[4]["debtor_account_id"] = json!("east-2");
    let (s, p, _) = create(&app, &token, "b-items", &batch("supplier", items, "5.00")).await;
    assert_eq!(s, 422, "{p}");
    let fields = errors_by_field(&p);
    assert!(
        fields.iter().any(|(f, _)| f == "body.items[1].amount"),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|(f, _)| f == "body.items[3].creditor.bank_code"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&(
            "body.items[4].debtor_account_id".to_owned(),
            "unknown_field".to_owned()
        )),
        "{fields:?}"
    );
    assert!(
        !fields.iter().any(|(f, _)| f.starts_with("body.items[0]")),
        "{fields:?}"
    );

    // A name the bank's charset (GBK) cannot carry: the bank's own rule, per item.
    let mut items = valid_items(3);
    items[2]["creditor"]["name"] = json!("张😀三");
    let (s, p, _) = create(&app, &token, "b-gbk", &batch("payroll", items, "3.00")).await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(
        errors_by_field(&p),
        vec![(
            "body.items[2].creditor.name".to_owned(),
            "not_accepted_by_bank".to_owned()
        )]
    );

    // Duplicate end-to-end ids, a missing kind, too many items, not an array.
    let mut items = valid_items(2);
    items[0]["end_to_end_id"] = json!("E2E-1");
    items[1]["end_to_end_id"] = json!("E2E-1");
    let mut no_kind = batch("payroll", items, "2.00");
    no_kind.as_object_mut().unwrap().remove("kind");
    let (s, p, _) = create(&app, &token, "b-dup", &no_kind).await;
    assert_eq!(s, 422, "{p}");
    let fields = errors_by_field(&p);
    assert!(
        fields.contains(&("body.kind".to_owned(), "required".to_owned())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&(
            "body.items[1].end_to_end_id".to_owned(),
            "duplicate_end_to_end_id".to_owned()
        )),
        "{fields:?}"
    );
    let (s, p, _) = create(
        &app,
        &token,
        "b-many",
        &batch("payroll", valid_items(5_001), "5001.00"),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["field"], "body.items");
    assert_eq!(p["code"], "too_many_items");
    let (s, p, _) = create(&app, &token, "b-json", &json!({"items": "x"})).await;
    assert_eq!(s, 422, "{p}");
    assert!(errors_by_field(&p).contains(&("body.items".to_owned(), "invalid_type".to_owned())));

    // Nothing of any of it reached the store or the bank.
    no_batches(&app, &token).await;
    assert!(app.executions("east").await.is_empty());
    // A refused batch leaves its key free: the corrected body is accepted.
    let (s, b, _) = create(
        &app,
        &token,
        "b-sum",
        &batch("payroll", valid_items(3), "3.00"),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    app.stop().await;
}

#[tokio::test]
async fn a_payroll_is_chunked_sent_once_and_reports_each_item() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    // 1,203 items: three chunks of the bank's 500; items 10 and 700 go to an
    // account that does not exist, item 1,100 to a wrong name.
    let mut items = valid_items(1_203);
    items[10]["creditor"]["account"] = json!("0001234567");
    items[700]["creditor"]["account"] = json!("0007654321");
    items[1_100]["creditor"]["name"] = json!("错名员工");
    let body = batch("payroll", items, "1203.00");
    let (s, created, replayed) = create(&app, &token, "payroll-1", &body).await;
    assert_eq!(s, 201, "{created}");
    assert!(!replayed);
    assert_eq!(created["status"], "queued");
    assert_eq!(created["count"], 1_203);
    let chunks = created["chunks"].as_array().unwrap();
    assert_eq!(
        chunks
            .iter()
            .map(|c| c["item_count"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![500, 500, 203]
    );
    // The same key and body: the same answer, marked as a replay; another
    // body under that key: 409.
    let (s, again, replayed) = create(&app, &token, "payroll-1", &body).await;
    assert_eq!((s, replayed), (201, true));
    assert_eq!(again, created);
    let (s, p, _) = create(
        &app,
        &token,
        "payroll-1",
        &batch("payroll", valid_items(1), "1.00"),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );

    let id = created["id"].as_str().unwrap();
    let done = drive_batch(&app, &token, id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{}", done["chunks"]);
    assert_eq!(
        done["items_by_status"],
        json!({"failed": 3, "settled": 1_200}),
        "partial rejection is per item"
    );
    // Each chunk's exchanges took their object (the batch) from the chunk worker's word,
    // which ended with the calls.
    let chunks = done["chunks"].as_array().unwrap().len() as u64;
    let owners = &app.state.directory.reference_owners;
    assert!(
        owners.answered() >= chunks,
        "{} of {chunks}",
        owners.answered()
    );
    assert!(owners.is_empty());
    let items = done["items"].as_array().unwrap();
    assert_eq!(items.len(), 1_203);
    for (i, code) in [
        (10, "INVALID_ACCOUNT"),
        (700, "INVALID_ACCOUNT"),
        (1_100, "NAME_MISMATCH"),
    ] {
        assert_eq!(items[i]["status"], "failed", "{}", items[i]);
        assert_eq!(items[i]["bank_code"], code, "{}", items[i]);
        assert!(items[i]["bank_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(items[11]["status"], "settled");
    assert!(done["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "settled"));

    // At the bank: every item reference executed exactly once, nothing else.
    let executions = app.executions("east").await;
    for it in items {
        let r = it["business_reference"].as_str().unwrap();
        assert_eq!(executions.get(r), Some(&1), "item {r} executed once");
    }
    assert_eq!(executions.len(), 1_203);
    // Payroll: one debit per chunk at the bank, for the chunk's paid items.
    let sim_batches: Value = app
        .http
        .get(format!("{}_sim/batches", app.sim("east").url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let debits: Vec<&str> = sim_batches["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["payroll_debit"].as_str().unwrap_or(""))
        .collect();
    let mut sorted = debits.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["202.00", "499.00", "499.00"], "{sim_batches}");

    // The events of the batch: each status once, in sequence, then completed.
    let events = app
        .state
        .store
        .list_events(&store::EventQuery {
            object_id: Some(id.to_owned()),
            ..store::EventQuery::default()
        })
        .await
        .unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.object_seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let last = events.last().unwrap();
    assert_eq!(last.event_type, store::EventType::PaymentBatchCompleted);
    assert_eq!(last.data["items_by_status"]["failed"], 3);
    assert_eq!(events.first().unwrap().data["status"], "queued");

    // Once settled, the chunks are still asked about (returns come late),
    // but an answer that changes nothing writes nothing: no transition, no
    // audit record, no event.
    let audits = |app: &TestApp| {
        let store = app.state.store.clone();
        async move {
            store
                .list_audit(&store::AuditQuery {
                    action: Some("payment_batch.chunk_transition".to_owned()),
                    limit: 1000,
                    ..store::AuditQuery::default()
                })
                .await
                .unwrap()
                .len()
        }
    };
    let before = audits(&app).await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(
            app.config.payments.status_poll_ms + 100,
        ))
        .await;
        let polled = app.state.payment_workers.poll_chunk_round().await.unwrap();
        assert!(polled > 0, "settled chunks are still watched for returns");
    }
    assert_eq!(audits(&app).await, before, "repeated answers write nothing");
    let (_, again) = app.get(&format!("/v1/payment-batches/{id}"), &token).await;
    assert_eq!(again["updated_at"], done["updated_at"]);

    // Listed, without items.
    let (_, list) = app.get("/v1/payment-batches", &token).await;
    assert_eq!(list["items"][0]["id"], id);
    assert!(list["items"][0].get("items").is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_batch_that_pays_nothing_ends_failed() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    // Far more than any simulated account holds: the bank refuses the item.
    let too_much = "90000000000.00";
    let items = vec![json!({
        "amount": too_much,
        "creditor": {"name": "上海甲公司", "account": "6222020000001111", "bank_code": "102290000001", "type": "corporate"},
        "remittance": "货款"
    })];
    let (s, created, _) = create(
        &app,
        &token,
        "supplier-1",
        &batch("supplier", items, too_much),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let done = drive_batch(&app, &token, id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "failed", "no item was paid: {done}");
    assert_eq!(done["items"][0]["status"], "failed");
    assert_eq!(done["items"][0]["bank_code"], "INSUFFICIENT_FUNDS");
    app.stop().await;
}

#[tokio::test]
async fn a_batch_cancels_before_it_is_sent_and_not_after() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let (_, first, _) = create(
        &app,
        &token,
        "c-1",
        &batch("payroll", valid_items(2), "2.00"),
    )
    .await;
    let id = first["id"].as_str().unwrap();
    let (s, cancelled) = app
        .post(&format!("/v1/payment-batches/{id}/cancel"), &token)
        .await;
    assert_eq!(s, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["items_by_status"], json!({"cancelled": 2}));
    let (s, again) = app
        .post(&format!("/v1/payment-batches/{id}/cancel"), &token)
        .await;
    assert_eq!((s, again["status"].as_str()), (200, Some("cancelled")));
    // Nothing is sent for it.
    app.state
        .payment_workers
        .dispatch_chunk_round()
        .await
        .unwrap();
    assert!(app.executions("east").await.is_empty());

    let (_, second, _) = create(
        &app,
        &token,
        "c-2",
        &batch("payroll", valid_items(2), "2.00"),
    )
    .await;
    let id = second["id"].as_str().unwrap();
    drive_batch(&app, &token, id, Duration::from_secs(30)).await;
    let (s, p) = app
        .post(&format!("/v1/payment-batches/{id}/cancel"), &token)
        .await;
    assert_eq!(s, 409, "{p}");
    assert_eq!(p["code"], "batch_may_have_reached_bank");

    // Another client's view: `limited` reads east-1's batches, and a batch
    // of an account it is not entitled to is a 404 like a missing one.
    let limited = app.token_for(&app.limited, None).await;
    let (s, p) = app
        .get(&format!("/v1/payment-batches/{id}"), &limited)
        .await;
    assert_eq!(s, 200, "{p}");
    let mut south = batch("payroll", valid_items(1), "1.00");
    south["debtor_account_id"] = json!("south-1");
    let (s, other, _) = create(&app, &token, "c-3", &south).await;
    assert_eq!(s, 201, "{other}");
    let (s, p) = app
        .get(
            &format!("/v1/payment-batches/{}", other["id"].as_str().unwrap()),
            &limited,
        )
        .await;
    assert_eq!((s, p["code"].as_str()), (404, Some("batch_not_found")));
    let (s, p) = app
        .post(&format!("/v1/payment-batches/{id}/cancel"), &limited)
        .await;
    assert_eq!(s, 403, "cancel needs payments:write: {p}");
    let (s, p) = app.get("/v1/payment-batches/bat_0000", &token).await;
    assert_eq!((s, p["field"].as_str()), (404, Some("path.id")));
    app.stop().await;
}
