//! `pain.001`, CustomerCreditTransferInitiation: the credit transfers we ask
//! a bank to make, in two versions with one model: `pain.001.001.09`
//! (CustomerCreditTransferInitiationV09, what we send by default) and
//! `pain.001.001.03` (CustomerCreditTransferInitiationV03, 2009, which older
//! banks still want).
//!
//! [`render`] writes a [`CustomerCreditTransferInitiation`] as UTF-8 XML in
//! the `pain.001.001.09` namespace; [`render_version`] writes either
//! [`Version`]. Both compute `NbOfTxs` and `CtrlSum` for the group and for
//! each `PmtInf` (the model does not carry them, so they cannot disagree),
//! and refuse text longer than its ISO type allows, empty text, characters
//! XML cannot carry, non-positive amounts, empty batches and BICs the
//! version's pattern does not allow, each with the element path.
//!
//! [`parse`] reads a document of either version back (what the bank
//! simulator receives); [`parse_any`] also says which version it was. The
//! version is told from the namespace of `Document` (any prefix, or the
//! default namespace); a document with no namespace at all is read as
//! `.09`, as before `.03` was supported; any other namespace, or an
//! undeclared prefix on `Document`, is refused. Parsing is tolerant of
//! namespace prefixes, of optional elements being absent and of elements we
//! do not model (they are skipped); strict about amounts and about `NbOfTxs`
//! and `CtrlSum`, which must match the transactions when present. Every
//! `PmtInf` is read into memory on its own, so memory is bounded by the
//! largest payment information block, not the file.
//!
//! Modelled: group header (`MsgId`, `CreDtTm`, `InitgPty`), payment
//! information (`PmtInfId`, `PmtMtd` = `TRF`, `BtchBookg`,
//! `PmtTpInf/CtgyPurp/Cd`, `ReqdExctnDt`, `Dbtr`, `DbtrAcct`,
//! `DbtrAgt/FinInstnId`) and transactions (`InstrId`, `EndToEndId`,
//! `InstdAmt`, `CdtrAgt`, `Cdtr`, `CdtrAcct`, `RmtInf/Ustrd`).
//! Not modelled: the rest of the payment type (`InstrPrty`, `SvcLvl`,
//! `LclInstrm`, a proprietary `CtgyPurp/Prtry`, and any payment type of a
//! transaction), charges bearer, ultimate parties,
//! structured remittance, regulatory reporting, purpose, and in `.09`
//! `PmtId/UETR` and the account `Prxy`.
//!
//! Where the versions differ, for what is modelled:
//!
//! - `ReqdExctnDt`: in `.03` an `ISODate` written as the element's text
//!   (`<ReqdExctnDt>2026-11-30</ReqdExctnDt>`); in `.09` the choice
//!   `DateAndDateTime2Choice`, of which we render `ReqdExctnDt/Dt`. The
//!   model holds a date only: a `.09` `ReqdExctnDt/DtTm` is read as the
//!   date part written in it (the sender's local date, not converted to
//!   UTC), so a `.09` document with `DtTm` re-rendered as `.03` carries that
//!   date as `ReqdExctnDt`, and the time of day is lost at parse time, in
//!   either version. Reading `.03`, the `.09` forms `ReqdExctnDt/Dt` and
//!   `ReqdExctnDt/DtTm` are accepted as well (banks mixing the versions).
//! - Agents: `DbtrAgt/FinInstnId/BIC` and `CdtrAgt/FinInstnId/BIC` in `.03`
//!   (`BICIdentifier`, pattern `[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?`),
//!   `.../FinInstnId/BICFI` in `.09` (`BICFIDec2014Identifier`, which every
//!   [`domain::Bic`] matches). Rendering `.03` refuses a BIC whose location
//!   code starts with `0` or `1` or ends with `O`, naming
//!   `.../FinInstnId/BIC`. Reading `.03`, `BICFI` is accepted where `BIC` is
//!   absent, and the BIC is checked as a [`domain::Bic`] only (not against
//!   the `.03` pattern); reading `.09` looks at `BICFI` only, as before.
//! - Postal addresses: `PostalAddress6` in `.03`, `PostalAddress24` in `.09`.
//!   The only part we model, `AdrLine`, is the same in both: at most
//!   [`MAX_ADDRESS_LINES`] lines of `Max70Text`.
//! - Everything else we model has the same name, type, length and order in
//!   both versions (`PartyIdentification32`/`135` `Nm` as `Max140Text`,
//!   `CashAccount16`/`38` `Id/IBAN` and `Id/Othr/Id` as `Max34Text`,
//!   `GroupHeader32`/`85`, `PaymentIdentification1`/`6`,
//!   `ActiveOrHistoricCurrencyAndAmount`, `RmtInf/Ustrd` as `Max140Text`,
//!   `BtchBookg` as `BatchBookingIndicator`, `PmtTpInf/CtgyPurp/Cd` as
//!   `ExternalCategoryPurpose1Code` in `PaymentTypeInformation19`/`26`).
//!   Rendering puts `BtchBookg` after `PmtMtd` and `PmtTpInf` after
//!   `CtrlSum`, where both schemas order them, and refuses a category
//!   purpose longer than 4 characters; parsing reads a `Cd` of any length
//!   (trimmed; empty is absent) and refuses a `BtchBookg` that is not an
//!   `xs:boolean`.

