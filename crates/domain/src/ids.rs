//! Validated identifiers: once constructed, an identifier is known to be well
//! formed, so raw strings never cross module boundaries.
//!
//! Layout:
//! - bank-standard identifiers: [`Iban`], [`Bic`], [`CnapsCode`],
//!   [`AccountNumber`];
//! - our own references: [`PaymentId`] (generated), [`BankReference`] (sent to
//!   the bank), [`EndToEndId`] (the client's);
//! - configuration slugs: [`BankId`], [`ConnectionId`], [`AccountId`],
//!   [`ClientId`], [`UserId`], all made by one macro.
//!
//! Every type has `parse(&str)`, `as_str()`, `Display` (the full text, as sent
//! on the wire), `FromStr`, and serde as a string that deserializes through
//! `parse`. Account numbers and IBANs print masked through `Debug`, so a
//! struct holding one can be logged with `{:?}`; their error messages never
//! contain the number.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::RandomSource;
use crate::error::{describe_char, DomainError};

/// Longest IBAN text accepted before spaces are stripped: 34 characters in
/// groups of four need 8 spaces; the rest is slack for sloppy grouping.
pub const MAX_IBAN_INPUT_LEN: usize = 64;
/// Longest IBAN in the registry (ISO 13616).
pub const MAX_IBAN_LEN: usize = 34;
/// Longest account number, the same as ISO 20022's `Max34Text` for `Othr/Id`.
pub const MAX_ACCOUNT_NUMBER_LEN: usize = 34;
/// Shortest and longest Chinese bank account number.
pub const CN_ACCOUNT_NUMBER_LEN_MIN: usize = 10;
pub const CN_ACCOUNT_NUMBER_LEN_MAX: usize = 25;
/// Longest business reference, ISO 20022's `Max35Text`.
pub const MAX_BANK_REFERENCE_LEN: usize = 35;
/// Longest end-to-end id, ISO 20022's `Max35Text`.
pub const MAX_END_TO_END_ID_LEN: usize = 35;
/// Longest configuration slug.
pub const MAX_SLUG_LEN: usize = 64;

/// Implements the string plumbing shared by every identifier: `as_str`,
/// `Display`, `FromStr`, `AsRef<str>` and the conversions serde uses.
macro_rules! string_id_impls {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}
pub(crate) use string_id_impls;

/// Replaces all but the last four characters with '*'. Four or fewer
/// characters are masked entirely: showing "the last four" of a four-character
/// number would show all of it.
fn mask_all_but_last_four(text: &str) -> String {
    const VISIBLE: usize = 4;
    let count = text.chars().count();
    if count <= VISIBLE {
        return "*".repeat(count);
    }
    text.chars()
        .enumerate()
        .map(|(index, ch)| if index < count - VISIBLE { '*' } else { ch })
        .collect()
}

// ---------------------------------------------------------------------------
// IBAN

/// IBAN lengths per country from the SWIFT IBAN registry, sorted by country
/// (binary-searched; a test checks the order).
static IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HN", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

fn iban_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS
        .binary_search_by(|(c, _)| (*c).cmp(country))
        .ok()
        .and_then(|index| IBAN_LENGTHS.get(index))
        .map(|(_, len)| *len)
}

/// ISO 7064 MOD 97-10 over an upper-case alphanumeric string whose first
/// four characters (country and check digits) are moved to the end; letters
/// count as 10..=35. Works digit by digit, so no big integers are needed.
fn iban_mod97(electronic: &str) -> u32 {
    let (head, tail) = electronic.split_at(4.min(electronic.len()));
    tail.chars().chain(head.chars()).fold(0u32, |rem, ch| {
        match ch.to_digit(36) {
            Some(value) if value < 10 => (rem * 10 + value) % 97,
            Some(value) => (rem * 100 + value) % 97,
            // Callers only pass ASCII alphanumerics; anything else cannot
            // make a valid IBAN, and 0 is never a valid remainder.
            None => 0,
        }
    })
}

/// An International Bank Account Number in electronic form (no spaces,
/// upper case), checked for its country's length and the mod-97 check digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iban(String);

