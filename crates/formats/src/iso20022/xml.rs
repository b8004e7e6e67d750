//! The XML plumbing shared by the ISO 20022 messages: a small checked
//! writer, and a pull reader that hands out one subtree at a time.
//!
//! The reader never builds a whole document. A message parser walks the top
//! levels tag by tag ([`XmlReader::next_tag`]) and asks for one subtree (a
//! group header, a `PmtInf`, one `Ntry`) as a [`Tree`], bounded by
//! [`Limits::max_elements`] and walked through [`Node`] handles;
//! everything else is forgotten as soon as it is read. Element and
//! attribute names are compared by local name, so any namespace prefix (or
//! none) reads the same.
//!
//! Statements stream hundreds of megabytes through this reader, so its
//! per-element path allocates nothing (BENCHMARKS.md, "camt.053
//! streaming"): a tree lives in flat buffers reused from one subtree to the
//! next, names compare as packed integers, whitespace between elements is
//! recognised on the raw bytes and never copied, text is checked as UTF-8
//! and unescaped once, straight into the tree, and an error's element path
//! (`Stmt[2]/Ntry[7]/Amt`) is worked out from the open elements and the
//! tree only when the error is made.

use std::io::{BufRead, Read};

use domain::{BusinessDate, Currency, Money};
use quick_xml::events::Event;
use quick_xml::Reader;

use super::{clip, LimitKind, Limits, ParseError, RenderError};

// ---------------------------------------------------------------------------
// writing
// ---------------------------------------------------------------------------

/// Builds a UTF-8 document with two-space indentation, keeping the path of
/// open elements for errors. Names are `'static` ASCII from the codec, so
/// only text and attribute values need checking and escaping.
pub(crate) struct Writer {
    out: String,
    path: Vec<String>,
}

impl Writer {
    /// Starts a document: the declaration and `<Document xmlns="...">`. The
    /// root is not part of error paths.
    pub(crate) fn new(namespace: &str) -> Writer {
        let mut out = String::with_capacity(4096);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"");
        out.push_str(namespace);
        out.push_str("\">\n");
        Writer {
            out,
            path: Vec::new(),
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        debug_assert!(self.path.is_empty(), "unclosed elements: {:?}", self.path);
        self.out.push_str("</Document>\n");
        self.out.into_bytes()
    }

    fn indent(&mut self) {
        for _ in 0..=self.path.len() {
            self.out.push_str("  ");
        }
    }

    pub(crate) fn open(&mut self, name: &'static str) {
        self.open_segment(name, name.to_owned());
    }

    /// Opens the `nth` (1-based) of a repeated element; errors inside say
    /// `name[nth]`.
    pub(crate) fn open_nth(&mut self, name: &'static str, nth: usize) {
        self.open_segment(name, format!("{name}[{nth}]"));
    }

    fn open_segment(&mut self, name: &'static str, segment: String) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(">\n");
        self.path.push(segment);
    }

    pub(crate) fn close(&mut self, name: &'static str) {
        self.path.pop();
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// The path of `leaf` under the open elements, for errors.
    pub(crate) fn path_of(&self, leaf: &str) -> String {
        let mut path = self.path.join("/");
        if !leaf.is_empty() {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(leaf);
        }
        path
    }

    /// `<name>text</name>` for ISO text of at most `max_chars` characters
    /// (and at least one).
    pub(crate) fn text(
        &mut self,
        name: &'static str,
        text: &str,
        max_chars: usize,
    ) -> Result<(), RenderError> {
        self.text_at(name, name, text, max_chars)
    }

    /// Like [`Writer::text`] for the `nth` (1-based) of a repeated element.
    pub(crate) fn text_nth(
        &mut self,
        name: &'static str,
        nth: usize,
        text: &str,
        max_chars: usize,
    ) -> Result<(), RenderError> {
        self.text_at(name, &format!("{name}[{nth}]"), text, max_chars)
    }

    fn text_at(
        &mut self,
        name: &'static str,
        segment: &str,
        text: &str,
        max_chars: usize,
    ) -> Result<(), RenderError> {
        check_text(text, max_chars, || self.path_of(segment))?;
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        push_escaped(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
        Ok(())
    }

    /// `<name>value</name>` for values the codec produced itself (codes,
    /// numbers, dates): ASCII without markup characters.
    pub(crate) fn value(&mut self, name: &'static str, value: &str) {
        debug_assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'&' | b'"')),
            "not a plain value: {value:?}"
        );
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.out.push_str(value);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// `<name Ccy="EUR">12.50</name>`: a non-negative amount with exactly its
    /// currency's decimals and at most 18 digits (ISO `totalDigits`).
    pub(crate) fn amount(&mut self, name: &'static str, amount: Money) -> Result<(), RenderError> {
        if amount.is_negative() {
            return Err(RenderError::InvalidValue {
                path: self.path_of(name),
                detail: format!(
                    "amount {amount} is negative; ISO 20022 amounts are never negative"
                ),
            });
        }
        if amount.minor().unsigned_abs() >= 10u64.pow(18) {
            return Err(RenderError::InvalidValue {
                path: self.path_of(name),
                detail: format!("amount {amount} has more than 18 digits"),
            });
        }
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(" Ccy=\"");
        self.out.push_str(amount.currency().code());
        self.out.push_str("\">");
        self.out.push_str(&amount.to_decimal_string());
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
        Ok(())
    }
}

/// Non-empty, at most `max_chars` characters, only XML 1.0 characters.
pub(crate) fn check_text(
    text: &str,
    max_chars: usize,
    path: impl Fn() -> String,
) -> Result<(), RenderError> {
    if text.is_empty() {
        return Err(RenderError::Empty { path: path() });
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(RenderError::TooLong {
            path: path(),
            chars,
            max_chars,
        });
    }
    if let Some(ch) = text.chars().find(|ch| !is_xml_char(*ch)) {
        return Err(RenderError::InvalidChar { path: path(), ch });
    }
    Ok(())
}

