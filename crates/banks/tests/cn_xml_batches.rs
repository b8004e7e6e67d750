//! cn-xml batch payments against a real simulated front machine on
//! loopback: a supplier chunk with partial rejections followed to finished,
//! a payroll run, a resent chunk (OutcomeUnknown, never executed twice), an
//! item the bank's format cannot carry (nothing sent), and injected faults
//! landing in the same error kinds as for single payments, with the status
//! query telling the truth after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use banks::cn_xml::CnXmlConnector;
use banks::{
    BankConnector, BankError, BankPaymentStatus, BatchInstruction, BatchItemInstruction, BatchKind,
    BatchStatusAnswer, Capability, ConnectionSettings, UnknownCause,
};
use banksim::{Fault, FaultRule, SimBankConfig, SimOptions, SimPaymentConfig, SimServer, When};
use domain::{
    AccountNumber, BankReference, BusinessDate, CreditorType, Currency, Money, SystemClock,
};

const CALL_LIMIT: Duration = Duration::from_secs(10);
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

fn instant() -> SimPaymentConfig {
    SimPaymentConfig {
        settle_delay_ms: 0,
        ..SimPaymentConfig::default()
    }
}

fn connector(server: &SimServer) -> CnXmlConnector {
    CnXmlConnector::new(ConnectionSettings {
        bank_id: "simbank".to_string(),
        connection_id: "simbank-main".to_string(),
        endpoint: server.url(),
        login: "DEMO01".to_string(),
        time_zone: chrono_tz::Asia::Shanghai,
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS),
        max_response_bytes: 1024 * 1024,
        max_accounts_per_query: 50,
        max_idle_connections: 4,
        tls: None,
    })
    .unwrap()
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

fn item(reference_text: &str, minor: i64) -> BatchItemInstruction {
    BatchItemInstruction {
        reference: reference(reference_text),
        amount: Money::from_minor(minor, Currency::CNY),
        creditor_name: "张伟".into(),
        creditor_account: "6222020200112233".into(),
        creditor_bank_code: None,
        creditor_bic: None,
        creditor_bank_name: None,
        creditor_type: CreditorType::Personal,
        remittance: "十一月工资".into(),
        purpose: None,
    }
}

fn chunk(
    server: &SimServer,
    kind: BatchKind,
    reference_text: &str,
    items: Vec<BatchItemInstruction>,
) -> BatchInstruction {
    BatchInstruction {
        kind,
        reference: reference(reference_text),
        batch_reference: reference(&format!("B{reference_text}")),
        debtor_account: debtor(server),
        currency: Currency::CNY,
        requested_execution_date: BusinessDate::parse_compact("20261127").unwrap(),
        items,
    }
}

async fn status(
    connector: &CnXmlConnector,
    server: &SimServer,
    reference_text: &str,
) -> BatchStatusAnswer {
    bounded(connector.batch_status(&debtor(server), &reference(reference_text)))
        .await
        .unwrap()
}

fn status_of(answer: &BatchStatusAnswer, item_reference: &str) -> BankPaymentStatus {
    match answer {
        BatchStatusAnswer::Found { items, .. } => items
            .iter()
            .find(|i| i.reference.as_str() == item_reference)
            .map(|i| i.status.clone())
            .unwrap_or_else(|| panic!("no item {item_reference} in {answer:?}")),
        BatchStatusAnswer::NotFound => panic!("chunk not found"),
    }
}

