//! The ISO 20022 codecs on hand-written documents: what real banks send
//! (namespace prefixes, optional elements absent, elements we do not model),
//! what must be refused on parse (counts, control sums and amounts that do
//! not add up) and on render (ISO field lengths), each with the element path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{Bic, BusinessDate, Currency, Iban, Money};
use formats::iso20022::camt053::{
    self, Balance, BalanceType, BankToCustomerStatement, CreditDebit, Entry, EntryStatus,
    GroupHeader, Statement, StatementHeader,
};
use formats::iso20022::pain001::{
    self, CreditTransfer, CustomerCreditTransferInitiation, PaymentInformation,
};
use formats::iso20022::{AccountIdentification, ParseError, Party, RenderError};

fn money(text: &str, code: &str) -> Money {
    Money::parse(text, Currency::from_code(code).unwrap()).unwrap()
}

fn transfer(end_to_end_id: &str, amount: Money) -> CreditTransfer {
    CreditTransfer {
        instruction_id: None,
        end_to_end_id: end_to_end_id.to_owned(),
        amount,
        creditor_agent: Some(Bic::parse("COBADEFFXXX").unwrap()),
        creditor: Party {
            name: Some("Müller & Söhne GmbH".to_owned()),
            address_lines: vec!["Hauptstraße 1".to_owned()],
        },
        creditor_account: AccountIdentification::Iban(
            Iban::parse("DE89 3704 0044 0532 0130 00").unwrap(),
        ),
        remittance: vec!["Rechnung 4711 <Q3>".to_owned()],
    }
}

fn initiation() -> CustomerCreditTransferInitiation {
    CustomerCreditTransferInitiation {
        message_id: "MSG-0001".to_owned(),
        created_at: "2026-11-28T10:15:00+08:00".to_owned(),
        initiating_party: Party {
            name: Some("深圳某某科技有限公司".to_owned()),
            address_lines: Vec::new(),
        },
        payments: vec![PaymentInformation {
            id: "PMT-1".to_owned(),
            batch_booking: None,
            category_purpose: None,
            requested_execution_date: BusinessDate::from_ymd(2026, 11, 30).unwrap(),
            debtor: Party {
                name: Some("深圳某某科技有限公司".to_owned()),
                address_lines: Vec::new(),
            },
            debtor_account: AccountIdentification::Other("755912345678901".to_owned()),
            debtor_agent: Bic::parse("CMBCCNBS").unwrap(),
            transactions: vec![
                transfer("E2E-1", money("1000", "JPY")),
                transfer("E2E-2", money("12.50", "EUR")),
                transfer("E2E-3", money("1.005", "BHD")),
            ],
        }],
    }
}

#[test]
fn pain001_render_writes_the_namespace_counts_and_control_sums() {
    let xml = String::from_utf8(pain001::render(&initiation()).unwrap()).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert!(xml.contains("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\">"));
    assert_eq!(xml.matches("<NbOfTxs>3</NbOfTxs>").count(), 2);
    // 1000 + 12.50 + 1.005, exactly, at the largest exponent.
    assert_eq!(xml.matches("<CtrlSum>1013.505</CtrlSum>").count(), 2);
    assert!(xml.contains("<InstdAmt Ccy=\"JPY\">1000</InstdAmt>"));
    assert!(xml.contains("<InstdAmt Ccy=\"BHD\">1.005</InstdAmt>"));
    assert!(xml.contains("<Nm>Müller &amp; Söhne GmbH</Nm>"));
    assert!(xml.contains("<Ustrd>Rechnung 4711 &lt;Q3&gt;</Ustrd>"));
    assert!(xml.contains("<ReqdExctnDt>\n"));
    assert!(xml.contains("<Dt>2026-11-30</Dt>"));
    assert!(xml.contains("<PmtMtd>TRF</PmtMtd>"));
    assert_eq!(pain001::parse(xml.as_bytes()).unwrap(), initiation());
}

