//! Batch chunks at the simulated cn-xml bank over real HTTP on loopback:
//! partial rejections with the single payment's rules, the payroll run's
//! single debit, a resent chunk never executed twice, an item reference
//! never paid twice across chunks, the ingest delay, the executions and
//! batches views, and faults acting before or after execution as for
//! `SubmitPayment`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use banksim::{Fault, FaultRule, SimBankConfig, SimOptions, SimPaymentConfig, SimServer, When};
use domain::{Direction, Money, SystemClock};
use formats::cn_xml::messages::{
    self, BatchFunction, BatchItemRequest, BatchRequest, BatchResponse, PaymentResult,
};
use formats::cn_xml::{decode, encode, Limits, Packet};

const CALL_LIMIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(CALL_LIMIT)
        .build()
        .unwrap()
}

async fn start(payments: SimPaymentConfig) -> SimServer {
    SimServer::start_with_options(
        SimBankConfig::cn_xml_demo("cmb", 3),
        loopback(),
        Arc::new(SystemClock),
        SimOptions {
            payments,
            random_faults: None,
        },
    )
    .await
    .unwrap()
}

fn instant() -> SimPaymentConfig {
    SimPaymentConfig {
        settle_delay_ms: 0,
        ..SimPaymentConfig::default()
    }
}

fn item(reference: &str, amount: &str) -> BatchItemRequest {
    BatchItemRequest {
        reference: reference.into(),
        amount: amount.into(),
        creditor_account: "6222020200112233".into(),
        creditor_name: "张伟".into(),
        creditor_bank_code: String::new(),
        creditor_bic: String::new(),
        creditor_bank_name: String::new(),
        creditor_type: "P".into(),
        remittance: "十一月工资".into(),
        purpose: String::new(),
    }
}

fn debtor(server: &SimServer) -> String {
    server.ledger().accounts()[0].number.clone()
}

/// A CNY chunk from the bank's first account, count and control sum from
/// the items.
fn chunk(
    server: &SimServer,
    function: BatchFunction,
    reference: &str,
    items: Vec<BatchItemRequest>,
) -> BatchRequest {
    let sum: i64 = items
        .iter()
        .map(|i| {
            Money::parse_bank_decimal(&i.amount, domain::Currency::CNY)
                .unwrap()
                .minor()
        })
        .sum();
    BatchRequest {
        function,
        reference: reference.into(),
        batch_reference: format!("B-{reference}"),
        debtor_account: debtor(server),
        currency_code: "10".into(),
        execution_date: "20261127".into(),
        item_count: items.len().to_string(),
        control_sum: Money::from_minor(sum, domain::Currency::CNY).to_decimal_string(),
        items,
    }
}

async fn post(server: &SimServer, packet: &Packet) -> Option<(u16, Vec<u8>)> {
    let response = client()
        .post(server.url())
        .body(encode(packet).unwrap())
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.bytes().await.ok()?;
    Some((status, body.to_vec()))
}

async fn submit(server: &SimServer, batch: &BatchRequest) -> BatchResponse {
    let (status, body) = post(
        server,
        &messages::submit_batch_request("DEMO01", "S1", batch),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 200);
    messages::parse_submit_batch(batch.function, &decode(&body, &Limits::default()).unwrap())
        .unwrap()
}

async fn query(server: &SimServer, reference: &str) -> BatchResponse {
    let (status, body) = post(
        server,
        &messages::query_batch_request("DEMO01", "Q1", reference),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 200);
    let response =
        messages::parse_query_batch(&decode(&body, &Limits::default()).unwrap()).unwrap();
    assert!(response.is_ok(), "{response:?}");
    response
}

fn booked(server: &SimServer) -> i64 {
    server.ledger().accounts()[0].booked_minor
}

fn available(server: &SimServer) -> i64 {
    server.ledger().accounts()[0].available_minor
}

fn outcome(results: &[PaymentResult], reference: &str) -> (String, String, String) {
    let r = results
        .iter()
        .find(|r| r.reference == reference)
        .unwrap_or_else(|| panic!("no result for {reference}"));
    (
        r.request_status.clone(),
        r.result_flag.clone(),
        r.error_code.clone(),
    )
}

fn fin(flag: &str, code: &str) -> (String, String, String) {
    ("FIN".into(), flag.into(), code.into())
}

