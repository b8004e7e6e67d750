//! The iso20022 connector against a real simulated host-to-host gateway on
//! loopback, over mutual TLS with the simulator's own PKI: accounts and
//! balances, transactions over many pages, payments and batches to their
//! final status, a reused reference, refused handshakes, and one injected
//! fault after another, each landing in the error kind the dispatcher relies
//! on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use banks::iso20022::{
    Iso20022Connector, Iso20022Options, Pain001Version, TextCharset, CODE_ACCOUNT_UNKNOWN,
};
use banks::{
    BalanceOutcome, BalanceQuery, BankConnector, BankError, BankPaymentStatus, BatchInstruction,
    BatchItemInstruction, BatchKind, BatchStatusAnswer, Capability, ClientTlsSettings,
    ConnectionSettings, DedupeKeyPolicy, Family, FamilyOptions, PaymentInstruction, StatusAnswer,
    TransactionQuery, UnknownCause,
};
use banksim::{
    Fault, FaultRule, Pki, SimBankConfig, SimOptions, SimPaymentConfig, SimServer, When,
};
use chrono::{DateTime, TimeZone, Utc};
use domain::{
    AccountNumber, BankReference, BusinessDate, Clock, CreditorType, Direction, EntryStatus, Money,
    SystemClock, Urgency,
};

/// Upper bound of any single call in these tests.
const CALL_LIMIT: Duration = Duration::from_secs(20);
/// The connector's request timeout; a delayed or lost answer held longer
/// times out.
const REQUEST_TIMEOUT_MS: u64 = 1_500;
/// A creditor account the simulated bank does not know (ISO `AC01`).
const UNKNOWN_CREDITOR: &str = "000999";
/// A creditor at another bank, any valid IBAN.
const OUTSIDE_IBAN: &str = "FR1420041010050500013M02606";
/// Paid into the debtor account at start: a million euros.
const DEBTOR_FUNDING_MINOR: i64 = 100_000_000;

#[derive(Debug)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start_with(clock: Arc<dyn Clock>, payments: SimPaymentConfig) -> SimServer {
    SimServer::start_with_options(
        SimBankConfig::iso20022_demo("h2hbank", 7),
        loopback(),
        clock,
        SimOptions {
            payments,
            random_faults: None,
        },
    )
    .await
    .unwrap()
}

/// A bank whose first EUR account (the debtor of every payment here) can
/// pay: the generated ledger may have it overdrawn.
async fn start(payments: SimPaymentConfig) -> SimServer {
    let server = start_with(Arc::new(SystemClock), payments).await;
    server
        .ledger()
        .adjust(debtor(&server).as_str(), DEBTOR_FUNDING_MINOR)
        .unwrap();
    server
}

fn instant() -> SimPaymentConfig {
    SimPaymentConfig {
        settle_delay_ms: 0,
        ingest_delay_ms: 0,
        ..SimPaymentConfig::default()
    }
}

fn tls_of(pki: &Pki) -> ClientTlsSettings {
    ClientTlsSettings {
        ca_cert_pem: pki.ca_cert_pem.clone(),
        client_cert_pem: pki.client_cert_pem.clone(),
        client_key_pem: pki.client_key_pem.clone(),
    }
}

fn settings_with(server: &SimServer, tls: ClientTlsSettings) -> ConnectionSettings {
    ConnectionSettings {
        bank_id: "h2hbank".to_string(),
        connection_id: "h2hbank-main".to_string(),
        endpoint: server.url(),
        login: server.config().login.clone(),
        time_zone: chrono_tz::Europe::Berlin,
        connect_timeout: Duration::from_millis(1_000),
        request_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS),
        max_response_bytes: 4 * 1024 * 1024,
        max_accounts_per_query: 50,
        max_idle_connections: 4,
        tls: Some(tls),
    }
}

fn settings(server: &SimServer) -> ConnectionSettings {
    settings_with(
        server,
        tls_of(server.pki().expect("an iso20022 bank has a PKI")),
    )
}

fn connector(server: &SimServer) -> Iso20022Connector {
    Iso20022Connector::new(settings(server)).unwrap()
}

async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_LIMIT, call)
        .await
        .expect("call did not finish within the test's limit")
}

fn reference(text: &str) -> BankReference {
    BankReference::parse(text).unwrap()
}

/// The first account of the currency, the debtor of every payment here.
fn eur_accounts(server: &SimServer) -> Vec<banksim::SimAccount> {
    server
        .ledger()
        .accounts()
        .into_iter()
        .filter(|a| a.currency == domain::Currency::EUR)
        .collect()
}

