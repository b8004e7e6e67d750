//! The gateway's view of its banks: one connector per configured connection,
//! each bank's call limits (concurrency and rate), each connection's health,
//! and the balance refresh that stores snapshots.
//!
//! Invariants:
//! - every call to a bank goes through that bank's [`BankGate`] (a permit of
//!   its concurrency limit and a slot of its rate limit);
//! - a balance refresh is single-flight per connection ([`SingleFlight`]): a
//!   refresh asked for while one runs joins it instead of calling the bank again;
//! - snapshots and the audit record of a refresh are stored in one
//!   transaction; a snapshot is only stored for an account the config knows.
//! - every connector is wrapped by `banks::exchange::observe` with an
//!   [`ExchangeRecorder`], so every exchange with a bank is stored (masked)
//!   and audited (`exchanges.rs`).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex as StdMutex},
    time::Duration,
};

use banks::{BalanceOutcome, BalanceQuery, BankConnector, BankError, ConnectionSettings};
use chrono::{DateTime, Utc};
use domain::{AccountId, BankId, Clock, ConnectionId};
use serde::Serialize;
use store::{BalanceSnapshot, NewAuditRecord, Store};
use tokio::{sync::Semaphore, time::Instant};
use utoipa::ToSchema;

use crate::{
    balance_cache::BalanceCache,
    config::{AccountConfig, BankConfig, Config, ConnectionConfig},
    exchanges::{ExchangeRecorder, ReferenceOwners},
    flight::SingleFlight,
};

/// Limits calls to one bank: at most `concurrency` in flight, and call starts
/// spaced so that no more than `queries_per_second` start per second.
#[derive(Debug)]
pub struct BankGate {
    permits: Semaphore,
    interval: Duration,
    next_start: StdMutex<Instant>,
}

impl BankGate {
    pub fn new(concurrency: u32, queries_per_second: u32) -> BankGate {
        let qps = queries_per_second.max(1);
        BankGate {
            permits: Semaphore::new(concurrency.max(1) as usize),
            interval: Duration::from_micros(1_000_000 / u64::from(qps)),
            next_start: StdMutex::new(Instant::now()),
        }
    }

    /// Waits for a permit and a rate slot; the call it admits must be made
    /// while the returned permit is held.
    pub async fn admit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so acquire cannot fail; if it ever
        // did, calling without a permit is safer than not calling at all.
        let permit = self.permits.acquire().await.ok();
        // Reserve this call's start slot under the lock, then wait for it
        // outside: callers wait side by side, each for its own slot, instead
        // of one at a time behind a lock held across the timer (whose 1 ms
        // resolution would then space every caller). A caller dropped while
        // it waits leaves its slot unused: the rate is never exceeded.
        let start = {
            let mut next = self
                .next_start
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let start = (*next).max(Instant::now());
            *next = start + self.interval;
            start
        };
        if start > Instant::now() {
            tokio::time::sleep_until(start).await;
        }
        permit
    }

    /// Runs `call` once a permit and a rate slot are free.
    pub async fn run<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let _permit = self.admit().await;
        call.await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// No call has been made yet.
    Unknown,
    /// The last call succeeded for every account.
    Up,
    /// The last call succeeded but some accounts failed, or some connections of the bank are down.
    Degraded,
    /// The last call failed.
    Down,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionHealth {
    pub status: HealthStatus,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failure's problem code and the bank's code, if any.
    pub last_error: Option<HealthError>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthError {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub bank_code: Option<String>,
    pub detail: String,
}

impl ConnectionHealth {
    fn unknown() -> ConnectionHealth {
        ConnectionHealth {
            status: HealthStatus::Unknown,
            last_attempt_at: None,
            last_success_at: None,
            last_error: None,
        }
    }
}

/// The result of one balance refresh of a connection.
#[derive(Debug, Clone)]
pub struct RefreshReport {
    pub connection_id: ConnectionId,
    pub finished_at: DateTime<Utc>,
    pub stored: Vec<BalanceSnapshot>,
    /// Accounts (and currencies) the bank answered with a per-record failure.
    pub failed: Vec<FailedBalance>,
}

#[derive(Debug, Clone)]
pub struct FailedBalance {
    pub account_id: AccountId,
    pub currency: domain::Currency,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error("storing the balances failed: {0}")]
    Store(String),
    #[error("the refresh task stopped unexpectedly")]
    Aborted,
}

