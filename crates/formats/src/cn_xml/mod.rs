//! The `cn-xml` packet: GBK-encoded XML with a `HEAD` and flat `BODY` blocks.
//!
//! The wire format is described in `docs/families/cn-xml.md`. This module is
//! the generic layer: a [`Packet`] is a [`Head`] plus a list of [`Block`]s,
//! each block an ordered list of `(field, text)` pairs. [`encode`] renders a
//! packet as GBK bytes, [`decode`] parses bytes from the wire under explicit
//! [`Limits`]. The typed messages per function live in [`messages`].
//!
//! Layout of this file: the packet model, the limits, the errors, then
//! `encode` (a small GBK writer) and `decode` (a strict GB18030 decoding step
//! followed by an event-driven parser that knows the fixed shape
//! `CNXML/HEAD/<field>` and `CNXML/BODY/<block>/<field>`).
//!
//! Why so strict: these bytes come from a bank front machine we do not
//! control, and a payment decision may hang on them. Anything we would have
//! to guess about (a DOCTYPE, an unknown entity, text where a block belongs,
//! a character the encoding cannot carry) is an error, never a silent
//! repair. Element paths in errors are relative to the root and 1-based like
//! XPath: `BODY/ACCOUNT[2]/ACCNAM` is the `ACCNAM` field of the second
//! `ACCOUNT` block.

pub mod messages;

use std::borrow::Cow;
use std::fmt;

use encoding_rs::{DecoderResult, EncoderResult, GB18030, GBK};
use quick_xml::errors::{Error as XmlError, IllFormedError};
use quick_xml::escape::EscapeError;
use quick_xml::events::{BytesDecl, BytesStart, BytesText, Event};
use quick_xml::Reader;

/// Name of the root element of every packet.
pub const ROOT: &str = "CNXML";
/// Name of the header element.
pub const HEAD: &str = "HEAD";
/// Name of the body element.
pub const BODY: &str = "BODY";
/// Longest element name accepted, in bytes. Real tags are under 16; the
/// limit keeps names (which are echoed into errors) small.
pub const MAX_NAME_BYTES: usize = 64;
/// At most this many characters of input text are copied into an error.
pub const MAX_ERROR_TEXT_CHARS: usize = 64;

/// The HTTP header that carries a packet's signature, on requests and
/// answers alike: base64 of the DER SM2-with-SM3 signature over exactly the
/// body bytes (docs/families/cn-xml.md, "Signatures").
pub const SIGNATURE_HEADER: &str = "X-Signature";

/// The packet header: function code, login, data type, request serial and,
/// in a response, the request-level status.
///
/// `None` means the element is absent; `Some("")` an empty element.
/// `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Head {
    /// `FUNC`: the function code, e.g. `QueryBalance`.
    pub func: String,
    /// `LOGIN`: the enterprise user's login name (requests).
    pub login: Option<String>,
    /// `PASSWD`: the login's password at the bank, on requests of a
    /// connection that has one. A secret: never printed, and removed from
    /// every recorded body (`banks::exchange::mask_body`).
    pub password: Option<String>,
    /// `DATATYPE`: `2` for XML (requests).
    pub data_type: Option<String>,
    /// `SERIAL`: the request serial, fresh per call and echoed by the bank.
    pub serial: String,
    /// `RETCODE`: request status in a response, `0` for accepted.
    pub ret_code: Option<String>,
    /// `RETMSG`: the bank's message for `RETCODE`.
    pub ret_msg: Option<String>,
}

impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Head")
            .field("func", &self.func)
            .field("login", &self.login)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("data_type", &self.data_type)
            .field("serial", &self.serial)
            .field("ret_code", &self.ret_code)
            .field("ret_msg", &self.ret_msg)
            .finish()
    }
}

/// One element directly under `BODY`, holding flat fields in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's element name, e.g. `ACCOUNT`.
    pub name: String,
    /// `(field element name, text)` in the order they appear on the wire.
    pub fields: Vec<(String, String)>,
}

impl Block {
    /// An empty block named `name`.
    pub fn new(name: impl Into<String>) -> Block {
        Block {
            name: name.into(),
            fields: Vec::new(),
        }
    }

    /// Appends a field; builder style.
    #[must_use]
    pub fn with(mut self, field: &str, value: impl Into<String>) -> Block {
        self.fields.push((field.to_owned(), value.into()));
        self
    }

