//! The cn-xml connector's transaction details against a real simulated
//! front machine on loopback: paging, chunking of long ranges, day balances,
//! entries that arrive while paging, the history faults, and the error kind
//! of every transport fault on a history page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use banks::cn_xml::{CnXmlConnector, HISTORY_CHUNK_DAYS, MAX_TRANSACTION_RANGE_DAYS};
use banks::{
    BankConnector, BankEntry, BankError, Capability, ConnectionSettings, DayBalance,
    DedupeKeyPolicy, TransactionQuery, TransactionReport, UnknownCause,
};
use banksim::{CnXmlQuirks, Fault, FaultRule, NewSimEntry, SimBankConfig, SimEntry, SimServer};
use chrono::{TimeZone, Utc};
use domain::{AccountNumber, BusinessDate, Currency, Direction, EntryStatus, ManualClock, Money};

/// Upper bound of any single call in these tests.
const CALL_LIMIT: Duration = Duration::from_secs(20);
const PAGE_SIZE: usize = 200;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// 01:30:15 on 2026-11-29 in Shanghai, still the 28th in UTC: a connector
/// or simulator that took the UTC date would be a day off.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 28, 17, 30, 15).unwrap(),
    ))
}

fn today() -> BusinessDate {
    BusinessDate::from_ymd(2026, 11, 29).unwrap()
}

fn days_ago(days: i64) -> BusinessDate {
    today().add_days(-days).unwrap()
}

async fn start(seed: u64) -> SimServer {
    SimServer::start_with_clock(SimBankConfig::cn_xml_demo("cmb", seed), loopback(), clock())
        .await
        .unwrap()
}

fn settings(server: &SimServer) -> ConnectionSettings {
    ConnectionSettings {
        bank_id: "simbank".to_string(),
        connection_id: "simbank-main".to_string(),
        endpoint: server.url(),
        login: server.config().login.clone(),
        time_zone: chrono_tz::Asia::Shanghai,
        connect_timeout: Duration::from_millis(1_000),
        request_timeout: Duration::from_millis(3_000),
        max_response_bytes: 1024 * 1024,
        max_accounts_per_query: 50,
        max_idle_connections: 4,
        tls: None,
    }
}

fn connector(server: &SimServer) -> CnXmlConnector {
    CnXmlConnector::new(settings(server)).unwrap()
}

async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_LIMIT, call)
        .await
        .expect("call did not finish within the test's limit")
}

/// The first CNY account of the bank.
fn cny_account(server: &SimServer) -> String {
    server
        .ledger()
        .accounts()
        .into_iter()
        .find(|a| a.currency == Currency::CNY)
        .unwrap()
        .number
}

fn query(number: &str, from: BusinessDate, to: BusinessDate) -> TransactionQuery {
    TransactionQuery {
        number: AccountNumber::parse(number).unwrap(),
        currency: Currency::CNY,
        from,
        to,
    }
}

/// What the connector should report for a simulator entry.
fn expected(entry: &SimEntry) -> BankEntry {
    let text = |t: &str| Some(t.to_string()).filter(|t| !t.is_empty());
    BankEntry {
        direction: entry.direction,
        amount: Money::from_minor(entry.amount_minor, Currency::CNY),
        booking_date: entry.booking_date,
        value_date: entry.value_date,
        status: entry.status,
        counterparty_name: text(&entry.counterparty_name),
        counterparty_account: text(&entry.counterparty_account),
        counterparty_bank: text(&entry.counterparty_bank),
        remittance: text(&entry.remittance),
        bank_transaction_id: text(&entry.serial),
        end_to_end_id: text(&entry.e2e_ref),
        running_balance: entry
            .balance_after_minor
            .map(|m| Money::from_minor(m, Currency::CNY)),
    }
}

fn visible(
    server: &SimServer,
    number: &str,
    from: BusinessDate,
    to: BusinessDate,
) -> Vec<BankEntry> {
    server
        .ledger()
        .entries(number, from, to)
        .unwrap()
        .iter()
        .filter(|e| e.visible)
        .map(expected)
        .collect()
}

