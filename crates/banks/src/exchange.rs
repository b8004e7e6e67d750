//! Telling the gateway about every exchange with a bank, without this crate
//! knowing where it is kept.
//!
//! [`observe`] wraps a connector in a decorator that, for each
//! [`BankConnector`] method, says what the call concerns (our business
//! references, or the accounts asked about) and hands every call the
//! connector makes to a bank — one function code or order type, one request
//! and its answer — to an [`ExchangeSink`] as a [`BankExchange`]: bank,
//! connection, function, subject, outcome, start and duration, and the
//! request and answer bodies **masked** ([`mask_body`]) and capped at
//! [`MAX_BODY_BYTES`].
//!
//! How the bytes get here: the decorator runs the connector's future inside
//! a task-local scope; `transport::observed` (which already times and
//! counts every call) opens a capture for the call, and the connectors'
//! send and read paths drop a copy of the exact bytes into it
//! ([`note_request`], [`note_response`]; no-ops outside a scope, so an
//! unobserved connector pays nothing). A task-local rather than a parameter
//! because the bytes are known several calls deep in each family's
//! transport, and the subject only at the trait method; threading both
//! through every signature would touch every call of both families for a
//! concern none of them acts on.
//!
//! Raw bytes never leave this crate: a body is decoded (GB18030 for cn-xml,
//! UTF-8 for iso20022, lossily: it is for reading, not parsing), masked,
//! then cut. The sink cannot fail the call: it returns nothing, and a slow
//! or broken sink is the sink's to bound and report.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{AccountNumber, BankReference, Clock};

use crate::{
    BalanceOutcome, BalanceQuery, BankAccountInfo, BankConnector, BankError, BatchInstruction,
    BatchItemInstruction, BatchKind, BatchReceipt, BatchStatusAnswer, Capability, DedupeKeyPolicy,
    Family, IntakeProblem, PaymentInstruction, StatusAnswer, SubmitReceipt, TransactionQuery,
    TransactionReport,
};

/// Most bytes of one masked body handed to the sink; the rest is cut and
/// [`MaskedBody::truncated`] says so.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most bytes of one body copied while the call runs: enough to fill
/// [`MAX_BODY_BYTES`] after masking (removing a secret only shortens), so
/// a multi-megabyte statement is not copied whole.
const MAX_CAPTURE_BYTES: usize = 4 * MAX_BODY_BYTES;
/// Shortest run of digits (or IBAN-shaped token) taken for an account
/// number and masked.
pub const MASK_MIN_CHARS: usize = 8;
/// Characters of an account number left visible.
const MASK_KEEP_CHARS: usize = 4;
/// What a removed secret's value is replaced with.
pub const REMOVED: &str = "[removed]";

/// What an exchange concerns, as the connector method called knew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeSubject {
    /// Nothing of ours in particular (the account list).
    Nothing,
    /// Payments or batch chunks, by our business references.
    References(Vec<BankReference>),
    /// Accounts (balances, transactions). `AccountNumber` prints masked;
    /// the sink maps them to its own account ids.
    Accounts(Vec<AccountNumber>),
}

/// A body after masking, at most [`MAX_BODY_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedBody {
    pub text: String,
    /// True when the masked body was longer and has been cut.
    pub truncated: bool,
}

/// One call to a bank: one request (function code / order type) and its
/// answer.
#[derive(Debug, Clone)]
pub struct BankExchange {
    pub bank_id: String,
    pub connection_id: String,
    /// The cn-xml function code or the iso20022 order type.
    pub function: &'static str,
    pub subject: ExchangeSubject,
    /// `ok` or the error's [`BankError::outcome_label`].
    pub outcome: &'static str,
    /// The bank's code of a rejection, when it gave one.
    pub bank_code: Option<String>,
    pub started_at: DateTime<Utc>,
    pub elapsed: Duration,
    /// `None` when nothing was sent.
    pub request: Option<MaskedBody>,
    /// `None` when no answer body was read.
    pub response: Option<MaskedBody>,
}