#[tokio::test]
async fn a_supplier_chunk_executes_item_by_item_with_partial_rejections() {
    let server = start(instant()).await;
    let before = booked(&server);
    let mut bad_account = item("S-2", "2.00");
    bad_account.creditor_account = "000123".into();
    let mut bad_name = item("S-3", "3.00");
    bad_name.creditor_name = "错名张三".into();
    let too_much = item("S-4", "99999999999.00");
    let batch = chunk(
        &server,
        BatchFunction::Supplier,
        "C-SUP-1",
        vec![
            item("S-1", "1.00"),
            bad_account,
            bad_name,
            too_much,
            item("S-5", "5.00"),
        ],
    );
    let answer = submit(&server, &batch).await;
    assert!(answer.is_ok(), "{answer:?}");
    let summary = answer.summary.unwrap();
    assert_eq!(
        (
            summary.request_status.as_str(),
            summary.finished.as_str(),
            summary.item_count.as_str(),
            summary.success_count.as_str(),
            summary.failed_count.as_str()
        ),
        ("FIN", "Y", "5", "2", "3")
    );

    let status = query(&server, "C-SUP-1").await;
    assert_eq!(status.items.len(), 5);
    assert_eq!(outcome(&status.items, "S-1"), fin("S", ""));
    assert_eq!(outcome(&status.items, "S-2"), fin("B", "INVALID_ACCOUNT"));
    assert_eq!(outcome(&status.items, "S-3"), fin("F", "NAME_MISMATCH"));
    assert_eq!(
        outcome(&status.items, "S-4"),
        fin("F", "INSUFFICIENT_FUNDS")
    );
    assert_eq!(outcome(&status.items, "S-5"), fin("S", ""));

    // One debit per executed item, with the item's reference.
    assert_eq!(booked(&server), before - 600);
    let today = server.ledger().today();
    let entries = server
        .ledger()
        .entries(&debtor(&server), today, today)
        .unwrap();
    let debits: Vec<_> = entries
        .iter()
        .filter(|e| e.e2e_ref.starts_with("S-"))
        .map(|e| (e.e2e_ref.as_str(), e.amount_minor, e.direction))
        .collect();
    assert_eq!(
        debits,
        vec![
            ("S-1", 100, Direction::Debit),
            ("S-5", 500, Direction::Debit)
        ]
    );
}

#[tokio::test]
async fn insufficient_funds_is_checked_against_the_running_balance() {
    let server = start(instant()).await;
    let start_available = available(&server);
    assert!(start_available > 200, "the first demo account has money");
    let half_and_more =
        Money::from_minor(start_available / 2 + 1, domain::Currency::CNY).to_decimal_string();
    for (function, reference) in [
        (BatchFunction::Supplier, "C-RUN-S"),
        (BatchFunction::Payroll, "C-RUN-P"),
    ] {
        let server = start(instant()).await;
        let prefix = reference.to_string();
        let batch = chunk(
            &server,
            function,
            reference,
            vec![
                item(&format!("{prefix}-1"), &half_and_more),
                item(&format!("{prefix}-2"), &half_and_more),
                item(&format!("{prefix}-3"), "1.00"),
            ],
        );
        submit(&server, &batch).await;
        let status = query(&server, reference).await;
        assert_eq!(outcome(&status.items, &format!("{prefix}-1")), fin("S", ""));
        assert_eq!(
            outcome(&status.items, &format!("{prefix}-2")),
            fin("F", "INSUFFICIENT_FUNDS"),
            "{function:?}: the first item already spent half the balance"
        );
        assert_eq!(outcome(&status.items, &format!("{prefix}-3")), fin("S", ""));
        assert_eq!(
            available(&server),
            start_available - (start_available / 2 + 1) - 100,
            "{function:?}"
        );
    }
}