use std::io::BufRead;

use domain::{Bic, BusinessDate, Money};

use super::xml::{self, Node, Tag, Tree, Writer, XmlReader};
use super::{
    clip, is_iso_date_time, AccountIdentification, Agent, Limits, ParseError, Party, RenderError,
    MAX140, MAX34, MAX35, MAX70, MAX_ADDRESS_LINES,
};

/// The XML namespace of `pain.001.001.09`, what [`render`] writes.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09";
/// The XML namespace of `pain.001.001.03`.
pub const NAMESPACE_V03: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03";
/// The message element under `Document`, in both versions.
pub const MESSAGE: &str = "CstmrCdtTrfInitn";
/// `Max15NumericText`: the longest `NbOfTxs`.
const MAX_COUNT_DIGITS: usize = 15;
/// `DecimalNumber`: `totalDigits` 18.
const MAX_CONTROL_SUM_DIGITS: usize = 18;
/// `ExternalCategoryPurpose1Code`: 1 to 4 characters.
pub const MAX_CATEGORY_PURPOSE_CHARS: usize = 4;

/// Which `pain.001` schema a document follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `pain.001.001.03`, CustomerCreditTransferInitiationV03 (2009).
    V03,
    /// `pain.001.001.09`, CustomerCreditTransferInitiationV09.
    V09,
}

impl Version {
    /// The XML namespace of `Document` in this version.
    pub fn namespace(self) -> &'static str {
        match self {
            Version::V03 => NAMESPACE_V03,
            Version::V09 => NAMESPACE,
        }
    }

    /// The version whose namespace is `namespace`, exactly.
    pub fn from_namespace(namespace: &str) -> Option<Version> {
        [Version::V03, Version::V09]
            .into_iter()
            .find(|v| v.namespace() == namespace)
    }

    /// The element under `FinInstnId` that holds an agent's BIC.
    fn bic_element(self) -> &'static str {
        match self {
            Version::V03 => "BIC",
            Version::V09 => "BICFI",
        }
    }

    /// The elements under `FinInstnId` read for an agent's BIC, in order.
    fn bic_elements_read(self) -> &'static [&'static str] {
        match self {
            Version::V03 => &["BIC", "BICFI"],
            Version::V09 => &["BICFI"],
        }
    }
}

/// A whole `CstmrCdtTrfInitn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCreditTransferInitiation {
    /// `GrpHdr/MsgId`, `Max35Text`.
    pub message_id: String,
    /// `GrpHdr/CreDtTm`, an ISO date-time such as `2026-11-28T10:15:00+08:00`.
    pub created_at: String,
    /// `GrpHdr/InitgPty`.
    pub initiating_party: Party,
    /// `PmtInf`, at least one.
    pub payments: Vec<PaymentInformation>,
}