fn signed(entry: &BankEntry) -> i64 {
    match entry.direction {
        Direction::Credit => entry.amount.minor(),
        Direction::Debit => -entry.amount.minor(),
    }
}

/// The days whose opening + Σ booked entries differs from the closing, with
/// the difference.
fn continuity_gaps(report: &TransactionReport) -> Vec<(BusinessDate, i64)> {
    report
        .day_balances
        .iter()
        .filter_map(|day| {
            let net: i64 = report
                .entries
                .iter()
                .filter(|e| e.booking_date == day.date && e.status == EntryStatus::Booked)
                .map(signed)
                .sum();
            let gap = day.closing.minor() - day.opening.minor() - net;
            (gap != 0).then_some((day.date, gap))
        })
        .collect()
}

fn assert_days_chain(days: &[DayBalance], from: BusinessDate, to: BusinessDate) {
    let mut date = from;
    for day in days {
        assert_eq!(day.date, date);
        date = date.add_days(1).unwrap();
    }
    assert_eq!(
        date,
        to.add_days(1).unwrap(),
        "one balance per day of the range"
    );
    for pair in days.windows(2) {
        assert_eq!(pair[0].closing, pair[1].opening);
    }
}

fn assert_unknown(error: &BankError, expected: UnknownCause) {
    match error {
        BankError::OutcomeUnknown { cause, .. } => assert_eq!(*cause, expected, "{error}"),
        other => panic!("expected OutcomeUnknown({expected:?}), got {other}"),
    }
}

/// A seed whose bank writes amounts with `decimals` decimals.
fn seed_with_decimals(decimals: u8) -> u64 {
    (100..1_100)
        .find(|seed| CnXmlQuirks::for_bank("cmb", *seed).amount_decimals == decimals)
        .unwrap()
}