/// One configured connection at run time.
#[derive(Debug)]
pub struct ConnectionRuntime {
    pub config: ConnectionConfig,
    pub bank_id: BankId,
    pub accounts: Vec<AccountConfig>,
    connector: Arc<dyn BankConnector>,
    gate: Arc<BankGate>,
    health: StdMutex<ConnectionHealth>,
}

impl ConnectionRuntime {
    pub fn health(&self) -> ConnectionHealth {
        match self.health.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_health(&self, f: impl FnOnce(&mut ConnectionHealth)) {
        let mut guard = match self.health.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard);
    }

    pub fn connector(&self) -> &Arc<dyn BankConnector> {
        &self.connector
    }

    /// Runs `call` under this bank's concurrency and rate limits.
    pub async fn gated<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        self.gate.run(call).await
    }

    /// Waits until this bank may be called, for a caller that must do
    /// something (commit `submitting`) between admission and the call.
    pub async fn admit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.gate.admit().await
    }
}

/// Every bank and connection of the configuration, ready to be called.
#[derive(Debug)]
pub struct BankDirectory {
    pub banks: Vec<BankConfig>,
    pub connections: BTreeMap<ConnectionId, Arc<ConnectionRuntime>>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    refreshes: SingleFlight<ConnectionId, RefreshReport, RefreshError>,
    /// The latest snapshots in memory for reads; renewed after each refresh.
    pub balance_cache: Arc<BalanceCache>,
    /// What the references of the bank calls in flight belong to, told by the workers
    /// that make them, for the exchanges' audit records (`exchanges.rs`).
    pub reference_owners: Arc<ReferenceOwners>,
}

impl BankDirectory {
    pub fn build(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<BankDirectory, banks::ConnectError> {
        let mut gates = BTreeMap::new();
        for b in &config.banks {
            gates.insert(
                b.id.clone(),
                Arc::new(BankGate::new(
                    b.limits.concurrency,
                    b.limits.queries_per_second,
                )),
            );
        }
        let reference_owners = Arc::new(ReferenceOwners::default());
        let mut connections = BTreeMap::new();
        for (index, c) in config.connections.iter().enumerate() {
            let (Some(bank), Some(gate)) = (config.bank(&c.bank), gates.get(&c.bank)) else {
                return Err(banks::ConnectError {
                    connection: c.id.to_string(),
                    message: format!("bank `{}` is not configured", c.bank),
                });
            };
            let accounts: Vec<AccountConfig> = config
                .accounts
                .iter()
                .filter(|a| a.connection == c.id)
                .cloned()
                .collect();
            // Every exchange of this connection goes to the store and the audit chain.
            let recorder = ExchangeRecorder::new(
                store.clone(),
                accounts
                    .iter()
                    .map(|a| (a.number.as_str().to_owned(), a.id.clone())),
                Arc::clone(&reference_owners),
            );
            let connector = banks::exchange::observe(
                connect(bank, c, index, clock.clone())?,
                Arc::new(recorder),
                clock.clone(),
                bank.id.to_string(),
                c.id.to_string(),
            );
            connections.insert(
                c.id.clone(),
                Arc::new(ConnectionRuntime {
                    config: c.clone(),
                    bank_id: bank.id.clone(),
                    accounts,
                    connector,
                    gate: gate.clone(),
                    health: StdMutex::new(ConnectionHealth::unknown()),
                }),
            );
        }
        Ok(BankDirectory {
            banks: config.banks.clone(),
            connections,
            balance_cache: Arc::new(BalanceCache::new(
                store.clone(),
                Duration::from_millis(config.balances.read_cache_ttl_ms),
            )),
            store,
            clock,
            refreshes: SingleFlight::default(),
            reference_owners,
        })
    }

    pub fn connections_of<'a>(
        &'a self,
        bank: &'a BankId,
    ) -> impl Iterator<Item = &'a Arc<ConnectionRuntime>> + 'a {
        self.connections
            .values()
            .filter(move |c| &c.bank_id == bank)
    }