fn failed_code(status: &BankPaymentStatus) -> &str {
    match status {
        BankPaymentStatus::Failed { code, .. } => code,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn the_connector_declares_batches_of_five_hundred() {
    let server = start(instant()).await;
    let connector = connector(&server);
    assert!(connector.capabilities().contains(&Capability::BatchPayment));
    assert_eq!(connector.max_batch_items(), 500);
}

#[tokio::test]
async fn a_supplier_chunk_is_followed_to_finished_with_partial_rejections() {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 200,
        ..SimPaymentConfig::default()
    })
    .await;
    let connector = connector(&server);
    let mut bad_account = item("SUP-2", 200);
    bad_account.creditor_account = "000999".into();
    bad_account.creditor_type = CreditorType::Corporate;
    let mut bad_name = item("SUP-3", 300);
    bad_name.creditor_name = "错名公司".into();
    let batch = chunk(
        &server,
        BatchKind::Supplier,
        "CSUP1",
        vec![
            item("SUP-1", 100),
            bad_account,
            bad_name,
            item("SUP-4", 9_999_999_999_900),
            item("SUP-5", 500),
        ],
    );
    let receipt = bounded(connector.submit_batch(&batch)).await.unwrap();
    assert_eq!(receipt.bank_code, "ACC");
    let bank_id = receipt.bank_batch_id.clone().expect("a bank batch id");

    match status(&connector, &server, "CSUP1").await {
        BatchStatusAnswer::Found {
            finished, items, ..
        } => {
            assert!(!finished, "two items still settling");
            assert_eq!(items.len(), 5);
        }
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = status(&connector, &server, "CSUP1").await;
    match &answer {
        BatchStatusAnswer::Found {
            finished,
            bank_batch_id,
            bank_code,
            ..
        } => {
            assert!(*finished);
            assert_eq!(bank_batch_id.as_deref(), Some(bank_id.as_str()));
            assert_eq!(bank_code, "FIN");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(status_of(&answer, "SUP-1"), BankPaymentStatus::Settled);
    assert_eq!(failed_code(&status_of(&answer, "SUP-2")), "INVALID_ACCOUNT");
    assert_eq!(failed_code(&status_of(&answer, "SUP-3")), "NAME_MISMATCH");
    assert_eq!(
        failed_code(&status_of(&answer, "SUP-4")),
        "INSUFFICIENT_FUNDS"
    );
    assert_eq!(status_of(&answer, "SUP-5"), BankPaymentStatus::Settled);
    assert!(server.executions().iter().all(|e| e.count == 1));
}

#[tokio::test]
async fn a_payroll_run_is_one_debit_and_reports_every_item() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let before = server.ledger().accounts()[0].booked_minor;
    let mut wrong = item("PAY-3", 30_000);
    wrong.creditor_name = "错名李四".into();
    let batch = chunk(
        &server,
        BatchKind::Payroll,
        "CPAY1",
        vec![item("PAY-1", 850_000), item("PAY-2", 920_050), wrong],
    );
    let receipt = bounded(connector.submit_batch(&batch)).await.unwrap();
    assert_eq!(receipt.bank_code, "FIN");
    let answer = status(&connector, &server, "CPAY1").await;
    assert_eq!(status_of(&answer, "PAY-1"), BankPaymentStatus::Settled);
    assert_eq!(status_of(&answer, "PAY-2"), BankPaymentStatus::Settled);
    assert_eq!(failed_code(&status_of(&answer, "PAY-3")), "NAME_MISMATCH");
    assert_eq!(
        server.ledger().accounts()[0].booked_minor,
        before - 1_770_050
    );
    let batches = server.batches();
    assert_eq!(batches[0].kind, "payroll");
    assert_eq!(batches[0].payroll_debit, "17700.50");
}

#[tokio::test]
async fn a_resent_chunk_is_outcome_unknown_and_never_executes_twice() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let batch = chunk(
        &server,
        BatchKind::Supplier,
        "CDUP1",
        vec![item("DUP-1", 100), item("DUP-2", 200)],
    );
    bounded(connector.submit_batch(&batch)).await.unwrap();
    let again = bounded(connector.submit_batch(&batch)).await;
    assert!(
        matches!(
            again,
            Err(BankError::OutcomeUnknown {
                cause: UnknownCause::Protocol,
                ..
            })
        ),
        "{again:?}"
    );
    let answer = status(&connector, &server, "CDUP1").await;
    assert_eq!(status_of(&answer, "DUP-1"), BankPaymentStatus::Settled);
    let executions = server.executions();
    assert_eq!(executions.len(), 2);
    assert!(executions.iter().all(|e| e.count == 1));
}

#[tokio::test]
async fn an_unknown_chunk_is_not_found() {
    let server = start(instant()).await;
    let connector = connector(&server);
    assert_eq!(
        status(&connector, &server, "CNEVER").await,
        BatchStatusAnswer::NotFound
    );
}

#[tokio::test]
async fn a_chunk_the_bank_cannot_take_is_not_sent() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let mut long_name = item("LONG-1", 100);
    long_name.creditor_name = "测".repeat(31);
    let problems = connector
        .check_batch_item(BatchKind::Supplier, &long_name)
        .unwrap_err();
    assert_eq!(problems[0].field, "creditor.name");
    let mut company = item("CO-1", 100);
    company.creditor_type = CreditorType::Corporate;
    assert!(connector
        .check_batch_item(BatchKind::Supplier, &company)
        .is_ok());
    assert_eq!(
        connector
            .check_batch_item(BatchKind::Payroll, &company)
            .unwrap_err()[0]
            .field,
        "creditor.type"
    );
    let mut usd = item("USD-1", 100);
    usd.amount = Money::from_minor(100, Currency::USD);
    let cases = vec![
        chunk(&server, BatchKind::Supplier, "CLONG", vec![long_name]),
        chunk(&server, BatchKind::Payroll, "CCOMP", vec![company]),
        chunk(&server, BatchKind::Supplier, "CEMPTY", vec![]),
        chunk(&server, BatchKind::Supplier, "CUSD", vec![usd]),
        chunk(
            &server,
            BatchKind::Supplier,
            "CTWICE",
            vec![item("T-1", 1), item("T-1", 1)],
        ),
        chunk(
            &server,
            BatchKind::Supplier,
            "CMANY",
            (0..501).map(|i| item(&format!("M-{i}"), 1)).collect(),
        ),
    ];
    for batch in cases {
        let result = bounded(connector.submit_batch(&batch)).await;
        assert!(
            matches!(result, Err(BankError::NotProcessed { .. })),
            "{}: {result:?}",
            batch.reference
        );
    }
    assert_eq!(server.requests_served(), 0, "nothing was sent");
}

