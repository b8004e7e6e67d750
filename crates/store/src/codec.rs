//! The mapping between domain values and column values, shared by both backends so they
//! store and return exactly the same thing.
//!
//! - Instants: truncated to whole microseconds (PostgreSQL's TIMESTAMPTZ precision) and
//!   limited to the years 0001–9999 on both backends. SQLite keeps them as TEXT in one fixed
//!   RFC 3339 form, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (27 characters), so text order is time
//!   order and a row read with the sqlite3 shell is legible.
//! - Money: `i64` minor units beside the ISO 4217 code; the exponent comes from the code.
//! - Audit details: compact JSON text, written as given and parsed back on read.

use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Utc};

use crate::model::{BalanceSnapshot, NewAuditRecord, AUDIT_DETAILS_MAX_BYTES};
use crate::StoreError;

/// Truncates to microseconds and refuses years outside 0001–9999: the fixed-width SQLite
/// text form (and so its ordering) needs four-digit years.
pub(crate) fn instant(at: DateTime<Utc>, field: &'static str) -> Result<DateTime<Utc>, StoreError> {
    let year = at.year();
    if !(1..=9999).contains(&year) {
        return Err(StoreError::Invalid {
            reason: format!("{field}: year {year} is outside 0001-9999"),
        });
    }
    Ok(at.trunc_subsecs(6))
}

/// The SQLite text form of an instant already passed through [`instant`].
pub(crate) fn instant_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn instant_from_text(
    text: &str,
    table: &'static str,
    column: &'static str,
) -> Result<DateTime<Utc>, StoreError> {
    if let Some(at) = instant_from_fixed_text(text) {
        return Ok(at);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|err| StoreError::Corrupt {
            table,
            column,
            reason: format!("not an RFC 3339 instant ({err})"),
        })
}

/// The form [`instant_text`] writes, `YYYY-MM-DDTHH:MM:SS.ffffffZ`, read without chrono's
/// general RFC 3339 parser (a page of entries reads two per row). `None` for anything else,
/// which [`instant_from_text`] then hands to chrono, so what is accepted and refused is
/// chrono's, and a leap second (`:60`) takes that path too.
fn instant_from_fixed_text(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 27
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[26] != b'Z'
    {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(digits(0, 4)?).ok()?,
        digits(5, 7)?,
        digits(8, 10)?,
    )?;
    let time = chrono::NaiveTime::from_hms_micro_opt(
        digits(11, 13)?,
        digits(14, 16)?,
        digits(17, 19)?,
        digits(20, 26)?,
    )?;
    Some(date.and_time(time).and_utc())
}

/// An audit record checked and converted for binding. Lengths are left to the schema's
/// CHECK constraints, in the same statement as the write.
#[derive(Debug, Clone)]
pub(crate) struct AuditRow {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub request_id: Option<String>,
    pub outcome: String,
    pub details: String,
}

impl AuditRow {
    pub(crate) fn new(rec: NewAuditRecord) -> Result<AuditRow, StoreError> {
        let texts = [
            ("actor", Some(&rec.actor)),
            ("action", Some(&rec.action)),
            ("object", Some(&rec.object)),
            ("outcome", Some(&rec.outcome)),
            ("request_id", rec.request_id.as_ref()),
        ];
        for (field, value) in texts {
            // PostgreSQL TEXT cannot carry NUL; refusing it on both keeps them alike.
            if value.is_some_and(|v| v.contains('\0')) {
                return Err(StoreError::Invalid {
                    reason: format!("audit {field} contains a NUL character"),
                });
            }
        }
        let details = serde_json::to_string(&rec.details).map_err(|err| StoreError::Invalid {
            reason: format!("audit details cannot be serialised as JSON ({err})"),
        })?;
        if details.len() > AUDIT_DETAILS_MAX_BYTES {
            return Err(StoreError::Invalid {
                reason: format!(
                    "audit details are {} bytes of JSON, more than the limit of {AUDIT_DETAILS_MAX_BYTES}",
                    details.len()
                ),
            });
        }
        Ok(AuditRow {
            at: instant(rec.at, "audit at")?,
            actor: rec.actor,
            action: rec.action,
            object: rec.object,
            request_id: rec.request_id,
            outcome: rec.outcome,
            details,
        })
    }
}

pub(crate) fn details_from_text(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        table: "audit_log",
        column: "details",
        reason: format!("not JSON ({err})"),
    })
}

/// A balance snapshot converted for binding.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotRow {
    pub account_id: String,
    pub currency: &'static str,
    pub booked_minor: i64,
    pub available_minor: i64,
    pub as_of: DateTime<Utc>,
    pub fetched_at: DateTime<Utc>,
}