#[tokio::test]
async fn declares_transactions_and_a_per_date_dedupe_key() {
    let server = start(40).await;
    let connector = connector(&server);
    assert!(connector.capabilities().contains(&Capability::Transactions));
    assert!(connector.capabilities().contains(&Capability::Balances));
    assert_eq!(
        connector.dedupe_policy(),
        DedupeKeyPolicy::BankIdPerAccountAndDate
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ninety_days_come_back_entry_for_entry_across_pages_with_both_amount_formats() {
    for decimals in [2, 4] {
        let server = start(seed_with_decimals(decimals)).await;
        assert_eq!(server.quirks().amount_decimals, decimals);
        let number = cny_account(&server);
        let (from, to) = (days_ago(89), today());
        let before = visible(&server, &number, from, to);
        assert!(before.len() > 2 * PAGE_SIZE, "{} entries", before.len());

        let report = bounded(connector(&server).transactions(&query(&number, from, to)))
            .await
            .unwrap();
        assert_eq!(report.entries, before);
        let pages = before.len().div_ceil(PAGE_SIZE) as u64;
        assert_eq!(
            server.requests_served(),
            pages + 1,
            "pages and one day-balance query"
        );
        assert!(report
            .entries
            .iter()
            .any(|e| e.bank_transaction_id.is_none()));
        assert!(report
            .entries
            .iter()
            .any(|e| e.status == EntryStatus::Pending));
        assert!(report.entries.iter().any(|e| e.counterparty_name.is_none()));

        assert_days_chain(&report.day_balances, from, to);
        assert!(continuity_gaps(&report).is_empty());
        let booked = server.ledger().account(&number).unwrap().booked_minor;
        assert_eq!(report.day_balances.last().unwrap().closing.minor(), booked);
        let last_booked = report
            .entries
            .iter()
            .rev()
            .find(|e| e.status == EntryStatus::Booked)
            .unwrap();
        assert_eq!(last_booked.running_balance.unwrap().minor(), booked);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_range_over_one_hundred_days_is_split_into_chunks() {
    let server = start(41).await;
    let number = cny_account(&server);
    // 150 days, the first 49 before the simulated history begins.
    let (from, to) = (days_ago(149), today());
    let expected_entries = visible(&server, &number, from, to);
    let report = bounded(connector(&server).transactions(&query(&number, from, to)))
        .await
        .unwrap();
    assert_eq!(report.entries, expected_entries);
    assert_days_chain(&report.day_balances, from, to);
    assert!(continuity_gaps(&report).is_empty());
    let first_chunk = visible(
        &server,
        &number,
        from,
        from.add_days(HISTORY_CHUNK_DAYS - 1).unwrap(),
    );
    let pages = first_chunk.len().max(1).div_ceil(PAGE_SIZE)
        + (expected_entries.len() - first_chunk.len())
            .max(1)
            .div_ceil(PAGE_SIZE);
    assert_eq!(
        server.requests_served(),
        pages as u64 + 2,
        "the pages of two chunks and two day-balance queries"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn late_entries_missed_by_the_first_sync_are_found_by_the_next() {
    let server = start(42).await;
    let number = cny_account(&server);
    let (from, to) = (days_ago(6), today());
    let hidden: Vec<SimEntry> = server
        .ledger()
        .entries(&number, from, to)
        .unwrap()
        .into_iter()
        .filter(|e| !e.visible)
        .collect();
    assert!(!hidden.is_empty());
    let connector = connector(&server);
    let first = bounded(connector.transactions(&query(&number, from, to)))
        .await
        .unwrap();
    assert!(continuity_gaps(&first).is_empty());
    let second = bounded(connector.transactions(&query(&number, from, to)))
        .await
        .unwrap();
    assert!(continuity_gaps(&second).is_empty());
    assert_eq!(second.entries.len(), first.entries.len() + hidden.len());
    for late in &hidden {
        let id = Some(late.serial.clone()).filter(|s| !s.is_empty());
        let found = |report: &TransactionReport| {
            report.entries.iter().any(|e| {
                e.booking_date == late.booking_date
                    && e.bank_transaction_id == id
                    && e.amount.minor() == late.amount_minor
            })
        };
        assert!(!found(&first) && found(&second), "{late:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn entries_added_and_booked_while_paging_come_exactly_once() {
    let server = start(43).await;
    let number = cny_account(&server);
    let (from, to) = (days_ago(89), today());
    let pending_serial = server
        .ledger()
        .entries(&number, today(), today())
        .unwrap()
        .into_iter()
        .find(|e| e.status == EntryStatus::Pending && !e.serial.is_empty())
        .map(|e| e.serial);
    // Page 1 answers at once, page 2 waits: entries are added in between.
    let faults = server.faults();
    faults
        .try_inject(FaultRule::times(Fault::Delay { ms: 0 }, 1).for_function("QueryHistory"))
        .unwrap();
    faults
        .try_inject(FaultRule::times(Fault::Delay { ms: 400 }, 1).for_function("QueryHistory"))
        .unwrap();
    let connector = connector(&server);
    let call = {
        let q = query(&number, from, to);
        async move { connector.transactions(&q).await }
    };
    let task = tokio::spawn(bounded(call));
    let waiting = Instant::now();
    while server.requests_served() < 2 {
        assert!(waiting.elapsed() < CALL_LIMIT, "page 2 was never asked for");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ledger = server.ledger();
    let credit = ledger
        .add_entry(&number, NewSimEntry::booked(Direction::Credit, 99_900))
        .unwrap();
    let mut twin = NewSimEntry::booked(Direction::Credit, 99_900);
    twin.serial = Some(String::new());
    ledger.add_entry(&number, twin.clone()).unwrap();
    ledger.add_entry(&number, twin).unwrap();
    let booked_now = pending_serial.map(|serial| ledger.book_pending(&number, &serial).unwrap());

    let report = task.await.unwrap().unwrap();
    let mut keys = HashSet::new();
    for entry in &report.entries {
        if let Some(id) = &entry.bank_transaction_id {
            assert!(
                keys.insert((entry.status, entry.booking_date, id.clone())),
                "{entry:?}"
            );
        }
    }
    let count =
        |pred: &dyn Fn(&BankEntry) -> bool| report.entries.iter().filter(|e| pred(e)).count();
    assert_eq!(
        count(
            &|e| e.bank_transaction_id.as_deref() == Some(credit.serial.as_str())
                && e.booking_date == today()
        ),
        1
    );
    assert_eq!(
        count(&|e| e.bank_transaction_id.is_none() && e.amount.minor() == 99_900),
        2,
        "both serial-less twins, once each"
    );
    if let Some(booked) = booked_now {
        assert_eq!(
            count(
                &|e| e.bank_transaction_id.as_deref() == Some(booked.serial.as_str())
                    && e.booking_date == today()
                    && e.status == EntryStatus::Booked
            ),
            1
        );
    }
    let now = ledger.entries(&number, from, to).unwrap();
    assert_eq!(
        report.entries.len(),
        now.iter().filter(|e| e.visible).count()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn continuity_break_shows_as_entries_that_disagree_with_day_balances() {
    let server = start(44).await;
    let number = cny_account(&server);
    let (from, to) = (days_ago(9), today());
    let connector = connector(&server);
    // Two syncs first, so that the late entries are out in the open.
    for _ in 0..2 {
        let honest = bounded(connector.transactions(&query(&number, from, to)))
            .await
            .unwrap();
        assert!(continuity_gaps(&honest).is_empty());
    }
    let honest = visible(&server, &number, from, to);
    server
        .faults()
        .try_inject(FaultRule::always(Fault::ContinuityBreak {
            acc_no: number.clone(),
        }))
        .unwrap();
    let report = bounded(connector.transactions(&query(&number, from, to)))
        .await
        .unwrap();
    assert_eq!(report.entries.len() + 1, honest.len());
    let missing: Vec<&BankEntry> = honest
        .iter()
        .filter(|e| !report.entries.contains(e))
        .collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(
        continuity_gaps(&report),
        vec![(missing[0].booking_date, signed(missing[0]))]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_repeated_page_is_a_protocol_error_wherever_it_happens() {
    let server = start(45).await;
    let number = cny_account(&server);
    let (from, to) = (days_ago(89), today());
    let connector = connector(&server);
    // First page repeated: the entries repeat.
    server
        .faults()
        .try_inject(FaultRule::times(Fault::DuplicatePage, 1))
        .unwrap();
    let error = bounded(connector.transactions(&query(&number, from, to)))
        .await
        .unwrap_err();
    assert_unknown(&error, UnknownCause::Protocol);
    assert!(error.to_string().contains("appears twice"), "{error}");
    // Second page repeated: the key repeats.
    server
        .faults()
        .try_inject(FaultRule::times(Fault::Delay { ms: 0 }, 1).for_function("QueryHistory"))
        .unwrap();
    server
        .faults()
        .try_inject(FaultRule::times(Fault::DuplicatePage, 1))
        .unwrap();
    let error = bounded(connector.transactions(&query(&number, from, to)))
        .await
        .unwrap_err();
    assert_unknown(&error, UnknownCause::Protocol);
    assert!(error.to_string().contains("CONTKEY"), "{error}");
    // A bank that repeats for ever is stopped too.
    server
        .faults()
        .try_inject(FaultRule::always(Fault::DuplicatePage))
        .unwrap();
    let served_before = server.requests_served();
    let error = bounded(connector.transactions(&query(&number, from, to)))
        .await
        .unwrap_err();
    assert_unknown(&error, UnknownCause::Protocol);
    assert!(server.requests_served() - served_before <= 3);
    server.shutdown().await;
}

/// The error of a transactions call whose `nth` history page (1-based), or
/// day-balance query, meets `fault`.
async fn error_with(fault: Fault, function: &str, nth: u32, timeout_ms: Option<u64>) -> BankError {
    let server = start(46).await;
    let number = cny_account(&server);
    if nth > 1 {
        server
            .faults()
            .try_inject(FaultRule::times(Fault::Delay { ms: 0 }, nth - 1).for_function(function))
            .unwrap();
    }
    server
        .faults()
        .try_inject(FaultRule::times(fault, 1).for_function(function))
        .unwrap();
    let mut settings = settings(&server);
    if let Some(ms) = timeout_ms {
        settings.request_timeout = Duration::from_millis(ms);
    }
    let connector = CnXmlConnector::new(settings).unwrap();
    let error = bounded(connector.transactions(&query(&number, days_ago(89), today())))
        .await
        .unwrap_err();
    // The simulator is dropped (not shut down): a delayed answer may still
    // be pending, and the runtime ends it with the test.
    drop(server);
    error
}

#[tokio::test]
async fn every_transport_fault_on_a_history_page_maps_to_its_kind() {
    for (function, nth) in [
        ("QueryHistory", 1),
        ("QueryHistory", 2),
        ("QueryDayBalance", 1),
    ] {
        let error = error_with(Fault::Delay { ms: 1_500 }, function, nth, Some(300)).await;
        assert_unknown(&error, UnknownCause::Timeout);
        let error = error_with(Fault::HttpStatus { status: 503 }, function, nth, None).await;
        assert_unknown(&error, UnknownCause::HttpStatus(503));
        for fault in [
            Fault::Garbled,
            Fault::Truncated,
            Fault::WrongEncoding,
            Fault::Oversized {
                bytes: 2 * 1024 * 1024,
            },
        ] {
            let error = error_with(fault.clone(), function, nth, None).await;
            assert_unknown(&error, UnknownCause::Protocol);
            assert!(!error.to_string().contains("<CNXML"), "{fault:?}: {error}");
        }
        match error_with(Fault::TornBody, function, nth, None).await {
            BankError::OutcomeUnknown {
                cause: UnknownCause::Transport | UnknownCause::Protocol,
                ..
            } => {}
            other => panic!(
                "{function} {nth}: expected OutcomeUnknown(Transport or Protocol), got {other}"
            ),
        }
        let busy = Fault::ErrorCode {
            code: "SYSTEM_BUSY".into(),
            message: "系统繁忙".into(),
        };
        let error = error_with(busy, function, nth, None).await;
        assert!(matches!(error, BankError::NotProcessed { .. }), "{error}");
        let refused = Fault::ErrorCode {
            code: "NO_PERMISSION".into(),
            message: "无权限查询该账户明细".into(),
        };
        match error_with(refused, function, nth, None).await {
            BankError::Rejected { code, message, .. } => {
                assert_eq!(code, "NO_PERMISSION");
                assert_eq!(message, "无权限查询该账户明细");
            }
            other => panic!("{function} {nth}: expected Rejected, got {other}"),
        }
    }
}

#[tokio::test]
async fn unknown_account_is_the_banks_rejection() {
    let server = start(47).await;
    let error =
        bounded(connector(&server).transactions(&query("999900000000001", today(), today())))
            .await
            .unwrap_err();
    match error {
        BankError::Rejected { code, message, .. } => {
            assert_eq!(code, "BAD_REQUEST");
            assert_eq!(message, "账户不存在");
        }
        other => panic!("expected Rejected, got {other}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn impossible_queries_are_refused_before_anything_is_sent() {
    let server = start(48).await;
    let number = cny_account(&server);
    let connector = connector(&server);
    let backwards = query(&number, today(), days_ago(1));
    let too_long = query(&number, days_ago(MAX_TRANSACTION_RANGE_DAYS), today());
    let mut no_code = query(&number, today(), today());
    no_code.currency = Currency::from_code("CHF").unwrap();
    for q in [backwards, too_long, no_code] {
        let error = bounded(connector.transactions(&q)).await.unwrap_err();
        assert!(matches!(error, BankError::NotProcessed { .. }), "{error}");
    }
    assert_eq!(server.requests_served(), 0);
    server.shutdown().await;
}
