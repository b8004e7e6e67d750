//! Exact money: ISO 4217 currencies and amounts as integer minor units.
//!
//! - [`Currency`]: a code from a built-in ISO 4217 table that knows its
//!   exponent (the number of minor-unit digits: CNY 2, JPY 0, BHD 3).
//! - [`Money`]: an `i64` count of minor units plus its currency. Parsed from
//!   API text strictly ([`Money::parse`]) or from bank text leniently but never
//!   by rounding ([`Money::parse_bank_decimal`]); printed with exactly the
//!   currency's exponent. Arithmetic is checked.
//! - [`MoneyTotal`]: an `i128` sum for control sums and statement totals, which
//!   can add up any number of `i64` amounts without overflow in practice.
//!
//! There are no floats anywhere in this module.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{describe_char, snippet, DomainError};

/// Longest amount text accepted, in bytes (after trimming for bank text).
/// `i64` minor units need at most 20 characters; the rest leaves room for
/// leading zeros and padding decimals that banks write.
pub const MAX_AMOUNT_TEXT_LEN: usize = 64;

/// Largest exponent in the currency table (CLF and UYW have 4).
pub const MAX_CURRENCY_EXPONENT: u8 = 4;

/// An ISO 4217 currency from the built-in table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

const fn cur(code: &'static str, exponent: u8) -> Currency {
    Currency { code, exponent }
}

/// Active ISO 4217 currencies, sorted by code (binary-searched by
/// [`Currency::from_code`]; a test checks the order). Precious metals, the
/// testing code and other units without a minor unit ("N.A.") are left out:
/// nobody pays in them through a bank's direct connect.
static CURRENCIES: &[Currency] = &[
    cur("AED", 2),
    cur("AFN", 2),
    cur("ALL", 2),
    cur("AMD", 2),
    cur("ANG", 2),
    cur("AOA", 2),
    cur("ARS", 2),
    cur("AUD", 2),
    cur("AWG", 2),
    cur("AZN", 2),
    cur("BAM", 2),
    cur("BBD", 2),
    cur("BDT", 2),
    cur("BGN", 2),
    cur("BHD", 3),
    cur("BIF", 0),
    cur("BMD", 2),
    cur("BND", 2),
    cur("BOB", 2),
    cur("BOV", 2),
    cur("BRL", 2),
    cur("BSD", 2),
    cur("BTN", 2),
    cur("BWP", 2),
    cur("BYN", 2),
    cur("BZD", 2),
    cur("CAD", 2),
    cur("CDF", 2),
    cur("CHE", 2),
    cur("CHF", 2),
    cur("CHW", 2),
    cur("CLF", 4),
    cur("CLP", 0),
    cur("CNY", 2),
    cur("COP", 2),
    cur("COU", 2),
    cur("CRC", 2),
    cur("CUP", 2),
    cur("CVE", 2),
    cur("CZK", 2),
    cur("DJF", 0),
    cur("DKK", 2),
    cur("DOP", 2),
    cur("DZD", 2),
    cur("EGP", 2),
    cur("ERN", 2),
    cur("ETB", 2),
    cur("EUR", 2),
    cur("FJD", 2),
    cur("FKP", 2),
    cur("GBP", 2),
    cur("GEL", 2),
    cur("GHS", 2),
    cur("GIP", 2),
    cur("GMD", 2),
    cur("GNF", 0),
    cur("GTQ", 2),
    cur("GYD", 2),
    cur("HKD", 2),
    cur("HNL", 2),
    cur("HTG", 2),
    cur("HUF", 2),
    cur("IDR", 2),
    cur("ILS", 2),
    cur("INR", 2),
    cur("IQD", 3),
    cur("IRR", 2),
    cur("ISK", 0),
    cur("JMD", 2),
    cur("JOD", 3),
    cur("JPY", 0),
    cur("KES", 2),
    cur("KGS", 2),
    cur("KHR", 2),
    cur("KMF", 0),
    cur("KPW", 2),
    cur("KRW", 0),
    cur("KWD", 3),
    cur("KYD", 2),
    cur("KZT", 2),
    cur("LAK", 2),
    cur("LBP", 2),
    cur("LKR", 2),
    cur("LRD", 2),
    cur("LSL", 2),
    cur("LYD", 3),
    cur("MAD", 2),
    cur("MDL", 2),
    cur("MGA", 2),
    cur("MKD", 2),
    cur("MMK", 2),
    cur("MNT", 2),
    cur("MOP", 2),
    cur("MRU", 2),
    cur("MUR", 2),
    cur("MVR", 2),
    cur("MWK", 2),
    cur("MXN", 2),
    cur("MXV", 2),
    cur("MYR", 2),
    cur("MZN", 2),
    cur("NAD", 2),
    cur("NGN", 2),
    cur("NIO", 2),
    cur("NOK", 2),
    cur("NPR", 2),
    cur("NZD", 2),
    cur("OMR", 3),
    cur("PAB", 2),
    cur("PEN", 2),
    cur("PGK", 2),
    cur("PHP", 2),
    cur("PKR", 2),
    cur("PLN", 2),
    cur("PYG", 0),
    cur("QAR", 2),
    cur("RON", 2),
    cur("RSD", 2),
    cur("RUB", 2),
    cur("RWF", 0),
    cur("SAR", 2),
    cur("SBD", 2),
    cur("SCR", 2),
    cur("SDG", 2),
    cur("SEK", 2),
    cur("SGD", 2),
    cur("SHP", 2),
    cur("SLE", 2),
    cur("SOS", 2),
    cur("SRD", 2),
    cur("SSP", 2),
    cur("STN", 2),
    cur("SVC", 2),
    cur("SYP", 2),
    cur("SZL", 2),
    cur("THB", 2),
    cur("TJS", 2),
    cur("TMT", 2),
    cur("TND", 3),
    cur("TOP", 2),
    cur("TRY", 2),
    cur("TTD", 2),
    cur("TWD", 2),
    cur("TZS", 2),
    cur("UAH", 2),
    cur("UGX", 0),
    cur("USD", 2),
    cur("USN", 2),
    cur("UYI", 0),
    cur("UYU", 2),
    cur("UYW", 4),
    cur("UZS", 2),
    cur("VED", 2),
    cur("VES", 2),
    cur("VND", 0),
    cur("VUV", 0),
    cur("WST", 2),
    cur("XAF", 0),
    cur("XCD", 2),
    cur("XCG", 2),
    cur("XOF", 0),
    cur("XPF", 0),
    cur("YER", 2),
    cur("ZAR", 2),
    cur("ZMW", 2),
    cur("ZWG", 2),
];