impl Iban {
    /// Accepts the electronic or the print form ("DE89 3704 ..."): spaces are
    /// stripped and letters upper-cased. The country must be in the IBAN
    /// registry, the length must be that country's, and the check digits must
    /// verify. The BBAN's national structure is not checked.
    pub fn parse(text: &str) -> Result<Iban, DomainError> {
        let invalid = |detail: String| DomainError::InvalidIban { detail };
        if text.len() > MAX_IBAN_INPUT_LEN {
            return Err(invalid(format!(
                "the text is {} bytes long; expected at most {MAX_IBAN_INPUT_LEN} (at most {MAX_IBAN_LEN} characters plus grouping spaces)",
                text.len()
            )));
        }
        let mut electronic = String::with_capacity(MAX_IBAN_LEN);
        for (index, ch) in text.chars().enumerate() {
            if ch == ' ' {
                continue;
            }
            if !ch.is_ascii_alphanumeric() {
                return Err(invalid(format!(
                    "character {} is not an ASCII letter or digit; expected letters, digits and grouping spaces only",
                    index + 1
                )));
            }
            electronic.push(ch.to_ascii_uppercase());
        }
        Self::check_electronic(&electronic)?;
        Ok(Iban(electronic))
    }

    /// Builds an IBAN from a country code and a BBAN by computing the check
    /// digits (for simulators and test data). Fails like [`Iban::parse`] if
    /// the country is not in the registry or the length is wrong.
    pub fn from_parts(country: &str, bban: &str) -> Result<Iban, DomainError> {
        let invalid = |detail: String| DomainError::InvalidIban { detail };
        if !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(invalid(
                "the country code is not two upper-case letters; expected an ISO 3166 code such as DE"
                    .to_owned(),
            ));
        }
        if bban.len() > MAX_IBAN_LEN || !bban.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(format!(
                "the BBAN is not at most {MAX_IBAN_LEN} ASCII letters and digits"
            )));
        }
        let bban = bban.to_ascii_uppercase();
        let remainder = iban_mod97(&format!("{country}00{bban}"));
        let check = 98 - remainder;
        Iban::parse(&format!("{country}{check:02}{bban}"))
    }

    fn check_electronic(electronic: &str) -> Result<(), DomainError> {
        let invalid = |detail: String| DomainError::InvalidIban { detail };
        let bytes = electronic.as_bytes();
        let (Some(country), Some(check_digits)) = (electronic.get(..2), electronic.get(2..4))
        else {
            return Err(invalid(format!(
                "it has {} characters; expected a country code, two check digits and the account part",
                electronic.len()
            )));
        };
        if !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "it does not start with a two-letter country code; expected e.g. DE or FR"
                    .to_owned(),
            ));
        }
        if !check_digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "characters 3 and 4 are not check digits; expected two digits after the country code"
                    .to_owned(),
            ));
        }
        let Some(expected_len) = iban_length(country) else {
            return Err(invalid(format!(
                "country code {country} is not in the IBAN registry; expected a country that uses IBANs"
            )));
        };
        if bytes.len() != expected_len {
            return Err(invalid(format!(
                "it has {} characters; {country} IBANs have {expected_len}",
                bytes.len()
            )));
        }
        if matches!(check_digits, "00" | "01" | "99") {
            return Err(invalid(format!(
                "check digits {check_digits} are never issued; expected 02 to 98"
            )));
        }
        if iban_mod97(electronic) != 1 {
            return Err(invalid(
                "the check digits do not match the rest (mod-97 check failed); expected a correctly typed IBAN"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// The ISO 3166 country code, e.g. "DE".
    pub fn country(&self) -> &str {
        self.0.get(..2).unwrap_or_default()
    }

    pub fn check_digits(&self) -> &str {
        self.0.get(2..4).unwrap_or_default()
    }

    /// The national account part after the check digits.
    pub fn bban(&self) -> &str {
        self.0.get(4..).unwrap_or_default()
    }

    /// Groups of four separated by spaces, as printed for people.
    pub fn to_print_form(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + self.0.len() / 4);
        for (index, ch) in self.0.chars().enumerate() {
            if index > 0 && index % 4 == 0 {
                out.push(' ');
            }
            out.push(ch);
        }
        out
    }

    /// All but the last four characters as '*', for logs.
    pub fn masked(&self) -> String {
        mask_all_but_last_four(&self.0)
    }
}

string_id_impls!(Iban);

impl fmt::Debug for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Iban").field(&self.masked()).finish()
    }
}

// ---------------------------------------------------------------------------
// BIC

/// A Business Identifier Code (ISO 9362), stored upper-case: 4 letters
/// (institution), 2 letters (country), 2 letters or digits (location) and an
/// optional 3 letters or digits (branch). An 8-character BIC and the same BIC
/// with "XXX" are different values here; compare with [`Bic::to_bic11`] when
/// they must be the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bic(String);