#[tokio::test]
async fn a_full_chunk_of_five_hundred_goes_through() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let items: Vec<_> = (0..500).map(|i| item(&format!("FULL-{i}"), 1)).collect();
    let batch = chunk(&server, BatchKind::Payroll, "CFULL", items);
    bounded(connector.submit_batch(&batch)).await.unwrap();
    match status(&connector, &server, "CFULL").await {
        BatchStatusAnswer::Found {
            finished, items, ..
        } => {
            assert!(finished);
            assert_eq!(items.len(), 500);
            assert!(items.iter().all(|i| i.status == BankPaymentStatus::Settled));
        }
        other => panic!("{other:?}"),
    }
}

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
        for kind in [BatchKind::Supplier, BatchKind::Payroll] {
            let letter = &kind.as_str()[..1];
            let chunk_reference = format!("CF{index}{letter}");
            let function = match kind {
                BatchKind::Supplier => "SubmitBatch",
                BatchKind::Payroll => "SubmitPayroll",
            };
            server
                .faults()
                .try_inject(FaultRule::times(fault.clone(), 1).for_function(function))
                .unwrap();
            let batch = chunk(
                &server,
                kind,
                &chunk_reference,
                vec![item(&format!("{chunk_reference}-1"), 100)],
            );
            let result = bounded(connector.submit_batch(&batch)).await;
            match (&expect, &result) {
                (Expect::NotProcessed, Err(BankError::NotProcessed { .. })) => {}
                (Expect::Unknown(cause), Err(BankError::OutcomeUnknown { cause: got, .. }))
                    if cause == got => {}
                _ => panic!("{fault:?} {kind:?}: unexpected {result:?}"),
            }
            let executions = server
                .executions()
                .iter()
                .filter(|e| e.batch_reference.as_deref() == Some(chunk_reference.as_str()))
                .map(|e| e.count)
                .sum::<u32>();
            assert_eq!(executions, u32::from(executed), "{fault:?} {kind:?}");
            let answer = status(&connector, &server, &chunk_reference).await;
            if executed {
                assert!(
                    matches!(answer, BatchStatusAnswer::Found { finished: true, .. }),
                    "{fault:?} {kind:?}: {answer:?}"
                );
            } else {
                assert_eq!(answer, BatchStatusAnswer::NotFound, "{fault:?} {kind:?}");
            }
        }
    }
}
