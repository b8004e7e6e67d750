//! banksim: simulated banks, one per protocol family, running as real HTTP
//! servers on loopback over a generated ledger, with fault injection.
//!
//! Two families: cn-xml (plain HTTP, GBK packets) and iso20022 (HTTPS with
//! mutual TLS, ISO 20022 files); [`SimBankConfig::family`] chooses.
//!
//! The gateway's tests, the `bankdirect sim` and `bankdirect demo` commands
//! and the conformance suite talk to a [`SimServer`] exactly as they would to
//! a bank: over a socket, in the family's wire format (built and parsed by
//! `formats`, never by `banks`, so that a bug in a connector's transport
//! cannot hide behind the same bug in the simulator). Everything a simulated
//! bank holds comes from its [`SimBankConfig`]'s `bank_id` and `seed`, so a
//! run is reproducible; time comes from an injected [`domain::Clock`].
//!
//! Layout:
//! - this file: the config, the error type, and [`SimServer`] (bind, route,
//!   shut down);
//! - [`ledger`]: accounts and balances, generated deterministically;
//! - [`history`]: each account's statement history (generation with its
//!   deliberate quirks, paging, day balances), consistent with the ledger;
//! - [`payments`]: payment instructions executed against the ledger,
//!   settled, returned, each reference at most once;
//! - [`batches`]: batch chunks (supplier and payroll runs) executed item by
//!   item by the same payment book, with partial rejections;
//! - [`faults`]: the ways a simulated bank can be told to misbehave, before
//!   or after execution, by rule or at random from a seed;
//! - [`cn_xml`]: the cn-xml front machine (one packet per POST to `/`);
//! - [`signing`]: its SM2 signatures (answers signed, requests checked,
//!   the login's password) and SM2 certificates for tests and demos;
//! - [`iso20022`]: the iso20022 host-to-host gateway (order types `HTD`,
//!   `CCT`, `PSR`, `C52`, `C53`, `C54` under `/h2h/`), ISO 20022 files
//!   translated to and from the same ledger and payment book;
//! - `tls` (private): HTTPS with mutual TLS for the iso20022 family
//!   (rustls on ring, tokio-rustls and hyper), certificates from
//!   [`crypto::pki`];
//! - [`control`]: the JSON control API under `/_sim/` for tests and people
//!   poking a demo (ledger view, faults, balance adjustments, entries).
//!
//! The simulator logs account numbers masked to their last four digits, like
//! the rest of bankdirect.

pub mod batches;
pub mod cn_xml;
pub mod control;
pub mod faults;
pub mod history;
pub mod iso20022;
pub mod ledger;
pub mod payments;
pub mod signing;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use domain::{BankTimeZone, Clock, SystemClock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use batches::BatchView;
pub use cn_xml::CnXmlQuirks;
pub use control::{AccountView, EntryView, LedgerView, TotalView};
pub use crypto::pki::Pki;
pub use faults::{Fault, FaultHandle, FaultRule, RandomFaultRule, RandomFaults, When};
pub use history::{NewSimEntry, SimEntry};
pub use ledger::{Ledger, SimAccount, MAX_ACCOUNTS_PER_CURRENCY};
pub use payments::{ExecutionView, PaymentBook, SimPaymentConfig};
pub use signing::{CnXmlSimOptions, SigningIdentity, SimSigning};

/// The cn-xml family: GBK XML packets over HTTP (docs/families/cn-xml.md).
pub const FAMILY_CN_XML: &str = "cn-xml";
/// The iso20022 family: ISO 20022 files over HTTPS with mutual TLS
/// (docs/families/iso20022.md).
pub const FAMILY_ISO20022: &str = "iso20022";
/// Largest request body any endpoint reads, in bytes. A cn-xml request of 50
/// accounts is a few kilobytes; a batch chunk of 500 items with every field
/// at its longest is about 400 kilobytes.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// How long [`SimServer::shutdown`] waits for in-flight requests (a delayed
/// answer, say) before cutting them off.
pub const SHUTDOWN_TIMEOUT_MS: u64 = 2_000;
/// Longest bank id or login accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// How often due settlements and returns are applied, in milliseconds, when
/// nobody asks (every query applies them too), while a payment is in flight.
pub const PAYMENT_TICK_MS: u64 = 10;

/// What a simulated bank does besides its identity: payment behaviour and
/// random faults. Kept apart from [`SimBankConfig`] so that existing configs
/// stay valid; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimOptions {
    pub payments: SimPaymentConfig,
    /// Faults drawn at random from their seed; `None` for none.
    pub random_faults: Option<RandomFaults>,
}