impl Currency {
    pub const CNY: Currency = cur("CNY", 2);
    pub const USD: Currency = cur("USD", 2);
    pub const EUR: Currency = cur("EUR", 2);
    pub const HKD: Currency = cur("HKD", 2);
    pub const GBP: Currency = cur("GBP", 2);
    pub const JPY: Currency = cur("JPY", 0);

    /// Looks up an exact upper-case ISO 4217 alphabetic code. Lower case and
    /// surrounding spaces are refused: API input is strict, and bank quirks
    /// (numeric codes, "RMB") are mapped by the bank family, not here.
    pub fn from_code(code: &str) -> Result<Currency, DomainError> {
        CURRENCIES
            .binary_search_by(|c| c.code.cmp(code))
            .ok()
            .and_then(|index| CURRENCIES.get(index).copied())
            .ok_or_else(|| DomainError::UnknownCurrency {
                code: snippet(code),
            })
    }

    /// Every currency of the built-in table, sorted by code.
    pub fn all() -> &'static [Currency] {
        CURRENCIES
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Minor-unit digits: CNY 2, JPY 0, BHD 3, CLF 4.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl std::str::FromStr for Currency {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Currency::from_code(&text).map_err(serde::de::Error::custom)
    }
}

/// An exact amount: a signed count of minor units of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn is_negative(&self) -> bool {
        self.minor < 0
    }

    pub fn is_zero(&self) -> bool {
        self.minor == 0
    }

    pub fn is_positive(&self) -> bool {
        self.minor > 0
    }

    /// Strict API text: optional leading '-', ASCII digits, optional '.'
    /// followed by 1..=exponent digits.
    ///
    /// Rejected: empty, '+', whitespace, leading/trailing '.', exponent
    /// notation, thousands separators, more decimals than the currency allows
    /// (even zeros: "1.000" for CNY is an error, not a rounding), '.' for a
    /// 0-exponent currency, overflow of i64 minor units. "-0" is fine (= 0).
    pub fn parse(text: &str, currency: Currency) -> Result<Money, DomainError> {
        let parts = split_decimal(text, Signs::MinusOnly)?;
        let exponent = usize::from(currency.exponent());
        if (parts.has_point && exponent == 0) || parts.fraction.len() > exponent {
            return Err(DomainError::TooManyDecimals {
                decimals: parts.fraction.len(),
                currency,
            });
        }
        parts.to_money(currency)
    }

    /// Bank text per a bank's quirks: surrounding ASCII whitespace trimmed,
    /// optional '+' or '-', more decimals than the exponent allowed only if
    /// the extra digits are zeros ("1234.5000" CNY = 123450 fen); a non-zero
    /// extra digit is an error (never rounds). Otherwise as strict as
    /// [`Money::parse`]: no ".5", no "1.", no separators.
    pub fn parse_bank_decimal(text: &str, currency: Currency) -> Result<Money, DomainError> {
        let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
        let mut parts = split_decimal(trimmed, Signs::PlusOrMinus)?;
        let exponent = usize::from(currency.exponent());
        if let Some(extra) = parts.fraction.get(exponent..) {
            if extra.bytes().any(|b| b != b'0') {
                return Err(DomainError::NonZeroExtraDecimals { currency });
            }
            parts.fraction = parts.fraction.get(..exponent).unwrap_or_default();
        }
        parts.to_money(currency)
    }

    /// Always exactly `exponent` decimals: 123450 CNY -> "1234.50";
    /// -5 CNY -> "-0.05"; JPY 1200 -> "1200".
    pub fn to_decimal_string(&self) -> String {
        format_minor(
            self.minor < 0,
            u128::from(self.minor.unsigned_abs()),
            self.currency.exponent(),
        )
    }

    pub fn checked_add(self, other: Money) -> Result<Money, DomainError> {
        self.same_currency(other)?;
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money::from_minor(minor, self.currency))
            .ok_or_else(|| overflow("addition", self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, DomainError> {
        self.same_currency(other)?;
        self.minor
            .checked_sub(other.minor)
            .map(|minor| Money::from_minor(minor, self.currency))
            .ok_or_else(|| overflow("subtraction", self.currency))
    }

    /// Fails only for `i64::MIN` minor units, whose negation does not fit.
    pub fn checked_neg(self) -> Result<Money, DomainError> {
        self.minor
            .checked_neg()
            .map(|minor| Money::from_minor(minor, self.currency))
            .ok_or_else(|| overflow("negation", self.currency))
    }

    /// Orders two amounts of the same currency (approval thresholds, limits).
    /// Money has no `PartialOrd` because amounts of different currencies have
    /// no order.
    pub fn checked_cmp(&self, other: &Money) -> Result<Ordering, DomainError> {
        self.same_currency(*other)?;
        Ok(self.minor.cmp(&other.minor))
    }

    fn same_currency(&self, other: Money) -> Result<(), DomainError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(DomainError::CurrencyMismatch {
                expected: self.currency,
                found: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

/// A sum of many amounts of one currency without overflow (i128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoneyTotal {
    minor: i128,
    currency: Currency,
}

impl MoneyTotal {
    pub fn zero(currency: Currency) -> MoneyTotal {
        MoneyTotal { minor: 0, currency }
    }

    /// Adds one amount. Fails with `currency_mismatch` for another currency;
    /// `amount_overflow` would need more than 2^64 maximal amounts and is
    /// checked rather than assumed away.
    pub fn add(&mut self, m: Money) -> Result<(), DomainError> {
        if m.currency() != self.currency {
            return Err(DomainError::CurrencyMismatch {
                expected: self.currency,
                found: m.currency(),
            });
        }
        self.minor =
            self.minor
                .checked_add(i128::from(m.minor()))
                .ok_or(DomainError::AmountOverflow {
                    operation: "total",
                    currency: self.currency,
                    bits: 128,
                })?;
        Ok(())
    }

    pub fn minor(&self) -> i128 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The total as a single amount, when it fits in `i64` minor units (for
    /// a control sum written into a message whose amounts are `Money`).
    pub fn to_money(&self) -> Result<Money, DomainError> {
        i64::try_from(self.minor)
            .map(|minor| Money::from_minor(minor, self.currency))
            .map_err(|_| overflow("conversion of a total to an amount", self.currency))
    }

    /// Exactly `exponent` decimals, like [`Money::to_decimal_string`].
    pub fn to_decimal_string(&self) -> String {
        format_minor(
            self.minor < 0,
            self.minor.unsigned_abs(),
            self.currency.exponent(),
        )
    }
}

impl fmt::Display for MoneyTotal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

fn overflow(operation: &'static str, currency: Currency) -> DomainError {
    DomainError::AmountOverflow {
        operation,
        currency,
        bits: 64,
    }
}

fn format_minor(negative: bool, magnitude: u128, exponent: u8) -> String {
    let sign = if negative { "-" } else { "" };
    if exponent == 0 {
        return format!("{sign}{magnitude}");
    }
    let scale = 10u128.pow(u32::from(exponent));
    let whole = magnitude / scale;
    let fraction = magnitude % scale;
    format!(
        "{sign}{whole}.{fraction:0width$}",
        width = usize::from(exponent)
    )
}

/// Which signs a decimal text may start with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signs {
    MinusOnly,
    PlusOrMinus,
}

/// A syntactically valid decimal, split but not yet scaled.
struct DecimalParts<'a> {
    negative: bool,
    whole: &'a str,
    fraction: &'a str,
    has_point: bool,
}

const AMOUNT_SHAPE: &str = "expected ASCII digits with an optional leading '-' and an optional '.' followed by decimals, such as \"1234.50\"";

/// Checks the shape `[sign] digits [. digits]`; decimals count and scale are
/// the caller's business.
fn split_decimal(text: &str, signs: Signs) -> Result<DecimalParts<'_>, DomainError> {
    let invalid = |detail: String| DomainError::InvalidAmount { detail };
    if text.is_empty() {
        return Err(invalid(format!("the text is empty; {AMOUNT_SHAPE}")));
    }
    if text.len() > MAX_AMOUNT_TEXT_LEN {
        return Err(invalid(format!(
            "the text is {} bytes long; expected at most {MAX_AMOUNT_TEXT_LEN}",
            text.len()
        )));
    }
    for (index, ch) in text.chars().enumerate() {
        let sign_allowed = index == 0 && (ch == '-' || (ch == '+' && signs == Signs::PlusOrMinus));
        if !(ch.is_ascii_digit() || ch == '.' || sign_allowed) {
            return Err(invalid(format!(
                "character {} is {}; {AMOUNT_SHAPE}",
                index + 1,
                describe_char(ch)
            )));
        }
    }
    // Only ASCII is left, so byte slicing below is on character boundaries.
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..).unwrap_or_default()),
        Some(b'+') => (false, text.get(1..).unwrap_or_default()),
        _ => (false, text),
    };
    let (whole, fraction, has_point) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, fraction, true),
        None => (unsigned, "", false),
    };
    if whole.is_empty() {
        let detail = if has_point {
            format!("there is no digit before the decimal point; {AMOUNT_SHAPE}")
        } else {
            format!("there is a sign but no digits; {AMOUNT_SHAPE}")
        };
        return Err(invalid(detail));
    }
    if has_point && fraction.is_empty() {
        return Err(invalid(format!(
            "there is no digit after the decimal point; {AMOUNT_SHAPE}"
        )));
    }
    if fraction.contains('.') {
        return Err(invalid(format!(
            "there is more than one decimal point; {AMOUNT_SHAPE}"
        )));
    }
    Ok(DecimalParts {
        negative,
        whole,
        fraction,
        has_point,
    })
}

