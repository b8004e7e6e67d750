//! The cn-xml connector against a real simulated front machine on loopback:
//! the happy paths, then one test per injected fault, each checking that the
//! failure lands in the error kind the dispatcher relies on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use banks::cn_xml::{CnXmlConnector, RECORD_FAILED};
use banks::{
    BalanceOutcome, BalanceQuery, BankConnector, BankError, ConnectionSettings, UnknownCause,
};
use banksim::{CnXmlQuirks, Fault, FaultRule, SimBankConfig, SimServer};
use chrono::{DateTime, TimeZone, Utc};
use domain::{AccountNumber, Clock, Currency, Money};

/// Upper bound of any single call in these tests.
const CALL_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

fn fixed_instant() -> DateTime<Utc> {
    // 01:30:15 on the 29th in Shanghai while UTC is still on the 28th: a
    // connector that read the bank's date and time as UTC would be 8 h off.
    Utc.with_ymd_and_hms(2026, 11, 28, 17, 30, 15).unwrap()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(cfg: SimBankConfig) -> SimServer {
    SimServer::start_with_clock(cfg, loopback(), Arc::new(FixedClock(fixed_instant())))
        .await
        .unwrap()
}

fn settings_for(endpoint: String, login: &str) -> ConnectionSettings {
    ConnectionSettings {
        bank_id: "simbank".to_string(),
        connection_id: "simbank-main".to_string(),
        endpoint,
        login: login.to_string(),
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
    CnXmlConnector::new(settings_for(server.url(), &server.config().login)).unwrap()
}

async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_LIMIT, call)
        .await
        .expect("call did not finish within the test's limit")
}

fn queries_of(server: &SimServer) -> Vec<BalanceQuery> {
    server
        .ledger()
        .accounts()
        .iter()
        .map(|a| BalanceQuery {
            number: AccountNumber::parse(&a.number).unwrap(),
            currency: a.currency,
        })
        .collect()
}

fn assert_matches_ledger(
    server: &SimServer,
    queries: &[BalanceQuery],
    outcomes: &[BalanceOutcome],
) {
    assert_eq!(outcomes.len(), queries.len());
    for (query, outcome) in queries.iter().zip(outcomes) {
        let BalanceOutcome::Ok(balance) = outcome else {
            panic!("expected a balance, got {outcome:?}");
        };
        let account = server.ledger().account(query.number.as_str()).unwrap();
        assert_eq!(balance.number, query.number);
        assert_eq!(balance.currency, account.currency);
        assert_eq!(
            balance.booked,
            Money::from_minor(account.booked_minor, account.currency)
        );
        assert_eq!(
            balance.available,
            Money::from_minor(account.available_minor, account.currency)
        );
        assert_eq!(balance.as_of, fixed_instant());
    }
}

/// A seed whose bank writes amounts with `decimals` decimals.
fn seed_with_decimals(bank_id: &str, decimals: u8) -> u64 {
    (0..1_000)
        .find(|seed| CnXmlQuirks::for_bank(bank_id, *seed).amount_decimals == decimals)
        .unwrap()
}

async fn balance_error(server: &SimServer, connector: &CnXmlConnector) -> BankError {
    let queries = queries_of(server);
    bounded(connector.balances(&queries[..1]))
        .await
        .unwrap_err()
}

fn assert_unknown(error: &BankError, expected: UnknownCause) {
    match error {
        BankError::OutcomeUnknown { cause, .. } => assert_eq!(*cause, expected, "{error}"),
        other => panic!("expected OutcomeUnknown({expected:?}), got {other}"),
    }
}