/// One `PmtInf`: transfers from one debtor account on one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInformation {
    /// `PmtInfId`, `Max35Text`.
    pub id: String,
    /// `BtchBookg`: `true` asks the bank to book the block as one debit
    /// (a payroll run), `false` one debit per transaction; absent leaves it
    /// to the bank.
    pub batch_booking: Option<bool>,
    /// `PmtTpInf/CtgyPurp/Cd`, an `ExternalCategoryPurpose1Code` (1 to 4
    /// characters), such as `SALA` for salaries or `SUPP` for suppliers.
    pub category_purpose: Option<String>,
    /// `ReqdExctnDt` (`.03`) or `ReqdExctnDt/Dt` (`.09`).
    pub requested_execution_date: BusinessDate,
    /// `Dbtr`.
    pub debtor: Party,
    /// `DbtrAcct/Id`.
    pub debtor_account: AccountIdentification,
    /// `DbtrAgt/FinInstnId/BIC` (`.03`) or `DbtrAgt/FinInstnId/BICFI` (`.09`).
    pub debtor_agent: Agent,
    /// `CdtTrfTxInf`, at least one.
    pub transactions: Vec<CreditTransfer>,
}

/// One `CdtTrfTxInf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditTransfer {
    /// `PmtId/InstrId`, `Max35Text`.
    pub instruction_id: Option<String>,
    /// `PmtId/EndToEndId`, `Max35Text`.
    pub end_to_end_id: String,
    /// `Amt/InstdAmt` with its `Ccy`; positive.
    pub amount: Money,
    /// `CdtrAgt/FinInstnId/BIC` (`.03`) or `CdtrAgt/FinInstnId/BICFI` (`.09`).
    pub creditor_agent: Option<Agent>,
    /// `Cdtr`.
    pub creditor: Party,
    /// `CdtrAcct/Id`.
    pub creditor_account: AccountIdentification,
    /// `RmtInf/Ustrd`, each `Max140Text`.
    pub remittance: Vec<String>,
}

// ---------------------------------------------------------------------------
// control sums
// ---------------------------------------------------------------------------

/// An exact non-negative decimal: `mantissa` / 10^`scale`. Control sums add
/// amounts of any currencies, so they need a common scale.
#[derive(Debug, Clone, Copy)]
struct Decimal {
    mantissa: i128,
    scale: u32,
}

impl Decimal {
    /// The sum of `amounts` at the largest exponent among them.
    fn sum<'a>(amounts: impl Iterator<Item = &'a Money> + Clone) -> Decimal {
        let scale = amounts
            .clone()
            .map(|m| u32::from(m.currency().exponent()))
            .max()
            .unwrap_or(0);
        let mantissa = amounts
            .map(|m| {
                let up = scale - u32::from(m.currency().exponent());
                i128::from(m.minor()) * 10i128.pow(up)
            })
            .sum();
        Decimal { mantissa, scale }
    }

    /// `digits[.digits]`, at most 36 digits in all.
    fn parse(text: &str) -> Option<Decimal> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return None,
            None => (text, ""),
        };
        if whole.is_empty()
            || whole.len() + fraction.len() > 36
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut mantissa = 0i128;
        for b in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa * 10 + i128::from(b - b'0');
        }
        Some(Decimal {
            mantissa,
            scale: u32::try_from(fraction.len()).ok()?,
        })
    }

    fn equals(self, other: Decimal) -> bool {
        let scale = self.scale.max(other.scale);
        let widen = |d: Decimal| {
            10i128
                .checked_pow(scale - d.scale)
                .and_then(|f| d.mantissa.checked_mul(f))
        };
        matches!((widen(self), widen(other)), (Some(a), Some(b)) if a == b)
    }

    fn digits(self) -> usize {
        self.mantissa.max(1).ilog10() as usize + 1
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.mantissa);
        }
        let factor = 10i128.pow(self.scale);
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

/// Renders the message as UTF-8 XML in `pain.001.001.09`; see the module
/// documentation for what is refused.
pub fn render(message: &CustomerCreditTransferInitiation) -> Result<Vec<u8>, RenderError> {
    render_version(message, Version::V09)
}

