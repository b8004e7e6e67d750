//! ISO 20022 messages of the host-to-host bank family, as pure codecs.
//!
//! Five messages so far, one module each (eight schemas):
//!
//! - [`pain001`]: `pain.001.001.09` (and `pain.001.001.03` for older banks,
//!   [`pain001::render_version`], [`pain001::parse_any`]), the customer credit
//!   transfer initiation we send. [`pain001::render`] writes UTF-8 XML and computes the counts
//!   and control sums; [`pain001::parse`] reads it back (the bank simulator's
//!   side) and refuses counts or sums that disagree with the transactions.
//! - [`camt053`]: `camt.053.001.08` and `camt.053.001.02` (for older
//!   banks), the bank-to-customer statement we receive, one model for both.
//!   [`camt053::StatementReader`] streams either over any `BufRead`: it
//!   yields the group header, each statement's header and then its entries
//!   one at a time, holding at most one entry's elements in memory, and
//!   tells the [`camt053::Version`] from the namespace
//!   ([`camt053::StatementReader::version`], [`camt053::parse_any`]).
//!   [`camt053::render`] writes `.08`, [`camt053::render_version`] either
//!   version (the bank simulator's side).
//! - [`pain002`]: `pain.002.001.03` and `pain.002.001.12`, the customer
//!   payment status report we receive, one model for both.
//!   [`pain002::parse`] tells the version from the namespace and keeps
//!   status codes it does not know; [`pain002::render`] (the bank
//!   simulator's side) refuses codes the chosen version cannot carry.
//! - [`camt052`]: `camt.052.001.08`, the intraday account report we
//!   receive (interim balances, pending entries), and [`camt054`]:
//!   `camt.054.001.08`, the debit/credit notification. Both have the
//!   camt.053 shape under other names and reuse its model;
//!   [`camt052::ReportReader`] and [`camt054::NotificationReader`] stream
//!   them the same way, and each module has a `render` (the bank
//!   simulator's side).
//!
//! The three camt messages share [`camt053::GroupHeader`], whose
//! `pagination` ([`camt053::Pagination`]: `GrpHdr/MsgPgntn`, page number
//! and last-page flag) says which page of a message split over several a
//! document is; it is read and written right after `CreDtTm`.
//!
//! What the codecs promise:
//!
//! - Strict on what we render: every text is checked against the ISO length
//!   of its field (`Max35Text`, `Max70Text`, `Max140Text`, …) and refused
//!   with a [`RenderError`] naming the element path, never truncated;
//!   characters XML 1.0 cannot carry are refused; amounts are written with
//!   exactly their currency's decimals.
//! - Tolerant where real banks deviate: any namespace prefix (or none),
//!   optional elements absent, elements we do not model skipped, whitespace
//!   around codes, amounts and dates.
//! - Strict about money: amounts are parsed exactly into [`domain::Money`]
//!   (never through floats, never rounded), and counts and control sums
//!   must match the transactions.
//! - Untrusted bytes never panic: every problem is a [`ParseError`] naming
//!   the element path, 1-based like XPath (`PmtInf[2]/CdtTrfTxInf[1]/Amt`;
//!   while streaming, before later siblings are known, the first of its
//!   name is written without an index: `Stmt/Ntry/Amt`). Input size, the
//!   raw size of one tag or text run, nesting depth, text size and the
//!   size of one entry are bounded by [`Limits`].
//! - Checked by properties and fuzzing: every parser has a render→parse
//!   round-trip property for each version and never panics on arbitrary or
//!   damaged bytes (`tests/iso20022_*.rs`), and a cargo-fuzz target
//!   (`fuzz/fuzz_targets/iso20022_*.rs`: `pain001`, `pain002`, `camt052`,
//!   `camt053`, `camt054`).
//!
//! Text is kept as the bank wrote it, except that codes, amounts and dates
//! are trimmed of surrounding whitespace before they are read. Identifiers
//! with a checked structure become domain types ([`domain::Iban`],
//! [`domain::Bic`], [`domain::Currency`], [`domain::BusinessDate`]);
//! `CreDtTm` stays text (checked as an ISO date-time when rendered).