/// The XML 1.0 `Char` production (surrogates cannot occur in a `char`).
fn is_xml_char(ch: char) -> bool {
    matches!(ch, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes markup and `\r` (as `&#13;`, so a conforming reader does not
/// fold line ends); the text is kept exactly.
fn push_escaped(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            other => out.push(other),
        }
    }
}

// ---------------------------------------------------------------------------
// reading
// ---------------------------------------------------------------------------

/// Where a node's name, text or attributes lie in its [`Tree`]'s buffers.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn len(self) -> usize {
        self.end - self.start
    }
}

/// No node: the root's parent, a leaf's first child, a last sibling.
const NO_NODE: usize = usize::MAX;

#[derive(Debug, Clone, Copy)]
struct NodeData {
    /// The local name as a [`name_key`], compared first.
    key: u64,
    /// The local name, in `names`.
    name: Span,
    /// The text, in `strings`: the concatenated text of a leaf; empty once
    /// the element has a child (only whitespace may sit between elements).
    text: Span,
    /// Whether the text so far is whitespace only.
    blank: bool,
    /// In `attrs`.
    attrs: Span,
    parent: usize,
    first_child: usize,
    last_child: usize,
    next_sibling: usize,
}

/// One element read into memory with all its descendants, in document
/// order, in flat buffers that the next [`XmlReader::read_tree`] reuses: no
/// allocation per element or text once they have grown to the size of the
/// largest subtree. Names and attributes are by local name (namespace
/// declarations dropped). Walked through [`Node`] handles.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: Vec<NodeData>,
    /// (key, value) spans in `strings`.
    attrs: Vec<(Span, Span)>,
    /// Every text, attribute key and value, back to back.
    strings: String,
    /// Every element name, back to back, each checked as UTF-8 when added
    /// (compared as bytes, rarely needed as text).
    names: Vec<u8>,
    /// Whitespace read under the innermost open element while it has no
    /// child: indentation, dropped when a child comes, or a blank leaf's
    /// text, moved into `strings` when it ends or more text comes.
    pending: Vec<u8>,
}

/// Capacity a tree keeps when it is cleared; a larger one (after an
/// unusually large subtree) is given back.
const TREE_KEEP_NODES: usize = 4096;
const TREE_KEEP_BYTES: usize = 256 * 1024;

impl Tree {
    fn clear(&mut self) {
        self.nodes.clear();
        self.attrs.clear();
        self.strings.clear();
        self.names.clear();
        self.pending.clear();
        self.nodes.shrink_to(TREE_KEEP_NODES);
        self.attrs.shrink_to(TREE_KEEP_NODES);
        self.strings.shrink_to(TREE_KEEP_BYTES);
        self.names.shrink_to(TREE_KEEP_BYTES);
        self.pending.shrink_to(TREE_KEEP_BYTES);
    }

    /// The element the tree was read from.
    pub(crate) fn root(&self) -> Node<'_> {
        Node {
            tree: self,
            index: 0,
        }
    }

    fn data(&self, index: usize) -> Option<&NodeData> {
        self.nodes.get(index)
    }

    fn name_bytes(&self, span: Span) -> &[u8] {
        self.names.get(span.start..span.end).unwrap_or_default()
    }

    /// Names were UTF-8 when they were added, so this never falls back.
    fn name_str(&self, span: Span) -> &str {
        std::str::from_utf8(self.name_bytes(span)).unwrap_or_default()
    }

    fn str(&self, span: Span) -> &str {
        self.strings.get(span.start..span.end).unwrap_or_default()
    }

    fn append(&mut self, text: &str) -> Span {
        let start = self.strings.len();
        self.strings.push_str(text);
        Span {
            start,
            end: self.strings.len(),
        }
    }

    /// Adds the element `name` (checked UTF-8) as the last child of
    /// `parent` (or as the root, with [`NO_NODE`]); its text starts empty.
    #[inline]
    fn push(&mut self, parent: usize, name: &[u8]) -> usize {
        let index = self.nodes.len();
        let start = self.names.len();
        self.names.extend_from_slice(name);
        let at_end = Span {
            start: self.strings.len(),
            end: self.strings.len(),
        };
        let attrs = Span {
            start: self.attrs.len(),
            end: self.attrs.len(),
        };
        self.nodes.push(NodeData {
            key: name_key(name),
            name: Span {
                start,
                end: self.names.len(),
            },
            text: at_end,
            blank: true,
            attrs,
            parent,
            first_child: NO_NODE,
            last_child: NO_NODE,
            next_sibling: NO_NODE,
        });
        let previous = match self.nodes.get_mut(parent) {
            Some(parent) => {
                let previous = parent.last_child;
                parent.last_child = index;
                if previous == NO_NODE {
                    parent.first_child = index;
                }
                previous
            }
            None => NO_NODE,
        };
        if let Some(previous) = self.nodes.get_mut(previous) {
            previous.next_sibling = index;
        }
        index
    }

    /// Adds an attribute to `index`, the node pushed last.
    fn push_attr(&mut self, index: usize, key: &str, value: &str) {
        let key = self.append(key);
        let value = self.append(value);
        self.attrs.push((key, value));
        let count = self.attrs.len();
        if let Some(node) = self.nodes.get_mut(index) {
            node.attrs.end = count;
            node.text = Span {
                start: value.end,
                end: value.end,
            };
        }
    }

    /// Whether `node` is the element `name`, whose [`name_key`] is `key`.
    #[inline]
    fn is(&self, node: &NodeData, key: u64, name: &str) -> bool {
        node.key == key
            && if name.len() <= NAME_KEY_BYTES {
                node.name.len() == name.len()
            } else {
                self.name_bytes(node.name) == name.as_bytes()
            }
    }

    #[inline]
    fn has_children(&self, index: usize) -> bool {
        self.data(index).is_some_and(|n| n.first_child != NO_NODE)
    }

    /// Bytes of text `index`, the innermost open element, holds so far.
    #[inline]
    fn text_len(&self, index: usize) -> usize {
        self.data(index).map_or(0, |n| n.text.len()) + self.pending.len()
    }

    /// Moves the whitespace pending for `index`, the innermost open
    /// element, into its text.
    #[inline]
    fn flush_pending(&mut self, index: usize) {
        if self.pending.is_empty() {
            return;
        }
        // Whitespace is ASCII, so this cannot fail.
        if let Ok(blank) = std::str::from_utf8(&self.pending) {
            self.strings.push_str(blank);
        }
        self.pending.clear();
        let end = self.strings.len();
        if let Some(node) = self.nodes.get_mut(index) {
            node.text.end = end;
        }
    }

    /// Appends unescaped text to `index`, the innermost open element with
    /// no child (so its text ends `strings`); `blank` if it is whitespace
    /// only.
    #[inline]
    fn push_text(&mut self, index: usize, text: &str, blank: bool) {
        self.flush_pending(index);
        self.strings.push_str(text);
        let end = self.strings.len();
        if let Some(node) = self.nodes.get_mut(index) {
            node.text.end = end;
            node.blank &= blank;
        }
    }

    /// Drops the text of `index`, the innermost open element, before its
    /// first child; false when it was more than whitespace (mixed content).
    #[inline]
    fn drop_text(&mut self, index: usize) -> bool {
        self.pending.clear();
        let Some((text, blank)) = self.data(index).map(|n| (n.text, n.blank)) else {
            return true;
        };
        if text.start == text.end {
            return true;
        }
        if blank && text.end == self.strings.len() {
            self.strings.truncate(text.start);
            if let Some(node) = self.nodes.get_mut(index) {
                node.text.end = text.start;
            }
        }
        blank
    }

    /// `name` or `name[n]` of a node under the tree's root: the 1-based
    /// position among its parent's children of the same name.
    fn segment(&self, index: usize) -> String {
        let Some(node) = self.data(index) else {
            return String::new();
        };
        let name = self.name_bytes(node.name);
        let mut nth = 0usize;
        let mut at = self.data(node.parent).map_or(NO_NODE, |p| p.first_child);
        while let Some(sibling) = self.data(at) {
            if self.name_bytes(sibling.name) == name {
                nth += 1;
            }
            if at == index {
                break;
            }
            at = sibling.next_sibling;
        }
        segment(self.name_str(node.name), nth.max(1))
    }
}

