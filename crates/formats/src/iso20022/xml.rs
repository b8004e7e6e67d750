//! The XML plumbing shared by the ISO 20022 messages: a small checked
//! writer, and a pull reader that hands out one subtree at a time.
//!
//! The reader never builds a whole document. A message parser walks the top
//! levels token by token and asks for one subtree (a group header, a
//! `PmtInf`, one `Ntry`) as a [`Node`] tree, bounded by
//! [`Limits::max_elements`]; everything else is forgotten as soon as it is
//! read. Element and attribute names are compared by local name, so any
//! namespace prefix (or none) reads the same.

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

/// One element read into memory: local name, attributes by local name
/// (namespace declarations dropped), text, children in document order.
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) text: String,
    pub(crate) children: Vec<Node>,
}

impl Node {
    pub(crate) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub(crate) fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows the first child of each name in turn.
    pub(crate) fn at(&self, names: &[&str]) -> Option<&Node> {
        names.iter().try_fold(self, |node, name| node.child(name))
    }

    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
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
    node: &'a Node,
    path: &str,
    names: &[&str],
) -> Result<&'a Node, ParseError> {
    let mut current = node;
    for (depth, name) in names.iter().enumerate() {
        current = current.child(name).ok_or_else(|| ParseError::Missing {
            path: join(path, names.get(..=depth).unwrap_or_default()),
        })?;
    }
    Ok(current)
}

/// Text of an optional element; an empty element counts as absent.
pub(crate) fn optional_text(node: &Node, names: &[&str]) -> Option<String> {
    node.at(names)
        .filter(|n| !n.text.is_empty())
        .map(|n| n.text.clone())
}

/// Text of a required element, which must not be empty.
pub(crate) fn required_text(node: &Node, path: &str, names: &[&str]) -> Result<String, ParseError> {
    let found = required(node, path, names)?;
    if found.text.is_empty() {
        return Err(ParseError::Invalid {
            path: join(path, names),
            problem: "empty; text is required".to_owned(),
        });
    }
    Ok(found.text.clone())
}

/// Trimmed text of a required element, for codes, numbers and dates.
pub(crate) fn required_code<'a>(
    node: &'a Node,
    path: &str,
    names: &[&str],
) -> Result<&'a str, ParseError> {
    Ok(required(node, path, names)?
        .text
        .trim_matches(|c: char| c.is_ascii_whitespace()))
}

