//! Instants in API responses: RFC 3339 in UTC with microseconds, e.g.
//! `2026-11-28T22:09:29.648619Z`, always the same width.
//!
//! Written by hand into a fixed buffer because responses carry many of them
//! (two per transaction on a 50-item page) and chrono's general formatter
//! costs several times more per instant (BENCHMARKS.md). The store keeps
//! instants at microsecond precision, so nothing is lost.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn rfc3339_micros(t: &DateTime<Utc>) -> String {
    let mut buf = [0u8; 27];
    if write_fixed(t, &mut buf) {
        if let Ok(text) = std::str::from_utf8(&buf) {
            return text.to_owned();
        }
    }
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Writes the fixed form into `buf`; false for a year outside 0..=9999,
/// where the general formatter is right.
fn write_fixed(t: &DateTime<Utc>, buf: &mut [u8; 27]) -> bool {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return false;
    }
    let put = |buf: &mut [u8], at: usize, value: u32, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(buf, 0, year as u32, 4);
    buf[4] = b'-';
    put(buf, 5, t.month(), 2);
    buf[7] = b'-';
    put(buf, 8, t.day(), 2);
    buf[10] = b'T';
    put(buf, 11, t.hour(), 2);
    buf[13] = b':';
    put(buf, 14, t.minute(), 2);
    buf[16] = b':';
    // A leap second shows as :60 in chrono's nanosecond field; keep :59 and
    // the fraction capped, as the store does.
    put(buf, 17, t.second().min(59), 2);
    buf[19] = b'.';
    put(buf, 20, (t.nanosecond() / 1_000).min(999_999), 6);
    buf[26] = b'Z';
    true
}

/// serde `serialize_with` for `DateTime<Utc>` fields: no allocation.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 27];
    if write_fixed(t, &mut buf) {
        if let Ok(text) = std::str::from_utf8(&buf) {
            return s.serialize_str(text);
        }
    }
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_chrono_and_round_trips() {
        for text in [
            "2026-11-28T22:09:29.648619Z",
            "2026-01-01T00:00:00.000000Z",
            "1999-12-31T23:59:59.999999Z",
            "0001-02-03T04:05:06.000007Z",
        ] {
            let t: DateTime<Utc> = text.parse().unwrap();
            assert_eq!(rfc3339_micros(&t), text);
            assert_eq!(
                rfc3339_micros(&t),
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            );
            assert_eq!(rfc3339_micros(&t).parse::<DateTime<Utc>>().unwrap(), t);
        }
    }
}
