//! A camt.053.001.08 of 100,000 entries, produced lazily by a `Read` and
//! streamed entry by entry: the reader must see every entry, get every
//! amount right, and yield the first entry long before the input is
//! exhausted (it never collects the document).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::io::{BufReader, Read};
use std::rc::Rc;

use domain::Currency;
use formats::iso20022::camt053::{CreditDebit, EntryStatus, StatementItem, StatementReader};
use formats::iso20022::{LimitKind, Limits, ParseError};

const ENTRIES: u64 = 100_000;

/// The amount of entry `i` in minor units (EUR, 2 decimals); odd entries
/// are debits.
fn amount_minor(i: u64) -> i64 {
    i64::try_from((i * 7_919) % 1_000_000 + 1).unwrap()
}

/// Writes the document piece by piece as it is read: the header, then one
/// entry at a time, then the closing tags. Counts the bytes handed out.
struct StatementGenerator {
    next_entry: u64,
    entries: u64,
    pending: Vec<u8>,
    offset: usize,
    finished: bool,
    produced: Rc<Cell<u64>>,
}

impl StatementGenerator {
    fn new(entries: u64, produced: Rc<Cell<u64>>) -> StatementGenerator {
        let header = r#"<?xml version="1.0" encoding="UTF-8"?>
<ns2:Document xmlns:ns2="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
 <ns2:BkToCstmrStmt>
  <ns2:GrpHdr><ns2:MsgId>STREAM-1</ns2:MsgId><ns2:CreDtTm>2026-11-28T06:00:00+01:00</ns2:CreDtTm></ns2:GrpHdr>
  <ns2:Stmt>
   <ns2:Id>STMT-2026-11-27</ns2:Id>
   <ns2:Acct><ns2:Id><ns2:IBAN>DE89370400440532013000</ns2:IBAN></ns2:Id><ns2:Ccy>EUR</ns2:Ccy></ns2:Acct>
   <ns2:Bal><ns2:Tp><ns2:CdOrPrtry><ns2:Cd>OPBD</ns2:Cd></ns2:CdOrPrtry></ns2:Tp><ns2:Amt Ccy="EUR">1000.00</ns2:Amt><ns2:CdtDbtInd>CRDT</ns2:CdtDbtInd><ns2:Dt><ns2:Dt>2026-11-27</ns2:Dt></ns2:Dt></ns2:Bal>
"#;
        StatementGenerator {
            next_entry: 0,
            entries,
            pending: header.as_bytes().to_vec(),
            offset: 0,
            finished: false,
            produced,
        }
    }

    fn refill(&mut self) {
        self.pending.clear();
        self.offset = 0;
        if self.next_entry < self.entries {
            let i = self.next_entry;
            self.next_entry += 1;
            let minor = amount_minor(i);
            let indicator = if i % 2 == 1 { "DBIT" } else { "CRDT" };
            let entry = format!(
                "   <ns2:Ntry><ns2:NtryRef>{i}</ns2:NtryRef><ns2:Amt Ccy=\"EUR\">{}.{:02}</ns2:Amt>\
                 <ns2:CdtDbtInd>{indicator}</ns2:CdtDbtInd><ns2:Sts><ns2:Cd>BOOK</ns2:Cd></ns2:Sts>\
                 <ns2:BookgDt><ns2:Dt>2026-11-27</ns2:Dt></ns2:BookgDt><ns2:AcctSvcrRef>SVC{i}</ns2:AcctSvcrRef>\
                 <ns2:BkTxCd/><ns2:NtryDtls><ns2:TxDtls><ns2:Refs><ns2:EndToEndId>E2E-{i}</ns2:EndToEndId></ns2:Refs>\
                 <ns2:RltdPties><ns2:Dbtr><ns2:Pty><ns2:Nm>Zhāng Sān 张三 {i}</ns2:Nm></ns2:Pty></ns2:Dbtr></ns2:RltdPties>\
                 <ns2:RmtInf><ns2:Ustrd>Rechnung {i} &amp; Co</ns2:Ustrd></ns2:RmtInf></ns2:TxDtls></ns2:NtryDtls></ns2:Ntry>\n",
                minor / 100,
                minor % 100
            );
            self.pending.extend_from_slice(entry.as_bytes());
        } else if !self.finished {
            self.finished = true;
            self.pending
                .extend_from_slice(b"  </ns2:Stmt>\n </ns2:BkToCstmrStmt>\n</ns2:Document>\n");
        }
    }
}

