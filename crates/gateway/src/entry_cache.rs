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
//! store's limit). Its entries' JSON is written by the same function as a
//! page read from the store ([`write_entry`]), and its frame by the same
//! constants ([`crate::transactions::write_page`]), so both answer the same
//! bytes; `crates/gateway/tests/api/transactions.rs` compares them.
//!
//! The entries' JSON is held in blocks: up to [`BLOCK_ENTRIES`] entries in
//! a row, in `seq` order, joined by commas, in one buffer. A page of entries
//! that follow one another is then a slice of one or two blocks, and its
//! body is those slices, not a copy of them: the answer is the page's head,
//! the slices and its tail, written to the socket in one call. A catch-up
//! packs again only the block where the first change falls and those after
//! it: usually the last one or two, since new entries come last and a
//! pending entry is booked soon after it arrived; a change to an old entry
//! packs the rest of the account again (once, in the background). A page
//! being sent holds the blocks it is a slice of, so a block a catch-up
//! replaced stays in memory until the slow readers of it are done.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use std::{
    collections::BTreeMap,
    pin::Pin,
    task::{Context, Poll},
};

use axum::body::Bytes;
use domain::{AccountId, BusinessDate, EntryStatus};
use http_body::{Frame, SizeHint};
use store::{EntryQuery, Store, StoreError, StoredEntry, ENTRY_QUERY_MAX_LIMIT};

use crate::transactions::{
    write_entry, write_page_end, PAGE_CURSOR_CLOSE, PAGE_CURSOR_OPEN, PAGE_START,
};

/// Entries in one block of JSON. A page of the largest size the API allows
/// (500) spans at most three blocks; a catch-up packs again at least one
/// block (about 130 KB of JSON).
const BLOCK_ENTRIES: usize = 256;

/// Most pieces a page body is sent in; a page that would need more (entries
/// far apart, chosen by its filters) is copied into one buffer instead.
/// Below hyper's 16 queued buffers per write, so the answer is one write.
const MAX_PAGE_PIECES: usize = 12;

/// How long an account found to have more entries than the whole copy may
/// hold is read from the store before its size is looked at again.
const OVERSIZE_RETRY: Duration = Duration::from_secs(300);

/// What the filters look at of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntryKey {
    seq: i64,
    booking_date: BusinessDate,
    status: EntryStatus,
}

/// One entry as a page needs it: what the filters look at, inline (a page
/// scans them in a row), and where its JSON is in the copy's blocks.
#[derive(Debug, Clone, Copy)]
struct CachedEntry {
    key: EntryKey,
    block: usize,
    /// Its JSON is `blocks[block][start..end]`.
    start: usize,
    end: usize,
}

impl CachedEntry {
    fn seq(&self) -> i64 {
        self.key.seq
    }

    fn matches(&self, q: &EntryQuery) -> bool {
        let k = &self.key;
        q.from.is_none_or(|from| k.booking_date >= from)
            && q.to.is_none_or(|to| k.booking_date <= to)
            && q.status.is_none_or(|status| k.status == status)
    }
}

/// An entry read from the store, with its JSON, not yet packed in a block.
struct ChangedEntry {
    key: EntryKey,
    json: Vec<u8>,
}

impl ChangedEntry {
    fn new(e: &StoredEntry) -> Result<ChangedEntry, serde_json::Error> {
        let mut json = Vec::with_capacity(640);
        write_entry(&mut json, e)?;
        // Held until the catch-up has read all its changes (all the
        // account's entries on the first one): no spare room.
        json.shrink_to_fit();
        Ok(ChangedEntry {
            key: EntryKey {
                seq: e.seq,
                booking_date: e.entry.booking_date,
                status: e.entry.status,
            },
            json,
        })
    }
}

/// An account's entries and their JSON blocks.
#[derive(Debug, Default, Clone)]
struct Entries {
    /// In `seq` order; `seq` is unique.
    list: Vec<CachedEntry>,
    /// Block `b` holds the JSON of a run of consecutive entries of `list`,
    /// in order, joined by commas; blocks come in the order of their entries.
    blocks: Vec<Bytes>,
}

impl Entries {
    fn len(&self) -> usize {
        self.list.len()
    }

