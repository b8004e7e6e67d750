//! The simulated iso20022 gateway over real HTTPS with mutual TLS on
//! loopback: accounts, credit transfers (single, batch, payroll) and their
//! status reports, statements, intraday reports and notifications with
//! paging, the handshake refusing strangers, and each fault kind on an ISO
//! order type. Every call is bounded by a client timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use banksim::{
    Fault, FaultRule, IsoOptions, NewSimEntry, Pki, SimBankConfig, SimOptions, SimPaymentConfig,
    SimServer, When,
};
use domain::{Bic, BusinessDate, Currency, Direction, Iban, Money, SystemClock};
use formats::iso20022::camt053::{self, BalanceType, CreditDebit, EntryStatus};
use formats::iso20022::pain001::{
    self, CreditTransfer, CustomerCreditTransferInitiation, PaymentInformation,
};
use formats::iso20022::pain002::{self, Reason, Status};
use formats::iso20022::{camt052, camt054, AccountIdentification, Party};

const CALL_LIMIT: Duration = Duration::from_secs(10);
const PARTNER: &str = "PARTNER01";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A client that trusts only the bank's CA and presents `identity`.
fn client_with(pki: &Pki, identity: Option<&Pki>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(pki.ca_cert_pem.as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(CALL_LIMIT)
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .use_rustls_tls();
    if let Some(identity) = identity {
        let pem = identity.client_identity_pem();
        builder =
            builder.identity(reqwest::Identity::from_pem(pem.expose_secret().as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// The client of the bank's own partner.
fn client(server: &SimServer) -> reqwest::Client {
    let pki = server.pki().unwrap();
    client_with(pki, Some(pki))
}

async fn start_with(payments: SimPaymentConfig, page_size: usize) -> SimServer {
    SimServer::start_with_iso_options(
        SimBankConfig::iso20022_demo("euro", 5),
        loopback(),
        Arc::new(SystemClock),
        SimOptions {
            payments,
            random_faults: None,
        },
        IsoOptions {
            pki: None,
            page_size,
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

async fn start() -> SimServer {
    start_with(instant(), 200).await
}

/// GET an order type; `None` when the exchange broke.
async fn get(server: &SimServer, order_and_query: &str) -> Option<(u16, Vec<u8>)> {
    let response = client(server)
        .get(format!("{}h2h/{order_and_query}", server.url()))
        .header("X-H2H-Partner", PARTNER)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.bytes().await.ok()?;
    Some((status, body.to_vec()))
}

async fn post_file(server: &SimServer, body: Vec<u8>) -> Option<(u16, Vec<u8>)> {
    let response = client(server)
        .post(format!("{}h2h/CCT", server.url()))
        .header("X-H2H-Partner", PARTNER)
        .header("Content-Type", "application/xml")
        .body(body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.bytes().await.ok()?;
    Some((status, body.to_vec()))
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

fn eur_accounts(server: &SimServer) -> Vec<banksim::SimAccount> {
    server
        .ledger()
        .accounts()
        .into_iter()
        .filter(|a| a.currency == Currency::EUR)
        .collect()
}

/// A EUR account with money in it.
fn rich_debtor(server: &SimServer) -> banksim::SimAccount {
    eur_accounts(server)
        .into_iter()
        .find(|a| a.available_minor > 10_000_000)
        .unwrap()
}

fn transfer(reference: &str, amount_minor: i64, creditor: &str) -> CreditTransfer {
    CreditTransfer {
        instruction_id: Some(reference.to_string()),
        end_to_end_id: reference.to_string(),
        amount: Money::from_minor(amount_minor, Currency::EUR),
        creditor_agent: Some(Bic::parse("COBADEFFXXX").unwrap()),
        creditor: Party {
            name: Some(creditor.to_string()),
            address_lines: Vec::new(),
        },
        creditor_account: AccountIdentification::Iban(
            Iban::parse("DE89370400440532013000").unwrap(),
        ),
        remittance: vec![format!("Invoice {reference}")],
    }
}

fn file(
    message_id: &str,
    debtor: &str,
    payments: Vec<(String, Vec<CreditTransfer>)>,
) -> CustomerCreditTransferInitiation {
    CustomerCreditTransferInitiation {
        message_id: message_id.to_string(),
        created_at: "2026-11-28T10:15:00+01:00".to_string(),
        initiating_party: Party {
            name: Some("Test GmbH".to_string()),
            address_lines: Vec::new(),
        },
        payments: payments
            .into_iter()
            .map(|(id, transactions)| PaymentInformation {
                id,
                batch_booking: None,
                category_purpose: None,
                requested_execution_date: BusinessDate::parse_iso("2026-11-28").unwrap(),
                debtor: Party {
                    name: Some("Test GmbH".to_string()),
                    address_lines: Vec::new(),
                },
                debtor_account: AccountIdentification::Iban(Iban::parse(debtor).unwrap()),
                debtor_agent: Bic::parse("EUROXXXXXXX")
                    .unwrap_or_else(|_| Bic::parse("EURODEFFXXX").unwrap()),
                transactions,
            })
            .collect(),
    }
}

/// A single payment file: MsgId = PmtInfId = InstrId = EndToEndId.
fn single(reference: &str, debtor: &str, amount_minor: i64, creditor: &str) -> Vec<u8> {
    let message = file(
        reference,
        debtor,
        vec![(
            reference.to_string(),
            vec![transfer(reference, amount_minor, creditor)],
        )],
    );
    pain001::render(&message).unwrap()
}

/// Marks every `PmtInf` of a file as a payroll run: booked as one debit,
/// for salaries.
fn as_payroll(mut message: CustomerCreditTransferInitiation) -> CustomerCreditTransferInitiation {
    for payment in &mut message.payments {
        payment.batch_booking = Some(true);
        payment.category_purpose = Some("SALA".to_string());
    }
    message
}

async fn status_report(
    server: &SimServer,
    message_id: &str,
) -> pain002::CustomerPaymentStatusReport {
    let (status, body) = get(server, &format!("PSR?message_id={message_id}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (version, report) = pain002::parse(&body).unwrap();
    assert_eq!(version, pain002::Version::V12);
    report
}

fn tx_statuses(
    report: &pain002::CustomerPaymentStatusReport,
) -> Vec<(String, Status, Option<Reason>)> {
    report
        .original_payments
        .iter()
        .flat_map(|p| p.transactions.iter())
        .map(|t| {
            (
                t.original_end_to_end_id.clone().unwrap_or_default(),
                t.status.clone().unwrap(),
                t.reasons.first().and_then(|r| r.reason.clone()),
            )
        })
        .collect()
}

#[tokio::test]
async fn accounts_are_listed_over_mutual_tls() {
    let server = start().await;
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let (status, body) = get(&server, "HTD").await.unwrap();
    assert_eq!(status, 200);
    let doc = json(&body);
    let accounts = doc["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 5);
    let eur = accounts.iter().filter(|a| a["currency"] == "EUR").count();
    assert_eq!(eur, 3);
    for account in accounts {
        let iban = account["iban"].as_str().unwrap();
        Iban::parse(iban).unwrap();
        assert!(iban.starts_with("DE"));
        assert!(Bic::parse(account["bic"].as_str().unwrap()).is_ok());
        assert_eq!(account["active"], true);
        assert!(!account["name"].as_str().unwrap().is_empty());
    }
    assert_eq!(server.requests_served(), 1);

    // Another partner is refused with the error document.
    let response = client(&server)
        .get(format!("{}h2h/HTD", server.url()))
        .header("X-H2H-Partner", "SOMEONE")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let doc = json(&response.bytes().await.unwrap());
    assert_eq!(doc["processed"], false);
    assert_eq!(doc["error"], "UNKNOWN_PARTNER");
    server.shutdown().await;
}

#[tokio::test]
async fn handshake_fails_without_a_certificate_or_with_another_cas() {
    let server = start().await;
    let pki = server.pki().unwrap();
    let anonymous = client_with(pki, None);
    let result = anonymous
        .get(format!("{}h2h/HTD", server.url()))
        .header("X-H2H-Partner", PARTNER)
        .send()
        .await;
    assert!(
        result.is_err(),
        "a client without certificate got an answer"
    );

    let stranger = Pki::generate(&["localhost".to_string()], PARTNER).unwrap();
    let foreign = client_with(pki, Some(&stranger));
    let result = foreign
        .get(format!("{}h2h/HTD", server.url()))
        .header("X-H2H-Partner", PARTNER)
        .send()
        .await;
    assert!(result.is_err(), "a client of another CA got an answer");

    // A client that trusts another CA refuses the bank.
    let distrustful = client_with(&stranger, Some(pki));
    assert!(distrustful
        .get(format!("{}h2h/HTD", server.url()))
        .send()
        .await
        .is_err());
    assert_eq!(server.requests_served(), 0);

    // The control API is behind the same TLS.
    let ledger = client(&server)
        .get(format!("{}_sim/ledger", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ledger.status().as_u16(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_single_payment_settles_and_is_reported_acsc() {
    let server = start_with(
        SimPaymentConfig {
            settle_delay_ms: 300,
            ..SimPaymentConfig::default()
        },
        200,
    )
    .await;
    let debtor = rich_debtor(&server);
    let (status, body) = post_file(
        &server,
        single("PAY-0001", &debtor.number, 12_345, "Lieferant AG"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let doc = json(&body);
    assert_eq!(doc["status"], "RCVD");
    assert_eq!(doc["message_id"], "PAY-0001");
    assert!(doc["order_id"].as_str().is_some());

    let report = status_report(&server, "PAY-0001").await;
    assert_eq!(report.original_group.original_message_id, "PAY-0001");
    assert_eq!(
        report.original_group.original_message_name_id,
        "pain.001.001.09"
    );
    assert_eq!(report.original_group.original_count, Some(1));
    let statuses = tx_statuses(&report);
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].1, Status::AcceptedSettlementInProcess);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = status_report(&server, "PAY-0001").await;
    assert_eq!(
        report.original_group.status,
        Some(Status::AcceptedSettlementCompleted)
    );
    assert_eq!(
        tx_statuses(&report)[0].1,
        Status::AcceptedSettlementCompleted
    );

    let after = server.ledger().account(&debtor.number).unwrap();
    assert_eq!(after.booked_minor, debtor.booked_minor - 12_345);
    let executions = server.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].count, 1);
    assert_eq!(executions[0].currency, "EUR");
    assert_eq!(executions[0].amount, "123.45");

    // Unknown message id: 404 with the error document.
    let (status, body) = get(&server, "PSR?message_id=NOPE").await.unwrap();
    assert_eq!(status, 404);
    assert_eq!(json(&body)["error"], "NOT_FOUND");
    assert_eq!(json(&body)["processed"], false);
    server.shutdown().await;
}

#[tokio::test]
async fn statements_page_and_balance_day_by_day() {
    let server = start_with(instant(), 7).await;
    let account = rich_debtor(&server);
    let today = server.ledger().today();
    let from = today.add_days(-12).unwrap();
    let to = today; // today is left out: C53 covers days before today.
    let mut page = 1;
    let mut days: Vec<(BusinessDate, i64, i64, i64)> = Vec::new();
    let mut references = std::collections::HashSet::new();
    let mut entries_seen = 0;
    loop {
        let (status, body) = get(
            &server,
            &format!(
                "C53?account={}&from={from}&to={to}&page={page}",
                account.number
            ),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let message = camt053::parse(&body).unwrap();
        let pagination = message.group_header.pagination.unwrap();
        assert_eq!(pagination.page_number, page as u32);
        let page_entries: usize = message.statements.iter().map(|s| s.entries.len()).sum();
        assert!(page_entries <= 7);
        for statement in &message.statements {
            let date = statement.header.balances[0].date;
            let signed = |b: &camt053::Balance| match b.indicator {
                CreditDebit::Credit => b.amount.minor(),
                CreditDebit::Debit => -b.amount.minor(),
            };
            let opening = statement
                .header
                .balances
                .iter()
                .find(|b| b.kind == BalanceType::OpeningBooked)
                .map(signed)
                .unwrap();
            let closing = statement
                .header
                .balances
                .iter()
                .find(|b| b.kind == BalanceType::ClosingBooked)
                .map(signed)
                .unwrap();
            let net: i64 = statement
                .entries
                .iter()
                .map(|e| {
                    assert_eq!(e.status, EntryStatus::Booked);
                    assert_eq!(e.booking_date, Some(date));
                    if let Some(reference) = &e.account_servicer_reference {
                        assert!(references.insert(reference.clone()), "{reference} twice");
                    }
                    match e.indicator {
                        CreditDebit::Credit => e.amount.minor(),
                        CreditDebit::Debit => -e.amount.minor(),
                    }
                })
                .sum();
            entries_seen += statement.entries.len();
            match days.last_mut() {
                // A day split across pages repeats its header.
                Some(last) if last.0 == date => {
                    assert_eq!((last.1, last.2), (opening, closing));
                    last.3 += net;
                }
                _ => days.push((date, opening, closing, net)),
            }
        }
        if pagination.last_page {
            break;
        }
        page += 1;
        assert!(page < 100);
    }
    assert!(page > 1, "seven entries a page must need several pages");
    assert_eq!(days.len(), 12, "one statement per day before today");
    for (date, opening, closing, net) in &days {
        assert_eq!(opening + net, *closing, "{date}");
    }
    for pair in days.windows(2) {
        assert_eq!(pair[0].2, pair[1].1, "days chain");
        assert_eq!(pair[0].0.add_days(1).unwrap(), pair[1].0);
    }
    assert!(entries_seen > 0);
    assert!(
        references.len() < entries_seen || entries_seen < 10,
        "some entries carry no AcctSvcrRef"
    );

    // A page past the end, and bad parameters, name the parameter.
    let (status, body) = get(
        &server,
        &format!(
            "C53?account={}&from={from}&to={to}&page={}",
            account.number,
            page + 1
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(json(&body)["parameter"], "page");
    let (status, body) = get(
        &server,
        &format!("C53?account={}&from=2026-13-01&to={to}", account.number),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(json(&body)["parameter"], "from");
    let (status, body) = get(
        &server,
        &format!(
            "C53?account={}&from={from}&to={to}&version=07",
            account.number
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(json(&body)["parameter"], "version");
    let (status, body) = get(&server, &format!("C53?from={from}&to={to}"))
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(json(&body)["parameter"], "account");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_the_tls_server() {
    let server = start().await;
    let url = server.url();
    let pki = server.pki().unwrap().clone();
    server.shutdown().await;
    let result = client_with(&pki, Some(&pki))
        .get(format!("{url}h2h/HTD"))
        .header("X-H2H-Partner", PARTNER)
        .send()
        .await;
    assert!(result.is_err());
}

#[tokio::test]
async fn a_given_pki_is_used_and_entries_are_added_in_eur() {
    let pki = Pki::generate(&["127.0.0.1".to_string()], PARTNER).unwrap();
    let server = SimServer::start_with_iso_options(
        SimBankConfig::iso20022_demo("euro", 6),
        loopback(),
        Arc::new(SystemClock),
        SimOptions::default(),
        IsoOptions {
            pki: Some(pki.clone()),
            page_size: 50,
        },
    )
    .await
    .unwrap();
    assert_eq!(server.pki().unwrap().ca_cert_pem, pki.ca_cert_pem);
    let account = eur_accounts(&server)[0].clone();
    let mut entry = NewSimEntry::booked(Direction::Credit, 500);
    entry.counterparty_name = Some("Müller & Søn Straße GmbH".to_string());
    server.ledger().add_entry(&account.number, entry).unwrap();
    let (status, _) = get(&server, "HTD").await.unwrap();
    assert_eq!(status, 200);
    let _ = (
        camt052::NAMESPACE,
        camt054::NAMESPACE,
        When::After,
        FaultRule::always(Fault::Garbled),
    );
    server.shutdown().await;
}

fn other_creditor(reference: &str, amount_minor: i64, account: &str, name: &str) -> CreditTransfer {
    let mut tx = transfer(reference, amount_minor, name);
    tx.creditor_account = AccountIdentification::Other(account.to_string());
    tx
}

#[tokio::test]
async fn a_batch_and_a_payroll_are_rejected_item_by_item() {
    let server = start_with(
        SimPaymentConfig {
            settle_delay_ms: 0,
            mismatched_names: vec!["Falscher Name GmbH".to_string()],
            ..SimPaymentConfig::default()
        },
        200,
    )
    .await;
    let debtor = rich_debtor(&server);
    let supplier = file(
        "BATCH-0001",
        &debtor.number,
        vec![(
            "BATCH-0001-C1".to_string(),
            vec![
                transfer("B1-ITEM-1", 10_000, "Lieferant Eins GmbH"),
                other_creditor("B1-ITEM-2", 20_000, "000123456", "Niemand GmbH"),
                transfer("B1-ITEM-3", 30_000, "Falscher Name GmbH"),
                transfer("B1-ITEM-4", 40_000, "Lieferant Vier AG"),
            ],
        )],
    );
    let (status, body) = post_file(&server, pain001::render(&supplier).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let report = status_report(&server, "BATCH-0001").await;
    assert_eq!(
        report.original_group.status,
        Some(Status::PartiallyAccepted)
    );
    assert_eq!(
        report.original_payments[0].original_payment_information_id,
        "BATCH-0001-C1"
    );
    assert_eq!(
        report.original_payments[0].status,
        Some(Status::PartiallyAccepted)
    );
    let statuses = tx_statuses(&report);
    let code = |c: &str| Some(Reason::Code(c.to_string()));
    assert_eq!(
        statuses,
        vec![
            (
                "B1-ITEM-1".into(),
                Status::AcceptedSettlementCompleted,
                None
            ),
            ("B1-ITEM-2".into(), Status::Rejected, code("AC01")),
            ("B1-ITEM-3".into(), Status::Rejected, code("BE01")),
            (
                "B1-ITEM-4".into(),
                Status::AcceptedSettlementCompleted,
                None
            ),
        ]
    );
    let after = server.ledger().account(&debtor.number).unwrap();
    assert_eq!(after.booked_minor, debtor.booked_minor - 50_000);
    let batches = server.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].kind, "supplier");
    assert_eq!(batches[0].reference, "BATCH-0001-C1");

    // A payroll run: one debit for the items that pass; one lacks funds.
    let before = server.ledger().account(&debtor.number).unwrap();
    let payroll = file(
        "PAYROLL-0001",
        &debtor.number,
        vec![(
            "PAYROLL-0001-C1".to_string(),
            vec![
                transfer("P1-ITEM-1", 250_000, "Anna Schmidt"),
                transfer("P1-ITEM-2", before.available_minor + 1, "Bernd Meier"),
                transfer("P1-ITEM-3", 310_000, "Clara Weber"),
            ],
        )],
    );
    let (status, _) = post_file(&server, pain001::render(&as_payroll(payroll)).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200);
    let report = status_report(&server, "PAYROLL-0001").await;
    assert_eq!(
        report.original_group.status,
        Some(Status::PartiallyAccepted)
    );
    let statuses = tx_statuses(&report);
    assert_eq!(statuses[1].1, Status::Rejected);
    assert_eq!(statuses[1].2, code("AM04"));
    assert_eq!(statuses[0].1, Status::AcceptedSettlementCompleted);
    assert_eq!(statuses[2].1, Status::AcceptedSettlementCompleted);
    let batches = server.batches();
    assert_eq!(batches[1].kind, "payroll");
    assert_eq!(batches[1].payroll_debit, "5600.00");
    let after = server.ledger().account(&debtor.number).unwrap();
    assert_eq!(after.booked_minor, before.booked_minor - 560_000);
    let entries = server
        .ledger()
        .entries_between(&debtor.number, Some(server.ledger().today()), None)
        .unwrap();
    let debits: Vec<_> = entries
        .iter()
        .filter(|e| e.direction == Direction::Debit && e.amount_minor == 560_000)
        .collect();
    assert_eq!(debits.len(), 1, "one debit for the payroll run");
    assert_eq!(debits[0].remittance, "Payroll PAYROLL-0001");
    for execution in server.executions() {
        assert_eq!(execution.count, 1, "{}", execution.reference);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_message_id_is_409_and_executes_once() {
    let server = start().await;
    let debtor = rich_debtor(&server);
    let body = single("DUP-0001", &debtor.number, 9_900, "Lieferant AG");
    let (status, first) = post_file(&server, body.clone()).await.unwrap();
    assert_eq!(status, 200);
    let order_id = json(&first)["order_id"].clone();
    let (status, second) = post_file(&server, body).await.unwrap();
    assert_eq!(status, 409);
    let doc = json(&second);
    assert_eq!(doc["error"], "DUPLICATE_MESSAGE");
    assert_eq!(doc["processed"], false);
    assert_eq!(doc["order_id"], order_id);
    let executions = server.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].count, 1);
    assert_eq!(executions[0].submissions, 1);

    // The same reference under a new MsgId is not paid again: AM05.
    let message = file(
        "DUP-0002",
        &debtor.number,
        vec![(
            "DUP-0002".to_string(),
            vec![transfer("DUP-0001", 9_900, "Lieferant AG")],
        )],
    );
    let (status, _) = post_file(&server, pain001::render(&message).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200);
    let statuses = tx_statuses(&status_report(&server, "DUP-0002").await);
    assert_eq!(statuses[0].1, Status::Rejected);
    assert_eq!(statuses[0].2, Some(Reason::Code("AM05".to_string())));
    assert_eq!(server.executions().len(), 1);
    assert_eq!(server.executions()[0].count, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_file_is_rejected_with_its_reason_and_nothing_is_taken() {
    let server = start().await;
    let debtor = rich_debtor(&server);
    let good =
        String::from_utf8(single("REJ-0001", &debtor.number, 1_000, "Lieferant AG")).unwrap();
    let cases = [
        (
            good.replace("<CtrlSum>10.00</CtrlSum>", "<CtrlSum>10.01</CtrlSum>"),
            "AM10",
        ),
        (
            good.replacen("<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>", 1),
            "AM18",
        ),
        (good.replace("</CstmrCdtTrfInitn>", ""), "FF01"),
        ("not xml at all".to_string(), "FF01"),
    ];
    for (body, reason) in cases {
        assert_ne!(body, good, "the fixture did not change for {reason}");
        let (status, answer) = post_file(&server, body.into_bytes()).await.unwrap();
        assert_eq!(
            status,
            422,
            "{reason}: {}",
            String::from_utf8_lossy(&answer)
        );
        let doc = json(&answer);
        assert_eq!(doc["error"], "FILE_REJECTED");
        assert_eq!(doc["reason_code"], reason);
        assert_eq!(doc["processed"], false);
    }
    // Two transactions with one EndToEndId: DU01.
    let twice = file(
        "REJ-0002",
        &debtor.number,
        vec![(
            "REJ-0002".to_string(),
            vec![
                transfer("SAME", 100, "A GmbH"),
                transfer("SAME", 200, "B GmbH"),
            ],
        )],
    );
    let (status, answer) = post_file(&server, pain001::render(&twice).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 422);
    assert_eq!(json(&answer)["reason_code"], "DU01");
    assert!(server.executions().is_empty());
    // The MsgId stays unused: the good file is taken afterwards.
    let (status, _) = post_file(&server, good.into_bytes()).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(server.executions().len(), 1);
    server.shutdown().await;
}

/// Every entry of every page of a C53 (or with `order` C54) request.
async fn all_pages(server: &SimServer, query: &str) -> Vec<camt053::Statement> {
    let mut statements = Vec::new();
    for page in 1..100 {
        let (status, body) = get(server, &format!("{query}&page={page}")).await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let message = if query.starts_with("C54") {
            let message = camt054::parse(&body).unwrap();
            camt053::BankToCustomerStatement {
                group_header: message.group_header,
                statements: message.notifications,
            }
        } else {
            camt053::parse(&body).unwrap()
        };
        statements.extend(message.statements);
        if message.group_header.pagination.unwrap().last_page {
            return statements;
        }
    }
    panic!("more than 100 pages");
}

/// Makes the account's late entries visible: the first report of an
/// account counts as a whole sync, the next first page shows them.
async fn reveal_late_entries(server: &SimServer, account: &str) {
    let today = server.ledger().today();
    for _ in 0..2 {
        let (status, _) = get(
            server,
            &format!("C54?account={account}&from={today}&to={today}"),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }
}

fn signed(balance: &camt053::Balance) -> i64 {
    match balance.indicator {
        CreditDebit::Credit => balance.amount.minor(),
        CreditDebit::Debit => -balance.amount.minor(),
    }
}

fn of_kind(statement: &camt053::Statement, kind: BalanceType) -> i64 {
    statement
        .header
        .balances
        .iter()
        .find(|b| b.kind == kind)
        .map(signed)
        .unwrap()
}

#[tokio::test]
async fn older_versions_are_served_when_asked() {
    let server = start().await;
    let debtor = rich_debtor(&server);
    let (status, _) = post_file(
        &server,
        single("V03-0001", &debtor.number, 5_000, "Lieferant AG"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let (status, body) = get(&server, "PSR?message_id=V03-0001&version=03")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (version, report) = pain002::parse(&body).unwrap();
    assert_eq!(version, pain002::Version::V03);
    assert_eq!(
        tx_statuses(&report)[0].1,
        Status::AcceptedSettlementCompleted
    );
    let (status, body) = get(&server, "PSR?message_id=V03-0001&version=09")
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(json(&body)["parameter"], "version");

    // A pain.001.001.03 upload is taken and named so in the report.
    let message = file(
        "V03-0002",
        &debtor.number,
        vec![(
            "V03-0002".to_string(),
            vec![transfer("V03-0002", 700, "Lieferant AG")],
        )],
    );
    let xml = pain001::render_version(&message, pain001::Version::V03).unwrap();
    let (status, _) = post_file(&server, xml).await.unwrap();
    assert_eq!(status, 200);
    let report = status_report(&server, "V03-0002").await;
    assert_eq!(
        report.original_group.original_message_name_id,
        "pain.001.001.03"
    );

    reveal_late_entries(&server, &debtor.number).await;
    let today = server.ledger().today();
    let from = today.add_days(-3).unwrap();
    let query = format!("C53?account={}&from={from}&to={today}", debtor.number);
    let (status, body) = get(&server, &format!("{query}&version=02")).await.unwrap();
    assert_eq!(status, 200);
    let (version, v02) = camt053::parse_any(&body).unwrap();
    assert_eq!(version, camt053::Version::V02);
    let (_, body) = get(&server, &query).await.unwrap();
    let (version, v08) = camt053::parse_any(&body).unwrap();
    assert_eq!(version, camt053::Version::V08);
    assert_eq!(v02.statements.len(), 3);
    assert_eq!(v02.statements, v08.statements);
    server.shutdown().await;
}

#[tokio::test]
async fn a_pending_entry_keeps_its_reference_when_booked() {
    let server = start().await;
    let ledger = server.ledger();
    let accounts = eur_accounts(&server);
    let account = &accounts[0];
    reveal_late_entries(&server, &account.number).await;
    let mut pending = NewSimEntry::booked(Direction::Credit, 42_00).pending();
    pending.counterparty_name = Some("Kunde Süd GmbH".to_string());
    pending.e2e_ref = Some("E2E-PENDING-1".to_string());
    pending.remittance = Some("Rechnung 4711".to_string());
    let added = ledger.add_entry(&account.number, pending).unwrap();

    let report = |body: Vec<u8>| camt052::parse(&body).unwrap();
    let (status, body) = get(&server, &format!("C52?account={}", account.number))
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let first = report(body);
    let rpt = &first.reports[0];
    let kinds: Vec<BalanceType> = rpt.header.balances.iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        vec![
            BalanceType::OpeningBooked,
            BalanceType::InterimBooked,
            BalanceType::InterimAvailable
        ]
    );
    let booked_now = ledger.account(&account.number).unwrap().booked_minor;
    assert_eq!(of_kind(rpt, BalanceType::InterimBooked), booked_now);
    let find = |rpt: &camt053::Statement| {
        rpt.entries
            .iter()
            .find(|e| {
                e.transactions
                    .first()
                    .and_then(|t| t.end_to_end_id.as_deref())
                    == Some("E2E-PENDING-1")
            })
            .cloned()
            .unwrap()
    };
    let as_pending = find(rpt);
    assert_eq!(as_pending.status, EntryStatus::Pending);
    assert_eq!(as_pending.booking_date, None);
    let reference = as_pending.account_servicer_reference.clone().unwrap();

    ledger.book_pending(&account.number, &added.serial).unwrap();
    let (_, body) = get(&server, &format!("C52?account={}", account.number))
        .await
        .unwrap();
    let second = report(body);
    let as_booked = find(&second.reports[0]);
    assert_eq!(as_booked.status, EntryStatus::Booked);
    assert_eq!(as_booked.account_servicer_reference, Some(reference));
    assert_eq!(
        of_kind(&second.reports[0], BalanceType::InterimBooked),
        booked_now + 42_00
    );

    // A balance report of several accounts; an unknown one is left out.
    let (status, body) = get(
        &server,
        &format!(
            "C52?account={}&account={}&account=DE02120300000000202051&entries=none",
            accounts[0].number, accounts[1].number
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let balances = report(body);
    assert_eq!(balances.reports.len(), 2);
    assert!(balances.reports.iter().all(|r| r.entries.is_empty()));
    let (status, body) = get(
        &server,
        &format!("C52?account={}&entries=all", accounts[0].number),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(json(&body)["parameter"], "entries");
    server.shutdown().await;
}

#[tokio::test]
async fn notifications_carry_the_statements_references() {
    let server = start_with(instant(), 5).await;
    let account = rich_debtor(&server);
    let today = server.ledger().today();
    let from = today.add_days(-6).unwrap();
    let to = today.add_days(-1).unwrap();
    let range = format!("account={}&from={from}&to={to}", account.number);
    reveal_late_entries(&server, &account.number).await;
    let statements = all_pages(&server, &format!("C53?{range}")).await;
    let notifications = all_pages(&server, &format!("C54?{range}")).await;
    let key = |s: &[camt053::Statement]| -> Vec<(Option<BusinessDate>, i64, Option<String>)> {
        s.iter()
            .flat_map(|s| s.entries.iter())
            .map(|e| {
                (
                    e.booking_date,
                    e.amount.minor(),
                    e.account_servicer_reference.clone(),
                )
            })
            .collect()
    };
    assert!(!key(&statements).is_empty());
    assert_eq!(key(&statements), key(&notifications));
    assert!(notifications.iter().all(|n| n.header.balances.is_empty()));
    server.shutdown().await;
}

#[tokio::test]
async fn a_returned_payment_is_rjct_rtrn_and_a_young_file_is_not_found() {
    let server = start_with(
        SimPaymentConfig {
            settle_delay_ms: 0,
            return_delay_ms: 0,
            return_share_percent: 100,
            ingest_delay_ms: 300,
            ..SimPaymentConfig::default()
        },
        200,
    )
    .await;
    let debtor = rich_debtor(&server);
    let (status, _) = post_file(
        &server,
        single("RET-0001", &debtor.number, 8_800, "Lieferant AG"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let (status, body) = get(&server, "PSR?message_id=RET-0001").await.unwrap();
    assert_eq!(status, 404, "a file younger than the ingest delay");
    assert_eq!(json(&body)["error"], "NOT_FOUND");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = status_report(&server, "RET-0001").await;
    let tx = &report.original_payments[0].transactions[0];
    assert_eq!(tx.status, Some(Status::Rejected));
    assert_eq!(
        tx.reasons[0].reason,
        Some(Reason::Proprietary("RTRN".to_string()))
    );
    assert!(!tx.reasons[0].additional_info.is_empty());
    let after = server.ledger().account(&debtor.number).unwrap();
    assert_eq!(
        after.booked_minor, debtor.booked_minor,
        "debited, then credited back"
    );
    server.shutdown().await;
}

/// A transfer file that pays 1.00 from the server's rich account.
fn small_file(server: &SimServer, reference: &str) -> Vec<u8> {
    single(reference, &rich_debtor(server).number, 100, "Lieferant AG")
}

fn executed(server: &SimServer, reference: &str) -> u32 {
    server
        .executions()
        .iter()
        .find(|e| e.reference == reference)
        .map_or(0, |e| e.count)
}

#[tokio::test]
async fn faults_on_the_transfer_order_act_before_or_after_execution() {
    let server = start().await;
    let faults = server.faults();
    let cases: Vec<(&str, Fault, bool)> = vec![
        (
            "F-HTTP-BEFORE",
            Fault::HttpError {
                status: 429,
                when: When::Before,
            },
            false,
        ),
        (
            "F-HTTP-AFTER",
            Fault::HttpError {
                status: 500,
                when: When::After,
            },
            true,
        ),
        ("F-STATUS", Fault::HttpStatus { status: 503 }, false),
        ("F-RESET-BEFORE", Fault::Reset { when: When::Before }, false),
        ("F-RESET-AFTER", Fault::Reset { when: When::After }, true),
        ("F-LOST", Fault::ResponseLost { hold_ms: 0 }, true),
        (
            "F-BUSY",
            Fault::ErrorCode {
                code: "SYSTEM_BUSY".to_string(),
                message: "try later".to_string(),
            },
            false,
        ),
        ("F-GARBLED", Fault::Garbled, true),
        ("F-TRUNCATED", Fault::Truncated, true),
        ("F-TORN", Fault::TornBody, true),
    ];
    for (reference, fault, executes) in cases {
        faults.inject(FaultRule::times(fault.clone(), 1).for_function("CCT"));
        let answer = post_file(&server, small_file(&server, reference)).await;
        match &fault {
            Fault::HttpError { status, .. } | Fault::HttpStatus { status } => {
                assert_eq!(answer.unwrap().0, *status, "{reference}");
            }
            Fault::Reset { .. } | Fault::ResponseLost { .. } | Fault::TornBody => {
                assert!(answer.is_none(), "{reference}: {answer:?}");
            }
            Fault::ErrorCode { .. } => {
                let (status, body) = answer.unwrap();
                assert_eq!(status, 503);
                let doc = json(&body);
                assert_eq!(doc["error"], "SYSTEM_BUSY");
                assert_eq!(doc["processed"], false);
            }
            _ => {
                let (status, body) = answer.unwrap();
                assert_eq!(status, 200);
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&body).is_err(),
                    "{reference}: the answer should not read"
                );
            }
        }
        assert_eq!(
            executed(&server, reference),
            u32::from(executes),
            "{reference}"
        );
        // Whatever the answer, the status report tells the truth.
        let found = get(&server, &format!("PSR?message_id={reference}"))
            .await
            .unwrap();
        assert_eq!(found.0 == 200, executes, "{reference}");
    }
    assert!(faults.rules().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn faults_spoil_report_answers() {
    let server = start_with(instant(), 4).await;
    let faults = server.faults();
    let account = rich_debtor(&server);
    let today = server.ledger().today();
    let from = today.add_days(-10).unwrap();
    let query = format!("C53?account={}&from={from}&to={today}", account.number);

    // WrongEncoding: UTF-16 without declaration, unreadable as UTF-8 XML,
    // the same document once decoded.
    let (_, plain) = get(&server, &query).await.unwrap();
    faults.inject(FaultRule::times(Fault::WrongEncoding, 1).for_function("C53"));
    let (status, body) = get(&server, &query).await.unwrap();
    assert_eq!(status, 200);
    assert!(camt053::parse(&body).is_err());
    let units: Vec<u16> = body
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    let decoded = String::from_utf16(&units).unwrap();
    assert!(!decoded.starts_with("<?xml"));
    assert_eq!(
        camt053::parse(decoded.as_bytes()).unwrap(),
        camt053::parse(&plain).unwrap()
    );

    // Oversized: padded with whitespace, still the same document.
    faults.inject(
        FaultRule::times(
            Fault::Oversized {
                bytes: 2 * 1024 * 1024,
            },
            1,
        )
        .for_function("HTD"),
    );
    let (status, body) = get(&server, "HTD").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.len() >= 2 * 1024 * 1024);
    assert_eq!(json(&body)["accounts"].as_array().unwrap().len(), 5);

    // Garbled and truncated reports do not parse; a torn one breaks.
    faults.inject(FaultRule::times(Fault::Garbled, 1).for_function("C53"));
    assert!(camt053::parse(&get(&server, &query).await.unwrap().1).is_err());
    faults.inject(FaultRule::times(Fault::Truncated, 1).for_function("C52"));
    let c52 = format!("C52?account={}", account.number);
    assert!(camt052::parse(&get(&server, &c52).await.unwrap().1).is_err());
    faults.inject(FaultRule::times(Fault::TornBody, 1).for_function("C54"));
    let c54 = format!("C54?account={}&from={from}&to={today}", account.number);
    assert!(get(&server, &c54).await.is_none());

    // Delay: the answer comes, late.
    faults.inject(FaultRule::times(Fault::Delay { ms: 300 }, 1).for_function("HTD"));
    let started = std::time::Instant::now();
    assert_eq!(get(&server, "HTD").await.unwrap().0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // ContinuityBreak: an entry is missing while the balances stay true.
    faults.inject(
        FaultRule::always(Fault::ContinuityBreak {
            acc_no: account.number.clone(),
        })
        .for_function("C53"),
    );
    let broken = all_pages(&server, &query).await;
    faults.clear();
    let mut gaps = 0;
    let mut days: std::collections::BTreeMap<String, (i64, i64, i64)> = Default::default();
    for statement in &broken {
        let day = days.entry(statement.header.id.clone()).or_insert((
            of_kind(statement, BalanceType::OpeningBooked),
            of_kind(statement, BalanceType::ClosingBooked),
            0,
        ));
        day.2 += statement
            .entries
            .iter()
            .map(|e| match e.indicator {
                CreditDebit::Credit => e.amount.minor(),
                CreditDebit::Debit => -e.amount.minor(),
            })
            .sum::<i64>();
    }
    for (opening, closing, net) in days.values() {
        if opening + net != *closing {
            gaps += 1;
        }
    }
    assert_eq!(gaps, 1, "exactly one day breaks");

    // DuplicatePage: page 2 repeats page 1's entries.
    let (_, first) = get(&server, &format!("{query}&page=1")).await.unwrap();
    faults.inject(FaultRule::times(Fault::DuplicatePage, 1).for_function("C53"));
    let (_, second) = get(&server, &format!("{query}&page=2")).await.unwrap();
    let entries = |b: &[u8]| -> Vec<camt053::Entry> {
        camt053::parse(b)
            .unwrap()
            .statements
            .into_iter()
            .flat_map(|s| s.entries)
            .collect()
    };
    assert_eq!(entries(&first), entries(&second));
    assert_eq!(
        camt053::parse(&second)
            .unwrap()
            .group_header
            .pagination
            .unwrap()
            .page_number,
        2
    );

    // RecordFailure: the account is left out of a C52.
    let others = eur_accounts(&server);
    faults.inject(FaultRule::times(
        Fault::RecordFailure {
            acc_no: others[0].number.clone(),
            code: "AC01".to_string(),
            message: "hidden".to_string(),
        },
        1,
    ));
    let (status, body) = get(
        &server,
        &format!(
            "C52?account={}&account={}&entries=none",
            others[0].number, others[1].number
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let report = camt052::parse(&body).unwrap();
    assert_eq!(report.reports.len(), 1);

    // Random faults match order types too.
    faults
        .set_random(banksim::RandomFaults {
            seed: 3,
            rules: vec![banksim::RandomFaultRule {
                fault: Fault::HttpError {
                    status: 502,
                    when: When::Before,
                },
                function: Some("HTD".to_string()),
                percent: 100,
            }],
        })
        .unwrap();
    assert_eq!(get(&server, "HTD").await.unwrap().0, 502);
    assert_eq!(get(&server, &c52).await.unwrap().0, 200);
    faults.clear();
    server.shutdown().await;
}

#[tokio::test]
async fn the_control_api_sets_the_page_size_over_tls() {
    let server = start().await;
    let client = client(&server);
    let url = format!("{}_sim/iso20022/config", server.url());
    let answer = client
        .put(&url)
        .body(r#"{"page_size": 3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(server.iso_page_size(), 3);
    let answer = client
        .put(&url)
        .body(r#"{"page_size": 0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    assert!(server.set_iso_page_size(20_000).is_err());
    let view = json(
        &client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    );
    assert_eq!(view["page_size"], 3);
    server.shutdown().await;
}