/// Renders the message as UTF-8 XML in `version`; see the module
/// documentation for what is refused and how the versions differ.
pub fn render_version(
    message: &CustomerCreditTransferInitiation,
    version: Version,
) -> Result<Vec<u8>, RenderError> {
    let mut w = Writer::new(version.namespace());
    w.open(MESSAGE);
    if message.payments.is_empty() {
        return Err(RenderError::InvalidValue {
            path: w.path_of("PmtInf"),
            detail: "a message needs at least one payment information block".to_owned(),
        });
    }
    let all_amounts = message
        .payments
        .iter()
        .flat_map(|p| p.transactions.iter().map(|t| &t.amount));
    let count: usize = message.payments.iter().map(|p| p.transactions.len()).sum();

    w.open("GrpHdr");
    w.text("MsgId", &message.message_id, MAX35)?;
    check_date_time(&w, "CreDtTm", &message.created_at)?;
    w.value("CreDtTm", &message.created_at);
    w.value("NbOfTxs", &count.to_string());
    control_sum(&mut w, Decimal::sum(all_amounts))?;
    party(&mut w, "InitgPty", &message.initiating_party)?;
    w.close("GrpHdr");

    for (index, payment) in message.payments.iter().enumerate() {
        w.open_nth("PmtInf", index + 1);
        payment_information(&mut w, payment, version)?;
        w.close("PmtInf");
    }
    w.close(MESSAGE);
    Ok(w.finish())
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

fn control_sum(w: &mut Writer, sum: Decimal) -> Result<(), RenderError> {
    if sum.digits() > MAX_CONTROL_SUM_DIGITS {
        return Err(RenderError::InvalidValue {
            path: w.path_of("CtrlSum"),
            detail: format!("control sum {sum} has more than {MAX_CONTROL_SUM_DIGITS} digits"),
        });
    }
    w.value("CtrlSum", &sum.to_string());
    Ok(())
}

fn payment_information(
    w: &mut Writer,
    payment: &PaymentInformation,
    version: Version,
) -> Result<(), RenderError> {
    if payment.transactions.is_empty() {
        return Err(RenderError::InvalidValue {
            path: w.path_of("CdtTrfTxInf"),
            detail: "a payment information block needs at least one transaction".to_owned(),
        });
    }
    w.text("PmtInfId", &payment.id, MAX35)?;
    w.value("PmtMtd", "TRF");
    if let Some(batch_booking) = payment.batch_booking {
        w.value("BtchBookg", if batch_booking { "true" } else { "false" });
    }
    w.value("NbOfTxs", &payment.transactions.len().to_string());
    control_sum(
        w,
        Decimal::sum(payment.transactions.iter().map(|t| &t.amount)),
    )?;
    // `PmtTpInf` is `InstrPrty?, SvcLvl?/*, LclInstrm?, CtgyPurp?` in both
    // versions; the category purpose is the only part we model.
    if let Some(code) = &payment.category_purpose {
        w.open("PmtTpInf");
        w.open("CtgyPurp");
        w.text("Cd", code, MAX_CATEGORY_PURPOSE_CHARS)?;
        w.close("CtgyPurp");
        w.close("PmtTpInf");
    }
    let date = payment.requested_execution_date.to_string();
    match version {
        Version::V03 => w.value("ReqdExctnDt", &date),
        Version::V09 => {
            w.open("ReqdExctnDt");
            w.value("Dt", &date);
            w.close("ReqdExctnDt");
        }
    }
    party(w, "Dbtr", &payment.debtor)?;
    account(w, "DbtrAcct", &payment.debtor_account)?;
    agent(w, "DbtrAgt", &payment.debtor_agent, version)?;
    for (index, tx) in payment.transactions.iter().enumerate() {
        w.open_nth("CdtTrfTxInf", index + 1);
        transaction(w, tx, version)?;
        w.close("CdtTrfTxInf");
    }
    Ok(())
}

fn transaction(w: &mut Writer, tx: &CreditTransfer, version: Version) -> Result<(), RenderError> {
    w.open("PmtId");
    if let Some(id) = &tx.instruction_id {
        w.text("InstrId", id, MAX35)?;
    }
    w.text("EndToEndId", &tx.end_to_end_id, MAX35)?;
    w.close("PmtId");
    if !tx.amount.is_positive() {
        return Err(RenderError::InvalidValue {
            path: w.path_of("Amt/InstdAmt"),
            detail: format!("amount {} is not positive", tx.amount),
        });
    }
    w.open("Amt");
    w.amount("InstdAmt", tx.amount)?;
    w.close("Amt");
    if let Some(bic) = &tx.creditor_agent {
        agent(w, "CdtrAgt", bic, version)?;
    }
    party(w, "Cdtr", &tx.creditor)?;
    account(w, "CdtrAcct", &tx.creditor_account)?;
    if !tx.remittance.is_empty() {
        w.open("RmtInf");
        for (index, line) in tx.remittance.iter().enumerate() {
            w.text_nth("Ustrd", index + 1, line, MAX140)?;
        }
        w.close("RmtInf");
    }
    Ok(())
}

/// `Nm` and `PstlAdr/AdrLine`; shared with camt.053.
pub(crate) fn party(w: &mut Writer, name: &'static str, party: &Party) -> Result<(), RenderError> {
    w.open(name);
    if let Some(party_name) = &party.name {
        w.text("Nm", party_name, MAX140)?;
    }
    if !party.address_lines.is_empty() {
        w.open("PstlAdr");
        if party.address_lines.len() > MAX_ADDRESS_LINES {
            return Err(RenderError::TooMany {
                path: w.path_of("AdrLine"),
                count: party.address_lines.len(),
                max: MAX_ADDRESS_LINES,
            });
        }
        for (index, line) in party.address_lines.iter().enumerate() {
            w.text_nth("AdrLine", index + 1, line, MAX70)?;
        }
        w.close("PstlAdr");
    }
    w.close(name);
    Ok(())
}

/// `<name><Id><IBAN>` or `<name><Id><Othr><Id>`; shared with camt.053,
/// which adds `Ccy` after `Id`.
pub(crate) fn account_id(w: &mut Writer, id: &AccountIdentification) -> Result<(), RenderError> {
    w.open("Id");
    match id {
        AccountIdentification::Iban(iban) => w.value("IBAN", iban.as_str()),
        AccountIdentification::Other(other) => {
            w.open("Othr");
            w.text("Id", other, MAX34)?;
            w.close("Othr");
        }
    }
    w.close("Id");
    Ok(())
}

fn account(
    w: &mut Writer,
    name: &'static str,
    id: &AccountIdentification,
) -> Result<(), RenderError> {
    w.open(name);
    account_id(w, id)?;
    w.close(name);
    Ok(())
}

fn agent(
    w: &mut Writer,
    name: &'static str,
    bic: &Bic,
    version: Version,
) -> Result<(), RenderError> {
    let element = version.bic_element();
    if version == Version::V03 && !fits_bic_identifier(bic) {
        return Err(RenderError::InvalidValue {
            path: w.path_of(&format!("{name}/FinInstnId/{element}")),
            detail: format!(
                "BIC {bic} does not match the pain.001.001.03 BICIdentifier pattern \
                 [A-Z]{{6}}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{{3}})? (location code starting \
                 with 0 or 1, or ending with O)"
            ),
        });
    }
    w.open(name);
    w.open("FinInstnId");
    w.value(element, bic.as_str());
    w.close("FinInstnId");
    w.close(name);
    Ok(())
}

/// The `.03` `BICIdentifier` pattern, for what a [`Bic`] does not already
/// guarantee (six letters, upper-case alphanumerics, 8 or 11 characters):
/// the location code's first character is not `0` or `1`, its second not `O`.
fn fits_bic_identifier(bic: &Bic) -> bool {
    let location = bic.location().as_bytes();
    let first_ok = location
        .first()
        .is_some_and(|c| c.is_ascii_uppercase() || (b'2'..=b'9').contains(c));
    let second_ok = location
        .get(1)
        .is_some_and(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && *c != b'O'));
    first_ok && second_ok
}