const PREFIXED_PAIN001: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<!-- from a bank's test kit -->
<ns2:Document xmlns:ns2="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <ns2:CstmrCdtTrfInitn>
    <ns2:GrpHdr>
      <ns2:MsgId>ABC-20261128-1</ns2:MsgId>
      <ns2:CreDtTm>2026-11-28T09:00:00</ns2:CreDtTm>
      <ns2:NbOfTxs> 2 </ns2:NbOfTxs>
      <ns2:InitgPty><ns2:Id><ns2:OrgId><ns2:AnyBIC>ABCDDEFF</ns2:AnyBIC></ns2:OrgId></ns2:Id></ns2:InitgPty>
    </ns2:GrpHdr>
    <ns2:PmtInf>
      <ns2:PmtInfId>B1</ns2:PmtInfId>
      <ns2:PmtMtd>TRF</ns2:PmtMtd>
      <ns2:BtchBookg>true</ns2:BtchBookg>
      <ns2:PmtTpInf><ns2:SvcLvl><ns2:Cd>SEPA</ns2:Cd></ns2:SvcLvl></ns2:PmtTpInf>
      <ns2:ReqdExctnDt><ns2:Dt>2026-11-30</ns2:Dt></ns2:ReqdExctnDt>
      <ns2:Dbtr><ns2:Nm>ABC GmbH</ns2:Nm></ns2:Dbtr>
      <ns2:DbtrAcct><ns2:Id><ns2:IBAN>DE89370400440532013000</ns2:IBAN></ns2:Id><ns2:Ccy>EUR</ns2:Ccy></ns2:DbtrAcct>
      <ns2:DbtrAgt><ns2:FinInstnId><ns2:BICFI>COBADEFFXXX</ns2:BICFI></ns2:FinInstnId></ns2:DbtrAgt>
      <ns2:ChrgBr>SLEV</ns2:ChrgBr>
      <ns2:CdtTrfTxInf>
        <ns2:PmtId><ns2:EndToEndId>NOTPROVIDED</ns2:EndToEndId></ns2:PmtId>
        <ns2:Amt><ns2:InstdAmt Ccy="EUR">100.5</ns2:InstdAmt></ns2:Amt>
        <ns2:Cdtr><ns2:Nm>Jean Dupont</ns2:Nm></ns2:Cdtr>
        <ns2:CdtrAcct><ns2:Id><ns2:IBAN>FR1420041010050500013M02606</ns2:IBAN></ns2:Id></ns2:CdtrAcct>
      </ns2:CdtTrfTxInf>
      <ns2:CdtTrfTxInf>
        <ns2:PmtId><ns2:InstrId>I-2</ns2:InstrId><ns2:EndToEndId>E2E-2</ns2:EndToEndId></ns2:PmtId>
        <ns2:Amt><ns2:InstdAmt Ccy="EUR">0.4900</ns2:InstdAmt></ns2:Amt>
        <ns2:CdtrAgt><ns2:FinInstnId><ns2:BICFI>BNPAFRPP</ns2:BICFI></ns2:FinInstnId></ns2:CdtrAgt>
        <ns2:Cdtr><ns2:Nm>Zoë Ångström</ns2:Nm></ns2:Cdtr>
        <ns2:CdtrAcct><ns2:Id><ns2:Othr><ns2:Id>12-3456</ns2:Id></ns2:Othr></ns2:Id></ns2:CdtrAcct>
        <ns2:RmtInf><ns2:Ustrd><![CDATA[Facture <2026>]]></ns2:Ustrd></ns2:RmtInf>
      </ns2:CdtTrfTxInf>
    </ns2:PmtInf>
    <ns2:SplmtryData><ns2:Envlp><x>ignored</x></ns2:Envlp></ns2:SplmtryData>
  </ns2:CstmrCdtTrfInitn>
</ns2:Document>
"#;

