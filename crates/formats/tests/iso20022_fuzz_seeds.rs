//! The fuzz seeds under `fuzz/seeds/iso20022_*` named `rendered_*.xml` are
//! our renderer's output, never hand-copied documents: this test renders
//! each seed message and checks the committed file is exactly that, so a
//! change to a renderer shows up here. To rewrite the seeds after such a
//! change:
//!
//! ```text
//! BANKDIRECT_WRITE_FUZZ_SEEDS=1 cargo test -p formats --test iso20022_fuzz_seeds
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use domain::{BusinessDate, Currency, Iban, Money};
use formats::iso20022::camt052::{self, BankToCustomerAccountReport};
use formats::iso20022::camt053::{
    self, Balance, BalanceType, BankToCustomerStatement, CreditDebit, Entry, EntryStatus,
    GroupHeader, Pagination, Statement, StatementHeader, TransactionDetails, Version,
};
use formats::iso20022::camt054::{self, BankToCustomerDebitCreditNotification};
use formats::iso20022::pain002::{
    self, CustomerPaymentStatusReport, DecimalNumber, OriginalGroupStatus, OriginalPaymentStatus,
    Reason, Status, StatusReason, TransactionStatus,
};
use formats::iso20022::{AccountIdentification, Party};

fn day(text: &str) -> BusinessDate {
    BusinessDate::parse_iso(text).unwrap()
}

fn money(text: &str, code: &str) -> Money {
    Money::parse(text, Currency::from_code(code).unwrap()).unwrap()
}

fn paged(message_id: &str, page_number: u32, last_page: bool) -> GroupHeader {
    GroupHeader {
        pagination: Some(Pagination {
            page_number,
            last_page,
        }),
        ..GroupHeader::new(message_id, "2026-11-28T23:30:00+08:00")
    }
}

/// A statement with every modelled element, in what both versions carry
/// (no `FUTR`), plus an entry with almost nothing.
fn statement(balances: bool) -> Statement {
    let balance = |kind, amount: &str, indicator| Balance {
        kind,
        amount: money(amount, "CNY"),
        indicator,
        date: day("2026-11-28"),
    };
    Statement {
        header: StatementHeader {
            id: "STMT-117".to_owned(),
            electronic_sequence_number: Some(117),
            created_at: Some("2026-11-28T23:30:00+08:00".to_owned()),
            account: AccountIdentification::Other("755912345610801".to_owned()),
            currency: Some(Currency::from_code("CNY").unwrap()),
            balances: if balances {
                vec![
                    balance(BalanceType::OpeningBooked, "100000.00", CreditDebit::Credit),
                    balance(BalanceType::ClosingBooked, "98800.00", CreditDebit::Credit),
                    balance(BalanceType::ClosingAvailable, "1.5", CreditDebit::Debit),
                ]
            } else {
                Vec::new()
            },
        },
        entries: vec![
            Entry {
                reference: Some("1".to_owned()),
                amount: money("1200.00", "CNY"),
                indicator: CreditDebit::Debit,
                status: EntryStatus::Booked,
                booking_date: Some(day("2026-11-28")),
                value_date: Some(day("2026-11-29")),
                account_servicer_reference: Some("CMB-20261128-000117".to_owned()),
                bank_transaction_code: Some("TRF".to_owned()),
                transactions: vec![TransactionDetails {
                    end_to_end_id: Some("E2E-张三-01".to_owned()),
                    debtor: Party {
                        name: Some("深圳市张三贸易有限公司".to_owned()),
                        address_lines: vec!["深圳市南山区 & <科技园>".to_owned()],
                    },
                    creditor: Party {
                        name: Some("Müller & Söhne".to_owned()),
                        address_lines: Vec::new(),
                    },
                    remittance: vec!["货款 2026-117".to_owned(), "second line".to_owned()],
                }],
            },
            Entry {
                reference: None,
                amount: money("0.01", "CNY"),
                indicator: CreditDebit::Credit,
                status: EntryStatus::Pending,
                booking_date: None,
                value_date: None,
                account_servicer_reference: None,
                bank_transaction_code: None,
                transactions: Vec::new(),
            },
        ],
    }
}

fn bank_statement() -> BankToCustomerStatement {
    let mut iban = statement(true);
    iban.header.id = "STMT-118".to_owned();
    iban.header.account =
        AccountIdentification::Iban(Iban::parse("DE89370400440532013000").unwrap());
    iban.header.currency = None;
    BankToCustomerStatement {
        group_header: paged("CMB-STMT-20261128-0001", 2, false),
        statements: vec![statement(true), iban],
    }
}