fn debtor(server: &SimServer) -> AccountNumber {
    AccountNumber::parse(&eur_accounts(server)[0].number).unwrap()
}

fn payment(server: &SimServer, reference_text: &str, minor: i64) -> PaymentInstruction {
    PaymentInstruction {
        reference: reference(reference_text),
        debtor_account: debtor(server),
        amount: Money::from_minor(minor, domain::Currency::EUR),
        creditor_name: "Lumiere SARL".into(),
        creditor_account: OUTSIDE_IBAN.into(),
        creditor_bank_code: None,
        creditor_bic: Some(domain::Bic::parse("BNPAFRPPXXX").unwrap()),
        creditor_bank_name: None,
        creditor_type: CreditorType::Corporate,
        remittance: "Invoice 2026-117".into(),
        purpose: None,
        urgency: Urgency::Normal,
        requested_execution_date: BusinessDate::today(
            &SystemClock,
            domain::BankTimeZone::parse("Europe/Berlin").unwrap(),
        ),
    }
}

async fn status_of(connector: &Iso20022Connector, server: &SimServer, text: &str) -> StatusAnswer {
    bounded(connector.payment_status(&debtor(server), &[reference(text)]))
        .await
        .unwrap()
        .remove(0)
}

/// Asks until the payment is no longer processing (or the test's patience
/// ends).
async fn final_status(
    connector: &Iso20022Connector,
    server: &SimServer,
    text: &str,
) -> StatusAnswer {
    for _ in 0..100 {
        let answer = status_of(connector, server, text).await;
        match &answer {
            StatusAnswer::Found {
                status: BankPaymentStatus::Processing,
                ..
            }
            | StatusAnswer::NotFound => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => return answer,
        }
    }
    panic!("payment {text} did not reach a final status");
}

fn executions_of(server: &SimServer, text: &str) -> u32 {
    server
        .executions()
        .iter()
        .filter(|e| e.reference == text)
        .map(|e| e.count)
        .sum()
}

fn expect_unknown(
    result: Result<impl std::fmt::Debug, BankError>,
    cause: UnknownCause,
    what: &str,
) {
    match result {
        Err(BankError::OutcomeUnknown {
            cause: got, bank, ..
        }) => {
            assert_eq!(got, cause, "{what}");
            assert_eq!(bank, "h2hbank");
        }
        other => panic!("{what}: expected OutcomeUnknown({cause:?}), got {other:?}"),
    }
}