#[test]
fn pain001_with_namespace_prefixes_and_optional_elements_absent_parses() {
    let message = pain001::parse(PREFIXED_PAIN001.as_bytes()).unwrap();
    assert_eq!(message.message_id, "ABC-20261128-1");
    assert_eq!(message.initiating_party, Party::default());
    let payment = &message.payments[0];
    assert_eq!(payment.debtor_agent.as_str(), "COBADEFFXXX");
    let [first, second] = payment.transactions.as_slice() else {
        panic!("two transactions expected");
    };
    assert_eq!(first.amount, money("100.50", "EUR"));
    assert_eq!(first.instruction_id, None);
    assert_eq!(first.creditor_agent, None);
    assert_eq!(second.amount, money("0.49", "EUR"));
    assert_eq!(second.instruction_id.as_deref(), Some("I-2"));
    assert_eq!(
        second.creditor_account,
        AccountIdentification::Other("12-3456".to_owned())
    );
    assert_eq!(second.remittance, vec!["Facture <2026>".to_owned()]);
    assert_eq!(second.creditor.name.as_deref(), Some("Zoë Ångström"));
}

fn expect_parse_error(xml: &str) -> ParseError {
    pain001::parse(xml.as_bytes()).expect_err("the document must be refused")
}

#[test]
fn pain001_with_a_wrong_transaction_count_is_refused() {
    let xml = PREFIXED_PAIN001.replace(
        "<ns2:NbOfTxs> 2 </ns2:NbOfTxs>",
        "<ns2:NbOfTxs>3</ns2:NbOfTxs>",
    );
    let error = expect_parse_error(&xml);
    assert!(matches!(error, ParseError::Mismatch { .. }), "{error}");
    assert_eq!(error.path(), Some("CstmrCdtTrfInitn/GrpHdr/NbOfTxs"));
}

#[test]
fn pain001_with_a_wrong_control_sum_is_refused() {
    let xml = PREFIXED_PAIN001.replace(
        "<ns2:NbOfTxs> 2 </ns2:NbOfTxs>",
        "<ns2:NbOfTxs>2</ns2:NbOfTxs><ns2:CtrlSum>100.98</ns2:CtrlSum>",
    );
    let error = expect_parse_error(&xml);
    assert_eq!(error.path(), Some("CstmrCdtTrfInitn/GrpHdr/CtrlSum"));
    let ok = xml.replace("100.98", "100.990");
    assert!(pain001::parse(ok.as_bytes()).is_ok());
}

#[test]
fn pain001_amount_errors_name_the_element() {
    for (bad, problem) in [
        ("100.501", "a non-zero decimal beyond the currency's"),
        ("-100.50", "a negative amount"),
        ("1e2", "exponent notation"),
        ("", "an empty amount"),
        ("0", "a zero amount"),
    ] {
        let xml = PREFIXED_PAIN001.replace(">100.5<", &format!(">{bad}<"));
        let error = expect_parse_error(&xml);
        assert_eq!(
            error.path(),
            Some("CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[1]/Amt/InstdAmt"),
            "{problem}: {error}"
        );
    }
    let xml = PREFIXED_PAIN001.replace("Ccy=\"EUR\">100.5", "Ccy=\"XXX\">100.5");
    assert_eq!(
        expect_parse_error(&xml).path(),
        Some("CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[1]/Amt/InstdAmt/@Ccy")
    );
}

#[test]
fn pain001_missing_and_malformed_elements_name_their_path() {
    let xml = PREFIXED_PAIN001.replace("<ns2:EndToEndId>E2E-2</ns2:EndToEndId>", "");
    let error = expect_parse_error(&xml);
    assert!(matches!(error, ParseError::Missing { .. }), "{error}");
    assert_eq!(
        error.path(),
        Some("CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[2]/PmtId/EndToEndId")
    );

    let xml = PREFIXED_PAIN001.replace("<ns2:Nm>Jean Dupont</ns2:Nm>", "<ns2:Nm>Jean</ns2:Name>");
    let error = expect_parse_error(&xml);
    assert!(matches!(error, ParseError::Xml { .. }), "{error}");
    assert_eq!(
        error.path(),
        Some("CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/Cdtr/Nm")
    );

    let xml = PREFIXED_PAIN001.replace("DE89370400440532013000", "DE00370400440532013000");
    assert_eq!(
        expect_parse_error(&xml).path(),
        Some("CstmrCdtTrfInitn/PmtInf/DbtrAcct/Id/IBAN")
    );
}

