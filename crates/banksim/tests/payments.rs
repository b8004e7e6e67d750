//! Payments at the simulated cn-xml bank over real HTTP on loopback:
//! execution against the ledger, each reference at most once, rejection
//! codes, settlement, returns, ingest delay, the executions endpoint, and
//! each fault kind acting before or after execution as named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use banksim::{Fault, FaultRule, SimBankConfig, SimOptions, SimPaymentConfig, SimServer, When};
use domain::{Direction, SystemClock};
use formats::cn_xml::messages::{self, PaymentRequest, PaymentResult};
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
    let options = SimOptions {
        payments,
        random_faults: None,
    };
    SimServer::start_with_options(
        SimBankConfig::cn_xml_demo("cmb", 3),
        loopback(),
        Arc::new(SystemClock),
        options,
    )
    .await
    .unwrap()
}

fn instant_settlement() -> SimPaymentConfig {
    SimPaymentConfig {
        settle_delay_ms: 0,
        ..SimPaymentConfig::default()
    }
}

/// A CNY payment of `amount` from the bank's first account.
fn payment(server: &SimServer, reference: &str, amount: &str) -> PaymentRequest {
    let debtor = server.ledger().accounts()[0].number.clone();
    PaymentRequest {
        reference: reference.into(),
        debtor_account: debtor,
        currency_code: "10".into(),
        amount: amount.into(),
        creditor_account: "6222020200112233".into(),
        creditor_name: "上海某某贸易有限公司".into(),
        creditor_bank_code: "102290000011".into(),
        creditor_bic: String::new(),
        creditor_bank_name: "中国工商银行上海分行".into(),
        creditor_type: "C".into(),
        remittance: "货款".into(),
        purpose: String::new(),
        urgent: "N".into(),
        execution_date: "20261127".into(),
    }
}

/// Posts a packet; `None` when the connection broke without an answer.
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

async fn submit(server: &SimServer, p: &PaymentRequest) -> messages::Response<PaymentResult> {
    let (status, body) = post(server, &messages::submit_payment_request("DEMO01", "S1", p))
        .await
        .expect("an answer");
    assert_eq!(status, 200);
    messages::parse_submit_payment(&decode(&body, &Limits::default()).unwrap()).unwrap()
}

async fn query(server: &SimServer, references: &[&str]) -> Vec<PaymentResult> {
    let refs: Vec<String> = references.iter().map(|r| r.to_string()).collect();
    let (status, body) = post(
        server,
        &messages::query_payment_request("DEMO01", "Q1", &refs),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 200);
    let response =
        messages::parse_query_payment(&decode(&body, &Limits::default()).unwrap()).unwrap();
    assert!(response.is_ok(), "{response:?}");
    response.records
}

fn booked(server: &SimServer) -> i64 {
    server.ledger().accounts()[0].booked_minor
}

fn count_of(server: &SimServer, reference: &str) -> u32 {
    server
        .executions()
        .iter()
        .find(|e| e.reference == reference)
        .map_or(0, |e| e.count)
}

#[tokio::test]
async fn a_payment_debits_the_ledger_once_even_when_resubmitted() {
    let server = start(instant_settlement()).await;
    let before = booked(&server);
    let p = payment(&server, "REF-ONCE-1", "100.00");
    let first = submit(&server, &p).await;
    assert!(first.is_ok());
    assert_eq!(first.records[0].request_status, "FIN");
    assert_eq!(first.records[0].result_flag, "S");
    assert_eq!(booked(&server), before - 10_000);

    let second = submit(&server, &p).await;
    assert_eq!(second.ret_code, messages::RET_DUPLICATE_REFERENCE);
    assert_eq!(second.records[0].result_flag, "S", "the original's result");
    assert_eq!(second.records[0].bank_ref, first.records[0].bank_ref);
    assert_eq!(booked(&server), before - 10_000, "never debited twice");
    let executions = server.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].count, 1);
    assert_eq!(executions[0].submissions, 2);
    assert_eq!(executions[0].amount, "100.00");

    // The debit is in the statement history with our reference.
    let today = server.ledger().today();
    let debtor = p.debtor_account.clone();
    let entries = server.ledger().entries(&debtor, today, today).unwrap();
    let debit = entries.iter().find(|e| e.e2e_ref == "REF-ONCE-1").unwrap();
    assert_eq!(debit.direction, Direction::Debit);
    assert_eq!(debit.amount_minor, 10_000);
    assert_eq!(debit.balance_after_minor, Some(before - 10_000));
}