    /// Refreshes the balances of every account of a connection, or joins the
    /// refresh already running for it. `actor` and `request_id` go into the
    /// audit record of the refresh that actually runs.
    pub async fn refresh_connection(
        &self,
        connection_id: &ConnectionId,
        actor: &str,
        request_id: Option<String>,
    ) -> Result<Arc<RefreshReport>, RefreshError> {
        let Some(conn) = self.connections.get(connection_id).cloned() else {
            return Err(RefreshError::Store(format!(
                "connection {connection_id} is not configured"
            )));
        };
        let job = run_refresh(
            conn,
            self.balance_cache.clone(),
            self.store.clone(),
            self.clock.clone(),
            actor.to_owned(),
            request_id,
        );
        self.refreshes
            .run(connection_id.clone(), RefreshError::Aborted, job)
            .await
    }

    /// Refreshes every connection concurrently; returns each result.
    pub async fn refresh_all(
        &self,
        actor: &str,
    ) -> Vec<(ConnectionId, Result<Arc<RefreshReport>, RefreshError>)> {
        let ids: Vec<ConnectionId> = self.connections.keys().cloned().collect();
        let futs = ids
            .iter()
            .map(|id| async move { (id.clone(), self.refresh_connection(id, actor, None).await) });
        futures::future::join_all(futs).await
    }
}