#[test]
fn pain001_doctype_and_foreign_encodings_are_refused() {
    let xml = PREFIXED_PAIN001.replace(
        "<!-- from a bank's test kit -->",
        "<!DOCTYPE x [<!ENTITY e \"boom\">]>",
    );
    assert!(matches!(expect_parse_error(&xml), ParseError::Xml { .. }));
    let xml = PREFIXED_PAIN001.replace("encoding=\"utf-8\"", "encoding=\"GBK\"");
    assert!(matches!(expect_parse_error(&xml), ParseError::Xml { .. }));
    let error = expect_parse_error(&PREFIXED_PAIN001.replace("ns2:Document", "ns2:Doc"));
    assert!(matches!(error, ParseError::Structure { .. }), "{error}");
}

/// Changes a valid message so that one field is too long.
type Change = Box<dyn Fn(&mut CustomerCreditTransferInitiation)>;

fn expect_render_error(message: &CustomerCreditTransferInitiation) -> RenderError {
    pain001::render(message).expect_err("the message must be refused")
}

#[test]
fn pain001_render_refuses_text_longer_than_its_iso_field() {
    let mut message = initiation();
    message.payments[0].transactions[1].creditor.name = Some("名".repeat(141));
    assert_eq!(
        expect_render_error(&message),
        RenderError::TooLong {
            path: "CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[2]/Cdtr/Nm".to_owned(),
            chars: 141,
            max_chars: 140,
        }
    );
    // 140 characters of three UTF-8 bytes each are fine: limits count characters.
    message.payments[0].transactions[1].creditor.name = Some("名".repeat(140));
    assert!(pain001::render(&message).is_ok());

    let cases: Vec<(Change, &str, usize)> = vec![
        (
            Box::new(|m| m.message_id = "M".repeat(36)),
            "CstmrCdtTrfInitn/GrpHdr/MsgId",
            35,
        ),
        (
            Box::new(|m| m.payments[0].id = "P".repeat(36)),
            "CstmrCdtTrfInitn/PmtInf[1]/PmtInfId",
            35,
        ),
        (
            Box::new(|m| m.payments[0].transactions[0].end_to_end_id = "E".repeat(36)),
            "CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[1]/PmtId/EndToEndId",
            35,
        ),
        (
            Box::new(|m| {
                m.payments[0].transactions[2]
                    .remittance
                    .push("ü".repeat(141))
            }),
            "CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[3]/RmtInf/Ustrd[2]",
            140,
        ),
        (
            Box::new(|m| {
                m.payments[0].transactions[0].creditor.address_lines =
                    vec!["a".to_owned(), "b".repeat(71)]
            }),
            "CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[1]/Cdtr/PstlAdr/AdrLine[2]",
            70,
        ),
        (
            Box::new(|m| {
                m.payments[0].debtor_account = AccountIdentification::Other("9".repeat(35))
            }),
            "CstmrCdtTrfInitn/PmtInf[1]/DbtrAcct/Id/Othr/Id",
            34,
        ),
    ];
    for (change, path, max) in cases {
        let mut message = initiation();
        change(&mut message);
        match expect_render_error(&message) {
            RenderError::TooLong {
                path: found,
                max_chars,
                ..
            } => {
                assert_eq!(found, path);
                assert_eq!(max_chars, max);
            }
            other => panic!("{path}: expected TooLong, got {other}"),
        }
    }
}

