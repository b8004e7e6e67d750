//! The latest balance snapshots, held in memory for reads.
//!
//! Balance reads are the most polled call of the API; each one used to be a
//! SQLite round trip (a hand-off to sqlx's connection thread and back), which
//! cost more than everything else the request does. Reads now come from this
//! copy of what the store holds:
//!
//! - a refresh on this instance invalidates it right after its commit, so a
//!   read after a refresh always sees the new snapshot;
//! - a copy is used for at most `ttl` (config `balances.read_cache_ttl_ms`),
//!   so snapshots written by another instance (PostgreSQL, several gateways)
//!   show up within that time; `ttl` 0 reads the store every time;
//! - a reload is single-flight: when the copy expires under load, one task
//!   reads the store and the others wait for it.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use domain::AccountId;
use store::{BalanceSnapshot, Store, StoreError};

type Snapshots = Arc<BTreeMap<AccountId, Vec<BalanceSnapshot>>>;

#[derive(Debug)]
pub struct BalanceCache {
    store: Arc<dyn Store>,
    ttl: Duration,
    current: RwLock<Option<(Instant, Snapshots)>>,
    reload: tokio::sync::Mutex<()>,
}

impl BalanceCache {
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> BalanceCache {
        BalanceCache {
            store,
            ttl,
            current: RwLock::new(None),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Snapshots> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|(loaded, _)| loaded.elapsed() < self.ttl)
            .map(|(_, snapshots)| snapshots.clone())
    }

    /// Every account's latest snapshots, by account id.
    pub async fn all(&self) -> Result<Snapshots, StoreError> {
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        let _one_loader = self.reload.lock().await;
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        let started = Instant::now();
        let mut by_account: BTreeMap<AccountId, Vec<BalanceSnapshot>> = BTreeMap::new();
        for s in self.store.latest_balances().await? {
            by_account.entry(s.account_id.clone()).or_default().push(s);
        }
        let snapshots = Arc::new(by_account);
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = Some((started, snapshots.clone()));
        Ok(snapshots)
    }

    /// Drops the copy; the next read loads what the store holds now.
    pub fn invalidate(&self) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = None;
    }
}
