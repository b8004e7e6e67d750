//! Statement sync: pulls each account's entries from its bank into the store,
//! deduplicated, and checks continuity.
//!
//! Windows overlap: the first sync of an account reads
//! `initial_lookback_days`; later ones re-read `overlap_days` before the last
//! synced day, so late and corrected entries are found, and reach back to
//! the earliest day with an unresolved continuity break, so that a break is
//! re-checked (and cleared) once the bank sends what was missing. Re-reading is safe
//! because ingestion is idempotent: every entry carries a dedupe key computed
//! here from the family's declared policy (DESIGN.md, "Statements"):
//!
//! - with a reliable bank id: `bank:<booking date>:<id>` (id unique per
//!   account and day) or `bank:<id>` (unique per account);
//! - otherwise the fingerprint plus the entry's occurrence number among the
//!   entries with the same fingerprint in the report: `fp:<hash>:<n>`. Windows
//!   are whole days, so the numbering of a day is the same in every report
//!   that contains it, and two identical ¥100 credits stay two entries.
//!
//! A pending entry is stored under a pending key and carries a match key
//! (`id:<value date>:<bank id>` where bank ids are unique per day, as the
//! booking may move the booking date but not the value date); when the bank
//! books it, the booked entry replaces the pending one (same id, same place
//! in the ingest order) instead of being added beside it.
//!
//! Invariants: a sync of one account is single-flight; entries are written in
//! chunks, each chunk one transaction with its audit record; the synced-through
//! mark moves only after every chunk and the continuity check are stored.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use banks::{BankEntry, BankError, DayBalance, DedupeKeyPolicy, TransactionQuery};
use chrono::{DateTime, Utc};
use domain::{
    continuity_gap, fingerprint, net_movement, non_empty_trimmed, AccountId, BusinessDate, Clock,
    Counterparty, EntryId, EntryStatus, StatementEntry, ThreadRandom,
};
use store::{ContinuityBreak, IngestEntry, NewAuditRecord, Store, SyncState};

use crate::{
    banking::{BankDirectory, ConnectionRuntime},
    config::{AccountConfig, Config, StatementsConfig},
    entry_cache::EntryCache,
    flight::SingleFlight,
};

/// Invalidates the account's page copy when dropped: after a write of its
/// entries ends, however it ends.
struct InvalidateAfter<'a> {
    cache: &'a EntryCache,
    account: &'a AccountId,
}

impl Drop for InvalidateAfter<'_> {
    fn drop(&mut self) {
        self.cache.invalidate(self.account);
    }
}

/// What one sync of one account did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub account_id: AccountId,
    pub from: BusinessDate,
    pub to: BusinessDate,
    pub inserted: u32,
    pub booked_from_pending: u32,
    pub unchanged: u32,
    /// Days whose entries do not add up to the bank's closing balance.
    pub continuity_breaks: Vec<BusinessDate>,
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error("the bank sent an entry that cannot be stored: {0}")]
    BadEntry(String),
    #[error("storing the entries failed: {0}")]
    Store(String),
    #[error("account {0} is not configured")]
    UnknownAccount(String),
    #[error("the sync task stopped unexpectedly")]
    Aborted,
}

/// Syncs accounts' statements; one per gateway.
#[derive(Debug)]
pub struct StatementSync {
    accounts: BTreeMap<AccountId, AccountConfig>,
    directory: Arc<BankDirectory>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: StatementsConfig,
    flights: SingleFlight<AccountId, SyncReport, SyncError>,
    /// Told after every write of an account's entries.
    entry_cache: Arc<EntryCache>,
}

impl StatementSync {
    pub fn new(
        config: &Config,
        directory: Arc<BankDirectory>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        entry_cache: Arc<EntryCache>,
    ) -> Self {
        StatementSync {
            entry_cache,
            accounts: config
                .accounts
                .iter()
                .map(|a| (a.id.clone(), a.clone()))
                .collect(),
            directory,
            store,
            clock,
            settings: config.statements.clone(),
            flights: SingleFlight::default(),
        }
    }