fn segment(name: &str, nth: usize) -> String {
    if nth == 1 {
        name.to_owned()
    } else {
        format!("{name}[{nth}]")
    }
}

/// One element of a [`Tree`]: local name, attributes, text, children in
/// document order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    tree: &'a Tree,
    index: usize,
}

impl<'a> Node<'a> {
    fn data(self) -> Option<&'a NodeData> {
        self.tree.data(self.index)
    }

    fn at_index(self, index: usize) -> Option<Node<'a>> {
        self.tree.data(index).map(|_| Node {
            tree: self.tree,
            index,
        })
    }

    pub(crate) fn name(self) -> &'a str {
        self.data().map_or("", |n| self.tree.name_str(n.name))
    }

    /// The element's text as written (unescaped): empty for an element with
    /// children.
    pub(crate) fn text(self) -> &'a str {
        self.data().map_or("", |n| self.tree.str(n.text))
    }

    pub(crate) fn has_children(self) -> bool {
        self.tree.has_children(self.index)
    }

    /// Every child element, in document order.
    pub(crate) fn elements(self) -> impl Iterator<Item = Node<'a>> {
        let first = self.data().map_or(NO_NODE, |n| n.first_child);
        std::iter::successors(self.at_index(first), move |node| {
            node.data().and_then(|n| self.at_index(n.next_sibling))
        })
    }

    /// Whether this is the element `name`.
    #[inline]
    pub(crate) fn is(self, name: &str) -> bool {
        self.data()
            .is_some_and(|n| self.tree.is(n, name_key(name.as_bytes()), name))
    }

    #[inline]
    pub(crate) fn child(self, name: &str) -> Option<Node<'a>> {
        let key = name_key(name.as_bytes());
        let nodes = &self.tree.nodes;
        let mut at = nodes.get(self.index)?.first_child;
        while let Some(node) = nodes.get(at) {
            if self.tree.is(node, key, name) {
                return Some(Node {
                    tree: self.tree,
                    index: at,
                });
            }
            at = node.next_sibling;
        }
        None
    }

    pub(crate) fn children(self, name: &'a str) -> impl Iterator<Item = Node<'a>> {
        let key = name_key(name.as_bytes());
        self.elements()
            .filter(move |c| c.data().is_some_and(|n| self.tree.is(n, key, name)))
    }

    /// Follows the first child of each name in turn.
    pub(crate) fn at(self, names: &[&str]) -> Option<Node<'a>> {
        names.iter().try_fold(self, |node, name| node.child(name))
    }

    pub(crate) fn attr(self, name: &str) -> Option<&'a str> {
        let span = self.data()?.attrs;
        self.tree
            .attrs
            .get(span.start..span.end)?
            .iter()
            .find(|(key, _)| self.tree.str(*key) == name)
            .map(|(_, value)| self.tree.str(*value))
    }
}

/// `path/a/b` for `names` `[a, b]`.
pub(crate) fn join(path: &str, names: &[&str]) -> String {
    let mut out = path.to_owned();
    for name in names {
        out.push('/');
        out.push_str(name);
    }
    out
}

/// The element at `names` under `node`; missing is an error naming the first
/// missing step.
pub(crate) fn required<'a>(
    node: Node<'a>,
    path: &str,
    names: &[&str],
) -> Result<Node<'a>, ParseError> {
    let mut current = node;
    for (depth, name) in names.iter().enumerate() {
        current = current.child(name).ok_or_else(|| ParseError::Missing {
            path: join(path, names.get(..=depth).unwrap_or_default()),
        })?;
    }
    Ok(current)
}

/// `found`, the element at `names` under `path` if there is one, or the
/// error [`required`] gives for it.
pub(crate) fn present<'a>(
    found: Option<Node<'a>>,
    path: &str,
    names: &[&str],
) -> Result<Node<'a>, ParseError> {
    found.ok_or_else(|| ParseError::Missing {
        path: join(path, names),
    })
}

