//! `pain.002`, CustomerPaymentStatusReport: what a bank tells us about a
//! `pain.001` we sent, in two versions, `pain.002.001.03` and
//! `pain.002.001.12`, with one model.
//!
//! [`render`] writes a [`CustomerPaymentStatusReport`] in the chosen
//! [`Version`] (the bank simulator's side), strict about lengths, date-times
//! and the status codes the version allows. [`parse`] reads either version
//! and says which it was, from the namespace of `Document` (any prefix, or
//! the default namespace); it is tolerant of prefixes, of optional elements
//! being absent and of elements we do not model, and keeps status codes it
//! does not know as [`Status::Other`]. Every `OrgnlPmtInfAndSts` is read into
//! memory on its own.
//!
//! Modelled: `GrpHdr` (`MsgId`, `CreDtTm`); `OrgnlGrpInfAndSts`
//! (`OrgnlMsgId`, `OrgnlMsgNmId`, `OrgnlNbOfTxs`, `OrgnlCtrlSum`, `GrpSts`,
//! `StsRsnInf`); `OrgnlPmtInfAndSts` (`OrgnlPmtInfId`, `PmtInfSts`,
//! `StsRsnInf`); `TxInfAndSts` (`OrgnlInstrId`, `OrgnlEndToEndId`, `TxSts`,
//! `StsRsnInf`, `AccptncDtTm`); `StsRsnInf` (`Rsn/Cd` or `Rsn/Prtry`,
//! `AddtlInf`). Not modelled (skipped when read): `InitgPty` and the agents
//! of the group header, `OrgnlCreDtTm`, `NbOfTxsPerSts`, the original counts
//! of a payment information block, `StsRsnInf/Orgtr`, `StsId`, `ChrgsInf`,
//! `AcctSvcrRef`, `ClrSysRef`, `OrgnlTxRef`, and in `.12` `OrgnlUETR`,
//! `FctvIntrBkSttlmDt` and `SplmtryData`.
//!
//! Where the versions differ, for what is modelled:
//!
//! - The element names and their order are the same in `.03` and `.12`
//!   (`CstmrPmtStsRpt`, `OrgnlGrpInfAndSts`, `OrgnlPmtInfAndSts`,
//!   `TxInfAndSts`, `StsRsnInf/Rsn/Cd`, …); only the namespace tells them
//!   apart. `.12` adds elements we do not model (listed above), which `.03`
//!   documents do not have and `.12` documents may leave out.
//! - Status codes: `.03` has closed ISO enumerations,
//!   `TransactionGroupStatus3Code` for `GrpSts` and `PmtInfSts` (ACCP, ACSC,
//!   ACSP, ACTC, ACWC, PART, PDNG, RCVD, RJCT) and
//!   `TransactionIndividualStatus3Code` for `TxSts` (the same without PART
//!   and RCVD). `.12` uses the external code sets
//!   (`ExternalPaymentGroupStatus1Code`,
//!   `ExternalPaymentTransactionStatus1Code`, `Max4Text`), which grow
//!   between releases, so any code of one to four upper-case letters or
//!   digits is rendered; we do not hold a copy of the external lists.
//!   [`render`] refuses a code the version cannot carry; [`parse`] accepts
//!   any non-empty code in either version, as [`Status::Other`] when unknown.
//! - Reason codes (`Rsn/Cd`, `ExternalStatusReason1Code`, `Max4Text`) and
//!   `AddtlInf` (`Max105Text`) are the same in both versions.

use std::io::BufRead;

use super::xml::{self, Node, Tag, Tree, Writer, XmlReader};
use super::{clip, is_iso_date_time, Limits, ParseError, RenderError, MAX35};

