//! `camt.052.001.08`, BankToCustomerAccountReportV08: intraday account
//! reports with interim balances (`ITBD`, `ITAV`) and entries that may still
//! be pending (`PDNG`).
//!
//! The report has the shape of a camt.053 statement under other names
//! (`BkToCstmrAcctRpt/Rpt` for `BkToCstmrStmt/Stmt`), so it reuses the
//! camt.053 model: a report is a [`Statement`] (its [`StatementHeader`] and
//! [`Entry`]s), balances are camt.053's `Balance`s. [`ReportReader`] streams a report
//! file from any `BufRead` exactly like `camt053::StatementReader`: a
//! [`ReportItem::Group`], then per `Rpt` a [`ReportItem::Report`] header
//! followed by one [`ReportItem::Entry`] per `Ntry`, holding at most one
//! header element or one entry as a tree. [`render`] writes a report (the
//! bank simulator's side) with the camt.053 rules: ISO lengths checked,
//! nothing truncated.
//!
//! This module also holds the streaming reader and the renderer shared with
//! `camt054` (the notification differs only in its names and in carrying no
//! balances); the header, entry and balance parsing and rendering are
//! camt.053's own (`pub(crate)` there), so the three messages read and write
//! entries with one piece of code.

use std::io::BufRead;

use super::camt053::{
    parse_entry, parse_group_header, render_entry, render_group_header, render_header, Entry,
    GroupHeader, HeaderBuilder, Statement, StatementHeader, Version,
};
use super::xml::{Tag, Tree, Writer, XmlReader};
use super::{Limits, ParseError, RenderError};

/// The XML namespace of `camt.052.001.08`.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:camt.052.001.08";
/// The message element under `Document`.
pub const MESSAGE: &str = "BkToCstmrAcctRpt";
/// One report under the message.
pub const REPORT: &str = "Rpt";

/// One `Rpt`: its header and its entries (the camt.053 shape).
pub type Report = Statement;
/// Everything of a `Rpt` before its entries: `Id`, `ElctrncSeqNb`,
/// `CreDtTm`, `Acct` and the (often interim) `Bal`s.
pub type ReportHeader = StatementHeader;

/// A whole `BkToCstmrAcctRpt`, for rendering and for small documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankToCustomerAccountReport {
    pub group_header: GroupHeader,
    /// `Rpt`, at least one.
    pub reports: Vec<Report>,
}

/// What [`ReportReader`] yields, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportItem {
    /// The group header, first.
    Group(GroupHeader),
    /// A report's header, before that report's entries.
    Report(ReportHeader),
    /// One entry of the report whose header came last.
    Entry(Entry),
}

/// Renders the reports as UTF-8 XML in the `camt.052.001.08` namespace.
pub fn render(message: &BankToCustomerAccountReport) -> Result<Vec<u8>, RenderError> {
    render_message(&CAMT052, &message.group_header, &message.reports)
}

/// Streams a `camt.052.001.08` document item by item; see the module
/// documentation. As an iterator it stops after the first error.
pub struct ReportReader<R: BufRead> {
    inner: MessageReader<R>,
}

impl<R: BufRead> ReportReader<R> {
    pub fn new(input: R, limits: Limits) -> ReportReader<R> {
        ReportReader {
            inner: MessageReader::new(input, limits, &CAMT052),
        }
    }

    /// The next item, `None` at the end of a well-formed document.
    pub fn next_item(&mut self) -> Result<Option<ReportItem>, ParseError> {
        Ok(self.inner.next_item()?.map(|item| match item {
            Item::Group(group) => ReportItem::Group(group),
            Item::Header(header) => ReportItem::Report(header),
            Item::Entry(entry) => ReportItem::Entry(entry),
        }))
    }
}

