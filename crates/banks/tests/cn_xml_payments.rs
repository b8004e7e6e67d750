//! cn-xml payments against a real simulated front machine on loopback:
//! submission and status by reference, the rejection codes, a reused
//! reference, and a table of injected faults each landing in the error kind
//! the dispatcher relies on, with the status query telling the truth after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use banks::cn_xml::CnXmlConnector;
use banks::{
    BankConnector, BankError, BankPaymentStatus, ConnectionSettings, PaymentInstruction,
    StatusAnswer, UnknownCause,
};
use banksim::{Fault, FaultRule, SimBankConfig, SimOptions, SimPaymentConfig, SimServer, When};
use domain::{
    AccountNumber, BankReference, BusinessDate, CnapsCode, CreditorType, Currency, Money,
    SystemClock, Urgency,
};

/// Upper bound of any single call in these tests.
const CALL_LIMIT: Duration = Duration::from_secs(10);
/// The connector's request timeout; a lost answer held longer times out.
const REQUEST_TIMEOUT_MS: u64 = 800;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(payments: SimPaymentConfig) -> SimServer {
    SimServer::start_with_options(
        SimBankConfig::cn_xml_demo("cmb", 11),
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

fn settings_for(endpoint: String) -> ConnectionSettings {
    ConnectionSettings {
        bank_id: "simbank".to_string(),
        connection_id: "simbank-main".to_string(),
        endpoint,
        login: "DEMO01".to_string(),
        time_zone: chrono_tz::Asia::Shanghai,
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS),
        max_response_bytes: 1024 * 1024,
        max_accounts_per_query: 50,
        max_idle_connections: 4,
        tls: None,
    }
}

fn connector(server: &SimServer) -> CnXmlConnector {
    CnXmlConnector::new(settings_for(server.url())).unwrap()
}

async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_LIMIT, call)
        .await
        .expect("call did not finish within the test's limit")
}

fn reference(text: &str) -> BankReference {
    BankReference::parse(text).unwrap()
}

fn debtor(server: &SimServer) -> AccountNumber {
    AccountNumber::parse(&server.ledger().accounts()[0].number).unwrap()
}

fn instruction(server: &SimServer, reference_text: &str, minor: i64) -> PaymentInstruction {
    PaymentInstruction {
        reference: reference(reference_text),
        debtor_account: debtor(server),
        amount: Money::from_minor(minor, Currency::CNY),
        creditor_name: "上海某某贸易有限公司".into(),
        creditor_account: "6222020200112233".into(),
        creditor_bank_code: Some(CnapsCode::parse("102290000011").unwrap()),
        creditor_bic: None,
        creditor_bank_name: Some("中国工商银行上海分行".into()),
        creditor_type: CreditorType::Corporate,
        remittance: "货款".into(),
        purpose: None,
        urgency: Urgency::Normal,
        requested_execution_date: BusinessDate::parse_compact("20261127").unwrap(),
    }
}

fn instant() -> SimPaymentConfig {
    SimPaymentConfig {
        settle_delay_ms: 0,
        ..SimPaymentConfig::default()
    }
}

async fn status_of(
    connector: &CnXmlConnector,
    server: &SimServer,
    reference_text: &str,
) -> StatusAnswer {
    bounded(connector.payment_status(&debtor(server), &[reference(reference_text)]))
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn a_payment_is_submitted_and_found_by_reference() {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 200,
        ..SimPaymentConfig::default()
    })
    .await;
    let connector = connector(&server);
    let receipt = bounded(connector.submit_payment(&instruction(&server, "OK-1", 12_345)))
        .await
        .unwrap();
    assert_eq!(receipt.status, BankPaymentStatus::Processing);
    assert_eq!(receipt.bank_code, "ACC");
    let bank_id = receipt.bank_payment_id.clone().expect("a bank id");
    tokio::time::sleep(Duration::from_millis(300)).await;
    match status_of(&connector, &server, "OK-1").await {
        StatusAnswer::Found {
            status,
            bank_payment_id,
            bank_code,
            ..
        } => {
            assert_eq!(status, BankPaymentStatus::Settled);
            assert_eq!(bank_payment_id.as_deref(), Some(bank_id.as_str()));
            assert_eq!(bank_code, "FIN/S");
        }
        other => panic!("expected the payment, got {other:?}"),
    }
    let executions = server.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].amount, "123.45");
}