/// Where exchanges go. Implemented by the gateway (a table and the audit
/// chain). `record` is awaited after the call and before its result is
/// returned; it has no error to return because a failure to record must
/// never fail or repeat a bank call.
#[async_trait]
pub trait ExchangeSink: Send + Sync + fmt::Debug + 'static {
    async fn record(&self, exchange: BankExchange);
}

/// `connector` with every exchange handed to `sink`, stamped by `clock`.
pub fn observe(
    connector: Arc<dyn BankConnector>,
    sink: Arc<dyn ExchangeSink>,
    clock: Arc<dyn Clock>,
    bank_id: String,
    connection_id: String,
) -> Arc<dyn BankConnector> {
    Arc::new(Observed {
        inner: connector,
        scope: Arc::new(Scope {
            sink,
            clock,
            bank_id,
            connection_id,
        }),
    })
}

/// How a family's bodies are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// cn-xml: GBK out, read as GB18030.
    Gb18030,
    /// iso20022 files and JSON.
    Utf8,
}

struct Scope {
    sink: Arc<dyn ExchangeSink>,
    clock: Arc<dyn Clock>,
    bank_id: String,
    connection_id: String,
}

/// The subject and sink of the connector method running on this task.
#[derive(Clone)]
struct Current {
    scope: Arc<Scope>,
    subject: Arc<ExchangeSubject>,
}

#[derive(Default)]
struct Capture {
    request: Option<Vec<u8>>,
    response: Option<Vec<u8>>,
}

tokio::task_local! {
    static CURRENT: Current;
    static CAPTURE: RefCell<Capture>;
}

/// A copy of the exact bytes about to be sent, for the exchange under way
/// (nothing outside an observed call).
pub(crate) fn note_request(bytes: &[u8]) {
    let _ = CAPTURE.try_with(|c| c.borrow_mut().request = Some(capped_copy(bytes)));
}

/// A copy of the exact bytes received.
pub(crate) fn note_response(bytes: &[u8]) {
    let _ = CAPTURE.try_with(|c| c.borrow_mut().response = Some(capped_copy(bytes)));
}

fn capped_copy(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len().min(MAX_CAPTURE_BYTES + 1)].to_vec()
}

/// Runs one call (`transport::observed`'s) with a capture open and, under
/// an observed connector, hands the exchange to the sink once it is done.
pub(crate) async fn recorded<T>(
    function: &'static str,
    charset: Charset,
    call: impl std::future::Future<Output = Result<T, BankError>>,
) -> Result<T, BankError> {
    let Ok(current) = CURRENT.try_with(Current::clone) else {
        return call.await;
    };
    let started_at = current.scope.clock.now();
    let started = std::time::Instant::now();
    let (result, capture) = CAPTURE
        .scope(RefCell::new(Capture::default()), async {
            let result = call.await;
            let capture = CAPTURE
                .try_with(|c| std::mem::take(&mut *c.borrow_mut()))
                .unwrap_or_default();
            (result, capture)
        })
        .await;
    let exchange = BankExchange {
        bank_id: current.scope.bank_id.clone(),
        connection_id: current.scope.connection_id.clone(),
        function,
        subject: (*current.subject).clone(),
        outcome: match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome_label(),
        },
        bank_code: match &result {
            Err(BankError::Rejected { code, .. }) => Some(code.clone()),
            _ => None,
        },
        started_at,
        elapsed: started.elapsed(),
        request: capture.request.map(|b| masked_body(&b, charset)),
        response: capture.response.map(|b| masked_body(&b, charset)),
    };
    current.scope.sink.record(exchange).await;
    result
}