impl Bic {
    /// Lower-case input is accepted and upper-cased; nothing else is
    /// normalised (no trimming, no spaces).
    pub fn parse(text: &str) -> Result<Bic, DomainError> {
        let invalid = |detail: String| DomainError::InvalidBic { detail };
        const SHAPE: &str = "expected 4 letters (institution), 2 letters (country), 2 letters or digits (location) and optionally 3 letters or digits (branch)";
        if let Some((index, ch)) = text
            .chars()
            .enumerate()
            .find(|(_, ch)| !ch.is_ascii_alphanumeric())
        {
            return Err(invalid(format!(
                "character {} is {}; {SHAPE}",
                index + 1,
                describe_char(ch)
            )));
        }
        if text.len() != 8 && text.len() != 11 {
            return Err(invalid(format!(
                "it has {} characters; expected 8 or 11",
                text.len()
            )));
        }
        let upper = text.to_ascii_uppercase();
        let letters = |range: std::ops::Range<usize>| {
            upper
                .get(range)
                .is_some_and(|part| part.bytes().all(|b| b.is_ascii_uppercase()))
        };
        if !letters(0..4) {
            return Err(invalid(format!(
                "the institution code (characters 1-4) is not all letters; {SHAPE}"
            )));
        }
        if !letters(4..6) {
            return Err(invalid(format!(
                "the country code (characters 5-6) is not all letters; {SHAPE}"
            )));
        }
        // Location and branch are alphanumeric, which the first loop checked.
        Ok(Bic(upper))
    }

    pub fn institution(&self) -> &str {
        self.0.get(..4).unwrap_or_default()
    }

    pub fn country(&self) -> &str {
        self.0.get(4..6).unwrap_or_default()
    }

    pub fn location(&self) -> &str {
        self.0.get(6..8).unwrap_or_default()
    }

    /// The branch code of an 11-character BIC.
    pub fn branch(&self) -> Option<&str> {
        self.0.get(8..11)
    }

    /// The 11-character form: an 8-character BIC means the primary office,
    /// which is branch "XXX".
    pub fn to_bic11(&self) -> Bic {
        match self.branch() {
            Some(_) => self.clone(),
            None => Bic(format!("{}XXX", self.0)),
        }
    }
}

string_id_impls!(Bic);

// ---------------------------------------------------------------------------
// CNAPS

/// A CNAPS bank code (中国现代化支付系统行号): exactly 12 ASCII digits.
/// Its internal structure and check digit are not verified: the People's
/// Bank directory, not arithmetic, decides which codes exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CnapsCode(String);

impl CnapsCode {
    pub const LEN: usize = 12;

    pub fn parse(text: &str) -> Result<CnapsCode, DomainError> {
        let invalid = |detail: String| DomainError::InvalidCnapsCode { detail };
        if let Some((index, ch)) = text
            .chars()
            .enumerate()
            .find(|(_, ch)| !ch.is_ascii_digit())
        {
            return Err(invalid(format!(
                "character {} is {}; expected exactly {} ASCII digits",
                index + 1,
                describe_char(ch),
                Self::LEN
            )));
        }
        if text.len() != Self::LEN {
            return Err(invalid(format!(
                "it has {} digits; expected exactly {}",
                text.len(),
                Self::LEN
            )));
        }
        Ok(CnapsCode(text.to_owned()))
    }
}

string_id_impls!(CnapsCode);

// ---------------------------------------------------------------------------
// Account number

/// A bank account number as the bank writes it: 1..=34 ASCII letters, digits
/// and '-'. `Debug` prints it masked; `Display` and `as_str` give the full
/// number for the wire and the API.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountNumber(String);

impl AccountNumber {
    pub fn parse(text: &str) -> Result<AccountNumber, DomainError> {
        let invalid = |detail: String| DomainError::InvalidAccountNumber { detail };
        if text.is_empty() {
            return Err(invalid(format!(
                "it is empty; expected 1 to {MAX_ACCOUNT_NUMBER_LEN} ASCII letters, digits and '-'"
            )));
        }
        // The character itself is not named: it could be part of the number.
        if let Some(index) = text
            .chars()
            .position(|ch| !(ch.is_ascii_alphanumeric() || ch == '-'))
        {
            return Err(invalid(format!(
                "character {} is not an ASCII letter, digit or '-'; expected only those",
                index + 1
            )));
        }
        if text.len() > MAX_ACCOUNT_NUMBER_LEN {
            return Err(invalid(format!(
                "it has {} characters; expected at most {MAX_ACCOUNT_NUMBER_LEN}",
                text.len()
            )));
        }
        Ok(AccountNumber(text.to_owned()))
    }

