//! pain.001.001.03 next to pain.001.001.09 in one model: every message the
//! model can hold survives render→parse in `.03`, a bank's `.03` document
//! with prefixes parses, the version comes from the namespace, and the
//! constructs one version has and the other lacks are handled as the
//! module documentation says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{Bic, BusinessDate, Currency, Iban, Money};
use formats::iso20022::pain001::{
    self, CreditTransfer, CustomerCreditTransferInitiation, PaymentInformation, Version,
};
use formats::iso20022::{AccountIdentification, ParseError, Party, RenderError};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// fixtures
// ---------------------------------------------------------------------------

/// A `.03` document as an older bank's test kit writes it: a prefix, the
/// plain `ReqdExctnDt`, `FinInstnId/BIC`, a structured postal address part
/// we do not model, and elements we skip.
const PREFIXED_V03: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<!-- from an older bank's test kit -->
<p:Document xmlns:p="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <p:CstmrCdtTrfInitn>
    <p:GrpHdr>
      <p:MsgId>OLD-20261128-1</p:MsgId>
      <p:CreDtTm>2026-11-28T09:00:00</p:CreDtTm>
      <p:NbOfTxs>2</p:NbOfTxs>
      <p:CtrlSum>250.75</p:CtrlSum>
      <p:InitgPty><p:Nm>Alte Firma AG</p:Nm></p:InitgPty>
    </p:GrpHdr>
    <p:PmtInf>
      <p:PmtInfId>PMT-OLD-1</p:PmtInfId>
      <p:PmtMtd>TRF</p:PmtMtd>
      <p:BtchBookg>true</p:BtchBookg>
      <p:PmtTpInf><p:SvcLvl><p:Cd>SEPA</p:Cd></p:SvcLvl></p:PmtTpInf>
      <p:ReqdExctnDt> 2026-11-30 </p:ReqdExctnDt>
      <p:Dbtr>
        <p:Nm>Alte Firma AG</p:Nm>
        <p:PstlAdr><p:Ctry>DE</p:Ctry><p:AdrLine>Hauptstraße 1</p:AdrLine><p:AdrLine>10115 Berlin</p:AdrLine></p:PstlAdr>
      </p:Dbtr>
      <p:DbtrAcct><p:Id><p:IBAN>DE89370400440532013000</p:IBAN></p:Id><p:Ccy>EUR</p:Ccy></p:DbtrAcct>
      <p:DbtrAgt><p:FinInstnId><p:BIC>COBADEFFXXX</p:BIC></p:FinInstnId></p:DbtrAgt>
      <p:ChrgBr>SLEV</p:ChrgBr>
      <p:CdtTrfTxInf>
        <p:PmtId><p:EndToEndId>E2E-OLD-1</p:EndToEndId></p:PmtId>
        <p:Amt><p:InstdAmt Ccy="EUR">200.00</p:InstdAmt></p:Amt>
        <p:CdtrAgt><p:FinInstnId><p:BIC>BNPAFRPP</p:BIC></p:FinInstnId></p:CdtrAgt>
        <p:Cdtr><p:Nm>Zoë Ångström</p:Nm></p:Cdtr>
        <p:CdtrAcct><p:Id><p:IBAN>FR1420041010050500013M02606</p:IBAN></p:Id></p:CdtrAcct>
        <p:RmtInf><p:Ustrd>Facture &lt;2026&gt;</p:Ustrd></p:RmtInf>
      </p:CdtTrfTxInf>
      <p:CdtTrfTxInf>
        <p:PmtId><p:InstrId>I-2</p:InstrId><p:EndToEndId>E2E-OLD-2</p:EndToEndId></p:PmtId>
        <p:Amt><p:InstdAmt Ccy="EUR">50.75</p:InstdAmt></p:Amt>
        <p:Cdtr><p:Nm>Jean Dupont</p:Nm></p:Cdtr>
        <p:CdtrAcct><p:Id><p:Othr><p:Id>12-3456</p:Id></p:Othr></p:Id></p:CdtrAcct>
      </p:CdtTrfTxInf>
    </p:PmtInf>
  </p:CstmrCdtTrfInitn>