#[tokio::test]
async fn a_payroll_run_books_one_debit_for_its_executed_items() {
    let server = start(instant()).await;
    let before = booked(&server);
    let mut wrong_name = item("P-3", "300.00");
    wrong_name.creditor_name = "错名李四".into();
    let batch = chunk(
        &server,
        BatchFunction::Payroll,
        "C-PAY-1",
        vec![item("P-1", "8500.00"), item("P-2", "9200.50"), wrong_name],
    );
    let answer = submit(&server, &batch).await;
    let summary = answer.summary.unwrap();
    assert_eq!(
        (
            summary.success_count.as_str(),
            summary.failed_count.as_str()
        ),
        ("2", "1")
    );
    assert_eq!(booked(&server), before - 1_770_050);
    let today = server.ledger().today();
    let entries = server
        .ledger()
        .entries(&debtor(&server), today, today)
        .unwrap();
    let ours: Vec<_> = entries
        .iter()
        .filter(|e| e.e2e_ref == "C-PAY-1" || e.e2e_ref.starts_with("P-"))
        .collect();
    assert_eq!(ours.len(), 1, "one debit for the run: {ours:?}");
    assert_eq!(ours[0].direction, Direction::Debit);
    assert_eq!(ours[0].amount_minor, 1_770_050);
    assert_eq!(ours[0].remittance, "代发工资 B-C-PAY-1");

    // Items are still reported one by one.
    let status = query(&server, "C-PAY-1").await;
    assert_eq!(outcome(&status.items, "P-1"), fin("S", ""));
    assert_eq!(outcome(&status.items, "P-2"), fin("S", ""));
    assert_eq!(outcome(&status.items, "P-3"), fin("F", "NAME_MISMATCH"));
    let views = server.batches();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].kind, "payroll");
    assert_eq!(views[0].payroll_debit, "17700.50");
    assert!(views[0].finished);
}

#[tokio::test]
async fn a_payroll_item_paying_a_company_refuses_the_chunk() {
    let server = start(instant()).await;
    let mut company = item("PC-1", "1.00");
    company.creditor_type = "C".into();
    let answer = submit(
        &server,
        &chunk(&server, BatchFunction::Payroll, "C-PAY-C", vec![company]),
    )
    .await;
    assert_eq!(answer.ret_code, messages::RET_BAD_REQUEST);
    assert!(server.executions().is_empty());
}

#[tokio::test]
async fn a_resent_chunk_is_answered_with_the_original_and_not_executed_again() {
    let server = start(instant()).await;
    let before = booked(&server);
    let batch = chunk(
        &server,
        BatchFunction::Supplier,
        "C-DUP-1",
        vec![item("D-1", "10.00"), item("D-2", "20.00")],
    );
    let first = submit(&server, &batch).await;
    assert!(first.is_ok());
    let again = submit(&server, &batch).await;
    assert_eq!(again.ret_code, messages::RET_DUPLICATE_REFERENCE);
    assert_eq!(again.summary, first.summary, "the original's summary");
    assert_eq!(booked(&server), before - 3_000, "debited once");
    let executions = server.executions();
    assert_eq!(executions.len(), 2);
    assert!(executions
        .iter()
        .all(|e| e.count == 1 && e.submissions == 2));
    assert_eq!(server.batches()[0].submissions, 2);
}

#[tokio::test]
async fn an_item_reference_already_executed_fails_instead_of_paying_twice() {
    let server = start(instant()).await;
    // A single payment and a first chunk use two references...
    let single = messages::PaymentRequest {
        reference: "X-SINGLE".into(),
        debtor_account: debtor(&server),
        currency_code: "10".into(),
        amount: "1.00".into(),
        creditor_account: "6222020200112233".into(),
        creditor_name: "张伟".into(),
        creditor_bank_code: String::new(),
        creditor_bic: String::new(),
        creditor_bank_name: String::new(),
        creditor_type: "P".into(),
        remittance: "工资".into(),
        purpose: String::new(),
        urgent: "N".into(),
        execution_date: "20261127".into(),
    };
    post(
        &server,
        &messages::submit_payment_request("DEMO01", "S0", &single),
    )
    .await
    .unwrap();
    submit(
        &server,
        &chunk(
            &server,
            BatchFunction::Supplier,
            "C-X-1",
            vec![item("X-1", "1.00")],
        ),
    )
    .await;
    let before = booked(&server);
    // ...that a second chunk (a new chunk reference) carries again.
    let answer = submit(
        &server,
        &chunk(
            &server,
            BatchFunction::Payroll,
            "C-X-2",
            vec![
                item("X-1", "1.00"),
                item("X-SINGLE", "1.00"),
                item("X-2", "2.00"),
            ],
        ),
    )
    .await;
    assert!(answer.is_ok());
    let status = query(&server, "C-X-2").await;
    assert_eq!(outcome(&status.items, "X-1"), fin("F", "DUPLICATE_ITEM"));
    assert_eq!(
        outcome(&status.items, "X-SINGLE"),
        fin("F", "DUPLICATE_ITEM")
    );
    assert_eq!(outcome(&status.items, "X-2"), fin("S", ""));
    assert_eq!(booked(&server), before - 200, "only the new item is paid");
    let executions = server.executions();
    assert!(executions.iter().all(|e| e.count == 1), "{executions:?}");
    assert_eq!(executions.len(), 3, "X-SINGLE, X-1, X-2");
    let x1 = executions.iter().find(|e| e.reference == "X-1").unwrap();
    assert_eq!(x1.batch_reference.as_deref(), Some("C-X-1"));
    assert_eq!(x1.submissions, 2);
}

