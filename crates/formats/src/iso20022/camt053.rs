//! `camt.053.001.08`, BankToCustomerStatementV08, and `camt.053.001.02`,
//! BankToCustomerStatementV02 (what older banks still send): account
//! statements with balances and booked entries, one model for both.
//!
//! [`StatementReader`] streams a statement file of either version from any
//! `BufRead`: it yields a [`StatementItem::Group`] for the group header
//! (with its `MsgPgntn`, [`Pagination`], when the bank split the message),
//! then for each `Stmt` a [`StatementItem::Statement`] with its header
//! (identification, account, currency, balances) followed by one
//! [`StatementItem::Entry`] per `Ntry`. At any time it holds the open
//! elements' names, one event's bytes and at most one header element or one
//! entry as a tree, so a statement of any length is read in bounded memory.
//! The header is complete before the first entry because ISO 20022 orders
//! `Bal` before `Ntry`.
//!
//! The [`Version`] is told from the namespace of `Document` (any prefix, or
//! the default namespace; none at all reads as `.08`, any other namespace
//! is refused) and known once the first item is read
//! ([`StatementReader::version`], [`parse_any`]). Both versions are read the
//! same way, tolerant of namespace prefixes, absent optional elements,
//! elements we do not model, the date-time form of booking and value dates,
//! the entry status as `Sts/Cd` (`.08`) or a bare `Sts` code (`.02`), and
//! `RltdPties` parties with (`.08`) or without (`.02`) the `Pty` level.
//! Strict about amounts (exact, never negative, the currency's decimals)
//! and codes (`CRDT`/`DBIT`, the entry status and balance type lists,
//! `LastPgInd`).
//!
//! [`render`] writes a [`BankToCustomerStatement`] as `.08`,
//! [`render_version`] in either version (the bank simulator's side), in
//! schema order and under the same rules as `pain001::render`: ISO lengths
//! checked, nothing truncated, and refusing what the chosen schema cannot
//! carry (a statement without `Bal`; in `.02` also a statement without
//! `CreDtTm` and the entry status `FUTR`). Each entry is written with one
//! `NtryDtls` holding its `TxDtls`; the mandatory `BkTxCd` is written empty
//! when the entry has no proprietary code.

use std::io::BufRead;

use domain::{BusinessDate, Currency, Money};

use super::pain001::{account_id, parse_account_id, parse_party, parse_remittance};
use super::xml::{self, Node, Tag, Tree, Writer, XmlReader};
use super::{
    clip, is_iso_date_time, AccountIdentification, Limits, ParseError, Party, RenderError, MAX140,
    MAX35,
};

/// The XML namespace of `camt.053.001.08`, what [`render`] writes.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08";
/// The XML namespace of `camt.053.001.02`.
pub const NAMESPACE_V02: &str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02";
/// The message element under `Document`, in both versions.
pub const MESSAGE: &str = "BkToCstmrStmt";
/// `Max5NumericText`: the largest `MsgPgntn/PgNb`.
pub const MAX_PAGE_NUMBER: u32 = 99_999;
/// `Number` (`totalDigits` 18): the largest `ElctrncSeqNb`.
pub const MAX_SEQUENCE_NUMBER: u64 = 999_999_999_999_999_999;

/// Which `camt.053` schema a document follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `camt.053.001.02`, BankToCustomerStatementV02 (2009), what older
    /// banks still send: the entry status is a bare code (`<Sts>BOOK</Sts>`,
    /// no `FUTR`), related parties have no `Pty` level, and a statement
    /// must have its `CreDtTm` and at least one `Bal`.
    V02,
    /// `camt.053.001.08`, BankToCustomerStatementV08.
    V08,
}

impl Version {
    /// The XML namespace of `Document` in this version.
    pub fn namespace(self) -> &'static str {
        match self {
            Version::V02 => NAMESPACE_V02,
            Version::V08 => NAMESPACE,
        }
    }

    /// The version whose namespace is `namespace`, exactly.
    pub fn from_namespace(namespace: &str) -> Option<Version> {
        [Version::V02, Version::V08]
            .into_iter()
            .find(|v| v.namespace() == namespace)
    }
}

/// `CRDT` or `DBIT`: which way an amount moves (or which side a balance is
/// on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreditDebit {
    Credit,
    Debit,
}