</p:Document>
"#;

fn money(text: &str, code: &str) -> Money {
    Money::parse(text, Currency::from_code(code).unwrap()).unwrap()
}

fn initiation() -> CustomerCreditTransferInitiation {
    CustomerCreditTransferInitiation {
        message_id: "MSG-0003".to_owned(),
        created_at: "2026-11-28T10:15:00+08:00".to_owned(),
        initiating_party: Party {
            name: Some("深圳某某科技有限公司".to_owned()),
            address_lines: Vec::new(),
        },
        payments: vec![PaymentInformation {
            id: "PMT-3".to_owned(),
            batch_booking: None,
            category_purpose: None,
            requested_execution_date: BusinessDate::from_ymd(2026, 11, 30).unwrap(),
            debtor: Party {
                name: Some("深圳某某科技有限公司".to_owned()),
                address_lines: vec!["深南大道 1 号".to_owned()],
            },
            debtor_account: AccountIdentification::Other("755912345678901".to_owned()),
            debtor_agent: Bic::parse("CMBCCNBS").unwrap(),
            transactions: vec![CreditTransfer {
                instruction_id: Some("I-1".to_owned()),
                end_to_end_id: "E2E-1".to_owned(),
                amount: money("12.50", "EUR"),
                creditor_agent: Some(Bic::parse("COBADEFFXXX").unwrap()),
                creditor: Party {
                    name: Some("Müller & Söhne GmbH".to_owned()),
                    address_lines: vec!["Hauptstraße 1".to_owned()],
                },
                creditor_account: AccountIdentification::Iban(
                    Iban::parse("DE89 3704 0044 0532 0130 00").unwrap(),
                ),
                remittance: vec!["Rechnung 4711 <Q3>".to_owned()],
            }],
        }],
    }
}

fn expect_parse_error(xml: &str) -> ParseError {
    pain001::parse_any(xml.as_bytes()).expect_err("the document must be refused")
}

// ---------------------------------------------------------------------------
// rendering
// ---------------------------------------------------------------------------

#[test]
fn v03_render_writes_the_03_namespace_plain_date_and_bic() {
    let xml =
        String::from_utf8(pain001::render_version(&initiation(), Version::V03).unwrap()).unwrap();
    assert!(xml.contains("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.03\">"));
    assert!(
        xml.contains("<ReqdExctnDt>2026-11-30</ReqdExctnDt>"),
        "{xml}"
    );
    assert!(!xml.contains("<Dt>"), "{xml}");
    assert!(xml.contains("<BIC>CMBCCNBS</BIC>"), "{xml}");
    assert!(xml.contains("<BIC>COBADEFFXXX</BIC>"), "{xml}");
    assert!(!xml.contains("BICFI"), "{xml}");
    assert!(xml.contains("<NbOfTxs>1</NbOfTxs>"));
    assert!(xml.contains("<CtrlSum>12.50</CtrlSum>"));
    assert_eq!(
        pain001::parse_any(xml.as_bytes()).unwrap(),
        (Version::V03, initiation())
    );
}

#[test]
fn render_is_render_version_09() {
    let message = initiation();
    assert_eq!(
        pain001::render(&message).unwrap(),
        pain001::render_version(&message, Version::V09).unwrap()
    );
    let xml = String::from_utf8(pain001::render(&message).unwrap()).unwrap();
    assert!(xml.contains("<Dt>2026-11-30</Dt>"));
    assert!(xml.contains("<BICFI>CMBCCNBS</BICFI>"));
}

