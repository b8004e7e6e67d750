//! camt.053.001.02 beside .001.08, and `GrpHdr/MsgPgntn` in camt.052, .053
//! and .054: a `.02` statement as older Chinese banks write it reads to the
//! model; the version is told from the namespace; `.02` is rendered in its
//! own schema (bare `Sts` code, parties without `Pty`) and what that schema
//! cannot carry is refused with the element path; pagination is written
//! right after `CreDtTm` and checked on both sides.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{BusinessDate, Currency, Money};
use formats::iso20022::camt052::{self, BankToCustomerAccountReport};
use formats::iso20022::camt053::{
    self, Balance, BalanceType, BankToCustomerStatement, CreditDebit, Entry, EntryStatus,
    GroupHeader, Pagination, Statement, StatementHeader, StatementItem, StatementReader,
    TransactionDetails, Version,
};
use formats::iso20022::camt054::{self, BankToCustomerDebitCreditNotification};
use formats::iso20022::{AccountIdentification, Limits, ParseError, Party, RenderError};

fn day(text: &str) -> BusinessDate {
    BusinessDate::parse_iso(text).unwrap()
}

fn cny(text: &str) -> Money {
    Money::parse(text, Currency::from_code("CNY").unwrap()).unwrap()
}

/// Valid against the official camt.053.001.02 XSD except for the blanks
/// around the `Sts` code, which some banks write; elements we do not model
/// (`MsgRcpt`, `LglSeqNb`, `FrToDt`, `TxsSummry`, `RvslInd`, `BkTxCd/Domn`,
/// `AddtlNtryInf`) are skipped, a value date given as `DtTm` keeps its day,
/// and the page number keeps no leading zeros.
const V02_STATEMENT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <BkToCstmrStmt>
    <GrpHdr>
      <MsgId>CMB-STMT-20261128-0001</MsgId>
      <CreDtTm>2026-11-28T23:30:00+08:00</CreDtTm>
      <MsgRcpt><Nm>深圳市张三贸易有限公司</Nm></MsgRcpt>
      <MsgPgntn><PgNb>00002</PgNb><LastPgInd>false</LastPgInd></MsgPgntn>
    </GrpHdr>
    <Stmt>
      <Id>STMT-117</Id>
      <ElctrncSeqNb>117</ElctrncSeqNb>
      <LglSeqNb>117</LglSeqNb>
      <CreDtTm>2026-11-28T23:30:00+08:00</CreDtTm>
      <FrToDt><FrDtTm>2026-11-28T00:00:00+08:00</FrDtTm><ToDtTm>2026-11-28T23:59:59+08:00</ToDtTm></FrToDt>
      <Acct><Id><Othr><Id>755912345610801</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
      <Bal>
        <Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="CNY">100000.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2026-11-28</Dt></Dt>
      </Bal>
      <Bal>
        <Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="CNY">98800.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2026-11-28</Dt></Dt>
      </Bal>
      <TxsSummry><TtlNtries><NbOfNtries>1</NbOfNtries></TtlNtries></TxsSummry>
      <Ntry>
        <NtryRef>1</NtryRef>
        <Amt Ccy="CNY">1200.00</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <RvslInd>false</RvslInd>
        <Sts> BOOK </Sts>
        <BookgDt><Dt>2026-11-28</Dt></BookgDt>
        <ValDt><DtTm>2026-11-28T10:15:00+08:00</DtTm></ValDt>
        <AcctSvcrRef>CMB-20261128-000117</AcctSvcrRef>
        <BkTxCd>
          <Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>DMCT</SubFmlyCd></Fmly></Domn>
          <Prtry><Cd>TRF</Cd></Prtry>
        </BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>E2E-张三-01</EndToEndId></Refs>
            <RltdPties>
              <Dbtr><Nm>深圳市张三贸易有限公司</Nm></Dbtr>
              <Cdtr><Nm>李四</Nm><PstlAdr><AdrLine>北京市朝阳区建国路 1 号</AdrLine></PstlAdr></Cdtr>
            </RltdPties>
            <RmtInf><Ustrd>货款 2026-117</Ustrd></RmtInf>
          </TxDtls>
        </NtryDtls>
        <AddtlNtryInf>转账</AddtlNtryInf>
      </Ntry>
    </Stmt>
  </BkToCstmrStmt>