    /// Syncs one account, or joins the sync of it already running.
    pub async fn sync_account(
        self: &Arc<Self>,
        account_id: &AccountId,
        actor: &str,
        request_id: Option<String>,
    ) -> Result<Arc<SyncReport>, SyncError> {
        let this = self.clone();
        let id = account_id.clone();
        let actor = actor.to_owned();
        self.flights
            .run(account_id.clone(), SyncError::Aborted, async move {
                this.run_sync(&id, &actor, request_id).await.map(Arc::new)
            })
            .await
    }

    /// Syncs every account, one connection's accounts after another (the
    /// bank's own limits apply on top).
    pub async fn sync_all(
        self: &Arc<Self>,
        actor: &str,
    ) -> Vec<(AccountId, Result<Arc<SyncReport>, SyncError>)> {
        let mut results = Vec::new();
        let ids: Vec<AccountId> = self.accounts.keys().cloned().collect();
        for id in ids {
            let r = self.sync_account(&id, actor, None).await;
            results.push((id, r));
        }
        results
    }

    async fn run_sync(
        &self,
        account_id: &AccountId,
        actor: &str,
        request_id: Option<String>,
    ) -> Result<SyncReport, SyncError> {
        let account = self
            .accounts
            .get(account_id)
            .ok_or_else(|| SyncError::UnknownAccount(account_id.to_string()))?;
        let conn = self
            .directory
            .connections
            .get(&account.connection)
            .ok_or_else(|| SyncError::UnknownAccount(account_id.to_string()))?
            .clone();
        let zone = self
            .directory
            .banks
            .iter()
            .find(|b| b.id == conn.bank_id)
            .map(|b| b.time_zone)
            .unwrap_or(domain::BankTimeZone::SHANGHAI);
        let today = BusinessDate::today(self.clock.as_ref(), zone);
        let state = self
            .store
            .sync_state(account_id)
            .await
            .map_err(|e| SyncError::Store(e.to_string()))?;
        // A day whose balances did not add up is read again on every sync
        // until it does (the bank may send the missing entry late); breaks
        // older than the lookback cannot widen the window, so only the
        // lookback's are read.
        let lookback_start = today
            .add_days(-i64::from(self.settings.initial_lookback_days))
            .map_err(|e| SyncError::BadEntry(e.to_string()))?;
        let earliest_break = self
            .store
            .continuity_breaks(account_id, Some(lookback_start), None)
            .await
            .map_err(|e| SyncError::Store(e.to_string()))?
            .first()
            .map(|b| b.date);
        let from = window_start(
            today,
            state.as_ref().and_then(|s| s.synced_through),
            earliest_break,
            &self.settings,
        )?;

        let result = self
            .sync_window(account, &conn, from, today, actor, request_id)
            .await;
        let now = self.clock.now();
        let new_state = SyncState {
            account_id: account_id.clone(),
            synced_through: match &result {
                Ok(_) => Some(today),
                Err(_) => state.as_ref().and_then(|s| s.synced_through),
            },
            last_success_at: match &result {
                Ok(_) => Some(now),
                Err(_) => state.as_ref().and_then(|s| s.last_success_at),
            },
            last_error: result.as_ref().err().map(ToString::to_string),
        };
        self.store
            .save_sync_state(&new_state)
            .await
            .map_err(|e| SyncError::Store(e.to_string()))?;
        result
    }

