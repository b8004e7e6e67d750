//! The simulated cn-xml bank over real HTTP on loopback: packets in the
//! family's wire format (built with `formats`, sent with a plain HTTP
//! client), and the JSON control API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use banksim::{Fault, FaultRule, LedgerView, SimBankConfig, SimServer};
use domain::Money;
use formats::cn_xml::messages::{self, BalanceQueryItem};
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

async fn post_bytes(server: &SimServer, body: Vec<u8>) -> (u16, Vec<u8>) {
    let response = client()
        .post(server.url())
        .header("content-type", "text/xml; charset=GBK")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn post_packet(server: &SimServer, packet: &Packet) -> Packet {
    let (status, bytes) = post_bytes(server, encode(packet).unwrap()).await;
    assert_eq!(status, 200);
    decode(&bytes, &Limits::default()).unwrap()
}

async fn json_of<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> T {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn items(numbers: &[&str]) -> Vec<BalanceQueryItem> {
    numbers
        .iter()
        .map(|n| BalanceQueryItem {
            acc_no: n.to_string(),
            currency_code: None,
        })
        .collect()
}

#[tokio::test]
async fn answers_list_accounts_over_http() {
    let server = SimServer::start(SimBankConfig::cn_xml_demo("cmb", 1), loopback())
        .await
        .unwrap();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let answer = post_packet(&server, &messages::list_accounts_request("DEMO01", "S1")).await;
    let response = messages::parse_list_accounts(&answer).unwrap();
    assert!(response.is_ok());
    assert_eq!(response.serial, "S1");
    let ledger = server.ledger().accounts();
    assert_eq!(response.records.len(), ledger.len());
    for (record, account) in response.records.iter().zip(&ledger) {
        assert_eq!(record.acc_no, account.number);
        assert_eq!(record.name, account.name);
        assert_eq!(record.branch, account.branch);
        assert_eq!(record.status, "A");
    }
    assert_eq!(server.requests_served(), 1);
    tokio::time::timeout(CALL_LIMIT, server.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn answers_balances_with_failed_records_for_unknown_accounts() {
    let server = SimServer::start(SimBankConfig::cn_xml_demo("cmb", 2), loopback())
        .await
        .unwrap();
    let account = server.ledger().accounts()[0].clone();
    let request = messages::balance_request(
        "DEMO01",
        "S2",
        &items(&[account.number.as_str(), "000011112222333"]),
    );
    let response = messages::parse_balances(&post_packet(&server, &request).await).unwrap();
    assert!(response.is_ok());
    assert_eq!(response.records.len(), 2);
    let known = &response.records[0];
    assert_eq!(known.rec_status, "S");
    assert_eq!(known.currency_code, "10");
    assert_eq!(
        Money::parse_bank_decimal(&known.booked, account.currency).unwrap(),
        Money::from_minor(account.booked_minor, account.currency)
    );
    let decimals = known.booked.split('.').nth(1).unwrap().len();
    assert_eq!(decimals, usize::from(server.quirks().amount_decimals));
    let unknown = &response.records[1];
    assert_eq!(unknown.rec_status, "F");
    assert_eq!(unknown.rec_msg, "账户不存在");
    server.shutdown().await;
}

#[tokio::test]
async fn refuses_bad_requests_with_a_packet() {
    let mut cfg = SimBankConfig::cn_xml_demo("cmb", 3);
    cfg.cny_accounts = 51;
    cfg.usd_accounts = 0;
    let server = SimServer::start(cfg, loopback()).await.unwrap();

    let (status, bytes) = post_bytes(&server, b"\xFF\xFEnot a packet".to_vec()).await;
    assert_eq!(status, 200);
    let answer = decode(&bytes, &Limits::default()).unwrap();
    assert_eq!(answer.head.ret_code.as_deref(), Some("BAD_REQUEST"));

    let answer = post_packet(&server, &messages::list_accounts_request("NOBODY", "S3")).await;
    assert_eq!(answer.head.ret_code.as_deref(), Some("LOGIN_FAILED"));
    assert_eq!(answer.head.serial, "S3");

    let mut unknown_function = messages::list_accounts_request("DEMO01", "S4");
    unknown_function.head.func = "Transfer".to_string();
    let answer = post_packet(&server, &unknown_function).await;
    assert_eq!(answer.head.ret_code.as_deref(), Some("BAD_REQUEST"));
    assert_eq!(answer.head.func, "Transfer");

    let numbers: Vec<String> = server
        .ledger()
        .accounts()
        .into_iter()
        .map(|a| a.number)
        .collect();
    let all: Vec<&str> = numbers.iter().map(String::as_str).collect();
    assert_eq!(all.len(), 51);
    let answer = post_packet(
        &server,
        &messages::balance_request("DEMO01", "S5", &items(&all)),
    )
    .await;
    assert_eq!(answer.head.ret_code.as_deref(), Some("BAD_REQUEST"));
    let answer = post_packet(
        &server,
        &messages::balance_request("DEMO01", "S6", &items(&all[..50])),
    )
    .await;
    assert_eq!(answer.head.ret_code.as_deref(), Some("0"));
    server.shutdown().await;
}

#[tokio::test]
async fn control_api_shows_the_ledger_and_adjusts_it() {
    let server = SimServer::start(SimBankConfig::cn_xml_demo("cmb", 4), loopback())
        .await
        .unwrap();
    let base = server.url();
    let client = client();
    let view: LedgerView = json_of(
        client
            .get(format!("{base}_sim/ledger"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(view.bank_id, "cmb");
    let ledger = server.ledger().accounts();
    assert_eq!(view.accounts.len(), ledger.len());
    let first = &ledger[0];
    assert_eq!(view.accounts[0].number, first.number);
    assert_eq!(view.accounts[0].currency, "CNY");
    assert_eq!(
        view.accounts[0].booked,
        Money::from_minor(first.booked_minor, first.currency).to_decimal_string()
    );
    assert_eq!(view.totals.len(), 2);
    assert_eq!(view.totals[0].currency, "CNY");

    let response = client
        .post(format!("{base}_sim/accounts/{}/adjust", first.number))
        .header("content-type", "application/json")
        .body(r#"{"delta": "-100.25"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let after = server.ledger().account(&first.number).unwrap();
    assert_eq!(after.booked_minor, first.booked_minor - 10_025);
    assert_eq!(after.available_minor, first.available_minor - 10_025);

    for (path, body, status) in [
        (
            format!("{base}_sim/accounts/{}/adjust", first.number),
            r#"{"delta":"1.001"}"#,
            400,
        ),
        (
            format!("{base}_sim/accounts/{}/adjust", first.number),
            r#"{"oops":1}"#,
            400,
        ),
        (
            format!("{base}_sim/accounts/0000000000000/adjust"),
            r#"{"delta":"1.00"}"#,
            404,
        ),
    ] {
        let response = client
            .post(path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let error: serde_json::Value = json_of(response).await;
        assert!(error["error"].is_string());
    }
    assert_eq!(server.ledger().account(&first.number).unwrap(), after);
    server.shutdown().await;
}

#[tokio::test]
async fn control_api_injects_and_clears_faults() {
    let server = SimServer::start(SimBankConfig::cn_xml_demo("cmb", 5), loopback())
        .await
        .unwrap();
    let base = server.url();
    let client = client();
    let response = client
        .post(format!("{base}_sim/faults"))
        .header("content-type", "application/json")
        .body(r#"{"kind":"http_status","status":503,"function":"ListAccounts","remaining":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(
        server.faults().rules(),
        vec![FaultRule::times(Fault::HttpStatus { status: 503 }, 2).for_function("ListAccounts")]
    );
    let request = encode(&messages::list_accounts_request("DEMO01", "S7")).unwrap();
    let (status, _) = post_bytes(&server, request.clone()).await;
    assert_eq!(status, 503);

    let response = client
        .post(format!("{base}_sim/faults"))
        .body(r#"{"kind":"delay","ms":99999999}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    let response = client
        .delete(format!("{base}_sim/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let (status, _) = post_bytes(&server, request).await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_is_bounded_even_with_a_request_in_flight() {
    let server = SimServer::start(SimBankConfig::cn_xml_demo("cmb", 6), loopback())
        .await
        .unwrap();
    server
        .faults()
        .try_inject(FaultRule::always(Fault::Delay { ms: 30_000 }))
        .unwrap();
    let url = server.url();
    let request = encode(&messages::list_accounts_request("DEMO01", "S8")).unwrap();
    let in_flight = tokio::spawn(async move {
        match client().post(url).body(request).send().await {
            Ok(response) => response.bytes().await.map(|_| ()),
            Err(error) => Err(error),
        }
    });
    // Wait until the simulator has the request before shutting down.
    let waiting_since = Instant::now();
    while server.requests_served() == 0 {
        assert!(waiting_since.elapsed() < CALL_LIMIT);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = server.local_addr();
    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    let outcome = tokio::time::timeout(CALL_LIMIT, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert!(
        outcome.is_err(),
        "the delayed request was cut off: {outcome:?}"
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn refuses_an_invalid_config() {
    let mut cfg = SimBankConfig::cn_xml_demo("cmb", 7);
    cfg.family = "soap".into();
    assert!(SimServer::start(cfg, loopback()).await.is_err());
}