/// Text of an optional element; an empty element counts as absent.
pub(crate) fn optional_text(node: Node<'_>, names: &[&str]) -> Option<String> {
    node.at(names)
        .map(Node::text)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// Text of a required element, which must not be empty.
pub(crate) fn required_text(
    node: Node<'_>,
    path: &str,
    names: &[&str],
) -> Result<String, ParseError> {
    let found = required(node, path, names)?;
    if found.text().is_empty() {
        return Err(ParseError::Invalid {
            path: join(path, names),
            problem: "empty; text is required".to_owned(),
        });
    }
    Ok(found.text().to_owned())
}

/// Trimmed text of a required element, for codes, numbers and dates.
pub(crate) fn required_code<'a>(
    node: Node<'a>,
    path: &str,
    names: &[&str],
) -> Result<&'a str, ParseError> {
    Ok(trimmed(required(node, path, names)?.text()))
}

pub(crate) fn trimmed(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// An `ActiveOrHistoricCurrencyAndAmount`: a `Ccy` attribute and a
/// non-negative decimal with no more non-zero decimals than the currency has.
pub(crate) fn amount(node: Node<'_>, path: &str, names: &[&str]) -> Result<Money, ParseError> {
    amount_of(required(node, path, names)?, path, names)
}

/// [`amount`] of `found`, the element at `names` under `path`.
pub(crate) fn amount_of(found: Node<'_>, path: &str, names: &[&str]) -> Result<Money, ParseError> {
    let at = || join(path, names);
    let code = found.attr("Ccy").ok_or_else(|| ParseError::Missing {
        path: format!("{}/@Ccy", at()),
    })?;
    let currency = currency(trimmed(code)).map_err(|e| ParseError::Invalid {
        path: format!("{}/@Ccy", at()),
        problem: e.to_string(),
    })?;
    let money =
        Money::parse_bank_decimal(found.text(), currency).map_err(|e| ParseError::Invalid {
            path: at(),
            problem: e.to_string(),
        })?;
    if money.is_negative() {
        return Err(ParseError::Invalid {
            path: at(),
            problem: "negative; ISO 20022 amounts are never negative".to_owned(),
        });
    }
    Ok(money)
}

/// [`Currency::from_code`], with the currencies of nearly every amount
/// we read matched first, without searching the ISO 4217 table (once per
/// entry of a statement).
fn currency(code: &str) -> Result<Currency, domain::DomainError> {
    match code.as_bytes() {
        b"CNY" => Ok(Currency::CNY),
        b"USD" => Ok(Currency::USD),
        b"EUR" => Ok(Currency::EUR),
        b"HKD" => Ok(Currency::HKD),
        _ => Currency::from_code(code),
    }
}

/// A date `YYYY-MM-DD` at `names`, surrounding whitespace ignored.
pub(crate) fn date(node: Node<'_>, path: &str, names: &[&str]) -> Result<BusinessDate, ParseError> {
    let text = required_code(node, path, names)?;
    BusinessDate::parse_iso(text).map_err(|e| ParseError::Invalid {
        path: join(path, names),
        problem: e.to_string(),
    })
}

/// `DateAndDateTime2Choice` at `names`: `Dt`, or the date part of `DtTm`.
pub(crate) fn date_choice(
    node: Node<'_>,
    path: &str,
    names: &[&str],
) -> Result<BusinessDate, ParseError> {
    date_choice_of(required(node, path, names)?, path, names)
}

/// [`date_choice`] of `choice`, the element at `names` under `path`.
pub(crate) fn date_choice_of(
    choice: Node<'_>,
    path: &str,
    names: &[&str],
) -> Result<BusinessDate, ParseError> {
    let at = || join(path, names);
    if let Some(day) = choice.child("Dt") {
        return BusinessDate::parse_iso(trimmed(day.text())).map_err(|e| ParseError::Invalid {
            path: format!("{}/Dt", at()),
            problem: e.to_string(),
        });
    }
    let text = match choice.child("DtTm") {
        Some(found) => trimmed(found.text()),
        None => {
            return Err(ParseError::Missing {
                path: format!("{}/Dt", at()),
            })
        }
    };
    text.get(..10)
        .and_then(|day| BusinessDate::parse_iso(day).ok())
        .ok_or_else(|| ParseError::Invalid {
            path: format!("{}/DtTm", at()),
            problem: format!("{:?} is not an ISO date-time", clip(text)),
        })
}

/// What [`XmlReader::next_tag`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// An element starts; [`XmlReader::open_name`] says which, and
    /// [`XmlReader::read_tree`] may read it whole.
    Open,
    /// The innermost open element ends.
    Close,
    /// The end of the input, with no element open.
    Eof,
}

/// One element opened by [`XmlReader::next_tag`] (not inside a tree): its
/// name, its position among its parent's children of that name, and where
/// its own children's counts begin. Error paths are built from these only
/// when an error is made.
struct Frame {
    /// This element's entry in `counts` (under its parent's children).
    count: usize,
    nth: usize,
    counts_start: usize,
    names_start: usize,
}

/// How many children of one name an open element has had so far.
struct Count {
    /// In `count_names`.
    name: Span,
    seen: usize,
}

/// A problem found while reading an event, before its path is known.
enum Fail {
    Xml(String),
    Limit(LimitKind, usize),
    Io(u64, String),
}

/// Hands quick-xml at most about `max_bytes` (plus one chunk of the inner
/// reader's buffer) per event: quick-xml buffers a whole tag or text before
/// returning it, so without this one enormous text node would grow memory
/// without bound before any limit on the text could be checked.
struct EventGuard<R> {
    inner: R,
    consumed: usize,
    max_bytes: usize,
    tripped: bool,
}

impl<R: Read> Read for EventGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed = self.consumed.saturating_add(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for EventGuard<R> {
    #[inline(always)]
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.consumed > self.max_bytes {
            self.tripped = true;
            return Err(std::io::Error::other(
                "one XML event exceeds the size limit",
            ));
        }
        self.inner.fill_buf()
    }

    #[inline(always)]
    fn consume(&mut self, amt: usize) {
        self.consumed = self.consumed.saturating_add(amt);
        self.inner.consume(amt);
    }
}