#[tokio::test]
async fn business_rejections_are_rejected_with_the_bank_code() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let mut wrong_name = instruction(&server, "REJ-NAME", 100);
    wrong_name.creditor_name = "错名公司".into();
    let mut no_account = instruction(&server, "REJ-ACC", 100);
    no_account.creditor_account = "000999".into();
    let cases = [
        (
            instruction(&server, "REJ-FUNDS", 9_999_999_999_900),
            "INSUFFICIENT_FUNDS",
        ),
        (wrong_name, "NAME_MISMATCH"),
        (no_account, "INVALID_ACCOUNT"),
    ];
    for (payment, expected) in cases {
        match bounded(connector.submit_payment(&payment)).await {
            Err(BankError::Rejected { code, message, .. }) => {
                assert_eq!(code, expected);
                assert!(!message.is_empty());
            }
            other => panic!("{expected}: expected a rejection, got {other:?}"),
        }
        match status_of(&connector, &server, payment.reference.as_str()).await {
            StatusAnswer::Found {
                status: BankPaymentStatus::Failed { code, .. },
                ..
            } => assert_eq!(code, expected),
            other => panic!("{expected}: expected a failed status, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_reused_reference_is_outcome_unknown_and_the_query_gives_the_original() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let payment = instruction(&server, "DUP-1", 500);
    let first = bounded(connector.submit_payment(&payment)).await.unwrap();
    assert_eq!(first.status, BankPaymentStatus::Settled);
    let again = bounded(connector.submit_payment(&payment)).await;
    assert!(
        matches!(again, Err(BankError::OutcomeUnknown { .. })),
        "{again:?}"
    );
    match status_of(&connector, &server, "DUP-1").await {
        StatusAnswer::Found {
            status,
            bank_payment_id,
            ..
        } => {
            assert_eq!(status, BankPaymentStatus::Settled);
            assert_eq!(bank_payment_id, first.bank_payment_id);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.executions()[0].count, 1);
}

#[tokio::test]
async fn a_returned_payment_reads_as_returned() {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 0,
        return_delay_ms: 0,
        return_share_percent: 100,
        ..SimPaymentConfig::default()
    })
    .await;
    let connector = connector(&server);
    bounded(connector.submit_payment(&instruction(&server, "BACK-1", 100)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    match status_of(&connector, &server, "BACK-1").await {
        StatusAnswer::Found {
            status: BankPaymentStatus::Returned { code, .. },
            ..
        } => assert_eq!(code, "RETURNED"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn status_queries_are_batched_by_fifty_and_answered_in_order() {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 0,
        ingest_delay_ms: 0,
        ..SimPaymentConfig::default()
    })
    .await;
    let connector = connector(&server);
    for i in (0..120).step_by(2) {
        bounded(connector.submit_payment(&instruction(&server, &format!("B-{i}"), 1)))
            .await
            .unwrap();
    }
    let references: Vec<BankReference> = (0..120).map(|i| reference(&format!("B-{i}"))).collect();
    let served = server.requests_served();
    let answers = bounded(connector.payment_status(&debtor(&server), &references))
        .await
        .unwrap();
    assert_eq!(
        server.requests_served() - served,
        3,
        "120 references, 50 a call"
    );
    assert_eq!(answers.len(), 120);
    for (i, answer) in answers.iter().enumerate() {
        if i % 2 == 0 {
            assert!(
                matches!(
                    answer,
                    StatusAnswer::Found {
                        status: BankPaymentStatus::Settled,
                        ..
                    }
                ),
                "{i}: {answer:?}"
            );
        } else {
            assert_eq!(answer, &StatusAnswer::NotFound, "{i}");
        }
    }
}

#[tokio::test]
async fn an_instruction_the_bank_cannot_take_is_not_sent() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let mut long_name = instruction(&server, "LONG-1", 100);
    long_name.creditor_name = "测".repeat(31);
    let mut emoji = instruction(&server, "EMOJI-1", 100);
    emoji.remittance = "货款😀".into();
    let long_reference = instruction(&server, &"R".repeat(31), 100);
    for payment in [long_name, emoji, long_reference] {
        let result = bounded(connector.submit_payment(&payment)).await;
        assert!(
            matches!(result, Err(BankError::NotProcessed { .. })),
            "{result:?}"
        );
    }
    assert_eq!(server.requests_served(), 0, "nothing was sent");
}

/// What a submission under a fault must give, and whether the bank executed.
enum Expect {
    NotProcessed,
    Unknown(UnknownCause),
}

#[tokio::test]
async fn each_fault_maps_to_the_error_kind_and_the_query_tells_the_truth() {
    let busy = Fault::ErrorCode {
        code: "SYSTEM_BUSY".into(),
        message: "系统繁忙".into(),
    };
    let system_error = Fault::ErrorCode {
        code: "SYSTEM_ERROR".into(),
        message: "系统错误".into(),
    };
    // A reset before the request is read cannot be told from one after on
    // the client: both are OutcomeUnknown, and the query decides.
    let table: Vec<(Fault, Expect, bool)> = vec![
        (
            Fault::HttpError {
                status: 500,
                when: When::Before,
            },
            Expect::Unknown(UnknownCause::HttpStatus(500)),
            false,
        ),
        (
            Fault::HttpError {
                status: 500,
                when: When::After,
            },
            Expect::Unknown(UnknownCause::HttpStatus(500)),
            true,
        ),
        (
            Fault::HttpError {
                status: 429,
                when: When::Before,
            },
            Expect::Unknown(UnknownCause::HttpStatus(429)),
            false,
        ),
        (
            Fault::Reset { when: When::Before },
            Expect::Unknown(UnknownCause::Transport),
            false,
        ),
        (
            Fault::Reset { when: When::After },
            Expect::Unknown(UnknownCause::Transport),
            true,
        ),
        (
            Fault::ResponseLost { hold_ms: 0 },
            Expect::Unknown(UnknownCause::Transport),
            true,
        ),
        (
            Fault::ResponseLost {
                hold_ms: REQUEST_TIMEOUT_MS * 3,
            },
            Expect::Unknown(UnknownCause::Timeout),
            true,
        ),
        (
            Fault::Truncated,
            Expect::Unknown(UnknownCause::Protocol),
            true,
        ),
        (
            Fault::Garbled,
            Expect::Unknown(UnknownCause::Protocol),
            true,
        ),
        (
            Fault::WrongEncoding,
            Expect::Unknown(UnknownCause::Protocol),
            true,
        ),
        (
            Fault::TornBody,
            Expect::Unknown(UnknownCause::Transport),
            true,
        ),
        (busy, Expect::NotProcessed, false),
        (system_error, Expect::Unknown(UnknownCause::Protocol), false),
    ];
    let server = start(instant()).await;
    let connector = connector(&server);
    for (index, (fault, expect, executed)) in table.into_iter().enumerate() {
        let reference_text = format!("FLT-{index}");
        server
            .faults()
            .try_inject(FaultRule::times(fault.clone(), 1).for_function("SubmitPayment"))
            .unwrap();
        let result =
            bounded(connector.submit_payment(&instruction(&server, &reference_text, 100))).await;
        match (&expect, &result) {
            (Expect::NotProcessed, Err(BankError::NotProcessed { .. })) => {}
            (Expect::Unknown(cause), Err(BankError::OutcomeUnknown { cause: got, .. }))
                if cause == got => {}
            _ => panic!("{fault:?}: unexpected {result:?}"),
        }
        let executions = server
            .executions()
            .iter()
            .filter(|e| e.reference == reference_text)
            .map(|e| e.count)
            .sum::<u32>();
        assert_eq!(executions, u32::from(executed), "{fault:?}");
        let answer = status_of(&connector, &server, &reference_text).await;
        if executed {
            assert!(
                matches!(
                    answer,
                    StatusAnswer::Found {
                        status: BankPaymentStatus::Settled,
                        ..
                    }
                ),
                "{fault:?}: {answer:?}"
            );
        } else {
            assert_eq!(answer, StatusAnswer::NotFound, "{fault:?}");
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_not_processed() {
    // A closed port: bind, learn the port, drop the listener.
    let port = {
        let listener = std::net::TcpListener::bind(loopback()).unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = start(instant()).await;
    let connector = CnXmlConnector::new(settings_for(format!("http://127.0.0.1:{port}/"))).unwrap();
    let result = bounded(connector.submit_payment(&instruction(&server, "REFUSED-1", 100))).await;
    assert!(
        matches!(result, Err(BankError::NotProcessed { .. })),
        "{result:?}"
    );
}