#[tokio::test]
async fn lists_the_ledger_accounts() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 11)).await;
    let accounts = bounded(connector(&server).list_accounts()).await.unwrap();
    let ledger = server.ledger().accounts();
    assert_eq!(accounts.len(), ledger.len());
    for (info, account) in accounts.iter().zip(&ledger) {
        assert_eq!(info.number.as_str(), account.number);
        assert_eq!(info.name, account.name);
        assert_eq!(info.currency, account.currency);
        assert_eq!(info.branch.as_deref(), Some(account.branch.as_str()));
        assert!(info.active);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn balances_match_the_ledger_with_two_and_four_decimals() {
    for decimals in [2, 4] {
        let seed = seed_with_decimals("cmb", decimals);
        let server = start(SimBankConfig::cn_xml_demo("cmb", seed)).await;
        assert_eq!(server.quirks().amount_decimals, decimals);
        let queries = queries_of(&server);
        let outcomes = bounded(connector(&server).balances(&queries))
            .await
            .unwrap();
        assert_matches_ledger(&server, &queries, &outcomes);
        assert_eq!(server.requests_served(), 1, "one request for all accounts");
        assert!(
            server
                .ledger()
                .accounts()
                .iter()
                .any(|a| a.booked_minor < 0),
            "the demo ledger has an overdrawn account whose negative balance went through"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn balances_follow_ledger_changes() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 12)).await;
    let connector = connector(&server);
    let queries = queries_of(&server);
    server
        .ledger()
        .adjust(queries[0].number.as_str(), -10_050)
        .unwrap();
    let outcomes = bounded(connector.balances(&queries)).await.unwrap();
    assert_matches_ledger(&server, &queries, &outcomes);
    server.shutdown().await;
}

#[tokio::test]
async fn more_accounts_than_one_request_holds_are_split_in_order() {
    let mut cfg = SimBankConfig::cn_xml_demo("bigbank", 3);
    cfg.cny_accounts = 60;
    cfg.usd_accounts = 0;
    let server = start(cfg).await;
    let mut queries = queries_of(&server);
    queries.reverse();
    let outcomes = bounded(connector(&server).balances(&queries))
        .await
        .unwrap();
    assert_matches_ledger(&server, &queries, &outcomes);
    assert_eq!(server.requests_served(), 2, "50 + 10 accounts");
    server.shutdown().await;
}

#[tokio::test]
async fn smaller_per_query_limit_is_honoured() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 4)).await;
    let mut settings = settings_for(server.url(), "DEMO01");
    settings.max_accounts_per_query = 3;
    let connector = CnXmlConnector::new(settings).unwrap();
    let queries = queries_of(&server);
    let outcomes = bounded(connector.balances(&queries)).await.unwrap();
    assert_matches_ledger(&server, &queries, &outcomes);
    assert_eq!(server.requests_served(), 3, "7 accounts by 3");
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_account_is_a_failed_record_not_a_failed_call() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 5)).await;
    let mut queries = queries_of(&server);
    let unknown = AccountNumber::parse("999900000000001").unwrap();
    queries.insert(
        1,
        BalanceQuery {
            number: unknown.clone(),
            currency: Currency::CNY,
        },
    );
    let outcomes = bounded(connector(&server).balances(&queries))
        .await
        .unwrap();
    assert_eq!(
        outcomes[1],
        BalanceOutcome::Failed {
            number: unknown,
            currency: Currency::CNY,
            code: RECORD_FAILED.to_string(),
            message: "账户不存在".to_string(),
        }
    );
    let mut known = queries.clone();
    known.remove(1);
    let mut rest = outcomes.clone();
    rest.remove(1);
    assert_matches_ledger(&server, &known, &rest);
    server.shutdown().await;
}

#[tokio::test]
async fn injected_record_failure_keeps_the_bank_message() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 6)).await;
    let queries = queries_of(&server);
    let target = queries[2].number.as_str().to_string();
    server
        .faults()
        .try_inject(FaultRule::times(
            Fault::RecordFailure {
                acc_no: target,
                code: "ACC_FROZEN".into(),
                message: "账户已冻结".into(),
            },
            1,
        ))
        .unwrap();
    let outcomes = bounded(connector(&server).balances(&queries))
        .await
        .unwrap();
    match &outcomes[2] {
        BalanceOutcome::Failed { code, message, .. } => {
            assert_eq!(code, RECORD_FAILED);
            assert_eq!(message, "账户已冻结");
        }
        other => panic!("expected a failed record, got {other:?}"),
    }
    assert!(matches!(outcomes[0], BalanceOutcome::Ok(_)));
    server.shutdown().await;
}