/// Decodes, masks and cuts one captured body.
pub(crate) fn masked_body(bytes: &[u8], charset: Charset) -> MaskedBody {
    let cut = bytes.len() > MAX_CAPTURE_BYTES;
    let bytes = &bytes[..bytes.len().min(MAX_CAPTURE_BYTES)];
    let mut text = match charset {
        Charset::Gb18030 => encoding_rs::GB18030.decode_without_bom_handling(bytes).0,
        Charset::Utf8 => String::from_utf8_lossy(bytes),
    }
    .into_owned();
    // NUL cannot be stored as text on PostgreSQL, and a UTF-16 answer read
    // as UTF-8 would hide its digits between NULs from the masking.
    text.retain(|c| c != '\0');
    if cut {
        // The copy may end inside an account number: drop the partial token.
        let keep = text
            .trim_end_matches(|c: char| c.is_ascii_alphanumeric())
            .len();
        text.truncate(keep);
    }
    let masked = mask_body(&text);
    truncate_body(masked, cut)
}

fn truncate_body(mut text: String, already_cut: bool) -> MaskedBody {
    if text.len() <= MAX_BODY_BYTES {
        return MaskedBody {
            text,
            truncated: already_cut,
        };
    }
    let mut end = MAX_BODY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    MaskedBody {
        text,
        truncated: true,
    }
}

/// A body as it may be kept: the values of password, secret, signature and
/// token fields (XML elements and attributes, JSON members) replaced by
/// [`REMOVED`], then every account-number-like token masked
/// ([`mask_accounts`]). Works on any text, well-formed or not.
pub fn mask_body(text: &str) -> String {
    mask_accounts(&remove_json_secrets(&remove_xml_secrets(text)))
}

/// Whether a field of this name holds a secret (case-insensitive, any XML
/// prefix already removed).
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    const CONTAINS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "signature",
        "token",
        "privatekey",
        "private_key",
    ];
    const EXACT: &[&str] = &["pwd", "pin", "sign", "sig", "signvalue", "mac", "key"];
    CONTAINS.iter().any(|s| name.contains(s)) || EXACT.contains(&name.as_str())
}

fn local_name(qualified: &str) -> &str {
    qualified.rsplit(':').next().unwrap_or(qualified)
}

/// Every account-number-like token keeps only its last four characters:
/// in each run of ASCII letters and digits, an IBAN (the shape, a country
/// of the registry with its length, and check digits that verify) as a
/// whole, otherwise each run of [`MASK_MIN_CHARS`] or more digits. A
/// business reference that merely looks like an IBAN (two capitals, two
/// digits, more capitals and digits: about one random reference in twenty)
/// stays readable, so the exchange can be found by it. Dates
/// written `YYYYMMDD` and long serials are masked too: masking too much is
/// the safe side.
pub fn mask_accounts(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_alphanumeric() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let token = &chars[start..i];
        if iban_shaped(token) {
            push_masked(&mut out, token);
        } else {
            mask_digit_runs(&mut out, token);
        }
    }
    out
}