    /// The text of the first field named `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.as_str())
    }

    /// How many fields are named `field` (more than one is ambiguous for
    /// the typed messages).
    pub fn count(&self, field: &str) -> usize {
        self.fields.iter().filter(|(name, _)| name == field).count()
    }
}

/// A whole packet: header and body blocks in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub head: Head,
    pub body: Vec<Block>,
}

/// Upper bounds [`decode`] enforces on untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Size of the raw input, checked before decoding.
    pub max_bytes: usize,
    /// Element nesting depth; the root element is depth 1. The packet shape
    /// needs 4; the margin only changes which error a deeper input gets.
    pub max_depth: usize,
    /// Number of blocks under `BODY`.
    pub max_blocks: usize,
    /// Number of fields in one block.
    pub max_fields_per_block: usize,
    /// Text of one field after unescaping, in UTF-8 bytes.
    pub max_text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 4 * 1024 * 1024,
            max_depth: 8,
            max_blocks: 10_000,
            max_fields_per_block: 64,
            max_text_bytes: 4096,
        }
    }
}

/// A position in the decoded document: 1-based line and column, the column
/// counted in characters. Lines and characters are the same in GBK and in
/// UTF-8, so an operator can find the spot in the raw bytes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPosition {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for TextPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Which of the [`Limits`] was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Depth,
    Blocks,
    FieldsPerBlock,
    TextBytes,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Depth => "element nesting depth",
            LimitKind::Blocks => "number of BODY blocks",
            LimitKind::FieldsPerBlock => "number of fields in a block",
            LimitKind::TextBytes => "field text size in bytes",
        })
    }
}

/// Why a packet could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// GBK has no byte sequence for `ch`. The caller must reject or change
    /// the text; a numeric character reference is never substituted.
    #[error("{path}: character {ch:?} (U+{code:04X}) cannot be encoded in GBK", code = u32::from(*ch))]
    Unencodable { path: String, ch: char },
    /// XML 1.0 cannot carry `ch` at all (control characters, U+FFFE, U+FFFF).
    #[error("{path}: character U+{code:04X} is not allowed in XML 1.0 text", code = u32::from(*ch))]
    InvalidChar { path: String, ch: char },
    /// An element name outside `[A-Z_][A-Z0-9_]*` or longer than
    /// [`MAX_NAME_BYTES`].
    #[error("element name {name:?} is invalid: expected ASCII [A-Z_][A-Z0-9_]*, at most {max} bytes", max = MAX_NAME_BYTES)]
    InvalidName { name: String },
}

/// Why bytes from the wire are not a packet. Every variant says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet is {size_bytes} bytes, more than the limit of {max_bytes} bytes")]
    TooLarge { size_bytes: usize, max_bytes: usize },
    /// The bytes are not valid GB18030; `offset` is the first bad byte.
    #[error("bytes are not valid GB18030 (GBK) text at byte offset {offset}")]
    Encoding { offset: usize },
    /// The XML declaration names an encoding other than GBK's family; the
    /// bytes would be misread, so the packet is refused.
    #[error("XML declaration says encoding {declared:?}; expected GBK, GB2312 or GB18030")]
    DeclaredEncoding { declared: String },
    /// Not well-formed XML (as reported by the XML reader).
    #[error("malformed XML at {at}: {detail}")]
    Xml { detail: String, at: TextPosition },
    /// A construct this format never uses and that could change how the
    /// document is read (DOCTYPE with entity declarations, processing
    /// instructions).
    #[error("{what} is not allowed in a cn-xml packet (at {at})")]
    Forbidden {
        what: &'static str,
        at: TextPosition,
    },
    #[error("{path}: unknown entity reference &{name}; (at {at}); only &lt; &gt; &amp; &apos; &quot; and character references are allowed")]
    UnknownEntity {
        path: String,
        name: String,
        at: TextPosition,
    },
    #[error("{path}: character U+{code:04X} is not allowed in XML 1.0 text (at {at})", code = u32::from(*ch))]
    InvalidChar {
        path: String,
        ch: char,
        at: TextPosition,
    },
    /// Well-formed XML, but not the packet shape: a missing or unexpected
    /// element, text where none belongs, content after the root.
    #[error("{path}: {problem} (at {at})")]
    Structure {
        path: String,
        problem: String,
        at: TextPosition,
    },
    #[error("{path}: {kind} exceeds the limit of {max} (at {at})")]
    Limit {
        path: String,
        kind: LimitKind,
        max: usize,
        at: TextPosition,
    },
}