async fn run_refresh(
    conn: Arc<ConnectionRuntime>,
    cache: Arc<BalanceCache>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    actor: String,
    request_id: Option<String>,
) -> Result<Arc<RefreshReport>, RefreshError> {
    let started = clock.now();
    let mut queries = Vec::new();
    let mut owners: BTreeMap<(String, domain::Currency), AccountId> = BTreeMap::new();
    for a in &conn.accounts {
        for cur in &a.currencies {
            queries.push(BalanceQuery {
                number: a.number.clone(),
                currency: *cur,
            });
            owners.insert((a.number.as_str().to_owned(), *cur), a.id.clone());
        }
    }
    let outcome = conn.gate.run(conn.connector.balances(&queries)).await;
    let finished = clock.now();
    let outcomes = match outcome {
        Ok(o) => o,
        Err(err) => {
            conn.set_health(|h| {
                h.status = HealthStatus::Down;
                h.last_attempt_at = Some(finished);
                h.last_error = Some(HealthError {
                    at: finished,
                    kind: err.outcome_label().to_owned(),
                    bank_code: match &err {
                        BankError::Rejected { code, .. } => Some(code.clone()),
                        _ => None,
                    },
                    detail: err.to_string(),
                });
            });
            let audit = NewAuditRecord {
                at: finished,
                actor,
                action: "balance.refresh".to_owned(),
                object: format!("connection:{}", conn.config.id),
                request_id,
                outcome: err.outcome_label().to_owned(),
                details: serde_json::json!({
                    "bank_id": conn.bank_id.as_str(),
                    "accounts": queries.len(),
                    "error": err.to_string(),
                }),
            };
            // The failure is what the caller needs to hear about; an audit
            // write that fails as well is logged, not swallowed silently.
            if let Err(e) = store.append_audit(audit).await {
                tracing::error!(error = %e, "could not audit a failed balance refresh");
            }
            return Err(RefreshError::Bank(err));
        }
    };
    let mut stored = Vec::new();
    let mut failed = Vec::new();
    for o in outcomes {
        match o {
            BalanceOutcome::Ok(b) => {
                let Some(account_id) = owners.get(&(b.number.as_str().to_owned(), b.currency))
                else {
                    tracing::warn!(
                        bank = %conn.bank_id,
                        account = %b.number.masked(),
                        "bank answered for an account/currency that was not asked; ignored"
                    );
                    continue;
                };
                stored.push(BalanceSnapshot {
                    account_id: account_id.clone(),
                    booked: b.booked,
                    available: b.available,
                    as_of: b.as_of,
                    fetched_at: finished,
                });
            }
            BalanceOutcome::Failed {
                number,
                currency,
                code,
                message,
            } => {
                if let Some(account_id) = owners.get(&(number.as_str().to_owned(), currency)) {
                    failed.push(FailedBalance {
                        account_id: account_id.clone(),
                        currency,
                        code,
                        message,
                    });
                }
            }
        }
    }
    let audit = NewAuditRecord {
        at: finished,
        actor,
        action: "balance.refresh".to_owned(),
        object: format!("connection:{}", conn.config.id),
        request_id,
        outcome: if failed.is_empty() { "ok" } else { "partial" }.to_owned(),
        details: serde_json::json!({
            "bank_id": conn.bank_id.as_str(),
            "stored": stored.iter().map(|s| format!("{}/{}", s.account_id, s.booked.currency())).collect::<Vec<_>>(),
            "failed": failed.iter().map(|f| serde_json::json!({
                "account_id": f.account_id.as_str(),
                "currency": f.currency.code(),
                "code": f.code,
            })).collect::<Vec<_>>(),
            "started_at": started.to_rfc3339(),
        }),
    };
    store
        .save_balances(&stored, audit)
        .await
        .map_err(|e| RefreshError::Store(e.to_string()))?;
    cache.invalidate();
    conn.set_health(|h| {
        h.status = if failed.is_empty() {
            HealthStatus::Up
        } else {
            HealthStatus::Degraded
        };
        h.last_attempt_at = Some(finished);
        h.last_success_at = Some(finished);
        if failed.is_empty() {
            h.last_error = None;
        } else {
            h.last_error = failed.first().map(|f| HealthError {
                at: finished,
                kind: "record_failed".to_owned(),
                bank_code: Some(f.code.clone()),
                detail: format!("account {}: {}", f.account_id, f.message),
            });
        }
    });
    Ok(Arc::new(RefreshReport {
        connection_id: conn.config.id.clone(),
        finished_at: finished,
        stored,
        failed,
    }))
}