#[test]
fn v03_render_refuses_a_bic_outside_the_03_pattern_naming_the_path() {
    // Location codes starting with 0 or 1, or ending with O, are valid
    // BICFIDec2014Identifier (.09) but not BICIdentifier (.03).
    for bad in ["ABCDDE0A", "ABCDDE1AXXX", "ABCDDEFO"] {
        let mut message = initiation();
        message.payments[0].debtor_agent = Bic::parse(bad).unwrap();
        let error = pain001::render_version(&message, Version::V03).unwrap_err();
        let RenderError::InvalidValue { path, .. } = &error else {
            panic!("{bad}: {error}");
        };
        assert_eq!(path, "CstmrCdtTrfInitn/PmtInf[1]/DbtrAgt/FinInstnId/BIC");
        assert!(
            pain001::render_version(&message, Version::V09).is_ok(),
            "{bad} is a valid .09 BICFI"
        );
    }
    let mut message = initiation();
    message.payments[0].transactions[0].creditor_agent = Some(Bic::parse("ABCDDE1A").unwrap());
    let error = pain001::render_version(&message, Version::V03).unwrap_err();
    assert!(
        matches!(&error, RenderError::InvalidValue { path, .. }
            if path == "CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[1]/CdtrAgt/FinInstnId/BIC"),
        "{error}"
    );
}

#[test]
fn v03_render_keeps_the_iso_length_checks() {
    let mut message = initiation();
    message.payments[0].id = "x".repeat(36);
    let error = pain001::render_version(&message, Version::V03).unwrap_err();
    assert_eq!(
        error,
        RenderError::TooLong {
            path: "CstmrCdtTrfInitn/PmtInf[1]/PmtInfId".to_owned(),
            chars: 36,
            max_chars: 35,
        }
    );
}

/// The model holds a date only: `.09` `ReqdExctnDt/DtTm` is read as the date
/// written in it, and rendering that message as `.03` writes the plain date.
#[test]
fn v09_requested_execution_date_time_rendered_as_v03_becomes_its_date() {
    let v09 = String::from_utf8(pain001::render(&initiation()).unwrap())
        .unwrap()
        .replace(
            "<Dt>2026-11-30</Dt>",
            "<DtTm>2026-11-30T23:30:00-05:00</DtTm>",
        );
    let (version, message) = pain001::parse_any(v09.as_bytes()).unwrap();
    assert_eq!(version, Version::V09);
    assert_eq!(
        message.payments[0].requested_execution_date,
        BusinessDate::from_ymd(2026, 11, 30).unwrap(),
        "the sender's local date, not converted to UTC"
    );
    let v03 = String::from_utf8(pain001::render_version(&message, Version::V03).unwrap()).unwrap();
    assert!(
        v03.contains("<ReqdExctnDt>2026-11-30</ReqdExctnDt>"),
        "{v03}"
    );
    assert!(!v03.contains("<DtTm>"), "{v03}");
    assert_eq!(
        pain001::parse_any(v03.as_bytes()).unwrap(),
        (Version::V03, message)
    );
}

// ---------------------------------------------------------------------------
// parsing
// ---------------------------------------------------------------------------

#[test]
fn v03_with_a_prefix_and_elements_we_skip_parses() {
    let (version, message) = pain001::parse_any(PREFIXED_V03.as_bytes()).unwrap();
    assert_eq!(version, Version::V03);
    assert_eq!(message.message_id, "OLD-20261128-1");
    assert_eq!(message.created_at, "2026-11-28T09:00:00");
    let payment = &message.payments[0];
    assert_eq!(
        payment.requested_execution_date,
        BusinessDate::from_ymd(2026, 11, 30).unwrap()
    );
    assert_eq!(payment.debtor_agent.as_str(), "COBADEFFXXX");
    assert_eq!(payment.batch_booking, Some(true));
    // A `PmtTpInf` with a service level only has no category purpose.
    assert_eq!(payment.category_purpose, None);
    assert_eq!(
        payment.debtor.address_lines,
        vec!["Hauptstraße 1".to_owned(), "10115 Berlin".to_owned()]
    );
    let [first, second] = payment.transactions.as_slice() else {
        panic!("two transactions expected");
    };
    assert_eq!(first.amount, money("200.00", "EUR"));
    assert_eq!(
        first.creditor_agent.as_ref().map(Bic::as_str),
        Some("BNPAFRPP")
    );
    assert_eq!(first.remittance, vec!["Facture <2026>".to_owned()]);
    assert_eq!(first.creditor.name.as_deref(), Some("Zoë Ångström"));
    assert_eq!(second.creditor_agent, None);
    assert_eq!(second.instruction_id.as_deref(), Some("I-2"));
    assert_eq!(
        second.creditor_account,
        AccountIdentification::Other("12-3456".to_owned())
    );
    // `parse` keeps its signature and reads .03 too.
    assert_eq!(pain001::parse(PREFIXED_V03.as_bytes()).unwrap(), message);
}

