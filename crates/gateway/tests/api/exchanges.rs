//! Every exchange with a bank is audited: a payment's submission and status queries, a
//! balance refresh and a statement sync each leave `bank.exchange` audit records naming
//! function, reference and result; the bodies kept apart (`GET /v1/bank-exchanges/{id}`)
//! are masked (full account numbers never, their last four digits yes), and the audit
//! chain still verifies with them in it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use banks::{BankExchange, ExchangeSink, ExchangeSubject};
use gateway::exchanges::{ExchangeRecorder, ReferenceOwners};
use serde_json::{json, Value};

use crate::helpers::{split, TestApp};

const CREDITOR_ACCOUNT: &str = "6222020000001234";

async fn exchanges(app: &TestApp, auditor: &str, query: &str) -> Vec<Value> {
    let (status, page) = app
        .get(
            &format!("/v1/audit?action=bank.exchange&limit=200{query}"),
            auditor,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// The exchange's stored bodies, checked masked against `numbers`.
async fn masked_bodies(app: &TestApp, auditor: &str, record: &Value, numbers: &[&str]) -> Value {
    let id = record["details"]["exchange_id"]
        .as_i64()
        .expect("exchange_id");
    let (status, exchange) = app.get(&format!("/v1/bank-exchanges/{id}"), auditor).await;
    assert_eq!(status, 200, "{exchange}");
    assert_eq!(exchange["function"], record["details"]["function"]);
    assert_eq!(exchange["outcome"], record["outcome"]);
    let request = exchange["request"]["text"]
        .as_str()
        .expect("a request body");
    let response = exchange["response"]["text"]
        .as_str()
        .expect("an answer body");
    for body in [request, response] {
        for number in numbers {
            assert!(!body.contains(number), "{number} in full: {body}");
        }
    }
    exchange
}

fn last_four(number: &str) -> &str {
    &number[number.len() - 4..]
}

/// A payment of ¥100 from east-1, created with `key`: its id and business reference.
async fn create_payment(app: &TestApp, token: &str, key: &str) -> (String, String) {
    let resp = app
        .http
        .post(app.url("/v1/payments"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({
            "debtor_account_id": "east-1",
            "amount": "100.00",
            "currency": "CNY",
            "creditor": {
                "name": "上海测试贸易有限公司",
                "account": CREDITOR_ACCOUNT,
                "bank_code": "102290000001",
                "bank_name": "中国工商银行上海分行",
                "type": "corporate"
            },
            "remittance": "货款",
        }))
        .send()
        .await
        .unwrap();
    let (status, created) = split(resp).await;
    assert_eq!(status, 201, "{created}");
    (
        created["id"].as_str().unwrap().to_owned(),
        created["business_reference"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn payments_balances_and_statements_leave_masked_audited_exchanges() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let auditor = app.token_for(&app.auditor, None).await;
    let debtor = app.sim("east").ledger().accounts()[0].number.clone();

    // A payment, driven to settled: SubmitPayment, then QueryPayment.
    let (id, reference) = create_payment(&app, &token, "bx-1").await;
    let started = Instant::now();
    loop {
        let w = &app.state.payment_workers;
        w.dispatch_round().await.unwrap();
        w.poll_round().await.unwrap();
        let (_, p) = app.get(&format!("/v1/payments/{id}"), &token).await;
        if p["status"] == "settled" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let of_payment = exchanges(&app, &auditor, &format!("&object=payment:{id}")).await;
    // The submission's and the status query's exchanges took their object from the
    // dispatcher's and the poller's word, which ended with their calls.
    let owners = &app.state.directory.reference_owners;
    assert!(owners.answered() >= 2, "{}", owners.answered());
    assert!(owners.is_empty());
    let functions: Vec<&str> = of_payment
        .iter()
        .map(|r| r["details"]["function"].as_str().unwrap())
        .collect();
    assert_eq!(functions.first(), Some(&"SubmitPayment"), "{of_payment:#?}");
    assert!(functions.contains(&"QueryPayment"), "{functions:?}");
    for record in &of_payment {
        assert_eq!(record["actor"], "bank:east");
        assert_eq!(record["outcome"], "ok");
        assert_eq!(record["details"]["reference"], reference.as_str());
        assert!(record["details"]["elapsed_ms"].is_u64());
        assert!(
            record["position"].is_i64(),
            "linked into the chain: {record}"
        );
        let text = record.to_string();
        assert!(
            !text.contains(&debtor) && !text.contains(CREDITOR_ACCOUNT),
            "{text}"
        );
    }
    let submit = masked_bodies(&app, &auditor, &of_payment[0], &[&debtor, CREDITOR_ACCOUNT]).await;
    let request = submit["request"]["text"].as_str().unwrap();
    assert!(request.contains(last_four(&debtor)), "{request}");
    assert!(request.contains(last_four(CREDITOR_ACCOUNT)), "{request}");
    assert!(request.contains(&reference), "{request}");
    assert!(
        request.contains("上海测试贸易有限公司"),
        "decoded from GBK: {request}"
    );
    assert_eq!(submit["reference"], reference.as_str());

    // A balance refresh and a statement sync of east-1: QueryBalance, QueryHistory, QueryDayBalance.
    let (status, refreshed) = app
        .post("/v1/accounts/east-1/balance:refresh", &token)
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, synced) = app
        .post("/v1/accounts/east-1/transactions:refresh", &token)
        .await;
    assert!(status == 200 || status == 202, "{status} {synced}");
    let of_account = exchanges(&app, &auditor, "&object=account:east-1").await;
    let functions: Vec<&str> = of_account
        .iter()
        .map(|r| r["details"]["function"].as_str().unwrap())
        .collect();
    for function in ["QueryBalance", "QueryHistory", "QueryDayBalance"] {
        assert!(functions.contains(&function), "{function}: {functions:?}");
    }
    for record in &of_account {
        assert_eq!(record["details"]["reference"], "east-1", "{record}");
        assert!(!record.to_string().contains(&debtor), "{record}");
        let exchange = masked_bodies(&app, &auditor, record, &[&debtor]).await;
        let request = exchange["request"]["text"].as_str().unwrap();
        assert!(request.contains(last_four(&debtor)), "{request}");
    }

    // The chain verifies with every exchange in it.
    let key = gateway::audit::CheckpointKey::load_or_create(
        &app.config.data_path(&app.config.audit.checkpoint_key_file),
    )
    .unwrap();
    let public = key.public_key();
    let report = store::audit::verify(
        app.state.store.as_ref(),
        &|cp| gateway::audit::check_checkpoint(&public, cp),
        None,
        &mut |_, _| {},
    )
    .await
    .unwrap()
    .expect("an intact chain");
    assert!(report.records as usize >= of_payment.len() + of_account.len());

    // Unknown ids are problem+json 404s; the route needs audit:read.
    for path in ["/v1/bank-exchanges/999999", "/v1/bank-exchanges/abc"] {
        let resp = app
            .http
            .get(app.url(path))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
        let (_, problem) = split(resp).await;
        assert_eq!(problem["code"], "bank_exchange_not_found", "{problem}");
    }
    let reader = app.token_for(&app.limited, None).await;
    let id = of_payment[0]["details"]["exchange_id"].as_i64().unwrap();
    let (status, _) = app.get(&format!("/v1/bank-exchanges/{id}"), &reader).await;
    assert_eq!(status, 403);
    app.stop().await;
}

/// An exchange about `reference`, as a connector would hand it to its sink.
fn probe(reference: &str, function: &'static str) -> BankExchange {
    BankExchange {
        bank_id: "east".to_owned(),
        connection_id: "east-conn".to_owned(),
        function,
        subject: ExchangeSubject::References(
            vec![domain::BankReference::parse(reference).unwrap()],
        ),
        outcome: "ok",
        bank_code: None,
        started_at: chrono::Utc::now(),
        elapsed: Duration::from_millis(3),
        request: None,
        response: None,
    }
}

#[tokio::test]
async fn an_exchange_names_what_its_worker_says_else_what_the_store_finds() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let auditor = app.token_for(&app.auditor, None).await;
    let (id, reference) = create_payment(&app, &token, "bx-owner").await;

    // Nobody said whose the reference is: the recorder asks the store.
    let unheld = ExchangeRecorder::new(
        app.state.store.clone(),
        [],
        Arc::new(ReferenceOwners::default()),
    );
    unheld.record(probe(&reference, "ProbeLookedUp")).await;
    // A worker said it (here, a different object, to tell the two apart): its word is
    // taken, and withdrawn when its hold ends; holds of one reference nest.
    let owners = Arc::new(ReferenceOwners::default());
    let told = ExchangeRecorder::new(app.state.store.clone(), [], Arc::clone(&owners));
    {
        let _outer = owners.hold(&reference, "payment_batch:told".to_owned());
        {
            let _inner = owners.hold(&reference, "payment_batch:told".to_owned());
        }
        assert_eq!(owners.len(), 1);
        told.record(probe(&reference, "ProbeTold")).await;
    }
    assert!(owners.is_empty());
    told.record(probe(&reference, "ProbeAfterHold")).await;

    let functions = |records: Vec<Value>| -> Vec<String> {
        records
            .iter()
            .map(|r| r["details"]["function"].as_str().unwrap().to_owned())
            .collect()
    };
    let of_payment = functions(exchanges(&app, &auditor, &format!("&object=payment:{id}")).await);
    assert_eq!(of_payment, ["ProbeLookedUp", "ProbeAfterHold"]);
    let of_told = functions(exchanges(&app, &auditor, "&object=payment_batch:told").await);
    assert_eq!(of_told, ["ProbeTold"]);
    app.stop().await;
}