// ---------------------------------------------------------------------------
// parse
// ---------------------------------------------------------------------------

/// Parses a document of either version under the default [`Limits`];
/// [`parse_any`] also says which version it was.
pub fn parse(bytes: &[u8]) -> Result<CustomerCreditTransferInitiation, ParseError> {
    parse_with_limits(bytes, &Limits::default())
}

/// Parses a document of either version under `limits`; see the module
/// documentation for what is tolerated and what is refused.
pub fn parse_with_limits(
    bytes: &[u8],
    limits: &Limits,
) -> Result<CustomerCreditTransferInitiation, ParseError> {
    parse_any_with_limits(bytes, limits).map(|(_, message)| message)
}

/// Parses a document of either version under the default [`Limits`], and
/// says which version it was.
pub fn parse_any(bytes: &[u8]) -> Result<(Version, CustomerCreditTransferInitiation), ParseError> {
    parse_any_with_limits(bytes, &Limits::default())
}

/// Parses a document of either version under `limits`, and says which
/// version it was (from the namespace of `Document`; none means `.09`).
pub fn parse_any_with_limits(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(Version, CustomerCreditTransferInitiation), ParseError> {
    if bytes.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size_bytes: bytes.len(),
            max_bytes: limits.max_bytes,
        });
    }
    let version = detect_version(bytes)?;
    let message = parse_from(bytes, *limits, version)?;
    Ok((version, message))
}