/// A pull reader over any `BufRead`, holding only the open elements' names
/// (and sibling counts, for error paths), the current event's bytes and,
/// while [`XmlReader::read_tree`] runs, the tree being read.
///
/// The hot path allocates nothing: names are compared as bytes, error
/// paths are built only when an error is made, whitespace between
/// elements is recognised on the raw bytes, and text is validated and
/// unescaped once, straight into the tree.
pub(crate) struct XmlReader<R: BufRead> {
    reader: Reader<EventGuard<R>>,
    buf: Vec<u8>,
    frames: Vec<Frame>,
    /// The children counts of every open frame, innermost last.
    counts: Vec<Count>,
    count_names: String,
    /// The element just opened by `next_tag`, as a one-node tree: the root
    /// of the next `read_tree`.
    open: Tree,
    limits: Limits,
    /// The namespace the root element is in, once it has been read.
    root_namespace: Option<String>,
}

impl<R: BufRead> XmlReader<R> {
    pub(crate) fn new(input: R, limits: Limits) -> XmlReader<R> {
        let mut reader = Reader::from_reader(EventGuard {
            inner: input,
            consumed: 0,
            max_bytes: limits.max_event_bytes,
            tripped: false,
        });
        // Set explicitly: defaults have moved between quick-xml versions.
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.check_comments = false;
        config.trim_text_start = false;
        config.trim_text_end = false;
        XmlReader {
            reader,
            buf: Vec::with_capacity(1024),
            frames: Vec::new(),
            counts: Vec::new(),
            count_names: String::new(),
            open: Tree::default(),
            limits,
            root_namespace: None,
        }
    }

    /// The namespace of the root element (declared on the root itself, for
    /// its prefix or as the default), once the root has been read; `None`
    /// before, or when the root declares none for its name.
    pub(crate) fn root_namespace(&self) -> Option<&str> {
        self.root_namespace.as_deref()
    }

    fn frame_name(&self, frame: &Frame) -> &str {
        self.counts
            .get(frame.count)
            .and_then(|c| self.count_names.get(c.name.start..c.name.end))
            .unwrap_or_default()
    }

    /// The local name of the innermost open element: after
    /// [`Tag::Open`], the element just opened.
    pub(crate) fn open_name(&self) -> &str {
        self.frames
            .last()
            .map(|f| self.frame_name(f))
            .unwrap_or_default()
    }

    /// The path of the innermost open element, without the root:
    /// `BkToCstmrStmt/Stmt[1]/Ntry[7]`.
    pub(crate) fn path(&self) -> String {
        let mut out = String::new();
        self.path_into(&mut out);
        out
    }

    /// [`XmlReader::path`] into `out` (cleared first), reusing its memory.
    pub(crate) fn path_into(&self, out: &mut String) {
        out.clear();
        let mut frames = self.frames.iter();
        let root = frames.next();
        if self.frames.len() == 1 {
            if let Some(root) = root {
                out.push_str(self.frame_name(root));
            }
            return;
        }
        for frame in frames {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(self.frame_name(frame));
            if frame.nth != 1 {
                // Once per entry: without the formatting machinery.
                out.push('[');
                push_number(out, frame.nth);
                out.push(']');
            }
        }
    }

    /// The path of node `index` of `tree`, whose root is the innermost
    /// frame.
    fn tree_path(&self, tree: &Tree, index: usize) -> String {
        let mut chain = Vec::new();
        let mut at = index;
        // Parents come before their children in the tree, so this ends.
        while at != 0 && at < tree.nodes.len() {
            chain.push(at);
            at = tree.data(at).map_or(0, |n| n.parent.min(at - 1));
        }
        if chain.is_empty() {
            return self.path();
        }
        let mut out = if self.frames.len() > 1 {
            self.path()
        } else {
            String::new()
        };
        for at in chain.iter().rev() {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(&tree.segment(*at));
        }
        out
    }

    fn error(&self, fail: Fail, path: impl FnOnce() -> String) -> ParseError {
        match fail {
            Fail::Xml(detail) => ParseError::Xml {
                path: path(),
                offset: self.reader.error_position(),
                detail,
            },
            Fail::Limit(kind, max) => ParseError::Limit {
                path: path(),
                kind,
                max,
            },
            Fail::Io(offset, detail) => ParseError::Io { offset, detail },
        }
    }

    fn xml_error(&self, detail: String) -> ParseError {
        self.error(Fail::Xml(detail), || self.path())
    }

    fn limit(&self, kind: LimitKind, max: usize) -> ParseError {
        self.error(Fail::Limit(kind, max), || self.path())
    }

    /// A read error of quick-xml (or one event over
    /// [`Limits::max_event_bytes`]) as a [`Fail`].
    fn read_fail(&self, error: &quick_xml::Error) -> Fail {
        match error {
            quick_xml::Error::Io(_) if self.reader.get_ref().tripped => {
                Fail::Limit(LimitKind::EventBytes, self.limits.max_event_bytes)
            }
            quick_xml::Error::Io(e) => Fail::Io(self.reader.buffer_position(), e.to_string()),
            e => Fail::Xml(e.to_string()),
        }
    }

