//! pain.002 in both versions: every report the model can hold survives
//! render→parse in `.03` and `.12` (Chinese and markup characters in
//! `AddtlInf` included), parsing never panics on arbitrary or damaged bytes,
//! prefixed bank documents of each version parse, rejections carry their
//! reason codes per transaction, and unknown status codes are kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use formats::iso20022::pain002::{
    self, CustomerPaymentStatusReport, DecimalNumber, OriginalGroupStatus, OriginalPaymentStatus,
    Reason, Status, StatusReason, TransactionStatus, Version,
};
use formats::iso20022::{ParseError, RenderError};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// strategies
// ---------------------------------------------------------------------------

const SAMPLE: &str = "账户不存在余额不足户名不符中国工商银行（）：，。éàü";

fn text_char() -> impl Strategy<Value = char> {
    let sample: Vec<char> = SAMPLE.chars().collect();
    prop_oneof![
        4 => prop::char::range(' ', '~'),
        2 => prop::sample::select(vec!['<', '>', '&', '\'', '"', ' ', '\t', '\n', '\r']),
        3 => prop::sample::select(sample),
        1 => prop::char::range('\u{4E00}', '\u{9FA5}'),
        1 => prop::sample::select(vec!['😀', '𠀀', '\u{FFFD}']),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(text_char(), 1..=max).prop_map(|chars| chars.into_iter().collect())
}

fn date_time() -> impl Strategy<Value = String> {
    (
        1990i32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        prop::sample::select(vec!["", "Z", "+08:00", "-05:30", ".123", ".5+08:00"]),
    )
        .prop_map(|(y, mo, d, h, mi, s, tail)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{tail}")
        })
}

fn code() -> impl Strategy<Value = String> {
    "[A-Z0-9]{1,4}"
}

fn group_status(version: Version) -> impl Strategy<Value = Status> {
    let known = prop::sample::select(vec![
        Status::Received,
        Status::AcceptedTechnicalValidation,
        Status::AcceptedCustomerProfile,
        Status::AcceptedSettlementInProcess,
        Status::AcceptedSettlementCompleted,
        Status::AcceptedWithChange,
        Status::Pending,
        Status::PartiallyAccepted,
        Status::Rejected,
    ]);
    let other = code().prop_map(|c| Status::from_code(&c));
    match version {
        Version::V03 => known.boxed(),
        Version::V12 => prop_oneof![3 => known, 1 => other].boxed(),
    }
}

fn transaction_status(version: Version) -> impl Strategy<Value = Status> {
    group_status(version).prop_map(move |status| match (version, status) {
        (Version::V03, Status::Received | Status::PartiallyAccepted) => Status::Rejected,
        (_, status) => status,
    })
}

fn reason() -> impl Strategy<Value = StatusReason> {
    (
        prop::option::of(prop_oneof![
            code().prop_map(Reason::Code),
            text(35).prop_map(Reason::Proprietary),
        ]),
        prop::collection::vec(text(105), 0..3),
    )
        .prop_map(|(reason, additional_info)| StatusReason {
            reason,
            additional_info,
        })
}

fn reasons() -> impl Strategy<Value = Vec<StatusReason>> {
    prop::collection::vec(reason(), 0..3)
}

fn transaction(version: Version) -> impl Strategy<Value = TransactionStatus> {
    (
        prop::option::of(text(35)),
        prop::option::of(text(35)),
        prop::option::of(transaction_status(version)),
        reasons(),
        prop::option::of(date_time()),
    )
        .prop_map(
            |(original_instruction_id, original_end_to_end_id, status, reasons, accepted_at)| {
                TransactionStatus {
                    original_instruction_id,
                    original_end_to_end_id,
                    status,
                    reasons,
                    accepted_at,
                }
            },
        )
}

fn payment(version: Version) -> impl Strategy<Value = OriginalPaymentStatus> {
    (
        text(35),
        prop::option::of(group_status(version)),
        reasons(),
        prop::collection::vec(transaction(version), 0..4),
    )
        .prop_map(
            |(original_payment_information_id, status, reasons, transactions)| {
                OriginalPaymentStatus {
                    original_payment_information_id,
                    status,
                    reasons,
                    transactions,
                }
            },
        )
}