#[tokio::test]
async fn delay_beyond_the_request_timeout_is_a_timeout() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 7)).await;
    let mut settings = settings_for(server.url(), "DEMO01");
    settings.request_timeout = Duration::from_millis(300);
    let connector = CnXmlConnector::new(settings).unwrap();
    server
        .faults()
        .try_inject(FaultRule::times(Fault::Delay { ms: 1_500 }, 1))
        .unwrap();
    let started = Instant::now();
    let error = balance_error(&server, &connector).await;
    assert_unknown(&error, UnknownCause::Timeout);
    assert_eq!(error.outcome_label(), "timeout");
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "{:?}",
        started.elapsed()
    );
    // The server is dropped with the delayed answer still pending; the
    // runtime ends it with the test.
}

#[tokio::test]
async fn delay_within_the_timeout_still_answers() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 7)).await;
    server
        .faults()
        .try_inject(FaultRule::times(Fault::Delay { ms: 100 }, 1))
        .unwrap();
    let queries = queries_of(&server);
    let outcomes = bounded(connector(&server).balances(&queries))
        .await
        .unwrap();
    assert_matches_ledger(&server, &queries, &outcomes);
    server.shutdown().await;
}

#[tokio::test]
async fn http_500_is_unknown_with_the_status() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 8)).await;
    server
        .faults()
        .try_inject(FaultRule::always(Fault::HttpStatus { status: 500 }))
        .unwrap();
    let error = balance_error(&server, &connector(&server)).await;
    assert_unknown(&error, UnknownCause::HttpStatus(500));
    server.shutdown().await;
}

#[tokio::test]
async fn bank_error_code_is_a_rejection_with_the_code_kept() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 9)).await;
    server
        .faults()
        .try_inject(FaultRule::times(
            Fault::ErrorCode {
                code: "NO_PERMISSION".into(),
                message: "无权限查询该账户".into(),
            },
            1,
        ))
        .unwrap();
    match balance_error(&server, &connector(&server)).await {
        BankError::Rejected { code, message, .. } => {
            assert_eq!(code, "NO_PERMISSION");
            assert_eq!(message, "无权限查询该账户");
        }
        other => panic!("expected Rejected, got {other}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn system_busy_is_not_processed() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 10)).await;
    server
        .faults()
        .try_inject(FaultRule::times(
            Fault::ErrorCode {
                code: "SYSTEM_BUSY".into(),
                message: "系统繁忙，请稍后再试".into(),
            },
            1,
        ))
        .unwrap();
    let error = balance_error(&server, &connector(&server)).await;
    assert!(matches!(error, BankError::NotProcessed { .. }), "{error}");
    server.shutdown().await;
}

#[tokio::test]
async fn spoiled_answers_are_protocol_errors() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 13)).await;
    let connector = connector(&server);
    for fault in [
        Fault::Garbled,
        Fault::Truncated,
        Fault::WrongEncoding,
        Fault::Oversized {
            bytes: 2 * 1024 * 1024,
        },
    ] {
        server
            .faults()
            .try_inject(FaultRule::times(fault.clone(), 1))
            .unwrap();
        let error = balance_error(&server, &connector).await;
        assert_unknown(&error, UnknownCause::Protocol);
        let text = error.to_string();
        assert!(
            !text.contains("<CNXML"),
            "{fault:?}: the reason must not dump the body: {text}"
        );
    }
    // Wrong encoding shows in a name of the account list too.
    server
        .faults()
        .try_inject(FaultRule::times(Fault::WrongEncoding, 1))
        .unwrap();
    let error = bounded(connector.list_accounts()).await.unwrap_err();
    assert_unknown(&error, UnknownCause::Protocol);
    server.shutdown().await;
}

#[tokio::test]
async fn torn_body_is_unknown() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 14)).await;
    server
        .faults()
        .try_inject(FaultRule::times(Fault::TornBody, 1))
        .unwrap();
    let error = balance_error(&server, &connector(&server)).await;
    match error {
        BankError::OutcomeUnknown {
            cause: UnknownCause::Transport | UnknownCause::Protocol,
            ..
        } => {}
        other => panic!("expected OutcomeUnknown(Transport or Protocol), got {other}"),
    }
    // The next call on the same connector works again.
    let queries = queries_of(&server);
    let outcomes = bounded(connector(&server).balances(&queries))
        .await
        .unwrap();
    assert_matches_ledger(&server, &queries, &outcomes);
    server.shutdown().await;
}

