//! Business dates and bank time zones.
//!
//! Instants are `chrono::DateTime<Utc>` everywhere. What a bank calls "today",
//! a booking date or a value date is a [`BusinessDate`] in the bank's own
//! [`BankTimeZone`]; [`bank_local_to_utc`] turns a bank's local timestamp
//! (date plus "HHmmss") into an instant. Text forms are parsed strictly:
//! exact digit counts, no trimming, no alternative separators.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::Clock;
use crate::error::{snippet, DomainError};

/// Years a business date may have. Four-digit years keep the ISO and compact
/// forms fixed-width, so every date parsed can be printed and parsed again.
pub const MIN_BUSINESS_YEAR: i32 = 1;
pub const MAX_BUSINESS_YEAR: i32 = 9999;

/// Longest time zone name accepted (the longest IANA name is 32 bytes).
pub const MAX_TIME_ZONE_NAME_LEN: usize = 64;

/// A bank's time zone, by IANA name (e.g. "Asia/Shanghai").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BankTimeZone(Tz);

impl BankTimeZone {
    pub const SHANGHAI: BankTimeZone = BankTimeZone(chrono_tz::Asia::Shanghai);
    pub const UTC: BankTimeZone = BankTimeZone(chrono_tz::UTC);

    /// An exact, case-sensitive IANA time zone name.
    pub fn parse(name: &str) -> Result<Self, DomainError> {
        if name.len() > MAX_TIME_ZONE_NAME_LEN {
            return Err(DomainError::InvalidTimeZone {
                detail: format!(
                    "the name is {} bytes long; expected an IANA name of at most {MAX_TIME_ZONE_NAME_LEN}",
                    name.len()
                ),
            });
        }
        name.parse::<Tz>()
            .map(BankTimeZone)
            .map_err(|_| DomainError::InvalidTimeZone {
                detail: format!(
                    "{} is not a known time zone; expected an IANA name such as \"Asia/Shanghai\" (case matters)",
                    snippet(name)
                ),
            })
    }

    pub fn tz(&self) -> Tz {
        self.0
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Display for BankTimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for BankTimeZone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for BankTimeZone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        BankTimeZone::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// A calendar date in a bank's time zone: a booking, value or execution date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BusinessDate(NaiveDate);

impl BusinessDate {
    /// A date of years 1..=9999.
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Result<Self, DomainError> {
        if !(MIN_BUSINESS_YEAR..=MAX_BUSINESS_YEAR).contains(&y) {
            return Err(DomainError::InvalidDate {
                detail: format!(
                    "year {y} is out of range; expected {MIN_BUSINESS_YEAR} to {MAX_BUSINESS_YEAR}"
                ),
            });
        }
        NaiveDate::from_ymd_opt(y, m, d)
            .map(BusinessDate)
            .ok_or_else(|| DomainError::InvalidDate {
                detail: format!(
                    "year {y}, month {m}, day {d} is not a calendar date; expected a month 1-12 and a day that month has"
                ),
            })
    }

    /// Wraps a date as it is. Dates outside years 1..=9999 do not round-trip
    /// through the text forms; every constructor that reads input refuses them.
    pub fn from_naive(d: NaiveDate) -> Self {
        BusinessDate(d)
    }

    pub fn naive(&self) -> NaiveDate {
        self.0
    }

    /// The date the bank's clocks show at `instant`.
    pub fn of_instant(instant: DateTime<Utc>, zone: BankTimeZone) -> Self {
        BusinessDate(instant.with_timezone(&zone.tz()).date_naive())
    }

    /// Today in the bank's zone, by the injected clock.
    pub fn today(clock: &dyn Clock, zone: BankTimeZone) -> Self {
        Self::of_instant(clock.now(), zone)
    }

    /// Exactly "YYYY-MM-DD".
    pub fn parse_iso(s: &str) -> Result<Self, DomainError> {
        const EXPECTED: &str = "expected exactly YYYY-MM-DD, such as \"2026-11-28\"";
        let shape_ok = s.len() == 10
            && s.bytes().enumerate().all(|(index, b)| match index {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(DomainError::InvalidDate {
                detail: format!("{} is not a date; {EXPECTED}", snippet(s)),
            });
        }
        Self::from_digit_fields(s, [0..4, 5..7, 8..10])
    }

    /// Exactly "YYYYMMDD" (8 ASCII digits).
    pub fn parse_compact(s: &str) -> Result<Self, DomainError> {
        if !(s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())) {
            return Err(DomainError::InvalidDate {
                detail: format!(
                    "{} is not a date; expected exactly 8 digits YYYYMMDD, such as \"20261128\"",
                    snippet(s)
                ),
            });
        }
        Self::from_digit_fields(s, [0..4, 4..6, 6..8])
    }

    /// Reads year, month and day from ranges the caller checked are ASCII
    /// digits.
    fn from_digit_fields(
        s: &str,
        fields: [std::ops::Range<usize>; 3],
    ) -> Result<Self, DomainError> {
        let [year, month, day] = fields.map(|range| {
            s.get(range)
                .unwrap_or_default()
                .bytes()
                .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
        });
        // Four digits are at most 9999, so the year always fits.
        let year = i32::try_from(year).unwrap_or(i32::MAX);
        Self::from_ymd(year, month, day)
    }

    /// "20261128".
    pub fn to_compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }

    /// The date `days` later (or earlier, if negative). Fails outside years
    /// 1..=9999.
    pub fn add_days(&self, days: i64) -> Result<Self, DomainError> {
        let out_of_range = || {
            DomainError::InvalidDate {
            detail: format!(
                "{self} plus {days} days is out of range; expected a date in years {MIN_BUSINESS_YEAR} to {MAX_BUSINESS_YEAR}"
            ),
        }
        };
        let delta = chrono::TimeDelta::try_days(days).ok_or_else(out_of_range)?;
        let date = self.0.checked_add_signed(delta).ok_or_else(out_of_range)?;
        if (MIN_BUSINESS_YEAR..=MAX_BUSINESS_YEAR).contains(&date.year()) {
            Ok(BusinessDate(date))
        } else {
            Err(out_of_range())
        }
    }
}

impl fmt::Display for BusinessDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }
}