impl<R: BufRead> Iterator for ReportReader<R> {
    type Item = Result<ReportItem, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// Reads a whole document into memory (small documents and tests; stream
/// large ones with [`ReportReader`]).
pub fn parse(bytes: &[u8]) -> Result<BankToCustomerAccountReport, ParseError> {
    parse_with_limits(bytes, &Limits::default())
}

/// [`parse`] under `limits`, including [`Limits::max_bytes`].
pub fn parse_with_limits(
    bytes: &[u8],
    limits: &Limits,
) -> Result<BankToCustomerAccountReport, ParseError> {
    let (group_header, reports) = collect(bytes, limits, &CAMT052)?;
    Ok(BankToCustomerAccountReport {
        group_header,
        reports,
    })
}

// ---------------------------------------------------------------------------
// shared with camt054
// ---------------------------------------------------------------------------

/// The names that tell camt.052 and camt.054 apart.
pub(crate) struct Shape {
    pub(crate) namespace: &'static str,
    pub(crate) message: &'static str,
    /// `Rpt` or `Ntfctn`.
    pub(crate) block: &'static str,
    /// Whether the block may carry `Bal` when rendered (camt.054 has none in
    /// its schema; the reader still takes them in).
    pub(crate) balances: bool,
}

const CAMT052: Shape = Shape {
    namespace: NAMESPACE,
    message: MESSAGE,
    block: REPORT,
    balances: true,
};

/// A generic item; each message maps it to its own enum.
pub(crate) enum Item {
    Group(GroupHeader),
    Header(StatementHeader),
    Entry(Entry),
}

pub(crate) fn render_message(
    shape: &Shape,
    group: &GroupHeader,
    blocks: &[Statement],
) -> Result<Vec<u8>, RenderError> {
    let mut w = Writer::new(shape.namespace);
    w.open(shape.message);
    render_group_header(&mut w, group)?;
    if blocks.is_empty() {
        return Err(RenderError::InvalidValue {
            path: w.path_of(shape.block),
            detail: format!("a message needs at least one {}", shape.block),
        });
    }
    for (index, block) in blocks.iter().enumerate() {
        w.open_nth(shape.block, index + 1);
        if !shape.balances && !block.header.balances.is_empty() {
            return Err(RenderError::InvalidValue {
                path: w.path_of("Bal"),
                detail: format!("{} carries no balances", shape.message),
            });
        }
        render_header(&mut w, &block.header, Version::V08)?;
        for (index, entry) in block.entries.iter().enumerate() {
            w.open_nth("Ntry", index + 1);
            render_entry(&mut w, entry, Version::V08)?;
            w.close("Ntry");
        }
        w.close(shape.block);
    }
    w.close(shape.message);
    Ok(w.finish())
}

pub(crate) fn collect(
    bytes: &[u8],
    limits: &Limits,
    shape: &'static Shape,
) -> Result<(GroupHeader, Vec<Statement>), ParseError> {
    if bytes.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size_bytes: bytes.len(),
            max_bytes: limits.max_bytes,
        });
    }
    let mut group_header = None;
    let mut blocks: Vec<Statement> = Vec::new();
    let mut reader = MessageReader::new(bytes, *limits, shape);
    while let Some(item) = reader.next_item()? {
        match item {
            Item::Group(group) => group_header = Some(group),
            Item::Header(header) => blocks.push(Statement {
                header,
                entries: Vec::new(),
            }),
            Item::Entry(entry) => {
                if let Some(block) = blocks.last_mut() {
                    block.entries.push(entry);
                }
            }
        }
    }
    let group_header = group_header.ok_or_else(|| ParseError::Missing {
        path: format!("{}/GrpHdr", shape.message),
    })?;
    Ok((group_header, blocks))
}

/// Where the reader is in the document.
enum State {
    Start,
    InMessage,
    InBlock(Box<HeaderBuilder>),
    AfterMessage,
    Done,
}

/// The camt.053 reader's state machine, over the names of a [`Shape`].
pub(crate) struct MessageReader<R: BufRead> {
    xml: XmlReader<R>,
    /// The header element or entry being read, reused for the next.
    tree: Tree,
    /// The path of the entry being read, reused for the next.
    entry_path: String,
    shape: &'static Shape,
    state: State,
    pending: Option<Item>,
    seen_group: bool,
    blocks: usize,
}