/// What an iso20022 bank needs besides [`SimOptions`]: its certificates
/// and its report page size. Kept out of [`SimOptions`] because a [`Pki`]
/// holds keys (no `PartialEq`, never serialized) and so that existing
/// `SimOptions` literals stay valid. Ignored by a cn-xml bank.
#[derive(Debug, Clone)]
pub struct IsoOptions {
    /// The CA, server and client certificates; `None` generates a fresh
    /// PKI at start (server names `localhost`, `127.0.0.1` and the bound
    /// address; client common name the bank's login).
    pub pki: Option<Pki>,
    /// Entries per C52/C53/C54 page, 1..=[`iso20022::MAX_PAGE_SIZE`].
    pub page_size: usize,
}

impl Default for IsoOptions {
    fn default() -> IsoOptions {
        IsoOptions {
            pki: None,
            page_size: iso20022::DEFAULT_PAGE_SIZE,
        }
    }
}

/// What one simulated bank is: its identity, family, seed and size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SimBankConfig {
    pub bank_id: String,
    /// Protocol family: [`FAMILY_CN_XML`] or [`FAMILY_ISO20022`].
    pub family: String,
    /// With `bank_id`, decides every generated account and quirk.
    pub seed: u64,
    /// The one login name the simulated front machine accepts.
    pub login: String,
    pub cny_accounts: usize,
    pub usd_accounts: usize,
    /// EUR accounts; absent in older configs, which had none.
    #[serde(default)]
    pub eur_accounts: usize,
    /// IANA zone of the bank's dates and times, e.g. `Asia/Shanghai`.
    pub time_zone: String,
}

impl SimBankConfig {
    /// A small cn-xml bank for demos and tests: login `DEMO01`, five CNY and
    /// two USD accounts, Shanghai time.
    pub fn cn_xml_demo(bank_id: &str, seed: u64) -> SimBankConfig {
        SimBankConfig {
            bank_id: bank_id.to_string(),
            family: FAMILY_CN_XML.to_string(),
            seed,
            login: "DEMO01".to_string(),
            cny_accounts: 5,
            usd_accounts: 2,
            eur_accounts: 0,
            time_zone: "Asia/Shanghai".to_string(),
        }
    }

    /// A small iso20022 bank for demos and tests: partner id `PARTNER01`,
    /// three EUR and two USD accounts (German IBANs), Berlin time.
    pub fn iso20022_demo(bank_id: &str, seed: u64) -> SimBankConfig {
        SimBankConfig {
            bank_id: bank_id.to_string(),
            family: FAMILY_ISO20022.to_string(),
            seed,
            login: "PARTNER01".to_string(),
            cny_accounts: 0,
            usd_accounts: 2,
            eur_accounts: 3,
            time_zone: "Europe/Berlin".to_string(),
        }
    }

    /// Whether this bank speaks the iso20022 family.
    pub fn is_iso20022(&self) -> bool {
        self.family == FAMILY_ISO20022
    }

