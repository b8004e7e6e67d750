//! pain.001 `BtchBookg` and `PmtTpInf/CtgyPurp/Cd`, what makes a batch a
//! payroll run: rendered where both schemas order them (after `PmtMtd`, and
//! after `CtrlSum` before `ReqdExctnDt`), read back from any prefix and next
//! to payment type parts we do not model, refused where they cannot be
//! carried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{Bic, BusinessDate, Currency, Iban, Money};
use formats::iso20022::pain001::{
    self, CreditTransfer, CustomerCreditTransferInitiation, PaymentInformation, Version,
};
use formats::iso20022::{AccountIdentification, ParseError, Party, RenderError};

fn transfer(reference: &str, amount: &str) -> CreditTransfer {
    CreditTransfer {
        instruction_id: Some(reference.to_owned()),
        end_to_end_id: reference.to_owned(),
        amount: Money::parse(amount, Currency::from_code("EUR").unwrap()).unwrap(),
        creditor_agent: None,
        creditor: Party {
            name: Some("Erika Mustermann".to_owned()),
            address_lines: Vec::new(),
        },
        creditor_account: AccountIdentification::Iban(
            Iban::parse("DE89370400440532013000").unwrap(),
        ),
        remittance: vec!["Gehalt November".to_owned()],
    }
}

fn payroll() -> CustomerCreditTransferInitiation {
    CustomerCreditTransferInitiation {
        message_id: "PAYROLL-2026-11".to_owned(),
        created_at: "2026-11-28T10:15:00+01:00".to_owned(),
        initiating_party: Party {
            name: Some("Beispiel GmbH".to_owned()),
            address_lines: Vec::new(),
        },
        payments: vec![PaymentInformation {
            id: "PAYROLL-2026-11".to_owned(),
            batch_booking: Some(true),
            category_purpose: Some("SALA".to_owned()),
            requested_execution_date: BusinessDate::from_ymd(2026, 11, 30).unwrap(),
            debtor: Party {
                name: Some("Beispiel GmbH".to_owned()),
                address_lines: Vec::new(),
            },
            debtor_account: AccountIdentification::Iban(
                Iban::parse("DE02120300000000202051").unwrap(),
            ),
            debtor_agent: Bic::parse("BYLADEM1001").unwrap(),
            transactions: vec![transfer("SAL-1", "2500.00"), transfer("SAL-2", "3100.50")],
        }],
    }
}

/// The element names of a rendered document in order, without the XML
/// declaration.
fn element_order(xml: &str) -> Vec<&str> {
    xml.split('<')
        .filter(|part| !part.starts_with('/') && !part.starts_with('?') && !part.is_empty())
        .filter_map(|part| part.split(['>', ' ']).next())
        .collect()
}

#[test]
fn payroll_flags_are_rendered_in_schema_order_in_both_versions() {
    for version in [Version::V09, Version::V03] {
        let bytes = pain001::render_version(&payroll(), version).unwrap();
        let xml = String::from_utf8(bytes.clone()).unwrap();
        let names = element_order(&xml);
        let start = names.iter().position(|n| *n == "PmtInf").unwrap();
        assert_eq!(
            names[start..start + 10],
            [
                "PmtInf",
                "PmtInfId",
                "PmtMtd",
                "BtchBookg",
                "NbOfTxs",
                "CtrlSum",
                "PmtTpInf",
                "CtgyPurp",
                "Cd",
                "ReqdExctnDt"
            ],
            "{version:?}\n{xml}"
        );
        assert!(xml.contains("<BtchBookg>true</BtchBookg>"), "{xml}");
        assert!(xml.contains("<Cd>SALA</Cd>"), "{xml}");
        let (read_version, parsed) = pain001::parse_any(&bytes).unwrap();
        assert_eq!(read_version, version);
        assert_eq!(parsed, payroll());
    }
}

#[test]
fn absent_flags_render_nothing_and_false_renders_false() {
    let mut message = payroll();
    message.payments[0].batch_booking = None;
    message.payments[0].category_purpose = None;
    let xml = String::from_utf8(pain001::render(&message).unwrap()).unwrap();
    assert!(!xml.contains("BtchBookg"), "{xml}");
    assert!(!xml.contains("PmtTpInf"), "{xml}");
    assert_eq!(pain001::parse(xml.as_bytes()).unwrap(), message);

    message.payments[0].batch_booking = Some(false);
    let xml = String::from_utf8(pain001::render(&message).unwrap()).unwrap();
    assert!(xml.contains("<BtchBookg>false</BtchBookg>"), "{xml}");
    assert_eq!(pain001::parse(xml.as_bytes()).unwrap(), message);
}