fn control_sum() -> impl Strategy<Value = DecimalNumber> {
    (0u64..1_000_000_000_000_000_000, 0u32..=17)
        .prop_map(|(mantissa, scale)| DecimalNumber::from_parts(mantissa, scale).unwrap())
}

fn report(version: Version) -> impl Strategy<Value = CustomerPaymentStatusReport> {
    let group = (
        text(35),
        text(35),
        prop::option::of(0u64..1_000_000_000_000_000),
        prop::option::of(control_sum()),
        prop::option::of(group_status(version)),
        reasons(),
    )
        .prop_map(
            |(
                original_message_id,
                original_message_name_id,
                original_count,
                original_control_sum,
                status,
                reasons,
            )| OriginalGroupStatus {
                original_message_id,
                original_message_name_id,
                original_count,
                original_control_sum,
                status,
                reasons,
            },
        );
    (
        text(35),
        date_time(),
        group,
        prop::collection::vec(payment(version), 0..3),
    )
        .prop_map(
            |(message_id, created_at, original_group, original_payments)| {
                CustomerPaymentStatusReport {
                    message_id,
                    created_at,
                    original_group,
                    original_payments,
                }
            },
        )
}

fn any_version() -> impl Strategy<Value = Version> {
    prop::sample::select(vec![Version::V03, Version::V12])
}

fn versioned_report() -> impl Strategy<Value = (Version, CustomerPaymentStatusReport)> {
    any_version().prop_flat_map(|version| (Just(version), report(version)))
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
                "<TxInfAndSts>",
                "</OrgnlPmtInfAndSts>",
                "<StsRsnInf><Rsn>",
                "<![CDATA[",
                "<!DOCTYPE x>",
                "xmlns:p=\"x\"",
                "p:",
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pain002_survives_render_then_parse_in_both_versions(
        (version, report) in versioned_report(),
    ) {
        let bytes = pain002::render(&report, version).unwrap();
        let parsed = pain002::parse(&bytes)
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)));
        prop_assert_eq!(parsed, (version, report));
    }

    #[test]
    fn pain002_parse_never_panics_on_damaged_documents(
        (version, report) in versioned_report(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let mut bytes = pain002::render(&report, version).unwrap();
        for d in &damages {
            apply(&mut bytes, d);
        }
        let _ = pain002::parse(&bytes);
    }

    #[test]
    fn pain002_parse_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = pain002::parse(&bytes);
    }

    #[test]
    fn pain002_parse_never_panics_on_arbitrary_markup(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.002.001.03\">",
                "<p:Document xmlns:p=\"urn:iso:std:iso:20022:tech:xsd:pain.002.001.12\">",
                "</Document>", "</p:Document>", "<CstmrPmtStsRpt>", "</CstmrPmtStsRpt>",
                "<GrpHdr>", "</GrpHdr>", "<OrgnlGrpInfAndSts>", "</OrgnlGrpInfAndSts>",
                "<OrgnlPmtInfAndSts>", "</OrgnlPmtInfAndSts>", "<TxInfAndSts>",
                "</TxInfAndSts>", "<TxSts>", "</TxSts>", "<StsRsnInf>", "</StsRsnInf>",
                "<Rsn>", "</Rsn>", "<Cd>", "</Cd>", "<OrgnlCtrlSum>", "</OrgnlCtrlSum>",
                "RJCT", "AC01", "1.00", "-1", "99999999999999999999999", " ", "&amp;",
                "&bad;", "<a:b>", "<p:TxSts>",
            ]),
            0..40,
        ),
    ) {
        let bytes = parts.concat().into_bytes();
        let _ = pain002::parse(&bytes);
    }
}

// ---------------------------------------------------------------------------
// fixtures
// ---------------------------------------------------------------------------

