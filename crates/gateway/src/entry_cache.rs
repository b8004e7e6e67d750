//! Accounts' stored statement entries, held in memory for page reads.
//!
//! A page of an account's transactions used to be a store read each time: a
//! hand-off to the database's connection thread and back, 51 rows decoded
//! with the store's checks, then 50 entries written as JSON. That cost about
//! twenty times what the rest of the request does. Pages of an account now
//! come from this copy of its entries, each kept as the JSON the API writes
//! for it:
//!
//! - the copy is made from the store's change feed (`entries_changed_since`,
//!   in `change_seq` order), so it only ever holds what the store committed,
//!   and catching up reads only what changed since the last catch-up;
//! - a sync on this instance invalidates the account right after its commit
//!   ([`EntryCache::invalidate`]), so a read after a sync sees what it stored;
//! - a copy is used for at most `ttl` (`statements.read_cache_ttl_ms`), so
//!   entries stored by another instance (PostgreSQL, several gateways) show up
//!   within that time; `ttl` 0 turns the copy off and every page reads the store;
//! - at most `max_entries` entries are held, over all accounts
//!   (`statements.read_cache_max_entries`): the accounts read least recently
//!   are dropped first, and an account with more entries than that is read
//!   from the store (and looked at again after five minutes). While one
//!   account's copy is being made, up to that many more are in memory;
//! - no request waits for a copy: one that finds its account's copy missing
//!   or out of date reads the store, which answers the same page, and starts
//!   a catch-up in the background; one catch-up runs at a time, over all
//!   accounts;
//! - when a catch-up fails (the store is unreachable, or a row it reads does
//!   not decode), the account is read from the store for `ttl`, where the
//!   request gets the store's own answer (a page, or the error of the
//!   damaged row), before a catch-up is tried again. A row damaged after the
//!   copy read it (on disk, by hand) is not read again until it changes:
//!   the copy keeps answering what was committed, the store path reports
//!   the damage.
//!
//! A page selects entries exactly as the store's `list_entries` does (`seq`
//! after the cursor, booking dates and status as asked, in `seq` order, the
//! store's limit), and its body is written by the same functions as a page
//! read from the store ([`write_entry`], [`crate::transactions::write_page`]), so both answer the
//! same bytes; `crates/gateway/tests/api/transactions.rs` compares them.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use domain::{AccountId, BusinessDate, EntryStatus};
use store::{EntryQuery, Store, StoreError, StoredEntry, ENTRY_QUERY_MAX_LIMIT};

use crate::transactions::write_entry;

/// How long an account found to have more entries than the whole copy may
/// hold is read from the store before its size is looked at again.
const OVERSIZE_RETRY: Duration = Duration::from_secs(300);

/// One entry as a page needs it: what the filters look at, inline (a page
/// scans them in a row), and its JSON, shared between successive copies.
#[derive(Debug, Clone)]
struct CachedEntry {
    seq: i64,
    booking_date: BusinessDate,
    status: EntryStatus,
    json: Arc<[u8]>,
}

impl CachedEntry {
    fn new(e: &StoredEntry) -> Result<CachedEntry, serde_json::Error> {
        let mut json = Vec::with_capacity(640);
        write_entry(&mut json, e)?;
        Ok(CachedEntry {
            seq: e.seq,
            booking_date: e.entry.booking_date,
            status: e.entry.status,
            json: Arc::from(json),
        })
    }

    fn matches(&self, q: &EntryQuery) -> bool {
        q.from.is_none_or(|from| self.booking_date >= from)
            && q.to.is_none_or(|to| self.booking_date <= to)
            && q.status.is_none_or(|status| self.status == status)
    }
}

/// What the store held of one account, as of one catch-up.
#[derive(Debug)]
struct AccountCopy {
    /// In `seq` order; `seq` is unique. Shared with the next copy when a
    /// catch-up finds nothing new (the common case under load).
    entries: Arc<Vec<CachedEntry>>,
    /// The highest `change_seq` read: the next catch-up reads what came after.
    through_change_seq: i64,
    /// The account's invalidation count when the catch-up began.
    generation: u64,
    loaded_at: Instant,
}

/// Why an account is read from the store for a while.
#[derive(Debug, Clone, Copy)]
enum Backoff {
    /// A catch-up failed at this instant.
    Failed(Instant),
    /// The account had more entries than the copy may hold, at this instant.
    Oversize(Instant),
}

#[derive(Debug, Default)]
struct Slot {
    copy: RwLock<Option<Arc<AccountCopy>>>,
    /// Bumped by [`EntryCache::invalidate`]; a copy made before the last bump is stale.
    generation: AtomicU64,
    /// Milliseconds since the cache was made, at the last read (for eviction).
    last_read_ms: AtomicU64,
    /// Whether the account is read from the store for a while.
    backoff: Mutex<Option<Backoff>>,
}

impl Slot {
    /// Entries in the account's copy (0 without one).
    fn held(&self) -> usize {
        self.copy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |c| c.entries.len())
    }
}