    /// Checks what [`SimServer::start`] needs; the error names the field and
    /// what was expected.
    pub fn validate(&self) -> Result<(), SimError> {
        let invalid = |message: String| Err(SimError::InvalidConfig { message });
        if self.bank_id.is_empty() || self.bank_id.len() > MAX_NAME_BYTES {
            return invalid(format!(
                "bank_id is {} bytes long; expected 1..={MAX_NAME_BYTES}",
                self.bank_id.len()
            ));
        }
        if self.family != FAMILY_CN_XML && self.family != FAMILY_ISO20022 {
            return invalid(format!(
                "family is {:?}; expected {FAMILY_CN_XML:?} or {FAMILY_ISO20022:?}",
                self.family
            ));
        }
        if self.login.is_empty()
            || self.login.len() > MAX_NAME_BYTES
            || !self.login.bytes().all(|b| b.is_ascii_graphic())
        {
            return invalid(format!(
                "login must be 1..={MAX_NAME_BYTES} printable ASCII characters without spaces"
            ));
        }
        for (field, count) in [
            ("cny_accounts", self.cny_accounts),
            ("usd_accounts", self.usd_accounts),
            ("eur_accounts", self.eur_accounts),
        ] {
            if count > MAX_ACCOUNTS_PER_CURRENCY {
                return invalid(format!(
                    "{field} is {count}; expected at most {MAX_ACCOUNTS_PER_CURRENCY}"
                ));
            }
        }
        BankTimeZone::parse(&self.time_zone).map_err(|e| SimError::InvalidConfig {
            message: format!("time_zone: {e}"),
        })?;
        Ok(())
    }
}

/// What went wrong starting or driving a simulated bank.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulated bank config: {message}")]
    InvalidConfig { message: String },
    #[error("could not bind the simulated bank to {addr}: {source}; expected a free local address (port 0 picks one)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no account {masked} in the simulated ledger")]
    UnknownAccount { masked: String },
    #[error("adjusting account {masked} would overflow its balance; expected a result that fits a signed 64-bit count of minor units")]
    AmountOverflow { masked: String },
    #[error("invalid fault rule: {message}")]
    InvalidFault { message: String },
    #[error("invalid entry for account {masked}: {message}")]
    InvalidEntry { masked: String, message: String },
    #[error("account {masked} has no pending entry with serial {serial:?}; expected the serial of a visible entry with status pending")]
    NoPendingEntry { masked: String, serial: String },
}

/// Masks an account number for logs and errors: all but the last four
/// characters become `*` (the same rule as `banks::mask_account`, which this
/// crate may not depend on).
pub(crate) fn mask(number: &str) -> String {
    let count = number.chars().count();
    number
        .chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < count { '*' } else { c })
        .collect()
}

/// What every handler of one simulated bank shares.
pub(crate) struct SimState {
    pub(crate) cfg: SimBankConfig,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) faults: FaultHandle,
    pub(crate) served: AtomicU64,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) time_zone: BankTimeZone,
    pub(crate) quirks: CnXmlQuirks,
    pub(crate) payments: Arc<PaymentBook>,
    /// The iso20022 front's files and page size (unused by cn-xml).
    pub(crate) iso: iso20022::IsoState,
    /// How a cn-xml bank signs answers and checks requests; `None`: no
    /// signatures.
    pub(crate) signing: Option<signing::SigningState>,
    /// The password a cn-xml request's `PASSWD` must carry; `None`: not
    /// checked.
    pub(crate) password: Option<crypto::SecretString>,
    /// Turns true (or its sender is dropped) when the server stops; a delayed
    /// answer watches it so that shutdown does not wait out the delay.
    pub(crate) stopping: watch::Receiver<bool>,
}

