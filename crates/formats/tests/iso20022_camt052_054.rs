//! camt.052.001.08 and camt.054.001.08: every report and notification the
//! model can hold survives render→parse unchanged (Chinese and accented
//! text, markup characters, currencies of 0, 2, 3 and 4 decimals); damaged
//! and random bytes never panic; prefixed fixtures read as banks write them
//! (a pending intraday entry, a credit notification).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{BusinessDate, Currency, Iban, Money};
use formats::iso20022::camt052::{self, BankToCustomerAccountReport, ReportItem, ReportReader};
use formats::iso20022::camt053::{
    self, Balance, BalanceType, CreditDebit, Entry, EntryStatus, GroupHeader, Pagination,
    Statement, StatementHeader, TransactionDetails,
};
use formats::iso20022::camt054::{
    self, BankToCustomerDebitCreditNotification, NotificationItem, NotificationReader,
};
use formats::iso20022::{AccountIdentification, Limits, ParseError, Party, RenderError};
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

fn entry() -> impl Strategy<Value = Entry> {
    (
        (opt_text(35), money(0, 100_000_000_000_000_000), indicator()),
        prop::sample::select(vec![
            EntryStatus::Booked,
            EntryStatus::Pending,
            EntryStatus::Information,
            EntryStatus::Future,
        ]),
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

fn block(with_balances: bool) -> impl Strategy<Value = Statement> {
    let max_balances = if with_balances { 4 } else { 0 };
    (
        text(35),
        prop::option::of(0u64..=camt053::MAX_SEQUENCE_NUMBER),
        prop::option::of(date_time()),
        account(),
        prop::option::of(currency()),
        prop::collection::vec(balance(), 0..=max_balances),
        prop::collection::vec(entry(), 0..5),
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

fn group_header() -> impl Strategy<Value = GroupHeader> {
    (
        text(35),
        date_time(),
        prop::option::of((0u32..=99_999, any::<bool>())),
    )
        .prop_map(|(message_id, created_at, pages)| GroupHeader {
            message_id,
            created_at,
            pagination: pages.map(|(page_number, last_page)| Pagination {
                page_number,
                last_page,
            }),
        })
}

fn account_report() -> impl Strategy<Value = BankToCustomerAccountReport> {
    (group_header(), prop::collection::vec(block(true), 1..3)).prop_map(
        |(group_header, reports)| BankToCustomerAccountReport {
            group_header,
            reports,
        },
    )
}

fn notification() -> impl Strategy<Value = BankToCustomerDebitCreditNotification> {
    (group_header(), prop::collection::vec(block(false), 1..3)).prop_map(
        |(group_header, notifications)| BankToCustomerDebitCreditNotification {
            group_header,
            notifications,
        },
    )
}

/// Streams a camt.052 to the end, counting items.
fn stream_052(bytes: &[u8]) -> Result<usize, ParseError> {
    let mut items = 0;
    for item in ReportReader::new(bytes, Limits::default()) {
        let _: ReportItem = item?;
        items += 1;
    }
    Ok(items)
}

/// Streams a camt.054 to the end, counting items.
fn stream_054(bytes: &[u8]) -> Result<usize, ParseError> {
    let mut items = 0;
    for item in NotificationReader::new(bytes, Limits::default()) {
        let _: NotificationItem = item?;
        items += 1;
    }
    Ok(items)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn camt052_survives_render_then_parse(message in account_report()) {
        let bytes = camt052::render(&message).unwrap();
        let parsed = camt052::parse(&bytes)
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)));
        prop_assert_eq!(&parsed, &message);
        let entries: usize = message.reports.iter().map(|r| r.entries.len()).sum();
        prop_assert_eq!(stream_052(&bytes).unwrap(), 1 + message.reports.len() + entries);
    }

    #[test]
    fn camt054_survives_render_then_parse(message in notification()) {
        let bytes = camt054::render(&message).unwrap();
        let parsed = camt054::parse(&bytes)
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)));
        prop_assert_eq!(&parsed, &message);
        let entries: usize = message.notifications.iter().map(|n| n.entries.len()).sum();
        prop_assert_eq!(stream_054(&bytes).unwrap(), 1 + message.notifications.len() + entries);
    }

    #[test]
    fn camt052_parse_never_panics_on_damaged_documents(
        message in account_report(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let mut bytes = camt052::render(&message).unwrap();
        for d in &damages {
            apply(&mut bytes, d);
        }
        let _ = camt052::parse(&bytes);
        let _ = stream_052(&bytes);
    }

    #[test]
    fn camt054_parse_never_panics_on_damaged_documents(
        message in notification(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let mut bytes = camt054::render(&message).unwrap();
        for d in &damages {
            apply(&mut bytes, d);
        }
        let _ = camt054::parse(&bytes);
        let _ = stream_054(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = camt052::parse(&bytes);
        let _ = camt054::parse(&bytes);
        let _ = stream_052(&bytes);
        let _ = stream_054(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_markup(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "<Document>", "</Document>", "<BkToCstmrAcctRpt>", "</BkToCstmrAcctRpt>",
                "<BkToCstmrDbtCdtNtfctn>", "</BkToCstmrDbtCdtNtfctn>", "<GrpHdr>", "</GrpHdr>",
                "<MsgId>", "</MsgId>", "<CreDtTm>", "</CreDtTm>", "<Rpt>", "</Rpt>",
                "<Ntfctn>", "</Ntfctn>", "<Id>", "</Id>", "<Acct>", "</Acct>", "<Bal>",
                "</Bal>", "<Ntry>", "</Ntry>", "<Amt Ccy=\"EUR\">", "<Amt>", "</Amt>",
                "<Sts>", "</Sts>", "<Cd>", "</Cd>", "PDNG", "CRDT", "1.00", "-1",
                "99999999999999999999999", "x", " ", "&amp;", "&bad;", "<a:b>",
            ]),
            0..40,
        ),
    ) {
        let bytes = parts.concat().into_bytes();
        let _ = camt052::parse(&bytes);
        let _ = camt054::parse(&bytes);
        let _ = stream_052(&bytes);
        let _ = stream_054(&bytes);
    }
}

fn day(text: &str) -> BusinessDate {
    BusinessDate::parse_iso(text).unwrap()
}

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

const CAMT052_PREFIXED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<c52:Document xmlns:c52="urn:iso:std:iso:20022:tech:xsd:camt.052.001.08">
  <c52:BkToCstmrAcctRpt>
    <c52:GrpHdr>
      <c52:MsgId>RPT-2026-11-28-1200</c52:MsgId>
      <c52:CreDtTm>2026-11-28T12:00:00+01:00</c52:CreDtTm>
      <c52:MsgPgntn><c52:PgNb>1</c52:PgNb><c52:LastPgInd>true</c52:LastPgInd></c52:MsgPgntn>
    </c52:GrpHdr>
    <c52:Rpt>
      <c52:Id>INTRADAY-1200</c52:Id>
      <c52:RptPgntn><c52:PgNb>1</c52:PgNb><c52:LastPgInd>true</c52:LastPgInd></c52:RptPgntn>
      <c52:ElctrncSeqNb> 42 </c52:ElctrncSeqNb>
      <c52:CreDtTm>2026-11-28T12:00:00+01:00</c52:CreDtTm>
      <c52:Acct>
        <c52:Id><c52:IBAN>DE89370400440532013000</c52:IBAN></c52:Id>
        <c52:Ccy>EUR</c52:Ccy>
        <c52:Ownr><c52:Nm>Müller &amp; Söhne GmbH</c52:Nm></c52:Ownr>
      </c52:Acct>
      <c52:Bal>
        <c52:Tp><c52:CdOrPrtry><c52:Cd>ITBD</c52:Cd></c52:CdOrPrtry></c52:Tp>
        <c52:Amt Ccy="EUR">15000.00</c52:Amt>
        <c52:CdtDbtInd>CRDT</c52:CdtDbtInd>
        <c52:Dt><c52:DtTm>2026-11-28T12:00:00+01:00</c52:DtTm></c52:Dt>
      </c52:Bal>
      <c52:Bal>
        <c52:Tp><c52:CdOrPrtry><c52:Cd>ITAV</c52:Cd></c52:CdOrPrtry></c52:Tp>
        <c52:Amt Ccy="EUR">14250.50</c52:Amt>
        <c52:CdtDbtInd>CRDT</c52:CdtDbtInd>
        <c52:Dt><c52:Dt>2026-11-28</c52:Dt></c52:Dt>
      </c52:Bal>
      <c52:TxsSummry><c52:TtlNtries><c52:NbOfNtries>1</c52:NbOfNtries></c52:TtlNtries></c52:TxsSummry>
      <c52:Ntry>
        <c52:NtryRef>1</c52:NtryRef>
        <c52:Amt Ccy="EUR">749.50</c52:Amt>
        <c52:CdtDbtInd>DBIT</c52:CdtDbtInd>
        <c52:Sts><c52:Cd>PDNG</c52:Cd></c52:Sts>
        <c52:ValDt><c52:Dt>2026-11-28</c52:Dt></c52:ValDt>
        <c52:AcctSvcrRef>SVC-PDNG-0001</c52:AcctSvcrRef>
        <c52:BkTxCd><c52:Domn><c52:Cd>PMNT</c52:Cd></c52:Domn></c52:BkTxCd>
        <c52:NtryDtls>
          <c52:TxDtls>
            <c52:Refs><c52:EndToEndId>E2E-张三-01</c52:EndToEndId></c52:Refs>
            <c52:RltdPties>
              <c52:Cdtr><c52:Pty><c52:Nm>深圳市张三贸易有限公司</c52:Nm></c52:Pty></c52:Cdtr>
            </c52:RltdPties>
            <c52:RmtInf><c52:Ustrd>Facture 2026-117 réglée</c52:Ustrd></c52:RmtInf>
          </c52:TxDtls>
        </c52:NtryDtls>
      </c52:Ntry>
    </c52:Rpt>
  </c52:BkToCstmrAcctRpt>
</c52:Document>
"#;

#[test]
fn a_prefixed_camt052_with_a_pending_entry_parses_to_the_model() {
    let parsed = camt052::parse(CAMT052_PREFIXED.as_bytes()).unwrap();
    let expected = BankToCustomerAccountReport {
        group_header: GroupHeader {
            message_id: "RPT-2026-11-28-1200".to_owned(),
            created_at: "2026-11-28T12:00:00+01:00".to_owned(),
            pagination: Some(Pagination {
                page_number: 1,
                last_page: true,
            }),
        },
        reports: vec![Statement {
            header: StatementHeader {
                id: "INTRADAY-1200".to_owned(),
                electronic_sequence_number: Some(42),
                created_at: Some("2026-11-28T12:00:00+01:00".to_owned()),
                account: AccountIdentification::Iban(
                    Iban::parse("DE89370400440532013000").unwrap(),
                ),
                currency: Some(Currency::EUR),
                balances: vec![
                    Balance {
                        kind: BalanceType::InterimBooked,
                        amount: eur(1_500_000),
                        indicator: CreditDebit::Credit,
                        date: day("2026-11-28"),
                    },
                    Balance {
                        kind: BalanceType::InterimAvailable,
                        amount: eur(1_425_050),
                        indicator: CreditDebit::Credit,
                        date: day("2026-11-28"),
                    },
                ],
            },
            entries: vec![Entry {
                reference: Some("1".to_owned()),
                amount: eur(74_950),
                indicator: CreditDebit::Debit,
                status: EntryStatus::Pending,
                booking_date: None,
                value_date: Some(day("2026-11-28")),
                account_servicer_reference: Some("SVC-PDNG-0001".to_owned()),
                bank_transaction_code: None,
                transactions: vec![TransactionDetails {
                    end_to_end_id: Some("E2E-张三-01".to_owned()),
                    debtor: Party::default(),
                    creditor: Party {
                        name: Some("深圳市张三贸易有限公司".to_owned()),
                        address_lines: Vec::new(),
                    },
                    remittance: vec!["Facture 2026-117 réglée".to_owned()],
                }],
            }],
        }],
    };
    assert_eq!(parsed, expected);

    let items: Vec<ReportItem> = ReportReader::new(CAMT052_PREFIXED.as_bytes(), Limits::default())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(items.len(), 3);
    assert!(matches!(&items[1], ReportItem::Report(header) if header.balances.len() == 2));
    assert!(matches!(&items[2], ReportItem::Entry(entry) if entry.status == EntryStatus::Pending));
}

const CAMT054_PREFIXED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<n:Document xmlns:n="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
  <n:BkToCstmrDbtCdtNtfctn>
    <n:GrpHdr>
      <n:MsgId>NTF-0007</n:MsgId>
      <n:CreDtTm>2026-11-28T09:31:07Z</n:CreDtTm>
    </n:GrpHdr>
    <n:Ntfctn>
      <n:Id>NTF-0007-1</n:Id>
      <n:CreDtTm>2026-11-28T09:31:07Z</n:CreDtTm>
      <n:Acct>
        <n:Id><n:Othr><n:Id>755912345678901</n:Id></n:Othr></n:Id>
        <n:Ccy>CNY</n:Ccy>
      </n:Acct>
      <n:Ntry>
        <n:Amt Ccy="CNY">88000.00</n:Amt>
        <n:CdtDbtInd> CRDT </n:CdtDbtInd>
        <n:Sts><n:Cd>BOOK</n:Cd></n:Sts>
        <n:BookgDt><n:Dt>2026-11-28</n:Dt></n:BookgDt>
        <n:ValDt><n:Dt>2026-11-28</n:Dt></n:ValDt>
        <n:AcctSvcrRef>CMB20261128000123</n:AcctSvcrRef>
        <n:BkTxCd><n:Prtry><n:Cd>RCDT</n:Cd></n:Prtry></n:BkTxCd>
        <n:NtryDtls>
          <n:TxDtls>
            <n:Refs><n:EndToEndId>INV-2026-0451</n:EndToEndId></n:Refs>
            <n:RltdPties>
              <n:Dbtr><n:Pty><n:Nm>北京某某科技有限公司</n:Nm></n:Pty></n:Dbtr>
              <n:DbtrAcct><n:Id><n:Othr><n:Id>110987654321</n:Id></n:Othr></n:Id></n:DbtrAcct>
            </n:RltdPties>
            <n:RmtInf><n:Ustrd>货款 INV-2026-0451</n:Ustrd></n:RmtInf>
          </n:TxDtls>
        </n:NtryDtls>
      </n:Ntry>
    </n:Ntfctn>
  </n:BkToCstmrDbtCdtNtfctn>
</n:Document>
"#;

#[test]
fn a_prefixed_camt054_credit_notification_parses_to_the_model() {
    let parsed = camt054::parse(CAMT054_PREFIXED.as_bytes()).unwrap();
    let expected = BankToCustomerDebitCreditNotification {
        group_header: GroupHeader {
            message_id: "NTF-0007".to_owned(),
            created_at: "2026-11-28T09:31:07Z".to_owned(),
            pagination: None,
        },
        notifications: vec![Statement {
            header: StatementHeader {
                id: "NTF-0007-1".to_owned(),
                electronic_sequence_number: None,
                created_at: Some("2026-11-28T09:31:07Z".to_owned()),
                account: AccountIdentification::Other("755912345678901".to_owned()),
                currency: Some(Currency::CNY),
                balances: Vec::new(),
            },
            entries: vec![Entry {
                reference: None,
                amount: Money::from_minor(8_800_000, Currency::CNY),
                indicator: CreditDebit::Credit,
                status: EntryStatus::Booked,
                booking_date: Some(day("2026-11-28")),
                value_date: Some(day("2026-11-28")),
                account_servicer_reference: Some("CMB20261128000123".to_owned()),
                bank_transaction_code: Some("RCDT".to_owned()),
                transactions: vec![TransactionDetails {
                    end_to_end_id: Some("INV-2026-0451".to_owned()),
                    debtor: Party {
                        name: Some("北京某某科技有限公司".to_owned()),
                        address_lines: Vec::new(),
                    },
                    creditor: Party::default(),
                    remittance: vec!["货款 INV-2026-0451".to_owned()],
                }],
            }],
        }],
    };
    assert_eq!(parsed, expected);
}

#[test]
fn each_reader_refuses_the_other_message_with_the_path() {
    let error = camt054::parse(CAMT052_PREFIXED.as_bytes()).unwrap_err();
    assert!(
        matches!(&error, ParseError::Structure { path, .. } if path == "BkToCstmrAcctRpt"),
        "{error}"
    );
    let error = camt052::parse(CAMT054_PREFIXED.as_bytes()).unwrap_err();
    assert!(
        matches!(&error, ParseError::Structure { path, .. } if path == "BkToCstmrDbtCdtNtfctn"),
        "{error}"
    );
}

#[test]
fn a_bad_pending_entry_status_names_the_element_path() {
    let damaged = CAMT052_PREFIXED.replace("<c52:Cd>PDNG</c52:Cd>", "<c52:Cd>PEND</c52:Cd>");
    let error = camt052::parse(damaged.as_bytes()).unwrap_err();
    assert_eq!(
        error.path(),
        Some("BkToCstmrAcctRpt/Rpt/Ntry/Sts/Cd"),
        "{error}"
    );
}

#[test]
fn a_notification_with_balances_is_refused_when_rendered() {
    let mut message = camt054::parse(CAMT054_PREFIXED.as_bytes()).unwrap();
    message.notifications[0].header.balances.push(Balance {
        kind: BalanceType::ClosingBooked,
        amount: Money::from_minor(1, Currency::CNY),
        indicator: CreditDebit::Credit,
        date: day("2026-11-28"),
    });
    let error = camt054::render(&message).unwrap_err();
    assert!(
        matches!(&error, RenderError::InvalidValue { path, .. } if path == "BkToCstmrDbtCdtNtfctn/Ntfctn[1]/Bal"),
        "{error}"
    );
}