#[tokio::test]
async fn a_malformed_chunk_is_refused_whole_and_not_recorded() {
    let server = start(instant()).await;
    let mut wrong_sum = chunk(
        &server,
        BatchFunction::Supplier,
        "C-BAD-1",
        vec![item("M-1", "1.00"), item("M-2", "2.00")],
    );
    wrong_sum.control_sum = "3.01".into();
    let mut wrong_count = wrong_sum.clone();
    wrong_count.control_sum = "3.00".into();
    wrong_count.item_count = "3".into();
    let mut twice = wrong_count.clone();
    twice.item_count = "2".into();
    twice.items[1].reference = "M-1".into();
    for bad in [wrong_sum, wrong_count, twice] {
        let answer = submit(&server, &bad).await;
        assert_eq!(answer.ret_code, messages::RET_BAD_REQUEST, "{bad:?}");
        assert!(answer.summary.is_none());
    }
    assert!(server.executions().is_empty());
    assert!(server.batches().is_empty());
    // The chunk reference is still free.
    let good = chunk(
        &server,
        BatchFunction::Supplier,
        "C-BAD-1",
        vec![item("M-1", "1.00"), item("M-2", "2.00")],
    );
    assert!(submit(&server, &good).await.is_ok());
}

#[tokio::test]
async fn a_young_chunk_is_not_found_and_items_settle_after_the_delay() {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 300,
        ingest_delay_ms: 150,
        ..SimPaymentConfig::default()
    })
    .await;
    let before = booked(&server);
    let answer = submit(
        &server,
        &chunk(
            &server,
            BatchFunction::Supplier,
            "C-YOUNG",
            vec![item("Y-1", "4.00")],
        ),
    )
    .await;
    let summary = answer.summary.unwrap();
    assert_eq!(
        (summary.request_status.as_str(), summary.finished.as_str()),
        ("ACC", "N")
    );
    assert_eq!(booked(&server), before - 400, "executed at once");
    let early = query(&server, "C-YOUNG").await;
    assert!(early.summary.unwrap().is_not_found());
    assert!(early.items.is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let middle = query(&server, "C-YOUNG").await;
    assert_eq!(middle.summary.unwrap().finished, "N");
    assert_eq!(
        outcome(&middle.items, "Y-1"),
        ("ACC".into(), String::new(), String::new())
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let late = query(&server, "C-YOUNG").await;
    assert_eq!(late.summary.unwrap().finished, "Y");
    assert_eq!(outcome(&late.items, "Y-1"), fin("S", ""));
    assert!(query(&server, "C-NEVER")
        .await
        .summary
        .unwrap()
        .is_not_found());
}

/// A bank that returns every item `return_delay_ms` after it settles (at
/// once), with a chunk of two items (1.00 and 2.00) of `function` executed
/// once its payment ticker has gone idle: the bank and its booked balance
/// before the chunk.
async fn returning_chunk(
    return_delay_ms: u64,
    function: BatchFunction,
    reference: &str,
    items: [&str; 2],
) -> (SimServer, i64) {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 0,
        return_delay_ms,
        return_share_percent: 100,
        ..SimPaymentConfig::default()
    })
    .await;
    let before = booked(&server);
    // The ticker's first round finds nothing in flight and waits to be woken.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let items = vec![item(items[0], "1.00"), item(items[1], "2.00")];
    submit(&server, &chunk(&server, function, reference, items)).await;
    (server, before)
}

