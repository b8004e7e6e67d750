//! Properties of the ISO 20022 codecs: every pain.001.001.09 and
//! camt.053.001.08 the model can hold survives render→parse unchanged (with
//! Chinese and accented text, markup characters and currencies of 0, 2, 3
//! and 4 decimals), and parsing never panics on arbitrary or damaged bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{Bic, BusinessDate, Currency, Iban, Money};
use formats::iso20022::camt053::{
    self, Balance, BalanceType, BankToCustomerStatement, CreditDebit, Entry, EntryStatus,
    GroupHeader, Pagination, Statement, StatementHeader, StatementItem, StatementReader,
    TransactionDetails,
};
use formats::iso20022::pain001::{
    self, CreditTransfer, CustomerCreditTransferInitiation, PaymentInformation,
};
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

fn payment() -> impl Strategy<Value = PaymentInformation> {
    (
        text(35),
        date(),
        party(),
        account(),
        bic(),
        prop::collection::vec(transfer(), 1..4),
    )
        .prop_map(
            |(id, requested_execution_date, debtor, debtor_account, debtor_agent, transactions)| {
                PaymentInformation {
                    id,
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

fn statement() -> impl Strategy<Value = Statement> {
    (
        text(35),
        prop::option::of(0u64..=camt053::MAX_SEQUENCE_NUMBER),
        prop::option::of(date_time()),
        account(),
        prop::option::of(currency()),
        prop::collection::vec(balance(), 0..4),
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
    (group_header(), prop::collection::vec(statement(), 1..3)).prop_map(
        |(group_header, statements)| BankToCustomerStatement {
            group_header,
            statements,
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

/// Streams everything, counting items, to exercise the reader to the end.
fn stream_all(bytes: &[u8]) -> Result<usize, formats::iso20022::ParseError> {
    let mut items = 0;
    for item in StatementReader::new(bytes, Limits::default()) {
        let _: StatementItem = item?;
        items += 1;
    }
    Ok(items)
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