impl CreditDebit {
    pub fn code(self) -> &'static str {
        match self {
            CreditDebit::Credit => "CRDT",
            CreditDebit::Debit => "DBIT",
        }
    }

    pub fn from_code(code: &str) -> Option<CreditDebit> {
        match code {
            "CRDT" => Some(CreditDebit::Credit),
            "DBIT" => Some(CreditDebit::Debit),
            _ => None,
        }
    }
}

/// `Sts/Cd` of an entry (ISO `ExternalEntryStatus1Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryStatus {
    /// `BOOK`: booked on the account.
    Booked,
    /// `PDNG`: not yet booked.
    Pending,
    /// `INFO`: for information only, never booked.
    Information,
    /// `FUTR`: expected to be booked later.
    Future,
}

impl EntryStatus {
    pub fn code(self) -> &'static str {
        match self {
            EntryStatus::Booked => "BOOK",
            EntryStatus::Pending => "PDNG",
            EntryStatus::Information => "INFO",
            EntryStatus::Future => "FUTR",
        }
    }

    pub fn from_code(code: &str) -> Option<EntryStatus> {
        match code {
            "BOOK" => Some(EntryStatus::Booked),
            "PDNG" => Some(EntryStatus::Pending),
            "INFO" => Some(EntryStatus::Information),
            "FUTR" => Some(EntryStatus::Future),
            _ => None,
        }
    }
}

/// `Bal/Tp/CdOrPrtry/Cd` (ISO `BalanceType12Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BalanceType {
    /// `OPBD`: opening booked.
    OpeningBooked,
    /// `CLBD`: closing booked.
    ClosingBooked,
    /// `CLAV`: closing available.
    ClosingAvailable,
    /// `OPAV`: opening available.
    OpeningAvailable,
    /// `ITBD`: interim booked.
    InterimBooked,
    /// `ITAV`: interim available.
    InterimAvailable,
    /// `FWAV`: forward available.
    ForwardAvailable,
    /// `PRCD`: previously closed booked.
    PreviouslyClosedBooked,
    /// `XPCD`: expected.
    Expected,
    /// `INFO`: information.
    Information,
}

const BALANCE_TYPES: [BalanceType; 10] = [
    BalanceType::OpeningBooked,
    BalanceType::ClosingBooked,
    BalanceType::ClosingAvailable,
    BalanceType::OpeningAvailable,
    BalanceType::InterimBooked,
    BalanceType::InterimAvailable,
    BalanceType::ForwardAvailable,
    BalanceType::PreviouslyClosedBooked,
    BalanceType::Expected,
    BalanceType::Information,
];

impl BalanceType {
    pub fn code(self) -> &'static str {
        match self {
            BalanceType::OpeningBooked => "OPBD",
            BalanceType::ClosingBooked => "CLBD",
            BalanceType::ClosingAvailable => "CLAV",
            BalanceType::OpeningAvailable => "OPAV",
            BalanceType::InterimBooked => "ITBD",
            BalanceType::InterimAvailable => "ITAV",
            BalanceType::ForwardAvailable => "FWAV",
            BalanceType::PreviouslyClosedBooked => "PRCD",
            BalanceType::Expected => "XPCD",
            BalanceType::Information => "INFO",
        }
    }

    pub fn from_code(code: &str) -> Option<BalanceType> {
        BALANCE_TYPES.into_iter().find(|kind| kind.code() == code)
    }

    /// Every balance type, for tests and simulators.
    pub fn all() -> impl Iterator<Item = BalanceType> {
        BALANCE_TYPES.into_iter()
    }
}

/// A whole `BkToCstmrStmt`, for rendering and for small documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankToCustomerStatement {
    pub group_header: GroupHeader,
    /// `Stmt`, at least one.
    pub statements: Vec<Statement>,
}

/// `GrpHdr` (of camt.053, camt.052 and camt.054 alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupHeader {
    /// `MsgId`, `Max35Text`.
    pub message_id: String,
    /// `CreDtTm`, an ISO date-time.
    pub created_at: String,
    /// `MsgPgntn`, when the bank split the message over several pages.
    pub pagination: Option<Pagination>,
}

impl GroupHeader {
    /// A header of a message on one page (no `MsgPgntn`).
    pub fn new(message_id: impl Into<String>, created_at: impl Into<String>) -> GroupHeader {
        GroupHeader {
            message_id: message_id.into(),
            created_at: created_at.into(),
            pagination: None,
        }
    }
}

/// `GrpHdr/MsgPgntn`: which page of a message split over several this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pagination {
    /// `PgNb`, a `Max5NumericText`: at most [`MAX_PAGE_NUMBER`] when
    /// rendered.
    pub page_number: u32,
    /// `LastPgInd`: whether no page follows this one.
    pub last_page: bool,
}