    async fn sync_window(
        &self,
        account: &AccountConfig,
        conn: &Arc<ConnectionRuntime>,
        from: BusinessDate,
        to: BusinessDate,
        actor: &str,
        request_id: Option<String>,
    ) -> Result<SyncReport, SyncError> {
        let policy = conn.connector().dedupe_policy();
        let mut report = SyncReport {
            account_id: account.id.clone(),
            from,
            to,
            inserted: 0,
            booked_from_pending: 0,
            unchanged: 0,
            continuity_breaks: Vec::new(),
            finished_at: self.clock.now(),
        };
        for currency in &account.currencies {
            let query = TransactionQuery {
                number: account.number.clone(),
                currency: *currency,
                from,
                to,
            };
            let bank_report = conn.gated(conn.connector().transactions(&query)).await?;
            let entries = keyed_entries(&account.id, policy, &bank_report.entries)?;
            for chunk in entries.chunks(self.settings.ingest_chunk_size.max(1)) {
                let audit = NewAuditRecord {
                    at: self.clock.now(),
                    actor: actor.to_owned(),
                    action: "statement.ingest".to_owned(),
                    object: format!("account:{}", account.id),
                    request_id: request_id.clone(),
                    outcome: "ok".to_owned(),
                    details: serde_json::json!({
                        "bank_id": conn.bank_id.as_str(),
                        "currency": currency.code(),
                        "window": [from.to_string(), to.to_string()],
                        "entries": chunk.len(),
                    }),
                };
                let written = {
                    // Committed or not (an unknown outcome may have committed),
                    // and also if this sync is dropped while the write runs:
                    // the page copy catches up before a page is read from it.
                    let _tell = InvalidateAfter {
                        cache: &self.entry_cache,
                        account: &account.id,
                    };
                    self.store
                        .ingest_entries(&account.id, chunk.to_vec(), audit)
                        .await
                };
                let r = written.map_err(|e| SyncError::Store(e.to_string()))?;
                report.inserted += r.inserted;
                report.booked_from_pending += r.booked_from_pending;
                report.unchanged += r.unchanged;
            }
            for day in &bank_report.day_balances {
                if self.check_continuity(&account.id, conn, day).await? {
                    report.continuity_breaks.push(day.date);
                }
            }
        }
        report.finished_at = self.clock.now();
        metrics::counter!("statement_entries_ingested_total", "bank" => conn.bank_id.to_string())
            .increment(u64::from(report.inserted));
        Ok(report)
    }

    /// Compares the bank's day balances with the booked entries stored for
    /// that day; stores (or clears) a break. Returns whether the day breaks.
    async fn check_continuity(
        &self,
        account_id: &AccountId,
        conn: &ConnectionRuntime,
        day: &DayBalance,
    ) -> Result<bool, SyncError> {
        let stored = self
            .store
            .booked_entries_on(account_id, day.date)
            .await
            .map_err(|e| SyncError::Store(e.to_string()))?;
        let moves: Vec<_> = stored
            .iter()
            .filter(|e| e.entry.amount.currency() == day.opening.currency())
            .map(|e| (e.entry.direction, e.entry.amount))
            .collect();
        let gap = continuity_gap(day.opening, moves.iter().copied(), day.closing)
            .map_err(|e| SyncError::BadEntry(e.to_string()))?;
        let brk = match gap {
            None => None,
            Some(gap) => {
                let sum = net_movement(day.opening.currency(), moves.iter().copied())
                    .map_err(|e| SyncError::BadEntry(e.to_string()))?;
                tracing::warn!(bank = %conn.bank_id, account = %account_id, date = %day.date, gap = %gap, "statement continuity break");
                metrics::counter!("statement_continuity_breaks_total", "bank" => conn.bank_id.to_string()).increment(1);
                Some(ContinuityBreak {
                    account_id: account_id.clone(),
                    date: day.date,
                    opening: day.opening,
                    closing: day.closing,
                    entries_sum: sum,
                    gap,
                    detected_at: self.clock.now(),
                })
            }
        };
        let broken = brk.is_some();
        self.store
            .record_continuity(account_id, day.date, brk)
            .await
            .map_err(|e| SyncError::Store(e.to_string()))?;
        Ok(broken)
    }
}

/// The first day of the next sync window: the lookback on the first sync,
/// then the overlap before the last synced day, reaching back to the
/// earliest unresolved continuity break; never before the lookback.
fn window_start(
    today: BusinessDate,
    synced_through: Option<BusinessDate>,
    earliest_break: Option<BusinessDate>,
    settings: &StatementsConfig,
) -> Result<BusinessDate, SyncError> {
    let bad = |e: domain::DomainError| SyncError::BadEntry(e.to_string());
    let earliest = today
        .add_days(-i64::from(settings.initial_lookback_days))
        .map_err(bad)?;
    let start = match synced_through {
        None => earliest,
        Some(done) => done
            .add_days(-i64::from(settings.overlap_days))
            .map_err(bad)?,
    };
    let start = earliest_break.map_or(start, |day| start.min(day));
    Ok(start.max(earliest).min(today))
}