/// Keeps input-derived text in errors short: the first
/// [`MAX_ERROR_TEXT_CHARS`] characters, then an ellipsis.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// `[A-Z_][A-Z0-9_]*`: a subset of XML names that needs no escaping, cannot
/// carry a namespace prefix and is what bank tags look like.
fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_uppercase() || *first == b'_' => {}
        _ => return false,
    }
    bytes.len() <= MAX_NAME_BYTES
        && bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

/// The XML 1.0 `Char` production (surrogates cannot occur in a `char`).
fn is_xml_char(ch: char) -> bool {
    matches!(ch, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

fn is_xml_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// The path of the `ordinal`-th (0-based) block of `blocks`, numbered among
/// the blocks with the same name, 1-based: `BODY/ACCOUNT[2]`.
fn block_path(blocks: &[Block], ordinal: usize) -> String {
    let Some(block) = blocks.get(ordinal) else {
        return BODY.to_owned();
    };
    let same_name_before = blocks
        .iter()
        .take(ordinal)
        .filter(|b| b.name == block.name)
        .count();
    format!("{BODY}/{}[{}]", clip(&block.name), same_name_before + 1)
}

// ---------------------------------------------------------------------------
// encode
// ---------------------------------------------------------------------------

/// Renders the packet as GBK bytes with `<?xml version="1.0" encoding="GBK"?>`.
///
/// Text is XML-escaped (`&`, `<`, `>`, and `\r` as `&#13;` so that a
/// conforming reader does not fold line ends). Absent optional head fields
/// are omitted; an empty body is written as an empty `BODY` element. A
/// character GBK cannot carry is an error naming the element and the
/// character, never a numeric character reference; element names must match
/// `[A-Z_][A-Z0-9_]*`.
pub fn encode(packet: &Packet) -> Result<Vec<u8>, EncodeError> {
    let mut w = GbkWriter::default();
    w.markup("<?xml version=\"1.0\" encoding=\"GBK\"?>\n");
    w.markup("<CNXML>\n  <HEAD>\n");
    let head = &packet.head;
    let head_fields = [
        (HeadField::Func, Some(&head.func)),
        (HeadField::Login, head.login.as_ref()),
        (HeadField::Password, head.password.as_ref()),
        (HeadField::DataType, head.data_type.as_ref()),
        (HeadField::Serial, Some(&head.serial)),
        (HeadField::RetCode, head.ret_code.as_ref()),
        (HeadField::RetMsg, head.ret_msg.as_ref()),
    ];
    for (field, value) in head_fields {
        if let Some(value) = value {
            w.leaf("    ", field.name(), value, || {
                format!("{HEAD}/{}", field.name())
            })?;
        }
    }
    w.markup("  </HEAD>\n");

    if packet.body.is_empty() {
        w.markup("  <BODY></BODY>\n");
    } else {
        w.markup("  <BODY>\n");
        for (ordinal, block) in packet.body.iter().enumerate() {
            if !is_valid_name(&block.name) {
                return Err(EncodeError::InvalidName {
                    name: clip(&block.name),
                });
            }
            w.markup("    <");
            w.markup(&block.name);
            w.markup(">\n");
            for (field, value) in &block.fields {
                if !is_valid_name(field) {
                    return Err(EncodeError::InvalidName { name: clip(field) });
                }
                w.leaf("      ", field, value, || {
                    format!("{}/{field}", block_path(&packet.body, ordinal))
                })?;
            }
            w.markup("    </");
            w.markup(&block.name);
            w.markup(">\n");
        }
        w.markup("  </BODY>\n");
    }
    w.markup("</CNXML>\n");
    Ok(w.out)
}

/// Accumulates the GBK output. Markup is ASCII, which GBK encodes as itself;
/// only text goes through the encoder.
#[derive(Default)]
struct GbkWriter {
    out: Vec<u8>,
}

impl GbkWriter {
    fn markup(&mut self, ascii: &str) {
        debug_assert!(ascii.is_ascii(), "markup must be ASCII: {ascii:?}");
        self.out.extend_from_slice(ascii.as_bytes());
    }

    /// `<NAME>text</NAME>` on its own line. `name` is already validated.
    fn leaf(
        &mut self,
        indent: &str,
        name: &str,
        text: &str,
        path: impl Fn() -> String,
    ) -> Result<(), EncodeError> {
        self.markup(indent);
        self.markup("<");
        self.markup(name);
        self.markup(">");
        self.text(text, path)?;
        self.markup("</");
        self.markup(name);
        self.markup(">\n");
        Ok(())
    }

    fn text(&mut self, text: &str, path: impl Fn() -> String) -> Result<(), EncodeError> {
        if let Some(ch) = text.chars().find(|ch| !is_xml_char(*ch)) {
            return Err(EncodeError::InvalidChar { path: path(), ch });
        }
        if let Some(ch) = text.chars().find(|ch| gbk_changes_private_use(*ch)) {
            return Err(EncodeError::Unencodable { path: path(), ch });
        }
        let escaped = escape_text(text);
        // The `_without_replacement` API reports an unmappable character
        // instead of writing `&#NNNN;` as the replacing API does.
        let mut encoder = GBK.new_encoder();
        let mut rest: &str = &escaped;
        loop {
            // GBK never needs more bytes than UTF-8 for a character it can
            // encode; the loop handles `OutputFull` regardless.
            let needed = encoder
                .max_buffer_length_from_utf8_without_replacement(rest.len())
                .unwrap_or(rest.len());
            self.out.reserve(needed.max(16));
            let (result, read) =
                encoder.encode_from_utf8_to_vec_without_replacement(rest, &mut self.out, true);
            rest = rest.get(read..).unwrap_or_default();
            match result {
                EncoderResult::InputEmpty => return Ok(()),
                EncoderResult::OutputFull => continue,
                EncoderResult::Unmappable(ch) => {
                    return Err(EncodeError::Unencodable { path: path(), ch })
                }
            }
        }
    }
}

/// Whether `ch` is a private-use character that GBK encodes to bytes which
/// decode as a different character. Since GB18030-2022 a few former
/// private-use mappings (U+E78D…, U+E81E…) decode as their standard
/// characters (U+FE10…, U+9FB4…), while the encoder still accepts the old
/// code points; writing one would silently change the text, so it is refused
/// like any unencodable character. Other private-use characters (the
/// user-defined areas banks use for rare name characters) round-trip and are
/// kept. Asked of the codec itself, so it follows the encoding tables.
pub(crate) fn gbk_changes_private_use(ch: char) -> bool {
    if !('\u{E000}'..='\u{F8FF}').contains(&ch) {
        return false;
    }
    let mut buf = [0u8; 4];
    let text: &str = ch.encode_utf8(&mut buf);
    let (bytes, _, unmappable) = GBK.encode(text);
    if unmappable {
        // Reported as unencodable by the encoder itself.
        return false;
    }
    let (back, malformed) = GBK.decode_without_bom_handling(&bytes);
    malformed || back != text
}

fn escape_text(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '\r']) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\r' => escaped.push_str("&#13;"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

// ---------------------------------------------------------------------------
// decode
// ---------------------------------------------------------------------------

/// Parses bytes from the wire.
///
/// The bytes are always decoded strictly as GB18030 (a superset of GBK and
/// GB2312): a malformed byte sequence is an error, never U+FFFD. The
/// declaration, if present, must be `version="1.0"` and may only name an
/// encoding of the GBK family. Enforces `limits` (raw size before decoding,
/// depth, block and field counts, text size) and rejects: DOCTYPE and
/// processing instructions, unknown entity references, attributes,
/// mismatched or unclosed tags, content after the root, text directly in
/// `CNXML`, `HEAD`, `BODY` or a block, elements nested inside a field,
/// unknown or repeated `HEAD` fields, and a missing `HEAD`, `FUNC` or
/// `SERIAL`. `BODY` may be absent (no blocks). Comments are skipped.
///
/// Empty elements (`<RETMSG/>`) are empty text. Whitespace-only text between
/// elements is ignored; field text is kept exactly, without trimming.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Packet, DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            size_bytes: bytes.len(),
            max_bytes: limits.max_bytes,
        });
    }
    let text = decode_gb18030(bytes)?;
    Parser::new(&text, limits).run()
}