/// The message element under `Document`, in both versions.
pub const MESSAGE: &str = "CstmrPmtStsRpt";
/// `Max105Text`: one `StsRsnInf/AddtlInf`.
pub const MAX105: usize = 105;
/// `Max4Text`: a status or reason code from an ISO external code set.
pub const MAX_CODE_CHARS: usize = 4;
/// `Max15NumericText`: the longest `OrgnlNbOfTxs`.
const MAX_COUNT_DIGITS: usize = 15;
/// `DecimalNumber`: `totalDigits` 18.
const MAX_DECIMAL_DIGITS: u32 = 18;
/// `DecimalNumber`: `fractionDigits` 17.
const MAX_DECIMAL_SCALE: u32 = 17;

/// Which `pain.002` schema a document follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `pain.002.001.03`, CustomerPaymentStatusReportV03 (2009), still what
    /// many banks send.
    V03,
    /// `pain.002.001.12`, CustomerPaymentStatusReportV12.
    V12,
}

impl Version {
    /// The XML namespace of `Document` in this version.
    pub fn namespace(self) -> &'static str {
        match self {
            Version::V03 => "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03",
            Version::V12 => "urn:iso:std:iso:20022:tech:xsd:pain.002.001.12",
        }
    }

    /// The version whose namespace is `namespace`, exactly.
    pub fn from_namespace(namespace: &str) -> Option<Version> {
        [Version::V03, Version::V12]
            .into_iter()
            .find(|v| v.namespace() == namespace)
    }
}

/// A whole `CstmrPmtStsRpt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerPaymentStatusReport {
    /// `GrpHdr/MsgId`, `Max35Text`.
    pub message_id: String,
    /// `GrpHdr/CreDtTm`, an ISO date-time such as `2026-11-28T10:15:00+08:00`.
    pub created_at: String,
    /// `OrgnlGrpInfAndSts`.
    pub original_group: OriginalGroupStatus,
    /// `OrgnlPmtInfAndSts`, possibly none (a report on the group only).
    pub original_payments: Vec<OriginalPaymentStatus>,
}

/// `OrgnlGrpInfAndSts`: which message is reported on, and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalGroupStatus {
    /// `OrgnlMsgId`, `Max35Text`: the `MsgId` of our `pain.001`.
    pub original_message_id: String,
    /// `OrgnlMsgNmId`, `Max35Text`, such as `pain.001.001.09`.
    pub original_message_name_id: String,
    /// `OrgnlNbOfTxs`, at most 15 digits.
    pub original_count: Option<u64>,
    /// `OrgnlCtrlSum`.
    pub original_control_sum: Option<DecimalNumber>,
    /// `GrpSts`.
    pub status: Option<Status>,
    /// `StsRsnInf`.
    pub reasons: Vec<StatusReason>,
}

/// One `OrgnlPmtInfAndSts`: the status of one `PmtInf` we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalPaymentStatus {
    /// `OrgnlPmtInfId`, `Max35Text`.
    pub original_payment_information_id: String,
    /// `PmtInfSts`.
    pub status: Option<Status>,
    /// `StsRsnInf`.
    pub reasons: Vec<StatusReason>,
    /// `TxInfAndSts`.
    pub transactions: Vec<TransactionStatus>,
}

/// One `TxInfAndSts`: the status of one transaction we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionStatus {
    /// `OrgnlInstrId`, `Max35Text`.
    pub original_instruction_id: Option<String>,
    /// `OrgnlEndToEndId`, `Max35Text`.
    pub original_end_to_end_id: Option<String>,
    /// `TxSts`; optional in both schemas.
    pub status: Option<Status>,
    /// `StsRsnInf`.
    pub reasons: Vec<StatusReason>,
    /// `AccptncDtTm`, an ISO date-time.
    pub accepted_at: Option<String>,
}

/// One `StsRsnInf`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReason {
    /// `Rsn`.
    pub reason: Option<Reason>,
    /// `AddtlInf`, each `Max105Text` (banks write free text here, often in
    /// Chinese).
    pub additional_info: Vec<String>,
}

/// `Rsn`, a `StatusReason6Choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `Cd`, an `ExternalStatusReason1Code` such as `AC01`, `AC04` or
    /// `AM04`, kept as text (trimmed when read).
    Code(String),
    /// `Prtry`, a bank's own reason, `Max35Text`.
    Proprietary(String),
}