/// Turns the bank's entries into store entries with their dedupe keys.
fn keyed_entries(
    account_id: &AccountId,
    policy: DedupeKeyPolicy,
    entries: &[BankEntry],
) -> Result<Vec<IngestEntry>, SyncError> {
    let rng = ThreadRandom;
    let mut occurrences: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let fp = fingerprint(
            account_id,
            e.booking_date,
            e.direction,
            e.amount,
            e.counterparty_name.as_deref(),
            e.counterparty_account.as_deref(),
            e.remittance.as_deref(),
        );
        let bank_id = match policy {
            DedupeKeyPolicy::Fingerprint => None,
            _ => e
                .bank_transaction_id
                .as_deref()
                .filter(|s| !s.trim().is_empty()),
        };
        // The match key must survive the booking (which may move the
        // booking date) and be unique where the serial is: serials unique
        // per day are paired with the value date, which booking keeps.
        let match_key = bank_id.map(|id| match policy {
            DedupeKeyPolicy::BankIdPerAccountAndDate => format!("id:{}:{id}", e.value_date),
            _ => format!("id:{id}"),
        });
        let (dedupe_key, pending_match_key) = match (bank_id, e.status) {
            (Some(id), EntryStatus::Pending) => {
                (format!("pending:{}:{id}", e.value_date), match_key)
            }
            (Some(id), EntryStatus::Booked) => {
                let key = match policy {
                    DedupeKeyPolicy::BankIdPerAccountAndDate => {
                        format!("bank:{}:{id}", e.booking_date)
                    }
                    _ => format!("bank:{id}"),
                };
                (key, match_key)
            }
            (None, status) => {
                let n = occurrences.entry(format!("{fp}:{status:?}")).or_insert(0);
                *n += 1;
                let prefix = match status {
                    EntryStatus::Pending => "fp-pending",
                    EntryStatus::Booked => "fp",
                };
                (format!("{prefix}:{fp}:{n}"), None)
            }
        };
        let mut entry = StatementEntry::new(
            EntryId::generate(&rng),
            account_id.clone(),
            e.direction,
            e.amount,
            e.booking_date,
            e.value_date,
            e.status,
        )
        .map_err(|err| SyncError::BadEntry(err.to_string()))?;
        entry.counterparty = Counterparty::from_bank_text(
            e.counterparty_name.as_deref(),
            e.counterparty_account.as_deref(),
            e.counterparty_bank.as_deref(),
        );
        entry.remittance = non_empty_trimmed(e.remittance.as_deref());
        entry.bank_transaction_id = non_empty_trimmed(e.bank_transaction_id.as_deref());
        entry.end_to_end_id = non_empty_trimmed(e.end_to_end_id.as_deref());
        entry.running_balance = e.running_balance;
        entry
            .validate()
            .map_err(|err| SyncError::BadEntry(err.to_string()))?;
        out.push(IngestEntry {
            entry,
            dedupe_key,
            pending_match_key,
        });
    }
    Ok(out)
}

/// Syncs every account now and then every `interval` until shutdown.
pub async fn statement_worker(
    sync: Arc<StatementSync>,
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        for (id, result) in sync.sync_all("system:statement-worker").await {
            if let Err(e) = result {
                tracing::warn!(account = %id, error = %e, "statement sync failed");
            }
            if *shutdown.borrow() {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> BusinessDate {
        BusinessDate::parse_iso(s).unwrap()
    }

    #[test]
    fn windows_start_with_the_lookback_then_overlap() {
        let s = StatementsConfig::default();
        let today = d("2026-11-28");
        assert_eq!(
            window_start(today, None, None, &s).unwrap(),
            d("2026-08-30")
        );
        assert_eq!(
            window_start(today, Some(d("2026-11-27")), None, &s).unwrap(),
            d("2026-11-24")
        );
        // A mark far in the past never widens the window beyond the lookback.
        assert_eq!(
            window_start(today, Some(d("2020-01-01")), None, &s).unwrap(),
            d("2026-08-30")
        );
        // An open break reaches back to its day, within the lookback.
        assert_eq!(
            window_start(today, Some(d("2026-11-27")), Some(d("2026-10-31")), &s).unwrap(),
            d("2026-10-31")
        );
        assert_eq!(
            window_start(today, Some(d("2026-11-27")), Some(d("2026-01-01")), &s).unwrap(),
            d("2026-08-30")
        );
        assert_eq!(
            window_start(today, Some(d("2026-11-27")), Some(d("2026-11-26")), &s).unwrap(),
            d("2026-11-24")
        );
    }
}
