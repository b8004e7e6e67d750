//! Mutual TLS toward a bank, the ways it goes wrong (issue 8): no client
//! certificate configured, an unusable one, an expired client certificate
//! (the bank refuses the handshake), an expired bank certificate and a bank
//! certificate of another CA (we refuse it). Each fails before anything is
//! sent, naming the bank or the connection; the simulated bank executes
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use banks::iso20022::Iso20022Connector;
use banks::{BankConnector, BankError, ClientTlsSettings, ConnectionSettings};
use banksim::{IsoOptions, Pki, SimBankConfig, SimOptions, SimServer};
use crypto::pki::Validity;
use domain::SystemClock;

const BANK: &str = "h2hbank";
const CALL_LIMIT: Duration = Duration::from_secs(20);

fn names() -> Vec<String> {
    vec!["127.0.0.1".to_owned(), "localhost".to_owned()]
}

async fn start(pki: Option<Pki>) -> SimServer {
    SimServer::start_with_iso_options(
        SimBankConfig::iso20022_demo(BANK, 7),
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        Arc::new(SystemClock),
        SimOptions::default(),
        IsoOptions {
            pki,
            ..IsoOptions::default()
        },
    )
    .await
    .unwrap()
}

fn settings(server: &SimServer, tls: Option<ClientTlsSettings>) -> ConnectionSettings {
    ConnectionSettings {
        bank_id: BANK.to_owned(),
        connection_id: format!("{BANK}-main"),
        endpoint: server.url(),
        login: server.config().login.clone(),
        time_zone: chrono_tz::Europe::Berlin,
        connect_timeout: Duration::from_millis(1_000),
        request_timeout: Duration::from_millis(2_000),
        max_response_bytes: 4 * 1024 * 1024,
        max_accounts_per_query: 50,
        max_idle_connections: 4,
        tls,
    }
}

fn tls_of(pki: &Pki) -> ClientTlsSettings {
    ClientTlsSettings {
        ca_cert_pem: pki.ca_cert_pem.clone(),
        client_cert_pem: pki.client_cert_pem.clone(),
        client_key_pem: pki.client_key_pem.clone(),
    }
}

/// A read through the connector ends `NotProcessed` naming the bank; the
/// reason is returned.
async fn refused(connector: &Iso20022Connector) -> String {
    let result = tokio::time::timeout(CALL_LIMIT, connector.list_accounts())
        .await
        .expect("bounded");
    match result {
        Err(BankError::NotProcessed { bank, reason }) => {
            assert_eq!(bank, BANK, "{reason}");
            reason
        }
        other => panic!("expected NotProcessed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_connection_without_a_usable_client_certificate_is_refused_naming_it() {
    let server = start(None).await;
    let pki = server.pki().unwrap();
    let missing = Iso20022Connector::new(settings(&server, None)).unwrap_err();
    assert_eq!(missing.connection, "h2hbank-main");
    assert!(missing.message.contains("no tls settings"), "{missing}");
    let empty = Iso20022Connector::new(settings(
        &server,
        Some(ClientTlsSettings {
            client_cert_pem: String::new(),
            client_key_pem: crypto::SecretString::new(String::new()),
            ..tls_of(pki)
        }),
    ))
    .unwrap_err();
    assert_eq!(empty.connection, "h2hbank-main");
    // The key is never quoted back.
    assert!(!empty.to_string().contains("PRIVATE KEY"), "{empty}");
    assert!(server.executions().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused_by_the_bank() {
    let pki = Pki::generate_with_validity(
        &names(),
        "PARTNER01",
        Validity::standard(),
        Validity::expired(2),
    )
    .unwrap();
    let server = start(Some(pki.clone())).await;
    let connector = Iso20022Connector::new(settings(&server, Some(tls_of(&pki)))).unwrap();
    let reason = refused(&connector).await;
    assert!(reason.contains("TLS handshake"), "{reason}");
    assert!(server.executions().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_bank_certificate_is_refused_by_us() {
    let pki = Pki::generate_with_validity(
        &names(),
        "PARTNER01",
        Validity::expired(2),
        Validity::standard(),
    )
    .unwrap();
    let server = start(Some(pki.clone())).await;
    let connector = Iso20022Connector::new(settings(&server, Some(tls_of(&pki)))).unwrap();
    let reason = refused(&connector).await;
    assert!(reason.contains("TLS handshake"), "{reason}");
    assert!(
        reason.to_ascii_lowercase().contains("expired"),
        "the reason says why: {reason}"
    );
    assert!(server.executions().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_bank_certificate_of_another_ca_is_refused_by_us() {
    let server = start(None).await;
    let other = Pki::generate(&names(), "PARTNER01").unwrap();
    let connector = Iso20022Connector::new(settings(
        &server,
        Some(ClientTlsSettings {
            ca_cert_pem: other.ca_cert_pem.clone(),
            ..tls_of(server.pki().unwrap())
        }),
    ))
    .unwrap();
    let reason = refused(&connector).await;
    assert!(reason.contains("TLS handshake"), "{reason}");
    assert!(server.executions().is_empty());
    server.shutdown().await;
}