#[tokio::test]
async fn returned_items_are_credited_back_one_by_one() {
    let (server, before) =
        returning_chunk(0, BatchFunction::Payroll, "C-RET", ["R-1", "R-2"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = query(&server, "C-RET").await;
    assert_eq!(outcome(&status.items, "R-1"), fin("R", "RETURNED"));
    assert_eq!(outcome(&status.items, "R-2"), fin("R", "RETURNED"));
    assert_eq!(status.summary.unwrap().finished, "Y");
    assert_eq!(booked(&server), before, "debited once, credited per item");
}

/// A chunk's returns are booked by the bank's ticker with nobody asking:
/// recording the chunk's items wakes it.
#[tokio::test]
async fn a_chunks_returns_are_booked_unasked() {
    let (server, before) =
        returning_chunk(50, BatchFunction::Supplier, "C-TICK", ["T-1", "T-2"]).await;
    assert_eq!(booked(&server), before - 300, "debited at execution");
    // The ledger only (no status query, which applies what is due itself),
    // for at most 5 s.
    let mut credited = false;
    for _ in 0..100 {
        if booked(&server) == before {
            credited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(credited, "the chunk's returns were not booked unasked");
}

#[tokio::test]
async fn executions_endpoint_lists_batch_items_with_their_chunk() {
    let server = start(instant()).await;
    submit(
        &server,
        &chunk(
            &server,
            BatchFunction::Supplier,
            "C-VIEW",
            vec![item("V-1", "12.34")],
        ),
    )
    .await;
    let body: serde_json::Value = client()
        .get(format!("{}_sim/executions", server.url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["reference"], "V-1");
    assert_eq!(items[0]["count"], 1);
    assert_eq!(items[0]["amount"], "12.34");
    assert_eq!(items[0]["status"], "settled");
    assert_eq!(items[0]["batch_reference"], "C-VIEW");
    let batches: serde_json::Value = client()
        .get(format!("{}_sim/batches", server.url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(batches["items"][0]["reference"], "C-VIEW");
    assert_eq!(batches["items"][0]["kind"], "supplier");
    // A view without the new field (an older reader's) still parses.
    let old: banksim::ExecutionView = serde_json::from_str(
        r#"{"reference":"A","count":1,"amount":"1.00","currency":"CNY","status":"settled","submissions":1}"#,
    )
    .unwrap();
    assert_eq!(old.batch_reference, None);
}

#[tokio::test]
async fn faults_act_before_or_after_the_chunk_executes_as_named() {
    let busy = Fault::ErrorCode {
        code: "SYSTEM_BUSY".into(),
        message: "系统繁忙".into(),
    };
    // (fault, executed?)
    let table = vec![
        (
            Fault::HttpError {
                status: 500,
                when: When::Before,
            },
            false,
        ),
        (
            Fault::HttpError {
                status: 500,
                when: When::After,
            },
            true,
        ),
        (Fault::Reset { when: When::Before }, false),
        (Fault::Reset { when: When::After }, true),
        (Fault::ResponseLost { hold_ms: 20 }, true),
        (Fault::Garbled, true),
        (Fault::TornBody, true),
        (busy, false),
    ];
    let server = start(instant()).await;
    for (index, (fault, executed)) in table.into_iter().enumerate() {
        for function in [BatchFunction::Supplier, BatchFunction::Payroll] {
            let reference = format!("C-F-{index}-{}", function.type_code());
            server
                .faults()
                .try_inject(FaultRule::times(fault.clone(), 1).for_function(function.code()))
                .unwrap();
            let batch = chunk(
                &server,
                function,
                &reference,
                vec![item(&format!("{reference}-1"), "1.00")],
            );
            let packet = messages::submit_batch_request("DEMO01", "S", &batch);
            tokio::time::timeout(CALL_LIMIT, post(&server, &packet))
                .await
                .unwrap();
            let count = server
                .executions()
                .iter()
                .filter(|e| e.batch_reference.as_deref() == Some(reference.as_str()))
                .map(|e| e.count)
                .sum::<u32>();
            assert_eq!(count, u32::from(executed), "{fault:?} {function:?}");
            let found = !query(&server, &reference)
                .await
                .summary
                .unwrap()
                .is_not_found();
            assert_eq!(found, executed, "{fault:?} {function:?}");
        }
    }
}
