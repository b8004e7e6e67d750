//! What a pain.001 as this connector sends it can carry, checked at intake
//! so that a payment that could never be sent is refused naming the field,
//! never stored.
//!
//! Decisions (docs/families/iso20022.md leaves them to the connector):
//! - **Characters**: pain.001.001.09 is UTF-8, but host-to-host banks
//!   accept, and SEPA schemes guarantee, only the SEPA Latin set
//!   `a-z A-Z 0-9 / - ? : ( ) . , ' +` and space. That is the default
//!   ([`TextCharset::SepaLatin`]); a bank that takes any Unicode is
//!   configured with [`TextCharset::Unicode`] (then only what XML 1.0
//!   cannot carry is refused: control characters). Nothing is
//!   transliterated: a character the bank cannot take is refused.
//! - **Lengths** in characters, the ISO types: creditor name `Max140Text`,
//!   remittance one `Ustrd` of `Max140Text`, account ids `Max34Text`.
//! - **Creditor account**: an IBAN (checked, electronic form) or another id
//!   of 1 to 34 ASCII letters, digits and `-` (`Othr/Id`); text that looks
//!   like an IBAN but fails its check is refused.
//! - **Creditor bank**: the BIC when given (`CdtrAgt`; a domain [`Bic`] is
//!   valid by construction; `.03` additionally refuses what its older BIC
//!   pattern does not allow). A CNAPS code cannot be carried (refused); a
//!   bank name is not sent (the BIC or the IBAN identifies the bank).
//! - **Not carried, so refused**: a purpose (`Purp` is not modelled) and
//!   urgency `urgent` (no service level is sent).
//! - The amount must be positive; the reference is our business reference
//!   (`Max35Text`, already ASCII letters, digits and `-`).
//!
//! The last word is the renderer's: the transfer is rendered once here
//! (with a placeholder debtor agent) and anything it refuses is a problem.

use domain::{BankReference, Bic, BusinessDate, Money, Urgency};
use formats::iso20022::pain001::{
    self, CreditTransfer, CustomerCreditTransferInitiation, PaymentInformation,
};
use formats::iso20022::{AccountIdentification, Party, MAX140};

use super::{account_identification, Iso20022Options};
use crate::{BatchItemInstruction, BatchKind, IntakeProblem, PaymentInstruction};

/// Which characters payment text may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextCharset {
    /// The SEPA Latin set: `a-z A-Z 0-9 / - ? : ( ) . , ' +` and space.
    SepaLatin,
    /// Any character XML 1.0 can carry except control characters.
    Unicode,
}

impl TextCharset {
    pub fn allows(self, c: char) -> bool {
        match self {
            TextCharset::SepaLatin => {
                c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        '/' | '-' | '?' | ':' | '(' | ')' | '.' | ',' | '\'' | '+' | ' '
                    )
            }
            TextCharset::Unicode => !c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}',
        }
    }

    fn describe(self) -> &'static str {
        match self {
            TextCharset::SepaLatin => {
                "the SEPA Latin set (a-z A-Z 0-9 / - ? : ( ) . , ' + and space)"
            }
            TextCharset::Unicode => "text without control characters",
        }
    }
}

/// The fields a payment and a batch item share.
struct Transfer<'a> {
    amount: Money,
    creditor_name: &'a str,
    creditor_account: &'a str,
    creditor_bic: Option<&'a Bic>,
    has_bank_code: bool,
    remittance: &'a str,
    purpose: Option<&'a str>,
}

/// Every problem of a single payment, named by API field.
pub fn payment_problems(
    payment: &PaymentInstruction,
    options: &Iso20022Options,
) -> Vec<IntakeProblem> {
    let mut problems = transfer_problems(
        &Transfer {
            amount: payment.amount,
            creditor_name: &payment.creditor_name,
            creditor_account: &payment.creditor_account,
            creditor_bic: payment.creditor_bic.as_ref(),
            has_bank_code: payment.creditor_bank_code.is_some(),
            remittance: &payment.remittance,
            purpose: payment.purpose.as_deref(),
        },
        options,
    );
    if payment.urgency == Urgency::Urgent {
        problems.push(IntakeProblem {
            field: "urgency",
            detail: "this bank's pain.001 carries no service level; urgent payments cannot be expressed, send it as normal".into(),
        });
    }
    if let Err(detail) = account_identification(payment.debtor_account.as_str()) {
        problems.push(IntakeProblem {
            field: "debtor_account_id",
            detail,
        });
    }
    if problems.is_empty() {
        problems.extend(render_problems(
            &payment.reference,
            payment.requested_execution_date,
            payment.amount,
            &payment.creditor_name,
            &payment.creditor_account,
            payment.creditor_bic.as_ref(),
            &payment.remittance,
            options,
        ));
    }
    problems
}