    /// The stricter form of a mainland Chinese account number: 10 to 25
    /// ASCII digits.
    pub fn parse_cn(text: &str) -> Result<AccountNumber, DomainError> {
        let invalid = |detail: String| DomainError::InvalidAccountNumber { detail };
        if let Some(index) = text.chars().position(|ch| !ch.is_ascii_digit()) {
            return Err(invalid(format!(
                "character {} is not a digit; expected a Chinese account number of {CN_ACCOUNT_NUMBER_LEN_MIN} to {CN_ACCOUNT_NUMBER_LEN_MAX} digits",
                index + 1
            )));
        }
        if !(CN_ACCOUNT_NUMBER_LEN_MIN..=CN_ACCOUNT_NUMBER_LEN_MAX).contains(&text.len()) {
            return Err(invalid(format!(
                "it has {} digits; expected a Chinese account number of {CN_ACCOUNT_NUMBER_LEN_MIN} to {CN_ACCOUNT_NUMBER_LEN_MAX} digits",
                text.len()
            )));
        }
        Ok(AccountNumber(text.to_owned()))
    }

    /// All but the last four characters as '*' (all of them when the number
    /// has four characters or fewer), for logs and error messages.
    pub fn masked(&self) -> String {
        mask_all_but_last_four(&self.0)
    }
}

string_id_impls!(AccountNumber);

impl fmt::Debug for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AccountNumber")
            .field(&self.masked())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Payment id

const PAYMENT_ID_PREFIX: &str = "pay_";
/// Characters after the prefix of a random id: 26 × 5 bits cover 128 bits.
const RANDOM_ID_BODY_LEN: usize = 26;
/// Crockford's base32 alphabet: no I, L, O or U, so ids survive being read
/// aloud or retyped.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Membership of [`CROCKFORD`] by table: ids are checked on every read of a
/// stored entry, so this is on the hot path of transaction pages.
const CROCKFORD_TABLE: [bool; 128] = {
    let mut table = [false; 128];
    let mut i = 0;
    while i < CROCKFORD.len() {
        table[CROCKFORD[i] as usize] = true;
        i += 1;
    }
    table
};

fn is_crockford(ch: char) -> bool {
    ch.is_ascii() && CROCKFORD_TABLE[ch as usize]
}

/// Checks a random id: `prefix` and 26 upper-case Crockford base32
/// characters. `kind` names the id in the error ("payment id").
pub(crate) fn check_random_id(
    text: &str,
    prefix: &str,
    kind: &'static str,
) -> Result<(), DomainError> {
    let invalid = |detail: String| DomainError::InvalidIdentifier { kind, detail };
    let Some(body) = text.strip_prefix(prefix) else {
        return Err(invalid(format!(
            "it does not start with \"{prefix}\"; expected \"{prefix}\" and {RANDOM_ID_BODY_LEN} Crockford base32 characters"
        )));
    };
    if let Some((index, ch)) = body.chars().enumerate().find(|(_, ch)| !is_crockford(*ch)) {
        return Err(invalid(format!(
            "character {} is {}; expected upper-case Crockford base32 (0-9 and A-Z without I, L, O, U)",
            index + 1 + prefix.len(),
            describe_char(ch)
        )));
    }
    if body.len() != RANDOM_ID_BODY_LEN {
        return Err(invalid(format!(
            "it has {} characters after \"{prefix}\"; expected {RANDOM_ID_BODY_LEN}",
            body.len()
        )));
    }
    Ok(())
}

/// A new random id: `prefix` and 128 bits of `rng` in Crockford base32.
pub(crate) fn generate_random_id(prefix: &str, rng: &dyn RandomSource) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    encode_id(prefix, u128::from_be_bytes(bytes))
}

/// Milliseconds a time-ordered id can carry (48 bits: until the year 10889).
const ID_TIME_MAX_MS: u64 = (1 << 48) - 1;

/// A new time-ordered id: `prefix`, then the instant's milliseconds since 1970 in 48 bits
/// (the first 10 characters) and 80 bits of `rng` (the other 16): the layout of a ULID.
/// Ids made later sort later, so a database index over them grows at its end rather than
/// at random pages; 80 random bits per millisecond keep them unique.
pub(crate) fn generate_time_ordered_id(
    prefix: &str,
    at: chrono::DateTime<chrono::Utc>,
    rng: &dyn RandomSource,
) -> String {
    let ms = u64::try_from(at.timestamp_millis())
        .unwrap_or(0)
        .min(ID_TIME_MAX_MS);
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes[6..]);
    let random = u128::from_be_bytes(bytes);
    encode_id(prefix, (u128::from(ms) << 80) | random)
}

/// `prefix` and `value` as 26 Crockford base32 characters, most significant first.
fn encode_id(prefix: &str, value: u128) -> String {
    let mut text = String::with_capacity(prefix.len() + RANDOM_ID_BODY_LEN);
    text.push_str(prefix);
    // 26 groups of 5 bits cover 130 bits; the top group holds the top 3.
    for group in (0..RANDOM_ID_BODY_LEN).rev() {
        let index = ((value >> (group * 5)) & 0x1f) as usize;
        text.push(char::from(CROCKFORD[index]));
    }
    text
}

