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
    /// Its place in the audit chain (`audit.rs`); `None` until the chainer linked it.
    pub position: Option<i64>,
    /// Its chain hash (SHA-256), once linked.
    pub hash: Option<Vec<u8>>,
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
    /// Records at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Records strictly before this instant.
    pub to: Option<DateTime<Utc>>,
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

/// Most entries one `ingest_entries` call may carry (one transaction; a bank's day report
/// is split by the caller beyond this).
pub const INGEST_ENTRIES_MAX: usize = 10_000;

/// Maximum length, in characters, of an entry's `dedupe_key` and `pending_match_key`. Each
/// must also be non-empty.
pub const ENTRY_KEY_MAX_CHARS: usize = 256;

/// `EntryQuery::limit` and the change feed's `limit` above this are lowered to it.
pub const ENTRY_QUERY_MAX_LIMIT: u32 = 1000;

/// A `limit` of 0 means this many.
pub const ENTRY_QUERY_DEFAULT_LIMIT: u32 = 100;

/// Most accounts one change-feed read may name.
pub const CHANGE_FEED_MAX_ACCOUNTS: usize = 1000;

/// Most booked entries `booked_entries_on` returns for one account and day; more is an
/// error, not a silent cut (a continuity check over part of a day would be wrong).
pub const BOOKED_ENTRIES_PER_DAY_MAX: usize = 100_000;

/// Most breaks `continuity_breaks` returns; more is an error, not a silent cut.
pub const CONTINUITY_BREAKS_MAX_ROWS: usize = 10_000;

/// Maximum length, in characters, of `SyncState::last_error` (non-empty when given). The
/// caller shortens longer messages; the store refuses them.
pub const SYNC_ERROR_MAX_CHARS: usize = 1024;

fn effective_entry_limit(limit: u32) -> u32 {
    match limit {
        0 => ENTRY_QUERY_DEFAULT_LIMIT,
        n => n.min(ENTRY_QUERY_MAX_LIMIT),
    }
}

/// One entry offered for ingestion, with the keys the gateway computed (the store does not
/// know bank families).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestEntry {
    /// Its id is freshly generated by the caller and used only if the entry is new; its
    /// `account_id` must be the account of the call.
    pub entry: domain::StatementEntry,
    /// Unique per account, e.g. `bank:<date>:<serial>` or `fp:<fingerprint>:<occurrence>`.
    pub dedupe_key: String,
    /// E.g. `bank:<serial>`: a BOOKED entry with this key replaces a stored PENDING entry of
    /// the same account with the same key instead of being inserted; a PENDING entry with a
    /// key that any stored entry of the account already has is the same transaction
    /// reported again (a late intraday report after the booking), so it is not inserted.
    pub pending_match_key: Option<String>,
}

/// What one `ingest_entries` call did, entry by entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub inserted: u32,
    /// Stored pending entries that became booked (found by dedupe key or by pending match key).
    pub booked_from_pending: u32,
    pub unchanged: u32,
}

/// A page of one account's entries, in ingest order. Pages forward by `after_seq`
/// (exclusive): pass the last `seq` of the previous page, 0 for the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryQuery {
    pub account_id: domain::AccountId,
    /// Booking dates from and to, both inclusive.
    pub from: Option<domain::BusinessDate>,
    pub to: Option<domain::BusinessDate>,
    pub status: Option<domain::EntryStatus>,
    pub after_seq: i64,
    /// 0 means [`ENTRY_QUERY_DEFAULT_LIMIT`]; above [`ENTRY_QUERY_MAX_LIMIT`] it is capped.
    pub limit: u32,
}

impl EntryQuery {
    /// The first page of every entry of `account_id`.
    pub fn all_of(account_id: domain::AccountId) -> EntryQuery {
        EntryQuery {
            account_id,
            from: None,
            to: None,
            status: None,
            after_seq: 0,
            limit: 0,
        }
    }

    /// The most entries the query returns: `limit`, 0 meaning the default, capped.
    pub fn effective_limit(&self) -> u32 {
        effective_entry_limit(self.limit)
    }
}

pub(crate) fn effective_feed_limit(limit: u32) -> u32 {
    effective_entry_limit(limit)
}

/// A stored entry with the store's bookkeeping.
///
/// `seq` is a store-wide counter assigned at insert and never changed, so paging by it is
/// stable. `change_seq` is a second store-wide counter, assigned at insert and again when a
/// pending entry becomes booked: the change feed. Both ascend in commit order, so a reader
/// that has seen N never later sees a smaller value appear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub entry: domain::StatementEntry,
    pub seq: i64,
    pub change_seq: i64,
    /// The `at` of the audit record of the call that inserted it (the caller's clock).
    pub ingested_at: DateTime<Utc>,
    /// The `at` of the audit record of the call that last changed it.
    pub updated_at: DateTime<Utc>,
}

/// A day whose booked entries do not carry the opening balance to the closing one. All
/// amounts are in one currency; `gap == closing - (opening + entries_sum)` and is never zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinuityBreak {
    pub account_id: domain::AccountId,
    pub date: domain::BusinessDate,
    pub opening: domain::Money,
    pub closing: domain::Money,
    /// Signed: credits +, debits −.
    pub entries_sum: domain::Money,
    pub gap: domain::Money,
    /// When the break was first detected; recording the same day again keeps the first.
    pub detected_at: DateTime<Utc>,
}

/// How far the statement sync of one account has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    pub account_id: domain::AccountId,
    /// The last day whose statement is complete in the store.
    pub synced_through: Option<domain::BusinessDate>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// At most [`SYNC_ERROR_MAX_CHARS`] characters; `None` after a success.
    pub last_error: Option<String>,
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
    /// The audit chain: on or off (off only for benchmarks), checkpoint policy and signer.
    pub audit_chain: crate::audit::AuditChainOptions,
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
            audit_chain: crate::audit::AuditChainOptions::default(),
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
        if self.audit_chain.checkpoint_every_records == 0
            || self.audit_chain.checkpoint_every_s == 0
        {
            return Err(StoreError::InvalidOptions {
                reason: "audit_chain: checkpoint_every_records and checkpoint_every_s must be at least 1"
                    .to_owned(),
            });
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
    fn entry_limits_default_and_cap() {
        let mut q = EntryQuery::all_of(domain::AccountId::parse("main").unwrap());
        assert_eq!(q.effective_limit(), ENTRY_QUERY_DEFAULT_LIMIT);
        q.limit = 7;
        assert_eq!(q.effective_limit(), 7);
        q.limit = u32::MAX;
        assert_eq!(q.effective_limit(), ENTRY_QUERY_MAX_LIMIT);
        assert_eq!(effective_feed_limit(0), ENTRY_QUERY_DEFAULT_LIMIT);
        assert_eq!(effective_feed_limit(5_000), ENTRY_QUERY_MAX_LIMIT);
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