impl Read for StatementGenerator {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.offset >= self.pending.len() {
            self.refill();
        }
        let rest = &self.pending[self.offset..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.offset += n;
        self.produced.set(self.produced.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn camt053_with_100000_entries_is_streamed_entry_by_entry() {
    let produced = Rc::new(Cell::new(0u64));
    let input = BufReader::with_capacity(
        8 * 1024,
        StatementGenerator::new(ENTRIES, Rc::clone(&produced)),
    );
    let mut reader = StatementReader::new(input, Limits::default());

    match reader.next_item().unwrap() {
        Some(StatementItem::Group(group)) => assert_eq!(group.message_id, "STREAM-1"),
        other => panic!("expected the group header, got {other:?}"),
    }
    match reader.next_item().unwrap() {
        Some(StatementItem::Statement(header)) => {
            assert_eq!(header.id, "STMT-2026-11-27");
            assert_eq!(header.currency, Some(Currency::EUR));
            assert_eq!(header.balances.len(), 1);
        }
        other => panic!("expected the statement header, got {other:?}"),
    }

    let mut count = 0u64;
    let mut net_minor = 0i64;
    let mut weighted = 0u128;
    let mut bytes_at_first_entry = 0;
    while let Some(item) = reader.next_item().unwrap() {
        let StatementItem::Entry(entry) = item else {
            panic!("expected only entries, got {item:?}");
        };
        if count == 0 {
            bytes_at_first_entry = produced.get();
        }
        assert_eq!(entry.reference.as_deref(), Some(count.to_string().as_str()));
        assert_eq!(entry.status, EntryStatus::Booked);
        assert_eq!(entry.amount.currency(), Currency::EUR);
        let minor = entry.amount.minor();
        assert_eq!(minor, amount_minor(count));
        match entry.indicator {
            CreditDebit::Credit => net_minor += minor,
            CreditDebit::Debit => net_minor -= minor,
        }
        weighted += u128::from(count + 1) * u128::try_from(minor).unwrap();
        let tx = entry.transactions.first().unwrap();
        assert_eq!(
            tx.end_to_end_id.as_deref(),
            Some(format!("E2E-{count}").as_str())
        );
        count += 1;
    }

    let (mut expected_net, mut expected_weighted) = (0i64, 0u128);
    for i in 0..ENTRIES {
        let minor = amount_minor(i);
        expected_net += if i % 2 == 1 { -minor } else { minor };
        expected_weighted += u128::from(i + 1) * u128::try_from(minor).unwrap();
    }
    assert_eq!(count, ENTRIES);
    assert_eq!(net_minor, expected_net);
    assert_eq!(weighted, expected_weighted);
    // The document is about 60 MB; the first entry came after one buffer.
    assert!(produced.get() > 50_000_000, "produced {}", produced.get());
    assert!(
        bytes_at_first_entry < 64 * 1024,
        "the first entry needed {bytes_at_first_entry} bytes of input"
    );
}

#[test]
fn an_entry_larger_than_the_element_limit_is_refused_with_its_path() {
    let produced = Rc::new(Cell::new(0u64));
    let input = BufReader::new(StatementGenerator::new(3, produced));
    let limits = Limits {
        max_elements: 10,
        ..Limits::default()
    };
    let error = StatementReader::new(input, limits)
        .find_map(Result::err)
        .expect("an error");
    match &error {
        ParseError::Limit { path, kind, max } => {
            assert_eq!(*kind, LimitKind::Elements);
            assert_eq!(*max, 10);
            assert!(path.starts_with("BkToCstmrStmt/Stmt/Ntry/"), "{path}");
        }
        other => panic!("expected a limit error, got {other}"),
    }
}

/// A document whose one entry reference never ends.
struct EndlessText {
    prefix: &'static [u8],
    offset: usize,
    produced: Rc<Cell<u64>>,
}

impl Read for EndlessText {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.prefix.get(self.offset..).unwrap_or_default();
        let n = if rest.is_empty() {
            buf.fill(b'a');
            buf.len()
        } else {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.offset += n;
            n
        };
        self.produced.set(self.produced.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn an_endless_text_node_is_refused_before_it_fills_memory() {
    let produced = Rc::new(Cell::new(0u64));
    let input = BufReader::with_capacity(
        8 * 1024,
        EndlessText {
            prefix: br#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><GrpHdr><MsgId>"#,
            offset: 0,
            produced: Rc::clone(&produced),
        },
    );
    let error = StatementReader::new(input, Limits::default())
        .find_map(Result::err)
        .expect("an error");
    match &error {
        ParseError::Limit { kind, .. } => assert_eq!(*kind, LimitKind::EventBytes),
        other => panic!("expected a limit error, got {other}"),
    }
    assert!(
        produced.get() < 1024 * 1024,
        "read {} bytes",
        produced.get()
    );
}
