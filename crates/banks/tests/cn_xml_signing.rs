//! Signed cn-xml traffic and the bank password against a signing simulated
//! front machine: a signed round trip; a wrong or expired bank certificate
//! fails naming the bank; a request signed with the wrong key, or not at
//! all, or with the wrong password, is refused by the bank; and a wrongly
//! signed answer to a submission is `OutcomeUnknown`, resolved by the status
//! query, with the payment executed exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use banks::cn_xml::{CnXmlConnector, CnXmlOptions, CnXmlSigning, DEFAULT_SM2_ID};
use banks::{
    BalanceQuery, BankConnector, BankError, BankPaymentStatus, ConnectionSettings,
    PaymentInstruction, StatusAnswer, UnknownCause,
};
use banksim::{
    CnXmlSimOptions, Fault, FaultRule, SigningIdentity, SimBankConfig, SimOptions,
    SimPaymentConfig, SimServer, SimSigning,
};
use domain::{
    AccountNumber, BankReference, BusinessDate, CnapsCode, CreditorType, Currency, Money,
    SystemClock, Urgency,
};

const CALL_LIMIT: Duration = Duration::from_secs(10);
const PASSWORD: &str = "s3cret-密码";

/// A signing bank that knows `client` (our certificate) and, when given,
/// checks the password.
struct Bank {
    server: SimServer,
    client: SigningIdentity,
}

async fn start(password: Option<&str>) -> Bank {
    let client = SigningIdentity::generate_now("DEMO01 client").unwrap();
    let server = SimServer::start_with_cn_xml_options(
        SimBankConfig::cn_xml_demo("cmb", 11),
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        Arc::new(SystemClock),
        SimOptions {
            payments: SimPaymentConfig {
                settle_delay_ms: 0,
                ..SimPaymentConfig::default()
            },
            random_faults: None,
        },
        CnXmlSimOptions {
            signing: Some(SimSigning {
                client_certificates: vec![client.certificate().clone()],
                ..SimSigning::default()
            }),
            password: password.map(|p| crypto::SecretString::new(p.to_owned())),
        },
    )
    .await
    .unwrap();
    Bank { server, client }
}

fn settings(server: &SimServer) -> ConnectionSettings {
    ConnectionSettings {
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
    }
}

/// A connector signing with `key` and trusting `bank_certs`, with the
/// password given.
fn connector(
    server: &SimServer,
    key: &SigningIdentity,
    bank_certs: Vec<crypto::Certificate>,
    password: Option<&str>,
) -> CnXmlConnector {
    let signing = CnXmlSigning::new(key.key().clone(), DEFAULT_SM2_ID, bank_certs).unwrap();
    CnXmlConnector::with_options(
        settings(server),
        CnXmlOptions {
            password: password.map(|p| crypto::SecretString::new(p.to_owned())),
            signing: Some(signing),
            ..CnXmlOptions::default()
        },
    )
    .unwrap()
}

fn trusting_the_bank(bank: &Bank, password: Option<&str>) -> CnXmlConnector {
    let bank_cert = bank.server.signing_certificate().unwrap().clone();
    connector(&bank.server, &bank.client, vec![bank_cert], password)
}

async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_LIMIT, call)
        .await
        .expect("call did not finish within the test's limit")
}

fn debtor(server: &SimServer) -> AccountNumber {
    AccountNumber::parse(&server.ledger().accounts()[0].number).unwrap()
}