/// Length of a random id after its prefix.
pub(crate) const fn random_id_len(prefix: &str) -> usize {
    prefix.len() + RANDOM_ID_BODY_LEN
}

/// Our id of a payment: "pay_" and 26 upper-case Crockford base32 characters
/// (128 random bits when generated).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PaymentId(String);

impl PaymentId {
    pub fn parse(text: &str) -> Result<PaymentId, DomainError> {
        check_random_id(text, PAYMENT_ID_PREFIX, "payment id")?;
        Ok(PaymentId(text.to_owned()))
    }

    /// A new id from 128 bits of `rng`.
    pub fn generate(rng: &dyn RandomSource) -> PaymentId {
        PaymentId(generate_random_id(PAYMENT_ID_PREFIX, rng))
    }

    /// A new id made at `at`: its milliseconds, then 80 bits of `rng` (see
    /// [`generate_time_ordered_id`]). What the gateway gives new payments, so that the
    /// indexes over payment ids grow at their end.
    pub fn generate_at(at: chrono::DateTime<chrono::Utc>, rng: &dyn RandomSource) -> PaymentId {
        PaymentId(generate_time_ordered_id(PAYMENT_ID_PREFIX, at, rng))
    }
}

string_id_impls!(PaymentId);

const BATCH_ID_PREFIX: &str = "bat_";
const BATCH_ITEM_ID_PREFIX: &str = "itm_";

/// Our id of a payment batch: "bat_" and 26 upper-case Crockford base32
/// characters (128 random bits when generated).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BatchId(String);

impl BatchId {
    pub fn parse(text: &str) -> Result<BatchId, DomainError> {
        check_random_id(text, BATCH_ID_PREFIX, "batch id")?;
        Ok(BatchId(text.to_owned()))
    }

    pub fn generate(rng: &dyn RandomSource) -> BatchId {
        BatchId(generate_random_id(BATCH_ID_PREFIX, rng))
    }
}

string_id_impls!(BatchId);

/// Our id of one item of a payment batch: "itm_" and 26 upper-case
/// Crockford base32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BatchItemId(String);

impl BatchItemId {
    pub fn parse(text: &str) -> Result<BatchItemId, DomainError> {
        check_random_id(text, BATCH_ITEM_ID_PREFIX, "batch item id")?;
        Ok(BatchItemId(text.to_owned()))
    }

    pub fn generate(rng: &dyn RandomSource) -> BatchItemId {
        BatchItemId(generate_random_id(BATCH_ITEM_ID_PREFIX, rng))
    }
}

string_id_impls!(BatchItemId);

// ---------------------------------------------------------------------------
// References

/// Our business reference sent to the bank (CMB YURREF, ICBC fSeqno,
/// pain.001 EndToEndId): 1..=35 ASCII letters, digits and '-'. A bank family
/// may allow less; that is checked where the reference is generated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BankReference(String);

impl BankReference {
    pub fn parse(text: &str) -> Result<BankReference, DomainError> {
        const EXPECTED: &str = "expected 1 to 35 ASCII letters, digits and '-'";
        let invalid = |detail: String| DomainError::InvalidIdentifier {
            kind: "bank reference",
            detail,
        };
        if text.is_empty() {
            return Err(invalid(format!("it is empty; {EXPECTED}")));
        }
        if let Some((index, ch)) = text
            .chars()
            .enumerate()
            .find(|(_, ch)| !(ch.is_ascii_alphanumeric() || *ch == '-'))
        {
            return Err(invalid(format!(
                "character {} is {}; {EXPECTED}",
                index + 1,
                describe_char(ch)
            )));
        }
        if text.len() > MAX_BANK_REFERENCE_LEN {
            return Err(invalid(format!(
                "it has {} characters; {EXPECTED}",
                text.len()
            )));
        }
        Ok(BankReference(text.to_owned()))
    }
}

string_id_impls!(BankReference);

/// The client's end-to-end id of a payment: 1..=35 printable ASCII
/// characters, no leading or trailing space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndToEndId(String);

impl EndToEndId {
    pub fn parse(text: &str) -> Result<EndToEndId, DomainError> {
        const EXPECTED: &str =
            "expected 1 to 35 printable ASCII characters without leading or trailing spaces";
        let invalid = |detail: String| DomainError::InvalidIdentifier {
            kind: "end-to-end id",
            detail,
        };
        if text.is_empty() {
            return Err(invalid(format!("it is empty; {EXPECTED}")));
        }
        if let Some((index, ch)) = text
            .chars()
            .enumerate()
            .find(|(_, ch)| !(' '..='~').contains(ch))
        {
            return Err(invalid(format!(
                "character {} is {}; {EXPECTED}",
                index + 1,
                describe_char(ch)
            )));
        }
        if text.len() > MAX_END_TO_END_ID_LEN {
            return Err(invalid(format!(
                "it has {} characters; {EXPECTED}",
                text.len()
            )));
        }
        if text.starts_with(' ') || text.ends_with(' ') {
            return Err(invalid(format!(
                "it starts or ends with a space; {EXPECTED}"
            )));
        }
        Ok(EndToEndId(text.to_owned()))
    }
}

