//! Bank exchanges: one row per call to a bank, with its masked bodies, kept apart from the
//! audit chain (migration 0010). The chain gets one `bank.exchange` record per row, in the
//! same transaction, whose details name the row (`exchange_id`); the bodies never go into
//! the chain. SQL in `sqlite/exchanges.rs` and `postgres/exchanges.rs`.
//!
//! The store does not mask: bodies arrive masked from the banks crate. It checks what the
//! schema promises (lengths, counts) so that both backends refuse the same things.

use chrono::{DateTime, Utc};

use crate::codec::{self, AuditRow};
use crate::{NewAuditRecord, StoreError};

/// Most bytes of one stored body (the banks crate cuts at this size).
pub const BANK_EXCHANGE_BODY_MAX_BYTES: usize = 64 * 1024;
/// Most references one exchange may name (a status query asks about up to a few hundred).
pub const BANK_EXCHANGE_REFERENCES_MAX: usize = 1_000;
/// Most characters of one reference, and of an exchange's bank and connection ids.
pub const BANK_EXCHANGE_TEXT_MAX_CHARS: usize = 128;
/// Most characters of an exchange's function, outcome and bank code (the columns'
/// CHECKs on both databases).
pub const BANK_EXCHANGE_CODE_MAX_CHARS: usize = 64;
/// Most exchanges one [`crate::Store::bank_exchanges_by_reference`] call returns.
pub const BANK_EXCHANGE_LIST_MAX: u32 = 500;

/// One call to a bank, as the gateway records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBankExchange {
    pub at: DateTime<Utc>,
    pub bank_id: String,
    pub connection_id: String,
    /// The cn-xml function code or iso20022 order type.
    pub function: String,
    /// What the exchange concerns: our business references, or account ids. The first is
    /// kept on the row for reading; each is listed for [`crate::Store::bank_exchanges_by_reference`].
    pub references: Vec<String>,
    /// `ok` or the bank error's kind.
    pub outcome: String,
    pub bank_code: Option<String>,
    pub elapsed_ms: u64,
    pub request_masked: Option<String>,
    pub request_truncated: bool,
    pub response_masked: Option<String>,
    pub response_truncated: bool,
}

/// A stored exchange. `references` is every reference it names, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBankExchange {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub bank_id: String,
    pub connection_id: String,
    pub function: String,
    pub reference: Option<String>,
    pub outcome: String,
    pub bank_code: Option<String>,
    pub elapsed_ms: u64,
    pub request_masked: Option<String>,
    pub request_truncated: bool,
    pub response_masked: Option<String>,
    pub response_truncated: bool,
}

/// Checks what both schemas promise; the instant truncated to microseconds, references
/// without repeats (first occurrence kept).
pub(crate) fn checked(mut new: NewBankExchange) -> Result<NewBankExchange, StoreError> {
    let invalid = |reason: String| StoreError::Invalid { reason };
    new.at = codec::instant(new.at, "bank exchange at")?;
    let texts = [
        ("bank_id", Some(&new.bank_id), BANK_EXCHANGE_TEXT_MAX_CHARS),
        (
            "connection_id",
            Some(&new.connection_id),
            BANK_EXCHANGE_TEXT_MAX_CHARS,
        ),
        (
            "function",
            Some(&new.function),
            BANK_EXCHANGE_CODE_MAX_CHARS,
        ),
        ("outcome", Some(&new.outcome), BANK_EXCHANGE_CODE_MAX_CHARS),
        (
            "bank_code",
            new.bank_code.as_ref(),
            BANK_EXCHANGE_CODE_MAX_CHARS,
        ),
    ];
    for (field, value, max) in texts {
        let Some(value) = value else { continue };
        let chars = value.chars().count();
        if chars == 0 || chars > max || value.contains('\0') {
            return Err(invalid(format!(
                "bank exchange {field} has {chars} characters or a NUL; expected 1 to {max}"
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    new.references.retain(|r| seen.insert(r.clone()));
    if new.references.len() > BANK_EXCHANGE_REFERENCES_MAX {
        return Err(invalid(format!(
            "bank exchange names {} references; expected at most {BANK_EXCHANGE_REFERENCES_MAX}",
            new.references.len()
        )));
    }
    for reference in &new.references {
        let chars = reference.chars().count();
        if chars == 0 || chars > BANK_EXCHANGE_TEXT_MAX_CHARS || reference.contains('\0') {
            return Err(invalid(format!(
                "a bank exchange reference has {chars} characters or a NUL; expected 1 to {BANK_EXCHANGE_TEXT_MAX_CHARS}"
            )));
        }
    }
    for (field, body) in [
        ("request_masked", &new.request_masked),
        ("response_masked", &new.response_masked),
    ] {
        let Some(body) = body else { continue };
        if body.len() > BANK_EXCHANGE_BODY_MAX_BYTES || body.contains('\0') {
            return Err(invalid(format!(
                "bank exchange {field} is {} bytes or holds a NUL; expected at most {BANK_EXCHANGE_BODY_MAX_BYTES}, cut by the caller",
                body.len()
            )));
        }
    }
    if i64::try_from(new.elapsed_ms).is_err() {
        return Err(invalid(
            "bank exchange elapsed_ms does not fit 63 bits".into(),
        ));
    }
    Ok(new)
}

/// The audit record of exchange `id`: `audit` with `exchange_id` added to its details,
/// which must be a JSON object.
pub(crate) fn audit_row(mut audit: NewAuditRecord, id: i64) -> Result<AuditRow, StoreError> {
    let Some(details) = audit.details.as_object_mut() else {
        return Err(StoreError::Invalid {
            reason: "the audit details of a bank exchange must be a JSON object".into(),
        });
    };
    details.insert("exchange_id".into(), serde_json::Value::from(id));
    AuditRow::new(audit)
}

/// The row's columns read back, shared by both backends.
pub(crate) struct ExchangeColumns {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub bank_id: String,
    pub connection_id: String,
    pub function: String,
    pub reference: Option<String>,
    pub outcome: String,
    pub bank_code: Option<String>,
    pub elapsed_ms: i64,
    pub request_masked: Option<String>,
    pub request_truncated: bool,
    pub response_masked: Option<String>,
    pub response_truncated: bool,
}

impl ExchangeColumns {
    pub(crate) fn into_stored(self) -> Result<StoredBankExchange, StoreError> {
        let elapsed_ms = u64::try_from(self.elapsed_ms).map_err(|_| StoreError::Corrupt {
            table: "bank_exchanges",
            column: "elapsed_ms",
            reason: format!("{} is negative", self.elapsed_ms),
        })?;
        Ok(StoredBankExchange {
            id: self.id,
            at: self.at,
            bank_id: self.bank_id,
            connection_id: self.connection_id,
            function: self.function,
            reference: self.reference,
            outcome: self.outcome,
            bank_code: self.bank_code,
            elapsed_ms,
            request_masked: self.request_masked,
            request_truncated: self.request_truncated,
            response_masked: self.response_masked,
            response_truncated: self.response_truncated,
        })
    }
}

pub(crate) const EXCHANGE_COLUMNS: &str = "e.id, e.at, e.bank_id, e.connection_id, e.function, \
     e.reference, e.outcome, e.bank_code, e.elapsed_ms, e.request_masked, e.request_truncated, \
     e.response_masked, e.response_truncated";

/// The limit of a listing: 0 means the maximum.
pub(crate) fn list_limit(limit: u32) -> i64 {
    i64::from(if limit == 0 {
        BANK_EXCHANGE_LIST_MAX
    } else {
        limit.min(BANK_EXCHANGE_LIST_MAX)
    })
}