/// A `.03` rejection as Chinese banks send it: a prefix on every element,
/// elements we do not model (`InitgPty`, `OrgnlCreDtTm`, `NbOfTxsPerSts`,
/// `StsId`, `OrgnlTxRef`), whitespace around codes, and each transaction
/// rejected for its own reason.
const PREFIXED_V03: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ns2:Document xmlns:ns2="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <ns2:CstmrPmtStsRpt>
    <ns2:GrpHdr>
      <ns2:MsgId>ICBC-STS-20261128-01</ns2:MsgId>
      <ns2:CreDtTm>2026-11-28T10:20:00+08:00</ns2:CreDtTm>
      <ns2:InitgPty><ns2:Nm>中国工商银行</ns2:Nm></ns2:InitgPty>
    </ns2:GrpHdr>
    <ns2:OrgnlGrpInfAndSts>
      <ns2:OrgnlMsgId>ABC-20261128-1</ns2:OrgnlMsgId>
      <ns2:OrgnlMsgNmId>pain.001.001.09</ns2:OrgnlMsgNmId>
      <ns2:OrgnlCreDtTm>2026-11-28T10:15:00+08:00</ns2:OrgnlCreDtTm>
      <ns2:OrgnlNbOfTxs>3</ns2:OrgnlNbOfTxs>
      <ns2:OrgnlCtrlSum>1200.50</ns2:OrgnlCtrlSum>
      <ns2:GrpSts> PART </ns2:GrpSts>
      <ns2:NbOfTxsPerSts><ns2:DtldNbOfTxs>2</ns2:DtldNbOfTxs><ns2:DtldSts>RJCT</ns2:DtldSts></ns2:NbOfTxsPerSts>
    </ns2:OrgnlGrpInfAndSts>
    <ns2:OrgnlPmtInfAndSts>
      <ns2:OrgnlPmtInfId>PMT-1</ns2:OrgnlPmtInfId>
      <ns2:PmtInfSts>PART</ns2:PmtInfSts>
      <ns2:TxInfAndSts>
        <ns2:StsId>S-1</ns2:StsId>
        <ns2:OrgnlInstrId>I-1</ns2:OrgnlInstrId>
        <ns2:OrgnlEndToEndId>E2E-1</ns2:OrgnlEndToEndId>
        <ns2:TxSts>RJCT</ns2:TxSts>
        <ns2:StsRsnInf>
          <ns2:Orgtr><ns2:Nm>ICBC</ns2:Nm></ns2:Orgtr>
          <ns2:Rsn><ns2:Cd> AC01 </ns2:Cd></ns2:Rsn>
          <ns2:AddtlInf>收款账号不存在</ns2:AddtlInf>
          <ns2:AddtlInf>请核对后重新提交</ns2:AddtlInf>
        </ns2:StsRsnInf>
        <ns2:OrgnlTxRef><ns2:Amt><ns2:InstdAmt Ccy="CNY">200.50</ns2:InstdAmt></ns2:Amt></ns2:OrgnlTxRef>
      </ns2:TxInfAndSts>
      <ns2:TxInfAndSts>
        <ns2:OrgnlEndToEndId>E2E-2</ns2:OrgnlEndToEndId>
        <ns2:TxSts>RJCT</ns2:TxSts>
        <ns2:StsRsnInf><ns2:Rsn><ns2:Cd>AM04</ns2:Cd></ns2:Rsn><ns2:AddtlInf>余额不足</ns2:AddtlInf></ns2:StsRsnInf>
        <ns2:StsRsnInf><ns2:Rsn><ns2:Prtry>ICBC-E1093</ns2:Prtry></ns2:Rsn></ns2:StsRsnInf>
      </ns2:TxInfAndSts>
      <ns2:TxInfAndSts>
        <ns2:OrgnlEndToEndId>E2E-3</ns2:OrgnlEndToEndId>
        <ns2:TxSts>ACSC</ns2:TxSts>
        <ns2:AccptncDtTm>2026-11-28T10:19:00+08:00</ns2:AccptncDtTm>
      </ns2:TxInfAndSts>
    </ns2:OrgnlPmtInfAndSts>
  </ns2:CstmrPmtStsRpt>
</ns2:Document>
"#;