/// Every problem of one batch item, named relative to the item.
pub fn item_problems(
    _kind: BatchKind,
    item: &BatchItemInstruction,
    options: &Iso20022Options,
) -> Vec<IntakeProblem> {
    let mut problems = transfer_problems(
        &Transfer {
            amount: item.amount,
            creditor_name: &item.creditor_name,
            creditor_account: &item.creditor_account,
            creditor_bic: item.creditor_bic.as_ref(),
            has_bank_code: item.creditor_bank_code.is_some(),
            remittance: &item.remittance,
            purpose: item.purpose.as_deref(),
        },
        options,
    );
    if problems.is_empty() {
        // Any date serves: the renderer does not judge it.
        let Ok(date) = BusinessDate::from_ymd(2000, 1, 1) else {
            return problems;
        };
        problems.extend(render_problems(
            &item.reference,
            date,
            item.amount,
            &item.creditor_name,
            &item.creditor_account,
            item.creditor_bic.as_ref(),
            &item.remittance,
            options,
        ));
    }
    problems
}

fn transfer_problems(transfer: &Transfer<'_>, options: &Iso20022Options) -> Vec<IntakeProblem> {
    let mut problems = Vec::new();
    if !transfer.amount.is_positive() {
        problems.push(IntakeProblem {
            field: "amount",
            detail: format!("amount is {}; expected a positive amount", transfer.amount),
        });
    }
    text_problems(
        &mut problems,
        "creditor.name",
        transfer.creditor_name,
        true,
        options.charset,
    );
    text_problems(
        &mut problems,
        "remittance",
        transfer.remittance,
        false,
        options.charset,
    );
    if let Err(detail) = account_identification(transfer.creditor_account) {
        problems.push(IntakeProblem {
            field: "creditor.account",
            detail,
        });
    }
    if transfer.has_bank_code {
        problems.push(IntakeProblem {
            field: "creditor.bank_code",
            detail: "an ISO 20022 bank identifies the creditor's bank by BIC (or IBAN); a CNAPS code cannot be carried, give creditor.bic instead".into(),
        });
    }
    if transfer.purpose.is_some_and(|p| !p.trim().is_empty()) {
        problems.push(IntakeProblem {
            field: "purpose",
            detail: "this bank's pain.001 carries no purpose; put it into the remittance".into(),
        });
    }
    if let Some(bic) = transfer.creditor_bic {
        if options.pain001_version == pain001::Version::V03 && !bic_fits_v03(bic) {
            problems.push(IntakeProblem {
                field: "creditor.bic",
                detail: format!(
                    "BIC {bic} is not allowed by pain.001.001.03 (location code starting with 0 or 1, or ending with O)"
                ),
            });
        }
    }
    problems
}

/// Length (in characters, `Max140Text`) and charset of one text field.
fn text_problems(
    problems: &mut Vec<IntakeProblem>,
    field: &'static str,
    text: &str,
    required: bool,
    charset: TextCharset,
) {
    let count = text.chars().count();
    if required && text.trim().is_empty() {
        problems.push(IntakeProblem {
            field,
            detail: "empty; expected at least one character".into(),
        });
        return;
    }
    if count > MAX140 {
        problems.push(IntakeProblem {
            field,
            detail: format!("{count} characters; ISO 20022 allows at most {MAX140} (Max140Text)"),
        });
    }
    if let Some((index, c)) = text.chars().enumerate().find(|(_, c)| !charset.allows(*c)) {
        problems.push(IntakeProblem {
            field,
            detail: format!(
                "character {} ({}) is outside what this bank accepts: {}",
                index + 1,
                describe_char(c),
                charset.describe()
            ),
        });
    }
}

fn describe_char(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", u32::from(c))
    } else {
        format!("{c:?}, U+{:04X}", u32::from(c))
    }
}