impl SnapshotRow {
    pub(crate) fn new(snapshot: &BalanceSnapshot) -> Result<SnapshotRow, StoreError> {
        let currency = snapshot.booked.currency();
        if snapshot.available.currency() != currency {
            return Err(StoreError::Invalid {
                reason: format!(
                    "balance snapshot: booked is in {} but available is in {}",
                    currency.code(),
                    snapshot.available.currency().code()
                ),
            });
        }
        Ok(SnapshotRow {
            account_id: snapshot.account_id.as_str().to_owned(),
            currency: currency.code(),
            booked_minor: snapshot.booked.minor(),
            available_minor: snapshot.available.minor(),
            as_of: instant(snapshot.as_of, "balance as_of")?,
            fetched_at: instant(snapshot.fetched_at, "balance fetched_at")?,
        })
    }
}

/// Column values of one `balance_snapshots` row, as read.
pub(crate) struct StoredSnapshot {
    pub account_id: String,
    pub currency: String,
    pub booked_minor: i64,
    pub available_minor: i64,
    pub as_of: DateTime<Utc>,
    pub fetched_at: DateTime<Utc>,
}

impl StoredSnapshot {
    pub(crate) fn into_domain(self) -> Result<BalanceSnapshot, StoreError> {
        const TABLE: &str = "balance_snapshots";
        let account_id =
            domain::AccountId::parse(&self.account_id).map_err(|err| StoreError::Corrupt {
                table: TABLE,
                column: "account_id",
                reason: format!("not a valid account id ({err})"),
            })?;
        let currency =
            domain::Currency::from_code(&self.currency).map_err(|err| StoreError::Corrupt {
                table: TABLE,
                column: "currency",
                reason: format!("not a known currency ({err})"),
            })?;
        Ok(BalanceSnapshot {
            account_id,
            booked: domain::Money::from_minor(self.booked_minor, currency),
            available: domain::Money::from_minor(self.available_minor, currency),
            as_of: self.as_of,
            fetched_at: self.fetched_at,
        })
    }
}

/// Reads one column, reporting a type mismatch as corruption of that column.
pub(crate) fn column<'r, R, T>(
    row: &'r R,
    table: &'static str,
    column: &'static str,
) -> Result<T, StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    row.try_get(column).map_err(|err| StoreError::Corrupt {
        table,
        column,
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_fixed_instant_reader_agrees_with_chrono() {
        let texts = [
            "2024-05-01T08:30:00.000000Z",
            "2024-02-29T23:59:59.999999Z",
            "0001-01-01T00:00:00.000001Z",
            "9999-12-31T23:59:59.123456Z",
        ];
        for text in texts {
            let chrono = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(instant_from_fixed_text(text), Some(chrono), "{text}");
            assert_eq!(instant_from_text(text, "t", "c").unwrap(), chrono);
        }
        // Not the fixed form, or not a valid instant: left to chrono, which decides.
        let others = [
            "2024-05-01T08:30:00Z",
            "2024-05-01T08:30:00.000000+00:00",
            "2023-02-29T08:30:00.000000Z",
            "2024-05-01T24:00:00.000000Z",
            "2016-12-31T23:59:60.000000Z",
            "2024-05-01T08:30:0x.000000Z",
            "+024-05-01T08:30:00.000000Z",
        ];
        for text in others {
            assert_eq!(instant_from_fixed_text(text), None, "{text}");
            let chrono = DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc));
            assert_eq!(
                instant_from_text(text, "t", "c").ok(),
                chrono.ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn instants_truncate_to_micros_and_keep_text_order() {
        let at = Utc
            .with_ymd_and_hms(2024, 5, 1, 8, 30, 0)
            .single()
            .unwrap()
            .checked_add_signed(chrono::Duration::nanoseconds(123_456_789))
            .unwrap();
        let stored = instant(at, "t").unwrap();
        assert_eq!(stored.timestamp_subsec_nanos(), 123_456_000);
        let text = instant_text(stored);
        assert_eq!(text, "2024-05-01T08:30:00.123456Z");
        assert_eq!(instant_from_text(&text, "t", "c").unwrap(), stored);

        let whole = Utc.with_ymd_and_hms(2024, 5, 1, 8, 30, 1).single().unwrap();
        let whole_text = instant_text(instant(whole, "t").unwrap());
        assert_eq!(whole_text, "2024-05-01T08:30:01.000000Z");
        assert!(text < whole_text);
    }

    #[test]
    fn instants_outside_four_digit_years_are_refused() {
        let far = Utc
            .with_ymd_and_hms(10_000, 1, 1, 0, 0, 0)
            .single()
            .unwrap();
        assert!(matches!(instant(far, "t"), Err(StoreError::Invalid { .. })));
    }

    #[test]
    fn corrupt_instant_text_is_reported_without_panicking() {
        assert!(matches!(
            instant_from_text("yesterday", "audit_log", "at"),
            Err(StoreError::Corrupt { column: "at", .. })
        ));
    }
}