/// A group, payment information or transaction status.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    /// `RCVD`: received, not yet checked.
    Received,
    /// `ACTC`: technical validation passed.
    AcceptedTechnicalValidation,
    /// `ACCP`: customer profile checks passed.
    AcceptedCustomerProfile,
    /// `ACSP`: settlement in process.
    AcceptedSettlementInProcess,
    /// `ACSC`: settlement completed.
    AcceptedSettlementCompleted,
    /// `ACWC`: accepted with a change (a date or an amount).
    AcceptedWithChange,
    /// `PDNG`: pending.
    Pending,
    /// `PART`: some transactions accepted, some rejected (group and payment
    /// information only).
    PartiallyAccepted,
    /// `RJCT`: rejected.
    Rejected,
    /// Any other code, as the bank wrote it (trimmed): the `.12` external
    /// code sets grow, and banks invent their own. [`Status::from_code`]
    /// never puts a known code here, and [`render`] refuses one that does.
    Other(String),
}

impl Status {
    const KNOWN: [(Status, &'static str); 9] = [
        (Status::Received, "RCVD"),
        (Status::AcceptedTechnicalValidation, "ACTC"),
        (Status::AcceptedCustomerProfile, "ACCP"),
        (Status::AcceptedSettlementInProcess, "ACSP"),
        (Status::AcceptedSettlementCompleted, "ACSC"),
        (Status::AcceptedWithChange, "ACWC"),
        (Status::Pending, "PDNG"),
        (Status::PartiallyAccepted, "PART"),
        (Status::Rejected, "RJCT"),
    ];

    /// The status a code stands for; unknown codes become [`Status::Other`].
    pub fn from_code(code: &str) -> Status {
        Status::KNOWN
            .iter()
            .find(|(_, known)| *known == code)
            .map(|(status, _)| status.clone())
            .unwrap_or_else(|| Status::Other(code.to_owned()))
    }

    /// The code as written in the XML.
    pub fn code(&self) -> &str {
        match self {
            Status::Other(code) => code,
            known => Status::KNOWN
                .iter()
                .find(|(status, _)| status == known)
                .map(|(_, code)| *code)
                .unwrap_or_default(),
        }
    }
}

/// An ISO `DecimalNumber` (`OrgnlCtrlSum`): non-negative, at most 18
/// digits of which at most 17 after the point. Kept without trailing zeros
/// after the point, so `1.50` and `1.5` are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecimalNumber {
    mantissa: u64,
    scale: u32,
}

impl DecimalNumber {
    /// `mantissa` / 10^`scale`; `None` beyond 18 digits or 17 decimals.
    pub fn from_parts(mantissa: u64, scale: u32) -> Option<DecimalNumber> {
        if scale > MAX_DECIMAL_SCALE || mantissa >= 10u64.pow(MAX_DECIMAL_DIGITS) {
            return None;
        }
        let (mut mantissa, mut scale) = (mantissa, scale);
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        Some(DecimalNumber { mantissa, scale })
    }

    /// `digits[.digits]` within the limits of [`DecimalNumber::from_parts`];
    /// leading zeros and trailing decimal zeros do not count as digits.
    pub fn parse(text: &str) -> Option<DecimalNumber> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return None,
            None => (text, ""),
        };
        if whole.is_empty()
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let fraction = fraction.trim_end_matches('0');
        let whole = whole.trim_start_matches('0');
        let digits = whole.len() + fraction.len();
        if digits > MAX_DECIMAL_DIGITS as usize {
            return None;
        }
        let mut mantissa = 0u64;
        for b in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa * 10 + u64::from(b - b'0');
        }
        DecimalNumber::from_parts(mantissa, u32::try_from(fraction.len()).ok()?)
    }

    pub fn mantissa(self) -> u64 {
        self.mantissa
    }

    pub fn scale(self) -> u32 {
        self.scale
    }
}