fn expect_not_processed(result: Result<impl std::fmt::Debug, BankError>, what: &str) -> String {
    match result {
        Err(BankError::NotProcessed { bank, reason }) => {
            assert_eq!(bank, "h2hbank", "{what}");
            reason
        }
        other => panic!("{what}: expected NotProcessed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// accounts and balances
// ---------------------------------------------------------------------------

#[tokio::test]
async fn accounts_and_balances_equal_the_ledger() {
    let server = start(instant()).await;
    let connector = connector(&server);
    assert_eq!(connector.family(), Family::Iso20022);
    assert_eq!(connector.capabilities().len(), 5);
    assert!(connector.capabilities().contains(&Capability::BatchPayment));
    assert_eq!(connector.dedupe_policy(), DedupeKeyPolicy::BankIdPerAccount);

    let listed = bounded(connector.list_accounts()).await.unwrap();
    let ledger = server.ledger().accounts();
    assert_eq!(listed.len(), ledger.len());
    for (info, account) in listed.iter().zip(&ledger) {
        assert_eq!(info.number.as_str(), account.number);
        assert_eq!(info.currency, account.currency);
        assert!(info.active);
        assert!(info.branch.is_some(), "the BIC is kept as the branch");
    }

    let mut queries: Vec<BalanceQuery> = ledger
        .iter()
        .map(|a| BalanceQuery {
            number: AccountNumber::parse(&a.number).unwrap(),
            currency: a.currency,
        })
        .collect();
    queries.push(BalanceQuery {
        number: AccountNumber::parse("DE89370400440532013000").unwrap(),
        currency: domain::Currency::EUR,
    });
    // Two accounts a request: the split must not show in the answer.
    let mut two = settings(&server);
    two.max_accounts_per_query = 2;
    let small = Iso20022Connector::new(two).unwrap();
    for c in [&connector, &small] {
        let outcomes = bounded(c.balances(&queries)).await.unwrap();
        assert_eq!(outcomes.len(), queries.len());
        // Read after the call: a report may reveal late entries first.
        let ledger = server.ledger().accounts();
        for (account, outcome) in ledger.iter().zip(&outcomes) {
            let BalanceOutcome::Ok(balance) = outcome else {
                panic!("expected a balance, got {outcome:?}");
            };
            assert_eq!(balance.number.as_str(), account.number);
            assert_eq!(
                balance.booked,
                Money::from_minor(account.booked_minor, account.currency)
            );
            assert_eq!(
                balance.available,
                Money::from_minor(account.available_minor, account.currency)
            );
            assert!((Utc::now() - balance.as_of).num_seconds().abs() < 60);
        }
        match outcomes.last().unwrap() {
            BalanceOutcome::Failed { code, number, .. } => {
                assert_eq!(code, CODE_ACCOUNT_UNKNOWN);
                assert_eq!(number.as_str(), "DE89370400440532013000");
            }
            other => panic!("expected the unknown account to fail, got {other:?}"),
        }
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// transactions
// ---------------------------------------------------------------------------

/// Midday in Berlin, so that "today" cannot move while the test runs.
fn berlin_noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 11, 0, 0).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> BusinessDate {
    BusinessDate::from_ymd(y, m, d).unwrap()
}

#[tokio::test]
async fn transactions_over_many_days_follow_every_page_and_keep_days_continuous() {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(berlin_noon()));
    let server = start_with(Arc::clone(&clock), instant()).await;
    let today = date(2026, 11, 27);
    let from = date(2026, 9, 1);
    let mut report_by_page_size = Vec::new();
    for page_size in [3, 1_000] {
        server.set_iso_page_size(page_size).unwrap();
        let connector = connector(&server).with_clock(Arc::clone(&clock));
        let mut per_account = Vec::new();
        for account in server.ledger().accounts() {
            let query = TransactionQuery {
                number: AccountNumber::parse(&account.number).unwrap(),
                currency: account.currency,
                from,
                to: today,
            };
            let report = bounded(connector.transactions(&query)).await.unwrap();
            // One day balance per day before today, in order.
            let days: Vec<BusinessDate> = report.day_balances.iter().map(|d| d.date).collect();
            let expected_days = (0..(today.naive() - from.naive()).num_days())
                .map(|n| from.add_days(n).unwrap())
                .collect::<Vec<_>>();
            assert_eq!(days, expected_days, "{}", account.number);
            // opening + Σ booked = closing, day by day, and day to day.
            let mut net: BTreeMap<BusinessDate, i64> = BTreeMap::new();
            for entry in report
                .entries
                .iter()
                .filter(|e| e.status == EntryStatus::Booked)
            {
                let signed = match entry.direction {
                    Direction::Credit => entry.amount.minor(),
                    Direction::Debit => -entry.amount.minor(),
                };
                *net.entry(entry.booking_date).or_default() += signed;
            }
            for pair in report.day_balances.windows(2) {
                assert_eq!(pair[0].closing, pair[1].opening, "{}", pair[1].date);
            }
            for day in &report.day_balances {
                assert_eq!(
                    day.opening.minor() + net.get(&day.date).copied().unwrap_or(0),
                    day.closing.minor(),
                    "continuity of {} on {}",
                    account.number,
                    day.date
                );
            }
            // No booked reference twice; most entries carry one.
            let mut seen = HashSet::new();
            for entry in report
                .entries
                .iter()
                .filter(|e| e.status == EntryStatus::Booked)
            {
                if let Some(id) = &entry.bank_transaction_id {
                    assert!(seen.insert(id.clone()), "AcctSvcrRef {id} twice");
                }
            }
            // Every visible booked entry of the ledger before today is there.
            let yesterday = today.add_days(-1).unwrap();
            let ledger_booked = server
                .ledger()
                .entries(&account.number, from, yesterday)
                .unwrap()
                .into_iter()
                .filter(|e| e.visible && e.status == EntryStatus::Booked)
                .count();
            let reported_before_today = report
                .entries
                .iter()
                .filter(|e| e.status == EntryStatus::Booked && e.booking_date < today)
                .count();
            assert_eq!(reported_before_today, ledger_booked, "{}", account.number);
            per_account.push(report);
        }
        report_by_page_size.push(per_account);
    }
    assert_eq!(
        report_by_page_size[0], report_by_page_size[1],
        "three entries a page or a thousand, the same report"
    );
    assert!(
        report_by_page_size[0]
            .iter()
            .map(|r| r.entries.len())
            .sum::<usize>()
            > 30,
        "enough entries to need many pages"
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// payments
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_payment_is_taken_and_settles() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let instruction = payment(&server, "ISO-OK-1", 12_345);
    assert_eq!(connector.check_payment(&instruction), Ok(()));
    let receipt = bounded(connector.submit_payment(&instruction))
        .await
        .unwrap();
    assert_eq!(receipt.status, BankPaymentStatus::Processing);
    assert_eq!(receipt.bank_code, "RCVD");
    assert!(receipt.bank_payment_id.is_some(), "the order id");
    match final_status(&connector, &server, "ISO-OK-1").await {
        StatusAnswer::Found {
            status, bank_code, ..
        } => {
            assert_eq!(status, BankPaymentStatus::Settled);
            assert_eq!(bank_code, "ACSC");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(executions_of(&server, "ISO-OK-1"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn rejected_payments_fail_with_the_iso_reason() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let mut unknown_creditor = payment(&server, "ISO-AC01", 100);
    unknown_creditor.creditor_account = UNKNOWN_CREDITOR.into();
    let no_funds = payment(&server, "ISO-AM04", 9_000_000_000_000);
    for (instruction, expected) in [(unknown_creditor, "AC01"), (no_funds, "AM04")] {
        // The file is taken; the transaction is rejected in the report.
        bounded(connector.submit_payment(&instruction))
            .await
            .unwrap();
        match final_status(&connector, &server, instruction.reference.as_str()).await {
            StatusAnswer::Found {
                status: BankPaymentStatus::Failed { code, .. },
                bank_code,
                ..
            } => {
                assert_eq!(code, expected);
                assert_eq!(bank_code, format!("RJCT/{expected}"));
            }
            other => panic!("{expected}: expected a failed status, got {other:?}"),
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_reused_reference_is_outcome_unknown_and_executes_once() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let instruction = payment(&server, "ISO-DUP-1", 500);
    bounded(connector.submit_payment(&instruction))
        .await
        .unwrap();
    let again = bounded(connector.submit_payment(&instruction)).await;
    expect_unknown(again, UnknownCause::Protocol, "a resent file");
    match final_status(&connector, &server, "ISO-DUP-1").await {
        StatusAnswer::Found { status, .. } => assert_eq!(status, BankPaymentStatus::Settled),
        other => panic!("{other:?}"),
    }
    assert_eq!(executions_of(&server, "ISO-DUP-1"), 1);
    // A reference the bank never saw.
    assert_eq!(
        status_of(&connector, &server, "ISO-NEVER").await,
        StatusAnswer::NotFound
    );
    server.shutdown().await;
}

#[tokio::test]
async fn what_pain001_cannot_carry_is_refused_before_sending() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let mut bad = payment(&server, "ISO-BAD-1", 100);
    bad.creditor_name = "上海某某贸易有限公司".into();
    let problems = connector.check_payment(&bad).unwrap_err();
    assert_eq!(problems[0].field, "creditor.name");
    let served = server.requests_served();
    let reason = expect_not_processed(bounded(connector.submit_payment(&bad)).await, "bad text");
    assert!(reason.contains("creditor.name"), "{reason}");
    assert_eq!(server.requests_served(), served, "nothing was sent");
    server.shutdown().await;
}

#[tokio::test]
async fn options_given_to_connect_with_reach_the_connector() {
    let server = start(instant()).await;
    let options = Iso20022Options {
        pain001_version: Pain001Version::V03,
        max_batch_items: 2,
        max_statement_range_days: 7,
        charset: TextCharset::Unicode,
    };
    let connector = banks::connect_with(
        Family::Iso20022,
        settings(&server),
        FamilyOptions::Iso20022(options),
    )
    .unwrap();
    assert_eq!(connector.max_batch_items(), 2);
    // Unicode text passes intake, and the .03 file it goes in is taken.
    let mut chinese = payment(&server, "ISO-OPT-1", 100);
    chinese.creditor_name = "上海某某贸易有限公司".into();
    assert_eq!(connector.check_payment(&chinese), Ok(()));
    let receipt = bounded(connector.submit_payment(&chinese)).await.unwrap();
    assert_eq!(receipt.bank_code, "RCVD");
    // A chunk above the configured size is refused before sending.
    let items: Vec<BatchItemInstruction> = (1..=3)
        .map(|i| item(&format!("OPT-C-I{i}"), 100 + i, OUTSIDE_IBAN))
        .collect();
    let served = server.requests_served();
    let reason = expect_not_processed(
        bounded(connector.submit_batch(&chunk(&server, BatchKind::Supplier, "OPT-C", items))).await,
        "too many items",
    );
    assert!(
        reason.contains("expected 1..=2 (max_batch_items)"),
        "{reason}"
    );
    assert_eq!(server.requests_served(), served, "nothing was sent");
    // Defaults through `connect`, as before.
    let plain = banks::connect(Family::Iso20022, settings(&server)).unwrap();
    assert_eq!(
        plain.max_batch_items(),
        banks::iso20022::DEFAULT_MAX_BATCH_ITEMS
    );
    assert!(plain.check_payment(&chinese).is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn iso20022_options_are_refused_for_another_family_and_out_of_range() {
    let server = start(instant()).await;
    let mut cn_settings = settings(&server);
    cn_settings.endpoint = "http://127.0.0.1:9/".into();
    let refused = banks::connect_with(
        Family::CnXml,
        cn_settings,
        FamilyOptions::Iso20022(Iso20022Options::default()),
    )
    .unwrap_err();
    assert!(
        refused.message.contains("only an iso20022 bank takes them"),
        "{refused}"
    );
    let too_many = Iso20022Options {
        max_batch_items: banks::iso20022::MAX_BATCH_ITEMS + 1,
        ..Iso20022Options::default()
    };
    let refused = banks::connect_with(
        Family::Iso20022,
        settings(&server),
        FamilyOptions::Iso20022(too_many),
    )
    .unwrap_err();
    assert!(refused.message.contains("max_batch_items"), "{refused}");
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// batches
// ---------------------------------------------------------------------------

fn item(reference_text: &str, minor: i64, account: &str) -> BatchItemInstruction {
    BatchItemInstruction {
        reference: reference(reference_text),
        amount: Money::from_minor(minor, domain::Currency::EUR),
        creditor_name: "Anna Schmidt".into(),
        creditor_account: account.into(),
        creditor_bank_code: None,
        creditor_bic: None,
        creditor_bank_name: None,
        creditor_type: CreditorType::Personal,
        remittance: "November 2026".into(),
        purpose: None,
    }
}

fn chunk(
    server: &SimServer,
    kind: BatchKind,
    text: &str,
    items: Vec<BatchItemInstruction>,
) -> BatchInstruction {
    BatchInstruction {
        kind,
        reference: reference(text),
        batch_reference: reference(&format!("{text}-B")),
        debtor_account: debtor(server),
        currency: domain::Currency::EUR,
        requested_execution_date: payment(server, "X", 1).requested_execution_date,
        items,
    }
}

async fn finished_batch(
    connector: &Iso20022Connector,
    server: &SimServer,
    text: &str,
) -> Vec<banks::BatchItemResult> {
    for _ in 0..100 {
        match bounded(connector.batch_status(&debtor(server), &reference(text)))
            .await
            .unwrap()
        {
            BatchStatusAnswer::Found {
                finished: true,
                items,
                ..
            } => return items,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("batch chunk {text} did not finish");
}

#[tokio::test]
async fn a_supplier_batch_reports_each_item_with_a_partial_rejection() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let items = vec![
        item("SUP-1-I1", 1_000, OUTSIDE_IBAN),
        item("SUP-1-I2", 2_000, UNKNOWN_CREDITOR),
        item("SUP-1-I3", 3_000, "DE89370400440532013000"),
    ];
    for i in &items {
        assert_eq!(connector.check_batch_item(BatchKind::Supplier, i), Ok(()));
    }
    let receipt =
        bounded(connector.submit_batch(&chunk(&server, BatchKind::Supplier, "SUP-1", items)))
            .await
            .unwrap();
    assert_eq!(receipt.bank_code, "RCVD");
    let mut results = finished_batch(&connector, &server, "SUP-1").await;
    results.sort_by(|a, b| a.reference.cmp(&b.reference));
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].status, BankPaymentStatus::Settled);
    assert!(
        matches!(&results[1].status, BankPaymentStatus::Failed { code, .. } if code == "AC01"),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].status, BankPaymentStatus::Settled);
    for text in ["SUP-1-I1", "SUP-1-I2", "SUP-1-I3"] {
        assert!(executions_of(&server, text) <= 1, "{text}");
    }
    // Resending the chunk executes nothing again.
    let again = bounded(connector.submit_batch(&chunk(
        &server,
        BatchKind::Supplier,
        "SUP-1",
        vec![item("SUP-1-I1", 1_000, OUTSIDE_IBAN)],
    )))
    .await;
    expect_unknown(again, UnknownCause::Protocol, "a resent chunk");
    assert_eq!(executions_of(&server, "SUP-1-I1"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_payroll_posts_one_debit_for_the_run() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let items: Vec<BatchItemInstruction> = (1..=5)
        .map(|i| item(&format!("PAY-1-I{i}"), 100_000 + i, OUTSIDE_IBAN))
        .collect();
    let total: i64 = items.iter().map(|i| i.amount.minor()).sum();
    bounded(connector.submit_batch(&chunk(&server, BatchKind::Payroll, "PAY-1", items)))
        .await
        .unwrap();
    let results = finished_batch(&connector, &server, "PAY-1").await;
    assert_eq!(results.len(), 5);
    assert!(results
        .iter()
        .all(|r| r.status == BankPaymentStatus::Settled));
    let view = server
        .batches()
        .into_iter()
        .find(|b| b.reference == "PAY-1")
        .expect("the chunk at the bank");
    assert_eq!(view.kind, "payroll");
    assert_eq!(
        view.payroll_debit,
        Money::from_minor(total, domain::Currency::EUR).to_decimal_string()
    );
    assert_eq!(
        connector.max_batch_items(),
        banks::iso20022::DEFAULT_MAX_BATCH_ITEMS
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

#[tokio::test]
async fn refused_handshakes_are_not_processed_and_name_the_bank() {
    let server = start(instant()).await;
    let pki = server.pki().unwrap();
    let other = Pki::generate(
        &["127.0.0.1".to_string(), "localhost".to_string()],
        "intruder",
    )
    .unwrap();
    // A client certificate the bank's CA did not issue.
    let stranger = ClientTlsSettings {
        ca_cert_pem: pki.ca_cert_pem.clone(),
        client_cert_pem: other.client_cert_pem.clone(),
        client_key_pem: other.client_key_pem.clone(),
    };
    // A server certificate our CA did not issue.
    let wrong_ca = ClientTlsSettings {
        ca_cert_pem: other.ca_cert_pem.clone(),
        ..tls_of(pki)
    };
    for (tls, what) in [
        (stranger, "unknown client certificate"),
        (wrong_ca, "unknown server CA"),
    ] {
        let connector = Iso20022Connector::new(settings_with(&server, tls)).unwrap();
        expect_not_processed(bounded(connector.list_accounts()).await, what);
        let reason = expect_not_processed(
            bounded(connector.submit_payment(&payment(&server, "TLS-1", 100))).await,
            what,
        );
        assert!(reason.contains("TLS handshake"), "{what}: {reason}");
    }
    assert!(server.executions().is_empty());
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// faults
// ---------------------------------------------------------------------------

#[tokio::test]
async fn faults_on_reads_land_in_the_right_kind() {
    let server = start(instant()).await;
    let connector = connector(&server);
    let account = &eur_accounts(&server)[0];
    let query = [BalanceQuery {
        number: AccountNumber::parse(&account.number).unwrap(),
        currency: account.currency,
    }];
    let cases: Vec<(Fault, Option<UnknownCause>)> = vec![
        (
            Fault::Delay {
                ms: REQUEST_TIMEOUT_MS + 500,
            },
            Some(UnknownCause::Timeout),
        ),
        (
            Fault::Reset { when: When::Before },
            Some(UnknownCause::Transport),
        ),
        (
            Fault::HttpError {
                status: 500,
                when: When::Before,
            },
            Some(UnknownCause::HttpStatus(500)),
        ),
        (Fault::Garbled, Some(UnknownCause::Protocol)),
        (Fault::Truncated, Some(UnknownCause::Protocol)),
        (Fault::WrongEncoding, Some(UnknownCause::Protocol)),
        (
            Fault::Oversized {
                bytes: 8 * 1024 * 1024,
            },
            Some(UnknownCause::Protocol),
        ),
        (Fault::TornBody, Some(UnknownCause::Transport)),
        (
            Fault::ErrorCode {
                code: "SYSTEM_BUSY".into(),
                message: "busy".into(),
            },
            None,
        ),
    ];
    for (fault, cause) in cases {
        let what = format!("{fault:?}");
        server.faults().clear();
        server
            .faults()
            .inject(FaultRule::times(fault, 1).for_function("C52"));
        let result = bounded(connector.balances(&query)).await;
        match cause {
            Some(cause) => expect_unknown(result, cause, &what),
            None => {
                expect_not_processed(result, &what);
            }
        }
        // The fault is used up: the next read is clean.
        assert!(
            bounded(connector.balances(&query)).await.is_ok(),
            "{what}: after"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn faults_on_statements_fail_the_whole_call_without_panic() {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(berlin_noon()));
    let server = start_with(Arc::clone(&clock), instant()).await;
    server.set_iso_page_size(5).unwrap();
    let connector = connector(&server).with_clock(clock);
    let account = &eur_accounts(&server)[0];
    let query = TransactionQuery {
        number: AccountNumber::parse(&account.number).unwrap(),
        currency: account.currency,
        from: date(2026, 10, 1),
        to: date(2026, 11, 27),
    };
    for fault in [
        Fault::Garbled,
        Fault::Truncated,
        Fault::WrongEncoding,
        Fault::Oversized {
            bytes: 8 * 1024 * 1024,
        },
        Fault::DuplicatePage,
    ] {
        let what = format!("{fault:?}");
        server.faults().clear();
        // Every page takes the rule (DuplicatePage acts from page 2 on).
        server
            .faults()
            .inject(FaultRule::always(fault).for_function("C53"));
        expect_unknown(
            bounded(connector.transactions(&query)).await,
            UnknownCause::Protocol,
            &what,
        );
    }
    server.faults().clear();
    assert!(bounded(connector.transactions(&query)).await.is_ok());
    server.shutdown().await;
}

#[tokio::test]
async fn faults_on_uploads_are_classified_and_status_tells_the_truth() {
    let server = start(instant()).await;
    let connector = connector(&server);
    // (fault, expected kind, executed at the bank?)
    let cases: Vec<(Fault, Result<(), UnknownCause>, bool)> = vec![
        (
            Fault::Reset { when: When::Before },
            Err(UnknownCause::Transport),
            false,
        ),
        (
            Fault::Reset { when: When::After },
            Err(UnknownCause::Transport),
            true,
        ),
        (
            Fault::HttpError {
                status: 500,
                when: When::After,
            },
            Err(UnknownCause::HttpStatus(500)),
            true,
        ),
        (
            Fault::HttpError {
                status: 503,
                when: When::Before,
            },
            Err(UnknownCause::HttpStatus(503)),
            false,
        ),
        (
            Fault::ResponseLost {
                hold_ms: REQUEST_TIMEOUT_MS + 500,
            },
            Err(UnknownCause::Timeout),
            true,
        ),
        (Fault::Garbled, Err(UnknownCause::Protocol), true),
        (Fault::Truncated, Err(UnknownCause::Protocol), true),
        (
            Fault::ErrorCode {
                code: "SYSTEM_BUSY".into(),
                message: "busy".into(),
            },
            Ok(()),
            false,
        ),
    ];
    for (n, (fault, expected, executed)) in cases.into_iter().enumerate() {
        let what = format!("{fault:?}");
        let text = format!("FLT-{n}");
        server.faults().clear();
        server
            .faults()
            .inject(FaultRule::times(fault, 1).for_function("CCT"));
        let result = bounded(connector.submit_payment(&payment(&server, &text, 100))).await;
        match expected {
            Err(cause) => expect_unknown(result, cause, &what),
            Ok(()) => {
                expect_not_processed(result, &what);
            }
        }
        server.faults().clear();
        let answer = if executed {
            final_status(&connector, &server, &text).await
        } else {
            status_of(&connector, &server, &text).await
        };
        if executed {
            assert!(
                matches!(
                    answer,
                    StatusAnswer::Found {
                        status: BankPaymentStatus::Settled,
                        ..
                    }
                ),
                "{what}: {answer:?}"
            );
            assert_eq!(executions_of(&server, &text), 1, "{what}");
        } else {
            assert_eq!(answer, StatusAnswer::NotFound, "{what}");
            assert_eq!(executions_of(&server, &text), 0, "{what}");
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn faults_on_status_reports_are_unknown_never_not_found() {
    let server = start(instant()).await;
    let connector = connector(&server);
    bounded(connector.submit_payment(&payment(&server, "PSR-1", 100)))
        .await
        .unwrap();
    for fault in [
        Fault::Garbled,
        Fault::Truncated,
        Fault::WrongEncoding,
        Fault::HttpError {
            status: 404,
            when: When::Before,
        },
        Fault::Oversized {
            bytes: 8 * 1024 * 1024,
        },
    ] {
        let what = format!("{fault:?}");
        server.faults().clear();
        server
            .faults()
            .inject(FaultRule::times(fault, 1).for_function("PSR"));
        let result =
            bounded(connector.payment_status(&debtor(&server), &[reference("PSR-1")])).await;
        assert!(
            matches!(result, Err(BankError::OutcomeUnknown { .. })),
            "{what}: {result:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_returned_payment_reads_as_returned_with_the_banks_text() {
    let server = start(SimPaymentConfig {
        settle_delay_ms: 0,
        return_delay_ms: 0,
        return_share_percent: 100,
        ingest_delay_ms: 0,
        ..SimPaymentConfig::default()
    })
    .await;
    let connector = connector(&server);
    bounded(connector.submit_payment(&payment(&server, "BACK-1", 100)))
        .await
        .unwrap();
    for _ in 0..100 {
        match status_of(&connector, &server, "BACK-1").await {
            StatusAnswer::Found {
                status: BankPaymentStatus::Returned { code, .. },
                bank_code,
                ..
            } => {
                assert_eq!(code, "RTRN");
                assert_eq!(bank_code, "RJCT/RTRN");
                server.shutdown().await;
                return;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("the payment was not reported returned");
}

#[tokio::test]
async fn an_account_left_out_of_a_report_fails_alone_and_a_dropped_entry_breaks_continuity() {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(berlin_noon()));
    let server = start_with(Arc::clone(&clock), instant()).await;
    let connector = connector(&server).with_clock(clock);
    let accounts = eur_accounts(&server);
    let queries: Vec<BalanceQuery> = accounts
        .iter()
        .map(|a| BalanceQuery {
            number: AccountNumber::parse(&a.number).unwrap(),
            currency: a.currency,
        })
        .collect();
    server.faults().inject(
        FaultRule::times(
            Fault::RecordFailure {
                acc_no: accounts[1].number.clone(),
                code: "AC01".into(),
                message: "hidden".into(),
            },
            1,
        )
        .for_function("C52"),
    );
    let outcomes = bounded(connector.balances(&queries)).await.unwrap();
    assert!(matches!(outcomes[0], BalanceOutcome::Ok(_)));
    assert!(
        matches!(&outcomes[1], BalanceOutcome::Failed { code, .. } if code == CODE_ACCOUNT_UNKNOWN),
        "{:?}",
        outcomes[1]
    );
    assert!(matches!(outcomes[2], BalanceOutcome::Ok(_)));

    // The connector reports what the bank said; the gap is the sync's to find.
    let number = accounts[0].number.clone();
    server
        .faults()
        .inject(FaultRule::always(Fault::ContinuityBreak {
            acc_no: number.clone(),
        }));
    let report = bounded(connector.transactions(&TransactionQuery {
        number: AccountNumber::parse(&number).unwrap(),
        currency: domain::Currency::EUR,
        from: date(2026, 11, 1),
        to: date(2026, 11, 26),
    }))
    .await
    .unwrap();
    server.faults().clear();
    let broken = report.day_balances.iter().filter(|day| {
        let net: i64 = report
            .entries
            .iter()
            .filter(|e| e.booking_date == day.date)
            .map(|e| match e.direction {
                Direction::Credit => e.amount.minor(),
                Direction::Debit => -e.amount.minor(),
            })
            .sum();
        day.opening.minor() + net != day.closing.minor()
    });
    assert_eq!(broken.count(), 1, "exactly the day with the dropped entry");
    server.shutdown().await;
}

#[tokio::test]
async fn accounts_the_partner_cannot_see_fail_alone_even_when_all_of_a_request_are() {
    let server = start(instant()).await;
    let mut one = settings(&server);
    one.max_accounts_per_query = 1;
    let connector = Iso20022Connector::new(one).unwrap();
    let known = &eur_accounts(&server)[0];
    let queries = [
        BalanceQuery {
            number: AccountNumber::parse("DE89370400440532013000").unwrap(),
            currency: domain::Currency::EUR,
        },
        BalanceQuery {
            number: AccountNumber::parse(&known.number).unwrap(),
            currency: known.currency,
        },
    ];
    // One account a request: the first request asks only an unknown one.
    let outcomes = bounded(connector.balances(&queries)).await.unwrap();
    assert!(
        matches!(&outcomes[0], BalanceOutcome::Failed { code, .. } if code == CODE_ACCOUNT_UNKNOWN),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[1], BalanceOutcome::Ok(_)),
        "{:?}",
        outcomes[1]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_partner_is_not_processed_and_says_so() {
    let server = start(instant()).await;
    let mut wrong = settings(&server);
    wrong.login = "NOBODY".into();
    let connector = Iso20022Connector::new(wrong).unwrap();
    let reason = expect_not_processed(bounded(connector.list_accounts()).await, "wrong partner");
    assert!(reason.contains("UNKNOWN_PARTNER"), "{reason}");
    server.shutdown().await;
}