    /// Any event but a start, end, text or CDATA, with `depth` elements
    /// open: `true` at the end of the input, `false` for what is skipped
    /// (comments, processing instructions, the declaration once its
    /// encoding is checked).
    fn other_event(&self, event: &Event<'_>, depth: usize) -> Result<bool, Fail> {
        match event {
            // Cannot happen with `expand_empty_elements`.
            Event::Empty(_) => Err(Fail::Xml("unexpected empty element".to_owned())),
            Event::Decl(decl) => {
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(|e| Fail::Xml(e.to_string()))?;
                    if !encoding.eq_ignore_ascii_case(b"utf-8")
                        && !encoding.eq_ignore_ascii_case(b"utf8")
                    {
                        let shown = String::from_utf8_lossy(&encoding).into_owned();
                        return Err(Fail::Xml(format!(
                            "the declaration says encoding {:?}; only UTF-8 is read",
                            clip(&shown)
                        )));
                    }
                }
                Ok(false)
            }
            Event::DocType(_) => Err(Fail::Xml("a DOCTYPE is not allowed".to_owned())),
            Event::Eof if depth > 0 => {
                Err(Fail::Xml("the input ends inside an element".to_owned()))
            }
            Event::Eof => Ok(true),
            _ => Ok(false),
        }
    }

    /// The attributes of `start` onto node `index` of `tree` (the node just
    /// pushed); on the root, the namespace it binds for its own name is
    /// kept, because it tells versions apart. Other namespace declarations
    /// are dropped: names are compared by local name.
    fn read_attributes(
        &mut self,
        start: &quick_xml::events::BytesStart<'_>,
        is_root: bool,
        tree: &mut Tree,
        index: usize,
    ) -> Result<(), Fail> {
        // Most elements have none; nothing to iterate then.
        if is_blank(start.attributes_raw()) {
            return Ok(());
        }
        for attr in start.attributes() {
            let attr = attr.map_err(|e| Fail::Xml(e.to_string()))?;
            let key = attr.key;
            if key.as_ref() == b"xmlns" || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns") {
                if is_root {
                    let binds_root = match (start.name().prefix(), key.prefix()) {
                        (None, None) => true,
                        (Some(prefix), Some(_)) => key.local_name().as_ref() == prefix.as_ref(),
                        _ => false,
                    };
                    if binds_root {
                        let value = text_value(&attr.value)?;
                        if value.len() > self.limits.max_text_bytes {
                            return Err(Fail::Limit(
                                LimitKind::TextBytes,
                                self.limits.max_text_bytes,
                            ));
                        }
                        self.root_namespace = Some(value.into_owned());
                    }
                }
                continue;
            }
            let key = utf8(key.local_name().into_inner()).map_err(Fail::Xml)?;
            let value = text_value(&attr.value)?;
            if value.len() > self.limits.max_text_bytes {
                return Err(Fail::Limit(
                    LimitKind::TextBytes,
                    self.limits.max_text_bytes,
                ));
            }
            tree.push_attr(index, key, &value);
        }
        Ok(())
    }

    /// The next element start or end, skipping whitespace, comments and
    /// processing instructions; other text is an error (we are between
    /// elements). A DOCTYPE is refused.
    pub(crate) fn next_tag(&mut self) -> Result<Tag, ParseError> {
        // The event borrows the buffer; taking it out of `self` leaves
        // `self` free for the error and path helpers meanwhile.
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.next_tag_with(&mut buf);
        self.buf = buf;
        result
    }

    fn next_tag_with(&mut self, buf: &mut Vec<u8>) -> Result<Tag, ParseError> {
        let max_text = self.limits.max_text_bytes;
        loop {
            buf.clear();
            self.reader.get_mut().consumed = 0;
            // Matched in place: the event is not moved.
            let result = self.reader.read_event_into(buf);
            let event = match &result {
                Ok(event) => event,
                Err(e) => return Err(self.error(self.read_fail(e), || self.path())),
            };
            let blank = match event {
                Event::Start(start) => {
                    if self.frames.len() >= self.limits.max_depth {
                        return Err(self.limit(LimitKind::Depth, self.limits.max_depth));
                    }
                    self.open_frame(start)?;
                    return Ok(Tag::Open);
                }
                Event::End(_) => {
                    if let Some(frame) = self.frames.pop() {
                        self.counts.truncate(frame.counts_start);
                        self.count_names.truncate(frame.names_start);
                    }
                    return Ok(Tag::Close);
                }
                // Indentation: no UTF-8 check or unescaping needed.
                Event::Text(text) if is_blank(text) => {
                    if !self.frames.is_empty() && text.len() > max_text {
                        return Err(self.limit(LimitKind::TextBytes, max_text));
                    }
                    continue;
                }
                Event::Text(text) => {
                    let value = text_value(text).map_err(|f| self.error(f, || self.path()))?;
                    if self.frames.is_empty() {
                        if is_blank(value.as_bytes()) {
                            continue;
                        }
                        return Err(self.xml_error("text outside the root element".to_owned()));
                    }
                    if value.len() > max_text {
                        return Err(self.limit(LimitKind::TextBytes, max_text));
                    }
                    is_blank(value.as_bytes())
                }
                Event::CData(data) => {
                    if self.frames.is_empty() {
                        return Err(self.xml_error("CDATA outside the root element".to_owned()));
                    }
                    let value = utf8(data).map_err(|detail| self.xml_error(detail))?;
                    if value.len() > max_text {
                        return Err(self.limit(LimitKind::TextBytes, max_text));
                    }
                    is_blank(value.as_bytes())
                }
                other => {
                    let end = self
                        .other_event(other, self.frames.len())
                        .map_err(|fail| self.error(fail, || self.path()))?;
                    if end {
                        return Ok(Tag::Eof);
                    }
                    continue;
                }
            };
            if !blank {
                return Err(ParseError::Structure {
                    path: self.path(),
                    problem: "text where only elements belong".to_owned(),
                });
            }
        }
    }

    /// Takes in the start tag `start` of an element outside any tree: its
    /// name, attributes (kept for `read_tree`) and position among its
    /// siblings.
    fn open_frame(&mut self, start: &quick_xml::events::BytesStart<'_>) -> Result<(), ParseError> {
        let name =
            utf8(start.local_name().into_inner()).map_err(|detail| self.xml_error(detail))?;
        let is_root = self.frames.is_empty();
        let mut open = std::mem::take(&mut self.open);
        open.clear();
        let index = open.push(NO_NODE, name.as_bytes());
        let attributes = self.read_attributes(start, is_root, &mut open, index);
        self.open = open;
        attributes.map_err(|fail| self.error(fail, || self.path()))?;
        let region = self.frames.last().map_or(0, |f| f.counts_start);
        let names = &self.count_names;
        let found = self.counts.get(region..).and_then(|counts| {
            counts.iter().position(|c| {
                names.as_bytes().get(c.name.start..c.name.end) == Some(name.as_bytes())
            })
        });
        let (count, nth) = match found.and_then(|i| {
            let index = region + i;
            self.counts.get_mut(index).map(|c| (index, c))
        }) {
            Some((index, count)) => {
                count.seen += 1;
                (index, count.seen)
            }
            None => {
                let start = self.count_names.len();
                self.count_names.push_str(name);
                self.counts.push(Count {
                    name: Span {
                        start,
                        end: self.count_names.len(),
                    },
                    seen: 1,
                });
                (self.counts.len() - 1, 1)
            }
        };
        self.frames.push(Frame {
            count,
            nth,
            counts_start: self.counts.len(),
            names_start: self.count_names.len(),
        });
        Ok(())
    }

    /// Reads the rest of the element just opened by [`XmlReader::next_tag`]
    /// into `tree` (replacing what it held), at most
    /// [`Limits::max_elements`] elements, and closes it.
    pub(crate) fn read_tree<'t>(&mut self, tree: &'t mut Tree) -> Result<Node<'t>, ParseError> {
        // The element's name and attributes were read by `next_tag`.
        std::mem::swap(tree, &mut self.open);
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.read_tree_with(tree, &mut buf);
        self.buf = buf;
        result?;
        Ok(tree.root())
    }

    fn read_tree_with(&mut self, tree: &mut Tree, buf: &mut Vec<u8>) -> Result<(), ParseError> {
        let max_text = self.limits.max_text_bytes;
        // The tree's root is the innermost frame.
        let mut depth = self.frames.len();
        let mut top = 0usize;
        loop {
            buf.clear();
            self.reader.get_mut().consumed = 0;
            match self.reader.read_event_into(buf) {
                Err(e) => return Err(self.error(self.read_fail(&e), || self.tree_path(tree, top))),
                Ok(Event::Start(start)) => {
                    if depth >= self.limits.max_depth {
                        return Err(self
                            .error(Fail::Limit(LimitKind::Depth, self.limits.max_depth), || {
                                self.tree_path(tree, top)
                            }));
                    }
                    let name = local_name(start.name().into_inner());
                    if !name.is_ascii() {
                        utf8(name).map_err(|detail| {
                            self.error(Fail::Xml(detail), || self.tree_path(tree, top))
                        })?;
                    }
                    // Whitespace before the first child is dropped; other
                    // text is refused below, once the child is known.
                    let blank = tree.drop_text(top);
                    let index = tree.push(top, name);
                    // Most elements have no attributes.
                    if !is_blank(start.attributes_raw()) {
                        self.read_attributes(&start, false, tree, index)
                            .map_err(|fail| self.error(fail, || self.tree_path(tree, top)))?;
                    }
                    if tree.nodes.len() > self.limits.max_elements {
                        return Err(ParseError::Limit {
                            path: self.tree_path(tree, index),
                            kind: LimitKind::Elements,
                            max: self.limits.max_elements,
                        });
                    }
                    if !blank {
                        return Err(mixed(self.tree_path(tree, index)));
                    }
                    top = index;
                    depth += 1;
                }
                Ok(Event::End(_)) => {
                    // A blank leaf keeps its whitespace.
                    tree.flush_pending(top);
                    if top == 0 {
                        if let Some(frame) = self.frames.pop() {
                            self.counts.truncate(frame.counts_start);
                            self.count_names.truncate(frame.names_start);
                        }
                        return Ok(());
                    }
                    top = tree.data(top).map_or(0, |n| n.parent.min(top - 1));
                    depth -= 1;
                }
                // Indentation (or a blank leaf): ASCII, nothing to unescape.
                Ok(Event::Text(text)) if is_blank(&text) => {
                    if text.len() > max_text {
                        return Err(self
                            .error(Fail::Limit(LimitKind::TextBytes, max_text), || {
                                self.tree_path(tree, top)
                            }));
                    }
                    // Kept aside until it is known to be a blank leaf's text.
                    if !tree.has_children(top) {
                        if tree.text_len(top) + text.len() > max_text {
                            return Err(self.limit_at(tree, top));
                        }
                        tree.pending.extend_from_slice(&text);
                    }
                }
                Ok(Event::Text(text)) => {
                    let value = text_value(&text)
                        .map_err(|fail| self.error(fail, || self.tree_path(tree, top)))?;
                    if value.len() > max_text {
                        return Err(self
                            .error(Fail::Limit(LimitKind::TextBytes, max_text), || {
                                self.tree_path(tree, top)
                            }));
                    }
                    self.tree_text(tree, top, &value, is_blank(value.as_bytes()))?;
                }
                Ok(Event::CData(data)) => {
                    let value = utf8(&data).map_err(|detail| {
                        self.error(Fail::Xml(detail), || self.tree_path(tree, top))
                    })?;
                    if value.len() > max_text {
                        return Err(self
                            .error(Fail::Limit(LimitKind::TextBytes, max_text), || {
                                self.tree_path(tree, top)
                            }));
                    }
                    self.tree_text(tree, top, value, is_blank(value.as_bytes()))?;
                }
                Ok(other) => {
                    // Inside the tree the end of input is always an error.
                    self.other_event(&other, depth)
                        .map_err(|fail| self.error(fail, || self.tree_path(tree, top)))?;
                }
            }
        }
    }

    /// Text (checked UTF-8, unescaped, within the limit for one event) read
    /// inside a tree under node `top`: kept if `top` has no children (yet),
    /// else it must be whitespace.
    #[inline(always)]
    fn tree_text(
        &self,
        tree: &mut Tree,
        top: usize,
        value: &str,
        blank: bool,
    ) -> Result<(), ParseError> {
        if tree.has_children(top) {
            if !blank {
                return Err(mixed(self.tree_path(tree, top)));
            }
            return Ok(());
        }
        if tree.text_len(top) + value.len() > self.limits.max_text_bytes {
            return Err(self.limit_at(tree, top));
        }
        tree.push_text(top, value, blank);
        Ok(())
    }

    /// The text limit, exceeded in node `top` of `tree`.
    fn limit_at(&self, tree: &Tree, top: usize) -> ParseError {
        ParseError::Limit {
            path: self.tree_path(tree, top),
            kind: LimitKind::TextBytes,
            max: self.limits.max_text_bytes,
        }
    }

    /// Expects the end of the root element and then the end of input.
    pub(crate) fn finish(&mut self) -> Result<(), ParseError> {
        match self.next_tag()? {
            Tag::Close => {}
            Tag::Open => {
                return Err(ParseError::Structure {
                    path: self.path(),
                    problem: "unexpected element after the message".to_owned(),
                })
            }
            Tag::Eof => return Err(self.xml_error("the root element is not closed".to_owned())),
        }
        match self.next_tag()? {
            Tag::Eof => Ok(()),
            _ => Err(self.xml_error("content after the root element".to_owned())),
        }
    }

    /// Expects `<Document>` then `<message>` (any prefixes).
    pub(crate) fn enter_message(&mut self, message: &str) -> Result<(), ParseError> {
        match self.next_tag()? {
            Tag::Open if self.open_name() == "Document" => {}
            Tag::Open => {
                return Err(ParseError::Structure {
                    path: clip(self.open_name()),
                    problem: "expected the root element Document".to_owned(),
                })
            }
            _ => {
                return Err(ParseError::Structure {
                    path: String::new(),
                    problem: "no root element".to_owned(),
                })
            }
        }
        match self.next_tag()? {
            Tag::Open if self.open_name() == message => Ok(()),
            Tag::Open => Err(ParseError::Structure {
                path: clip(&self.path()),
                problem: format!("expected {message}, found {}", clip(self.open_name())),
            }),
            _ => Err(ParseError::Missing {
                path: message.to_owned(),
            }),
        }
    }
}