#[tokio::test]
async fn business_failures_carry_the_family_codes_and_move_no_money() {
    let debtor_closed = {
        let probe = start(SimPaymentConfig::default()).await;
        probe.ledger().accounts()[1].number.clone()
    };
    let server = start(SimPaymentConfig {
        settle_delay_ms: 0,
        closed_accounts: vec![debtor_closed.clone()],
        ..SimPaymentConfig::default()
    })
    .await;
    let before = booked(&server);
    let mut cases = Vec::new();
    let mut p = payment(&server, "F-FUNDS", "99999999999.00");
    cases.push((p.clone(), "F", "INSUFFICIENT_FUNDS", "余额不足"));
    p = payment(&server, "F-ACC", "1.00");
    p.creditor_account = "000123".into();
    cases.push((p.clone(), "B", "INVALID_ACCOUNT", "收款账号不存在"));
    p = payment(&server, "F-NAME", "1.00");
    p.creditor_name = "错名公司".into();
    cases.push((p.clone(), "F", "NAME_MISMATCH", "户名不符"));
    p = payment(&server, "F-CLOSED", "1.00");
    p.debtor_account = debtor_closed;
    cases.push((p.clone(), "B", "ACCOUNT_CLOSED", "付款账户已销户"));
    p = payment(&server, "F-NODEBTOR", "1.00");
    p.debtor_account = "999999999".into();
    cases.push((p.clone(), "B", "INVALID_ACCOUNT", "付款账号不存在"));
    for (p, flag, code, text) in cases {
        let answer = submit(&server, &p).await;
        assert!(answer.is_ok(), "{}: request level is accepted", p.reference);
        let result = &answer.records[0];
        assert_eq!(
            (
                result.request_status.as_str(),
                result.result_flag.as_str(),
                result.error_code.as_str(),
                result.error_text.as_str()
            ),
            ("FIN", flag, code, text),
            "{}",
            p.reference
        );
        assert_eq!(count_of(&server, &p.reference), 1);
    }
    assert_eq!(booked(&server), before, "failures move no money");
    assert!(server.executions().iter().all(|e| e.status == "failed"));
}

#[tokio::test]
async fn an_overdraft_account_may_pay_beyond_its_balance() {
    let probe = start(SimPaymentConfig::default()).await;
    let debtor = probe.ledger().accounts()[0].number.clone();
    let server = start(SimPaymentConfig {
        settle_delay_ms: 0,
        overdraft_accounts: vec![debtor],
        ..SimPaymentConfig::default()
    })
    .await;
    let before = booked(&server);
    let answer = submit(&server, &payment(&server, "OD-1", "99999999999.00")).await;
    assert_eq!(answer.records[0].result_flag, "S");
    assert_eq!(booked(&server), before - 9_999_999_999_900);
}

#[tokio::test]
async fn malformed_instructions_are_refused_at_request_level_and_not_recorded() {
    let server = start(instant_settlement()).await;
    let mut p = payment(&server, "BAD-1", "0.00");
    let answer = submit(&server, &p).await;
    assert_eq!(answer.ret_code, messages::RET_BAD_REQUEST);
    assert!(answer.records.is_empty());
    p.amount = "1.00".into();
    p.creditor_name = "测".repeat(31);
    assert_eq!(
        submit(&server, &p).await.ret_code,
        messages::RET_BAD_REQUEST
    );
    assert!(server.executions().is_empty());
    // The reference is still free: a correct instruction executes.
    p.creditor_name = "张伟".into();
    assert!(submit(&server, &p).await.is_ok());
    assert_eq!(count_of(&server, "BAD-1"), 1);
}

#[tokio::test]
async fn settlement_comes_after_the_delay() {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 300,
        ..SimPaymentConfig::default()
    })
    .await;
    let answer = submit(&server, &payment(&server, "SETTLE-1", "5.00")).await;
    assert_eq!(answer.records[0].request_status, "ACC");
    assert_eq!(answer.records[0].result_flag, "");
    let now = query(&server, &["SETTLE-1"]).await;
    assert_eq!(now[0].request_status, "ACC");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let later = query(&server, &["SETTLE-1"]).await;
    assert_eq!(
        (
            later[0].request_status.as_str(),
            later[0].result_flag.as_str()
        ),
        ("FIN", "S")
    );
    assert_eq!(server.executions()[0].status, "settled");
}

