//! `camt.054.001.08`, BankToCustomerDebitCreditNotificationV08: the bank's
//! notice of single credits and debits on an account, as they happen.
//!
//! A notification has the shape of a camt.053 statement under other names
//! (`BkToCstmrDbtCdtNtfctn/Ntfctn` for `BkToCstmrStmt/Stmt`) and, in its
//! schema, no balances. It reuses the camt.053 model and the streaming
//! reader shared with `camt052`: [`NotificationReader`] yields a
//! [`NotificationItem::Group`], then per `Ntfctn` a
//! [`NotificationItem::Notification`] header followed by one
//! [`NotificationItem::Entry`] per `Ntry`, in bounded memory. A `Bal` a bank
//! writes anyway is read into the header; [`render`] refuses one, as the
//! schema has no place for it.

use std::io::BufRead;

use super::camt052::{collect, render_message, Item, MessageReader, Shape};
use super::camt053::{Entry, GroupHeader, Statement, StatementHeader};
use super::{Limits, ParseError, RenderError};

/// The XML namespace of `camt.054.001.08`.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08";
/// The message element under `Document`.
pub const MESSAGE: &str = "BkToCstmrDbtCdtNtfctn";
/// One notification under the message.
pub const NOTIFICATION: &str = "Ntfctn";

const CAMT054: Shape = Shape {
    namespace: NAMESPACE,
    message: MESSAGE,
    block: NOTIFICATION,
    balances: false,
};

/// One `Ntfctn`: its header and its entries (the camt.053 shape).
pub type Notification = Statement;
/// Everything of a `Ntfctn` before its entries: `Id`, `ElctrncSeqNb`,
/// `CreDtTm`, `Acct` (and `Bal`s only if the bank wrote them anyway).
pub type NotificationHeader = StatementHeader;

/// A whole `BkToCstmrDbtCdtNtfctn`, for rendering and for small documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankToCustomerDebitCreditNotification {
    pub group_header: GroupHeader,
    /// `Ntfctn`, at least one.
    pub notifications: Vec<Notification>,
}

/// What [`NotificationReader`] yields, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationItem {
    /// The group header, first.
    Group(GroupHeader),
    /// A notification's header, before that notification's entries.
    Notification(NotificationHeader),
    /// One entry of the notification whose header came last.
    Entry(Entry),
}

/// Renders the notifications as UTF-8 XML in the `camt.054.001.08`
/// namespace. A header with balances is refused (`Ntfctn/Bal` is not in
/// the schema).
pub fn render(message: &BankToCustomerDebitCreditNotification) -> Result<Vec<u8>, RenderError> {
    render_message(&CAMT054, &message.group_header, &message.notifications)
}

/// Streams a `camt.054.001.08` document item by item; see the module
/// documentation. As an iterator it stops after the first error.
pub struct NotificationReader<R: BufRead> {
    inner: MessageReader<R>,
}

impl<R: BufRead> NotificationReader<R> {
    pub fn new(input: R, limits: Limits) -> NotificationReader<R> {
        NotificationReader {
            inner: MessageReader::new(input, limits, &CAMT054),
        }
    }

    /// The next item, `None` at the end of a well-formed document.
    pub fn next_item(&mut self) -> Result<Option<NotificationItem>, ParseError> {
        Ok(self.inner.next_item()?.map(|item| match item {
            Item::Group(group) => NotificationItem::Group(group),
            Item::Header(header) => NotificationItem::Notification(header),
            Item::Entry(entry) => NotificationItem::Entry(entry),
        }))
    }
}

impl<R: BufRead> Iterator for NotificationReader<R> {
    type Item = Result<NotificationItem, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// Reads a whole document into memory (small documents and tests; stream
/// large ones with [`NotificationReader`]).
pub fn parse(bytes: &[u8]) -> Result<BankToCustomerDebitCreditNotification, ParseError> {
    parse_with_limits(bytes, &Limits::default())
}

/// [`parse`] under `limits`, including [`Limits::max_bytes`].
pub fn parse_with_limits(
    bytes: &[u8],
    limits: &Limits,
) -> Result<BankToCustomerDebitCreditNotification, ParseError> {
    let (group_header, notifications) = collect(bytes, limits, &CAMT054)?;
    Ok(BankToCustomerDebitCreditNotification {
        group_header,
        notifications,
    })
}