</Document>
"#;

fn v02_model() -> BankToCustomerStatement {
    BankToCustomerStatement {
        group_header: GroupHeader {
            message_id: "CMB-STMT-20261128-0001".to_owned(),
            created_at: "2026-11-28T23:30:00+08:00".to_owned(),
            pagination: Some(Pagination {
                page_number: 2,
                last_page: false,
            }),
        },
        statements: vec![Statement {
            header: StatementHeader {
                id: "STMT-117".to_owned(),
                electronic_sequence_number: Some(117),
                created_at: Some("2026-11-28T23:30:00+08:00".to_owned()),
                account: AccountIdentification::Other("755912345610801".to_owned()),
                currency: Some(Currency::from_code("CNY").unwrap()),
                balances: vec![
                    Balance {
                        kind: BalanceType::OpeningBooked,
                        amount: cny("100000.00"),
                        indicator: CreditDebit::Credit,
                        date: day("2026-11-28"),
                    },
                    Balance {
                        kind: BalanceType::ClosingBooked,
                        amount: cny("98800.00"),
                        indicator: CreditDebit::Credit,
                        date: day("2026-11-28"),
                    },
                ],
            },
            entries: vec![Entry {
                reference: Some("1".to_owned()),
                amount: cny("1200.00"),
                indicator: CreditDebit::Debit,
                status: EntryStatus::Booked,
                booking_date: Some(day("2026-11-28")),
                value_date: Some(day("2026-11-28")),
                account_servicer_reference: Some("CMB-20261128-000117".to_owned()),
                bank_transaction_code: Some("TRF".to_owned()),
                transactions: vec![TransactionDetails {
                    end_to_end_id: Some("E2E-张三-01".to_owned()),
                    debtor: Party {
                        name: Some("深圳市张三贸易有限公司".to_owned()),
                        address_lines: Vec::new(),
                    },
                    creditor: Party {
                        name: Some("李四".to_owned()),
                        address_lines: vec!["北京市朝阳区建国路 1 号".to_owned()],
                    },
                    remittance: vec!["货款 2026-117".to_owned()],
                }],
            }],
        }],
    }
}

#[test]
fn a_v02_statement_as_older_banks_send_it_parses_to_the_model() {
    let (version, message) = camt053::parse_any(V02_STATEMENT.as_bytes()).unwrap();
    assert_eq!(version, Version::V02);
    assert_eq!(message, v02_model());
    assert_eq!(camt053::parse(V02_STATEMENT.as_bytes()).unwrap(), message);
}

#[test]
fn the_streaming_reader_reads_v02_and_says_so_after_the_first_item() {
    let mut reader = StatementReader::new(V02_STATEMENT.as_bytes(), Limits::default());
    assert_eq!(reader.version(), None);
    let first = reader.next_item().unwrap();
    assert!(matches!(first, Some(StatementItem::Group(_))), "{first:?}");
    assert_eq!(reader.version(), Some(Version::V02));
    let rest: Vec<StatementItem> = reader.map(Result::unwrap).collect();
    assert!(matches!(
        rest.as_slice(),
        [StatementItem::Statement(_), StatementItem::Entry(entry)]
            if entry.status == EntryStatus::Booked
    ));
}