impl SimState {
    /// Resolves once the server is stopping.
    pub(crate) async fn stopped(&self) {
        let mut stopping = self.stopping.clone();
        // An error means the sender is gone, which also means stopping.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }
}

/// A running simulated bank. Dropping it stops the server as
/// [`SimServer::shutdown`] does, without waiting.
pub struct SimServer {
    local_addr: SocketAddr,
    state: Arc<SimState>,
    /// The certificates of an iso20022 bank; `None` for cn-xml.
    pki: Option<Pki>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("bank_id", &self.state.cfg.bank_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl SimServer {
    /// Starts the bank on `addr` (port 0 picks a free port) with the system
    /// clock.
    pub async fn start(cfg: SimBankConfig, addr: SocketAddr) -> Result<SimServer, SimError> {
        SimServer::start_with_clock(cfg, addr, Arc::new(SystemClock)).await
    }

    /// Starts the bank with an injected clock, for reproducible dates and
    /// times in balance answers and histories (they end on the clock's
    /// today in the bank's zone).
    pub async fn start_with_clock(
        cfg: SimBankConfig,
        addr: SocketAddr,
        clock: Arc<dyn Clock>,
    ) -> Result<SimServer, SimError> {
        SimServer::start_with_options(cfg, addr, clock, SimOptions::default()).await
    }

    /// Starts the bank with an injected clock and payment and fault options.
    /// An iso20022 bank gets [`IsoOptions::default`] (a fresh PKI).
    pub async fn start_with_options(
        cfg: SimBankConfig,
        addr: SocketAddr,
        clock: Arc<dyn Clock>,
        options: SimOptions,
    ) -> Result<SimServer, SimError> {
        SimServer::start_with_iso_options(cfg, addr, clock, options, IsoOptions::default()).await
    }

    /// Starts the bank with everything injectable. A cn-xml bank serves
    /// plain HTTP and ignores `iso`; an iso20022 bank serves HTTPS only,
    /// requiring a client certificate issued by the PKI's CA.
    pub async fn start_with_iso_options(
        cfg: SimBankConfig,
        addr: SocketAddr,
        clock: Arc<dyn Clock>,
        options: SimOptions,
        iso: IsoOptions,
    ) -> Result<SimServer, SimError> {
        SimServer::start_with_all_options(
            cfg,
            addr,
            clock,
            options,
            iso,
            CnXmlSimOptions::default(),
        )
        .await
    }

    /// Starts a cn-xml bank that signs its answers, checks requests'
    /// signatures and its login's password as `cn` says
    /// ([`signing::CnXmlSimOptions`]).
    pub async fn start_with_cn_xml_options(
        cfg: SimBankConfig,
        addr: SocketAddr,
        clock: Arc<dyn Clock>,
        options: SimOptions,
        cn: CnXmlSimOptions,
    ) -> Result<SimServer, SimError> {
        SimServer::start_with_all_options(cfg, addr, clock, options, IsoOptions::default(), cn)
            .await
    }

    async fn start_with_all_options(
        cfg: SimBankConfig,
        addr: SocketAddr,
        clock: Arc<dyn Clock>,
        options: SimOptions,
        iso: IsoOptions,
        cn: CnXmlSimOptions,
    ) -> Result<SimServer, SimError> {
        cfg.validate()?;
        let signing = match cn.signing {
            Some(signing) if !cfg.is_iso20022() => {
                Some(signing::SigningState::new(&cfg.bank_id, signing)?)
            }
            _ => None,
        };
        options.payments.validate()?;
        iso20022::check_page_size(iso.page_size)?;
        let faults = FaultHandle::new();
        if let Some(random) = options.random_faults {
            faults.set_random(random)?;
        }
        let time_zone =
            BankTimeZone::parse(&cfg.time_zone).map_err(|e| SimError::InvalidConfig {
                message: format!("time_zone: {e}"),
            })?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let tls = if cfg.is_iso20022() {
            let pki = match iso.pki {
                Some(pki) => pki,
                None => tls::generate_pki(&cfg, local_addr)?,
            };
            let acceptor = tls::acceptor(&pki)?;
            Some((pki, acceptor))
        } else {
            None
        };
        let (stop, stopping) = watch::channel(false);
        let ledger = Arc::new(Ledger::generate_with_clock(&cfg, Arc::clone(&clock)));
        let payments = Arc::new(PaymentBook::new(
            &cfg.bank_id,
            cfg.seed,
            Arc::clone(&ledger),
            options.payments,
        ));
        let state = Arc::new(SimState {
            ledger,
            payments,
            quirks: CnXmlQuirks::for_bank(&cfg.bank_id, cfg.seed),
            iso: iso20022::IsoState::new(iso.page_size),
            signing,
            password: cn.password,
            faults,
            served: AtomicU64::new(0),
            clock,
            time_zone,
            cfg,
            stopping,
        });
        let app = router(Arc::clone(&state));
        let bank_id = state.cfg.bank_id.clone();
        let signal_state = Arc::clone(&state);
        let tick_state = Arc::clone(&state);
        let (pki, acceptor) = match tls {
            Some((pki, acceptor)) => (Some(pki), Some(acceptor)),
            None => (None, None),
        };
        let task = tokio::spawn(async move {
            let ticker = async {
                let mut tick = tokio::time::interval(Duration::from_millis(PAYMENT_TICK_MS));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    // Nothing in flight: no tick until a payment is recorded
                    // (an idle bank wakes nobody 100 times a second).
                    if !tick_state.payments.advance() {
                        tick_state.payments.recorded().await;
                    }
                }
            };
            let served = async move {
                match acceptor {
                    Some(acceptor) => {
                        tls::serve(listener, acceptor, app, signal_state).await;
                        Ok(())
                    }
                    None => {
                        axum::serve(listener, app)
                            .with_graceful_shutdown(async move { signal_state.stopped().await })
                            .await
                    }
                }
            };
            tokio::select! {
                result = served => {
                    if let Err(error) = result {
                        tracing::error!(bank = %bank_id, %error, "simulated bank server failed");
                    }
                }
                () = ticker => {}
            }
        });
        tracing::info!(bank = %state.cfg.bank_id, family = %state.cfg.family, %local_addr,
            amount_decimals = state.quirks.amount_decimals, "simulated bank listening");
        Ok(SimServer {
            local_addr,
            state,
            pki,
            stop,
            task,
        })
    }

    /// The bank's base URL: the cn-xml endpoint, e.g.
    /// `http://127.0.0.1:40123/`, or for an iso20022 bank the HTTPS base,
    /// e.g. `https://127.0.0.1:40123/` (order types under `h2h/`, the
    /// control API under `_sim/`, both over mutual TLS).
    pub fn url(&self) -> String {
        if self.state.cfg.is_iso20022() {
            format!("https://{}/", self.local_addr)
        } else {
            format!("http://{}/", self.local_addr)
        }
    }

    /// The certificates of an iso20022 bank (the CA a client trusts, the
    /// client certificate and key it presents); `None` for cn-xml.
    pub fn pki(&self) -> Option<&Pki> {
        self.pki.as_ref()
    }

    /// The certificate a signing cn-xml bank signs its answers under (what
    /// a client pins); `None` when it does not sign.
    pub fn signing_certificate(&self) -> Option<&crypto::Certificate> {
        self.state.signing.as_ref().map(|s| s.bank.certificate())
    }

    /// [`SimServer::signing_certificate`] as PEM.
    pub fn signing_certificate_pem(&self) -> Option<&str> {
        self.state
            .signing
            .as_ref()
            .map(|s| s.bank.certificate_pem())
    }

    /// Entries per C52/C53/C54 page of an iso20022 bank.
    pub fn iso_page_size(&self) -> usize {
        self.state.iso.page_size()
    }

    /// Changes the report page size from the next request on.
    pub fn set_iso_page_size(&self, page_size: usize) -> Result<(), SimError> {
        iso20022::check_page_size(page_size)?;
        self.state.iso.set_page_size(page_size);
        Ok(())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn config(&self) -> &SimBankConfig {
        &self.state.cfg
    }

    pub fn quirks(&self) -> CnXmlQuirks {
        self.state.quirks
    }

    pub fn ledger(&self) -> Arc<Ledger> {
        Arc::clone(&self.state.ledger)
    }

    pub fn faults(&self) -> FaultHandle {
        self.state.faults.clone()
    }

    /// The payment book: executions, payment behaviour at run time.
    pub fn payments(&self) -> Arc<PaymentBook> {
        Arc::clone(&self.state.payments)
    }

    /// Every instruction the bank executed and how often (the same as
    /// `GET /_sim/executions`), batch items included.
    pub fn executions(&self) -> Vec<ExecutionView> {
        self.state.payments.executions()
    }

    /// Every batch chunk the bank took in (the same as `GET /_sim/batches`).
    pub fn batches(&self) -> Vec<BatchView> {
        self.state.payments.batches()
    }

    /// Packets received at the cn-xml endpoint, or requests at the
    /// iso20022 order types, counted on arrival (so a delayed or faulted
    /// one counts too); control API calls do not count.
    pub fn requests_served(&self) -> u64 {
        self.state.served.load(Ordering::Relaxed)
    }

    /// Stops accepting, breaks the connections of answers held back by a
    /// `Delay` fault, lets other in-flight requests finish for at most
    /// [`SHUTDOWN_TIMEOUT_MS`], then stops waiting for them.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        let limit = Duration::from_millis(SHUTDOWN_TIMEOUT_MS);
        if tokio::time::timeout(limit, &mut self.task).await.is_err() {
            tracing::warn!(bank = %self.state.cfg.bank_id, "simulated bank did not stop in time; aborting it");
            self.task.abort();
        }
    }
}

fn router(state: Arc<SimState>) -> Router {
    let front = if state.cfg.is_iso20022() {
        Router::new().route("/h2h/{order}", any(iso20022::endpoint))
    } else {
        Router::new().route("/", post(cn_xml_endpoint))
    };
    front
        .route(
            "/_sim/iso20022/config",
            get(control::iso_config).put(control::set_iso_config),
        )
        .route(
            "/_sim/faults",
            get(control::list_faults)
                .post(control::inject_fault)
                .delete(control::clear_faults),
        )
        .route(
            "/_sim/faults/random",
            get(control::random_faults)
                .put(control::set_random_faults)
                .delete(control::clear_random_faults),
        )
        .route("/_sim/executions", get(control::executions))
        .route("/_sim/batches", get(control::batches))
        .route(
            "/_sim/payments/config",
            get(control::payment_config).put(control::set_payment_config),
        )
        .route("/_sim/ledger", get(control::ledger))
        .route("/_sim/accounts/{number}/adjust", post(control::adjust))
        .route(
            "/_sim/accounts/{number}/entries",
            get(control::list_entries).post(control::add_entry),
        )
        .route(
            "/_sim/accounts/{number}/entries/{serial}/book",
            post(control::book_pending),
        )
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

async fn cn_xml_endpoint(
    State(state): State<Arc<SimState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    state.served.fetch_add(1, Ordering::Relaxed);
    let signature = headers
        .get(formats::cn_xml::SIGNATURE_HEADER)
        .map(axum::http::HeaderValue::as_bytes);
    cn_xml::serve_packet(&state, &body, signature).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_the_last_four() {
        assert_eq!(mask("755900012310001"), "***********0001");
        assert_eq!(mask("12"), "12");
    }

    #[test]
    fn config_is_validated() {
        assert!(SimBankConfig::cn_xml_demo("cmb", 1).validate().is_ok());
        let mut cfg = SimBankConfig::cn_xml_demo("cmb", 1);
        cfg.family = "psd2-rest".into();
        assert!(cfg.validate().is_err());
        let mut cfg = SimBankConfig::cn_xml_demo("cmb", 1);
        cfg.time_zone = "Mars/Olympus".into();
        assert!(cfg.validate().is_err());
        let mut cfg = SimBankConfig::cn_xml_demo("cmb", 1);
        cfg.login = "has space".into();
        assert!(cfg.validate().is_err());
        let mut cfg = SimBankConfig::cn_xml_demo("cmb", 1);
        cfg.usd_accounts = MAX_ACCOUNTS_PER_CURRENCY + 1;
        assert!(cfg.validate().is_err());
    }
}