fn mixed(path: String) -> ParseError {
    ParseError::Structure {
        path,
        problem: "text mixed with elements".to_owned(),
    }
}

/// Whitespace only (or nothing, as [`u8::is_ascii_whitespace`]): what
/// sits between elements. Indentation is 43 % of a pretty-printed
/// statement: a line end and spaces, so spaces are taken 8 at a time.
#[inline]
fn is_blank(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    loop {
        while let Some((word, tail)) = rest.split_first_chunk::<8>() {
            if *word != [b' '; 8] {
                break;
            }
            rest = tail;
        }
        match rest.split_first() {
            None => return true,
            Some((b, tail)) if b.is_ascii_whitespace() => rest = tail,
            Some(_) => return false,
        }
    }
}

/// A local name's length and first 7 bytes in one integer: names compare
/// by it first (equal keys are equal names up to 7 bytes) and only longer
/// ones by their bytes.
#[inline]
fn name_key(name: &[u8]) -> u64 {
    let mut head = 0u64;
    for (at, b) in name.iter().take(NAME_KEY_BYTES).enumerate() {
        head |= u64::from(*b) << (8 * at);
    }
    // Lengths beyond 8 bits wrap: `Tree::is` compares the whole length.
    head | ((name.len() as u64) << 56)
}

/// The bytes of a name that its [`name_key`] holds.
const NAME_KEY_BYTES: usize = 7;