pub mod camt052;
pub mod camt053;
pub mod camt054;
pub mod pain001;
pub mod pain002;
mod xml;

use domain::{Bic, Iban};

/// Longest `Max35Text`: message, payment, instruction and entry references.
pub const MAX35: usize = 35;
/// Longest `Max34Text`: an account identification other than an IBAN.
pub const MAX34: usize = 34;
/// Longest `Max70Text`: one postal address line.
pub const MAX70: usize = 70;
/// Longest `Max140Text`: names and unstructured remittance lines.
pub const MAX140: usize = 140;
/// At most this many `AdrLine` in a postal address (ISO `PostalAddress24`).
pub const MAX_ADDRESS_LINES: usize = 7;
/// At most this many characters of input text are copied into an error.
pub const MAX_ERROR_TEXT_CHARS: usize = 64;

/// How an account is identified: `Id/IBAN` or `Id/Othr/Id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountIdentification {
    Iban(Iban),
    /// `Othr/Id`, a `Max34Text` such as a domestic account number.
    Other(String),
}

/// A party's name and unstructured address (`Nm`, `PstlAdr/AdrLine`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Party {
    /// `Nm`, `Max140Text`.
    pub name: Option<String>,
    /// `PstlAdr/AdrLine`, at most [`MAX_ADDRESS_LINES`] of `Max70Text`.
    pub address_lines: Vec<String>,
}

/// A financial institution identified by its BIC (`FinInstnId/BICFI` in .09,
/// `FinInstnId/BIC` in pain.001.001.03).
pub type Agent = Bic;

/// Bounds the parsers enforce on untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Size of a whole input given as bytes (the pain.001 parser); the
    /// streaming camt.053 reader has no total size limit by design.
    pub max_bytes: usize,
    /// Element nesting depth; the root `Document` is depth 1. The deepest
    /// element we read is at depth 11 (camt.053 `.../RltdPties/Dbtr/Pty/PstlAdr/AdrLine`).
    pub max_depth: usize,
    /// Text of one element or attribute after unescaping, in UTF-8 bytes.
    pub max_text_bytes: usize,
    /// Raw bytes of one tag or text run as read, before unescaping (up to
    /// one buffer of the input more is read before this is noticed). Keeps
    /// a single enormous element from growing memory before
    /// `max_text_bytes` can be checked.
    pub max_event_bytes: usize,
    /// Elements held in memory at once: one group header, one payment
    /// information block or one statement entry, with all its descendants.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 32,
            max_text_bytes: 16 * 1024,
            max_event_bytes: 128 * 1024,
            max_elements: 2_000_000,
        }
    }
}

/// Which of the [`Limits`] was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Depth,
    TextBytes,
    EventBytes,
    Elements,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::Depth => "element nesting depth",
            LimitKind::TextBytes => "text size in bytes",
            LimitKind::EventBytes => "size of one tag or text run in bytes",
            LimitKind::Elements => "number of elements held at once",
        })
    }
}

/// Why a message could not be rendered. Every variant names the element
/// path; the caller must change the data, nothing is truncated or repaired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{path}: {chars} characters, more than the ISO 20022 limit of {max_chars}")]
    TooLong {
        path: String,
        chars: usize,
        max_chars: usize,
    },
    #[error("{path}: empty; ISO 20022 text needs at least one character")]
    Empty { path: String },
    #[error("{path}: {count} occurrences, more than the ISO 20022 limit of {max}")]
    TooMany {
        path: String,
        count: usize,
        max: usize,
    },
    #[error("{path}: character U+{code:04X} is not allowed in XML 1.0 text", code = u32::from(*ch))]
    InvalidChar { path: String, ch: char },
    #[error("{path}: {detail}")]
    InvalidValue { path: String, detail: String },
}

