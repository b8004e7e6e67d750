//! `pain.001.001.09`, CustomerCreditTransferInitiationV09: the credit
//! transfers we ask a bank to make.
//!
//! [`render`] writes a [`CustomerCreditTransferInitiation`] as UTF-8 XML in
//! the `pain.001.001.09` namespace. It computes `NbOfTxs` and `CtrlSum` for
//! the group and for each `PmtInf` (the model does not carry them, so they
//! cannot disagree), and refuses text longer than its ISO type allows, empty
//! text, characters XML cannot carry, non-positive amounts and empty
//! batches, each with the element path.
//!
//! [`parse`] reads a document back (what the bank simulator receives):
//! tolerant of namespace prefixes, of optional elements being absent and of
//! elements we do not model (they are skipped); strict about amounts and
//! about `NbOfTxs` and `CtrlSum`, which must match the transactions when
//! present. Every `PmtInf` is read into memory on its own, so memory is
//! bounded by the largest payment information block, not the file.
//!
//! Modelled: group header (`MsgId`, `CreDtTm`, `InitgPty`), payment
//! information (`PmtInfId`, `PmtMtd` = `TRF`, `ReqdExctnDt/Dt`, `Dbtr`,
//! `DbtrAcct`, `DbtrAgt/FinInstnId/BICFI`) and transactions (`InstrId`,
//! `EndToEndId`, `InstdAmt`, `CdtrAgt`, `Cdtr`, `CdtrAcct`, `RmtInf/Ustrd`).
//! Not modelled: payment type, charges bearer, ultimate parties,
//! structured remittance, regulatory reporting, purpose.

use std::io::BufRead;

use domain::{Bic, BusinessDate, Money};

use super::xml::{self, Node, Token, Writer, XmlReader};
use super::{
    clip, is_iso_date_time, AccountIdentification, Agent, Limits, ParseError, Party, RenderError,
    MAX140, MAX34, MAX35, MAX70, MAX_ADDRESS_LINES,
};

/// The XML namespace of `pain.001.001.09`.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09";
/// The message element under `Document`.
pub const MESSAGE: &str = "CstmrCdtTrfInitn";
/// `Max15NumericText`: the longest `NbOfTxs`.
const MAX_COUNT_DIGITS: usize = 15;
/// `DecimalNumber`: `totalDigits` 18.
const MAX_CONTROL_SUM_DIGITS: usize = 18;

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
    /// `ReqdExctnDt/Dt`.
    pub requested_execution_date: BusinessDate,
    /// `Dbtr`.
    pub debtor: Party,
    /// `DbtrAcct/Id`.
    pub debtor_account: AccountIdentification,
    /// `DbtrAgt/FinInstnId/BICFI`.
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
    /// `CdtrAgt/FinInstnId/BICFI`.
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

/// Renders the message as UTF-8 XML; see the module documentation for what
/// is refused.
pub fn render(message: &CustomerCreditTransferInitiation) -> Result<Vec<u8>, RenderError> {
    let mut w = Writer::new(NAMESPACE);
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
        payment_information(&mut w, payment)?;
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

fn payment_information(w: &mut Writer, payment: &PaymentInformation) -> Result<(), RenderError> {
    if payment.transactions.is_empty() {
        return Err(RenderError::InvalidValue {
            path: w.path_of("CdtTrfTxInf"),
            detail: "a payment information block needs at least one transaction".to_owned(),
        });
    }
    w.text("PmtInfId", &payment.id, MAX35)?;
    w.value("PmtMtd", "TRF");
    w.value("NbOfTxs", &payment.transactions.len().to_string());
    control_sum(
        w,
        Decimal::sum(payment.transactions.iter().map(|t| &t.amount)),
    )?;
    w.open("ReqdExctnDt");
    w.value("Dt", &payment.requested_execution_date.to_string());
    w.close("ReqdExctnDt");
    party(w, "Dbtr", &payment.debtor)?;
    account(w, "DbtrAcct", &payment.debtor_account)?;
    agent(w, "DbtrAgt", &payment.debtor_agent);
    for (index, tx) in payment.transactions.iter().enumerate() {
        w.open_nth("CdtTrfTxInf", index + 1);
        transaction(w, tx)?;
        w.close("CdtTrfTxInf");
    }
    Ok(())
}

fn transaction(w: &mut Writer, tx: &CreditTransfer) -> Result<(), RenderError> {
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
        agent(w, "CdtrAgt", bic);
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

fn agent(w: &mut Writer, name: &'static str, bic: &Bic) {
    w.open(name);
    w.open("FinInstnId");
    w.value("BICFI", bic.as_str());
    w.close("FinInstnId");
    w.close(name);
}

// ---------------------------------------------------------------------------
// parse
// ---------------------------------------------------------------------------

/// Parses a document under the default [`Limits`].
pub fn parse(bytes: &[u8]) -> Result<CustomerCreditTransferInitiation, ParseError> {
    parse_with_limits(bytes, &Limits::default())
}

/// Parses a document under `limits`; see the module documentation for what
/// is tolerated and what is refused.
pub fn parse_with_limits(
    bytes: &[u8],
    limits: &Limits,
) -> Result<CustomerCreditTransferInitiation, ParseError> {
    if bytes.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size_bytes: bytes.len(),
            max_bytes: limits.max_bytes,
        });
    }
    parse_from(bytes, *limits)
}