#[tokio::test]
async fn fault_for_another_function_does_not_apply() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 15)).await;
    server
        .faults()
        .try_inject(FaultRule::always(Fault::Garbled).for_function("ListAccounts"))
        .unwrap();
    let connector = connector(&server);
    let queries = queries_of(&server);
    let outcomes = bounded(connector.balances(&queries)).await.unwrap();
    assert_matches_ledger(&server, &queries, &outcomes);
    let error = bounded(connector.list_accounts()).await.unwrap_err();
    assert_unknown(&error, UnknownCause::Protocol);
    server.shutdown().await;
}

#[tokio::test]
async fn closed_port_is_not_processed() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let connector =
        CnXmlConnector::new(settings_for(format!("http://127.0.0.1:{port}/"), "DEMO01")).unwrap();
    let error = bounded(connector.list_accounts()).await.unwrap_err();
    assert!(matches!(error, BankError::NotProcessed { .. }), "{error}");
    assert_eq!(error.outcome_label(), "not_processed");
}

#[tokio::test]
async fn wrong_login_is_rejected() {
    let server = start(SimBankConfig::cn_xml_demo("cmb", 16)).await;
    let connector = CnXmlConnector::new(settings_for(server.url(), "INTRUDER")).unwrap();
    match bounded(connector.list_accounts()).await.unwrap_err() {
        BankError::Rejected { code, message, .. } => {
            assert_eq!(code, "LOGIN_FAILED");
            assert_eq!(message, "登录失败：用户名不存在");
        }
        other => panic!("expected Rejected, got {other}"),
    }
    server.shutdown().await;
}

#[test]
fn settings_are_checked_when_building() {
    let good = settings_for("http://127.0.0.1:8701/".into(), "DEMO01");
    assert!(CnXmlConnector::new(good.clone()).is_ok());
    let mut bad = good.clone();
    bad.max_accounts_per_query = 51;
    assert!(CnXmlConnector::new(bad).is_err());
    let mut bad = good.clone();
    bad.max_accounts_per_query = 0;
    assert!(CnXmlConnector::new(bad).is_err());
    let mut bad = good.clone();
    bad.endpoint = "ftp://bank/".into();
    assert!(CnXmlConnector::new(bad).is_err());
    let mut bad = good.clone();
    bad.endpoint = "not a url".into();
    assert!(CnXmlConnector::new(bad).is_err());
    let mut bad = good;
    bad.login = String::new();
    assert!(CnXmlConnector::new(bad).is_err());
}

/// A hand-written front machine for answers the simulator would never give:
/// it accepts one connection, reads the request head, writes `response` as
/// it is and closes.
async fn one_shot_server(response: Vec<u8>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 16 * 1024];
        // One read is enough to know a request arrived; the body is not needed.
        let _ = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut request)).await;
        let _ = socket.write_all(&response).await;
        let _ = socket.shutdown().await;
    });
    addr
}

#[tokio::test]
async fn oversized_chunked_answer_is_refused_while_streaming() {
    let chunk = vec![b' '; 64 * 1024];
    let mut response =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=GBK\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        response.extend_from_slice(format!("{:X}\r\n", chunk.len()).as_bytes());
        response.extend_from_slice(&chunk);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let addr = one_shot_server(response).await;
    let mut settings = settings_for(format!("http://{addr}/"), "DEMO01");
    settings.max_response_bytes = 100 * 1024;
    let connector = CnXmlConnector::new(settings).unwrap();
    let error = bounded(connector.list_accounts()).await.unwrap_err();
    assert_unknown(&error, UnknownCause::Protocol);
    assert!(error.to_string().contains("max_response_bytes"), "{error}");
}

#[tokio::test]
async fn answer_to_another_serial_is_not_believed() {
    use formats::cn_xml::{encode, messages};
    let packet = encode(&messages::list_accounts_response(
        "R0000000000000000",
        "0",
        "",
        &[],
    ))
    .unwrap();
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=GBK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        packet.len()
    )
    .into_bytes();
    response.extend_from_slice(&packet);
    let addr = one_shot_server(response).await;
    let connector = CnXmlConnector::new(settings_for(format!("http://{addr}/"), "DEMO01")).unwrap();
    let error = bounded(connector.list_accounts()).await.unwrap_err();
    assert_unknown(&error, UnknownCause::Protocol);
    assert!(error.to_string().contains("serial"), "{error}");
}
