//! An observed cn-xml connector against a real simulated front machine:
//! every call reaches the sink once with its function, subject and
//! outcome, and the exact GBK bytes sent and received, decoded and masked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use banks::cn_xml::CnXmlConnector;
use banks::{
    BalanceQuery, BankExchange, ConnectionSettings, ExchangeSink, ExchangeSubject,
    PaymentInstruction,
};
use banksim::{SimBankConfig, SimOptions, SimPaymentConfig, SimServer};
use domain::{
    AccountNumber, BankReference, BusinessDate, CnapsCode, CreditorType, Currency, Money,
    SystemClock, Urgency,
};

#[derive(Debug, Default)]
struct Collect(Mutex<Vec<BankExchange>>);

#[async_trait]
impl ExchangeSink for Collect {
    async fn record(&self, exchange: BankExchange) {
        self.0.lock().unwrap().push(exchange);
    }
}

const CREDITOR: &str = "6222020200112233";

#[tokio::test]
async fn every_call_reaches_the_sink_masked() {
    let server = SimServer::start_with_options(
        SimBankConfig::cn_xml_demo("cmb", 11),
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(SystemClock),
        SimOptions {
            payments: SimPaymentConfig {
                settle_delay_ms: 0,
                ..SimPaymentConfig::default()
            },
            random_faults: None,
        },
    )
    .await
    .unwrap();
    let settings = ConnectionSettings {
        bank_id: "simbank".to_string(),
        connection_id: "simbank-main".to_string(),
        endpoint: server.url(),
        login: "DEMO01".to_string(),
        time_zone: chrono_tz::Asia::Shanghai,
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(2_000),
        max_response_bytes: 1024 * 1024,
        max_accounts_per_query: 50,
        max_idle_connections: 4,
        tls: None,
    };
    let sink = Arc::new(Collect::default());
    let connector = banks::exchange::observe(
        Arc::new(CnXmlConnector::new(settings).unwrap()),
        sink.clone(),
        Arc::new(SystemClock),
        "simbank".into(),
        "simbank-main".into(),
    );
    let debtor = AccountNumber::parse(&server.ledger().accounts()[0].number).unwrap();
    let reference = BankReference::parse("EXCHANGE1").unwrap();
    let payment = PaymentInstruction {
        reference: reference.clone(),
        debtor_account: debtor.clone(),
        amount: Money::from_minor(12_345, Currency::CNY),
        creditor_name: "上海某某贸易有限公司".into(),
        creditor_account: CREDITOR.into(),
        creditor_bank_code: Some(CnapsCode::parse("102290000011").unwrap()),
        creditor_bic: None,
        creditor_bank_name: Some("中国工商银行上海分行".into()),
        creditor_type: CreditorType::Corporate,
        remittance: "货款".into(),
        purpose: None,
        urgency: Urgency::Normal,
        requested_execution_date: BusinessDate::parse_compact("20261127").unwrap(),
    };
    connector.submit_payment(&payment).await.unwrap();
    connector
        .balances(&[BalanceQuery {
            number: debtor.clone(),
            currency: Currency::CNY,
        }])
        .await
        .unwrap();

    let seen = sink.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let submit = &seen[0];
    assert_eq!(submit.function, "SubmitPayment");
    assert_eq!(submit.outcome, "ok");
    assert_eq!(
        (submit.bank_id.as_str(), submit.connection_id.as_str()),
        ("simbank", "simbank-main")
    );
    assert_eq!(submit.subject, ExchangeSubject::References(vec![reference]));
    let balance = &seen[1];
    assert_eq!(balance.function, "QueryBalance");
    assert_eq!(
        balance.subject,
        ExchangeSubject::Accounts(vec![debtor.clone()])
    );

    for exchange in &seen {
        let request = &exchange.request.as_ref().expect("request body").text;
        let response = &exchange.response.as_ref().expect("response body").text;
        for body in [request, response] {
            assert!(!body.contains(debtor.as_str()), "{body}");
            assert!(!body.contains(CREDITOR), "{body}");
        }
        let last_four = &debtor.as_str()[debtor.as_str().len() - 4..];
        assert!(request.contains(last_four), "{request}");
        assert!(request.contains(exchange.function), "{request}");
    }
    let request = &submit.request.as_ref().unwrap().text;
    assert!(
        request.contains("上海某某贸易有限公司"),
        "decoded from GBK: {request}"
    );
    assert!(request.contains("2233</CRTACC>"), "{request}");
}
