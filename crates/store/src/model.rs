//! The records that cross the store boundary, the options of a store, and the limits the
//! store enforces.
//!
//! The text limits are enforced by CHECK constraints in the schema (one source of truth, in
//! the same statement as the write); the constants here mirror them so callers can check
//! early, and the suite tests that both agree on each backend.

use chrono::{DateTime, Utc};

use crate::StoreError;

/// Maximum length, in characters, of each audit text field (`actor`, `action`, `object`,
/// `outcome`, `request_id`). Each must also be non-empty.
pub const AUDIT_TEXT_MAX_CHARS: usize = 256;

/// Maximum size of an audit record's `details`, as compact JSON in UTF-8 bytes.
pub const AUDIT_DETAILS_MAX_BYTES: usize = 64 * 1024;

/// Maximum length, in characters, of a stored account id.
pub const ACCOUNT_ID_MAX_CHARS: usize = 128;

/// `AuditQuery::limit` above this is lowered to it.
pub const AUDIT_QUERY_MAX_LIMIT: u32 = 1000;

/// `AuditQuery::limit == 0` (the `Default`) means this many.
pub const AUDIT_QUERY_DEFAULT_LIMIT: u32 = 100;

/// Most snapshots one `save_balances` call may carry.
pub const SNAPSHOTS_PER_SAVE_MAX: usize = 10_000;

/// Most snapshots `latest_balances` returns; more is an error, not a silent cut.
pub const BALANCES_MAX_ROWS: usize = 100_000;

/// An audit record to append. The store writes every field as given; `details` must
/// already be masked by the caller (no secrets, account numbers masked).
#[derive(Debug, Clone)]
pub struct NewAuditRecord {
    /// Stored with microsecond precision (truncated).
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub request_id: Option<String>,
    pub outcome: String,
    pub details: serde_json::Value,
}

/// A stored audit record. `id` ascends in commit order.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub request_id: Option<String>,
    pub outcome: String,
    pub details: serde_json::Value,
}

/// Filters for `list_audit`; every given filter must match exactly. Pages forward by
/// `after_id` (exclusive): pass the last id of the previous page.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub object: Option<String>,
    pub after_id: Option<i64>,
    /// 0 means [`AUDIT_QUERY_DEFAULT_LIMIT`]; above [`AUDIT_QUERY_MAX_LIMIT`] it is capped.
    pub limit: u32,
}

impl AuditQuery {
    pub(crate) fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => AUDIT_QUERY_DEFAULT_LIMIT,
            n => n.min(AUDIT_QUERY_MAX_LIMIT),
        }
    }
}

/// The latest known balance of one account in one currency. `booked` and `available` are
/// in the same currency (the store refuses otherwise). Instants are stored with
/// microsecond precision (truncated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceSnapshot {
    pub account_id: domain::AccountId,
    pub booked: domain::Money,
    pub available: domain::Money,
    /// When the bank says the balance was valid.
    pub as_of: DateTime<Utc>,
    /// When the gateway fetched it.
    pub fetched_at: DateTime<Utc>,
}

/// How a store is opened. Every size and timeout is explicit; `Default` gives values fit for
/// one gateway instance.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Run the migrations while opening.
    pub migrate: bool,
    /// SQLite: read-only connections in the read pool.
    pub read_pool_size: u32,
    /// SQLite: writes that may wait for the writer; a caller beyond this waits to enqueue.
    pub write_queue_capacity: usize,
    /// SQLite: most writes committed together in one transaction.
    pub max_batch: usize,
    /// SQLite: how long a connection waits for a lock held by another process.
    pub busy_timeout_ms: u64,
    /// PostgreSQL: connections in the pool.
    pub pg_pool_size: u32,
    /// Both: how long to wait for a pooled connection (PostgreSQL: including connecting).
    pub acquire_timeout_ms: u64,
    /// PostgreSQL: the server cancels any statement running longer (this includes waiting
    /// for locks).
    pub pg_statement_timeout_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            migrate: true,
            read_pool_size: 4,
            write_queue_capacity: 1024,
            max_batch: 256,
            busy_timeout_ms: 5_000,
            pg_pool_size: 10,
            acquire_timeout_ms: 5_000,
            pg_statement_timeout_ms: 30_000,
        }
    }
}

/// Timeouts above this are surely a unit mistake (seconds given as milliseconds × 1000).
const TIMEOUT_MAX_MS: u64 = 3_600_000;

impl StoreOptions {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let positive: [(&str, u64); 4] = [
            ("read_pool_size", u64::from(self.read_pool_size)),
            ("write_queue_capacity", self.write_queue_capacity as u64),
            ("max_batch", self.max_batch as u64),
            ("pg_pool_size", u64::from(self.pg_pool_size)),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(StoreError::InvalidOptions {
                    reason: format!("{name} must be at least 1"),
                });
            }
        }
        let timeouts = [
            ("busy_timeout_ms", self.busy_timeout_ms),
            ("acquire_timeout_ms", self.acquire_timeout_ms),
            ("pg_statement_timeout_ms", self.pg_statement_timeout_ms),
        ];
        for (name, value) in timeouts {
            if value == 0 || value > TIMEOUT_MAX_MS {
                return Err(StoreError::InvalidOptions {
                    reason: format!("{name} must be between 1 and {TIMEOUT_MAX_MS}, got {value}"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_limit_defaults_and_caps() {
        let mut q = AuditQuery::default();
        assert_eq!(q.effective_limit(), AUDIT_QUERY_DEFAULT_LIMIT);
        q.limit = 5;
        assert_eq!(q.effective_limit(), 5);
        q.limit = 1_000_000;
        assert_eq!(q.effective_limit(), AUDIT_QUERY_MAX_LIMIT);
    }

    #[test]
    fn options_refuse_zero_sizes_and_absurd_timeouts() {
        assert!(StoreOptions::default().validate().is_ok());
        let zero_batch = StoreOptions {
            max_batch: 0,
            ..StoreOptions::default()
        };
        assert!(matches!(
            zero_batch.validate(),
            Err(StoreError::InvalidOptions { reason }) if reason.contains("max_batch")
        ));
        let huge_timeout = StoreOptions {
            busy_timeout_ms: TIMEOUT_MAX_MS + 1,
            ..StoreOptions::default()
        };
        assert!(huge_timeout.validate().is_err());
    }
}