/// Why bytes are not the expected message. Every variant says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("input is {size_bytes} bytes, more than the limit of {max_bytes} bytes")]
    TooLarge { size_bytes: usize, max_bytes: usize },
    /// Not well-formed XML, not UTF-8, or a construct we refuse (DOCTYPE).
    #[error("{path}: malformed XML at byte {offset}: {detail}")]
    Xml {
        path: String,
        offset: u64,
        detail: String,
    },
    /// Reading from the underlying `BufRead` failed.
    #[error("reading the input failed at byte {offset}: {detail}")]
    Io { offset: u64, detail: String },
    #[error("{path}: required element is missing")]
    Missing { path: String },
    /// Well-formed, but not the message's shape (wrong root, text where
    /// elements belong).
    #[error("{path}: {problem}")]
    Structure { path: String, problem: String },
    /// An element whose text is not a valid value of its type.
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    /// A count or control sum that disagrees with the transactions.
    #[error("{path}: the document says {stated}, the transactions give {computed}")]
    Mismatch {
        path: String,
        stated: String,
        computed: String,
    },
    #[error("{path}: {kind} exceeds the limit of {max}")]
    Limit {
        path: String,
        kind: LimitKind,
        max: usize,
    },
}

impl ParseError {
    /// The element path the error is about, when it has one.
    pub fn path(&self) -> Option<&str> {
        match self {
            ParseError::TooLarge { .. } | ParseError::Io { .. } => None,
            ParseError::Xml { path, .. }
            | ParseError::Missing { path }
            | ParseError::Structure { path, .. }
            | ParseError::Invalid { path, .. }
            | ParseError::Mismatch { path, .. }
            | ParseError::Limit { path, .. } => Some(path),
        }
    }
}

/// Keeps input-derived text in errors short.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// `YYYY-MM-DDThh:mm:ss[.f+][Z|±hh:mm]`, the ISO 20022 `ISODateTime` as
/// banks write it.
fn is_iso_date_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let number = |range: std::ops::Range<usize>| {
        text.get(range)
            .and_then(|part| part.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    };
    let date_ok = text
        .get(..10)
        .is_some_and(|date| domain::BusinessDate::parse_iso(date).is_ok());
    if !date_ok
        || bytes.get(10) != Some(&b'T')
        || !digits(11..13)
        || bytes.get(13) != Some(&b':')
        || !digits(14..16)
        || bytes.get(16) != Some(&b':')
        || !digits(17..19)
        || number(11..13) > 23
        || number(14..16) > 59
        || number(17..19) > 59
    {
        return false;
    }
    let mut rest = bytes.get(19..).unwrap_or_default();
    if let Some((b'.', after)) = rest.split_first() {
        let count = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if count == 0 {
            return false;
        }
        rest = after.get(count..).unwrap_or_default();
    }
    match rest {
        [] | [b'Z'] => true,
        [sign, h1, h2, b':', m1, m2] if *sign == b'+' || *sign == b'-' => {
            if ![h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) {
                return false;
            }
            let hours = u32::from((*h1 - b'0') * 10 + (*h2 - b'0'));
            let minutes = u32::from((*m1 - b'0') * 10 + (*m2 - b'0'));
            // xs:dateTime allows offsets from -14:00 to +14:00 only.
            minutes <= 59 && hours * 60 + minutes <= 14 * 60
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_date_times_are_recognised() {
        for ok in [
            "2026-11-28T10:15:00",
            "2026-11-28T10:15:00Z",
            "2026-11-28T10:15:00.123+08:00",
            "2026-02-28T23:59:59-05:30",
            "2026-11-28T10:15:00+14:00",
            "2026-11-28T10:15:00-14:00",
        ] {
            assert!(is_iso_date_time(ok), "{ok}");
        }
        for bad in [
            "",
            "2026-11-28",
            "2026-11-28 10:15:00",
            "2026-02-30T10:15:00",
            "2026-11-28T24:00:00",
            "2026-11-28T10:15:00.",
            "2026-11-28T10:15:00+0800",
            "2026-11-28T10:15:00Zjunk",
            // xs:dateTime stops at ±14:00.
            "2026-11-28T10:15:00+14:30",
            "2026-11-28T10:15:00-14:01",
            "2026-11-28T10:15:00+15:00",
        ] {
            assert!(!is_iso_date_time(bad), "{bad}");
        }
    }
}