/// The version named by the namespace of the root element; no namespace
/// means `.09`. Reads only up to the root's start tag; the input is already
/// bounded by [`Limits::max_bytes`] ([`xml::root_namespace`]).
fn detect_version(bytes: &[u8]) -> Result<Version, ParseError> {
    let Some(namespace) = xml::root_namespace(bytes)? else {
        return Ok(Version::V09);
    };
    Version::from_namespace(namespace.trim()).ok_or_else(|| ParseError::Structure {
        path: "Document".to_owned(),
        problem: format!(
            "namespace {:?} is neither pain.001.001.03 nor pain.001.001.09",
            clip(&namespace)
        ),
    })
}

fn parse_from<R: BufRead>(
    input: R,
    limits: Limits,
    version: Version,
) -> Result<CustomerCreditTransferInitiation, ParseError> {
    let mut reader = XmlReader::new(input, limits);
    reader.enter_message(MESSAGE)?;
    let mut header_tree = Tree::default();
    let mut header_path: Option<String> = None;
    let mut tree = Tree::default();
    let mut payments = Vec::new();
    loop {
        match reader.next_tag()? {
            Tag::Open if reader.open_name() == "GrpHdr" && header_path.is_none() => {
                let path = reader.path();
                reader.read_tree(&mut header_tree)?;
                header_path = Some(path);
            }
            Tag::Open if reader.open_name() == "PmtInf" => {
                let path = reader.path();
                let node = reader.read_tree(&mut tree)?;
                payments.push(parse_payment(node, &path, version)?);
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

    let path = header_path.ok_or_else(|| ParseError::Missing {
        path: format!("{MESSAGE}/GrpHdr"),
    })?;
    let header = header_tree.root();
    if payments.is_empty() {
        return Err(ParseError::Missing {
            path: format!("{MESSAGE}/PmtInf"),
        });
    }
    let amounts = payments
        .iter()
        .flat_map(|p: &PaymentInformation| p.transactions.iter().map(|t| &t.amount));
    let count = payments.iter().map(|p| p.transactions.len()).sum();
    check_totals(header, &path, count, Decimal::sum(amounts), true)?;
    Ok(CustomerCreditTransferInitiation {
        message_id: xml::required_text(header, &path, &["MsgId"])?,
        created_at: xml::required_code(header, &path, &["CreDtTm"])?.to_owned(),
        initiating_party: parse_party(header.child("InitgPty")),
        payments,
    })
}

/// `NbOfTxs` (required in the group header, optional in `PmtInf`) and
/// `CtrlSum` (optional) against what the transactions give.
fn check_totals(
    node: Node<'_>,
    path: &str,
    count: usize,
    sum: Decimal,
    count_required: bool,
) -> Result<(), ParseError> {
    let count_node = if count_required {
        Some(xml::required(node, path, &["NbOfTxs"])?)
    } else {
        node.child("NbOfTxs")
    };
    if let Some(count_node) = count_node {
        let at = format!("{path}/NbOfTxs");
        let text = xml::trimmed(count_node.text());
        if text.is_empty()
            || text.len() > MAX_COUNT_DIGITS
            || !text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ParseError::Invalid {
                path: at,
                problem: format!("{:?} is not 1 to 15 digits", clip(text)),
            });
        }
        if text.parse::<usize>().ok() != Some(count) {
            return Err(ParseError::Mismatch {
                path: at,
                stated: text.to_owned(),
                computed: count.to_string(),
            });
        }
    }
    if let Some(sum_node) = node.child("CtrlSum") {
        let at = format!("{path}/CtrlSum");
        let text = xml::trimmed(sum_node.text());
        let stated = Decimal::parse(text).ok_or_else(|| ParseError::Invalid {
            path: at.clone(),
            problem: format!("{:?} is not a non-negative decimal", clip(text)),
        })?;
        if !stated.equals(sum) {
            return Err(ParseError::Mismatch {
                path: at,
                stated: text.to_owned(),
                computed: sum.to_string(),
            });
        }
    }
    Ok(())
}

fn parse_payment(
    node: Node<'_>,
    path: &str,
    version: Version,
) -> Result<PaymentInformation, ParseError> {
    let method = xml::required_code(node, path, &["PmtMtd"])?;
    if method != "TRF" {
        return Err(ParseError::Invalid {
            path: format!("{path}/PmtMtd"),
            problem: format!(
                "{:?} is not TRF, the only credit transfer method",
                clip(method)
            ),
        });
    }
    let mut transactions = Vec::new();
    for (index, tx) in node.children("CdtTrfTxInf").enumerate() {
        transactions.push(parse_transaction(
            tx,
            &format!("{path}/CdtTrfTxInf[{}]", index + 1),
            version,
        )?);
    }
    if transactions.is_empty() {
        return Err(ParseError::Missing {
            path: format!("{path}/CdtTrfTxInf"),
        });
    }
    check_totals(
        node,
        path,
        transactions.len(),
        Decimal::sum(transactions.iter().map(|t| &t.amount)),
        false,
    )?;
    Ok(PaymentInformation {
        id: xml::required_text(node, path, &["PmtInfId"])?,
        batch_booking: parse_batch_booking(node, path)?,
        category_purpose: xml::optional_text(node, &["PmtTpInf", "CtgyPurp", "Cd"])
            .map(|code| xml::trimmed(&code).to_owned())
            .filter(|code| !code.is_empty()),
        requested_execution_date: parse_execution_date(node, path, version)?,
        debtor: parse_party(node.child("Dbtr")),
        debtor_account: parse_account(node, path, "DbtrAcct")?,
        debtor_agent: parse_bic(node, path, "DbtrAgt", version)?,
        transactions,
    })
}

/// `BtchBookg`, an `xs:boolean` (`true`, `false`, `1`, `0`, surrounding
/// blanks allowed); absent or empty is `None`. Anything else is refused
/// rather than guessed: it decides whether the bank books one debit or many.
fn parse_batch_booking(node: Node<'_>, path: &str) -> Result<Option<bool>, ParseError> {
    let Some(found) = node.child("BtchBookg") else {
        return Ok(None);
    };
    match xml::trimmed(found.text()) {
        "" => Ok(None),
        "true" | "1" => Ok(Some(true)),
        "false" | "0" => Ok(Some(false)),
        other => Err(ParseError::Invalid {
            path: format!("{path}/BtchBookg"),
            problem: format!("{:?} is not a boolean (true, false, 1 or 0)", clip(other)),
        }),
    }
}

/// `ReqdExctnDt`: the `.09` choice (`Dt`, or the date part of `DtTm`); in
/// `.03` the element's own text, or the `.09` choice when it has children.
fn parse_execution_date(
    node: Node<'_>,
    path: &str,
    version: Version,
) -> Result<BusinessDate, ParseError> {
    let names = &["ReqdExctnDt"];
    match version {
        Version::V09 => xml::date_choice(node, path, names),
        Version::V03 => {
            if !xml::required(node, path, names)?.has_children() {
                xml::date(node, path, names)
            } else {
                xml::date_choice(node, path, names)
            }
        }
    }
}

fn parse_transaction(
    node: Node<'_>,
    path: &str,
    version: Version,
) -> Result<CreditTransfer, ParseError> {
    let amount = xml::amount(node, path, &["Amt", "InstdAmt"])?;
    if amount.is_zero() {
        return Err(ParseError::Invalid {
            path: format!("{path}/Amt/InstdAmt"),
            problem: "zero; a transfer amount must be positive".to_owned(),
        });
    }
    let has_creditor_agent = version
        .bic_elements_read()
        .iter()
        .any(|element| node.at(&["CdtrAgt", "FinInstnId", element]).is_some());
    let creditor_agent = if has_creditor_agent {
        Some(parse_bic(node, path, "CdtrAgt", version)?)
    } else {
        None
    };
    Ok(CreditTransfer {
        instruction_id: xml::optional_text(node, &["PmtId", "InstrId"]),
        end_to_end_id: xml::required_text(node, path, &["PmtId", "EndToEndId"])?,
        amount,
        creditor_agent,
        creditor: parse_party(node.child("Cdtr")),
        creditor_account: parse_account(node, path, "CdtrAcct")?,
        remittance: parse_remittance(node),
    })
}

/// `RmtInf/Ustrd`, empty lines dropped; shared with camt.053.
pub(crate) fn parse_remittance(node: Node<'_>) -> Vec<String> {
    node.child("RmtInf")
        .map(|rmt| {
            rmt.children("Ustrd")
                .filter(|u| !u.text().is_empty())
                .map(|u| u.text().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `Nm` and `PstlAdr/AdrLine`, all optional; shared with camt.053.
pub(crate) fn parse_party(node: Option<Node<'_>>) -> Party {
    let Some(node) = node else {
        return Party::default();
    };
    Party {
        name: xml::optional_text(node, &["Nm"]),
        address_lines: node
            .child("PstlAdr")
            .map(|adr| {
                adr.children("AdrLine")
                    .filter(|l| !l.text().is_empty())
                    .map(|l| l.text().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn parse_account(
    node: Node<'_>,
    path: &str,
    name: &str,
) -> Result<AccountIdentification, ParseError> {
    let account = xml::required(node, path, &[name])?;
    parse_account_id(account, &format!("{path}/{name}"))
}

/// `Id/IBAN` or `Id/Othr/Id` of the account element `account` at `path`;
/// shared with camt.053.
pub(crate) fn parse_account_id(
    account: Node<'_>,
    path: &str,
) -> Result<AccountIdentification, ParseError> {
    let id = xml::required(account, path, &["Id"])?;
    let at = format!("{path}/Id");
    if let Some(iban) = id.child("IBAN") {
        return domain::Iban::parse(xml::trimmed(iban.text()))
            .map(AccountIdentification::Iban)
            .map_err(|e| ParseError::Invalid {
                path: format!("{at}/IBAN"),
                problem: e.to_string(),
            });
    }
    match id.at(&["Othr", "Id"]) {
        Some(other) if !other.text().is_empty() => {
            Ok(AccountIdentification::Other(other.text().to_owned()))
        }
        Some(_) => Err(ParseError::Invalid {
            path: format!("{at}/Othr/Id"),
            problem: "empty; text is required".to_owned(),
        }),
        None => Err(ParseError::Missing {
            path: format!("{at}/IBAN"),
        }),
    }
}

/// The agent `name`'s BIC: the first of the version's
/// [`Version::bic_elements_read`] present; missing names the version's own.
fn parse_bic(node: Node<'_>, path: &str, name: &str, version: Version) -> Result<Bic, ParseError> {
    let element = version
        .bic_elements_read()
        .iter()
        .copied()
        .find(|element| node.at(&[name, "FinInstnId", element]).is_some())
        .unwrap_or(version.bic_element());
    let text = xml::required_code(node, path, &[name, "FinInstnId", element])?;
    Bic::parse(text).map_err(|e| ParseError::Invalid {
        path: format!("{path}/{name}/FinInstnId/{element}"),
        problem: e.to_string(),
    })
}