fn instruction(server: &SimServer, reference: &str, minor: i64) -> PaymentInstruction {
    PaymentInstruction {
        reference: BankReference::parse(reference).unwrap(),
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

fn expect_rejected(result: Result<impl std::fmt::Debug, BankError>, code: &str) {
    match result {
        Err(BankError::Rejected { code: got, .. }) => assert_eq!(got, code),
        other => panic!("expected a rejection {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_signed_round_trip_with_a_password_works_for_reads_and_payments() {
    let bank = start(Some(PASSWORD)).await;
    let connector = trusting_the_bank(&bank, Some(PASSWORD));
    let accounts = bounded(connector.list_accounts()).await.unwrap();
    assert!(!accounts.is_empty());
    let balances = bounded(connector.balances(&[BalanceQuery {
        number: accounts[0].number.clone(),
        currency: accounts[0].currency,
    }]))
    .await
    .unwrap();
    assert_eq!(balances.len(), 1);

    let receipt = bounded(connector.submit_payment(&instruction(&bank.server, "SIG-OK-1", 100)))
        .await
        .unwrap();
    assert_eq!(receipt.status, BankPaymentStatus::Settled);
    let answers = bounded(connector.payment_status(
        &debtor(&bank.server),
        &[BankReference::parse("SIG-OK-1").unwrap()],
    ))
    .await
    .unwrap();
    assert!(
        matches!(
            &answers[0],
            StatusAnswer::Found {
                status: BankPaymentStatus::Settled,
                ..
            }
        ),
        "{answers:?}"
    );
    // The connector's Debug shows neither key nor password.
    let debug = format!("{connector:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
}

#[tokio::test]
async fn the_bank_refuses_unsigned_wrongly_signed_and_wrong_password_requests() {
    let bank = start(Some(PASSWORD)).await;
    let bank_cert = bank.server.signing_certificate().unwrap().clone();

    // Signed with a key whose certificate the bank does not hold.
    let stranger = SigningIdentity::generate_now("stranger").unwrap();
    let wrong_key = connector(&bank.server, &stranger, vec![bank_cert], Some(PASSWORD));
    expect_rejected(
        bounded(wrong_key.list_accounts()).await,
        "SIGNATURE_INVALID",
    );
    let payment = instruction(&bank.server, "SIG-REFUSED-1", 100);
    // A refused submission was not taken: retried once the key is right.
    match bounded(wrong_key.submit_payment(&payment)).await {
        Err(error @ BankError::NotProcessed { .. }) => {
            assert!(error.to_string().contains("signature"), "{error}");
        }
        other => panic!("expected not processed, got {other:?}"),
    }

    // Not signed at all (the answer is not checked either).
    let mut plain = settings(&bank.server);
    plain.connection_id = "unsigned".into();
    let unsigned = CnXmlConnector::with_options(
        plain,
        CnXmlOptions {
            password: Some(crypto::SecretString::new(PASSWORD.to_owned())),
            ..CnXmlOptions::default()
        },
    )
    .unwrap();
    expect_rejected(bounded(unsigned.list_accounts()).await, "SIGNATURE_INVALID");

    // Signed rightly, wrong or no password.
    let wrong_password = trusting_the_bank(&bank, Some("not-it"));
    expect_rejected(
        bounded(wrong_password.list_accounts()).await,
        "LOGIN_FAILED",
    );
    let no_password = trusting_the_bank(&bank, None);
    expect_rejected(bounded(no_password.list_accounts()).await, "LOGIN_FAILED");

    assert!(
        bank.server.executions().is_empty(),
        "nothing refused was executed"
    );
}

#[tokio::test]
async fn an_answer_under_another_certificate_fails_naming_the_bank() {
    let bank = start(None).await;
    let other = SigningIdentity::generate_now("not the bank").unwrap();
    let connector = connector(
        &bank.server,
        &bank.client,
        vec![other.certificate().clone()],
        None,
    );
    match bounded(connector.list_accounts()).await {
        Err(
            error @ BankError::OutcomeUnknown {
                cause: UnknownCause::Signature,
                ..
            },
        ) => {
            let text = error.to_string();
            assert!(text.contains("simbank"), "{text}");
            assert!(text.contains("does not verify"), "{text}");
            assert!(!text.contains("PRIVATE"), "{text}");
        }
        other => panic!("expected a signature failure, got {other:?}"),
    }
}

#[tokio::test]
async fn only_an_expired_bank_certificate_fails_naming_the_bank_before_sending() {
    let bank = start(None).await;
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let expired = SigningIdentity::generate("bank 2024", now - 400 * day, now - 35 * day).unwrap();
    let connector = connector(
        &bank.server,
        &bank.client,
        vec![expired.certificate().clone()],
        None,
    );
    let served = bank.server.requests_served();
    let payment = instruction(&bank.server, "SIG-EXPIRED-1", 100);
    for result in [
        bounded(connector.list_accounts()).await.map(|_| ()),
        bounded(connector.submit_payment(&payment))
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(error @ BankError::NotProcessed { .. }) => {
                let text = error.to_string();
                assert!(text.contains("simbank"), "{text}");
                assert!(text.contains("no bank certificate is valid now"), "{text}");
                assert!(text.contains("CN=bank 2024"), "{text}");
            }
            other => panic!("expected not processed, got {other:?}"),
        }
    }
    assert_eq!(bank.server.requests_served(), served, "nothing was sent");
}

#[tokio::test]
async fn a_rollover_certificate_set_verifies_with_the_one_valid_now() {
    let bank = start(None).await;
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let expired = SigningIdentity::generate("bank 2024", now - 400 * day, now - 35 * day).unwrap();
    let current = bank.server.signing_certificate().unwrap().clone();
    let connector = connector(
        &bank.server,
        &bank.client,
        vec![expired.certificate().clone(), current],
        None,
    );
    assert!(bounded(connector.list_accounts()).await.is_ok());
}

#[tokio::test]
async fn a_wrongly_signed_answer_to_a_payment_is_unknown_then_found_and_executed_once() {
    let bank = start(None).await;
    let connector = trusting_the_bank(&bank, None);
    bank.server
        .faults()
        .inject(FaultRule::times(Fault::WrongSignature, 1).for_function("SubmitPayment"));
    let payment = instruction(&bank.server, "SIG-WRONG-1", 4_200);
    match bounded(connector.submit_payment(&payment)).await {
        Err(BankError::OutcomeUnknown {
            cause: UnknownCause::Signature,
            bank,
            ..
        }) => assert_eq!(bank, "simbank"),
        other => panic!("expected an unknown outcome (signature), got {other:?}"),
    }
    // The bank did execute it: the query by reference says so.
    let answers = bounded(connector.payment_status(
        &debtor(&bank.server),
        std::slice::from_ref(&payment.reference),
    ))
    .await
    .unwrap();
    assert!(
        matches!(
            &answers[0],
            StatusAnswer::Found {
                status: BankPaymentStatus::Settled,
                ..
            }
        ),
        "{answers:?}"
    );
    // A resend of the same reference is never executed again.
    let again = bounded(connector.submit_payment(&payment)).await;
    assert!(
        matches!(again, Err(BankError::OutcomeUnknown { .. })),
        "{again:?}"
    );
    let executions = bank.server.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].reference, "SIG-WRONG-1");
    assert_eq!(executions[0].count, 1);
}

#[tokio::test]
async fn a_wrongly_signed_answer_to_a_read_fails_the_read() {
    let bank = start(None).await;
    let connector = trusting_the_bank(&bank, None);
    bank.server
        .faults()
        .inject(FaultRule::times(Fault::WrongSignature, 1).for_function("ListAccounts"));
    assert!(matches!(
        bounded(connector.list_accounts()).await,
        Err(BankError::OutcomeUnknown {
            cause: UnknownCause::Signature,
            ..
        })
    ));
    // The next, rightly signed, answer is believed again.
    assert!(bounded(connector.list_accounts()).await.is_ok());
}

#[test]
fn signing_refuses_keys_and_certificates_that_are_not_sm2() {
    let p256 = crypto::PrivateKey::generate(crypto::KeyAlgorithm::P256, 0).unwrap();
    let bank = SigningIdentity::generate_now("bank").unwrap();
    let err =
        CnXmlSigning::new(p256, DEFAULT_SM2_ID, vec![bank.certificate().clone()]).unwrap_err();
    assert!(err.contains("SM2"), "{err}");
    let sm2 = crypto::PrivateKey::generate(crypto::KeyAlgorithm::Sm2, 0).unwrap();
    let err = CnXmlSigning::new(sm2.clone(), DEFAULT_SM2_ID, vec![]).unwrap_err();
    assert!(err.contains("1 to 16"), "{err}");
    let err = CnXmlSigning::new(sm2, "", vec![bank.certificate().clone()]).unwrap_err();
    assert!(err.contains("SM2 id"), "{err}");
}