fn decode_gb18030(bytes: &[u8]) -> Result<String, DecodeError> {
    let mut decoder = GB18030.new_decoder_without_bom_handling();
    let capacity = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len());
    let mut text = String::with_capacity(capacity);
    let mut consumed = 0usize;
    loop {
        let rest = bytes.get(consumed..).unwrap_or_default();
        let (result, read) = decoder.decode_to_string_without_replacement(rest, &mut text, true);
        match result {
            DecoderResult::InputEmpty => return Ok(text),
            DecoderResult::OutputFull => {
                consumed += read;
                text.reserve(rest.len().saturating_sub(read).max(16) * 4);
            }
            DecoderResult::Malformed(bad_len, after_len) => {
                // `read` counts the malformed sequence and any bytes the
                // decoder looked at after it; step back over both.
                let offset =
                    (consumed + read).saturating_sub(usize::from(bad_len) + usize::from(after_len));
                return Err(DecodeError::Encoding { offset });
            }
        }
    }
}

/// The fixed `HEAD` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadField {
    Func,
    Login,
    Password,
    DataType,
    Serial,
    RetCode,
    RetMsg,
}

impl HeadField {
    fn name(self) -> &'static str {
        match self {
            HeadField::Func => "FUNC",
            HeadField::Login => "LOGIN",
            HeadField::Password => "PASSWD",
            HeadField::DataType => "DATATYPE",
            HeadField::Serial => "SERIAL",
            HeadField::RetCode => "RETCODE",
            HeadField::RetMsg => "RETMSG",
        }
    }

    fn from_name(name: &str) -> Option<HeadField> {
        [
            HeadField::Func,
            HeadField::Login,
            HeadField::Password,
            HeadField::DataType,
            HeadField::Serial,
            HeadField::RetCode,
            HeadField::RetMsg,
        ]
        .into_iter()
        .find(|field| field.name() == name)
    }
}