/// The connector of connection `c` (the `index`th in the config) of
/// `bank`: its settings from the bank's limits and quirks and the
/// connection's TLS files, its family options from `[banks.iso20022]`; a
/// cn-xml connection with a password or `[connections.signing]` gets them
/// (the clock decides which bank certificates are valid).
fn connect(
    bank: &BankConfig,
    c: &ConnectionConfig,
    index: usize,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn BankConnector>, banks::ConnectError> {
    let settings = ConnectionSettings {
        bank_id: bank.id.to_string(),
        connection_id: c.id.to_string(),
        endpoint: c.endpoint.clone(),
        login: c.login.clone(),
        time_zone: bank.time_zone.tz(),
        connect_timeout: Duration::from_millis(bank.limits.connect_timeout_ms),
        request_timeout: Duration::from_millis(bank.limits.request_timeout_ms),
        max_response_bytes: bank.quirks.max_response_bytes,
        max_accounts_per_query: bank.quirks.max_accounts_per_query,
        max_idle_connections: usize::try_from(bank.limits.concurrency).unwrap_or(usize::MAX),
        tls: match &c.tls {
            None => None,
            Some(tls) => Some(tls.load(index).map_err(|problems| banks::ConnectError {
                connection: c.id.to_string(),
                message: problems.join("; "),
            })?),
        },
    };
    // When the certificates toward the bank end, as metrics, from the files
    // just read (the API's own is recorded where it is loaded).
    if let Some(tls) = &settings.tls {
        crate::ops::certificate_expiry("bank_client", c.id.as_str(), &tls.client_cert_pem);
        crate::ops::certificate_expiry("bank_ca", c.id.as_str(), &tls.ca_cert_pem);
    }
    if bank.family == banks::Family::CnXml && (c.password.is_some() || c.signing.is_some()) {
        let signing = match &c.signing {
            None => None,
            Some(signing) => Some(
                signing
                    .load(index)
                    .map_err(|problems| banks::ConnectError {
                        connection: c.id.to_string(),
                        message: problems.join("; "),
                    })?,
            ),
        };
        let options = banks::cn_xml::CnXmlOptions {
            password: c.password.clone(),
            signing,
            clock,
        };
        return Ok(Arc::new(banks::cn_xml::CnXmlConnector::with_options(
            settings, options,
        )?));
    }
    banks::connect_with(bank.family, settings, bank.family_options())
}

/// Refreshes every connection now and then every `interval` until the
/// shutdown signal fires.
pub async fn balance_worker(
    directory: Arc<BankDirectory>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        for (id, result) in directory.refresh_all("system:balance-worker").await {
            if let Err(e) = result {
                tracing::warn!(connection = %id, error = %e, "balance refresh failed");
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
    use std::path::Path;

    use super::*;

    /// Calls start no closer than the rate allows and no more run at once
    /// than the concurrency, with waiting callers not queued behind one
    /// another's timers (tokio's clock paused: the timings are exact).
    #[tokio::test(start_paused = true)]
    async fn the_bank_gate_spaces_call_starts_and_caps_calls_in_flight() {
        let gate = Arc::new(BankGate::new(2, 100));
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let began = Instant::now();
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let (gate, in_flight, most) = (gate.clone(), in_flight.clone(), most.clone());
                tokio::spawn(async move {
                    let _permit = gate.admit().await;
                    let started = Instant::now();
                    let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    started
                })
            })
            .collect();
        let mut starts = Vec::new();
        for call in calls {
            starts.push(call.await.unwrap());
        }
        starts.sort();
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
        for pair in starts.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(10),
                "starts {:?} apart",
                pair[1] - pair[0]
            );
        }
        // Two at a time, 25 ms each: six calls need three rounds, not more.
        assert!(
            starts[5] - began < Duration::from_millis(80),
            "{:?}",
            starts[5] - began
        );
    }

    /// An iso20022 bank with `table` under it and a connection whose TLS
    /// files are a freshly generated PKI in `dir`.
    fn iso_config(dir: &Path, table: &str) -> Config {
        let pki = crypto::pki::Pki::generate(&["localhost".to_owned()], "PARTNER01").unwrap();
        let files = pki.write_to_dir(dir).unwrap();
        let text = format!(
            r#"
data_dir = "data"

[[banks]]
id = "hausbank"
name = "Hausbank"
family = "iso20022"
time_zone = "Europe/Berlin"
{table}

[[connections]]
id = "hausbank-h2h"
bank = "hausbank"
endpoint = "https://localhost:1/"
login = "PARTNER01"
tls = {{ ca_cert = "{}", client_cert = "{}", client_key = "{}" }}
"#,
            files.ca_cert.display(),
            files.client_cert.display(),
            files.client_key.display()
        );
        Config::from_toml(&text, dir).unwrap()
    }

    #[test]
    fn the_iso20022_table_reaches_the_connector() {
        let dir = tempfile::tempdir().unwrap();
        let config = iso_config(
            dir.path(),
            "[banks.iso20022]\nmax_batch_items = 7\ncharset = \"unicode\"",
        );
        let connector = connect(
            &config.banks[0],
            &config.connections[0],
            0,
            Arc::new(domain::SystemClock),
        )
        .unwrap();
        assert_eq!(connector.max_batch_items(), 7);

        let config = iso_config(dir.path(), "");
        let connector = connect(
            &config.banks[0],
            &config.connections[0],
            0,
            Arc::new(domain::SystemClock),
        )
        .unwrap();
        assert_eq!(
            connector.max_batch_items(),
            banks::iso20022::DEFAULT_MAX_BATCH_ITEMS
        );
    }
}