#[test]
fn a_category_purpose_that_is_no_code_is_refused_naming_its_path() {
    let mut message = payroll();
    message.payments[0].category_purpose = Some("SALARY".to_owned());
    match pain001::render(&message) {
        Err(RenderError::TooLong {
            path,
            chars,
            max_chars,
        }) => {
            assert_eq!(path, "CstmrCdtTrfInitn/PmtInf[1]/PmtTpInf/CtgyPurp/Cd");
            assert_eq!((chars, max_chars), (6, 4));
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    message.payments[0].category_purpose = Some(String::new());
    assert!(matches!(
        pain001::render_version(&message, Version::V03),
        Err(RenderError::Empty { path }) if path.ends_with("PmtInf[1]/PmtTpInf/CtgyPurp/Cd")
    ));
}

/// A bank's payroll file: prefixes, `xs:boolean`'s `1`, blanks around the
/// code, and payment type parts we do not model before `CtgyPurp`.
const PREFIXED_PAYROLL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<b:Document xmlns:b="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">
  <b:CstmrCdtTrfInitn>
    <b:GrpHdr>
      <b:MsgId>P-1</b:MsgId>
      <b:CreDtTm>2026-11-28T09:00:00</b:CreDtTm>
      <b:NbOfTxs>1</b:NbOfTxs>
      <b:InitgPty><b:Nm>Beispiel GmbH</b:Nm></b:InitgPty>
    </b:GrpHdr>
    <b:PmtInf>
      <b:PmtInfId>P-1</b:PmtInfId>
      <b:PmtMtd>TRF</b:PmtMtd>
      <b:BtchBookg> 1 </b:BtchBookg>
      <b:PmtTpInf>
        <b:InstrPrty>NORM</b:InstrPrty>
        <b:SvcLvl><b:Cd>SEPA</b:Cd></b:SvcLvl>
        <b:LclInstrm><b:Cd>INST</b:Cd></b:LclInstrm>
        <b:CtgyPurp><b:Cd> SALA </b:Cd></b:CtgyPurp>
      </b:PmtTpInf>
      <b:ReqdExctnDt><b:Dt>2026-11-30</b:Dt></b:ReqdExctnDt>
      <b:Dbtr><b:Nm>Beispiel GmbH</b:Nm></b:Dbtr>
      <b:DbtrAcct><b:Id><b:IBAN>DE02120300000000202051</b:IBAN></b:Id></b:DbtrAcct>
      <b:DbtrAgt><b:FinInstnId><b:BICFI>BYLADEM1001</b:BICFI></b:FinInstnId></b:DbtrAgt>
      <b:CdtTrfTxInf>
        <b:PmtId><b:EndToEndId>SAL-1</b:EndToEndId></b:PmtId>
        <b:PmtTpInf><b:CtgyPurp><b:Cd>PENS</b:Cd></b:CtgyPurp></b:PmtTpInf>
        <b:Amt><b:InstdAmt Ccy="EUR">2500.00</b:InstdAmt></b:Amt>
        <b:Cdtr><b:Nm>Erika Mustermann</b:Nm></b:Cdtr>
        <b:CdtrAcct><b:Id><b:IBAN>DE89370400440532013000</b:IBAN></b:Id></b:CdtrAcct>
      </b:CdtTrfTxInf>
    </b:PmtInf>
  </b:CstmrCdtTrfInitn>
</b:Document>
"#;

#[test]
fn a_banks_payroll_file_with_prefixes_and_unmodelled_payment_type_parses() {
    let message = pain001::parse(PREFIXED_PAYROLL.as_bytes()).unwrap();
    let payment = &message.payments[0];
    assert_eq!(payment.batch_booking, Some(true));
    // The block's own category purpose, not a transaction's.
    assert_eq!(payment.category_purpose.as_deref(), Some("SALA"));
}

#[test]
fn flags_are_tolerant_of_what_xs_boolean_and_optional_elements_allow() {
    let cases = [
        (
            "<b:BtchBookg> 1 </b:BtchBookg>",
            "<b:BtchBookg>0</b:BtchBookg>",
            Some(false),
        ),
        (
            "<b:BtchBookg> 1 </b:BtchBookg>",
            "<b:BtchBookg>false</b:BtchBookg>",
            Some(false),
        ),
        (
            "<b:BtchBookg> 1 </b:BtchBookg>",
            "<b:BtchBookg>true</b:BtchBookg>",
            Some(true),
        ),
        ("<b:BtchBookg> 1 </b:BtchBookg>", "<b:BtchBookg/>", None),
        ("<b:BtchBookg> 1 </b:BtchBookg>", "", None),
    ];
    for (from, to, expected) in cases {
        let xml = PREFIXED_PAYROLL.replace(from, to);
        let message = pain001::parse(xml.as_bytes()).unwrap();
        assert_eq!(message.payments[0].batch_booking, expected, "{to}");
    }
    for (from, to) in [
        ("<b:Cd> SALA </b:Cd>", "<b:Cd>  </b:Cd>"),
        ("<b:CtgyPurp><b:Cd> SALA </b:Cd></b:CtgyPurp>", ""),
        (
            "<b:CtgyPurp><b:Cd> SALA </b:Cd></b:CtgyPurp>",
            "<b:CtgyPurp><b:Prtry>PAYROLL</b:Prtry></b:CtgyPurp>",
        ),
    ] {
        let xml = PREFIXED_PAYROLL.replace(from, to);
        let message = pain001::parse(xml.as_bytes()).unwrap();
        assert_eq!(message.payments[0].category_purpose, None, "{to}");
    }
    // A bank's own longer code is read as written; only rendering checks it.
    let xml = PREFIXED_PAYROLL.replace("<b:Cd> SALA </b:Cd>", "<b:Cd>SALARY</b:Cd>");
    let message = pain001::parse(xml.as_bytes()).unwrap();
    assert_eq!(
        message.payments[0].category_purpose.as_deref(),
        Some("SALARY")
    );
}

#[test]
fn a_batch_booking_that_is_no_boolean_is_refused_naming_its_path() {
    let xml = PREFIXED_PAYROLL.replace(" 1 </b:BtchBookg>", "yes</b:BtchBookg>");
    match pain001::parse(xml.as_bytes()) {
        Err(ParseError::Invalid { path, problem }) => {
            assert_eq!(path, "CstmrCdtTrfInitn/PmtInf/BtchBookg");
            assert!(problem.contains("\"yes\""), "{problem}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}