/// A page chosen from an account's copy: up to `limit + 1` entries, so the
/// caller knows whether there is a next page. It holds the copy it was
/// chosen from and the positions of its entries there (no per-entry
/// reference counts to touch on the hot path).
#[derive(Debug)]
pub struct CachedPage {
    copy: Arc<AccountCopy>,
    picked: Vec<usize>,
}

impl CachedPage {
    pub fn len(&self) -> usize {
        self.picked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.picked.is_empty()
    }

    /// The `seq` of the `i`-th entry of the page.
    pub fn seq(&self, i: usize) -> Option<i64> {
        let at = *self.picked.get(i)?;
        self.copy.entries.get(at).map(|e| e.seq)
    }

    /// The JSON of the first `n` entries, in order.
    pub fn json(&self, n: usize) -> impl Iterator<Item = &[u8]> {
        self.picked
            .iter()
            .take(n)
            .filter_map(|&at| self.copy.entries.get(at))
            .map(|e| &*e.json)
    }
}

#[derive(Debug)]
pub struct EntryCache {
    store: Arc<dyn Store>,
    ttl: Duration,
    max_entries: usize,
    started: Instant,
    slots: RwLock<HashMap<AccountId, Arc<Slot>>>,
    /// One catch-up at a time, over all accounts: what is being read is
    /// never more than one account's entries beside the copies held, and
    /// copies are installed (and others dropped for the bound) one at a time.
    loader: Arc<tokio::sync::Semaphore>,
    /// Pages answered from the copy since start.
    pages: AtomicU64,
    /// Catch-ups that ended (made a copy, found the account too large, or failed).
    catch_ups: AtomicU64,
}