/// One `Stmt`: its header and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub header: StatementHeader,
    pub entries: Vec<Entry>,
}

/// Everything of a `Stmt` before its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementHeader {
    /// `Id`, `Max35Text`.
    pub id: String,
    /// `ElctrncSeqNb`: the bank's running number of statements.
    pub electronic_sequence_number: Option<u64>,
    /// `CreDtTm`, an ISO date-time.
    pub created_at: Option<String>,
    /// `Acct/Id`.
    pub account: AccountIdentification,
    /// `Acct/Ccy`.
    pub currency: Option<Currency>,
    /// `Bal`, in document order.
    pub balances: Vec<Balance>,
}

/// One `Bal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// `Tp/CdOrPrtry/Cd`.
    pub kind: BalanceType,
    /// `Amt` with its `Ccy`; never negative, the side is `indicator`.
    pub amount: Money,
    /// `CdtDbtInd`.
    pub indicator: CreditDebit,
    /// `Dt/Dt`.
    pub date: BusinessDate,
}

/// One `Ntry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `NtryRef`, `Max35Text`.
    pub reference: Option<String>,
    /// `Amt` with its `Ccy`; never negative, the direction is `indicator`.
    pub amount: Money,
    /// `CdtDbtInd`.
    pub indicator: CreditDebit,
    /// `Sts/Cd`.
    pub status: EntryStatus,
    /// `BookgDt/Dt`.
    pub booking_date: Option<BusinessDate>,
    /// `ValDt/Dt`.
    pub value_date: Option<BusinessDate>,
    /// `AcctSvcrRef`, `Max35Text`: the bank's unique reference, when given.
    pub account_servicer_reference: Option<String>,
    /// `BkTxCd/Prtry/Cd`, `Max35Text`.
    pub bank_transaction_code: Option<String>,
    /// `NtryDtls/TxDtls`, in document order across all `NtryDtls`.
    pub transactions: Vec<TransactionDetails>,
}

/// One `TxDtls`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransactionDetails {
    /// `Refs/EndToEndId`, `Max35Text`.
    pub end_to_end_id: Option<String>,
    /// `RltdPties/Dbtr/Pty`.
    pub debtor: Party,
    /// `RltdPties/Cdtr/Pty`.
    pub creditor: Party,
    /// `RmtInf/Ustrd`, each `Max140Text`.
    pub remittance: Vec<String>,
}

// ---------------------------------------------------------------------------
// render
// ---------------------------------------------------------------------------

/// Renders the statements as UTF-8 XML in the `camt.053.001.08` namespace.
pub fn render(message: &BankToCustomerStatement) -> Result<Vec<u8>, RenderError> {
    render_version(message, Version::V08)
}

/// Renders the statements in the schema of `version`, refusing what that
/// schema cannot carry: in both a statement without balances, in `.02` a
/// statement without `CreDtTm` and an entry with the status `FUTR`.
pub fn render_version(
    message: &BankToCustomerStatement,
    version: Version,
) -> Result<Vec<u8>, RenderError> {
    let mut w = Writer::new(version.namespace());
    w.open(MESSAGE);
    render_group_header(&mut w, &message.group_header)?;
    if message.statements.is_empty() {
        return Err(RenderError::InvalidValue {
            path: w.path_of("Stmt"),
            detail: "a message needs at least one statement".to_owned(),
        });
    }
    for (index, statement) in message.statements.iter().enumerate() {
        w.open_nth("Stmt", index + 1);
        // Both schemas have `Bal` 1..n in a statement (camt.052 and
        // camt.054, sharing `render_header`, have 0..n and none).
        if statement.header.balances.is_empty() {
            return Err(RenderError::InvalidValue {
                path: w.path_of("Bal"),
                detail: "a camt.053 statement needs at least one balance".to_owned(),
            });
        }
        render_header(&mut w, &statement.header, version)?;
        for (index, entry) in statement.entries.iter().enumerate() {
            w.open_nth("Ntry", index + 1);
            render_entry(&mut w, entry, version)?;
            w.close("Ntry");
        }
        w.close("Stmt");
    }
    w.close(MESSAGE);
    Ok(w.finish())
}