#[test]
fn v02_render_writes_the_02_schema_and_reads_back() {
    let message = v02_model();
    let xml = String::from_utf8(camt053::render_version(&message, Version::V02).unwrap()).unwrap();
    assert!(xml.contains("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">"));
    assert!(xml.contains("<Sts>BOOK</Sts>"), "{xml}");
    assert!(!xml.contains("<Pty>"), "{xml}");
    assert!(xml.contains("<Dbtr>\n"), "{xml}");
    let header = "<MsgId>CMB-STMT-20261128-0001</MsgId>\n      \
                  <CreDtTm>2026-11-28T23:30:00+08:00</CreDtTm>\n      \
                  <MsgPgntn>\n        <PgNb>2</PgNb>\n        <LastPgInd>false</LastPgInd>\n      \
                  </MsgPgntn>\n    </GrpHdr>";
    assert!(xml.contains(header), "{xml}");
    assert_eq!(
        camt053::parse_any(xml.as_bytes()).unwrap(),
        (Version::V02, message.clone())
    );

    let v08 = String::from_utf8(camt053::render(&message).unwrap()).unwrap();
    assert!(v08.contains("<Sts>\n"), "{v08}");
    assert!(v08.contains("<Pty>"), "{v08}");
    assert_eq!(
        camt053::render_version(&message, Version::V08).unwrap(),
        v08.into_bytes()
    );
}

#[test]
fn v02_render_refuses_what_the_02_schema_cannot_carry() {
    let mut future = v02_model();
    future.statements[0].entries[0].status = EntryStatus::Future;
    let error = camt053::render_version(&future, Version::V02).unwrap_err();
    assert!(
        matches!(&error, RenderError::InvalidValue { path, .. } if path == "BkToCstmrStmt/Stmt[1]/Ntry[1]/Sts"),
        "{error}"
    );
    assert!(camt053::render(&future).is_ok(), "FUTR is a .08 code");

    let mut undated = v02_model();
    undated.statements[0].header.created_at = None;
    let error = camt053::render_version(&undated, Version::V02).unwrap_err();
    assert!(
        matches!(&error, RenderError::InvalidValue { path, .. } if path == "BkToCstmrStmt/Stmt[1]/CreDtTm"),
        "{error}"
    );
    assert!(
        camt053::render(&undated).is_ok(),
        "CreDtTm is optional in .08"
    );

    // `Bal` is 1..n in both schemas of camt.053 (not in camt.052).
    let mut unbalanced = v02_model();
    unbalanced.statements[0].header.balances.clear();
    for version in [Version::V02, Version::V08] {
        let error = camt053::render_version(&unbalanced, version).unwrap_err();
        assert!(
            matches!(&error, RenderError::InvalidValue { path, .. } if path == "BkToCstmrStmt/Stmt[1]/Bal"),
            "{version:?}: {error}"
        );
    }
}

#[test]
fn a_sequence_number_beyond_18_digits_is_refused() {
    let mut message = v02_model();
    message.statements[0].header.electronic_sequence_number = Some(camt053::MAX_SEQUENCE_NUMBER);
    assert!(camt053::render(&message).is_ok());
    message.statements[0].header.electronic_sequence_number = Some(u64::MAX);
    let error = camt053::render(&message).unwrap_err();
    assert!(
        matches!(&error, RenderError::InvalidValue { path, .. } if path == "BkToCstmrStmt/Stmt[1]/ElctrncSeqNb"),
        "{error}"
    );
}

#[test]
fn the_version_is_told_from_the_namespace() {
    let bare = V02_STATEMENT.replace(
        " xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\"",
        "",
    );
    assert_eq!(
        camt053::parse_any(bare.as_bytes()).unwrap().0,
        Version::V08,
        "no namespace reads as .08"
    );

    let empty = V02_STATEMENT.replace("urn:iso:std:iso:20022:tech:xsd:camt.053.001.02", "");
    assert_eq!(
        camt053::parse_any(empty.as_bytes()).unwrap().0,
        Version::V08,
        "xmlns=\"\" is no namespace"
    );

    let prefixed = V02_STATEMENT
        .replace("<Document xmlns=", "<c:Document xmlns:c=")
        .replace("</Document>", "</c:Document>")
        .replace("<BkToCstmrStmt>", "<c:BkToCstmrStmt>")
        .replace("</BkToCstmrStmt>", "</c:BkToCstmrStmt>");
    assert_eq!(
        camt053::parse_any(prefixed.as_bytes()).unwrap(),
        (Version::V02, v02_model())
    );

    let v08 = camt053::render(&v02_model()).unwrap();
    assert_eq!(camt053::parse_any(&v08).unwrap().0, Version::V08);

    let other = V02_STATEMENT.replace("camt.053.001.02", "camt.053.001.04");
    let error = camt053::parse_any(other.as_bytes()).unwrap_err();
    assert!(
        matches!(&error, ParseError::Structure { path, problem } if path == "Document" && problem.contains("camt.053.001.04")),
        "{error}"
    );
}

#[test]
fn pagination_is_checked_when_rendered() {
    let mut message = v02_model();
    message.group_header.pagination = Some(Pagination {
        page_number: camt053::MAX_PAGE_NUMBER,
        last_page: true,
    });
    let xml = camt053::render(&message).unwrap();
    assert_eq!(camt053::parse(&xml).unwrap(), message);

    message.group_header.pagination = Some(Pagination {
        page_number: camt053::MAX_PAGE_NUMBER + 1,
        last_page: true,
    });
    let error = camt053::render(&message).unwrap_err();
    assert!(
        matches!(&error, RenderError::InvalidValue { path, .. } if path == "BkToCstmrStmt/GrpHdr/MsgPgntn/PgNb"),
        "{error}"
    );
}

#[test]
fn pagination_is_read_strictly_with_the_path() {
    let with = |pages: &str| {
        V02_STATEMENT.replace(
            "<MsgPgntn><PgNb>00002</PgNb><LastPgInd>false</LastPgInd></MsgPgntn>",
            pages,
        )
    };
    let read = |pages: &str| camt053::parse(with(pages).as_bytes());

    let one = read("<MsgPgntn><PgNb> 1 </PgNb><LastPgInd>1</LastPgInd></MsgPgntn>").unwrap();
    assert_eq!(
        one.group_header.pagination,
        Some(Pagination {
            page_number: 1,
            last_page: true
        })
    );
    let zero = read("<MsgPgntn><PgNb>3</PgNb><LastPgInd>0</LastPgInd></MsgPgntn>").unwrap();
    assert_eq!(
        zero.group_header.pagination,
        Some(Pagination {
            page_number: 3,
            last_page: false
        })
    );
    assert_eq!(read("").unwrap().group_header.pagination, None);

    let cases = [
        (
            "<MsgPgntn><PgNb>1</PgNb><LastPgInd>yes</LastPgInd></MsgPgntn>",
            "BkToCstmrStmt/GrpHdr/MsgPgntn/LastPgInd",
        ),
        (
            "<MsgPgntn><PgNb>-1</PgNb><LastPgInd>true</LastPgInd></MsgPgntn>",
            "BkToCstmrStmt/GrpHdr/MsgPgntn/PgNb",
        ),
        (
            "<MsgPgntn><PgNb>99999999999</PgNb><LastPgInd>true</LastPgInd></MsgPgntn>",
            "BkToCstmrStmt/GrpHdr/MsgPgntn/PgNb",
        ),
        (
            "<MsgPgntn><LastPgInd>true</LastPgInd></MsgPgntn>",
            "BkToCstmrStmt/GrpHdr/MsgPgntn/PgNb",
        ),
        (
            "<MsgPgntn><PgNb>1</PgNb></MsgPgntn>",
            "BkToCstmrStmt/GrpHdr/MsgPgntn/LastPgInd",
        ),
    ];
    for (pages, path) in cases {
        let error = read(pages).unwrap_err();
        assert_eq!(error.path(), Some(path), "{pages}: {error}");
    }
}

#[test]
fn camt052_and_camt054_carry_pagination_in_their_group_header() {
    let mut statement = v02_model().statements.remove(0);
    let header = GroupHeader {
        pagination: Some(Pagination {
            page_number: 7,
            last_page: true,
        }),
        ..GroupHeader::new("PAGED-1", "2026-11-28T12:00:00Z")
    };
    let report = BankToCustomerAccountReport {
        group_header: header.clone(),
        reports: vec![statement.clone()],
    };
    let xml = camt052::render(&report).unwrap();
    assert!(String::from_utf8_lossy(&xml).contains(
        "<CreDtTm>2026-11-28T12:00:00Z</CreDtTm>\n      <MsgPgntn>\n        <PgNb>7</PgNb>"
    ));
    assert_eq!(camt052::parse(&xml).unwrap(), report);

    statement.header.balances.clear();
    let notification = BankToCustomerDebitCreditNotification {
        group_header: header,
        notifications: vec![statement],
    };
    let xml = camt054::render(&notification).unwrap();
    assert_eq!(camt054::parse(&xml).unwrap(), notification);
}

#[test]
fn group_header_new_has_no_pagination() {
    let header = GroupHeader::new("M-1", "2026-11-28T12:00:00Z");
    assert_eq!(header.message_id, "M-1");
    assert_eq!(header.created_at, "2026-11-28T12:00:00Z");
    assert_eq!(header.pagination, None);
}