/// One open element; the stack of frames is the path from the root.
#[derive(Debug)]
enum Frame {
    Root,
    Head,
    HeadField(HeadField),
    Body,
    /// The block being filled is `Parser::block`.
    Block,
    Field(String),
}

#[derive(Default)]
struct HeadValues {
    func: Option<String>,
    login: Option<String>,
    password: Option<String>,
    data_type: Option<String>,
    serial: Option<String>,
    ret_code: Option<String>,
    ret_msg: Option<String>,
}

impl HeadValues {
    fn slot(&mut self, field: HeadField) -> &mut Option<String> {
        match field {
            HeadField::Func => &mut self.func,
            HeadField::Login => &mut self.login,
            HeadField::Password => &mut self.password,
            HeadField::DataType => &mut self.data_type,
            HeadField::Serial => &mut self.serial,
            HeadField::RetCode => &mut self.ret_code,
            HeadField::RetMsg => &mut self.ret_msg,
        }
    }
}

/// The packet parser over the decoded text. Methods take `at`, the byte
/// offset in the decoded text where the current event starts; it becomes a
/// [`TextPosition`] only when an error is built, because counting lines is
/// linear in the offset.
struct Parser<'a> {
    text: &'a str,
    limits: &'a Limits,
    stack: Vec<Frame>,
    root_closed: bool,
    head_seen: bool,
    body_seen: bool,
    head: HeadValues,
    blocks: Vec<Block>,
    block: Option<Block>,
    /// Text of the open leaf element (a head field or a block field).
    leaf_text: String,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, limits: &'a Limits) -> Parser<'a> {
        Parser {
            text,
            limits,
            stack: Vec::new(),
            root_closed: false,
            head_seen: false,
            body_seen: false,
            head: HeadValues::default(),
            blocks: Vec::new(),
            block: None,
            leaf_text: String::new(),
        }
    }

    fn run(mut self) -> Result<Packet, DecodeError> {
        let mut reader = Reader::from_str(self.text);
        // Every option set explicitly: defaults move between versions.
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.trim_text(false);
        config.check_end_names = true;
        config.check_comments = true;
        config.allow_unmatched_ends = false;
        config.trim_markup_names_in_closing_tags = true;

        let mut first_event = true;
        loop {
            let at = reader.buffer_position();
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(error) => return Err(self.xml_error(&error, reader.error_position())),
            };
            let is_first = std::mem::replace(&mut first_event, false);
            match event {
                Event::Decl(decl) => {
                    if !is_first {
                        return Err(self
                            .structure("the XML declaration must come first in the document", at));
                    }
                    check_decl(&decl, self.position(at))?;
                }
                Event::DocType(_) => {
                    return Err(DecodeError::Forbidden {
                        what: "a DOCTYPE declaration",
                        at: self.position(at),
                    })
                }
                Event::PI(_) => {
                    return Err(DecodeError::Forbidden {
                        what: "a processing instruction",
                        at: self.position(at),
                    })
                }
                Event::Comment(_) => {}
                Event::Start(start) => self.start(&start, at)?,
                // Not produced with `expand_empty_elements`; handled the same
                // way so that a configuration change cannot drop elements.
                Event::Empty(start) => {
                    self.start(&start, at)?;
                    self.end(at)?;
                }
                Event::End(_) => self.end(at)?,
                Event::Text(text) => self.text_event(&text, at)?,
                Event::CData(cdata) => {
                    let raw = std::str::from_utf8(&cdata).map_err(|_| DecodeError::Xml {
                        detail: "CDATA section is not valid text".to_owned(),
                        at: self.position(at),
                    })?;
                    self.character_data(raw, raw, at)?;
                }
                Event::Eof => return self.finish(),
            }
        }
    }

    fn position(&self, offset: u64) -> TextPosition {
        let mut cut = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        while !self.text.is_char_boundary(cut) {
            cut -= 1;
        }
        let before = self.text.get(..cut).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        TextPosition {
            line: 1 + before.matches('\n').count(),
            column: 1 + before.get(line_start..).unwrap_or_default().chars().count(),
        }
    }

    /// Path of the innermost open element, relative to the root.
    fn path(&self) -> String {
        match self.stack.last() {
            None => "(document)".to_owned(),
            Some(Frame::Root) => ROOT.to_owned(),
            Some(Frame::Head) => HEAD.to_owned(),
            Some(Frame::HeadField(field)) => format!("{HEAD}/{}", field.name()),
            Some(Frame::Body) => BODY.to_owned(),
            Some(Frame::Block) => self.open_block_path(),
            Some(Frame::Field(name)) => format!("{}/{}", self.open_block_path(), clip(name)),
        }
    }

    /// Path of a child named `name` about to be opened in the innermost element.
    fn child_path(&self, name: &str) -> String {
        let name = clip(name);
        match self.stack.last() {
            None => name,
            Some(Frame::Root) => name,
            Some(Frame::Body) => {
                let same_name = self.blocks.iter().filter(|b| b.name == name).count();
                format!("{BODY}/{name}[{}]", same_name + 1)
            }
            Some(_) => format!("{}/{name}", self.path()),
        }
    }

    fn open_block_path(&self) -> String {
        match &self.block {
            Some(block) => {
                let same_name = self.blocks.iter().filter(|b| b.name == block.name).count();
                format!("{BODY}/{}[{}]", clip(&block.name), same_name + 1)
            }
            None => BODY.to_owned(),
        }
    }

    fn structure(&self, problem: impl Into<String>, at: u64) -> DecodeError {
        DecodeError::Structure {
            path: self.path(),
            problem: problem.into(),
            at: self.position(at),
        }
    }

    fn limit(&self, path: String, kind: LimitKind, max: usize, at: u64) -> DecodeError {
        DecodeError::Limit {
            path,
            kind,
            max,
            at: self.position(at),
        }
    }

    fn xml_error(&self, error: &XmlError, offset: u64) -> DecodeError {
        let at = self.position(offset);
        let detail = match error {
            XmlError::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
                format!("expected </{}>, found </{}>", clip(expected), clip(found))
            }
            XmlError::IllFormed(IllFormedError::UnmatchedEndTag(name)) => {
                format!("</{}> closes no open element", clip(name))
            }
            XmlError::IllFormed(IllFormedError::MissingEndTag(name)) => {
                format!("<{}> is not closed before the end of input", clip(name))
            }
            XmlError::IllFormed(IllFormedError::MissingDeclVersion(Some(found))) => {
                format!(
                    "the XML declaration must start with version, found {}",
                    clip(found)
                )
            }
            XmlError::IllFormed(IllFormedError::MissingDoctypeName) => {
                return DecodeError::Forbidden {
                    what: "a DOCTYPE declaration",
                    at,
                }
            }
            // The remaining variants carry no input text.
            other => clip(&other.to_string()),
        };
        DecodeError::Xml { detail, at }
    }

    fn start(&mut self, start: &BytesStart<'_>, at: u64) -> Result<(), DecodeError> {
        let name =
            std::str::from_utf8(start.name().into_inner()).map_err(|_| DecodeError::Xml {
                detail: "element name is not valid text".to_owned(),
                at: self.position(at),
            })?;
        let name = name.to_owned();
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.limit(
                self.child_path(&name),
                LimitKind::Depth,
                self.limits.max_depth,
                at,
            ));
        }
        if !is_valid_name(&name) {
            return Err(self.structure(
                format!(
                    "element name {:?} is invalid: expected ASCII [A-Z_][A-Z0-9_]*, at most {MAX_NAME_BYTES} bytes",
                    clip(&name)
                ),
                at,
            ));
        }
        if start
            .attributes_raw()
            .iter()
            .any(|b| !is_xml_whitespace(*b))
        {
            return Err(DecodeError::Structure {
                path: self.child_path(&name),
                problem: "attributes are not allowed".to_owned(),
                at: self.position(at),
            });
        }

        let frame = match self.stack.last() {
            None if self.root_closed => {
                return Err(self.structure(
                    format!(
                        "element <{}> after the root element; expected end of input",
                        clip(&name)
                    ),
                    at,
                ))
            }
            None if name == ROOT => Frame::Root,
            None => {
                return Err(self.structure(
                    format!("root element is <{}>; expected <{ROOT}>", clip(&name)),
                    at,
                ))
            }
            Some(Frame::Root) if name == HEAD => {
                if self.head_seen {
                    return Err(self.structure("HEAD appears twice", at));
                }
                if self.body_seen {
                    return Err(self.structure("HEAD must come before BODY", at));
                }
                self.head_seen = true;
                Frame::Head
            }
            Some(Frame::Root) if name == BODY => {
                if self.body_seen {
                    return Err(self.structure("BODY appears twice", at));
                }
                if !self.head_seen {
                    return Err(self.structure("BODY must come after HEAD", at));
                }
                self.body_seen = true;
                Frame::Body
            }
            Some(Frame::Root) => {
                return Err(self.structure(
                    format!(
                        "unexpected element <{}>; expected HEAD or BODY",
                        clip(&name)
                    ),
                    at,
                ))
            }
            Some(Frame::Head) => {
                let Some(field) = HeadField::from_name(&name) else {
                    return Err(self.structure(
                        format!(
                            "unexpected element <{}>; expected FUNC, LOGIN, PASSWD, DATATYPE, SERIAL, RETCODE or RETMSG",
                            clip(&name)
                        ),
                        at,
                    ));
                };
                if self.head.slot(field).is_some() {
                    return Err(self.structure(format!("{} appears twice", field.name()), at));
                }
                self.leaf_text.clear();
                Frame::HeadField(field)
            }
            Some(Frame::Body) => {
                if self.blocks.len() >= self.limits.max_blocks {
                    return Err(self.limit(
                        self.child_path(&name),
                        LimitKind::Blocks,
                        self.limits.max_blocks,
                        at,
                    ));
                }
                self.block = Some(Block::new(name));
                Frame::Block
            }
            Some(Frame::Block) => {
                let fields = self.block.as_ref().map_or(0, |b| b.fields.len());
                if fields >= self.limits.max_fields_per_block {
                    return Err(self.limit(
                        self.child_path(&name),
                        LimitKind::FieldsPerBlock,
                        self.limits.max_fields_per_block,
                        at,
                    ));
                }
                self.leaf_text.clear();
                Frame::Field(name)
            }
            Some(Frame::HeadField(_) | Frame::Field(_)) => {
                return Err(self.structure(
                    format!(
                        "element <{}> nested inside a field; fields hold text only",
                        clip(&name)
                    ),
                    at,
                ))
            }
        };
        self.stack.push(frame);
        Ok(())
    }

    fn end(&mut self, at: u64) -> Result<(), DecodeError> {
        let Some(frame) = self.stack.pop() else {
            return Err(self.structure("closing tag without an open element", at));
        };
        match frame {
            Frame::Root => self.root_closed = true,
            Frame::Head | Frame::Body => {}
            Frame::HeadField(field) => {
                *self.head.slot(field) = Some(std::mem::take(&mut self.leaf_text));
            }
            Frame::Block => {
                if let Some(block) = self.block.take() {
                    self.blocks.push(block);
                }
            }
            Frame::Field(name) => {
                let value = std::mem::take(&mut self.leaf_text);
                if let Some(block) = self.block.as_mut() {
                    block.fields.push((name, value));
                }
            }
        }
        Ok(())
    }

    fn text_event(&mut self, text: &BytesText<'_>, at: u64) -> Result<(), DecodeError> {
        if !self.in_leaf() {
            // Only whitespace may sit between elements; checked on the raw
            // bytes so that `&#32;` outside a field is refused too.
            return self.character_data_outside_leaf(text, at);
        }
        let unescaped = text.unescape().map_err(|error| match error {
            XmlError::Escape(EscapeError::UnrecognizedEntity(_, name)) => {
                DecodeError::UnknownEntity {
                    path: self.path(),
                    name: clip(&name),
                    at: self.position(at),
                }
            }
            other => DecodeError::Xml {
                detail: format!("in {}: {}", self.path(), clip(&other.to_string())),
                at: self.position(at),
            },
        })?;
        let raw = std::str::from_utf8(text).unwrap_or_default();
        self.character_data(raw, &unescaped, at)
    }

    fn in_leaf(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::HeadField(_) | Frame::Field(_))
        )
    }

    /// Text or CDATA: `raw` as written, `value` after unescaping.
    fn character_data(&mut self, raw: &str, value: &str, at: u64) -> Result<(), DecodeError> {
        if !self.in_leaf() {
            return self.character_data_outside_leaf(raw.as_bytes(), at);
        }
        if let Some(ch) = value.chars().find(|ch| !is_xml_char(*ch)) {
            return Err(DecodeError::InvalidChar {
                path: self.path(),
                ch,
                at: self.position(at),
            });
        }
        if self.leaf_text.len().saturating_add(value.len()) > self.limits.max_text_bytes {
            return Err(self.limit(
                self.path(),
                LimitKind::TextBytes,
                self.limits.max_text_bytes,
                at,
            ));
        }
        self.leaf_text.push_str(value);
        Ok(())
    }

    fn character_data_outside_leaf(&self, raw: &[u8], at: u64) -> Result<(), DecodeError> {
        if raw.iter().all(|b| is_xml_whitespace(*b)) {
            return Ok(());
        }
        let problem = match self.stack.last() {
            None if self.root_closed => "text after the root element; expected end of input",
            None => "text before the root element",
            Some(Frame::Body) => "text directly in BODY; expected blocks",
            Some(Frame::Block) => "text directly in a block; expected fields",
            Some(_) => "text where only elements are allowed",
        };
        Err(self.structure(problem, at))
    }

    fn finish(self) -> Result<Packet, DecodeError> {
        let end = u64::MAX;
        if !self.stack.is_empty() {
            return Err(self.structure("element is not closed before the end of input", end));
        }
        if !self.root_closed {
            return Err(self.structure(format!("no <{ROOT}> root element"), end));
        }
        let at = self.position(end);
        let missing = |field: &str| DecodeError::Structure {
            path: format!("{HEAD}/{field}"),
            problem: "missing; every packet must carry it".to_owned(),
            at,
        };
        if !self.head_seen {
            return Err(DecodeError::Structure {
                path: ROOT.to_owned(),
                problem: "HEAD is missing".to_owned(),
                at,
            });
        }
        let HeadValues {
            func,
            login,
            password,
            data_type,
            serial,
            ret_code,
            ret_msg,
        } = self.head;
        let func = func.ok_or_else(|| missing(HeadField::Func.name()))?;
        let serial = serial.ok_or_else(|| missing(HeadField::Serial.name()))?;
        Ok(Packet {
            head: Head {
                func,
                login,
                password,
                data_type,
                serial,
                ret_code,
                ret_msg,
            },
            body: self.blocks,
        })
    }
}

fn check_decl(decl: &BytesDecl<'_>, at: TextPosition) -> Result<(), DecodeError> {
    let version = decl.version().map_err(|error| DecodeError::Xml {
        detail: format!("bad XML declaration: {}", clip(&error.to_string())),
        at,
    })?;
    if version.as_ref() != b"1.0" {
        return Err(DecodeError::Xml {
            detail: format!(
                "XML version {:?} is not supported; expected 1.0",
                clip(&String::from_utf8_lossy(&version))
            ),
            at,
        });
    }
    match decl.encoding() {
        None => Ok(()),
        Some(Err(error)) => Err(DecodeError::Xml {
            detail: format!(
                "bad encoding in the XML declaration: {}",
                clip(&error.to_string())
            ),
            at,
        }),
        Some(Ok(label)) => match encoding_rs::Encoding::for_label(&label) {
            Some(encoding) if encoding == GBK || encoding == GB18030 => Ok(()),
            _ => Err(DecodeError::DeclaredEncoding {
                declared: clip(&String::from_utf8_lossy(&label)),
            }),
        },
    }
}

#[cfg(test)]
mod tests;