string_id_impls!(EndToEndId);

// ---------------------------------------------------------------------------
// Configuration slugs

fn check_slug(text: &str, kind: &'static str) -> Result<(), DomainError> {
    const EXPECTED: &str =
        "expected 1 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit";
    let invalid = |detail: String| DomainError::InvalidIdentifier { kind, detail };
    if text.is_empty() {
        return Err(invalid(format!("it is empty; {EXPECTED}")));
    }
    if let Some((index, ch)) = text.chars().enumerate().find(|(_, ch)| {
        !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || *ch == '_' || *ch == '-')
    }) {
        return Err(invalid(format!(
            "character {} is {}; {EXPECTED}",
            index + 1,
            describe_char(ch)
        )));
    }
    if text.len() > MAX_SLUG_LEN {
        return Err(invalid(format!(
            "it has {} characters; {EXPECTED}",
            text.len()
        )));
    }
    if text.starts_with(['_', '-']) {
        return Err(invalid(format!(
            "it starts with '{}'; {EXPECTED}",
            text.get(..1).unwrap_or_default()
        )));
    }
    Ok(())
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// 1..=64 characters of `[a-z0-9_-]`, starting with a letter or digit.
            pub fn parse(text: &str) -> Result<$name, DomainError> {
                check_slug(text, $kind)?;
                Ok($name(text.to_owned()))
            }
        }

        string_id_impls!($name);
    };
}