/// The pain.001.001.03 `BICIdentifier` pattern beyond what a [`Bic`]
/// guarantees: the location code does not start with `0` or `1`, and its
/// second character is not `O`.
fn bic_fits_v03(bic: &Bic) -> bool {
    let location = bic.location().as_bytes();
    let first_ok = location
        .first()
        .is_some_and(|c| c.is_ascii_uppercase() || (b'2'..=b'9').contains(c));
    let second_ok = location
        .get(1)
        .is_some_and(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && *c != b'O'));
    first_ok && second_ok
}

/// The `CdtTrfTxInf` of one payment or item: `InstrId` and `EndToEndId`
/// are its reference.
pub fn credit_transfer(
    reference: &BankReference,
    amount: Money,
    creditor_name: &str,
    creditor_account: &str,
    creditor_bic: Option<&Bic>,
    remittance: &str,
) -> Result<CreditTransfer, String> {
    let creditor_account =
        account_identification(creditor_account).map_err(|e| format!("creditor.account: {e}"))?;
    let remittance = if remittance.is_empty() {
        Vec::new()
    } else {
        vec![remittance.to_string()]
    };
    Ok(CreditTransfer {
        instruction_id: Some(reference.as_str().to_string()),
        end_to_end_id: reference.as_str().to_string(),
        amount,
        creditor_agent: creditor_bic.cloned(),
        creditor: Party {
            name: Some(creditor_name.to_string()),
            address_lines: Vec::new(),
        },
        creditor_account,
        remittance,
    })
}

/// Renders the transfer once with a placeholder debtor, so that whatever
/// the renderer refuses is refused at intake too, named by field.
#[allow(clippy::too_many_arguments)]
fn render_problems(
    reference: &BankReference,
    execution_date: BusinessDate,
    amount: Money,
    creditor_name: &str,
    creditor_account: &str,
    creditor_bic: Option<&Bic>,
    remittance: &str,
    options: &Iso20022Options,
) -> Vec<IntakeProblem> {
    let transfer = match credit_transfer(
        reference,
        amount,
        creditor_name,
        creditor_account,
        creditor_bic,
        remittance,
    ) {
        Ok(transfer) => transfer,
        Err(detail) => {
            return vec![IntakeProblem {
                field: "creditor.account",
                detail,
            }]
        }
    };
    let Ok(placeholder_agent) = Bic::parse("BANKDEFFXXX") else {
        return Vec::new();
    };
    let message = CustomerCreditTransferInitiation {
        message_id: reference.as_str().to_string(),
        created_at: "2000-01-01T00:00:00Z".to_string(),
        initiating_party: Party::default(),
        payments: vec![PaymentInformation {
            id: reference.as_str().to_string(),
            batch_booking: None,
            category_purpose: None,
            requested_execution_date: execution_date,
            debtor: Party::default(),
            debtor_account: AccountIdentification::Other("PLACEHOLDER".into()),
            debtor_agent: placeholder_agent,
            transactions: vec![transfer],
        }],
    };
    match pain001::render_version(&message, options.pain001_version) {
        Ok(_) => Vec::new(),
        Err(e) => vec![IntakeProblem {
            field: field_of_path(&e.to_string()),
            detail: format!("pain.001 cannot carry it: {e}"),
        }],
    }
}

/// The API field an element path of the transaction is about.
fn field_of_path(path: &str) -> &'static str {
    if path.contains("Cdtr/Nm") {
        "creditor.name"
    } else if path.contains("CdtrAcct") {
        "creditor.account"
    } else if path.contains("CdtrAgt") {
        "creditor.bic"
    } else if path.contains("RmtInf") {
        "remittance"
    } else if path.contains("Amt") || path.contains("CtrlSum") {
        "amount"
    } else if path.contains("MsgId") || path.contains("EndToEndId") || path.contains("InstrId") {
        "business_reference"
    } else {
        "payment"
    }
}