impl std::fmt::Display for DecimalNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.mantissa);
        }
        let factor = 10u64.pow(self.scale);
        write!(
            f,
            "{}.{:0width$}",
            self.mantissa / factor,
            self.mantissa % factor,
            width = self.scale as usize
        )
    }
}

// ---------------------------------------------------------------------------
// render
// ---------------------------------------------------------------------------

/// Which status element a code is for: `.03` allows fewer codes in `TxSts`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Group,
    Transaction,
}

/// Renders the report as UTF-8 XML in `version`; see the module
/// documentation for what is refused.
pub fn render(
    report: &CustomerPaymentStatusReport,
    version: Version,
) -> Result<Vec<u8>, RenderError> {
    let mut w = Writer::new(version.namespace());
    w.open(MESSAGE);

    w.open("GrpHdr");
    w.text("MsgId", &report.message_id, MAX35)?;
    check_date_time(&w, "CreDtTm", &report.created_at)?;
    w.value("CreDtTm", &report.created_at);
    w.close("GrpHdr");

    let group = &report.original_group;
    w.open("OrgnlGrpInfAndSts");
    w.text("OrgnlMsgId", &group.original_message_id, MAX35)?;
    w.text("OrgnlMsgNmId", &group.original_message_name_id, MAX35)?;
    if let Some(count) = group.original_count {
        let digits = count.to_string();
        if digits.len() > MAX_COUNT_DIGITS {
            return Err(RenderError::InvalidValue {
                path: w.path_of("OrgnlNbOfTxs"),
                detail: format!("{count} has more than {MAX_COUNT_DIGITS} digits"),
            });
        }
        w.value("OrgnlNbOfTxs", &digits);
    }
    if let Some(sum) = group.original_control_sum {
        w.value("OrgnlCtrlSum", &sum.to_string());
    }
    status(
        &mut w,
        "GrpSts",
        group.status.as_ref(),
        version,
        Level::Group,
    )?;
    reasons(&mut w, &group.reasons)?;
    w.close("OrgnlGrpInfAndSts");

    for (index, payment) in report.original_payments.iter().enumerate() {
        w.open_nth("OrgnlPmtInfAndSts", index + 1);
        w.text(
            "OrgnlPmtInfId",
            &payment.original_payment_information_id,
            MAX35,
        )?;
        status(
            &mut w,
            "PmtInfSts",
            payment.status.as_ref(),
            version,
            Level::Group,
        )?;
        reasons(&mut w, &payment.reasons)?;
        for (index, tx) in payment.transactions.iter().enumerate() {
            w.open_nth("TxInfAndSts", index + 1);
            transaction(&mut w, tx, version)?;
            w.close("TxInfAndSts");
        }
        w.close("OrgnlPmtInfAndSts");
    }
    w.close(MESSAGE);
    Ok(w.finish())
}

fn transaction(
    w: &mut Writer,
    tx: &TransactionStatus,
    version: Version,
) -> Result<(), RenderError> {
    if let Some(id) = &tx.original_instruction_id {
        w.text("OrgnlInstrId", id, MAX35)?;
    }
    if let Some(id) = &tx.original_end_to_end_id {
        w.text("OrgnlEndToEndId", id, MAX35)?;
    }
    status(w, "TxSts", tx.status.as_ref(), version, Level::Transaction)?;
    reasons(w, &tx.reasons)?;
    if let Some(at) = &tx.accepted_at {
        check_date_time(w, "AccptncDtTm", at)?;
        w.value("AccptncDtTm", at);
    }
    Ok(())
}

fn check_date_time(w: &Writer, name: &str, text: &str) -> Result<(), RenderError> {
    if is_iso_date_time(text) {
        Ok(())
    } else {
        Err(RenderError::InvalidValue {
            path: w.path_of(name),
            detail: format!(
                "{:?} is not an ISO date-time like 2026-11-28T10:15:00+08:00",
                clip(text)
            ),
        })
    }
}