fn iban_shaped(token: &[char]) -> bool {
    (15..=34).contains(&token.len())
        && token[..2].iter().all(char::is_ascii_uppercase)
        && token[2..4].iter().all(char::is_ascii_digit)
        && token[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && domain::Iban::parse(&token.iter().collect::<String>()).is_ok()
}

fn mask_digit_runs(out: &mut String, token: &[char]) {
    let mut i = 0;
    while i < token.len() {
        if !token[i].is_ascii_digit() {
            out.push(token[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < token.len() && token[i].is_ascii_digit() {
            i += 1;
        }
        let run = &token[start..i];
        if run.len() >= MASK_MIN_CHARS {
            push_masked(out, run);
        } else {
            out.extend(run);
        }
    }
}

fn push_masked(out: &mut String, token: &[char]) {
    let keep_from = token.len().saturating_sub(MASK_KEEP_CHARS);
    for (i, c) in token.iter().enumerate() {
        out.push(if i < keep_from { '*' } else { *c });
    }
}

/// The content of secret-named XML elements (`<PWD>…</PWD>`,
/// `<ds:Signature>…</ds:Signature>`, up to the end of the text when the
/// closing tag is missing) and the values of secret-named attributes
/// become [`REMOVED`].
fn remove_xml_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let tag_text = &rest[open..];
        let Some(close) = tag_text.find('>') else {
            out.push_str(&remove_attribute_secrets(tag_text));
            return out;
        };
        let tag = &tag_text[..=close];
        let name: String = tag[1..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect();
        out.push_str(&remove_attribute_secrets(tag));
        rest = &tag_text[close + 1..];
        let is_start = !name.is_empty() && !name.starts_with(['/', '?', '!']);
        if is_start && !tag.ends_with("/>") && is_secret_name(local_name(&name)) {
            out.push_str(REMOVED);
            match find_end_tag(rest, &name) {
                Some(end) => rest = &rest[end..],
                None => return out,
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where `</name>` (or `</name >`) starts in `text`; not `</nameMore>`.
fn find_end_tag(text: &str, name: &str) -> Option<usize> {
    let end_tag = format!("</{name}");
    let mut from = 0;
    while let Some(found) = text[from..].find(&end_tag) {
        let at = from + found;
        let after = &text[at + end_tag.len()..];
        if after.starts_with('>') || after.starts_with(char::is_whitespace) {
            return Some(at);
        }
        from = at + end_tag.len();
    }
    None
}

/// `<X a="1" password="p">` → `<X a="1" password="[removed]">`.
fn remove_attribute_secrets(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    let mut rest = tag;
    while let Some(eq) = rest.find('=') {
        let before = &rest[..eq];
        let name = before
            .trim_end()
            .rsplit(|c: char| c.is_whitespace() || c == '<')
            .next()
            .unwrap_or_default();
        let after = &rest[eq + 1..];
        let value_start = after.len() - after.trim_start().len();
        let quote = after[value_start..].chars().next();
        match quote {
            Some(q @ ('"' | '\'')) if is_secret_name(local_name(name)) => {
                let body = &after[value_start + 1..];
                out.push_str(before);
                out.push('=');
                out.push(q);
                out.push_str(REMOVED);
                match body.find(q) {
                    Some(end) => rest = &body[end..],
                    None => return out,
                }
            }
            _ => {
                out.push_str(&rest[..=eq]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The values of secret-named JSON members (`"secret": "…"`, a number, or
/// a whole object or array) become `"[removed]"`.
fn remove_json_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(q) = rest.find('"') {
        out.push_str(&rest[..q]);
        let Some((key, after_key)) = json_string(&rest[q..]) else {
            out.push_str(&rest[q..]);
            return out;
        };
        out.push_str(&rest[q..rest.len() - after_key.len()]);
        rest = after_key;
        let trimmed = after_key.trim_start();
        if !(trimmed.starts_with(':') && is_secret_name(key)) {
            continue;
        }
        let value = trimmed[1..].trim_start();
        out.push_str(&after_key[..after_key.len() - trimmed.len()]);
        out.push_str(": \"");
        out.push_str(REMOVED);
        out.push('"');
        rest = skip_json_value(value);
    }
    out.push_str(rest);
    out
}

/// The string at the start of `text` (which starts with `"`) and what
/// follows it; `None` when it never ends.
fn json_string(text: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some((&text[1..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// What follows one JSON value at the start of `text`; an unfinished
/// value takes the rest.
fn skip_json_value(text: &str) -> &str {
    if text.starts_with('"') {
        return json_string(text).map_or("", |(_, after)| after);
    }
    if text.starts_with(['{', '[']) {
        let mut depth = 0usize;
        let mut i = 0;
        while i < text.len() {
            let c = text[i..].chars().next().unwrap_or(' ');
            match c {
                '"' => match json_string(&text[i..]) {
                    Some((_, after)) => {
                        i = text.len() - after.len();
                        continue;
                    }
                    None => return "",
                },
                '{' | '[' => depth += 1,
                '}' | ']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return &text[i + 1..];
                    }
                }
                _ => {}
            }
            i += c.len_utf8();
        }
        return "";
    }
    let end = text.find([',', '}', ']', '\n']).unwrap_or(text.len());
    &text[end..]
}

/// Runs `call` with `subject` as what the exchanges it makes concern.
async fn concerning<T>(
    scope: &Arc<Scope>,
    subject: ExchangeSubject,
    call: impl std::future::Future<Output = T>,
) -> T {
    CURRENT
        .scope(
            Current {
                scope: scope.clone(),
                subject: Arc::new(subject),
            },
            call,
        )
        .await
}

/// The decorator [`observe`] returns.
struct Observed {
    inner: Arc<dyn BankConnector>,
    scope: Arc<Scope>,
}

impl fmt::Debug for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observed")
            .field("inner", &self.inner)
            .field("sink", &self.scope.sink)
            .finish()
    }
}

fn accounts_of(queries: impl Iterator<Item = AccountNumber>) -> ExchangeSubject {
    let mut numbers: Vec<AccountNumber> = Vec::new();
    for number in queries {
        if !numbers.contains(&number) {
            numbers.push(number);
        }
    }
    ExchangeSubject::Accounts(numbers)
}

#[async_trait]
impl BankConnector for Observed {
    fn family(&self) -> Family {
        self.inner.family()
    }

    fn capabilities(&self) -> &'static [Capability] {
        self.inner.capabilities()
    }

    fn lacking_capabilities(&self) -> &'static [(Capability, &'static str)] {
        self.inner.lacking_capabilities()
    }

    async fn list_accounts(&self) -> Result<Vec<BankAccountInfo>, BankError> {
        concerning(
            &self.scope,
            ExchangeSubject::Nothing,
            self.inner.list_accounts(),
        )
        .await
    }

    async fn balances(&self, accounts: &[BalanceQuery]) -> Result<Vec<BalanceOutcome>, BankError> {
        let subject = accounts_of(accounts.iter().map(|q| q.number.clone()));
        concerning(&self.scope, subject, self.inner.balances(accounts)).await
    }

    fn dedupe_policy(&self) -> DedupeKeyPolicy {
        self.inner.dedupe_policy()
    }

    async fn transactions(&self, query: &TransactionQuery) -> Result<TransactionReport, BankError> {
        let subject = ExchangeSubject::Accounts(vec![query.number.clone()]);
        concerning(&self.scope, subject, self.inner.transactions(query)).await
    }

    fn check_payment(&self, payment: &PaymentInstruction) -> Result<(), Vec<IntakeProblem>> {
        self.inner.check_payment(payment)
    }

    async fn submit_payment(
        &self,
        payment: &PaymentInstruction,
    ) -> Result<SubmitReceipt, BankError> {
        let subject = ExchangeSubject::References(vec![payment.reference.clone()]);
        concerning(&self.scope, subject, self.inner.submit_payment(payment)).await
    }

    async fn payment_status(
        &self,
        debtor_account: &AccountNumber,
        references: &[BankReference],
    ) -> Result<Vec<StatusAnswer>, BankError> {
        let subject = ExchangeSubject::References(references.to_vec());
        concerning(
            &self.scope,
            subject,
            self.inner.payment_status(debtor_account, references),
        )
        .await
    }

    fn max_batch_items(&self) -> usize {
        self.inner.max_batch_items()
    }

    fn check_batch_item(
        &self,
        kind: BatchKind,
        item: &BatchItemInstruction,
    ) -> Result<(), Vec<IntakeProblem>> {
        self.inner.check_batch_item(kind, item)
    }

    async fn submit_batch(&self, batch: &BatchInstruction) -> Result<BatchReceipt, BankError> {
        let subject = ExchangeSubject::References(vec![batch.reference.clone()]);
        concerning(&self.scope, subject, self.inner.submit_batch(batch)).await
    }

    async fn batch_status(
        &self,
        debtor_account: &AccountNumber,
        reference: &BankReference,
    ) -> Result<BatchStatusAnswer, BankError> {
        let subject = ExchangeSubject::References(vec![reference.clone()]);
        concerning(
            &self.scope,
            subject,
            self.inner.batch_status(debtor_account, reference),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CN_SUBMIT: &[u8] =
        include_bytes!("../../../tests/data/cn-xml/submit_payment_request.xml");
    const CN_BALANCES: &[u8] = include_bytes!("../../../tests/data/cn-xml/balance_response.xml");
    const PAIN001: &str = include_str!("../../../fuzz/seeds/iso20022_pain001/rendered.xml");
    const CAMT053: &str = include_str!("../../../fuzz/seeds/iso20022_camt053/rendered.xml");

    #[test]
    fn account_numbers_keep_their_last_four() {
        assert_eq!(
            mask_accounts("<DBTACC>755900012310001</DBTACC>"),
            "<DBTACC>***********0001</DBTACC>"
        );
        assert_eq!(
            mask_accounts("<IBAN>DE89370400440532013000</IBAN>"),
            "<IBAN>******************3000</IBAN>"
        );
        // Short numbers, amounts and references without long digit runs stay.
        assert_eq!(
            mask_accounts("<TRSAMT>1234.50</TRSAMT><CCYNBR>10</CCYNBR><YURREF>BDAC0YTTT9</YURREF>"),
            "<TRSAMT>1234.50</TRSAMT><CCYNBR>10</CCYNBR><YURREF>BDAC0YTTT9</YURREF>"
        );
        assert_eq!(mask_accounts("1234567"), "1234567");
        assert_eq!(mask_accounts("12345678"), "****5678");
        // Inside a longer token only the digit run is masked.
        assert_eq!(mask_accounts("R20261128000009"), "R**********0009");
        assert_eq!(
            mask_accounts("GET /h2h/C53?account=DE89370400440532013000&from=2026-11-01"),
            "GET /h2h/C53?account=******************3000&from=2026-11-01"
        );
        // A reference shaped like an IBAN whose check digits do not verify
        // stays readable (a real IBAN with one digit changed is a typo the
        // long digit runs of which are still masked).
        assert_eq!(
            mask_accounts("<YURREF>BD27K9XQ4TR7M2ZC0R6V</YURREF>"),
            "<YURREF>BD27K9XQ4TR7M2ZC0R6V</YURREF>"
        );
        assert_eq!(
            mask_accounts("<IBAN>DE88370400440532013000</IBAN>"),
            "<IBAN>DE****************3000</IBAN>"
        );
    }

    #[test]
    fn a_gbk_cn_xml_packet_is_decoded_and_masked() {
        let body = masked_body(CN_SUBMIT, Charset::Gb18030);
        assert!(!body.truncated);
        let text = &body.text;
        assert!(text.contains("<DBTACC>***********0001</DBTACC>"), "{text}");
        assert!(text.contains("<CRTACC>************1234</CRTACC>"), "{text}");
        assert!(!text.contains("755900012310001"), "{text}");
        assert!(!text.contains("6222020000001234"), "{text}");
        // GBK text comes back as text; the reference and amount are kept.
        assert!(text.contains("上海示例贸易有限公司"), "{text}");
        assert!(text.contains("BDAC0YTTT9A5QUA8YJ0TCUUWK9KSCE"), "{text}");
        assert!(text.contains("<TRSAMT>1234.50</TRSAMT>"), "{text}");

        let answer = masked_body(CN_BALANCES, Charset::Gb18030).text;
        assert!(!answer.contains("755900012310001"), "{answer}");
        assert!(
            answer.contains("<ACCNO>***********0001</ACCNO>"),
            "{answer}"
        );
        assert!(answer.contains("<ONLBAL>-80.00</ONLBAL>"), "{answer}");
    }

    #[test]
    fn the_bank_password_of_a_gbk_packet_is_removed() {
        // The packet as the connector sends it, password in the head.
        let mut packet = formats::cn_xml::decode(CN_SUBMIT, &Default::default()).unwrap();
        packet.head.password = Some("Pa55-密码&<x".to_owned());
        let bytes = formats::cn_xml::encode(&packet).unwrap();
        let body = masked_body(&bytes, Charset::Gb18030);
        let text = &body.text;
        assert!(text.contains("<PASSWD>[removed]</PASSWD>"), "{text}");
        assert!(!text.contains("Pa55"), "{text}");
        assert!(!text.contains("密码"), "{text}");
        assert!(text.contains("<LOGIN>"), "{text}");
        // Every spelling a front machine might use goes too.
        let masked = mask_body("<HEAD><PASSWD>a1</PASSWD><PassWord>b2</PassWord></HEAD>");
        assert!(!masked.contains("a1") && !masked.contains("b2"), "{masked}");
    }

    #[test]
    fn pain001_and_camt053_hide_every_account() {
        for (name, doc) in [("pain.001", PAIN001), ("camt.053", CAMT053)] {
            let masked = mask_body(doc);
            for full in ["DE89370400440532013000", "755912345678901"] {
                assert!(doc.contains(full), "{name} sample lacks {full}");
                assert!(!masked.contains(full), "{name}: {masked}");
            }
            assert!(masked.contains("******************3000"), "{name}");
            assert!(masked.contains("***********8901"), "{name}");
            // Nothing but the accounts changed length or shape.
            assert_eq!(masked.len(), doc.len(), "{name}");
            assert!(masked.contains("<Nm>深圳某某科技有限公司</Nm>") || name == "camt.053");
        }
    }

    #[test]
    fn secret_fields_are_removed() {
        let xml = "<HEAD><LOGIN>DEMO01</LOGIN><PWD>hunter2</PWD><Password a='1'>p</Password>\
                   <ds:Signature xmlns:ds=\"x\"><ds:SignatureValue>QUJD</ds:SignatureValue>\
                   </ds:Signature><X token=\"abc\" id=\"7\"/></HEAD>";
        let masked = mask_body(xml);
        for secret in ["hunter2", ">p<", "QUJD", "abc"] {
            assert!(!masked.contains(secret), "{secret}: {masked}");
        }
        assert!(masked.contains("<LOGIN>DEMO01</LOGIN>"), "{masked}");
        assert!(masked.contains("<PWD>[removed]</PWD>"), "{masked}");
        assert!(
            masked.contains("<ds:Signature xmlns:ds=\"x\">[removed]</ds:Signature>"),
            "{masked}"
        );
        assert!(masked.contains("token=\"[removed]\" id=\"7\""), "{masked}");

        let json = r#"{"app_id":"A1","sign":"c2lnbg==","nested":{"client_secret":{"k":"v"},"n":1},"pin":1234,"iban":"DE89370400440532013000"}"#;
        let masked = mask_body(json);
        assert_eq!(
            masked,
            r#"{"app_id":"A1","sign": "[removed]","nested":{"client_secret": "[removed]","n":1},"pin": "[removed]","iban":"******************3000"}"#
        );
        // A secret whose end is missing takes the rest with it.
        assert_eq!(mask_body("<PWD>abc"), "<PWD>[removed]");
        assert_eq!(
            mask_body(r#"{"password":"abc"#),
            r#"{"password": "[removed]""#
        );
    }

    #[test]
    fn long_bodies_are_cut_after_masking() {
        let account = "6225880012345678";
        let mut body = String::new();
        while body.len() < MAX_CAPTURE_BYTES + 100 {
            body.push_str(account);
            body.push(' ');
        }
        let masked = masked_body(body.as_bytes(), Charset::Utf8);
        assert!(masked.truncated);
        assert!(masked.text.len() <= MAX_BODY_BYTES);
        assert!(!masked.text.contains("62258800"), "a prefix survived");
        // A copy cut inside a number never leaves its first digits whole.
        let cut = masked_body(&body.as_bytes()[..MAX_CAPTURE_BYTES + 1], Charset::Utf8);
        assert!(!cut.text.contains("6225880"));
        let short = masked_body(b"<A>1</A>", Charset::Utf8);
        assert_eq!(short.text, "<A>1</A>");
        assert!(!short.truncated);
    }

    #[test]
    fn nul_characters_do_not_hide_digits() {
        let utf16: Vec<u8> = "6225880012345678"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let masked = masked_body(&utf16, Charset::Utf8);
        assert_eq!(masked.text, "************5678");
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "<",
            "<>",
            "</",
            "<a",
            "=\"",
            "\"",
            "{\"sign\"",
            "{\"sign\":",
            "<a b=",
            "é<PWD",
            "\"pwd\":\"\\",
        ] {
            let _ = mask_body(text);
        }
    }
}