#[test]
fn the_version_is_told_from_the_namespace() {
    let v09 = PREFIXED_V03.replace("pain.001.001.03", "pain.001.001.09");
    // The .03 shapes under the .09 namespace are not .09: `ReqdExctnDt/Dt`
    // is required there.
    let error = expect_parse_error(&v09);
    assert_eq!(error.path(), Some("CstmrCdtTrfInitn/PmtInf/ReqdExctnDt/Dt"));
    let v09 = v09
        .replace(
            "<p:ReqdExctnDt> 2026-11-30 </p:ReqdExctnDt>",
            "<p:ReqdExctnDt><p:Dt>2026-11-30</p:Dt></p:ReqdExctnDt>",
        )
        .replace("<p:BIC>", "<p:BICFI>")
        .replace("</p:BIC>", "</p:BICFI>");
    let (version, from_v09) = pain001::parse_any(v09.as_bytes()).unwrap();
    assert_eq!(version, Version::V09);
    let (version, from_v03) = pain001::parse_any(PREFIXED_V03.as_bytes()).unwrap();
    assert_eq!(version, Version::V03);
    assert_eq!(from_v09, from_v03);

    // The default namespace works as a prefix does.
    let default_ns = PREFIXED_V03
        .replace("<p:", "<")
        .replace("</p:", "</")
        .replace("xmlns:p=", "xmlns=");
    assert_eq!(
        pain001::parse_any(default_ns.as_bytes()).unwrap(),
        (Version::V03, from_v03)
    );

    // No namespace at all reads as .09, as before .03 was supported.
    let bare = String::from_utf8(pain001::render(&initiation()).unwrap())
        .unwrap()
        .replace(
            " xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\"",
            "",
        );
    assert_eq!(
        pain001::parse_any(bare.as_bytes()).unwrap(),
        (Version::V09, initiation())
    );

    assert_eq!(
        Version::from_namespace("urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"),
        Some(Version::V03)
    );
    assert_eq!(Version::V09.namespace(), pain001::NAMESPACE);
}

#[test]
fn other_namespaces_and_undeclared_prefixes_are_refused() {
    for xml in [
        PREFIXED_V03.replace("pain.001.001.03", "pain.001.001.05"),
        PREFIXED_V03.replace("pain.001.001.03", "camt.053.001.08"),
        PREFIXED_V03.replace("xmlns:p=", "xmlns:q="),
    ] {
        let error = expect_parse_error(&xml);
        assert!(matches!(error, ParseError::Structure { .. }), "{error}");
        assert_eq!(error.path(), Some("Document"));
        assert!(pain001::parse(xml.as_bytes()).is_err());
    }
}

#[test]
fn v03_reading_accepts_the_09_forms() {
    let mixed = PREFIXED_V03
        .replace(
            "<p:ReqdExctnDt> 2026-11-30 </p:ReqdExctnDt>",
            "<p:ReqdExctnDt><p:DtTm>2026-11-30T08:00:00+01:00</p:DtTm></p:ReqdExctnDt>",
        )
        .replace("<p:BIC>BNPAFRPP</p:BIC>", "<p:BICFI>BNPAFRPP</p:BICFI>");
    assert_eq!(
        pain001::parse_any(mixed.as_bytes()).unwrap(),
        pain001::parse_any(PREFIXED_V03.as_bytes()).unwrap()
    );
}