fn status(
    w: &mut Writer,
    name: &'static str,
    status: Option<&Status>,
    version: Version,
    level: Level,
) -> Result<(), RenderError> {
    let Some(status) = status else {
        return Ok(());
    };
    let refuse = |detail: String| RenderError::InvalidValue {
        path: w.path_of(name),
        detail,
    };
    match (status, version) {
        (Status::Other(code), _) if Status::from_code(code) != *status => {
            return Err(refuse(format!(
                "{code:?} is a known status; use its own variant, not Other"
            )));
        }
        (Status::Other(code), Version::V03) => {
            return Err(refuse(format!(
                "{:?} is not a status code of pain.002.001.03, whose codes are a closed list",
                clip(code)
            )));
        }
        (Status::Other(code), Version::V12) if !is_external_code(code) => {
            return Err(refuse(format!(
                "{:?} is not a code of one to four upper-case letters or digits",
                clip(code)
            )));
        }
        (Status::Received | Status::PartiallyAccepted, Version::V03)
            if level == Level::Transaction =>
        {
            return Err(refuse(format!(
                "{} is not a transaction status in pain.002.001.03",
                status.code()
            )));
        }
        _ => {}
    }
    w.value(name, status.code());
    Ok(())
}

/// The shape of the codes in ISO external code sets (`Max4Text` in the
/// schema; every published code is four upper-case letters or digits).
fn is_external_code(code: &str) -> bool {
    (1..=MAX_CODE_CHARS).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn reasons(w: &mut Writer, reasons: &[StatusReason]) -> Result<(), RenderError> {
    for (index, info) in reasons.iter().enumerate() {
        w.open_nth("StsRsnInf", index + 1);
        match &info.reason {
            Some(Reason::Code(code)) => {
                w.open("Rsn");
                w.text("Cd", code, MAX_CODE_CHARS)?;
                w.close("Rsn");
            }
            Some(Reason::Proprietary(text)) => {
                w.open("Rsn");
                w.text("Prtry", text, MAX35)?;
                w.close("Rsn");
            }
            None => {}
        }
        for (index, line) in info.additional_info.iter().enumerate() {
            w.text_nth("AddtlInf", index + 1, line, MAX105)?;
        }
        w.close("StsRsnInf");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// parse
// ---------------------------------------------------------------------------

/// Parses a document of either version under the default [`Limits`].
pub fn parse(bytes: &[u8]) -> Result<(Version, CustomerPaymentStatusReport), ParseError> {
    parse_with_limits(bytes, &Limits::default())
}

/// Parses a document of either version under `limits`, and says which
/// version it was.
pub fn parse_with_limits(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(Version, CustomerPaymentStatusReport), ParseError> {
    if bytes.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size_bytes: bytes.len(),
            max_bytes: limits.max_bytes,
        });
    }
    let version = detect_version(bytes)?;
    let report = parse_from(bytes, *limits)?;
    Ok((version, report))
}

/// The version named by the namespace of the root element. Reads only up
/// to the root's start tag; the input is already bounded by
/// [`Limits::max_bytes`] ([`xml::root_namespace`]).
fn detect_version(bytes: &[u8]) -> Result<Version, ParseError> {
    let problem = match xml::root_namespace(bytes)? {
        Some(namespace) => match Version::from_namespace(namespace.trim()) {
            Some(version) => return Ok(version),
            None => format!(
                "namespace {:?} is neither pain.002.001.03 nor pain.002.001.12",
                clip(&namespace)
            ),
        },
        None => "no namespace; pain.002.001.03 or pain.002.001.12 is required".to_owned(),
    };
    Err(ParseError::Structure {
        path: "Document".to_owned(),
        problem,
    })
}

fn parse_from<R: BufRead>(
    input: R,
    limits: Limits,
) -> Result<CustomerPaymentStatusReport, ParseError> {
    let mut reader = XmlReader::new(input, limits);
    reader.enter_message(MESSAGE)?;
    let mut header_tree = Tree::default();
    let mut header_path: Option<String> = None;
    let mut group_tree = Tree::default();
    let mut group_path: Option<String> = None;
    let mut tree = Tree::default();
    let mut payments = Vec::new();
    loop {
        match reader.next_tag()? {
            Tag::Open if reader.open_name() == "GrpHdr" && header_path.is_none() => {
                let path = reader.path();
                reader.read_tree(&mut header_tree)?;
                header_path = Some(path);
            }
            Tag::Open if reader.open_name() == "OrgnlGrpInfAndSts" && group_path.is_none() => {
                let path = reader.path();
                reader.read_tree(&mut group_tree)?;
                group_path = Some(path);
            }
            Tag::Open if reader.open_name() == "OrgnlPmtInfAndSts" => {
                let path = reader.path();
                let node = reader.read_tree(&mut tree)?;
                payments.push(parse_payment(node, &path)?);
            }
            Tag::Open => {
                reader.read_tree(&mut tree)?;
            }
            Tag::Close => break,
            Tag::Eof => {
                return Err(ParseError::Missing {
                    path: format!("{MESSAGE}/GrpHdr"),
                })
            }
        }
    }
    reader.finish()?;

    let header_path = header_path.ok_or_else(|| ParseError::Missing {
        path: format!("{MESSAGE}/GrpHdr"),
    })?;
    let group_path = group_path.ok_or_else(|| ParseError::Missing {
        path: format!("{MESSAGE}/OrgnlGrpInfAndSts"),
    })?;
    let (header, group) = (header_tree.root(), group_tree.root());
    Ok(CustomerPaymentStatusReport {
        message_id: xml::required_text(header, &header_path, &["MsgId"])?,
        created_at: xml::required_code(header, &header_path, &["CreDtTm"])?.to_owned(),
        original_group: parse_group(group, &group_path)?,
        original_payments: payments,
    })
}

fn parse_group(node: Node<'_>, path: &str) -> Result<OriginalGroupStatus, ParseError> {
    let original_count = match node.child("OrgnlNbOfTxs") {
        Some(count) => {
            let text = xml::trimmed(count.text());
            if text.is_empty()
                || text.len() > MAX_COUNT_DIGITS
                || !text.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ParseError::Invalid {
                    path: format!("{path}/OrgnlNbOfTxs"),
                    problem: format!("{:?} is not 1 to 15 digits", clip(text)),
                });
            }
            text.parse::<u64>().ok()
        }
        None => None,
    };
    let original_control_sum = match node.child("OrgnlCtrlSum") {
        Some(sum) => {
            let text = xml::trimmed(sum.text());
            Some(
                DecimalNumber::parse(text).ok_or_else(|| ParseError::Invalid {
                    path: format!("{path}/OrgnlCtrlSum"),
                    problem: format!(
                        "{:?} is not a non-negative decimal of at most 18 digits",
                        clip(text)
                    ),
                })?,
            )
        }
        None => None,
    };
    Ok(OriginalGroupStatus {
        original_message_id: xml::required_text(node, path, &["OrgnlMsgId"])?,
        original_message_name_id: xml::required_text(node, path, &["OrgnlMsgNmId"])?,
        original_count,
        original_control_sum,
        status: parse_status(node, path, "GrpSts")?,
        reasons: parse_reasons(node, path)?,
    })
}