#[test]
fn pain001_render_refuses_empty_text_bad_characters_and_bad_amounts() {
    let mut message = initiation();
    message.payments[0].transactions[0].end_to_end_id.clear();
    assert!(
        matches!(expect_render_error(&message), RenderError::Empty { path } if path.ends_with("CdtTrfTxInf[1]/PmtId/EndToEndId"))
    );

    let mut message = initiation();
    message.payments[0].debtor.name = Some("bell\u{7}".to_owned());
    assert!(
        matches!(expect_render_error(&message), RenderError::InvalidChar { path, ch: '\u{7}' } if path == "CstmrCdtTrfInitn/PmtInf[1]/Dbtr/Nm")
    );

    let mut message = initiation();
    message.payments[0].transactions[1].amount = Money::zero(Currency::EUR);
    assert!(
        matches!(expect_render_error(&message), RenderError::InvalidValue { path, .. } if path == "CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[2]/Amt/InstdAmt")
    );

    let mut message = initiation();
    message.payments[0].transactions[0].creditor.address_lines = vec!["x".to_owned(); 8];
    assert!(matches!(
        expect_render_error(&message),
        RenderError::TooMany { max: 7, .. }
    ));

    let mut message = initiation();
    message.created_at = "2026-11-28 10:15".to_owned();
    assert!(
        matches!(expect_render_error(&message), RenderError::InvalidValue { path, .. } if path == "CstmrCdtTrfInitn/GrpHdr/CreDtTm")
    );

    let mut message = initiation();
    message.payments[0].transactions.clear();
    assert!(matches!(
        expect_render_error(&message),
        RenderError::InvalidValue { .. }
    ));
    message.payments.clear();
    assert!(matches!(
        expect_render_error(&message),
        RenderError::InvalidValue { .. }
    ));
}