/// A `.12` report with its own prefix, `.12`-only elements (`OrgnlUETR`,
/// `SplmtryData`) and status codes from the external lists that the model
/// does not name.
const PREFIXED_V12: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- produced by the bank's gateway -->
<p:Document xmlns:p="urn:iso:std:iso:20022:tech:xsd:pain.002.001.12">
  <p:CstmrPmtStsRpt>
    <p:GrpHdr>
      <p:MsgId>CMB-STS-7</p:MsgId>
      <p:CreDtTm>2026-11-28T11:00:00Z</p:CreDtTm>
    </p:GrpHdr>
    <p:OrgnlGrpInfAndSts>
      <p:OrgnlMsgId>ABC-20261128-2</p:OrgnlMsgId>
      <p:OrgnlMsgNmId>pain.001.001.09</p:OrgnlMsgNmId>
      <p:GrpSts>ACFC</p:GrpSts>
      <p:StsRsnInf><p:AddtlInf>已受理，等待资金确认</p:AddtlInf></p:StsRsnInf>
    </p:OrgnlGrpInfAndSts>
    <p:OrgnlPmtInfAndSts>
      <p:OrgnlPmtInfId>PMT-9</p:OrgnlPmtInfId>
      <p:TxInfAndSts>
        <p:OrgnlInstrId>I-9</p:OrgnlInstrId>
        <p:OrgnlEndToEndId>E2E-9</p:OrgnlEndToEndId>
        <p:OrgnlUETR>a8a4b4f6-6c1e-4f3a-9d5e-0c1f2e3d4b5a</p:OrgnlUETR>
        <p:TxSts>ACCC</p:TxSts>
        <p:AccptncDtTm>2026-11-28T10:59:00.250+08:00</p:AccptncDtTm>
      </p:TxInfAndSts>
    </p:OrgnlPmtInfAndSts>
    <p:SplmtryData><p:Envlp><x:Any xmlns:x="urn:bank">1</x:Any></p:Envlp></p:SplmtryData>
  </p:CstmrPmtStsRpt>
</p:Document>
"#;