    fn json(&self, e: &CachedEntry) -> &[u8] {
        self.blocks
            .get(e.block)
            .and_then(|b| b.get(e.start..e.end))
            .unwrap_or_default()
    }

    /// These entries with `changes` (by `seq`) applied: a change replaces
    /// the entry of its `seq`, or is inserted in `seq` order. Entries before
    /// the block where the first change falls keep their blocks; that block
    /// and the ones after it are packed again.
    fn merged(&self, changes: BTreeMap<i64, ChangedEntry>) -> Entries {
        let Some(first) = changes.keys().next().copied() else {
            return self.clone();
        };
        // The block of the first entry at or after the first change, or the
        // last block when the changes all come after every entry (it may
        // have room for them).
        let at = self.list.partition_point(|e| e.seq() < first);
        let repack_block = self
            .list
            .get(at)
            .or_else(|| self.list.last())
            .map_or(0, |e| e.block);
        let keep = self.list.partition_point(|e| e.block < repack_block);
        let mut out = Entries {
            list: self.list[..keep].to_vec(),
            blocks: self.blocks[..repack_block.min(self.blocks.len())].to_vec(),
        };
        let mut packer = Packer::new(&mut out);
        let mut changes = changes.into_values().peekable();
        for e in &self.list[keep..] {
            while let Some(c) = changes.next_if(|c| c.key.seq < e.seq()) {
                packer.push(c.key, &c.json);
            }
            match changes.next_if(|c| c.key.seq == e.seq()) {
                Some(c) => packer.push(c.key, &c.json),
                None => packer.push(e.key, self.json(e)),
            }
        }
        for c in changes {
            packer.push(c.key, &c.json);
        }
        packer.finish();
        out
    }
}

/// Appends entries to an [`Entries`], [`BLOCK_ENTRIES`] to a block.
struct Packer<'a> {
    out: &'a mut Entries,
    block: Vec<u8>,
    in_block: usize,
}

