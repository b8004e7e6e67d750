//! The simulated bank's statement history over real HTTP on loopback:
//! `QueryHistory` paging and `QueryDayBalance` (packets built with
//! `formats`), the deliberate quirks, the history faults, and the entries
//! control API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use banksim::{EntryView, Fault, FaultRule, NewSimEntry, SimBankConfig, SimEntry, SimServer};
use chrono::{TimeZone, Utc};
use domain::{BusinessDate, Direction, EntryStatus, ManualClock, Money};
use formats::cn_xml::messages::{
    self, DayBalanceQuery, DayBalanceRecord, HistoryQuery, HistoryRecord, MAX_HISTORY_RANGE_DAYS,
    MAX_HISTORY_RECORDS_PER_PAGE,
};
use formats::cn_xml::{decode, encode, Limits, Packet};

const CALL_LIMIT: Duration = Duration::from_secs(10);
/// More pages than any test range can need; a loop past it is a bug.
const MAX_TEST_PAGES: usize = 50;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// 01:30 on 2026-11-29 in Shanghai (still the 28th in UTC).
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 28, 17, 30, 0).unwrap(),
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

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(CALL_LIMIT)
        .build()
        .unwrap()
}

async fn post_packet(server: &SimServer, packet: &Packet) -> Packet {
    let response = client()
        .post(server.url())
        .header("content-type", "text/xml; charset=GBK")
        .body(encode(packet).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    decode(&response.bytes().await.unwrap(), &Limits::default()).unwrap()
}

async fn json_of<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> T {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn history_query(number: &str, from: BusinessDate, to: BusinessDate, key: &str) -> HistoryQuery {
    HistoryQuery {
        acc_no: number.to_string(),
        currency_code: "10".to_string(),
        from: from.to_compact(),
        to: to.to_compact(),
        cont_key: key.to_string(),
    }
}

async fn history_page(
    server: &SimServer,
    query: &HistoryQuery,
) -> (Vec<HistoryRecord>, String, String) {
    let answer = post_packet(server, &messages::history_request("DEMO01", "S1", query)).await;
    let page = messages::parse_history(&answer).unwrap();
    (page.response.records, page.cont_key, page.response.ret_code)
}

/// Every page of one session; panics on a refusal.
async fn all_pages(
    server: &SimServer,
    number: &str,
    from: BusinessDate,
    to: BusinessDate,
) -> (Vec<HistoryRecord>, usize) {
    let mut records = Vec::new();
    let mut key = String::new();
    for pages in 1..=MAX_TEST_PAGES {
        let (page, next, code) = history_page(server, &history_query(number, from, to, &key)).await;
        assert_eq!(code, "0");
        assert!(page.len() <= MAX_HISTORY_RECORDS_PER_PAGE);
        records.extend(page);
        if next.is_empty() {
            return (records, pages);
        }
        key = next;
    }
    panic!("paging did not end within {MAX_TEST_PAGES} pages");
}

async fn day_balances(
    server: &SimServer,
    number: &str,
    from: BusinessDate,
    to: BusinessDate,
) -> Vec<DayBalanceRecord> {
    let query = DayBalanceQuery {
        acc_no: number.to_string(),
        currency_code: "10".to_string(),
        from: from.to_compact(),
        to: to.to_compact(),
    };
    let answer = post_packet(
        server,
        &messages::day_balance_request("DEMO01", "S2", &query),
    )
    .await;
    let response = messages::parse_day_balances(&answer).unwrap();
    assert_eq!(response.ret_code, "0");
    response.records
}

fn minor(text: &str) -> i64 {
    Money::parse_bank_decimal(text, domain::Currency::CNY)
        .unwrap()
        .minor()
}

fn signed(record: &HistoryRecord) -> i64 {
    match record.direction.as_str() {
        "C" => minor(&record.amount),
        "D" => -minor(&record.amount),
        other => panic!("direction {other}"),
    }
}

/// What the wire should show for a ledger entry.
fn wire_of(entry: &SimEntry, decimals: u8) -> HistoryRecord {
    let amount = |m: i64| {
        let text = Money::from_minor(m, domain::Currency::CNY).to_decimal_string();
        if decimals == 4 {
            format!("{text}00")
        } else {
            text
        }
    };
    HistoryRecord {
        serial: entry.serial.clone(),
        booking_date: entry.booking_date.to_compact(),
        value_date: entry.value_date.to_compact(),
        direction: match entry.direction {
            Direction::Credit => "C",
            Direction::Debit => "D",
        }
        .to_string(),
        amount: amount(entry.amount_minor),
        status: match entry.status {
            EntryStatus::Booked => "B",
            EntryStatus::Pending => "P",
        }
        .to_string(),
        balance: entry.balance_after_minor.map(amount).unwrap_or_default(),
        ctp_name: entry.counterparty_name.clone(),
        ctp_account: entry.counterparty_account.clone(),
        ctp_bank: entry.counterparty_bank.clone(),
        narrative: entry.remittance.clone(),
        e2e_ref: entry.e2e_ref.clone(),
    }
}

/// Per day: opening + Σ booked entries = closing, and the days chain.
fn assert_days_agree(records: &[HistoryRecord], days: &[DayBalanceRecord]) {
    for pair in days.windows(2) {
        assert_eq!(pair[0].closing, pair[1].opening);
    }
    for day in days {
        let net: i64 = records
            .iter()
            .filter(|r| r.booking_date == day.date && r.status == "B")
            .map(signed)
            .sum();
        assert_eq!(
            minor(&day.opening) + net,
            minor(&day.closing),
            "day {}",
            day.date
        );
    }
}

fn cny_numbers(server: &SimServer) -> Vec<String> {
    server
        .ledger()
        .accounts()
        .into_iter()
        .filter(|a| a.currency == domain::Currency::CNY)
        .map(|a| a.number)
        .collect()
}

#[tokio::test]
async fn pages_show_every_visible_entry_once_and_agree_with_day_balances() {
    let server = start(21).await;
    let decimals = server.quirks().amount_decimals;
    let ledger = server.ledger();
    for number in cny_numbers(&server) {
        let (from, to) = (days_ago(99), today());
        let expected: Vec<HistoryRecord> = ledger
            .entries(&number, from, to)
            .unwrap()
            .iter()
            .filter(|e| e.visible)
            .map(|e| wire_of(e, decimals))
            .collect();
        let (records, pages) = all_pages(&server, &number, from, to).await;
        assert!(
            expected.len() > MAX_HISTORY_RECORDS_PER_PAGE,
            "100 days hold more than a page"
        );
        assert_eq!(pages, expected.len().div_ceil(MAX_HISTORY_RECORDS_PER_PAGE));
        assert_eq!(records, expected);

        let days = day_balances(&server, &number, from, to).await;
        assert_eq!(days.len(), MAX_HISTORY_RANGE_DAYS);
        assert_eq!(days[0].date, from.to_compact());
        assert_eq!(
            minor(&days.last().unwrap().closing),
            ledger.account(&number).unwrap().booked_minor
        );
        assert_days_agree(&records, &days);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn every_account_has_identical_pairs_entries_without_serial_and_pending_ones() {
    let server = start(22).await;
    let ledger = server.ledger();
    let (mut total, mut without_serial) = (0usize, 0usize);
    for account in ledger.accounts() {
        let entries = ledger.entries_between(&account.number, None, None).unwrap();
        total += entries.len();
        without_serial += entries.iter().filter(|e| e.serial.is_empty()).count();
        let looks_same = |a: &SimEntry, b: &SimEntry| {
            SimEntry {
                serial: String::new(),
                balance_after_minor: None,
                ..a.clone()
            } == SimEntry {
                serial: String::new(),
                balance_after_minor: None,
                ..b.clone()
            }
        };
        let pairs: Vec<(&SimEntry, &SimEntry)> = entries
            .windows(2)
            .filter(|w| looks_same(&w[0], &w[1]))
            .map(|w| (&w[0], &w[1]))
            .collect();
        assert!(
            pairs
                .iter()
                .any(|(a, b)| !a.serial.is_empty() && !b.serial.is_empty() && a.serial != b.serial),
            "an identical pair with two serials"
        );
        assert!(
            pairs
                .iter()
                .any(|(a, b)| a.serial.is_empty() && b.serial.is_empty()),
            "an identical pair without serials"
        );
        let pending: Vec<&SimEntry> = entries
            .iter()
            .filter(|e| e.status == EntryStatus::Pending)
            .collect();
        assert!(!pending.is_empty());
        assert!(pending
            .iter()
            .all(|e| e.booking_date == today() && e.balance_after_minor.is_none()));
        let hidden: Vec<&SimEntry> = entries.iter().filter(|e| !e.visible).collect();
        assert!(!hidden.is_empty());
        assert!(hidden
            .iter()
            .all(|e| e.booking_date >= days_ago(3) && e.booking_date < today()));
        assert!(entries
            .iter()
            .any(|e| e.counterparty_name == "张伟" || e.counterparty_name.ends_with("公司")));
        assert!(entries.iter().all(|e| e.amount_minor > 0));
        assert!(entries.first().unwrap().booking_date >= days_ago(100));
    }
    let percent = without_serial * 100 / total;
    assert!((2..=10).contains(&percent), "{percent}% without serial");
    server.shutdown().await;
}

#[tokio::test]
async fn late_entries_are_missed_by_the_first_session_and_found_by_the_next() {
    let server = start(23).await;
    let ledger = server.ledger();
    let number = cny_numbers(&server)[0].clone();
    let (from, to) = (days_ago(9), today());
    let hidden: Vec<SimEntry> = ledger
        .entries(&number, from, to)
        .unwrap()
        .into_iter()
        .filter(|e| !e.visible)
        .collect();
    assert!(!hidden.is_empty());
    let booked_before = ledger.account(&number).unwrap().booked_minor;

    let (first, _) = all_pages(&server, &number, from, to).await;
    // Pages alone do not make a sync: a second session still misses them.
    let (again, _) = all_pages(&server, &number, from, to).await;
    assert_eq!(again, first);
    let first_days = day_balances(&server, &number, from, to).await;
    assert_days_agree(&first, &first_days);
    assert!(ledger
        .entries(&number, from, to)
        .unwrap()
        .iter()
        .any(|e| !e.visible));

    let (second, _) = all_pages(&server, &number, from, to).await;
    let second_days = day_balances(&server, &number, from, to).await;
    assert_days_agree(&second, &second_days);
    assert_eq!(second.len(), first.len() + hidden.len());
    for late in &hidden {
        assert!(second
            .iter()
            .any(|r| r.serial == late.serial && r.booking_date == late.booking_date.to_compact()));
    }
    let net: i64 = hidden
        .iter()
        .map(|e| match e.direction {
            Direction::Credit => e.amount_minor,
            Direction::Debit => -e.amount_minor,
        })
        .sum();
    assert_eq!(
        ledger.account(&number).unwrap().booked_minor,
        booked_before + net
    );
    assert_eq!(
        minor(&second_days.last().unwrap().closing),
        booked_before + net
    );
    server.shutdown().await;
}

#[tokio::test]
async fn entries_added_while_paging_come_once_on_a_later_page() {
    let server = start(24).await;
    let ledger = server.ledger();
    let number = cny_numbers(&server)[1].clone();
    let (from, to) = (days_ago(99), today());
    let (first_page, key, _) = history_page(&server, &history_query(&number, from, to, "")).await;
    assert!(!key.is_empty());
    let added = ledger
        .add_entry(&number, NewSimEntry::booked(Direction::Credit, 12_345))
        .unwrap();
    let mut records = first_page;
    let mut key = key;
    while !key.is_empty() {
        let (page, next, _) = history_page(&server, &history_query(&number, from, to, &key)).await;
        records.extend(page);
        key = next;
    }
    let mut seen = HashSet::new();
    for record in records.iter().filter(|r| !r.serial.is_empty()) {
        assert!(seen.insert((
            record.booking_date.clone(),
            record.serial.clone(),
            record.status.clone()
        )));
    }
    let last = records.last().unwrap();
    assert_eq!(last.serial, added.serial);
    assert_eq!(minor(&last.amount), 12_345);
    assert_eq!(
        minor(&last.balance),
        ledger.account(&number).unwrap().booked_minor
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_history_requests_are_refused_with_a_packet() {
    let server = start(25).await;
    let number = cny_numbers(&server)[0].clone();
    let usd = server
        .ledger()
        .accounts()
        .into_iter()
        .find(|a| a.currency == domain::Currency::USD)
        .unwrap()
        .number;
    let cases = [
        (history_query(&number, days_ago(100), today(), ""), "天"),
        (
            history_query(&number, today(), days_ago(1), ""),
            "结束日期早于开始日期",
        ),
        (
            history_query("999900000000001", today(), today(), ""),
            "账户不存在",
        ),
        (history_query(&usd, today(), today(), ""), "币种与账户不符"),
        (
            history_query(&number, today(), today(), "not-a-key"),
            "续查键无效",
        ),
    ];
    for (query, message) in cases {
        let answer = post_packet(&server, &messages::history_request("DEMO01", "S9", &query)).await;
        let page = messages::parse_history(&answer).unwrap();
        assert_eq!(page.response.ret_code, "BAD_REQUEST", "{query:?}");
        assert!(
            page.response.ret_msg.contains(message),
            "{}",
            page.response.ret_msg
        );
        assert_eq!(page.response.serial, "S9");
    }
    let mut bad_date = history_query(&number, today(), today(), "");
    bad_date.from = "2026-11-01".into();
    let answer = post_packet(
        &server,
        &messages::history_request("DEMO01", "S9", &bad_date),
    )
    .await;
    assert_eq!(answer.head.ret_code.as_deref(), Some("BAD_REQUEST"));

    let longest = DayBalanceQuery {
        acc_no: number.clone(),
        currency_code: "10".into(),
        from: days_ago(99).to_compact(),
        to: today().to_compact(),
    };
    let too_long = DayBalanceQuery {
        from: days_ago(100).to_compact(),
        ..longest.clone()
    };
    let unknown = DayBalanceQuery {
        acc_no: "999900000000001".into(),
        ..longest.clone()
    };
    for (query, code) in [
        (longest, "0"),
        (too_long, "BAD_REQUEST"),
        (unknown, "BAD_REQUEST"),
    ] {
        let answer = post_packet(
            &server,
            &messages::day_balance_request("DEMO01", "S8", &query),
        )
        .await;
        assert_eq!(answer.head.ret_code.as_deref(), Some(code), "{query:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn day_balances_stop_at_today() {
    let server = start(26).await;
    let number = cny_numbers(&server)[0].clone();
    let days = day_balances(&server, &number, days_ago(2), today().add_days(5).unwrap()).await;
    let dates: Vec<String> = days.iter().map(|d| d.date.clone()).collect();
    assert_eq!(
        dates,
        [days_ago(2), days_ago(1), today()].map(|d| d.to_compact())
    );
    let future = day_balances(
        &server,
        &number,
        today().add_days(1).unwrap(),
        today().add_days(3).unwrap(),
    )
    .await;
    assert!(future.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn continuity_break_omits_one_entry_but_not_from_the_day_balances() {
    let server = start(27).await;
    let number = cny_numbers(&server)[0].clone();
    let (from, to) = (days_ago(9), today());
    // A first sync, so that the late entries are out in the open and the
    // honest and the broken session see the same entries.
    all_pages(&server, &number, from, to).await;
    day_balances(&server, &number, from, to).await;
    let (honest, _) = all_pages(&server, &number, from, to).await;
    server
        .faults()
        .try_inject(
            FaultRule::always(Fault::ContinuityBreak {
                acc_no: number.clone(),
            })
            .for_function("QueryHistory"),
        )
        .unwrap();
    let (broken, _) = all_pages(&server, &number, from, to).await;
    let days = day_balances(&server, &number, from, to).await;
    assert_eq!(broken.len() + 1, honest.len());
    let missing: Vec<&HistoryRecord> = honest.iter().filter(|r| !broken.contains(r)).collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].status, "B");
    let latest_booked_day = honest
        .iter()
        .filter(|r| r.status == "B")
        .map(|r| r.booking_date.clone())
        .max()
        .unwrap();
    assert_eq!(missing[0].booking_date, latest_booked_day);
    assert_days_agree(&honest, &days);
    let day = days.iter().find(|d| d.date == latest_booked_day).unwrap();
    let net: i64 = broken
        .iter()
        .filter(|r| r.booking_date == day.date && r.status == "B")
        .map(signed)
        .sum();
    assert_eq!(
        minor(&day.closing) - (minor(&day.opening) + net),
        signed(missing[0])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn duplicate_page_hands_out_a_key_to_the_same_page_once() {
    let server = start(28).await;
    let number = cny_numbers(&server)[0].clone();
    let (from, to) = (days_ago(99), today());
    server
        .faults()
        .try_inject(FaultRule::times(Fault::DuplicatePage, 1))
        .unwrap();
    let (first, key, _) = history_page(&server, &history_query(&number, from, to, "")).await;
    assert!(!key.is_empty(), "even the first page leads back to itself");
    let (again, next, _) = history_page(&server, &history_query(&number, from, to, &key)).await;
    assert_eq!(again, first);
    assert_ne!(next, key);
    // From the second page on the repeated page shows as a repeated key.
    server
        .faults()
        .try_inject(FaultRule::times(Fault::DuplicatePage, 1))
        .unwrap();
    let (second, repeated, _) =
        history_page(&server, &history_query(&number, from, to, &next)).await;
    assert_eq!(repeated, next);
    let (second_again, _, _) =
        history_page(&server, &history_query(&number, from, to, &next)).await;
    assert_eq!(second, second_again);
    server.shutdown().await;
}

#[tokio::test]
async fn transport_faults_apply_to_history_functions() {
    let server = start(29).await;
    let number = cny_numbers(&server)[0].clone();
    server
        .faults()
        .try_inject(
            FaultRule::times(Fault::HttpStatus { status: 503 }, 1).for_function("QueryDayBalance"),
        )
        .unwrap();
    let (_, _, code) = history_page(&server, &history_query(&number, today(), today(), "")).await;
    assert_eq!(code, "0", "a rule for another function does not apply");
    let query = DayBalanceQuery {
        acc_no: number,
        currency_code: "10".into(),
        from: today().to_compact(),
        to: today().to_compact(),
    };
    let response = client()
        .post(server.url())
        .body(encode(&messages::day_balance_request("DEMO01", "S3", &query)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    server.shutdown().await;
}

#[tokio::test]
async fn control_api_lists_adds_and_books_entries() {
    let server = start(30).await;
    let base = server.url();
    let client = client();
    let account = server.ledger().accounts()[0].clone();
    let number = &account.number;

    let list = |from: BusinessDate, to: BusinessDate| {
        client
            .get(format!(
                "{base}_sim/accounts/{number}/entries?from={from}&to={to}"
            ))
            .send()
    };
    let response = list(days_ago(3), today()).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let views: Vec<EntryView> = json_of(response).await;
    let ledger_entries = server
        .ledger()
        .entries(number, days_ago(3), today())
        .unwrap();
    assert_eq!(views.len(), ledger_entries.len());
    assert!(
        views.iter().any(|v| !v.visible),
        "hidden late entries are listed"
    );
    assert!(views.iter().all(|v| v.booking_date >= days_ago(3)));

    let post = |path: String, body: &'static str| {
        client
            .post(format!("{base}_sim/accounts/{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = post(
        format!("{number}/entries"),
        r#"{"direction":"credit","amount":"100.25","counterparty_name":"李娜","remittance":"退款"}"#,
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let booked: EntryView = json_of(response).await;
    assert_eq!(booked.amount, "100.25");
    assert_eq!(booked.booking_date, today());
    assert_eq!(booked.status, EntryStatus::Booked);
    assert_eq!(booked.counterparty_name, "李娜");
    let after = server.ledger().account(number).unwrap();
    assert_eq!(after.booked_minor, account.booked_minor + 10_025);
    assert_eq!(after.available_minor, account.available_minor + 10_025);
    assert_eq!(
        booked.balance_after.as_deref(),
        Some(
            Money::from_minor(after.booked_minor, account.currency)
                .to_decimal_string()
                .as_str()
        )
    );

    let response = post(
        format!("{number}/entries"),
        r#"{"direction":"debit","amount":"50.00","status":"pending","serial":"P-77"}"#,
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let pending: EntryView = json_of(response).await;
    assert_eq!(pending.serial, "P-77");
    assert_eq!(pending.balance_after, None);
    assert_eq!(
        server.ledger().account(number).unwrap(),
        after,
        "pending moves nothing"
    );

    let response = post(format!("{number}/entries/P-77/book"), "")
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let now_booked: EntryView = json_of(response).await;
    assert_eq!(now_booked.serial, "P-77");
    assert_eq!(now_booked.status, EntryStatus::Booked);
    assert_eq!(
        server.ledger().account(number).unwrap().booked_minor,
        after.booked_minor - 5_000
    );

    for (path, body, status) in [
        (format!("{number}/entries/P-77/book"), "", 404),
        (
            format!("{number}/entries"),
            r#"{"direction":"credit","amount":"0.00"}"#,
            400,
        ),
        (
            format!("{number}/entries"),
            r#"{"direction":"credit","amount":"1.001"}"#,
            400,
        ),
        (
            format!("{number}/entries"),
            r#"{"direction":"sideways","amount":"1.00"}"#,
            400,
        ),
        (
            format!("{number}/entries"),
            r#"{"direction":"credit","amount":"1.00","serial":"P-77"}"#,
            400,
        ),
        (
            format!("{number}/entries"),
            r#"{"direction":"credit","amount":"1.00","remittance":"😀"}"#,
            400,
        ),
        (
            "0000000000000/entries".to_string(),
            r#"{"direction":"credit","amount":"1.00"}"#,
            404,
        ),
    ] {
        let response = post(path.clone(), body).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path} {body}");
        let error: serde_json::Value = json_of(response).await;
        assert!(error["error"].is_string());
    }
    let response = client
        .get(format!(
            "{base}_sim/accounts/{number}/entries?from=yesterday"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    server.shutdown().await;
}