fn parse_payment(node: Node<'_>, path: &str) -> Result<OriginalPaymentStatus, ParseError> {
    let mut transactions = Vec::new();
    for (index, tx) in node.children("TxInfAndSts").enumerate() {
        transactions.push(parse_transaction(
            tx,
            &format!("{path}/TxInfAndSts[{}]", index + 1),
        )?);
    }
    Ok(OriginalPaymentStatus {
        original_payment_information_id: xml::required_text(node, path, &["OrgnlPmtInfId"])?,
        status: parse_status(node, path, "PmtInfSts")?,
        reasons: parse_reasons(node, path)?,
        transactions,
    })
}

fn parse_transaction(node: Node<'_>, path: &str) -> Result<TransactionStatus, ParseError> {
    let accepted_at = match node.child("AccptncDtTm") {
        Some(at) => {
            let text = xml::trimmed(at.text());
            if !is_iso_date_time(text) {
                return Err(ParseError::Invalid {
                    path: format!("{path}/AccptncDtTm"),
                    problem: format!("{:?} is not an ISO date-time", clip(text)),
                });
            }
            Some(text.to_owned())
        }
        None => None,
    };
    Ok(TransactionStatus {
        original_instruction_id: xml::optional_text(node, &["OrgnlInstrId"]),
        original_end_to_end_id: xml::optional_text(node, &["OrgnlEndToEndId"]),
        status: parse_status(node, path, "TxSts")?,
        reasons: parse_reasons(node, path)?,
        accepted_at,
    })
}