slug_id!(
    /// A configured bank, e.g. "cmb".
    BankId,
    "bank id"
);
slug_id!(
    /// A configured connection to a bank (one per legal entity and channel).
    ConnectionId,
    "connection id"
);
slug_id!(
    /// A configured account (a connection plus an account number).
    AccountId,
    "account id"
);
slug_id!(
    /// A machine client of the enterprise-facing API.
    ClientId,
    "client id"
);
slug_id!(
    /// A person using the console.
    UserId,
    "user id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededRandom;

    fn code_of<T: fmt::Debug>(result: Result<T, DomainError>) -> &'static str {
        match result {
            Ok(value) => panic!("expected an error, got {value:?}"),
            Err(err) => err.code(),
        }
    }

    #[test]
    fn iban_table_is_sorted() {
        for pair in IBAN_LENGTHS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?}", pair);
        }
        for (country, len) in IBAN_LENGTHS {
            assert!((15..=MAX_IBAN_LEN).contains(len), "{country}");
        }
    }

    #[test]
    fn well_known_ibans_parse() {
        for text in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "de89 3704 0044 0532 0130 00",
            "GB29NWBK60161331926819",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "BE68539007547034",
            "CH9300762011623852957",
            "NO9386011117947",
        ] {
            let iban = Iban::parse(text).unwrap();
            assert!(iban.as_str().bytes().all(|b| b != b' '));
        }
        let iban = Iban::parse("DE89 3704 0044 0532 0130 00").unwrap();
        assert_eq!(iban.as_str(), "DE89370400440532013000");
        assert_eq!(iban.country(), "DE");
        assert_eq!(iban.check_digits(), "89");
        assert_eq!(iban.bban(), "370400440532013000");
        assert_eq!(iban.to_print_form(), "DE89 3704 0044 0532 0130 00");
        assert_eq!(format!("{iban:?}"), "Iban(\"******************3000\")");
    }

    #[test]
    fn bad_ibans_fail_without_echoing_the_number() {
        for text in [
            "",
            "DE",
            "DE8937040044053201300",   // one short
            "DE893704004405320130000", // one long
            "DE88370400440532013000",  // wrong check digits
            "XX89370400440532013000",  // unknown country
            "1E89370400440532013000",
            "DEAB370400440532013000",
            "DE89-3704-0044-0532-0130-00",
            "DE89370400440532013000\u{0}",
        ] {
            let err = Iban::parse(text).unwrap_err();
            assert_eq!(err.code(), "invalid_iban", "{text:?}");
            assert!(!err.to_string().contains("0532013"), "{err}");
        }
        let err = Iban::parse("DE8937040044053201300").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid IBAN: it has 21 characters; DE IBANs have 22"
        );
    }

    #[test]
    fn check_digits_never_issued_are_refused() {
        // 98 - (n mod 97) is never 0, 1 or 99, so these must fail even where
        // the remainder would come out as 1.
        assert_eq!(
            code_of(Iban::parse("DE00370400440532013000")),
            "invalid_iban"
        );
        assert_eq!(
            code_of(Iban::parse("DE99370400440532013000")),
            "invalid_iban"
        );
    }

    #[test]
    fn from_parts_computes_check_digits() {
        let iban = Iban::from_parts("DE", "370400440532013000").unwrap();
        assert_eq!(iban.as_str(), "DE89370400440532013000");
        let iban = Iban::from_parts("GB", "nwbk60161331926819").unwrap();
        assert_eq!(iban.as_str(), "GB29NWBK60161331926819");
        assert_eq!(code_of(Iban::from_parts("DE", "1234")), "invalid_iban");
        assert_eq!(
            code_of(Iban::from_parts("de", "370400440532013000")),
            "invalid_iban"
        );
    }

    #[test]
    fn iban_serde_round_trip() {
        let iban = Iban::parse("GB29NWBK60161331926819").unwrap();
        let json = serde_json::to_string(&iban).unwrap();
        assert_eq!(json, "\"GB29NWBK60161331926819\"");
        assert_eq!(serde_json::from_str::<Iban>(&json).unwrap(), iban);
        assert!(serde_json::from_str::<Iban>("\"GB28NWBK60161331926819\"").is_err());
    }

    #[test]
    fn bics() {
        let bic = Bic::parse("deutdeff").unwrap();
        assert_eq!(bic.as_str(), "DEUTDEFF");
        assert_eq!(bic.institution(), "DEUT");
        assert_eq!(bic.country(), "DE");
        assert_eq!(bic.location(), "FF");
        assert_eq!(bic.branch(), None);
        assert_eq!(bic.to_bic11().as_str(), "DEUTDEFFXXX");
        let bic = Bic::parse("ICBKCNBJ400").unwrap();
        assert_eq!(bic.branch(), Some("400"));
        assert_eq!(bic.to_bic11(), bic);
        for text in [
            "",
            "DEUTDEF",
            "DEUTDEFF1",
            "DEUTDEFF12",
            "DEUTDEFF1234",
            "DEU1DEFF",
            "DEUTD1FF",
            "DEUT DEFF",
            "DEUTDEFF-XX",
            "DEUTDEFFÄ",
        ] {
            assert_eq!(code_of(Bic::parse(text)), "invalid_bic", "{text:?}");
        }
    }

    #[test]
    fn cnaps_codes() {
        assert_eq!(
            CnapsCode::parse("102100099996").unwrap().as_str(),
            "102100099996"
        );
        for text in [
            "",
            "10210009999",
            "1021000999961",
            "10210009999A",
            "１02100099996",
        ] {
            assert_eq!(
                code_of(CnapsCode::parse(text)),
                "invalid_cnaps_code",
                "{text:?}"
            );
        }
    }

    #[test]
    fn account_numbers_are_masked_in_debug_only() {
        let number = AccountNumber::parse("6222021234567890123").unwrap();
        assert_eq!(number.to_string(), "6222021234567890123");
        assert_eq!(number.masked(), "***************0123");
        assert_eq!(
            format!("{number:?}"),
            "AccountNumber(\"***************0123\")"
        );
        assert_eq!(AccountNumber::parse("1234").unwrap().masked(), "****");
        assert_eq!(
            AccountNumber::parse("GB-12345").unwrap().masked(),
            "****2345"
        );
    }

    #[test]
    fn account_number_errors_never_show_the_number() {
        for text in [
            "",
            "62220212345 67890123",
            "6222021234567890123/",
            &"1".repeat(35),
        ] {
            let err = AccountNumber::parse(text).unwrap_err();
            assert_eq!(err.code(), "invalid_account_number");
            assert!(!err.to_string().contains("62220212345"), "{err}");
        }
        assert!(AccountNumber::parse(&"1".repeat(34)).is_ok());
    }

    #[test]
    fn chinese_account_numbers() {
        assert!(AccountNumber::parse_cn("6222021234").is_ok());
        assert!(AccountNumber::parse_cn(&"6".repeat(25)).is_ok());
        for text in [
            "622202123",
            &"6".repeat(26),
            "62220212345-67890",
            "6222O21234",
        ] {
            assert_eq!(
                code_of(AccountNumber::parse_cn(text)),
                "invalid_account_number",
                "{text:?}"
            );
        }
    }

    #[test]
    fn payment_ids_are_generated_reproducibly_and_parse() {
        let first = PaymentId::generate(&SeededRandom::new(7));
        let again = PaymentId::generate(&SeededRandom::new(7));
        let other = PaymentId::generate(&SeededRandom::new(8));
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert_eq!(first.as_str().len(), 30);
        assert_eq!(PaymentId::parse(first.as_str()), Ok(first.clone()));
        // 128 bits in 130: the first character carries 3 bits.
        let top = first.as_str().as_bytes()[4];
        assert!((b'0'..=b'7').contains(&top));
    }

    #[test]
    fn time_ordered_payment_ids_sort_by_their_instant_and_parse() {
        use chrono::TimeZone;
        let at = |ms: i64| chrono::Utc.timestamp_millis_opt(ms).single().unwrap();
        let rng = SeededRandom::new(7);
        // 2026-11-29T08:00:00Z, then one millisecond later, then a year later.
        let t0 = 1_795_939_200_000;
        let ids: Vec<PaymentId> = [t0, t0, t0 + 1, t0 + 365 * 86_400_000]
            .iter()
            .map(|ms| PaymentId::generate_at(at(*ms), &rng))
            .collect();
        for id in &ids {
            assert_eq!(PaymentId::parse(id.as_str()), Ok(id.clone()));
        }
        // The same millisecond: one time part, two random parts.
        assert_eq!(ids[0].as_str()[..14], ids[1].as_str()[..14]);
        assert_ne!(ids[0], ids[1]);
        // Later instants sort after, whatever the random part.
        assert!(ids[0].clone().max(ids[1].clone()) < ids[2]);
        assert!(ids[2] < ids[3]);
        // The time part is the milliseconds in 10 Crockford characters.
        let ms = ids[0].as_str()[4..14]
            .bytes()
            .map(|b| CROCKFORD.iter().position(|c| *c == b).unwrap() as u64)
            .fold(0u64, |acc, d| acc * 32 + d);
        assert_eq!(ms, t0 as u64);
        // Before 1970 counts as 1970; the random part stays.
        let early = PaymentId::generate_at(at(-5), &rng);
        assert_eq!(&early.as_str()[4..14], "0000000000");
    }

    #[test]
    fn payment_id_of_all_ones_is_the_largest() {
        #[derive(Debug)]
        struct Ones;
        impl RandomSource for Ones {
            fn fill_bytes(&self, buf: &mut [u8]) {
                buf.fill(0xff);
            }
        }
        let id = PaymentId::generate(&Ones);
        assert_eq!(id.as_str(), "pay_7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    }

    #[test]
    fn bad_payment_ids() {
        for text in [
            "",
            "pay_",
            "PAY_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "pay_01arz3ndektsv4rrffq69g5fav",
            "pay_01ARZ3NDEKTSV4RRFFQ69G5FA",
            "pay_01ARZ3NDEKTSV4RRFFQ69G5FAVV",
            "pay_01ARZ3NDEKTSV4RRFFQ69G5FAI",
            "pay_01ARZ3NDEKTSV4RRFFQ69G5FAÜ",
        ] {
            assert_eq!(
                code_of(PaymentId::parse(text)),
                "invalid_identifier",
                "{text:?}"
            );
        }
        assert!(PaymentId::parse("pay_01ARZ3NDEKTSV4RRFFQ69G5FAV").is_ok());
    }

    #[test]
    fn bank_references() {
        assert!(BankReference::parse("BD-20261128-0001").is_ok());
        assert!(BankReference::parse(&"A".repeat(35)).is_ok());
        for text in ["", &"A".repeat(36), "BD 1", "BD_1", "参考号"] {
            assert_eq!(
                code_of(BankReference::parse(text)),
                "invalid_identifier",
                "{text:?}"
            );
        }
    }

    #[test]
    fn end_to_end_ids() {
        assert!(EndToEndId::parse("INV 2026/11 #42").is_ok());
        assert!(EndToEndId::parse("NOTPROVIDED").is_ok());
        assert!(EndToEndId::parse(&"~".repeat(35)).is_ok());
        for text in ["", " a", "a ", "a\tb", "a\nb", "é", &"a".repeat(36)] {
            assert_eq!(
                code_of(EndToEndId::parse(text)),
                "invalid_identifier",
                "{text:?}"
            );
        }
    }

    #[test]
    fn slugs() {
        assert!(BankId::parse("cmb").is_ok());
        assert!(ConnectionId::parse("cmb-shanghai_01").is_ok());
        assert!(AccountId::parse("0main").is_ok());
        assert!(ClientId::parse(&"a".repeat(64)).is_ok());
        for text in [
            "",
            "-cmb",
            "_cmb",
            "CMB",
            "cmb bank",
            "cmb.sh",
            &"a".repeat(65),
        ] {
            assert_eq!(
                code_of(UserId::parse(text)),
                "invalid_identifier",
                "{text:?}"
            );
        }
        let err = BankId::parse("CMB").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid bank id: character 1 is 'C'; expected 1 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
        );
    }
}