impl Serialize for BusinessDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BusinessDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BusinessDate::parse_iso(&text).map_err(serde::de::Error::custom)
    }
}

/// Exactly "HHmmss": hours 00-23, minutes and seconds 00-59 (no leap second).
pub fn parse_hhmmss(hhmmss: &str) -> Result<NaiveTime, DomainError> {
    const EXPECTED: &str = "expected exactly 6 digits HHmmss, such as \"093015\"";
    if !(hhmmss.len() == 6 && hhmmss.bytes().all(|b| b.is_ascii_digit())) {
        return Err(DomainError::InvalidTime {
            detail: format!("{} is not a time of day; {EXPECTED}", snippet(hhmmss)),
        });
    }
    let field = |start: usize| {
        hhmmss
            .get(start..start + 2)
            .unwrap_or_default()
            .bytes()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
    };
    let (hour, minute, second) = (field(0), field(2), field(4));
    NaiveTime::from_hms_opt(hour, minute, second).ok_or_else(|| DomainError::InvalidTime {
        detail: format!(
            "{hour:02}:{minute:02}:{second:02} is not a time of day; expected hours 00-23, minutes and seconds 00-59"
        ),
    })
}

/// Local bank date + time (yyyyMMdd + HHmmss) in a zone -> UTC instant; for
/// DST gaps/ambiguity pick the earliest valid, and error if none.
pub fn bank_local_to_utc(
    date: BusinessDate,
    hhmmss: &str,
    zone: BankTimeZone,
) -> Result<DateTime<Utc>, DomainError> {
    let time = parse_hhmmss(hhmmss)?;
    local_to_utc(date.naive().and_time(time), zone)
}