fn code_reason(code: &str, additional_info: &[&str]) -> StatusReason {
    StatusReason {
        reason: Some(Reason::Code(code.to_owned())),
        additional_info: additional_info.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn pain002_v03_with_prefixes_and_unmodelled_elements_parses() {
    let (version, report) = pain002::parse(PREFIXED_V03.as_bytes()).unwrap();
    assert_eq!(version, Version::V03);
    assert_eq!(report.message_id, "ICBC-STS-20261128-01");
    assert_eq!(report.created_at, "2026-11-28T10:20:00+08:00");
    let group = &report.original_group;
    assert_eq!(group.original_message_id, "ABC-20261128-1");
    assert_eq!(group.original_message_name_id, "pain.001.001.09");
    assert_eq!(group.original_count, Some(3));
    assert_eq!(group.original_control_sum, DecimalNumber::parse("1200.5"));
    assert_eq!(group.status, Some(Status::PartiallyAccepted));
    assert!(group.reasons.is_empty());
    let [payment] = report.original_payments.as_slice() else {
        panic!("one payment information block expected");
    };
    assert_eq!(payment.original_payment_information_id, "PMT-1");
    assert_eq!(payment.status, Some(Status::PartiallyAccepted));
    assert_eq!(payment.transactions.len(), 3);
}

#[test]
fn pain002_rejections_carry_their_reason_codes_per_transaction() {
    let (_, report) = pain002::parse(PREFIXED_V03.as_bytes()).unwrap();
    let [first, second, third] = report.original_payments[0].transactions.as_slice() else {
        panic!("three transactions expected");
    };
    assert_eq!(
        first,
        &TransactionStatus {
            original_instruction_id: Some("I-1".to_owned()),
            original_end_to_end_id: Some("E2E-1".to_owned()),
            status: Some(Status::Rejected),
            reasons: vec![code_reason("AC01", &["收款账号不存在", "请核对后重新提交"])],
            accepted_at: None,
        }
    );
    assert_eq!(second.status, Some(Status::Rejected));
    assert_eq!(
        second.reasons,
        vec![
            code_reason("AM04", &["余额不足"]),
            StatusReason {
                reason: Some(Reason::Proprietary("ICBC-E1093".to_owned())),
                additional_info: Vec::new(),
            },
        ]
    );
    assert_eq!(third.status, Some(Status::AcceptedSettlementCompleted));
    assert!(third.reasons.is_empty());
    assert_eq!(
        third.accepted_at.as_deref(),
        Some("2026-11-28T10:19:00+08:00")
    );
}

#[test]
fn pain002_v12_with_prefixes_keeps_unknown_status_codes_as_other() {
    let (version, report) = pain002::parse(PREFIXED_V12.as_bytes()).unwrap();
    assert_eq!(version, Version::V12);
    let group = &report.original_group;
    assert_eq!(group.status, Some(Status::Other("ACFC".to_owned())));
    assert_eq!(group.original_count, None);
    assert_eq!(group.original_control_sum, None);
    assert_eq!(
        group.reasons,
        vec![StatusReason {
            reason: None,
            additional_info: vec!["已受理，等待资金确认".to_owned()],
        }]
    );
    let tx = &report.original_payments[0].transactions[0];
    assert_eq!(tx.status, Some(Status::Other("ACCC".to_owned())));
    assert_eq!(tx.original_instruction_id.as_deref(), Some("I-9"));
    assert_eq!(
        tx.accepted_at.as_deref(),
        Some("2026-11-28T10:59:00.250+08:00")
    );
    // What was read renders again in .12, and reads back the same.
    let bytes = pain002::render(&report, Version::V12).unwrap();
    assert_eq!(pain002::parse(&bytes).unwrap(), (Version::V12, report));
}

#[test]
fn pain002_unknown_status_in_v03_is_kept_when_read_but_not_rendered() {
    let xml = PREFIXED_V03.replace("<ns2:TxSts>ACSC</ns2:TxSts>", "<ns2:TxSts>XYZ9</ns2:TxSts>");
    let (_, report) = pain002::parse(xml.as_bytes()).unwrap();
    assert_eq!(
        report.original_payments[0].transactions[2].status,
        Some(Status::Other("XYZ9".to_owned()))
    );
    let error = pain002::render(&report, Version::V03).unwrap_err();
    assert!(
        matches!(&error, RenderError::InvalidValue { path, .. }
            if path == "CstmrPmtStsRpt/OrgnlPmtInfAndSts[1]/TxInfAndSts[3]/TxSts"),
        "{error}"
    );
    pain002::render(&report, Version::V12).unwrap();
}

fn sample_report() -> CustomerPaymentStatusReport {
    let (_, report) = pain002::parse(PREFIXED_V03.as_bytes()).unwrap();
    report
}

#[test]
fn pain002_render_writes_the_version_namespace() {
    for version in [Version::V03, Version::V12] {
        let bytes = pain002::render(&sample_report(), version).unwrap();
        let xml = String::from_utf8(bytes).unwrap();
        assert!(
            xml.contains(&format!("<Document xmlns=\"{}\">", version.namespace())),
            "{xml}"
        );
        assert!(xml.contains("<Cd>AC01</Cd>"), "{xml}");
        assert!(xml.contains("<AddtlInf>收款账号不存在</AddtlInf>"), "{xml}");
        assert!(xml.contains("<OrgnlCtrlSum>1200.5</OrgnlCtrlSum>"), "{xml}");
    }
}

#[test]
fn pain002_render_refuses_what_the_version_cannot_carry() {
    let mut report = sample_report();
    report.original_payments[0].transactions[0].status = Some(Status::PartiallyAccepted);
    let error = pain002::render(&report, Version::V03).unwrap_err();
    assert_eq!(
        error.to_string(),
        "CstmrPmtStsRpt/OrgnlPmtInfAndSts[1]/TxInfAndSts[1]/TxSts: \
         PART is not a transaction status in pain.002.001.03"
    );

    let mut report = sample_report();
    report.original_group.status = Some(Status::Other("RJCT".to_owned()));
    assert!(pain002::render(&report, Version::V12).is_err());
    report.original_group.status = Some(Status::Other("ACCEPTED".to_owned()));
    assert!(pain002::render(&report, Version::V12).is_err());

    let mut report = sample_report();
    report.original_payments[0].transactions[1].reasons[0].additional_info = vec!["余".repeat(106)];
    assert_eq!(
        pain002::render(&report, Version::V12).unwrap_err(),
        RenderError::TooLong {
            path: "CstmrPmtStsRpt/OrgnlPmtInfAndSts[1]/TxInfAndSts[2]/StsRsnInf[1]/AddtlInf[1]"
                .to_owned(),
            chars: 106,
            max_chars: 105,
        }
    );

    let mut report = sample_report();
    report.original_payments[0].transactions[0].reasons[0].reason =
        Some(Reason::Code("AC011".to_owned()));
    assert!(matches!(
        pain002::render(&report, Version::V03).unwrap_err(),
        RenderError::TooLong { path, .. }
            if path == "CstmrPmtStsRpt/OrgnlPmtInfAndSts[1]/TxInfAndSts[1]/StsRsnInf[1]/Rsn/Cd"
    ));

    let mut report = sample_report();
    report.original_payments[0].transactions[2].accepted_at = Some("2026-11-28".to_owned());
    assert!(matches!(
        pain002::render(&report, Version::V03).unwrap_err(),
        RenderError::InvalidValue { path, .. }
            if path == "CstmrPmtStsRpt/OrgnlPmtInfAndSts[1]/TxInfAndSts[3]/AccptncDtTm"
    ));
}

fn expect_parse_error(xml: &str) -> ParseError {
    pain002::parse(xml.as_bytes()).expect_err("the document must be refused")
}

#[test]
fn pain002_unknown_or_missing_namespaces_are_refused() {
    let v09 = PREFIXED_V03.replace("pain.002.001.03", "pain.002.001.09");
    let error = expect_parse_error(&v09);
    assert_eq!(error.path(), Some("Document"));
    assert!(error.to_string().contains("pain.002.001.09"), "{error}");

    let bare = PREFIXED_V03
        .replace(
            " xmlns:ns2=\"urn:iso:std:iso:20022:tech:xsd:pain.002.001.03\"",
            "",
        )
        .replace("ns2:", "");
    let error = expect_parse_error(&bare);
    assert!(error.to_string().contains("no namespace"), "{error}");

    let error = expect_parse_error("<!DOCTYPE x><Document/>");
    assert!(matches!(error, ParseError::Xml { .. }), "{error}");
    assert!(matches!(
        expect_parse_error(""),
        ParseError::Structure { .. }
    ));
}

#[test]
fn pain002_errors_name_the_element_path() {
    let cases = [
        (
            "<ns2:OrgnlMsgId>ABC-20261128-1</ns2:OrgnlMsgId>",
            "",
            "CstmrPmtStsRpt/OrgnlGrpInfAndSts/OrgnlMsgId",
        ),
        (
            "<ns2:OrgnlCtrlSum>1200.50</ns2:OrgnlCtrlSum>",
            "<ns2:OrgnlCtrlSum>-1</ns2:OrgnlCtrlSum>",
            "CstmrPmtStsRpt/OrgnlGrpInfAndSts/OrgnlCtrlSum",
        ),
        (
            "<ns2:OrgnlNbOfTxs>3</ns2:OrgnlNbOfTxs>",
            "<ns2:OrgnlNbOfTxs>three</ns2:OrgnlNbOfTxs>",
            "CstmrPmtStsRpt/OrgnlGrpInfAndSts/OrgnlNbOfTxs",
        ),
        (
            "<ns2:Prtry>ICBC-E1093</ns2:Prtry>",
            "",
            "CstmrPmtStsRpt/OrgnlPmtInfAndSts/TxInfAndSts[2]/StsRsnInf[2]/Rsn/Cd",
        ),
        (
            "<ns2:TxSts>ACSC</ns2:TxSts>",
            "<ns2:TxSts> </ns2:TxSts>",
            "CstmrPmtStsRpt/OrgnlPmtInfAndSts/TxInfAndSts[3]/TxSts",
        ),
        (
            "<ns2:AccptncDtTm>2026-11-28T10:19:00+08:00</ns2:AccptncDtTm>",
            "<ns2:AccptncDtTm>yesterday</ns2:AccptncDtTm>",
            "CstmrPmtStsRpt/OrgnlPmtInfAndSts/TxInfAndSts[3]/AccptncDtTm",
        ),
    ];
    for (from, to, path) in cases {
        assert!(PREFIXED_V03.contains(from), "{from}");
        let error = expect_parse_error(&PREFIXED_V03.replace(from, to));
        assert_eq!(error.path(), Some(path), "{error}");
    }
}