impl<R: BufRead> MessageReader<R> {
    pub(crate) fn new(input: R, limits: Limits, shape: &'static Shape) -> MessageReader<R> {
        MessageReader {
            xml: XmlReader::new(input, limits),
            tree: Tree::default(),
            entry_path: String::new(),
            shape,
            state: State::Start,
            pending: None,
            seen_group: false,
            blocks: 0,
        }
    }

    pub(crate) fn next_item(&mut self) -> Result<Option<Item>, ParseError> {
        let result = self.step();
        if result.is_err() {
            self.state = State::Done;
            self.pending = None;
        }
        result
    }

    fn missing(&self, name: &str) -> ParseError {
        ParseError::Missing {
            path: format!("{}/{name}", self.shape.message),
        }
    }

    fn step(&mut self) -> Result<Option<Item>, ParseError> {
        if let Some(item) = self.pending.take() {
            return Ok(Some(item));
        }
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Start => {
                    self.xml.enter_message(self.shape.message)?;
                    self.state = State::InMessage;
                }
                State::InMessage => match self.xml.next_tag()? {
                    Tag::Open if self.xml.open_name() == "GrpHdr" && !self.seen_group => {
                        let path = self.xml.path();
                        let node = self.xml.read_tree(&mut self.tree)?;
                        self.seen_group = true;
                        self.state = State::InMessage;
                        return Ok(Some(Item::Group(parse_group_header(node, &path)?)));
                    }
                    Tag::Open if self.xml.open_name() == self.shape.block => {
                        if !self.seen_group {
                            return Err(self.missing("GrpHdr"));
                        }
                        self.blocks += 1;
                        self.state = State::InBlock(Box::new(HeaderBuilder {
                            path: self.xml.path(),
                            id: None,
                            electronic_sequence_number: None,
                            created_at: None,
                            account: None,
                            balances: Vec::new(),
                            emitted: false,
                        }));
                    }
                    Tag::Open => {
                        self.xml.read_tree(&mut self.tree)?;
                        self.state = State::InMessage;
                    }
                    Tag::Close => {
                        if !self.seen_group {
                            return Err(self.missing("GrpHdr"));
                        }
                        if self.blocks == 0 {
                            return Err(self.missing(self.shape.block));
                        }
                        self.state = State::AfterMessage;
                    }
                    Tag::Eof => {
                        return Err(ParseError::Structure {
                            path: self.shape.message.to_owned(),
                            problem: "the message is not closed".to_owned(),
                        })
                    }
                },
                State::InBlock(mut builder) => match self.xml.next_tag()? {
                    Tag::Open if self.xml.open_name() == "Ntry" => {
                        self.xml.path_into(&mut self.entry_path);
                        let node = self.xml.read_tree(&mut self.tree)?;
                        let entry = parse_entry(node, &self.entry_path)?;
                        if builder.emitted {
                            self.state = State::InBlock(builder);
                            return Ok(Some(Item::Entry(entry)));
                        }
                        let header = builder.finish()?;
                        builder.emitted = true;
                        self.state = State::InBlock(builder);
                        self.pending = Some(Item::Entry(entry));
                        return Ok(Some(Item::Header(header)));
                    }
                    Tag::Open if builder.emitted => {
                        self.xml.read_tree(&mut self.tree)?;
                        self.state = State::InBlock(builder);
                    }
                    Tag::Open => {
                        let path = self.xml.path();
                        let node = self.xml.read_tree(&mut self.tree)?;
                        builder.apply(node, &path)?;
                        self.state = State::InBlock(builder);
                    }
                    Tag::Close => {
                        self.state = State::InMessage;
                        if !builder.emitted {
                            return Ok(Some(Item::Header(builder.finish()?)));
                        }
                    }
                    Tag::Eof => {
                        return Err(ParseError::Structure {
                            path: builder.path.clone(),
                            problem: format!("the {} is not closed", self.shape.block),
                        })
                    }
                },
                State::AfterMessage => {
                    self.xml.finish()?;
                    self.state = State::Done;
                    return Ok(None);
                }
                State::Done => return Ok(None),
            }
        }
    }
}