impl DecimalParts<'_> {
    /// Scales to minor units. The fraction must already be at most the
    /// currency's exponent long.
    fn to_money(&self, currency: Currency) -> Result<Money, DomainError> {
        let exponent = usize::from(currency.exponent());
        let too_big = || overflow("parsing", currency);
        let mut magnitude: i128 = 0;
        for digit in self.whole.bytes().chain(self.fraction.bytes()) {
            magnitude = magnitude
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(digit - b'0')))
                .ok_or_else(too_big)?;
        }
        for _ in self.fraction.len()..exponent {
            magnitude = magnitude.checked_mul(10).ok_or_else(too_big)?;
        }
        let signed = if self.negative { -magnitude } else { magnitude };
        i64::try_from(signed)
            .map(|minor| Money::from_minor(minor, currency))
            .map_err(|_| too_big())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(text: &str) -> Result<i64, DomainError> {
        Money::parse(text, Currency::CNY).map(|m| m.minor())
    }

    fn bank(text: &str, currency: Currency) -> Result<i64, DomainError> {
        Money::parse_bank_decimal(text, currency).map(|m| m.minor())
    }

    fn code_of<T: fmt::Debug>(result: Result<T, DomainError>) -> &'static str {
        match result {
            Ok(value) => panic!("expected an error, got {value:?}"),
            Err(err) => err.code(),
        }
    }

    #[test]
    fn table_is_sorted_unique_and_well_formed() {
        for pair in CURRENCIES.windows(2) {
            assert!(pair[0].code < pair[1].code, "{} !< {}", pair[0], pair[1]);
        }
        for c in CURRENCIES {
            assert_eq!(c.code.len(), 3);
            assert!(c.code.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(c.exponent <= MAX_CURRENCY_EXPONENT);
            assert_eq!(Currency::from_code(c.code), Ok(*c));
        }
    }

    #[test]
    fn constants_match_the_table() {
        for c in [
            Currency::CNY,
            Currency::USD,
            Currency::EUR,
            Currency::HKD,
            Currency::GBP,
            Currency::JPY,
        ] {
            assert_eq!(Currency::from_code(c.code()), Ok(c));
        }
    }

    #[test]
    fn exponents_of_the_odd_ones() {
        let exp = |code: &str| Currency::from_code(code).map(|c| c.exponent());
        assert_eq!(exp("JPY"), Ok(0));
        assert_eq!(exp("KRW"), Ok(0));
        assert_eq!(exp("BHD"), Ok(3));
        assert_eq!(exp("KWD"), Ok(3));
        assert_eq!(exp("JOD"), Ok(3));
        assert_eq!(exp("TND"), Ok(3));
        assert_eq!(exp("CLF"), Ok(4));
        for code in [
            "CNY", "USD", "EUR", "HKD", "GBP", "CHF", "SGD", "AUD", "CAD",
        ] {
            assert_eq!(exp(code), Ok(2), "{code}");
        }
    }

    #[test]
    fn currency_codes_are_strict() {
        assert_eq!(code_of(Currency::from_code("cny")), "unknown_currency");
        assert_eq!(code_of(Currency::from_code(" CNY")), "unknown_currency");
        assert_eq!(code_of(Currency::from_code("XXX")), "unknown_currency");
        assert_eq!(code_of(Currency::from_code("")), "unknown_currency");
        assert_eq!(code_of(Currency::from_code("RMB")), "unknown_currency");
    }

    #[test]
    fn currency_serde_is_the_code() {
        let json = serde_json::to_string(&Currency::CNY).unwrap();
        assert_eq!(json, "\"CNY\"");
        let back: Currency = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Currency::CNY);
        assert!(serde_json::from_str::<Currency>("\"cny\"").is_err());
    }

    #[test]
    fn strict_parse_accepts_plain_decimals() {
        assert_eq!(cny("0.1"), Ok(10));
        assert_eq!(cny("1234.5"), Ok(123_450));
        assert_eq!(cny("1234.50"), Ok(123_450));
        assert_eq!(cny("0"), Ok(0));
        assert_eq!(cny("-0"), Ok(0));
        assert_eq!(cny("-0.05"), Ok(-5));
        assert_eq!(cny("007.5"), Ok(750));
        assert_eq!(
            Money::parse("1200", Currency::JPY).map(|m| m.minor()),
            Ok(1200)
        );
        let bhd = Currency::from_code("BHD").unwrap();
        assert_eq!(Money::parse("1.234", bhd).map(|m| m.minor()), Ok(1234));
    }

    #[test]
    fn strict_parse_rejects_everything_else() {
        for text in [
            "", "+1", " 1", "1 ", "1.", ".5", "-", "-.5", "1e3", "1E3", "1,000", "1_000", "1..0",
            "1.2.3", "--1", "0x10", "١", "１", "1\u{a0}", "NaN", "inf",
        ] {
            assert_eq!(code_of(cny(text)), "invalid_amount", "{text:?}");
        }
    }

    #[test]
    fn strict_parse_never_rounds() {
        assert_eq!(code_of(cny("1.000")), "too_many_decimals");
        assert_eq!(code_of(cny("1.001")), "too_many_decimals");
        assert_eq!(
            code_of(Money::parse("12.0", Currency::JPY)),
            "too_many_decimals"
        );
        let err = Money::parse("1.000", Currency::CNY).unwrap_err();
        assert_eq!(
            err.to_string(),
            "amount has 3 decimal places; CNY allows at most 2"
        );
    }

    #[test]
    fn i64_boundaries() {
        assert_eq!(cny("92233720368547758.07"), Ok(i64::MAX));
        assert_eq!(cny("-92233720368547758.08"), Ok(i64::MIN));
        assert_eq!(code_of(cny("92233720368547758.08")), "amount_overflow");
        assert_eq!(code_of(cny("-92233720368547758.09")), "amount_overflow");
        assert_eq!(
            Money::parse("9223372036854775807", Currency::JPY).map(|m| m.minor()),
            Ok(i64::MAX)
        );
        assert_eq!(
            code_of(Money::parse("9223372036854775808", Currency::JPY)),
            "amount_overflow"
        );
        // Long enough to overflow even i128, short enough to pass the length limit.
        assert_eq!(code_of(cny(&"9".repeat(60))), "amount_overflow");
        assert_eq!(code_of(cny(&"1".repeat(65))), "invalid_amount");
        // Leading zeros do not overflow.
        assert_eq!(cny(&format!("{}1", "0".repeat(60))), Ok(100));
    }

    #[test]
    fn bank_parse_follows_bank_quirks() {
        assert_eq!(bank("1234.5000", Currency::CNY), Ok(123_450));
        assert_eq!(bank("  +12.30\t", Currency::CNY), Ok(1230));
        assert_eq!(bank("-0.05", Currency::CNY), Ok(-5));
        assert_eq!(bank("1200.00", Currency::JPY), Ok(1200));
        assert_eq!(bank("1200", Currency::JPY), Ok(1200));
        assert_eq!(bank("+0", Currency::CNY), Ok(0));
        assert_eq!(
            code_of(bank("1234.5001", Currency::CNY)),
            "too_many_decimals"
        );
        assert_eq!(code_of(bank("12.5", Currency::JPY)), "too_many_decimals");
        for text in [
            "", "   ", "+", "1.", ".5", "1,000.00", "1 000", "++1", "+-1", "1e3",
        ] {
            assert_eq!(
                code_of(bank(text, Currency::CNY)),
                "invalid_amount",
                "{text:?}"
            );
        }
    }

    #[test]
    fn decimal_strings_have_exactly_the_exponent() {
        let m = |minor, c| Money::from_minor(minor, c).to_decimal_string();
        assert_eq!(m(123_450, Currency::CNY), "1234.50");
        assert_eq!(m(-5, Currency::CNY), "-0.05");
        assert_eq!(m(0, Currency::CNY), "0.00");
        assert_eq!(m(1200, Currency::JPY), "1200");
        assert_eq!(m(-1200, Currency::JPY), "-1200");
        assert_eq!(m(i64::MIN, Currency::CNY), "-92233720368547758.08");
        let clf = Currency::from_code("CLF").unwrap();
        assert_eq!(m(1, clf), "0.0001");
        assert_eq!(
            Money::from_minor(123_450, Currency::CNY).to_string(),
            "1234.50 CNY"
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::from_minor(100, Currency::CNY);
        let b = Money::from_minor(-250, Currency::CNY);
        assert_eq!(a.checked_add(b).map(|m| m.minor()), Ok(-150));
        assert_eq!(a.checked_sub(b).map(|m| m.minor()), Ok(350));
        assert_eq!(b.checked_neg().map(|m| m.minor()), Ok(250));
        let usd = Money::from_minor(1, Currency::USD);
        assert_eq!(code_of(a.checked_add(usd)), "currency_mismatch");
        assert_eq!(code_of(a.checked_sub(usd)), "currency_mismatch");
        assert_eq!(code_of(a.checked_cmp(&usd)), "currency_mismatch");
        assert_eq!(a.checked_cmp(&b), Ok(Ordering::Greater));
        let max = Money::from_minor(i64::MAX, Currency::CNY);
        assert_eq!(code_of(max.checked_add(a)), "amount_overflow");
        let min = Money::from_minor(i64::MIN, Currency::CNY);
        assert_eq!(code_of(min.checked_sub(a)), "amount_overflow");
        assert_eq!(code_of(min.checked_neg()), "amount_overflow");
    }

    #[test]
    fn totals_go_beyond_i64() {
        let mut total = MoneyTotal::zero(Currency::CNY);
        let max = Money::from_minor(i64::MAX, Currency::CNY);
        total.add(max).unwrap();
        total.add(max).unwrap();
        assert_eq!(total.minor(), 2 * i128::from(i64::MAX));
        assert_eq!(total.to_decimal_string(), "184467440737095516.14");
        assert_eq!(code_of(total.to_money()), "amount_overflow");
        assert_eq!(
            code_of(total.add(Money::from_minor(1, Currency::USD))),
            "currency_mismatch"
        );
        let mut small = MoneyTotal::zero(Currency::JPY);
        small.add(Money::from_minor(-7, Currency::JPY)).unwrap();
        assert_eq!(small.to_money(), Ok(Money::from_minor(-7, Currency::JPY)));
        assert_eq!(small.to_string(), "-7 JPY");
    }
}