fn parse_from<R: BufRead>(
    input: R,
    limits: Limits,
) -> Result<CustomerCreditTransferInitiation, ParseError> {
    let mut reader = XmlReader::new(input, limits);
    reader.enter_message(MESSAGE)?;
    let mut header: Option<(Node, String)> = None;
    let mut payments = Vec::new();
    loop {
        match reader.next_tag()? {
            Token::Open(open) => {
                let name = open.name.clone();
                let path = reader.path();
                let node = reader.read_tree(open)?;
                match name.as_str() {
                    "GrpHdr" if header.is_none() => header = Some((node, path)),
                    "PmtInf" => payments.push(parse_payment(&node, &path)?),
                    _ => {}
                }
            }
            Token::Close => break,
            Token::Text(_) | Token::Eof => {
                return Err(ParseError::Missing {
                    path: format!("{MESSAGE}/GrpHdr"),
                })
            }
        }
    }
    reader.finish()?;

    let (header, path) = header.ok_or_else(|| ParseError::Missing {
        path: format!("{MESSAGE}/GrpHdr"),
    })?;
    if payments.is_empty() {
        return Err(ParseError::Missing {
            path: format!("{MESSAGE}/PmtInf"),
        });
    }
    let amounts = payments
        .iter()
        .flat_map(|p: &PaymentInformation| p.transactions.iter().map(|t| &t.amount));
    let count = payments.iter().map(|p| p.transactions.len()).sum();
    check_totals(&header, &path, count, Decimal::sum(amounts), true)?;
    Ok(CustomerCreditTransferInitiation {
        message_id: xml::required_text(&header, &path, &["MsgId"])?,
        created_at: xml::required_code(&header, &path, &["CreDtTm"])?.to_owned(),
        initiating_party: parse_party(header.child("InitgPty")),
        payments,
    })
}

/// `NbOfTxs` (required in the group header, optional in `PmtInf`) and
/// `CtrlSum` (optional) against what the transactions give.
fn check_totals(
    node: &Node,
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
        let text = xml::trimmed(&count_node.text);
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
        let text = xml::trimmed(&sum_node.text);
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

fn parse_payment(node: &Node, path: &str) -> Result<PaymentInformation, ParseError> {
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
        requested_execution_date: xml::date_choice(node, path, &["ReqdExctnDt"])?,
        debtor: parse_party(node.child("Dbtr")),
        debtor_account: parse_account(node, path, "DbtrAcct")?,
        debtor_agent: parse_bic(node, path, "DbtrAgt")?,
        transactions,
    })
}

fn parse_transaction(node: &Node, path: &str) -> Result<CreditTransfer, ParseError> {
    let amount = xml::amount(node, path, &["Amt", "InstdAmt"])?;
    if amount.is_zero() {
        return Err(ParseError::Invalid {
            path: format!("{path}/Amt/InstdAmt"),
            problem: "zero; a transfer amount must be positive".to_owned(),
        });
    }
    let creditor_agent = match node.at(&["CdtrAgt", "FinInstnId", "BICFI"]) {
        Some(_) => Some(parse_bic(node, path, "CdtrAgt")?),
        None => None,
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
pub(crate) fn parse_remittance(node: &Node) -> Vec<String> {
    node.child("RmtInf")
        .map(|rmt| {
            rmt.children("Ustrd")
                .filter(|u| !u.text.is_empty())
                .map(|u| u.text.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `Nm` and `PstlAdr/AdrLine`, all optional; shared with camt.053.
pub(crate) fn parse_party(node: Option<&Node>) -> Party {
    let Some(node) = node else {
        return Party::default();
    };
    Party {
        name: xml::optional_text(node, &["Nm"]),
        address_lines: node
            .child("PstlAdr")
            .map(|adr| {
                adr.children("AdrLine")
                    .filter(|l| !l.text.is_empty())
                    .map(|l| l.text.clone())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn parse_account(node: &Node, path: &str, name: &str) -> Result<AccountIdentification, ParseError> {
    let account = xml::required(node, path, &[name])?;
    parse_account_id(account, &format!("{path}/{name}"))
}

/// `Id/IBAN` or `Id/Othr/Id` of the account element `account` at `path`;
/// shared with camt.053.
pub(crate) fn parse_account_id(
    account: &Node,
    path: &str,
) -> Result<AccountIdentification, ParseError> {
    let id = xml::required(account, path, &["Id"])?;
    let at = format!("{path}/Id");
    if let Some(iban) = id.child("IBAN") {
        return domain::Iban::parse(xml::trimmed(&iban.text))
            .map(AccountIdentification::Iban)
            .map_err(|e| ParseError::Invalid {
                path: format!("{at}/IBAN"),
                problem: e.to_string(),
            });
    }
    match id.at(&["Othr", "Id"]) {
        Some(other) if !other.text.is_empty() => {
            Ok(AccountIdentification::Other(other.text.clone()))
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

fn parse_bic(node: &Node, path: &str, name: &str) -> Result<Bic, ParseError> {
    let text = xml::required_code(node, path, &[name, "FinInstnId", "BICFI"])?;
    Bic::parse(text).map_err(|e| ParseError::Invalid {
        path: format!("{path}/{name}/FinInstnId/BICFI"),
        problem: e.to_string(),
    })
}
