//! Property tests of the domain parsers: round-trips, agreement between the
//! strict and the bank parser, checked arithmetic against `i128`, and IBAN
//! check digits computed independently of the crate's own code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{
    AccountId, BankId, BusinessDate, ClientId, ConnectionId, Currency, Iban, Money, MoneyTotal,
    UserId,
};
use proptest::prelude::*;

fn currency() -> impl Strategy<Value = Currency> {
    proptest::sample::select(Currency::all().to_vec())
}

/// Any i64, with the edges (where overflow happens) over-represented.
fn minor() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(0i64),
        (i64::MAX - 1_000)..=i64::MAX,
        i64::MIN..=(i64::MIN + 1_000),
        -1_000_000i64..1_000_000,
    ]
}

proptest! {
    #[test]
    fn money_round_trips_through_its_decimal_string(minor in any::<i64>(), currency in currency()) {
        let money = Money::from_minor(minor, currency);
        let text = money.to_decimal_string();
        prop_assert_eq!(Money::parse(&text, currency), Ok(money));
        // Exactly `exponent` decimals, no more and no less.
        let decimals = text.split_once('.').map_or(0, |(_, f)| f.len());
        prop_assert_eq!(decimals, usize::from(currency.exponent()));
    }

    #[test]
    fn money_round_trips_at_the_edges(minor in minor(), currency in currency()) {
        let money = Money::from_minor(minor, currency);
        prop_assert_eq!(Money::parse(&money.to_decimal_string(), currency), Ok(money));
    }

    #[test]
    fn bank_parse_agrees_with_strict_parse_on_strict_text(
        text in "-?[0-9]{1,22}(\\.[0-9]{1,5})?",
        currency in currency(),
    ) {
        if let Ok(money) = Money::parse(&text, currency) {
            prop_assert_eq!(Money::parse_bank_decimal(&text, currency), Ok(money));
        }
    }

    #[test]
    fn bank_parse_agrees_on_whatever_strict_parse_accepts(
        text in "[-+ .0-9e,]{0,12}",
        currency in currency(),
    ) {
        if let Ok(money) = Money::parse(&text, currency) {
            prop_assert_eq!(Money::parse_bank_decimal(&text, currency), Ok(money));
        }
    }

    #[test]
    fn bank_parse_accepts_padding_zeros_and_whitespace(
        minor in minor(),
        currency in currency(),
        zeros in 1usize..8,
        leading in "[ \t]{0,3}",
        trailing in "[ \t\r\n]{0,3}",
    ) {
        let money = Money::from_minor(minor, currency);
        let strict = money.to_decimal_string();
        let point = if currency.exponent() == 0 { "." } else { "" };
        let plus = if minor >= 0 { "+" } else { "" };
        let padded = format!("{leading}{plus}{strict}{point}{}{trailing}", "0".repeat(zeros));
        prop_assert_eq!(Money::parse_bank_decimal(&padded, currency), Ok(money));
        // The strict parser refuses the same padding: it never drops digits.
        let unpadded = format!("{strict}{point}{}", "0".repeat(zeros));
        prop_assert_eq!(
            Money::parse(&unpadded, currency).map_err(|e| e.code()),
            Err("too_many_decimals")
        );
    }

    #[test]
    fn bank_parse_refuses_a_non_zero_extra_decimal(
        minor in -1_000_000_000i64..1_000_000_000,
        currency in currency(),
        zeros in 0usize..4,
        digit in 1u8..=9,
    ) {
        let strict = Money::from_minor(minor, currency).to_decimal_string();
        let point = if currency.exponent() == 0 { "." } else { "" };
        let text = format!("{strict}{point}{}{digit}", "0".repeat(zeros));
        prop_assert_eq!(
            Money::parse_bank_decimal(&text, currency).map_err(|e| e.code()),
            Err("too_many_decimals")
        );
    }

    #[test]
    fn parsers_never_panic(text in any::<String>(), currency in currency()) {
        let _ = Money::parse(&text, currency);
        let _ = Money::parse_bank_decimal(&text, currency);
        let _ = Iban::parse(&text);
        let _ = domain::Bic::parse(&text);
        let _ = domain::AccountNumber::parse(&text);
        let _ = domain::PaymentId::parse(&text);
        let _ = BusinessDate::parse_iso(&text);
        let _ = BusinessDate::parse_compact(&text);
        let _ = domain::parse_hhmmss(&text);
    }

    #[test]
    fn checked_add_and_sub_agree_with_i128(a in minor(), b in minor(), currency in currency()) {
        let (x, y) = (Money::from_minor(a, currency), Money::from_minor(b, currency));
        let expected_sum = i64::try_from(i128::from(a) + i128::from(b)).ok();
        match (x.checked_add(y), expected_sum) {
            (Ok(sum), Some(expected)) => prop_assert_eq!(sum, Money::from_minor(expected, currency)),
            (Err(err), None) => prop_assert_eq!(err.code(), "amount_overflow"),
            (got, expected) => prop_assert!(false, "{a} + {b}: got {got:?}, expected {expected:?}"),
        }
        let expected_difference = i64::try_from(i128::from(a) - i128::from(b)).ok();
        match (x.checked_sub(y), expected_difference) {
            (Ok(diff), Some(expected)) => prop_assert_eq!(diff, Money::from_minor(expected, currency)),
            (Err(err), None) => prop_assert_eq!(err.code(), "amount_overflow"),
            (got, expected) => prop_assert!(false, "{a} - {b}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn money_total_equals_the_i128_sum(amounts in proptest::collection::vec(minor(), 0..200)) {
        let mut total = MoneyTotal::zero(Currency::CNY);
        for minor in &amounts {
            total.add(Money::from_minor(*minor, Currency::CNY)).unwrap();
        }
        let expected: i128 = amounts.iter().map(|m| i128::from(*m)).sum();
        prop_assert_eq!(total.minor(), expected);
        prop_assert_eq!(total.to_money().ok().map(|m| i128::from(m.minor())),
            i64::try_from(expected).ok().map(i128::from));
    }

    #[test]
    fn iban_with_computed_check_digits_parses_and_any_changed_digit_fails(
        (country, bban) in iban_parts(),
    ) {
        let check = 98 - oracle_mod97(&format!("{bban}{country}00"));
        let text = format!("{country}{check:02}{bban}");
        let iban = Iban::parse(&text).unwrap();
        prop_assert_eq!(iban.as_str(), text.as_str());
        prop_assert_eq!(iban.country(), country);
        prop_assert_eq!(Iban::from_parts(country, &bban), Ok(iban));
        for (index, ch) in text.char_indices().skip(2) {
            let Some(digit) = ch.to_digit(10) else { continue };
            for other in (0..10).filter(|d| *d != digit) {
                let mut changed = text.clone();
                changed.replace_range(index..=index, &other.to_string());
                prop_assert!(Iban::parse(&changed).is_err(), "{changed} parsed");
            }
        }
    }

    #[test]
    fn business_dates_round_trip(y in 1i32..=9999, m in 1u32..=12, d in 1u32..=31) {
        if let Ok(date) = BusinessDate::from_ymd(y, m, d) {
            prop_assert_eq!(BusinessDate::parse_compact(&date.to_compact()), Ok(date));
            prop_assert_eq!(BusinessDate::parse_iso(&date.to_string()), Ok(date));
            let json = serde_json::to_string(&date).unwrap();
            prop_assert_eq!(serde_json::from_str::<BusinessDate>(&json).unwrap(), date);
        }
    }

    #[test]
    fn slug_ids_round_trip_through_serde_json(slug in "[a-z0-9][a-z0-9_-]{0,63}") {
        fn check<T>(slug: &str) -> Result<(), TestCaseError>
        where
            T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + std::fmt::Display + std::str::FromStr,
            <T as std::str::FromStr>::Err: std::fmt::Debug,
        {
            let id: T = slug.parse().unwrap();
            prop_assert_eq!(id.to_string(), slug);
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(&json, &format!("\"{slug}\""));
            prop_assert_eq!(serde_json::from_str::<T>(&json).unwrap(), id);
            Ok(())
        }
        check::<BankId>(&slug)?;
        check::<ConnectionId>(&slug)?;
        check::<AccountId>(&slug)?;
        check::<ClientId>(&slug)?;
        check::<UserId>(&slug)?;
    }

    #[test]
    fn invalid_slugs_fail_to_deserialize(slug in "[A-Z_ .-][a-z0-9_-]{0,10}") {
        let json = format!("\"{slug}\"");
        prop_assert!(serde_json::from_str::<BankId>(&json).is_err());
    }
}

/// A few registry countries with their lengths, kept here apart from the
/// crate's table so the test does not trust the code it tests.
const ORACLE_COUNTRIES: &[(&str, usize)] = &[
    ("DE", 22),
    ("FR", 27),
    ("GB", 22),
    ("NL", 18),
    ("ES", 24),
    ("IT", 27),
    ("BE", 16),
    ("CH", 21),
    ("AT", 20),
    ("LU", 20),
    ("IE", 22),
    ("PL", 28),
    ("NO", 15),
    ("MT", 31),
];

fn iban_parts() -> impl Strategy<Value = (&'static str, String)> {
    proptest::sample::select(ORACLE_COUNTRIES).prop_flat_map(|(country, len)| {
        let bban = proptest::string::string_regex(&format!("[0-9A-Z]{{{}}}", len - 4)).unwrap();
        (Just(country), bban)
    })
}

/// ISO 7064 MOD 97-10 over the decimal expansion (A=10 ... Z=35), reduced in
/// chunks of nine digits.
fn oracle_mod97(rearranged: &str) -> u32 {
    let digits: String = rearranged
        .chars()
        .map(|c| c.to_digit(36).unwrap().to_string())
        .collect();
    let mut remainder: u64 = 0;
    for chunk in digits.as_bytes().chunks(9) {
        let chunk = std::str::from_utf8(chunk).unwrap();
        remainder = format!("{remainder}{chunk}").parse::<u64>().unwrap() % 97;
    }
    u32::try_from(remainder).unwrap()
}