const PREFIXED_CAMT053: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ns2:Document xmlns:ns2="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
 <ns2:BkToCstmrStmt>
  <ns2:GrpHdr><ns2:MsgId>S-1</ns2:MsgId><ns2:CreDtTm>2026-11-28T06:00:00Z</ns2:CreDtTm><ns2:MsgPgntn><ns2:PgNb>1</ns2:PgNb><ns2:LastPgInd>true</ns2:LastPgInd></ns2:MsgPgntn></ns2:GrpHdr>
  <ns2:Stmt>
   <ns2:Id>STMT-1</ns2:Id>
   <ns2:ElctrncSeqNb>42</ns2:ElctrncSeqNb>
   <ns2:FrToDt><ns2:FrDtTm>2026-11-27T00:00:00</ns2:FrDtTm><ns2:ToDtTm>2026-11-27T23:59:59</ns2:ToDtTm></ns2:FrToDt>
   <ns2:Acct><ns2:Id><ns2:Othr><ns2:Id>755912345678901</ns2:Id></ns2:Othr></ns2:Id><ns2:Ccy>CNY</ns2:Ccy><ns2:Svcr><ns2:FinInstnId><ns2:BICFI>CMBCCNBS</ns2:BICFI></ns2:FinInstnId></ns2:Svcr></ns2:Acct>
   <ns2:Bal><ns2:Tp><ns2:CdOrPrtry><ns2:Cd>OPBD</ns2:Cd></ns2:CdOrPrtry></ns2:Tp><ns2:Amt Ccy="CNY">1000.00</ns2:Amt><ns2:CdtDbtInd>CRDT</ns2:CdtDbtInd><ns2:Dt><ns2:Dt>2026-11-27</ns2:Dt></ns2:Dt></ns2:Bal>
   <ns2:Bal><ns2:Tp><ns2:CdOrPrtry><ns2:Cd>CLBD</ns2:Cd></ns2:CdOrPrtry></ns2:Tp><ns2:Amt Ccy="CNY">50.00</ns2:Amt><ns2:CdtDbtInd>DBIT</ns2:CdtDbtInd><ns2:Dt><ns2:DtTm>2026-11-27T23:59:59</ns2:DtTm></ns2:Dt></ns2:Bal>
   <ns2:TxsSummry><ns2:TtlNtries><ns2:NbOfNtries>2</ns2:NbOfNtries></ns2:TtlNtries></ns2:TxsSummry>
   <ns2:Ntry>
    <ns2:Amt Ccy="CNY">1050.00</ns2:Amt><ns2:CdtDbtInd>DBIT</ns2:CdtDbtInd>
    <ns2:Sts><ns2:Cd>BOOK</ns2:Cd></ns2:Sts>
    <ns2:BookgDt><ns2:DtTm>2026-11-27T10:00:00+08:00</ns2:DtTm></ns2:BookgDt>
    <ns2:AcctSvcrRef>CMB-1</ns2:AcctSvcrRef>
    <ns2:BkTxCd><ns2:Domn><ns2:Cd>PMNT</ns2:Cd><ns2:Fmly><ns2:Cd>ICDT</ns2:Cd><ns2:SubFmlyCd>DMCT</ns2:SubFmlyCd></ns2:Fmly></ns2:Domn></ns2:BkTxCd>
    <ns2:NtryDtls><ns2:TxDtls>
     <ns2:Refs><ns2:EndToEndId>E2E-9</ns2:EndToEndId></ns2:Refs>
     <ns2:RltdPties><ns2:Cdtr><ns2:Nm>李四</ns2:Nm></ns2:Cdtr></ns2:RltdPties>
     <ns2:RmtInf><ns2:Ustrd>货款 11月</ns2:Ustrd></ns2:RmtInf>
    </ns2:TxDtls></ns2:NtryDtls>
   </ns2:Ntry>
   <ns2:Ntry><ns2:Amt Ccy="CNY">0.01</ns2:Amt><ns2:CdtDbtInd>CRDT</ns2:CdtDbtInd><ns2:Sts><ns2:Cd>PDNG</ns2:Cd></ns2:Sts><ns2:BkTxCd/></ns2:Ntry>
  </ns2:Stmt>
 </ns2:BkToCstmrStmt>
</ns2:Document>
"#;

#[test]
fn camt053_with_namespace_prefixes_and_bank_deviations_parses() {
    let message = camt053::parse(PREFIXED_CAMT053.as_bytes()).unwrap();
    assert_eq!(message.group_header.message_id, "S-1");
    let statement = &message.statements[0];
    let header = &statement.header;
    assert_eq!(header.id, "STMT-1");
    assert_eq!(header.electronic_sequence_number, Some(42));
    assert_eq!(
        header.account,
        AccountIdentification::Other("755912345678901".to_owned())
    );
    assert_eq!(header.currency, Some(Currency::CNY));
    assert_eq!(header.balances[0].kind, BalanceType::OpeningBooked);
    assert_eq!(header.balances[1].kind, BalanceType::ClosingBooked);
    assert_eq!(header.balances[1].indicator, CreditDebit::Debit);
    assert_eq!(header.balances[1].amount, money("50.00", "CNY"));
    let [first, second] = statement.entries.as_slice() else {
        panic!("two entries expected");
    };
    assert_eq!(first.amount, money("1050", "CNY"));
    assert_eq!(first.indicator, CreditDebit::Debit);
    assert_eq!(
        first.booking_date,
        Some(BusinessDate::from_ymd(2026, 11, 27).unwrap())
    );
    assert_eq!(first.account_servicer_reference.as_deref(), Some("CMB-1"));
    assert_eq!(first.bank_transaction_code, None);
    let tx = &first.transactions[0];
    assert_eq!(tx.end_to_end_id.as_deref(), Some("E2E-9"));
    assert_eq!(tx.creditor.name.as_deref(), Some("李四"));
    assert_eq!(tx.remittance, vec!["货款 11月".to_owned()]);
    assert_eq!(second.status, EntryStatus::Pending);
    assert!(second.transactions.is_empty());
}

