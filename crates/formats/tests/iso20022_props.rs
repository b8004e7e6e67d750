//! Properties of the ISO 20022 codecs: every pain.001.001.09,
//! camt.053.001.08 and camt.053.001.02 the model can hold survives
//! render→parse unchanged (with Chinese and accented text, markup
//! characters, currencies of 0, 2, 3 and 4 decimals and message
//! pagination), and no parser of the family panics on arbitrary bytes,
//! arbitrary markup, or damaged renderings of any of the messages.
//!
//! pain.001.001.03 (`iso20022_pain001_v03.rs`), pain.002 in both versions
//! (`iso20022_pain002.rs`) and camt.052/camt.054
//! (`iso20022_camt052_054.rs`) have their round-trips beside their
//! fixtures; the never-panic properties here run every parser on every
//! input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{Bic, BusinessDate, Currency, Iban, Money};
use formats::iso20022::camt052::{self, BankToCustomerAccountReport, ReportReader};
use formats::iso20022::camt053::{
    self, Balance, BalanceType, BankToCustomerStatement, CreditDebit, Entry, EntryStatus,
    GroupHeader, Pagination, Statement, StatementHeader, StatementItem, StatementReader,
    TransactionDetails, Version,
};
use formats::iso20022::camt054::{self, BankToCustomerDebitCreditNotification, NotificationReader};
use formats::iso20022::pain001::{
    self, CreditTransfer, CustomerCreditTransferInitiation, PaymentInformation,
};
use formats::iso20022::pain002;
use formats::iso20022::{AccountIdentification, Limits, Party};
use proptest::prelude::*;

const SAMPLE: &str = "中国招商银行深圳分行张三有限公司（）：，。éàüñçøÅßœ€";

fn text_char() -> impl Strategy<Value = char> {
    let sample: Vec<char> = SAMPLE.chars().collect();
    prop_oneof![
        4 => prop::char::range(' ', '~'),
        2 => prop::sample::select(vec!['<', '>', '&', '\'', '"', ' ', '\t', '\n', '\r']),
        2 => prop::sample::select(sample),
        1 => prop::char::range('\u{4E00}', '\u{9FA5}'),
        1 => prop::sample::select(vec!['😀', '𠀀', '\u{FFFD}']),
    ]
}

/// ISO text of 1..=`max` characters.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(text_char(), 1..=max).prop_map(|chars| chars.into_iter().collect())
}

fn opt_text(max: usize) -> impl Strategy<Value = Option<String>> {
    prop::option::of(text(max))
}

fn currency() -> impl Strategy<Value = Currency> {
    prop::sample::select(vec!["JPY", "CNY", "EUR", "USD", "BHD", "KWD", "CLF"])
        .prop_map(|code| Currency::from_code(code).unwrap())
}

/// Up to `max_minor` minor units: a pain.001 control sum adds amounts of
/// every currency at the largest exponent and must keep to 18 digits.
fn money(min_minor: i64, max_minor: i64) -> impl Strategy<Value = Money> {
    (currency(), min_minor..max_minor)
        .prop_map(|(currency, minor)| Money::from_minor(minor, currency))
}

fn date() -> impl Strategy<Value = BusinessDate> {
    (1990i32..2100, 1u32..=12, 1u32..=28)
        .prop_map(|(y, m, d)| BusinessDate::from_ymd(y, m, d).unwrap())
}

fn date_time() -> impl Strategy<Value = String> {
    (
        date(),
        0u32..24,
        0u32..60,
        0u32..60,
        prop::sample::select(vec!["", "Z", "+08:00", "-05:30", ".123", ".5+01:00"]),
    )
        .prop_map(|(d, h, m, s, zone)| format!("{d}T{h:02}:{m:02}:{s:02}{zone}"))
}

fn bic() -> impl Strategy<Value = Bic> {
    "[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?".prop_filter_map("valid BIC", |s| Bic::parse(&s).ok())
}