/// `n` in decimal.
fn push_number(out: &mut String, n: usize) {
    if n >= 10 {
        push_number(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

#[inline]
fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))
}

/// Raw text or attribute value checked as UTF-8 and unescaped.
#[inline]
fn text_value(raw: &[u8]) -> Result<std::borrow::Cow<'_, str>, Fail> {
    let text = utf8(raw).map_err(Fail::Xml)?;
    if !raw.contains(&b'&') {
        // What `unescape` gives for text without references.
        return Ok(std::borrow::Cow::Borrowed(text));
    }
    quick_xml::escape::unescape(text).map_err(|e| Fail::Xml(e.to_string()))
}

/// The name after the first `:`, as quick-xml's `local_name`; names are
/// short, so a plain loop beats a `memchr` call.
#[inline]
fn local_name(name: &[u8]) -> &[u8] {
    match name.iter().position(|b| *b == b':') {
        Some(colon) => name.get(colon + 1..).unwrap_or_default(),
        None => name,
    }
}

/// The namespace the root element is bound to (`None` when it has none),
/// read only up to the root's start tag; the input is already bounded by
/// [`Limits::max_bytes`]. [`XmlReader`] drops namespace declarations, so the
/// messages that tell their version by namespace ask this first. A DOCTYPE,
/// an undeclared prefix, malformed XML before the root or no root at all is
/// an error.
pub(crate) fn root_namespace(bytes: &[u8]) -> Result<Option<String>, ParseError> {
    use quick_xml::name::ResolveResult;
    let mut reader = quick_xml::NsReader::from_reader(bytes);
    // Set explicitly: defaults have moved between quick-xml versions.
    let config = reader.config_mut();
    config.expand_empty_elements = false;
    config.check_end_names = true;
    config.check_comments = false;
    let xml_error = |reader: &quick_xml::NsReader<&[u8]>, detail: String| ParseError::Xml {
        path: String::new(),
        offset: reader.error_position(),
        detail,
    };
    loop {
        let (resolved, event) = match reader.read_resolved_event() {
            Ok(pair) => pair,
            Err(e) => return Err(xml_error(&reader, e.to_string())),
        };
        match event {
            Event::Start(_) | Event::Empty(_) => {
                return match resolved {
                    ResolveResult::Bound(ns) => {
                        Ok(Some(String::from_utf8_lossy(ns.as_ref()).into_owned()))
                    }
                    ResolveResult::Unbound => Ok(None),
                    ResolveResult::Unknown(prefix) => Err(ParseError::Structure {
                        path: "Document".to_owned(),
                        problem: format!(
                            "namespace prefix {:?} is not declared",
                            clip(&String::from_utf8_lossy(&prefix))
                        ),
                    }),
                };
            }
            Event::DocType(_) => {
                return Err(xml_error(&reader, "a DOCTYPE is not allowed".to_owned()))
            }
            Event::Eof => {
                return Err(ParseError::Structure {
                    path: String::new(),
                    problem: "no root element".to_owned(),
                })
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_currencies_are_the_table_entries() {
        for code in ["CNY", "USD", "EUR", "HKD", "GBP", "XXX"] {
            assert_eq!(
                currency(code).ok(),
                Currency::from_code(code).ok(),
                "{code}"
            );
        }
    }
}