/// A local wall-clock time in `zone` as an instant. When clocks go back the
/// local time happens twice and the earlier instant is taken (a bank stamps
/// the first occurrence at the latest by then). A local time skipped when
/// clocks go forward never happened, so it is an error rather than a guess.
pub fn local_to_utc(
    local: NaiveDateTime,
    zone: BankTimeZone,
) -> Result<DateTime<Utc>, DomainError> {
    match zone.tz().from_local_datetime(&local) {
        chrono::LocalResult::Single(instant) => Ok(instant.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(first, second) => {
            Ok(first.with_timezone(&Utc).min(second.with_timezone(&Utc)))
        }
        chrono::LocalResult::None => Err(DomainError::InvalidTime {
            detail: format!(
                "{local} does not exist in {zone} (skipped by a daylight-saving change); expected a time the zone's clocks show"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> BusinessDate {
        BusinessDate::from_ymd(y, m, d).unwrap()
    }

    #[test]
    fn time_zones_by_iana_name() {
        let zone = BankTimeZone::parse("Asia/Shanghai").unwrap();
        assert_eq!(zone, BankTimeZone::SHANGHAI);
        assert_eq!(zone.name(), "Asia/Shanghai");
        assert_eq!(serde_json::to_string(&zone).unwrap(), "\"Asia/Shanghai\"");
        let back: BankTimeZone = serde_json::from_str("\"Europe/Berlin\"").unwrap();
        assert_eq!(back.name(), "Europe/Berlin");
        for bad in [
            "",
            "asia/shanghai",
            "Asia/Beijing",
            "+08:00",
            " Asia/Shanghai",
        ] {
            assert_eq!(
                BankTimeZone::parse(bad).unwrap_err().code(),
                "invalid_time_zone",
                "{bad:?}"
            );
        }
        assert!(serde_json::from_str::<BankTimeZone>("\"Mars/Olympus\"").is_err());
    }

    #[test]
    fn dates_in_the_bank_zone() {
        // 16:30 UTC is half past midnight the next day in Shanghai.
        let instant = utc(2026, 11, 27, 16, 30, 0);
        assert_eq!(
            BusinessDate::of_instant(instant, BankTimeZone::SHANGHAI),
            date(2026, 11, 28)
        );
        assert_eq!(
            BusinessDate::of_instant(instant, BankTimeZone::UTC),
            date(2026, 11, 27)
        );
        let clock = ManualClock::new(instant);
        assert_eq!(
            BusinessDate::today(&clock, BankTimeZone::SHANGHAI),
            date(2026, 11, 28)
        );
    }

    #[test]
    fn strict_text_forms() {
        let d = date(2026, 11, 28);
        assert_eq!(d.to_string(), "2026-11-28");
        assert_eq!(d.to_compact(), "20261128");
        assert_eq!(BusinessDate::parse_iso("2026-11-28"), Ok(d));
        assert_eq!(BusinessDate::parse_compact("20261128"), Ok(d));
        assert_eq!(date(1, 1, 1).to_compact(), "00010101");
        assert_eq!(BusinessDate::parse_iso("2024-02-29"), Ok(date(2024, 2, 29)));
        for bad in [
            "",
            "2026-11-8",
            "2026-1-28",
            "26-11-28",
            "2026/11/28",
            "2026-11-28 ",
            "2026-11-28T00:00",
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-11-00",
            "0000-01-01",
            "+2026-11-2",
            "２026-11-28",
        ] {
            assert_eq!(
                BusinessDate::parse_iso(bad).unwrap_err().code(),
                "invalid_date",
                "{bad:?}"
            );
        }
        for bad in [
            "",
            "2026112",
            "202611288",
            "2026-1128",
            "20260230",
            "2026112 ",
            "00000101",
        ] {
            assert_eq!(
                BusinessDate::parse_compact(bad).unwrap_err().code(),
                "invalid_date",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn from_ymd_limits() {
        assert!(BusinessDate::from_ymd(2026, 2, 29).is_err());
        assert!(BusinessDate::from_ymd(0, 1, 1).is_err());
        assert!(BusinessDate::from_ymd(10_000, 1, 1).is_err());
        assert!(BusinessDate::from_ymd(9999, 12, 31).is_ok());
    }

    #[test]
    fn add_days_crosses_months_and_checks_range() {
        assert_eq!(date(2026, 11, 28).add_days(3), Ok(date(2026, 12, 1)));
        assert_eq!(date(2024, 3, 1).add_days(-1), Ok(date(2024, 2, 29)));
        assert!(date(9999, 12, 31).add_days(1).is_err());
        assert!(date(1, 1, 1).add_days(-1).is_err());
        assert!(date(2026, 1, 1).add_days(i64::MAX).is_err());
        assert!(date(2026, 1, 1).add_days(i64::MIN).is_err());
    }

    #[test]
    fn date_serde_is_iso() {
        let d = date(2026, 11, 28);
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2026-11-28\"");
        assert_eq!(
            serde_json::from_str::<BusinessDate>("\"2026-11-28\"").unwrap(),
            d
        );
        assert!(serde_json::from_str::<BusinessDate>("\"20261128\"").is_err());
    }

    #[test]
    fn bank_local_times() {
        let d = date(2026, 11, 28);
        assert_eq!(
            bank_local_to_utc(d, "093015", BankTimeZone::SHANGHAI),
            Ok(utc(2026, 11, 28, 1, 30, 15))
        );
        assert_eq!(
            bank_local_to_utc(d, "000000", BankTimeZone::SHANGHAI),
            Ok(utc(2026, 11, 27, 16, 0, 0))
        );
        for bad in [
            "", "93015", "0930150", "240000", "236000", "235960", "09:30:15", "0930 5",
        ] {
            assert_eq!(
                bank_local_to_utc(d, bad, BankTimeZone::SHANGHAI)
                    .unwrap_err()
                    .code(),
                "invalid_time",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn daylight_saving_changes() {
        let new_york = BankTimeZone::parse("America/New_York").unwrap();
        // Clocks go back at 02:00 EDT on 2026-11-01: 01:30 happens twice,
        // first at UTC-4.
        assert_eq!(
            bank_local_to_utc(date(2026, 11, 1), "013000", new_york),
            Ok(utc(2026, 11, 1, 5, 30, 0))
        );
        // Clocks go forward at 02:00 EST on 2026-03-08: 02:30 never happens.
        let err = bank_local_to_utc(date(2026, 3, 8), "023000", new_york).unwrap_err();
        assert_eq!(err.code(), "invalid_time");
        assert!(err.to_string().contains("America/New_York"), "{err}");
        assert_eq!(
            bank_local_to_utc(date(2026, 3, 8), "030000", new_york),
            Ok(utc(2026, 3, 8, 7, 0, 0))
        );
    }
}