fn account() -> impl Strategy<Value = AccountIdentification> {
    prop_oneof![
        "[0-9]{18}"
            .prop_map(|bban| AccountIdentification::Iban(Iban::from_parts("DE", &bban).unwrap())),
        "[A-Z]{4}[0-9]{10}"
            .prop_map(|bban| AccountIdentification::Iban(Iban::from_parts("NL", &bban).unwrap())),
        text(34).prop_map(AccountIdentification::Other),
    ]
}

fn party() -> impl Strategy<Value = Party> {
    (opt_text(140), prop::collection::vec(text(70), 0..=7)).prop_map(|(name, address_lines)| {
        Party {
            name,
            address_lines,
        }
    })
}

fn transfer() -> impl Strategy<Value = CreditTransfer> {
    (
        opt_text(35),
        text(35),
        money(1, 1_000_000_000_000),
        prop::option::of(bic()),
        party(),
        account(),
        prop::collection::vec(text(140), 0..3),
    )
        .prop_map(
            |(
                instruction_id,
                end_to_end_id,
                amount,
                creditor_agent,
                creditor,
                creditor_account,
                remittance,
            )| {
                CreditTransfer {
                    instruction_id,
                    end_to_end_id,
                    amount,
                    creditor_agent,
                    creditor,
                    creditor_account,
                    remittance,
                }
            },
        )
}

/// An `ExternalCategoryPurpose1Code`: 1 to 4 characters, markup included
/// (codes are read trimmed, so none starts or ends with a blank).
fn category_purpose() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        prop::sample::select(vec!["SALA", "SUPP", "PENS", "TREA"]).prop_map(str::to_owned),
        "[A-Za-z0-9<>&\"'][A-Za-z0-9<>&\"' ]{0,2}[A-Za-z0-9<>&\"']|[A-Za-z0-9<>&]",
    ])
}

fn payment() -> impl Strategy<Value = PaymentInformation> {
    (
        text(35),
        prop::option::of(any::<bool>()),
        category_purpose(),
        date(),
        party(),
        account(),
        bic(),
        prop::collection::vec(transfer(), 1..4),
    )
        .prop_map(
            |(
                id,
                batch_booking,
                category_purpose,
                requested_execution_date,
                debtor,
                debtor_account,
                debtor_agent,
                transactions,
            )| {
                PaymentInformation {
                    id,
                    batch_booking,
                    category_purpose,
                    requested_execution_date,
                    debtor,
                    debtor_account,
                    debtor_agent,
                    transactions,
                }
            },
        )
}

fn initiation() -> impl Strategy<Value = CustomerCreditTransferInitiation> {
    (
        text(35),
        date_time(),
        party(),
        prop::collection::vec(payment(), 1..3),
    )
        .prop_map(|(message_id, created_at, initiating_party, payments)| {
            CustomerCreditTransferInitiation {
                message_id,
                created_at,
                initiating_party,
                payments,
            }
        })
}

fn indicator() -> impl Strategy<Value = CreditDebit> {
    prop::sample::select(vec![CreditDebit::Credit, CreditDebit::Debit])
}

fn balance() -> impl Strategy<Value = Balance> {
    (
        prop::sample::select(BalanceType::all().collect::<Vec<_>>()),
        money(0, 100_000_000_000_000_000),
        indicator(),
        date(),
    )
        .prop_map(|(kind, amount, indicator, date)| Balance {
            kind,
            amount,
            indicator,
            date,
        })
}

fn tx_details() -> impl Strategy<Value = TransactionDetails> {
    (
        opt_text(35),
        party(),
        party(),
        prop::collection::vec(text(140), 0..3),
    )
        .prop_map(
            |(end_to_end_id, debtor, creditor, remittance)| TransactionDetails {
                end_to_end_id,
                debtor,
                creditor,
                remittance,
            },
        )
}