/// The problems on one line, for a `NotProcessed` reason.
pub fn describe(problems: &[IntakeProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{AccountNumber, CnapsCode, CreditorType, Currency};

    fn payment() -> PaymentInstruction {
        PaymentInstruction {
            reference: BankReference::parse("BD-0001").unwrap(),
            debtor_account: AccountNumber::parse("DE89370400440532013000").unwrap(),
            amount: Money::from_minor(12_345, Currency::EUR),
            creditor_name: "Muller GmbH".into(),
            creditor_account: "FR1420041010050500013M02606".into(),
            creditor_bank_code: None,
            creditor_bic: Some(Bic::parse("BNPAFRPPXXX").unwrap()),
            creditor_bank_name: Some("BNP Paribas".into()),
            creditor_type: CreditorType::Corporate,
            remittance: "Invoice 2026/117, order (A-9)".into(),
            purpose: None,
            urgency: Urgency::Normal,
            requested_execution_date: BusinessDate::from_ymd(2026, 11, 30).unwrap(),
        }
    }

    fn fields(problems: &[IntakeProblem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.field).collect()
    }

    #[test]
    fn a_clean_sepa_payment_passes() {
        assert_eq!(
            payment_problems(&payment(), &Iso20022Options::default()),
            vec![]
        );
        let mut domestic = payment();
        domestic.creditor_account = "755900012310001".into();
        domestic.creditor_bic = None;
        assert_eq!(
            payment_problems(&domestic, &Iso20022Options::default()),
            vec![]
        );
    }

    #[test]
    fn what_pain001_cannot_carry_is_named_by_field() {
        let mut bad = payment();
        bad.amount = Money::from_minor(0, Currency::EUR);
        bad.creditor_name = "Müller 张伟".into();
        bad.remittance = "x".repeat(141);
        bad.creditor_account = "DE89370400440532013001".into();
        bad.creditor_bank_code = Some(CnapsCode::parse("102100099996").unwrap());
        bad.purpose = Some("SALA".into());
        bad.urgency = Urgency::Urgent;
        let problems = payment_problems(&bad, &Iso20022Options::default());
        assert_eq!(
            fields(&problems),
            vec![
                "amount",
                "creditor.name",
                "remittance",
                "creditor.account",
                "creditor.bank_code",
                "purpose",
                "urgency"
            ],
            "{problems:?}"
        );
        assert!(problems[1].detail.contains("character 2"), "{problems:?}");
    }

    #[test]
    fn unicode_banks_take_names_sepa_banks_refuse() {
        let mut named = payment();
        named.creditor_name = "Müller 张伟".into();
        let unicode = Iso20022Options {
            charset: TextCharset::Unicode,
            ..Iso20022Options::default()
        };
        assert_eq!(payment_problems(&named, &unicode), vec![]);
        named.creditor_name = "tab\there".into();
        assert_eq!(
            fields(&payment_problems(&named, &unicode)),
            vec!["creditor.name"]
        );
        named.creditor_name = " ".into();
        assert_eq!(
            fields(&payment_problems(&named, &unicode)),
            vec!["creditor.name"]
        );
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        let mut long = payment();
        long.creditor_name = "é".repeat(140);
        let unicode = Iso20022Options {
            charset: TextCharset::Unicode,
            ..Iso20022Options::default()
        };
        assert_eq!(payment_problems(&long, &unicode), vec![]);
        long.creditor_name.push('é');
        assert_eq!(
            fields(&payment_problems(&long, &unicode)),
            vec!["creditor.name"]
        );
    }

    #[test]
    fn version_03_refuses_bics_its_pattern_does_not_allow() {
        let mut old = payment();
        old.creditor_bic = Some(Bic::parse("BANKDE0FXXX").unwrap());
        let v03 = Iso20022Options {
            pain001_version: pain001::Version::V03,
            ..Iso20022Options::default()
        };
        assert_eq!(fields(&payment_problems(&old, &v03)), vec!["creditor.bic"]);
        assert_eq!(payment_problems(&old, &Iso20022Options::default()), vec![]);
    }

    #[test]
    fn batch_items_are_checked_like_payments() {
        let item = BatchItemInstruction {
            reference: BankReference::parse("I-1").unwrap(),
            amount: Money::from_minor(100, Currency::EUR),
            creditor_name: "Anna Schmidt".into(),
            creditor_account: "DE89370400440532013000".into(),
            creditor_bank_code: None,
            creditor_bic: None,
            creditor_bank_name: None,
            creditor_type: CreditorType::Personal,
            remittance: "Salary 11/2026".into(),
            purpose: None,
        };
        let options = Iso20022Options::default();
        assert_eq!(item_problems(BatchKind::Payroll, &item, &options), vec![]);
        let bad = BatchItemInstruction {
            creditor_name: "李娜".into(),
            ..item
        };
        assert_eq!(
            fields(&item_problems(BatchKind::Supplier, &bad, &options)),
            vec!["creditor.name"]
        );
    }
}
