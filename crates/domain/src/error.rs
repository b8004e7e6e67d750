//! The one error type of the domain crate.
//!
//! Every parse or validation failure in this crate is a [`DomainError`]. Each
//! variant's message says what was wrong and what was expected, and
//! [`DomainError::code`] gives a stable snake_case code that the API layer puts
//! into problem+json. Messages never repeat an account number or an IBAN: at
//! most a position or a count is reported, so an error can be logged as it is.

use crate::money::Currency;

/// A parse or validation failure of a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The text is not a decimal amount at all (empty, a stray character, a
    /// misplaced point or sign).
    #[error("invalid amount: {detail}")]
    InvalidAmount { detail: String },

    /// The amount has more decimal places than its currency's minor unit.
    #[error("{}", too_many_decimals_message(*.decimals, *.currency))]
    TooManyDecimals { decimals: usize, currency: Currency },

    /// Bank text had decimals beyond the currency's exponent and they were not
    /// all zeros; rounding them away would change the amount.
    #[error(
        "amount has non-zero digits beyond the {allowed} decimal places {currency} allows; \
         expected any extra decimals to be zeros (amounts are never rounded)",
        allowed = .currency.exponent()
    )]
    NonZeroExtraDecimals { currency: Currency },

    /// The text is not a currency code of the built-in ISO 4217 table.
    #[error(
        "unknown currency code {code}; expected an upper-case ISO 4217 alphabetic code such as CNY, USD or EUR"
    )]
    UnknownCurrency {
        /// The offending text, quoted, escaped and truncated.
        code: String,
    },

    /// Two amounts of different currencies were combined.
    #[error("currency mismatch: got {found} where {expected} was expected; both amounts must be in the same currency")]
    CurrencyMismatch { expected: Currency, found: Currency },

    /// A result does not fit the integer type that carries minor units.
    #[error(
        "amount overflow in {operation}: the result does not fit a signed {bits}-bit count of {currency} minor units"
    )]
    AmountOverflow {
        operation: &'static str,
        currency: Currency,
        bits: u32,
    },

    #[error("invalid IBAN: {detail}")]
    InvalidIban { detail: String },

    #[error("invalid BIC: {detail}")]
    InvalidBic { detail: String },

    #[error("invalid CNAPS code: {detail}")]
    InvalidCnapsCode { detail: String },

    /// Never carries the number itself, only what is wrong with it.
    #[error("invalid account number: {detail}")]
    InvalidAccountNumber { detail: String },

    /// An identifier other than the bank-standard ones above (payment id,
    /// bank reference, end-to-end id, configuration slugs).
    #[error("invalid {kind}: {detail}")]
    InvalidIdentifier { kind: &'static str, detail: String },

    #[error("invalid date: {detail}")]
    InvalidDate { detail: String },

    /// A local time of day that is malformed or does not exist in its zone.
    #[error("invalid time: {detail}")]
    InvalidTime { detail: String },

    #[error("invalid time zone: {detail}")]
    InvalidTimeZone { detail: String },
}

impl DomainError {
    /// A stable snake_case code for API responses and metrics. Codes never
    /// change once published; several variants may share one.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidAmount { .. } => "invalid_amount",
            DomainError::TooManyDecimals { .. } | DomainError::NonZeroExtraDecimals { .. } => {
                "too_many_decimals"
            }
            DomainError::UnknownCurrency { .. } => "unknown_currency",
            DomainError::CurrencyMismatch { .. } => "currency_mismatch",
            DomainError::AmountOverflow { .. } => "amount_overflow",
            DomainError::InvalidIban { .. } => "invalid_iban",
            DomainError::InvalidBic { .. } => "invalid_bic",
            DomainError::InvalidCnapsCode { .. } => "invalid_cnaps_code",
            DomainError::InvalidAccountNumber { .. } => "invalid_account_number",
            DomainError::InvalidIdentifier { .. } => "invalid_identifier",
            DomainError::InvalidDate { .. } => "invalid_date",
            DomainError::InvalidTime { .. } => "invalid_time",
            DomainError::InvalidTimeZone { .. } => "invalid_time_zone",
        }
    }
}

fn too_many_decimals_message(decimals: usize, currency: Currency) -> String {
    if currency.exponent() == 0 {
        format!(
            "amount has {decimals} decimal places; {currency} has no minor unit, so expected a whole number without a decimal point"
        )
    } else {
        format!(
            "amount has {decimals} decimal places; {currency} allows at most {}",
            currency.exponent()
        )
    }
}

/// How much of a piece of untrusted text an error message may repeat.
const SNIPPET_MAX_CHARS: usize = 16;

/// Quotes untrusted text for an error message: escaped, so control
/// characters cannot forge log lines, and truncated, so a huge input does not
/// make a huge message. Never use it for account numbers or IBANs.
pub(crate) fn snippet(text: &str) -> String {
    let mut out = String::from("\"");
    for (index, ch) in text.chars().enumerate() {
        if index == SNIPPET_MAX_CHARS {
            out.push_str("...");
            break;
        }
        out.extend(ch.escape_debug());
    }
    out.push('"');
    out
}

/// Describes one character for an error message ("'x'", "'\u{a0}'").
pub(crate) fn describe_char(ch: char) -> String {
    format!("'{}'", ch.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_decimals_message_names_the_allowed_count() {
        let err = DomainError::TooManyDecimals {
            decimals: 3,
            currency: Currency::CNY,
        };
        assert_eq!(
            err.to_string(),
            "amount has 3 decimal places; CNY allows at most 2"
        );
        assert_eq!(err.code(), "too_many_decimals");
    }

    #[test]
    fn zero_exponent_message_says_no_decimal_point() {
        let err = DomainError::TooManyDecimals {
            decimals: 1,
            currency: Currency::JPY,
        };
        assert!(err.to_string().contains("JPY has no minor unit"));
    }

    #[test]
    fn snippet_escapes_and_truncates() {
        assert_eq!(snippet("ab\ncd"), "\"ab\\ncd\"");
        let long = "x".repeat(100);
        assert_eq!(snippet(&long), format!("\"{}...\"", "x".repeat(16)));
    }

    #[test]
    fn codes_are_snake_case() {
        let samples = [
            DomainError::InvalidAmount {
                detail: String::new(),
            },
            DomainError::NonZeroExtraDecimals {
                currency: Currency::USD,
            },
            DomainError::UnknownCurrency {
                code: String::new(),
            },
            DomainError::CurrencyMismatch {
                expected: Currency::USD,
                found: Currency::EUR,
            },
            DomainError::AmountOverflow {
                operation: "addition",
                currency: Currency::USD,
                bits: 64,
            },
            DomainError::InvalidTime {
                detail: String::new(),
            },
        ];
        for err in samples {
            assert!(err
                .code()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
}