#[test]
fn v03_errors_name_their_path() {
    let xml = PREFIXED_V03.replace("> 2026-11-30 <", ">2026-11-31<");
    let error = expect_parse_error(&xml);
    assert!(matches!(error, ParseError::Invalid { .. }), "{error}");
    assert_eq!(error.path(), Some("CstmrCdtTrfInitn/PmtInf/ReqdExctnDt"));

    let xml = PREFIXED_V03.replace("<p:BIC>COBADEFFXXX</p:BIC>", "<p:BIC>COBA-DEFF</p:BIC>");
    assert_eq!(
        expect_parse_error(&xml).path(),
        Some("CstmrCdtTrfInitn/PmtInf/DbtrAgt/FinInstnId/BIC")
    );

    let xml = PREFIXED_V03.replace("<p:BIC>COBADEFFXXX</p:BIC>", "");
    let error = expect_parse_error(&xml);
    assert!(matches!(error, ParseError::Missing { .. }), "{error}");
    assert_eq!(
        error.path(),
        Some("CstmrCdtTrfInitn/PmtInf/DbtrAgt/FinInstnId/BIC")
    );

    let xml = PREFIXED_V03.replace("<p:NbOfTxs>2</p:NbOfTxs>", "<p:NbOfTxs>3</p:NbOfTxs>");
    let error = expect_parse_error(&xml);
    assert!(matches!(error, ParseError::Mismatch { .. }), "{error}");
    assert_eq!(error.path(), Some("CstmrCdtTrfInitn/GrpHdr/NbOfTxs"));
}

// ---------------------------------------------------------------------------
// properties (generators after iso20022_props.rs)
// ---------------------------------------------------------------------------

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

fn currency() -> impl Strategy<Value = Currency> {
    prop::sample::select(vec!["JPY", "CNY", "EUR", "USD", "BHD", "KWD", "CLF"])
        .prop_map(|code| Currency::from_code(code).unwrap())
}

fn amount() -> impl Strategy<Value = Money> {
    (currency(), 1i64..1_000_000_000_000)
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
        prop::sample::select(vec!["", "Z", "+08:00", "-05:30", ".123"]),
    )
        .prop_map(|(d, h, m, s, zone)| format!("{d}T{h:02}:{m:02}:{s:02}{zone}"))
}

/// A BIC the `.03` `BICIdentifier` pattern allows.
fn bic() -> impl Strategy<Value = Bic> {
    "[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?".prop_map(|s| Bic::parse(&s).unwrap())
}

fn account() -> impl Strategy<Value = AccountIdentification> {
    prop_oneof![
        "[0-9]{18}"
            .prop_map(|bban| AccountIdentification::Iban(Iban::from_parts("DE", &bban).unwrap())),
        text(34).prop_map(AccountIdentification::Other),
    ]
}

fn party() -> impl Strategy<Value = Party> {
    (
        prop::option::of(text(140)),
        prop::collection::vec(text(70), 0..=7),
    )
        .prop_map(|(name, address_lines)| Party {
            name,
            address_lines,
        })
}

fn transfer() -> impl Strategy<Value = CreditTransfer> {
    (
        prop::option::of(text(35)),
        text(35),
        amount(),
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
            )| CreditTransfer {
                instruction_id,
                end_to_end_id,
                amount,
                creditor_agent,
                creditor,
                creditor_account,
                remittance,
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

fn initiation_strategy() -> impl Strategy<Value = CustomerCreditTransferInitiation> {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn v03_survives_render_then_parse(message in initiation_strategy()) {
        let bytes = pain001::render_version(&message, Version::V03).unwrap();
        let (version, parsed) = pain001::parse_any(&bytes)
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)));
        prop_assert_eq!(version, Version::V03);
        prop_assert_eq!(parsed, message);
    }

    #[test]
    fn v03_and_v09_renderings_parse_to_the_same_message(message in initiation_strategy()) {
        let v03 = pain001::parse(&pain001::render_version(&message, Version::V03).unwrap()).unwrap();
        let v09 = pain001::parse(&pain001::render(&message).unwrap()).unwrap();
        prop_assert_eq!(v03, v09);
    }
}