/// An entry `version` can carry: `.02` has no `FUTR`.
fn entry(version: Version) -> impl Strategy<Value = Entry> {
    let mut statuses = vec![
        EntryStatus::Booked,
        EntryStatus::Pending,
        EntryStatus::Information,
    ];
    if version == Version::V08 {
        statuses.push(EntryStatus::Future);
    }
    (
        (opt_text(35), money(0, 100_000_000_000_000_000), indicator()),
        prop::sample::select(statuses),
        (prop::option::of(date()), prop::option::of(date())),
        (opt_text(35), opt_text(35)),
        prop::collection::vec(tx_details(), 0..3),
    )
        .prop_map(
            |(
                (reference, amount, indicator),
                status,
                (booking_date, value_date),
                (acct_ref, code),
                transactions,
            )| {
                Entry {
                    reference,
                    amount,
                    indicator,
                    status,
                    booking_date,
                    value_date,
                    account_servicer_reference: acct_ref,
                    bank_transaction_code: code,
                    transactions,
                }
            },
        )
}

/// A statement `version` can carry (`.02` needs `CreDtTm`), with as many
/// balances as `balances` says: 1.. for camt.053, 0.. for camt.052, none
/// for camt.054.
fn statement(
    version: Version,
    balances: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Statement> {
    let created_at = match version {
        Version::V02 => date_time().prop_map(Some).boxed(),
        Version::V08 => prop::option::of(date_time()).boxed(),
    };
    (
        text(35),
        prop::option::of(0u64..=camt053::MAX_SEQUENCE_NUMBER),
        created_at,
        account(),
        prop::option::of(currency()),
        prop::collection::vec(balance(), balances),
        prop::collection::vec(entry(version), 0..5),
    )
        .prop_map(
            |(id, electronic_sequence_number, created_at, account, currency, balances, entries)| {
                Statement {
                    header: StatementHeader {
                        id,
                        electronic_sequence_number,
                        created_at,
                        account,
                        currency,
                        balances,
                    },
                    entries,
                }
            },
        )
}

fn pagination() -> impl Strategy<Value = Option<Pagination>> {
    prop::option::of((0u32..=camt053::MAX_PAGE_NUMBER, any::<bool>())).prop_map(|pages| {
        pages.map(|(page_number, last_page)| Pagination {
            page_number,
            last_page,
        })
    })
}

fn group_header() -> impl Strategy<Value = GroupHeader> {
    (text(35), date_time(), pagination()).prop_map(|(message_id, created_at, pagination)| {
        GroupHeader {
            message_id,
            created_at,
            pagination,
        }
    })
}

fn bank_statement() -> impl Strategy<Value = BankToCustomerStatement> {
    bank_statement_for(Version::V08)
}

fn bank_statement_for(version: Version) -> impl Strategy<Value = BankToCustomerStatement> {
    (
        group_header(),
        prop::collection::vec(statement(version, 1..=3), 1..3),
    )
        .prop_map(|(group_header, statements)| BankToCustomerStatement {
            group_header,
            statements,
        })
}

fn versioned_statement() -> impl Strategy<Value = (Version, BankToCustomerStatement)> {
    prop::sample::select(vec![Version::V02, Version::V08])
        .prop_flat_map(|version| (Just(version), bank_statement_for(version)))
}

fn account_report() -> impl Strategy<Value = BankToCustomerAccountReport> {
    (
        group_header(),
        prop::collection::vec(statement(Version::V08, 0..=3), 1..3),
    )
        .prop_map(|(group_header, reports)| BankToCustomerAccountReport {
            group_header,
            reports,
        })
}

fn notification() -> impl Strategy<Value = BankToCustomerDebitCreditNotification> {
    (
        group_header(),
        prop::collection::vec(statement(Version::V08, 0..=0), 1..3),
    )
        .prop_map(
            |(group_header, notifications)| BankToCustomerDebitCreditNotification {
                group_header,
                notifications,
            },
        )
}

/// A valid rendering of any message of the family, in any version.
fn any_rendering() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        initiation().prop_map(|m| pain001::render(&m).unwrap()),
        // Not every BIC fits the .03 pattern; those are refused when rendered.
        initiation().prop_filter_map("BICs outside the .03 pattern", |m| {
            pain001::render_version(&m, pain001::Version::V03).ok()
        }),
        versioned_statement().prop_map(|(v, m)| camt053::render_version(&m, v).unwrap()),
        account_report().prop_map(|m| camt052::render(&m).unwrap()),
        notification().prop_map(|m| camt054::render(&m).unwrap()),
    ]
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index, prop::sample::Index),
    Splice(prop::sample::Index, &'static str),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Damage::Remove(a, b)),
        (
            any::<prop::sample::Index>(),
            prop::sample::select(vec![
                "<",
                ">",
                "</",
                "&",
                "&#0;",
                "<Ntry>",
                "</Stmt>",
                "<![CDATA[",
                "<!DOCTYPE x>",
                "-1",
                ".",
                "\u{FFFF}"
            ]),
        )
            .prop_map(|(i, s)| Damage::Splice(i, s)),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    if bytes.is_empty() {
        return;
    }
    match damage {
        Damage::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Damage::Flip(at, value) => {
            let at = at.index(bytes.len());
            bytes[at] ^= value | 1;
        }
        Damage::Insert(at, value) => {
            let at = at.index(bytes.len() + 1);
            bytes.insert(at, *value);
        }
        Damage::Remove(a, b) => {
            let (a, b) = (a.index(bytes.len()), b.index(bytes.len()));
            bytes.drain(a.min(b)..a.max(b));
        }
        Damage::Splice(at, text) => {
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, text.bytes());
        }
    }
}