impl EntryCache {
    /// `ttl` zero or `max_entries` zero: no copy, every page reads the store.
    pub fn new(store: Arc<dyn Store>, ttl: Duration, max_entries: usize) -> EntryCache {
        EntryCache {
            store,
            ttl,
            max_entries,
            started: Instant::now(),
            slots: RwLock::new(HashMap::new()),
            loader: Arc::new(tokio::sync::Semaphore::new(1)),
            pages: AtomicU64::new(0),
            catch_ups: AtomicU64::new(0),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0
    }

    fn slot(&self, account: &AccountId) -> Arc<Slot> {
        if let Some(slot) = self
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
        {
            return slot.clone();
        }
        self.slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(account.clone())
            .or_default()
            .clone()
    }

    /// Marks the account's copy out of date: the next page read catches it up
    /// first. Call it after every store write of the account's entries, once
    /// the write has ended (committed or not).
    pub fn invalidate(&self, account: &AccountId) {
        if !self.enabled() {
            return;
        }
        self.slot(account).generation.fetch_add(1, Ordering::SeqCst);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn fresh(&self, slot: &Slot) -> Option<Arc<AccountCopy>> {
        let copy = slot
            .copy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        (copy.generation == slot.generation.load(Ordering::SeqCst)
            && copy.loaded_at.elapsed() < self.ttl)
            .then_some(copy)
    }

    /// The page `q` asks for, from the account's copy; `None` when the copy
    /// is off, or not up to date: read the store then. A copy that is not up
    /// to date is caught up in the background (one account at a time), so no
    /// request waits for it.
    pub fn page(self: &Arc<Self>, q: &EntryQuery) -> Option<CachedPage> {
        if !self.enabled() {
            return None;
        }
        let slot = self.slot(&q.account_id);
        let now = self.now_ms();
        if slot.last_read_ms.load(Ordering::Relaxed) != now {
            slot.last_read_ms.store(now, Ordering::Relaxed);
        }
        match self.fresh(&slot) {
            Some(copy) => {
                self.pages.fetch_add(1, Ordering::Relaxed);
                Some(select(copy, q))
            }
            None => {
                self.start_catch_up(&q.account_id, slot);
                None
            }
        }
    }

    /// Pages answered from the copy since start (the others read the store).
    pub fn pages_from_memory(&self) -> u64 {
        self.pages.load(Ordering::Relaxed)
    }

    /// Catch-ups that have ended since start, whatever their outcome.
    pub fn catch_ups(&self) -> u64 {
        self.catch_ups.load(Ordering::SeqCst)
    }

    /// Whether the account's pages come from the copy now.
    pub fn is_fresh(&self, account: &AccountId) -> bool {
        self.enabled() && self.fresh(&self.slot(account)).is_some()
    }

    /// Starts catching the account's copy up, unless a catch-up (of any
    /// account) is running or the account is backing off.
    fn start_catch_up(self: &Arc<Self>, account: &AccountId, slot: Arc<Slot>) {
        {
            let backoff = slot.backoff.lock().unwrap_or_else(|p| p.into_inner());
            match *backoff {
                Some(Backoff::Failed(at)) if at.elapsed() < self.ttl => return,
                Some(Backoff::Oversize(at)) if at.elapsed() < OVERSIZE_RETRY => return,
                _ => {}
            }
        }
        let Ok(permit) = self.loader.clone().try_acquire_owned() else {
            return;
        };
        let cache = Arc::clone(self);
        let account = account.clone();
        tokio::spawn(async move {
            cache.catch_up(&account, &slot).await;
            cache.catch_ups.fetch_add(1, Ordering::SeqCst);
            drop(permit);
        });
    }

    /// Brings the account's copy up to what the store holds.
    async fn catch_up(&self, account: &AccountId, slot: &Slot) {
        // Another catch-up may have ended since this one was asked for.
        if self.fresh(slot).is_some() {
            return;
        }
        // Both read before the store is: an invalidation from here on makes
        // this copy stale as soon as it is installed, and the ttl counts
        // from before the read.
        let generation = slot.generation.load(Ordering::SeqCst);
        let started = Instant::now();
        let previous = slot.copy.read().unwrap_or_else(|p| p.into_inner()).clone();
        let outcome = self.read_changes(account, previous.as_deref()).await;
        let mut backoff = slot.backoff.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(Some((entries, through_change_seq))) => {
                *backoff = None;
                drop(backoff);
                self.install(
                    account,
                    slot,
                    Arc::new(AccountCopy {
                        entries,
                        through_change_seq,
                        generation,
                        loaded_at: started,
                    }),
                );
            }
            Ok(None) => {
                *backoff = Some(Backoff::Oversize(Instant::now()));
                drop(backoff);
                *slot.copy.write().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::info!(
                    account = %account,
                    max_entries = self.max_entries,
                    "the account has more statement entries than the page copy may hold; its pages are read from the store"
                );
            }
            Err(err) => {
                *backoff = Some(Backoff::Failed(Instant::now()));
                drop(backoff);
                tracing::warn!(
                    account = %account,
                    error = %err,
                    "could not bring the page copy of the account up to date; its pages are read from the store for now"
                );
            }
        }
    }

    /// The account's entries with what changed since `previous` applied (all
    /// of them without one), and the last `change_seq` read; `None` as soon
    /// as they are more than the copy may hold.
    async fn read_changes(
        &self,
        account: &AccountId,
        previous: Option<&AccountCopy>,
    ) -> Result<Option<(Arc<Vec<CachedEntry>>, i64)>, StoreError> {
        let mut through = previous.map_or(0, |p| p.through_change_seq);
        // Copied (on the first change) only when there is a change.
        let mut entries: Arc<Vec<CachedEntry>> =
            previous.map_or_else(Arc::default, |p| p.entries.clone());
        let ids = std::slice::from_ref(account);
        loop {
            let batch = self
                .store
                .entries_changed_since(ids, through, ENTRY_QUERY_MAX_LIMIT)
                .await?;
            for e in &batch {
                let cached = CachedEntry::new(e).map_err(|err| StoreError::Corrupt {
                    table: "statement_entries",
                    column: "*",
                    reason: format!("an entry does not render as JSON ({err})"),
                })?;
                // New entries come after every held one (the store draws `seq`
                // and `change_seq` in commit order); a change keeps its `seq`.
                let entries = Arc::make_mut(&mut entries);
                match entries.binary_search_by_key(&e.seq, |c| c.seq) {
                    Ok(at) => entries[at] = cached,
                    Err(at) => entries.insert(at, cached),
                }
                through = e.change_seq;
            }
            if entries.len() > self.max_entries {
                return Ok(None);
            }
            if batch.len() < ENTRY_QUERY_MAX_LIMIT as usize {
                return Ok(Some((entries, through)));
            }
        }
    }

    /// Installs `copy` for `account`, dropping the least recently read other
    /// accounts' copies while the total is over the bound.
    /// Runs under the loader's permit, so no two installs interleave.
    fn install(&self, account: &AccountId, slot: &Slot, copy: Arc<AccountCopy>) {
        *slot.copy.write().unwrap_or_else(|p| p.into_inner()) = Some(copy);
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let mut total: usize = slots.values().map(|s| s.held()).sum();
        if total <= self.max_entries {
            return;
        }
        let mut others: Vec<(&AccountId, &Arc<Slot>)> =
            slots.iter().filter(|(id, _)| *id != account).collect();
        others.sort_by_key(|(_, s)| s.last_read_ms.load(Ordering::Relaxed));
        for (_, other) in others {
            if total <= self.max_entries {
                break;
            }
            total -= other.held();
            *other.copy.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// Entries held, over all accounts.
    pub fn held(&self) -> usize {
        self.slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|s| s.held())
            .sum()
    }
}

/// The entries `q` selects, as `list_entries` does: `seq` after the cursor,
/// the filters, `seq` order, the store's limit.
fn select(copy: Arc<AccountCopy>, q: &EntryQuery) -> CachedPage {
    let limit = q.effective_limit() as usize;
    let start = copy.entries.partition_point(|e| e.seq <= q.after_seq);
    let picked = copy.entries[start..]
        .iter()
        .enumerate()
        .filter(|(_, e)| e.matches(q))
        .take(limit)
        .map(|(i, _)| start + i)
        .collect();
    CachedPage { copy, picked }
}