#[tokio::test]
async fn a_share_of_payments_is_returned_and_credited_back() {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 0,
        return_delay_ms: 50,
        return_share_percent: 50,
        ..SimPaymentConfig::default()
    })
    .await;
    let before = booked(&server);
    let refs: Vec<String> = (0..40).map(|i| format!("RET-{i}")).collect();
    for reference in &refs {
        submit(&server, &payment(&server, reference, "1.00")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked: Vec<&str> = refs.iter().map(String::as_str).collect();
    let results = query(&server, &asked).await;
    let returned = results.iter().filter(|r| r.result_flag == "R").count();
    let settled = results.iter().filter(|r| r.result_flag == "S").count();
    assert_eq!(returned + settled, 40);
    assert!(
        (8..=32).contains(&returned),
        "about half returned: {returned}"
    );
    assert!(results
        .iter()
        .filter(|r| r.result_flag == "R")
        .all(|r| r.error_code == "RETURNED" && r.request_status == "FIN"));
    // Net debit is the settled payments only; the returns are in the history.
    assert_eq!(booked(&server), before - 100 * settled as i64);
    let today = server.ledger().today();
    let debtor = server.ledger().accounts()[0].number.clone();
    let credits = server
        .ledger()
        .entries(&debtor, today, today)
        .unwrap()
        .into_iter()
        .filter(|e| e.direction == Direction::Credit && e.remittance.starts_with("退票"))
        .count();
    assert_eq!(credits, returned);

    // The same seed returns the same references.
    let again = start(SimPaymentConfig {
        settle_delay_ms: 0,
        return_delay_ms: 0,
        return_share_percent: 50,
        ..SimPaymentConfig::default()
    })
    .await;
    for reference in &refs {
        submit(&again, &payment(&again, reference, "1.00")).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let replay = query(&again, &asked).await;
    let flags = |rs: &[PaymentResult]| rs.iter().map(|r| r.result_flag.clone()).collect::<Vec<_>>();
    assert_eq!(flags(&replay), flags(&results));
}

/// Returns credited back by the bank's own ticker, with nobody asking: the
/// ticker sleeps while nothing is in flight and a recorded payment wakes it,
/// the first and one recorded after the ticker went idle again alike.
#[tokio::test]
async fn the_ticker_books_returns_unasked_and_wakes_again_after_idling() {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 0,
        return_delay_ms: 50,
        return_share_percent: 100,
        ..SimPaymentConfig::default()
    })
    .await;
    let debtor = server.ledger().accounts()[0].number.clone();
    let returns = || {
        let today = server.ledger().today();
        server
            .ledger()
            .entries(&debtor, today, today)
            .unwrap()
            .into_iter()
            .filter(|e| e.direction == Direction::Credit && e.remittance.starts_with("退票"))
            .count()
    };
    // Polls the ledger only (no payment query, which would apply what is
    // due itself) until `n` returns are booked, for at most 5 s.
    let wait_for = |n: usize| async move {
        for _ in 0..100 {
            if returns() == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    submit(&server, &payment(&server, "TICK-1", "1.00")).await;
    assert!(wait_for(1).await, "the first return was not booked unasked");
    // Idle now: the ticker waits for the next payment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(returns(), 1);
    submit(&server, &payment(&server, "TICK-2", "1.00")).await;
    assert!(
        wait_for(2).await,
        "the ticker did not wake for a payment recorded after it idled"
    );
}

#[tokio::test]
async fn a_young_instruction_is_not_found_although_it_executed() {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 0,
        ingest_delay_ms: 400,
        ..SimPaymentConfig::default()
    })
    .await;
    let before = booked(&server);
    submit(&server, &payment(&server, "INGEST-1", "3.00")).await;
    assert_eq!(booked(&server), before - 300, "executed at once");
    let early = query(&server, &["INGEST-1", "NEVER-SENT"]).await;
    assert!(early[0].is_not_found());
    assert!(early[1].is_not_found());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late = query(&server, &["INGEST-1", "NEVER-SENT"]).await;
    assert_eq!(late[0].result_flag, "S");
    assert!(late[1].is_not_found());
}

#[tokio::test]
async fn executions_endpoint_lists_every_instruction() {
    let server = start(instant_settlement()).await;
    submit(&server, &payment(&server, "EX-1", "12.34")).await;
    submit(&server, &payment(&server, "EX-1", "12.34")).await;
    let mut failing = payment(&server, "EX-2", "1.00");
    failing.creditor_account = "0001".into();
    submit(&server, &failing).await;
    let response = client()
        .get(format!("{}_sim/executions", server.url()))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["reference"], "EX-1");
    assert_eq!(items[0]["count"], 1);
    assert_eq!(items[0]["amount"], "12.34");
    assert_eq!(items[0]["status"], "settled");
    assert_eq!(items[1]["reference"], "EX-2");
    assert_eq!(items[1]["status"], "failed");
}