fn status_report(version: pain002::Version) -> CustomerPaymentStatusReport {
    let reason = |code: &str, info: &str| StatusReason {
        reason: Some(Reason::Code(code.to_owned())),
        additional_info: vec![info.to_owned()],
    };
    let group_status = match version {
        pain002::Version::V03 => Status::PartiallyAccepted,
        pain002::Version::V12 => Status::Other("ACFC".to_owned()),
    };
    CustomerPaymentStatusReport {
        message_id: "ICBC-STS-20261128-01".to_owned(),
        created_at: "2026-11-28T10:20:00+08:00".to_owned(),
        original_group: OriginalGroupStatus {
            original_message_id: "ABC-20261128-1".to_owned(),
            original_message_name_id: "pain.001.001.09".to_owned(),
            original_count: Some(2),
            original_control_sum: DecimalNumber::parse("1200.50"),
            status: Some(group_status),
            reasons: vec![reason("AM05", "重复支付")],
        },
        original_payments: vec![OriginalPaymentStatus {
            original_payment_information_id: "PMT-1".to_owned(),
            status: Some(Status::PartiallyAccepted),
            reasons: Vec::new(),
            transactions: vec![
                TransactionStatus {
                    original_instruction_id: Some("INSTR-1".to_owned()),
                    original_end_to_end_id: Some("E2E-1".to_owned()),
                    status: Some(Status::Rejected),
                    reasons: vec![
                        reason("AC04", "账户已销户"),
                        StatusReason {
                            reason: Some(Reason::Proprietary("BANK-17".to_owned())),
                            additional_info: Vec::new(),
                        },
                    ],
                    accepted_at: None,
                },
                TransactionStatus {
                    original_instruction_id: None,
                    original_end_to_end_id: Some("E2E-2".to_owned()),
                    status: Some(Status::AcceptedSettlementCompleted),
                    reasons: Vec::new(),
                    accepted_at: Some("2026-11-28T10:19:00+08:00".to_owned()),
                },
            ],
        }],
    }
}

/// Every seed: target, file name, bytes.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let statement_v02 = camt053::render_version(&bank_statement(), Version::V02).unwrap();
    let statement_v08 = camt053::render(&bank_statement()).unwrap();
    let report = BankToCustomerAccountReport {
        group_header: paged("RPT-2026-11-28-1200", 1, true),
        reports: vec![statement(true)],
    };
    let notification = BankToCustomerDebitCreditNotification {
        group_header: GroupHeader::new("NTF-0007", "2026-11-28T09:31:07Z"),
        notifications: vec![statement(false)],
    };
    let pain002_v03 =
        pain002::render(&status_report(pain002::Version::V03), pain002::Version::V03).unwrap();
    let pain002_v12 =
        pain002::render(&status_report(pain002::Version::V12), pain002::Version::V12).unwrap();
    vec![
        ("iso20022_camt053", "rendered_v02.xml", statement_v02),
        ("iso20022_camt053", "rendered_v08_paged.xml", statement_v08),
        (
            "iso20022_camt052",
            "rendered.xml",
            camt052::render(&report).unwrap(),
        ),
        (
            "iso20022_camt054",
            "rendered.xml",
            camt054::render(&notification).unwrap(),
        ),
        ("iso20022_pain002", "rendered_v03.xml", pain002_v03),
        ("iso20022_pain002", "rendered_v12.xml", pain002_v12),
    ]
}

#[test]
fn the_rendered_fuzz_seeds_are_what_the_renderers_write() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    let write = std::env::var_os("BANKDIRECT_WRITE_FUZZ_SEEDS").is_some();
    for (target, name, bytes) in seeds() {
        let path = root.join(target).join(name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; write the seeds with BANKDIRECT_WRITE_FUZZ_SEEDS=1",
                path.display()
            )
        });
        assert!(
            committed == bytes,
            "{} is not what the renderer writes now; rewrite the seeds with \
             BANKDIRECT_WRITE_FUZZ_SEEDS=1",
            path.display()
        );
    }
}

#[test]
fn every_seed_parses_back_to_its_message() {
    for (target, name, bytes) in seeds() {
        let ok = match target {
            "iso20022_camt053" => camt053::parse_any(&bytes).is_ok(),
            "iso20022_camt052" => camt052::parse(&bytes).is_ok(),
            "iso20022_camt054" => camt054::parse(&bytes).is_ok(),
            "iso20022_pain002" => pain002::parse(&bytes).is_ok(),
            other => panic!("no parser for {other}"),
        };
        assert!(ok, "{target}/{name}");
    }
    assert_eq!(
        camt053::parse_any(&seeds()[0].2).unwrap(),
        (Version::V02, bank_statement())
    );
}