pub(crate) fn trimmed(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// An `ActiveOrHistoricCurrencyAndAmount`: a `Ccy` attribute and a
/// non-negative decimal with no more non-zero decimals than the currency has.
pub(crate) fn amount(node: &Node, path: &str, names: &[&str]) -> Result<Money, ParseError> {
    let found = required(node, path, names)?;
    let at = join(path, names);
    let code = found.attr("Ccy").ok_or_else(|| ParseError::Missing {
        path: format!("{at}/@Ccy"),
    })?;
    let currency = Currency::from_code(trimmed(code)).map_err(|e| ParseError::Invalid {
        path: format!("{at}/@Ccy"),
        problem: e.to_string(),
    })?;
    let money =
        Money::parse_bank_decimal(&found.text, currency).map_err(|e| ParseError::Invalid {
            path: at.clone(),
            problem: e.to_string(),
        })?;
    if money.is_negative() {
        return Err(ParseError::Invalid {
            path: at,
            problem: "negative; ISO 20022 amounts are never negative".to_owned(),
        });
    }
    Ok(money)
}

/// A date `YYYY-MM-DD` at `names`, surrounding whitespace ignored.
pub(crate) fn date(node: &Node, path: &str, names: &[&str]) -> Result<BusinessDate, ParseError> {
    let text = required_code(node, path, names)?;
    BusinessDate::parse_iso(text).map_err(|e| ParseError::Invalid {
        path: join(path, names),
        problem: e.to_string(),
    })
}

/// `DateAndDateTime2Choice` at `names`: `Dt`, or the date part of `DtTm`.
pub(crate) fn date_choice(
    node: &Node,
    path: &str,
    names: &[&str],
) -> Result<BusinessDate, ParseError> {
    let choice = required(node, path, names)?;
    let at = join(path, names);
    if choice.child("Dt").is_some() {
        return date(choice, &at, &["Dt"]);
    }
    let text = required_code(choice, &at, &["DtTm"]).map_err(|_| ParseError::Missing {
        path: format!("{at}/Dt"),
    })?;
    text.get(..10)
        .and_then(|day| BusinessDate::parse_iso(day).ok())
        .ok_or_else(|| ParseError::Invalid {
            path: format!("{at}/DtTm"),
            problem: format!("{:?} is not an ISO date-time", clip(text)),
        })
}

/// A token from [`XmlReader::next`].
pub(crate) enum Token {
    Open(Node),
    Close,
    Text(String),
    Eof,
}

/// One open element: its path segment (`Ntry[3]`) and how many children of
/// each name it has had so far (few distinct names per element).
struct Frame {
    segment: String,
    counts: Vec<(String, usize)>,
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
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.consumed > self.max_bytes {
            self.tripped = true;
            return Err(std::io::Error::other(
                "one XML event exceeds the size limit",
            ));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.consumed = self.consumed.saturating_add(amt);
        self.inner.consume(amt);
    }
}

/// A pull reader over any `BufRead`, holding only the open elements' names
/// and the current event's bytes.
pub(crate) struct XmlReader<R: BufRead> {
    reader: Reader<EventGuard<R>>,
    buf: Vec<u8>,
    stack: Vec<Frame>,
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
            stack: Vec::new(),
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

    /// The path of the innermost open element, without the root:
    /// `BkToCstmrStmt/Stmt[1]/Ntry[7]`.
    pub(crate) fn path(&self) -> String {
        let segments: Vec<&str> = self
            .stack
            .iter()
            .skip(1)
            .map(|f| f.segment.as_str())
            .collect();
        if segments.is_empty() {
            self.stack
                .first()
                .map(|f| f.segment.clone())
                .unwrap_or_default()
        } else {
            segments.join("/")
        }
    }

    fn xml_error(&self, detail: String) -> ParseError {
        ParseError::Xml {
            path: self.path(),
            offset: self.reader.error_position(),
            detail,
        }
    }

    fn limit(&self, kind: LimitKind, max: usize) -> ParseError {
        ParseError::Limit {
            path: self.path(),
            kind,
            max,
        }
    }

    /// The next element start, end or text. Comments and processing
    /// instructions are skipped, a DOCTYPE is refused, whitespace outside
    /// the root is dropped.
    pub(crate) fn next(&mut self) -> Result<Token, ParseError> {
        // The event borrows the buffer; taking it out of `self` leaves
        // `self` free for the error and path helpers meanwhile.
        let mut buf = std::mem::take(&mut self.buf);
        let result = loop {
            buf.clear();
            match self.next_event(&mut buf) {
                Ok(Some(token)) => break Ok(token),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        self.buf = buf;
        result
    }

    /// One event as a token, `None` for events that are skipped.
    fn next_event(&mut self, buf: &mut Vec<u8>) -> Result<Option<Token>, ParseError> {
        self.reader.get_mut().consumed = 0;
        let event = match self.reader.read_event_into(buf) {
            Ok(event) => event,
            Err(quick_xml::Error::Io(_)) if self.reader.get_ref().tripped => {
                return Err(self.limit(LimitKind::EventBytes, self.limits.max_event_bytes));
            }
            Err(quick_xml::Error::Io(e)) => {
                return Err(ParseError::Io {
                    offset: self.reader.buffer_position(),
                    detail: e.to_string(),
                })
            }
            Err(e) => {
                let detail = e.to_string();
                return Err(self.xml_error(detail));
            }
        };
        match event {
            Event::Start(start) => {
                if self.stack.len() >= self.limits.max_depth {
                    return Err(self.limit(LimitKind::Depth, self.limits.max_depth));
                }
                let name = utf8(start.local_name().as_ref())
                    .map_err(|detail| self.xml_error(detail))?
                    .to_owned();
                let is_root = self.stack.is_empty();
                let element_prefix = start.name().prefix().map(|p| p.as_ref().to_vec());
                let mut attrs = Vec::new();
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| self.xml_error(e.to_string()))?;
                    let key = attr.key;
                    if key.as_ref() == b"xmlns"
                        || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns")
                    {
                        // Our reader compares local names only; the root's
                        // own namespace is kept because it tells versions
                        // apart.
                        let binds_root = match (&element_prefix, key.prefix()) {
                            (None, None) => true,
                            (Some(prefix), Some(_)) => key.local_name().as_ref() == prefix,
                            _ => false,
                        };
                        if is_root && binds_root {
                            let raw = utf8(&attr.value).map_err(|detail| self.xml_error(detail))?;
                            let value = quick_xml::escape::unescape(raw)
                                .map_err(|e| self.xml_error(e.to_string()))?;
                            if value.len() > self.limits.max_text_bytes {
                                return Err(
                                    self.limit(LimitKind::TextBytes, self.limits.max_text_bytes)
                                );
                            }
                            self.root_namespace = Some(value.into_owned());
                        }
                        continue;
                    }
                    let key = utf8(key.local_name().as_ref())
                        .map_err(|detail| self.xml_error(detail))?
                        .to_owned();
                    let raw = utf8(&attr.value).map_err(|detail| self.xml_error(detail))?;
                    let value = quick_xml::escape::unescape(raw)
                        .map_err(|e| self.xml_error(e.to_string()))?
                        .into_owned();
                    if value.len() > self.limits.max_text_bytes {
                        return Err(self.limit(LimitKind::TextBytes, self.limits.max_text_bytes));
                    }
                    attrs.push((key, value));
                }
                let segment = match self.stack.last_mut() {
                    Some(parent) => {
                        let nth = match parent.counts.iter_mut().find(|(n, _)| *n == name) {
                            Some((_, count)) => {
                                *count += 1;
                                *count
                            }
                            None => {
                                parent.counts.push((name.clone(), 1));
                                1
                            }
                        };
                        if nth == 1 {
                            name.clone()
                        } else {
                            format!("{name}[{nth}]")
                        }
                    }
                    None => name.clone(),
                };
                self.stack.push(Frame {
                    segment,
                    counts: Vec::new(),
                });
                return Ok(Some(Token::Open(Node {
                    name,
                    attrs,
                    text: String::new(),
                    children: Vec::new(),
                })));
            }
            Event::End(_) => {
                self.stack.pop();
                return Ok(Some(Token::Close));
            }
            Event::Empty(_) => {
                // Cannot happen with `expand_empty_elements`.
                return Err(self.xml_error("unexpected empty element".to_owned()));
            }
            Event::Text(text) => {
                let raw = utf8(&text).map_err(|detail| self.xml_error(detail))?;
                let value =
                    quick_xml::escape::unescape(raw).map_err(|e| self.xml_error(e.to_string()))?;
                if self.stack.is_empty() {
                    if value.bytes().all(|b| b.is_ascii_whitespace()) {
                        return Ok(None);
                    }
                    return Err(self.xml_error("text outside the root element".to_owned()));
                }
                if value.len() > self.limits.max_text_bytes {
                    return Err(self.limit(LimitKind::TextBytes, self.limits.max_text_bytes));
                }
                return Ok(Some(Token::Text(value.into_owned())));
            }
            Event::CData(data) => {
                if self.stack.is_empty() {
                    return Err(self.xml_error("CDATA outside the root element".to_owned()));
                }
                let value = utf8(&data).map_err(|detail| self.xml_error(detail))?;
                if value.len() > self.limits.max_text_bytes {
                    return Err(self.limit(LimitKind::TextBytes, self.limits.max_text_bytes));
                }
                return Ok(Some(Token::Text(value.to_owned())));
            }
            Event::Decl(decl) => {
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(|e| self.xml_error(e.to_string()))?;
                    if !encoding.eq_ignore_ascii_case(b"utf-8")
                        && !encoding.eq_ignore_ascii_case(b"utf8")
                    {
                        let shown = String::from_utf8_lossy(&encoding).into_owned();
                        return Err(self.xml_error(format!(
                            "the declaration says encoding {:?}; only UTF-8 is read",
                            clip(&shown)
                        )));
                    }
                }
            }
            Event::DocType(_) => {
                return Err(self.xml_error("a DOCTYPE is not allowed".to_owned()));
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => {
                if !self.stack.is_empty() {
                    return Err(self.xml_error("the input ends inside an element".to_owned()));
                }
                return Ok(Some(Token::Eof));
            }
        }
        Ok(None)
    }

    /// The next element start or end, skipping whitespace; other text is an
    /// error (we are between elements).
    pub(crate) fn next_tag(&mut self) -> Result<Token, ParseError> {
        loop {
            match self.next()? {
                Token::Text(text) if text.bytes().all(|b| b.is_ascii_whitespace()) => {}
                Token::Text(_) => {
                    return Err(ParseError::Structure {
                        path: self.path(),
                        problem: "text where only elements belong".to_owned(),
                    })
                }
                other => return Ok(other),
            }
        }
    }

    /// Reads the rest of the element `open` (just returned by
    /// [`XmlReader::next`]) into memory, at most
    /// [`Limits::max_elements`] elements.
    pub(crate) fn read_tree(&mut self, open: Node) -> Result<Node, ParseError> {
        let mut open_nodes = vec![open];
        let mut elements = 1usize;
        loop {
            match self.next()? {
                Token::Open(node) => {
                    elements += 1;
                    if elements > self.limits.max_elements {
                        return Err(self.limit(LimitKind::Elements, self.limits.max_elements));
                    }
                    if let Some(parent) = open_nodes.last_mut() {
                        if !parent.text.bytes().all(|b| b.is_ascii_whitespace()) {
                            return Err(mixed(self.path()));
                        }
                        parent.text.clear();
                    }
                    open_nodes.push(node);
                }
                Token::Text(text) => {
                    let Some(top) = open_nodes.last_mut() else {
                        return Err(self.xml_error("text outside an element".to_owned()));
                    };
                    if !top.children.is_empty() {
                        if !text.bytes().all(|b| b.is_ascii_whitespace()) {
                            return Err(mixed(self.path()));
                        }
                        continue;
                    }
                    if top.text.len() + text.len() > self.limits.max_text_bytes {
                        return Err(self.limit(LimitKind::TextBytes, self.limits.max_text_bytes));
                    }
                    top.text.push_str(&text);
                }
                Token::Close => {
                    let Some(mut done) = open_nodes.pop() else {
                        return Err(self.xml_error("unbalanced end tag".to_owned()));
                    };
                    if !done.children.is_empty() {
                        done.text.clear();
                    }
                    match open_nodes.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(done),
                    }
                }
                Token::Eof => {
                    return Err(self.xml_error("the input ends inside an element".to_owned()))
                }
            }
        }
    }

    /// Expects the end of the root element and then the end of input.
    pub(crate) fn finish(&mut self) -> Result<(), ParseError> {
        match self.next_tag()? {
            Token::Close => {}
            Token::Open(_) => {
                return Err(ParseError::Structure {
                    path: self.path(),
                    problem: "unexpected element after the message".to_owned(),
                })
            }
            Token::Text(_) | Token::Eof => {
                return Err(self.xml_error("the root element is not closed".to_owned()))
            }
        }
        match self.next_tag()? {
            Token::Eof => Ok(()),
            _ => Err(self.xml_error("content after the root element".to_owned())),
        }
    }

    /// Expects `<Document>` then `<message>` (any prefixes).
    pub(crate) fn enter_message(&mut self, message: &str) -> Result<(), ParseError> {
        match self.next_tag()? {
            Token::Open(node) if node.name == "Document" => {}
            Token::Open(node) => {
                return Err(ParseError::Structure {
                    path: clip(&node.name),
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
            Token::Open(node) if node.name == message => Ok(()),
            Token::Open(node) => Err(ParseError::Structure {
                path: clip(&self.path()),
                problem: format!("expected {message}, found {}", clip(&node.name)),
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

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))
}