/// Streams everything, counting items, to exercise the reader to the end.
fn stream_all(bytes: &[u8]) -> Result<usize, formats::iso20022::ParseError> {
    let mut items = 0;
    for item in StatementReader::new(bytes, Limits::default()) {
        let _: StatementItem = item?;
        items += 1;
    }
    Ok(items)
}

/// Limits small enough that damaged inputs reach them too.
fn tight_limits() -> Limits {
    Limits {
        max_bytes: 4096,
        max_depth: 8,
        max_text_bytes: 64,
        max_event_bytes: 256,
        max_elements: 64,
    }
}

/// Every parser and streaming reader of the family, under the default and
/// under tight limits: none may panic, whatever the bytes.
fn run_every_parser(bytes: &[u8]) {
    for limits in [Limits::default(), tight_limits()] {
        let _ = pain001::parse_any_with_limits(bytes, &limits);
        let _ = pain002::parse_with_limits(bytes, &limits);
        let _ = camt053::parse_any_with_limits(bytes, &limits);
        let _ = camt052::parse_with_limits(bytes, &limits);
        let _ = camt054::parse_with_limits(bytes, &limits);
        StatementReader::new(bytes, limits).for_each(drop);
        ReportReader::new(bytes, limits).for_each(drop);
        NotificationReader::new(bytes, limits).for_each(drop);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pain001_survives_render_then_parse(message in initiation()) {
        let bytes = pain001::render(&message).unwrap();
        let parsed = pain001::parse(&bytes)
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)));
        prop_assert_eq!(parsed, message);
    }

    #[test]
    fn camt053_survives_render_then_parse(message in bank_statement()) {
        let bytes = camt053::render(&message).unwrap();
        let parsed = camt053::parse(&bytes)
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)));
        prop_assert_eq!(parsed, message);
    }

    #[test]
    fn camt053_survives_render_then_parse_in_both_versions(
        (version, message) in versioned_statement(),
    ) {
        let bytes = camt053::render_version(&message, version).unwrap();
        let parsed = camt053::parse_any(&bytes)
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)));
        prop_assert_eq!(parsed, (version, message.clone()));
        let mut reader = StatementReader::new(bytes.as_slice(), Limits::default());
        prop_assert!(matches!(reader.next_item(), Ok(Some(StatementItem::Group(_)))));
        prop_assert_eq!(reader.version(), Some(version));
    }

    #[test]
    fn camt053_v02_and_v08_renderings_parse_to_the_same_message(
        message in bank_statement_for(Version::V02),
    ) {
        let v02 = camt053::parse(&camt053::render_version(&message, Version::V02).unwrap());
        let v08 = camt053::parse(&camt053::render(&message).unwrap());
        prop_assert_eq!(v02.unwrap(), v08.unwrap());
    }

    #[test]
    fn every_parser_never_panics_on_damaged_renderings(
        bytes in any_rendering(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let mut bytes = bytes;
        for d in &damages {
            apply(&mut bytes, d);
        }
        run_every_parser(&bytes);
    }

    #[test]
    fn every_parser_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        run_every_parser(&bytes);
    }

    #[test]
    fn every_parser_never_panics_on_arbitrary_namespaced_markup(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">",
                "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">",
                "<p:Document xmlns:p=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.03\">",
                "<p:Document xmlns:p=\"urn:iso:std:iso:20022:tech:xsd:pain.002.001.12\">",
                "<p:Document xmlns=\"x\">", "</p:Document>", "</Document>",
                "<BkToCstmrStmt>", "</BkToCstmrStmt>", "<BkToCstmrAcctRpt>",
                "</BkToCstmrAcctRpt>", "<BkToCstmrDbtCdtNtfctn>", "</BkToCstmrDbtCdtNtfctn>",
                "<CstmrCdtTrfInitn>", "</CstmrCdtTrfInitn>", "<CstmrPmtStsRpt>",
                "</CstmrPmtStsRpt>", "<GrpHdr>", "</GrpHdr>", "<MsgId>M</MsgId>",
                "<CreDtTm>2026-11-28T10:00:00</CreDtTm>", "<MsgPgntn>", "</MsgPgntn>",
                "<PgNb>", "</PgNb>", "<LastPgInd>", "</LastPgInd>", "true", "2",
                "99999999999", "<Stmt>", "</Stmt>", "<Rpt>", "</Rpt>", "<Ntfctn>",
                "</Ntfctn>", "<Ntry>", "</Ntry>", "<Sts>", "</Sts>", "BOOK", "FUTR",
                "<Amt Ccy=\"EUR\">", "</Amt>", "1.00", "-1", " ", "&amp;", "&bad;",
            ]),
            0..48,
        ),
    ) {
        run_every_parser(parts.concat().as_bytes());
    }

    #[test]
    fn pain001_parse_never_panics_on_damaged_documents(
        message in initiation(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let mut bytes = pain001::render(&message).unwrap();
        for d in &damages {
            apply(&mut bytes, d);
        }
        let _ = pain001::parse(&bytes);
    }

    #[test]
    fn camt053_parse_never_panics_on_damaged_documents(
        message in bank_statement(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let mut bytes = camt053::render(&message).unwrap();
        for d in &damages {
            apply(&mut bytes, d);
        }
        let _ = camt053::parse(&bytes);
        let _ = stream_all(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = pain001::parse(&bytes);
        let _ = camt053::parse(&bytes);
        let _ = stream_all(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_markup(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "<Document>", "</Document>", "<CstmrCdtTrfInitn>", "</CstmrCdtTrfInitn>",
                "<BkToCstmrStmt>", "</BkToCstmrStmt>", "<GrpHdr>", "</GrpHdr>", "<PmtInf>",
                "</PmtInf>", "<Stmt>", "</Stmt>", "<Ntry>", "</Ntry>", "<Amt Ccy=\"EUR\">",
                "<Amt>", "</Amt>", "<NbOfTxs>", "</NbOfTxs>", "<CtrlSum>", "</CtrlSum>",
                "1.00", "-1", "99999999999999999999999", "x", " ", "&amp;", "&bad;", "<a:b>",
            ]),
            0..40,
        ),
    ) {
        let bytes = parts.concat().into_bytes();
        let _ = pain001::parse(&bytes);
        let _ = camt053::parse(&bytes);
        let _ = stream_all(&bytes);
    }
}