/// `GrpHdr` in schema order: `MsgId`, `CreDtTm`, `MsgPgntn` (the same in
/// every version of camt.052, camt.053 and camt.054 we write).
pub(crate) fn render_group_header(w: &mut Writer, group: &GroupHeader) -> Result<(), RenderError> {
    w.open("GrpHdr");
    w.text("MsgId", &group.message_id, MAX35)?;
    date_time(w, "CreDtTm", &group.created_at)?;
    if let Some(pagination) = group.pagination {
        w.open("MsgPgntn");
        if pagination.page_number > MAX_PAGE_NUMBER {
            return Err(RenderError::InvalidValue {
                path: w.path_of("PgNb"),
                detail: format!(
                    "page {} has more than the 5 digits of Max5NumericText",
                    pagination.page_number
                ),
            });
        }
        w.value("PgNb", &pagination.page_number.to_string());
        w.value(
            "LastPgInd",
            if pagination.last_page {
                "true"
            } else {
                "false"
            },
        );
        w.close("MsgPgntn");
    }
    w.close("GrpHdr");
    Ok(())
}

pub(crate) fn date_time(w: &mut Writer, name: &'static str, text: &str) -> Result<(), RenderError> {
    if !is_iso_date_time(text) {
        return Err(RenderError::InvalidValue {
            path: w.path_of(name),
            detail: format!(
                "{:?} is not an ISO date-time like 2026-11-28T10:15:00+08:00",
                clip(text)
            ),
        });
    }
    w.value(name, text);
    Ok(())
}

pub(crate) fn date(w: &mut Writer, name: &'static str, date: BusinessDate) {
    w.open(name);
    w.value("Dt", &date.to_string());
    w.close(name);
}

/// A statement's (report's, notification's) elements before its entries;
/// `version` is camt.053's, `V08` for camt.052 and camt.054 `.08`.
pub(crate) fn render_header(
    w: &mut Writer,
    header: &StatementHeader,
    version: Version,
) -> Result<(), RenderError> {
    w.text("Id", &header.id, MAX35)?;
    if let Some(number) = header.electronic_sequence_number {
        if number > MAX_SEQUENCE_NUMBER {
            return Err(RenderError::InvalidValue {
                path: w.path_of("ElctrncSeqNb"),
                detail: format!("{number} has more than the 18 digits of an ISO Number"),
            });
        }
        w.value("ElctrncSeqNb", &number.to_string());
    }
    match &header.created_at {
        Some(created_at) => date_time(w, "CreDtTm", created_at)?,
        None if version == Version::V02 => {
            return Err(RenderError::InvalidValue {
                path: w.path_of("CreDtTm"),
                detail: "camt.053.001.02 requires the statement's creation date-time".to_owned(),
            })
        }
        None => {}
    }
    w.open("Acct");
    account_id(w, &header.account)?;
    if let Some(currency) = header.currency {
        w.value("Ccy", currency.code());
    }
    w.close("Acct");
    for (index, balance) in header.balances.iter().enumerate() {
        w.open_nth("Bal", index + 1);
        w.open("Tp");
        w.open("CdOrPrtry");
        w.value("Cd", balance.kind.code());
        w.close("CdOrPrtry");
        w.close("Tp");
        w.amount("Amt", balance.amount)?;
        w.value("CdtDbtInd", balance.indicator.code());
        date(w, "Dt", balance.date);
        w.close("Bal");
    }
    Ok(())
}

/// One `Ntry`'s children in schema order; `version` as for
/// [`render_header`].
pub(crate) fn render_entry(
    w: &mut Writer,
    entry: &Entry,
    version: Version,
) -> Result<(), RenderError> {
    if let Some(reference) = &entry.reference {
        w.text("NtryRef", reference, MAX35)?;
    }
    w.amount("Amt", entry.amount)?;
    w.value("CdtDbtInd", entry.indicator.code());
    match version {
        // `EntryStatus2Code`: BOOK, PDNG, INFO.
        Version::V02 if entry.status == EntryStatus::Future => {
            return Err(RenderError::InvalidValue {
                path: w.path_of("Sts"),
                detail: "FUTR is not an entry status of camt.053.001.02 (BOOK, PDNG, INFO)"
                    .to_owned(),
            })
        }
        Version::V02 => w.value("Sts", entry.status.code()),
        Version::V08 => {
            w.open("Sts");
            w.value("Cd", entry.status.code());
            w.close("Sts");
        }
    }
    if let Some(day) = entry.booking_date {
        date(w, "BookgDt", day);
    }
    if let Some(day) = entry.value_date {
        date(w, "ValDt", day);
    }
    if let Some(reference) = &entry.account_servicer_reference {
        w.text("AcctSvcrRef", reference, MAX35)?;
    }
    w.open("BkTxCd");
    if let Some(code) = &entry.bank_transaction_code {
        w.open("Prtry");
        w.text("Cd", code, MAX35)?;
        w.close("Prtry");
    }
    w.close("BkTxCd");
    if !entry.transactions.is_empty() {
        w.open("NtryDtls");
        for (index, tx) in entry.transactions.iter().enumerate() {
            w.open_nth("TxDtls", index + 1);
            render_transaction(w, tx, version)?;
            w.close("TxDtls");
        }
        w.close("NtryDtls");
    }
    Ok(())
}