#[test]
fn camt053_errors_name_the_entry() {
    let xml = PREFIXED_CAMT053.replace(">0.01<", ">0.001<");
    let error = camt053::parse(xml.as_bytes()).unwrap_err();
    assert_eq!(
        error.path(),
        Some("BkToCstmrStmt/Stmt/Ntry[2]/Amt"),
        "{error}"
    );

    let xml = PREFIXED_CAMT053.replace("<ns2:Cd>PDNG</ns2:Cd>", "<ns2:Cd>DONE</ns2:Cd>");
    let error = camt053::parse(xml.as_bytes()).unwrap_err();
    assert_eq!(
        error.path(),
        Some("BkToCstmrStmt/Stmt/Ntry[2]/Sts/Cd"),
        "{error}"
    );

    let xml = PREFIXED_CAMT053.replace(
        "<ns2:CdtDbtInd>CRDT</ns2:CdtDbtInd><ns2:Sts>",
        "<ns2:CdtDbtInd>C</ns2:CdtDbtInd><ns2:Sts>",
    );
    let error = camt053::parse(xml.as_bytes()).unwrap_err();
    assert_eq!(
        error.path(),
        Some("BkToCstmrStmt/Stmt/Ntry[2]/CdtDbtInd"),
        "{error}"
    );

    let xml = PREFIXED_CAMT053.replace("<ns2:Id>STMT-1</ns2:Id>", "");
    let error = camt053::parse(xml.as_bytes()).unwrap_err();
    assert_eq!(
        error,
        ParseError::Missing {
            path: "BkToCstmrStmt/Stmt/Id".to_owned()
        }
    );

    let truncated = &PREFIXED_CAMT053[..PREFIXED_CAMT053.find("<ns2:Ntry><ns2:Amt").unwrap()];
    let error = camt053::parse(truncated.as_bytes()).unwrap_err();
    assert!(matches!(error, ParseError::Xml { .. }), "{error}");
}

#[test]
fn camt053_render_writes_the_namespace_and_refuses_long_fields() {
    let mut message = BankToCustomerStatement {
        group_header: GroupHeader {
            message_id: "S-2".to_owned(),
            created_at: "2026-11-28T06:00:00Z".to_owned(),
            pagination: None,
        },
        statements: vec![Statement {
            header: StatementHeader {
                id: "STMT-2".to_owned(),
                electronic_sequence_number: None,
                created_at: None,
                account: AccountIdentification::Iban(
                    Iban::parse("DE89370400440532013000").unwrap(),
                ),
                currency: Some(Currency::EUR),
                balances: vec![Balance {
                    kind: BalanceType::ClosingBooked,
                    amount: money("1.00", "EUR"),
                    indicator: CreditDebit::Credit,
                    date: BusinessDate::parse_iso("2026-11-28").unwrap(),
                }],
            },
            entries: vec![Entry {
                reference: Some("R".repeat(35)),
                amount: money("1.00", "EUR"),
                indicator: CreditDebit::Credit,
                status: EntryStatus::Booked,
                booking_date: None,
                value_date: None,
                account_servicer_reference: None,
                bank_transaction_code: None,
                transactions: Vec::new(),
            }],
        }],
    };
    let xml = String::from_utf8(camt053::render(&message).unwrap()).unwrap();
    assert!(xml.contains("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">"));
    assert!(xml.contains("<BkTxCd>\n"));
    assert_eq!(camt053::parse(xml.as_bytes()).unwrap(), message);

    message.statements[0].entries[0].reference = Some("R".repeat(36));
    assert_eq!(
        camt053::render(&message).unwrap_err(),
        RenderError::TooLong {
            path: "BkToCstmrStmt/Stmt[1]/Ntry[1]/NtryRef".to_owned(),
            chars: 36,
            max_chars: 35,
        }
    );
}