/// A status code, any non-empty one; unknown codes become [`Status::Other`].
fn parse_status(node: Node<'_>, path: &str, name: &str) -> Result<Option<Status>, ParseError> {
    let Some(found) = node.child(name) else {
        return Ok(None);
    };
    let code = xml::trimmed(found.text());
    if code.is_empty() {
        return Err(ParseError::Invalid {
            path: format!("{path}/{name}"),
            problem: "empty; a status code is required".to_owned(),
        });
    }
    Ok(Some(Status::from_code(code)))
}

/// Every `StsRsnInf` under `node`; empty `AddtlInf` lines are dropped.
fn parse_reasons(node: Node<'_>, path: &str) -> Result<Vec<StatusReason>, ParseError> {
    let mut reasons = Vec::new();
    for (index, info) in node.children("StsRsnInf").enumerate() {
        let at = format!("{path}/StsRsnInf[{}]", index + 1);
        let reason = match info.child("Rsn") {
            Some(rsn) => Some(parse_reason(rsn, &format!("{at}/Rsn"))?),
            None => None,
        };
        reasons.push(StatusReason {
            reason,
            additional_info: info
                .children("AddtlInf")
                .filter(|line| !line.text().is_empty())
                .map(|line| line.text().to_owned())
                .collect(),
        });
    }
    Ok(reasons)
}

fn parse_reason(rsn: Node<'_>, path: &str) -> Result<Reason, ParseError> {
    if let Some(code) = rsn.child("Cd") {
        let code = xml::trimmed(code.text());
        if code.is_empty() {
            return Err(ParseError::Invalid {
                path: format!("{path}/Cd"),
                problem: "empty; a reason code is required".to_owned(),
            });
        }
        return Ok(Reason::Code(code.to_owned()));
    }
    match rsn.child("Prtry") {
        Some(own) if !own.text().is_empty() => Ok(Reason::Proprietary(own.text().to_owned())),
        Some(_) => Err(ParseError::Invalid {
            path: format!("{path}/Prtry"),
            problem: "empty; text is required".to_owned(),
        }),
        None => Err(ParseError::Missing {
            path: format!("{path}/Cd"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_numbers_are_normalised_and_bounded() {
        let parsed = DecimalNumber::parse("0012.5000").map(|d| d.to_string());
        assert_eq!(parsed.as_deref(), Some("12.5"));
        assert_eq!(DecimalNumber::parse("1.50"), DecimalNumber::parse("1.5"));
        assert_eq!(
            DecimalNumber::parse("999999999999999999").map(|d| d.to_string()),
            Some("999999999999999999".to_owned())
        );
        for bad in ["", ".5", "5.", "-1", "1e3", "1,5", "1000000000000000000"] {
            assert_eq!(DecimalNumber::parse(bad), None, "{bad}");
        }
        assert_eq!(DecimalNumber::from_parts(1, 18), None);
        let tiny = DecimalNumber::from_parts(5, 17).map(|d| d.to_string());
        assert_eq!(tiny.as_deref(), Some("0.00000000000000005"));
    }

    #[test]
    fn status_codes_map_both_ways() {
        for (status, code) in Status::KNOWN {
            assert_eq!(Status::from_code(code), status);
            assert_eq!(status.code(), code);
        }
        assert_eq!(Status::from_code("ACFC"), Status::Other("ACFC".to_owned()));
    }
}