#[tokio::test]
async fn payment_config_and_random_faults_are_set_at_run_time() {
    let server = start(SimPaymentConfig::default()).await;
    let url = server.url();
    let put = client()
        .put(format!("{url}_sim/payments/config"))
        .body(r#"{"settle_delay_ms":0,"ingest_delay_ms":5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    assert_eq!(server.payments().config().ingest_delay_ms, 5);
    let bad = client()
        .put(format!("{url}_sim/payments/config"))
        .body(r#"{"return_share_percent":101}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let random = client()
        .put(format!("{url}_sim/faults/random"))
        .body(r#"{"seed":9,"rules":[{"kind":"reset","when":"after","percent":100,"function":"SubmitPayment"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(random.status().as_u16(), 200);
    let p = payment(&server, "RND-1", "1.00");
    assert!(post(
        &server,
        &messages::submit_payment_request("DEMO01", "S", &p)
    )
    .await
    .is_none());
    assert_eq!(count_of(&server, "RND-1"), 1, "executed, then reset");
    let cleared = client()
        .delete(format!("{url}_sim/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status().as_u16(), 204);
    assert!(server.faults().random().is_none());
}

/// What a client observes from one faulted submission.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The connection broke without an answer.
    NoAnswer,
    Http(u16),
    /// 200, but the body is not a packet.
    Garbage,
    Packet(String),
}

async fn submit_seen(server: &SimServer, reference: &str) -> Seen {
    let p = payment(server, reference, "1.00");
    let packet = messages::submit_payment_request("DEMO01", "S", &p);
    match post(server, &packet).await {
        None => Seen::NoAnswer,
        Some((200, body)) => match decode(&body, &Limits::default()) {
            Ok(answer) => Seen::Packet(answer.head.ret_code.unwrap_or_default()),
            Err(_) => Seen::Garbage,
        },
        Some((status, _)) => Seen::Http(status),
    }
}

#[tokio::test]
async fn each_fault_acts_before_or_after_execution_as_named() {
    // (fault, what the client sees, executed?)
    let table: Vec<(Fault, Seen, bool)> = vec![
        (
            Fault::HttpError {
                status: 500,
                when: When::Before,
            },
            Seen::Http(500),
            false,
        ),
        (
            Fault::HttpError {
                status: 500,
                when: When::After,
            },
            Seen::Http(500),
            true,
        ),
        (Fault::HttpStatus { status: 429 }, Seen::Http(429), false),
        (Fault::Reset { when: When::Before }, Seen::NoAnswer, false),
        (Fault::Reset { when: When::After }, Seen::NoAnswer, true),
        (Fault::ResponseLost { hold_ms: 50 }, Seen::NoAnswer, true),
        (Fault::Truncated, Seen::Garbage, true),
        (Fault::Garbled, Seen::Garbage, true),
        (Fault::TornBody, Seen::NoAnswer, true),
        (
            Fault::ErrorCode {
                code: "SYSTEM_BUSY".into(),
                message: "系统繁忙".into(),
            },
            Seen::Packet("SYSTEM_BUSY".into()),
            false,
        ),
        (Fault::Delay { ms: 50 }, Seen::Packet("0".into()), true),
    ];
    let server = start(instant_settlement()).await;
    for (index, (fault, expected, executed)) in table.into_iter().enumerate() {
        let reference = format!("FAULT-{index}");
        server
            .faults()
            .try_inject(FaultRule::times(fault.clone(), 1).for_function("SubmitPayment"))
            .unwrap();
        let seen = tokio::time::timeout(CALL_LIMIT, submit_seen(&server, &reference))
            .await
            .unwrap();
        assert_eq!(seen, expected, "{fault:?}");
        assert_eq!(
            count_of(&server, &reference),
            u32::from(executed),
            "{fault:?}"
        );
        // Afterwards the bank answers by reference like any other time.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let status = query(&server, &[&reference]).await;
        assert_eq!(status[0].is_not_found(), !executed, "{fault:?}");
    }
    assert!(server.executions().iter().all(|e| e.count == 1));
}

#[tokio::test]
async fn a_response_lost_for_longer_than_the_client_waits_times_it_out() {
    let server = start(instant_settlement()).await;
    server
        .faults()
        .try_inject(FaultRule::times(Fault::ResponseLost { hold_ms: 2_000 }, 1))
        .unwrap();
    let p = payment(&server, "LOST-1", "1.00");
    let short = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = short
        .post(server.url())
        .body(encode(&messages::submit_payment_request("DEMO01", "S", &p)).unwrap())
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(count_of(&server, "LOST-1"), 1);
}