impl<'a> Packer<'a> {
    fn new(out: &'a mut Entries) -> Packer<'a> {
        Packer {
            out,
            block: Vec::new(),
            in_block: 0,
        }
    }

    fn push(&mut self, key: EntryKey, json: &[u8]) {
        if self.in_block == BLOCK_ENTRIES {
            self.finish();
        }
        if self.in_block > 0 {
            self.block.push(b',');
        }
        let start = self.block.len();
        self.block.extend_from_slice(json);
        self.out.list.push(CachedEntry {
            key,
            block: self.out.blocks.len(),
            start,
            end: self.block.len(),
        });
        self.in_block += 1;
    }

    /// Closes the block being packed, if it has entries.
    fn finish(&mut self) {
        if self.in_block > 0 {
            // Exactly its size: a `Bytes` keeps the spare room of the
            // buffer it is made from.
            let block = std::mem::take(&mut self.block).into_boxed_slice();
            self.out.blocks.push(Bytes::from(block));
            self.in_block = 0;
        }
    }
}

/// What the store held of one account, as of one catch-up.
#[derive(Debug)]
struct AccountCopy {
    /// Shared with the next copy when a catch-up finds nothing new (the
    /// common case under load).
    entries: Arc<Entries>,
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
    picked: Picked,
}

/// The positions of a page's entries in its copy.
#[derive(Debug)]
enum Picked {
    /// Entries in a row (no filter): most pages.
    Run(std::ops::Range<usize>),
    Some(Vec<usize>),
}

impl Picked {
    fn len(&self) -> usize {
        match self {
            Picked::Run(r) => r.len(),
            Picked::Some(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> Option<usize> {
        match self {
            Picked::Run(r) => (i < r.len()).then(|| r.start + i),
            Picked::Some(v) => v.get(i).copied(),
        }
    }
}

impl CachedPage {
    pub fn len(&self) -> usize {
        self.picked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.picked.len() == 0
    }

    /// The `seq` of the `i`-th entry of the page.
    pub fn seq(&self, i: usize) -> Option<i64> {
        let at = self.picked.get(i)?;
        self.copy.entries.list.get(at).map(CachedEntry::seq)
    }

    /// The body of a page of the first `n` entries: the bytes
    /// [`crate::transactions::write_page`] writes for them and `next_cursor`.
    /// Entries that follow one another in a block are one slice of it.
    pub fn body(&self, n: usize, next_cursor: Option<String>) -> serde_json::Result<PageBody> {
        let entries = &*self.copy.entries;
        // Head, up to two block slices and the comma between, and the
        // cursor's three pieces.
        let mut pieces = Vec::with_capacity(7);
        pieces.push(Bytes::from_static(PAGE_START));
        // The run of entries being gathered: block, byte range.
        let mut run: Option<(usize, usize, usize)> = None;
        for e in (0..n.min(self.picked.len()))
            .filter_map(|i| self.picked.get(i))
            .filter_map(|at| entries.list.get(at))
        {
            match &mut run {
                // The next entry of the same block: the comma between them
                // is already there.
                Some((block, _, end)) if *block == e.block && e.start == *end + 1 => *end = e.end,
                _ => {
                    if let Some((block, start, end)) = run.take() {
                        pieces.push(entries.blocks[block].slice(start..end));
                        pieces.push(Bytes::from_static(b","));
                    }
                    run = Some((e.block, e.start, e.end));
                }
            }
        }
        if let Some((block, start, end)) = run {
            pieces.push(entries.blocks[block].slice(start..end));
        }
        match next_cursor {
            // A cursor is base64url, which JSON writes as it is: the cursor's
            // own buffer is sent, between the quotes.
            Some(cursor)
                if cursor
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                pieces.push(Bytes::from_static(PAGE_CURSOR_OPEN));
                pieces.push(Bytes::from(cursor));
                pieces.push(Bytes::from_static(PAGE_CURSOR_CLOSE));
            }
            next_cursor => {
                let mut tail = Vec::with_capacity(64 + next_cursor.as_ref().map_or(0, String::len));
                write_page_end(&mut tail, next_cursor.as_deref())?;
                pieces.push(Bytes::from(tail));
            }
        }
        if pieces.len() > MAX_PAGE_PIECES {
            let mut whole = Vec::with_capacity(pieces.iter().map(Bytes::len).sum());
            for piece in &pieces {
                whole.extend_from_slice(piece);
            }
            pieces = vec![Bytes::from(whole)];
        }
        Ok(PageBody::new(pieces))
    }
}

/// A response body sent as the pieces it was given, in order, with its
/// exact length known (so it goes out with a `content-length`).
#[derive(Debug)]
pub struct PageBody {
    /// In reverse order: the next piece is popped off the end.
    pieces: Vec<Bytes>,
    remaining: u64,
}

impl PageBody {
    fn new(mut pieces: Vec<Bytes>) -> PageBody {
        pieces.retain(|p| !p.is_empty());
        pieces.reverse();
        let remaining = pieces.iter().map(|p| p.len() as u64).sum();
        PageBody { pieces, remaining }
    }
}

impl http_body::Body for PageBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = self.pieces.pop();
        if let Some(piece) = &next {
            self.remaining -= piece.len() as u64;
        }
        Poll::Ready(next.map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
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

    /// Milliseconds from the cache's start to `at`.
    fn ms_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    fn fresh(&self, slot: &Slot) -> Option<Arc<AccountCopy>> {
        self.fresh_at(slot, Instant::now())
    }

    /// The slot's copy if it is up to date at `now`.
    fn fresh_at(&self, slot: &Slot, now: Instant) -> Option<Arc<AccountCopy>> {
        let copy = slot
            .copy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        (copy.generation == slot.generation.load(Ordering::SeqCst)
            && now.saturating_duration_since(copy.loaded_at) < self.ttl)
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
        let now = Instant::now();
        let now_ms = self.ms_at(now);
        // The usual case, without touching the slot's reference count
        // (shared by every request of the account, on every worker); the
        // page is chosen after the lock is let go, so a long filtered scan
        // never holds up another account's first read.
        let fresh = {
            let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
            slots.get(&q.account_id).and_then(|slot| {
                if slot.last_read_ms.load(Ordering::Relaxed) != now_ms {
                    slot.last_read_ms.store(now_ms, Ordering::Relaxed);
                }
                self.fresh_at(slot, now)
            })
        };
        if let Some(copy) = fresh {
            self.pages.fetch_add(1, Ordering::Relaxed);
            return Some(select(copy, q));
        }
        let slot = self.slot(&q.account_id);
        slot.last_read_ms.store(now_ms, Ordering::Relaxed);
        self.start_catch_up(&q.account_id, slot);
        None
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
    ) -> Result<Option<(Arc<Entries>, i64)>, StoreError> {
        let mut through = previous.map_or(0, |p| p.through_change_seq);
        let held: Arc<Entries> = previous.map_or_else(Arc::default, |p| p.entries.clone());
        // By `seq`: an entry changed twice since the last catch-up is its
        // last change (the store reads in `change_seq` order).
        let mut changes: BTreeMap<i64, ChangedEntry> = BTreeMap::new();
        let mut added = 0usize;
        let ids = std::slice::from_ref(account);
        loop {
            let batch = self
                .store
                .entries_changed_since(ids, through, ENTRY_QUERY_MAX_LIMIT)
                .await?;
            for e in &batch {
                let changed = ChangedEntry::new(e).map_err(|err| StoreError::Corrupt {
                    table: "statement_entries",
                    column: "*",
                    reason: format!("an entry does not render as JSON ({err})"),
                })?;
                // A change keeps its `seq`; a new entry has one not held yet.
                let new = held
                    .list
                    .binary_search_by_key(&e.seq, CachedEntry::seq)
                    .is_err();
                if changes.insert(e.seq, changed).is_none() && new {
                    added += 1;
                }
                through = e.change_seq;
            }
            if held.len() + added > self.max_entries {
                return Ok(None);
            }
            if batch.len() < ENTRY_QUERY_MAX_LIMIT as usize {
                break;
            }
        }
        if changes.is_empty() {
            return Ok(Some((held, through)));
        }
        Ok(Some((Arc::new(held.merged(changes)), through)))
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
    let list = &copy.entries.list;
    let start = list.partition_point(|e| e.seq() <= q.after_seq);
    let picked = if q.from.is_none() && q.to.is_none() && q.status.is_none() {
        Picked::Run(start..list.len().min(start.saturating_add(limit)))
    } else {
        Picked::Some(
            list[start..]
                .iter()
                .enumerate()
                .filter(|(_, e)| e.matches(q))
                .take(limit)
                .map(|(i, _)| start + i)
                .collect(),
        )
    };
    CachedPage { copy, picked }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transactions::write_page;

    fn day(d: u32) -> BusinessDate {
        BusinessDate::parse_iso(&format!("2026-09-{d:02}")).unwrap()
    }

    /// An entry whose JSON names its seq and version, so a test can tell
    /// which one a page holds.
    fn change(seq: i64, version: u32) -> ChangedEntry {
        ChangedEntry {
            key: EntryKey {
                seq,
                booking_date: day(1 + (seq % 28) as u32),
                status: if seq % 3 == 0 {
                    EntryStatus::Pending
                } else {
                    EntryStatus::Booked
                },
            },
            json: format!(
                r#"{{"seq":{seq},"v":{version},"pad":"{}"}}"#,
                "x".repeat((seq % 7) as usize)
            )
            .into_bytes(),
        }
    }

    fn changes(seqs: impl IntoIterator<Item = i64>, version: u32) -> BTreeMap<i64, ChangedEntry> {
        seqs.into_iter().map(|s| (s, change(s, version))).collect()
    }

    /// Every entry's JSON, in order, as `(seq, json)`.
    fn contents(e: &Entries) -> Vec<(i64, String)> {
        e.list
            .iter()
            .map(|c| (c.seq(), String::from_utf8(e.json(c).to_vec()).unwrap()))
            .collect()
    }

    fn expected(seqs_versions: &[(i64, u32)]) -> Vec<(i64, String)> {
        seqs_versions
            .iter()
            .map(|&(s, v)| (s, String::from_utf8(change(s, v).json).unwrap()))
            .collect()
    }

    /// Blocks hold consecutive entries joined by commas, and nothing else.
    fn assert_packed(e: &Entries) {
        for (b, block) in e.blocks.iter().enumerate() {
            let members: Vec<&CachedEntry> = e.list.iter().filter(|c| c.block == b).collect();
            assert!(!members.is_empty() && members.len() <= BLOCK_ENTRIES);
            let joined: Vec<u8> = members
                .iter()
                .map(|c| e.json(c).to_vec())
                .collect::<Vec<_>>()
                .join(&b","[..]);
            assert_eq!(&block[..], &joined[..], "block {b}");
        }
        assert!(e
            .list
            .windows(2)
            .all(|w| w[0].seq() < w[1].seq() && w[0].block <= w[1].block));
    }

    /// A page of `picked`, held as a run when they follow one another (as
    /// `select` holds a page without filters).
    fn page_of(entries: &Arc<Entries>, picked: Vec<usize>) -> CachedPage {
        let picked = match (picked.first(), picked.windows(2).all(|w| w[1] == w[0] + 1)) {
            (Some(&first), true) => Picked::Run(first..first + picked.len()),
            _ => Picked::Some(picked),
        };
        CachedPage {
            copy: Arc::new(AccountCopy {
                entries: Arc::clone(entries),
                through_change_seq: 0,
                generation: 0,
                loaded_at: Instant::now(),
            }),
            picked,
        }
    }

    /// The body's bytes, read as hyper reads it, and the number of pieces.
    fn read(mut body: PageBody) -> (Vec<u8>, usize) {
        use http_body::Body as _;
        let announced = body.size_hint().exact().unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (mut bytes, mut pieces) = (Vec::new(), 0);
        while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
            bytes.extend_from_slice(&frame.unwrap().into_data().unwrap());
            pieces += 1;
        }
        assert!(body.is_end_stream());
        assert_eq!(announced, bytes.len() as u64);
        (bytes, pieces)
    }

    #[test]
    fn a_catch_up_packs_again_only_from_the_block_of_its_first_change() {
        let first = Entries::default().merged(changes(1..=600, 1));
        assert_eq!(first.blocks.len(), 3);
        assert_packed(&first);
        let all: Vec<(i64, u32)> = (1..=600).map(|s| (s, 1)).collect();
        assert_eq!(contents(&first), expected(&all));

        // Appended entries: only the last block is packed again.
        let appended = first.merged(changes(601..=700, 1));
        assert_packed(&appended);
        assert_eq!(appended.blocks.len(), 3);
        for b in 0..2 {
            assert_eq!(
                appended.blocks[b].as_ptr(),
                first.blocks[b].as_ptr(),
                "block {b} kept"
            );
        }
        let all: Vec<(i64, u32)> = (1..=700).map(|s| (s, 1)).collect();
        assert_eq!(contents(&appended), expected(&all));

        // A change in the second block and one in the third, an entry
        // inserted between two held ones, and a new one at the end, in one
        // catch-up.
        let gapped = Entries::default().merged(changes((1..=700).filter(|s| s % 100 != 50), 1));
        let mut catch_up = changes([300, 650], 2);
        catch_up.insert(450, change(450, 3));
        catch_up.insert(1000, change(1000, 2));
        let after = gapped.merged(catch_up);
        assert_packed(&after);
        assert_eq!(
            after.blocks[0].as_ptr(),
            gapped.blocks[0].as_ptr(),
            "block 0 kept"
        );
        let mut want: Vec<(i64, u32)> = (1..=700)
            .filter(|s| s % 100 != 50 || *s == 450 || *s == 650)
            .map(|s| match s {
                300 | 650 => (s, 2),
                450 => (s, 3),
                _ => (s, 1),
            })
            .collect();
        want.push((1000, 2));
        let got = contents(&after);
        let want = expected(&want);
        let differ: Vec<_> = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| g != w)
            .take(3)
            .collect();
        assert!(
            differ.is_empty() && got.len() == want.len(),
            "{} vs {}: {differ:?}",
            got.len(),
            want.len()
        );
    }

    #[test]
    fn a_change_before_every_entry_or_at_a_block_start_keeps_the_blocks_packed() {
        let held = Entries::default().merged(changes((10..=700).filter(|s| *s != 266), 1));
        // 266 is the first entry of the second block's place: 10..=265 fill
        // the first block.
        assert_eq!(held.list[BLOCK_ENTRIES].seq(), 267);
        for (first, want_kept) in [(1, false), (266, true)] {
            let after = held.merged(changes([first], 2));
            assert_packed(&after);
            assert_eq!(
                after.blocks[0].as_ptr() == held.blocks[0].as_ptr(),
                want_kept,
                "{first}"
            );
            let mut want: Vec<(i64, u32)> =
                (10..=700).filter(|s| *s != 266).map(|s| (s, 1)).collect();
            want.push((first, 2));
            want.sort_unstable();
            assert_eq!(contents(&after), expected(&want), "{first}");
        }
    }

    #[test]
    fn select_picks_what_the_store_would() {
        let copy = Arc::new(AccountCopy {
            entries: Arc::new(Entries::default().merged(changes(1..=600, 1))),
            through_change_seq: 0,
            generation: 0,
            loaded_at: Instant::now(),
        });
        let account = AccountId::parse("east-1").unwrap();
        let query = |after_seq, limit, from: Option<u32>, to: Option<u32>, status| EntryQuery {
            account_id: account.clone(),
            from: from.map(day),
            to: to.map(day),
            status,
            after_seq,
            limit,
        };
        let cases = [
            query(0, 51, None, None, None),
            query(255, 51, None, None, None),
            query(580, 51, None, None, None),
            query(600, 51, None, None, None),
            query(0, 0, None, None, None),
            query(10, 51, None, None, Some(EntryStatus::Pending)),
            query(0, 51, Some(3), Some(9), None),
            query(300, 501, Some(5), None, Some(EntryStatus::Booked)),
        ];
        for q in cases {
            // Written out from the keys, as the store's query reads.
            let want: Vec<i64> = copy
                .entries
                .list
                .iter()
                .map(|e| e.key)
                .filter(|k| k.seq > q.after_seq)
                .filter(|k| q.from.is_none_or(|f| k.booking_date >= f))
                .filter(|k| q.to.is_none_or(|t| k.booking_date <= t))
                .filter(|k| q.status.is_none_or(|st| k.status == st))
                .map(|k| k.seq)
                .take(q.effective_limit() as usize)
                .collect();
            let page = select(Arc::clone(&copy), &q);
            let got: Vec<i64> = (0..page.len()).filter_map(|i| page.seq(i)).collect();
            assert_eq!(got, want, "after {} limit {}", q.after_seq, q.limit);
            let unfiltered = q.from.is_none() && q.to.is_none() && q.status.is_none();
            assert_eq!(matches!(page.picked, Picked::Run(_)), unfiltered);
        }
    }

    #[test]
    fn a_page_body_is_the_bytes_write_page_writes_in_a_few_pieces() {
        let entries = Arc::new(Entries::default().merged(changes(1..=1200, 1)));
        let cursor = Some("YTF8ZWFzdC0xfDUw");
        let cases: Vec<(Vec<usize>, usize, Option<&str>)> = vec![
            ((0..51).collect(), 50, cursor),
            ((230..290).collect(), 60, cursor), // across a block boundary
            ((0..500).collect(), 500, None),    // the largest page, three blocks
            ((1190..1200).collect(), 10, None), // the last, partly filled block
            ((0..1200).step_by(3).take(51).collect(), 50, cursor), // filtered: copied
            (vec![], 0, None),                  // an empty page
            (vec![7], 1, Some("c\"\\quoted")),
        ];
        for (picked, n, next) in cases {
            let want = write_page(
                picked
                    .iter()
                    .take(n)
                    .map(|&at| entries.json(&entries.list[at])),
                next,
                0,
                |body, json| {
                    body.extend_from_slice(json);
                    Ok(())
                },
            )
            .unwrap();
            let (got, pieces) = read(
                page_of(&entries, picked.clone())
                    .body(n, next.map(str::to_owned))
                    .unwrap(),
            );
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap(),
                "picked from {:?}",
                picked.first()
            );
            assert!(pieces <= MAX_PAGE_PIECES, "{pieces} pieces");
            let consecutive = picked.windows(2).all(|w| w[1] == w[0] + 1);
            if consecutive && n > 0 {
                // head, at most three block slices and the commas between, tail
                assert!(pieces <= 7, "{pieces} pieces for consecutive entries");
            }
        }
    }
}