pub(crate) fn render_transaction(
    w: &mut Writer,
    tx: &TransactionDetails,
    version: Version,
) -> Result<(), RenderError> {
    if let Some(id) = &tx.end_to_end_id {
        w.open("Refs");
        w.text("EndToEndId", id, MAX35)?;
        w.close("Refs");
    }
    let has = |p: &Party| p.name.is_some() || !p.address_lines.is_empty();
    if has(&tx.debtor) || has(&tx.creditor) {
        w.open("RltdPties");
        for (name, party) in [("Dbtr", &tx.debtor), ("Cdtr", &tx.creditor)] {
            if !has(party) {
                continue;
            }
            match version {
                // `PartyIdentification32` directly under `Dbtr`/`Cdtr`.
                Version::V02 => super::pain001::party(w, name, party)?,
                // `Party40Choice`: the party under `Pty`.
                Version::V08 => {
                    w.open(name);
                    super::pain001::party(w, "Pty", party)?;
                    w.close(name);
                }
            }
        }
        w.close("RltdPties");
    }
    if !tx.remittance.is_empty() {
        w.open("RmtInf");
        for (index, line) in tx.remittance.iter().enumerate() {
            w.text_nth("Ustrd", index + 1, line, MAX140)?;
        }
        w.close("RmtInf");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// parse
// ---------------------------------------------------------------------------

/// What [`StatementReader`] yields, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementItem {
    /// The group header, first.
    Group(GroupHeader),
    /// A statement's header, before that statement's entries.
    Statement(StatementHeader),
    /// One entry of the statement whose header came last.
    Entry(Entry),
}

/// Where the reader is in the document.
enum State {
    Start,
    InMessage,
    InStatement(Box<HeaderBuilder>),
    AfterMessage,
    Done,
}

/// A statement header being read; `emitted` once it has been yielded.
pub(crate) struct HeaderBuilder {
    pub(crate) path: String,
    pub(crate) id: Option<String>,
    pub(crate) electronic_sequence_number: Option<u64>,
    pub(crate) created_at: Option<String>,
    pub(crate) account: Option<(AccountIdentification, Option<Currency>)>,
    pub(crate) balances: Vec<Balance>,
    pub(crate) emitted: bool,
}

/// Streams a `camt.053.001.08` or `.001.02` document item by item; see the
/// module documentation. As an iterator it stops after the first error.
pub struct StatementReader<R: BufRead> {
    xml: XmlReader<R>,
    /// The header element or entry being read, reused for the next.
    tree: Tree,
    /// The path of the entry being read, reused for the next.
    entry_path: String,
    version: Option<Version>,
    state: State,
    pending: Option<StatementItem>,
    seen_group: bool,
    statements: usize,
}

impl<R: BufRead> StatementReader<R> {
    pub fn new(input: R, limits: Limits) -> StatementReader<R> {
        StatementReader {
            xml: XmlReader::new(input, limits),
            tree: Tree::default(),
            entry_path: String::new(),
            version: None,
            state: State::Start,
            pending: None,
            seen_group: false,
            statements: 0,
        }
    }

    /// The version of the document, known once the first item has been
    /// read: from the namespace of `Document`; none means `.08`.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The next item, `None` at the end of a well-formed document.
    pub fn next_item(&mut self) -> Result<Option<StatementItem>, ParseError> {
        let result = self.step();
        if result.is_err() {
            self.state = State::Done;
            self.pending = None;
        }
        result
    }

    fn step(&mut self) -> Result<Option<StatementItem>, ParseError> {
        if let Some(item) = self.pending.take() {
            return Ok(Some(item));
        }
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Start => {
                    self.xml.enter_message(MESSAGE)?;
                    self.version = Some(version_of(self.xml.root_namespace())?);
                    self.state = State::InMessage;
                }
                State::InMessage => match self.xml.next_tag()? {
                    Tag::Open if self.xml.open_name() == "GrpHdr" && !self.seen_group => {
                        let path = self.xml.path();
                        let node = self.xml.read_tree(&mut self.tree)?;
                        self.seen_group = true;
                        self.state = State::InMessage;
                        return Ok(Some(StatementItem::Group(parse_group_header(node, &path)?)));
                    }
                    Tag::Open if self.xml.open_name() == "Stmt" => {
                        if !self.seen_group {
                            return Err(ParseError::Missing {
                                path: format!("{MESSAGE}/GrpHdr"),
                            });
                        }
                        self.statements += 1;
                        self.state = State::InStatement(Box::new(HeaderBuilder {
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
                            return Err(ParseError::Missing {
                                path: format!("{MESSAGE}/GrpHdr"),
                            });
                        }
                        if self.statements == 0 {
                            return Err(ParseError::Missing {
                                path: format!("{MESSAGE}/Stmt"),
                            });
                        }
                        self.state = State::AfterMessage;
                    }
                    Tag::Eof => {
                        return Err(ParseError::Structure {
                            path: MESSAGE.to_owned(),
                            problem: "the message is not closed".to_owned(),
                        })
                    }
                },
                State::InStatement(mut builder) => match self.xml.next_tag()? {
                    Tag::Open if self.xml.open_name() == "Ntry" => {
                        self.xml.path_into(&mut self.entry_path);
                        let node = self.xml.read_tree(&mut self.tree)?;
                        let entry = parse_entry(node, &self.entry_path)?;
                        if builder.emitted {
                            self.state = State::InStatement(builder);
                            return Ok(Some(StatementItem::Entry(entry)));
                        }
                        let header = builder.finish()?;
                        builder.emitted = true;
                        self.state = State::InStatement(builder);
                        self.pending = Some(StatementItem::Entry(entry));
                        return Ok(Some(StatementItem::Statement(header)));
                    }
                    Tag::Open if builder.emitted => {
                        self.xml.read_tree(&mut self.tree)?;
                        self.state = State::InStatement(builder);
                    }
                    Tag::Open => {
                        let path = self.xml.path();
                        let node = self.xml.read_tree(&mut self.tree)?;
                        builder.apply(node, &path)?;
                        self.state = State::InStatement(builder);
                    }
                    Tag::Close => {
                        self.state = State::InMessage;
                        if !builder.emitted {
                            return Ok(Some(StatementItem::Statement(builder.finish()?)));
                        }
                    }
                    Tag::Eof => {
                        return Err(ParseError::Structure {
                            path: builder.path.clone(),
                            problem: "the statement is not closed".to_owned(),
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

impl<R: BufRead> Iterator for StatementReader<R> {
    type Item = Result<StatementItem, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

impl HeaderBuilder {
    /// Takes in one child element of `Stmt` (before the entries).
    pub(crate) fn apply(&mut self, node: Node<'_>, path: &str) -> Result<(), ParseError> {
        match node.name() {
            "Id" if self.id.is_none() => {
                if node.text().is_empty() {
                    return Err(ParseError::Invalid {
                        path: path.to_owned(),
                        problem: "empty; text is required".to_owned(),
                    });
                }
                self.id = Some(node.text().to_owned());
            }
            "ElctrncSeqNb" => {
                let text = xml::trimmed(node.text());
                let number = text
                    .parse::<u64>()
                    .ok()
                    .filter(|_| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()));
                self.electronic_sequence_number =
                    Some(number.ok_or_else(|| ParseError::Invalid {
                        path: path.to_owned(),
                        problem: format!("{:?} is not a whole number", clip(text)),
                    })?);
            }
            "CreDtTm" => {
                let text = xml::trimmed(node.text());
                self.created_at = (!text.is_empty()).then(|| text.to_owned());
            }
            "Acct" if self.account.is_none() => {
                let account = parse_account_id(node, path)?;
                let currency = match node.child("Ccy") {
                    Some(ccy) => {
                        Some(Currency::from_code(xml::trimmed(ccy.text())).map_err(|e| {
                            ParseError::Invalid {
                                path: format!("{path}/Ccy"),
                                problem: e.to_string(),
                            }
                        })?)
                    }
                    None => None,
                };
                self.account = Some((account, currency));
            }
            "Bal" => self.balances.push(parse_balance(node, path)?),
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn finish(&self) -> Result<StatementHeader, ParseError> {
        let id = self.id.clone().ok_or_else(|| ParseError::Missing {
            path: format!("{}/Id", self.path),
        })?;
        let (account, currency) = self.account.clone().ok_or_else(|| ParseError::Missing {
            path: format!("{}/Acct", self.path),
        })?;
        Ok(StatementHeader {
            id,
            electronic_sequence_number: self.electronic_sequence_number,
            created_at: self.created_at.clone(),
            account,
            currency,
            balances: self.balances.clone(),
        })
    }
}

/// The version a root namespace names; no namespace (or `xmlns=""`,
/// which says the same) means `.08`.
fn version_of(namespace: Option<&str>) -> Result<Version, ParseError> {
    let namespace = namespace.map(xml::trimmed).unwrap_or_default();
    if namespace.is_empty() {
        return Ok(Version::V08);
    }
    Version::from_namespace(namespace).ok_or_else(|| ParseError::Structure {
        path: "Document".to_owned(),
        problem: format!(
            "namespace {:?} is neither camt.053.001.02 nor camt.053.001.08",
            clip(namespace)
        ),
    })
}

/// `GrpHdr`: `MsgId`, `CreDtTm` and the optional `MsgPgntn` (shared with
/// camt.052 and camt.054).
pub(crate) fn parse_group_header(node: Node<'_>, path: &str) -> Result<GroupHeader, ParseError> {
    let pagination = match node.child("MsgPgntn") {
        None => None,
        Some(pages) => {
            let at = format!("{path}/MsgPgntn");
            let text = xml::required_code(pages, &at, &["PgNb"])?;
            let page_number = Some(text)
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse::<u32>().ok())
                .ok_or_else(|| ParseError::Invalid {
                    path: format!("{at}/PgNb"),
                    problem: format!("{:?} is not a page number", clip(text)),
                })?;
            let last_page = match xml::required_code(pages, &at, &["LastPgInd"])? {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(ParseError::Invalid {
                        path: format!("{at}/LastPgInd"),
                        problem: format!("{:?} is neither true nor false", clip(other)),
                    })
                }
            };
            Some(Pagination {
                page_number,
                last_page,
            })
        }
    };
    Ok(GroupHeader {
        message_id: xml::required_text(node, path, &["MsgId"])?,
        created_at: xml::required_code(node, path, &["CreDtTm"])?.to_owned(),
        pagination,
    })
}

pub(crate) fn credit_debit(node: Node<'_>, path: &str) -> Result<CreditDebit, ParseError> {
    credit_debit_of(xml::required(node, path, &["CdtDbtInd"])?, path)
}

/// [`credit_debit`] of `found`, the `CdtDbtInd` under `path`.
fn credit_debit_of(found: Node<'_>, path: &str) -> Result<CreditDebit, ParseError> {
    let code = xml::trimmed(found.text());
    CreditDebit::from_code(code).ok_or_else(|| ParseError::Invalid {
        path: format!("{path}/CdtDbtInd"),
        problem: format!("{:?} is neither CRDT nor DBIT", clip(code)),
    })
}

pub(crate) fn parse_balance(node: Node<'_>, path: &str) -> Result<Balance, ParseError> {
    let code = xml::required_code(node, path, &["Tp", "CdOrPrtry", "Cd"])?;
    let kind = BalanceType::from_code(code).ok_or_else(|| ParseError::Invalid {
        path: format!("{path}/Tp/CdOrPrtry/Cd"),
        problem: format!("{:?} is not an ISO balance type code", clip(code)),
    })?;
    Ok(Balance {
        kind,
        amount: xml::amount(node, path, &["Amt"])?,
        indicator: credit_debit(node, path)?,
        date: xml::date_choice(node, path, &["Dt"])?,
    })
}

pub(crate) fn parse_entry(node: Node<'_>, path: &str) -> Result<Entry, ParseError> {
    // One walk over the entry's children (this runs for every entry of a
    // statement): the first of each name, as `Node::child` would find it,
    // and every `NtryDtls/TxDtls` in document order.
    let (mut sts, mut amt, mut indicator, mut reference) = (None, None, None, None);
    let (mut booking, mut value, mut servicer, mut code) = (None, None, None, None);
    let mut transactions = Vec::new();
    for child in node.elements() {
        let slot = if child.is("NtryDtls") {
            transactions.extend(child.children("TxDtls").map(parse_transaction));
            continue;
        } else if child.is("NtryRef") {
            &mut reference
        } else if child.is("Amt") {
            &mut amt
        } else if child.is("CdtDbtInd") {
            &mut indicator
        } else if child.is("Sts") {
            &mut sts
        } else if child.is("BookgDt") {
            &mut booking
        } else if child.is("ValDt") {
            &mut value
        } else if child.is("AcctSvcrRef") {
            &mut servicer
        } else if child.is("BkTxCd") {
            &mut code
        } else {
            continue;
        };
        slot.get_or_insert(child);
    }
    let status_code = xml::present(sts, path, &["Sts"])?;
    // Version .001.02 writes the code directly in `Sts`.
    let status_text = match status_code.child("Cd") {
        Some(cd) => xml::trimmed(cd.text()),
        None => xml::trimmed(status_code.text()),
    };
    let status = EntryStatus::from_code(status_text).ok_or_else(|| ParseError::Invalid {
        path: format!("{path}/Sts/Cd"),
        problem: format!("{:?} is not BOOK, PDNG, INFO or FUTR", clip(status_text)),
    })?;
    let text = |found: Option<Node<'_>>| {
        found
            .map(Node::text)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    let optional_date = |found: Option<Node<'_>>, name: &str| match found {
        Some(choice) => xml::date_choice_of(choice, path, &[name]).map(Some),
        None => Ok(None),
    };
    Ok(Entry {
        reference: text(reference),
        amount: xml::amount_of(xml::present(amt, path, &["Amt"])?, path, &["Amt"])?,
        indicator: credit_debit_of(xml::present(indicator, path, &["CdtDbtInd"])?, path)?,
        status,
        booking_date: optional_date(booking, "BookgDt")?,
        value_date: optional_date(value, "ValDt")?,
        account_servicer_reference: text(servicer),
        bank_transaction_code: text(code.and_then(|c| c.at(&["Prtry", "Cd"]))),
        transactions,
    })
}

pub(crate) fn parse_transaction(node: Node<'_>) -> TransactionDetails {
    let party = |role: &str| {
        let Some(related) = node.at(&["RltdPties", role]) else {
            return Party::default();
        };
        // `Party40Choice` since .001.08 (`Dbtr/Pty/Nm`); older versions
        // put the name directly under `Dbtr`.
        parse_party(Some(related.child("Pty").unwrap_or(related)))
    };
    TransactionDetails {
        end_to_end_id: xml::optional_text(node, &["Refs", "EndToEndId"]),
        debtor: party("Dbtr"),
        creditor: party("Cdtr"),
        remittance: parse_remittance(node),
    }
}

/// Reads a whole document into memory (small documents and tests; stream
/// large ones with [`StatementReader`]).
pub fn parse(bytes: &[u8]) -> Result<BankToCustomerStatement, ParseError> {
    parse_with_limits(bytes, &Limits::default())
}

/// [`parse`] under `limits`, including [`Limits::max_bytes`].
pub fn parse_with_limits(
    bytes: &[u8],
    limits: &Limits,
) -> Result<BankToCustomerStatement, ParseError> {
    parse_any_with_limits(bytes, limits).map(|(_, message)| message)
}

/// Reads a whole document of either version, and says which it was.
pub fn parse_any(bytes: &[u8]) -> Result<(Version, BankToCustomerStatement), ParseError> {
    parse_any_with_limits(bytes, &Limits::default())
}

/// [`parse_any`] under `limits`, including [`Limits::max_bytes`].
pub fn parse_any_with_limits(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(Version, BankToCustomerStatement), ParseError> {
    if bytes.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size_bytes: bytes.len(),
            max_bytes: limits.max_bytes,
        });
    }
    let mut group_header = None;
    let mut statements: Vec<Statement> = Vec::new();
    let mut reader = StatementReader::new(bytes, *limits);
    while let Some(item) = reader.next_item()? {
        match item {
            StatementItem::Group(group) => group_header = Some(group),
            StatementItem::Statement(header) => statements.push(Statement {
                header,
                entries: Vec::new(),
            }),
            StatementItem::Entry(entry) => {
                if let Some(statement) = statements.last_mut() {
                    statement.entries.push(entry);
                }
            }
        }
    }
    let group_header = group_header.ok_or_else(|| ParseError::Missing {
        path: format!("{MESSAGE}/GrpHdr"),
    })?;
    // Known once anything was read, and something was: the group header.
    let version = reader.version().unwrap_or(Version::V08);
    Ok((
        version,
        BankToCustomerStatement {
            group_header,
            statements,
        },
    ))
}
