//! Configuration: one TOML file plus `BANKDIRECT_*` environment overrides,
//! with DESIGN.md's levels — bank, connection, account, clients, users.
//!
//! Loading is two steps: [`figment`] merges the file and the environment and
//! deserialises (a wrong type or an unknown key is reported with its dotted
//! path and what was expected), then [`Config::validate`] checks what serde
//! cannot: identifiers, cross references between levels, ranges.
//!
//! Environment overrides use `__` between levels, e.g.
//! `BANKDIRECT_SERVER__LISTEN=127.0.0.1:9000` or
//! `BANKDIRECT_DATABASE__URL=postgres://…`. Arrays (banks, accounts, …) are
//! configured in the file only.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use domain::{
    AccountId, AccountNumber, BankId, BankTimeZone, ClientId, ConnectionId, Currency, Money, UserId,
};
use figment::{
    providers::{Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

use crate::auth::Scope;

/// Sections that environment variables may override. Anything else under
/// `BANKDIRECT_` (for example test settings) is not configuration.
const ENV_SECTIONS: &[&str] = &[
    "data_dir",
    "server",
    "database",
    "auth",
    "balances",
    "statements",
    "payments",
    "webhooks",
    "audit",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the database file and generated keys live. Relative paths are
    /// resolved against the config file's directory.
    pub data_dir: PathBuf,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub balances: BalancesConfig,
    #[serde(default)]
    pub statements: StatementsConfig,
    #[serde(default)]
    pub payments: PaymentsConfig,
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Where the master key that opens sealed values lives (docs/secrets.md).
    #[serde(default)]
    pub secrets: SecretsConfig,
    #[serde(default)]
    pub banks: Vec<BankConfig>,
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Maker-checker rules (docs/approvals.md): a payment or batch they match
    /// waits in `pending_approval` for distinct approvers.
    #[serde(default)]
    pub approval_rules: Vec<ApprovalRuleConfig>,
    /// Simulated banks that `bankdirect sim` and `bankdirect demo` start.
    /// The gateway itself ignores them.
    #[serde(default)]
    pub simulators: Vec<SimulatorConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `[server.limits]`: rate limits per client and per address, JSON depth, query length.
    pub limits: RequestLimits,
    /// `[server.cors]`: off unless origins are listed.
    pub cors: CorsConfig,
    /// `[server.headers]`: HSTS.
    pub headers: HeadersConfig,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Upper bound for handling one request, bank calls included.
    pub request_timeout_ms: u64,
    /// Endpoints that answer without a token; each can be closed.
    pub open_endpoints: OpenEndpoints,
    /// Default and largest page sizes for lists.
    pub default_page_size: u32,
    pub max_page_size: u32,
    /// Serve the API over TLS with this certificate and key (reloaded from
    /// the files without a restart when they change). Absent: plain HTTP.
    pub tls: Option<ServerTlsConfig>,
}

/// `[server.tls]`: the API's certificate chain and key, PEM files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The certificate chain, leaf first; relative to the config file.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, SEC1 or PKCS#1 PEM); relative to the config file.
    pub key_file: PathBuf,
    /// How often the files are checked for a new certificate, in seconds.
    #[serde(default = "default_tls_reload_interval_s")]
    pub reload_interval_s: u64,
}

fn default_tls_reload_interval_s() -> u64 {
    30
}

impl ServerTlsConfig {
    fn resolve(&mut self, base_dir: &Path) {
        for path in [&mut self.cert_file, &mut self.key_file] {
            if path.is_relative() {
                *path = base_dir.join(&*path);
            }
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=86_400).contains(&self.reload_interval_s) {
            problems.push("server.tls.reload_interval_s: expected 1 to 86400 seconds".to_owned());
        }
        problems
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            limits: RequestLimits::default(),
            cors: CorsConfig::default(),
            headers: HeadersConfig::default(),
            max_body_bytes: 1024 * 1024,
            request_timeout_ms: 30_000,
            open_endpoints: OpenEndpoints::default(),
            default_page_size: 100,
            max_page_size: 500,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenEndpoints {
    pub healthz: bool,
    pub readyz: bool,
    pub metrics: bool,
    pub openapi: bool,
    pub docs: bool,
}

impl Default for OpenEndpoints {
    fn default() -> Self {
        OpenEndpoints {
            healthz: true,
            readyz: true,
            metrics: true,
            openapi: true,
            docs: true,
        }
    }
}

/// `[server.limits]`: how fast and how big requests may be (docs/security.md).
/// The rates are token buckets: a subject may send `client_burst` requests
/// at once, then `client_requests_per_s` a second.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLimits {
    /// Sustained requests per second of one authenticated subject (a client
    /// id, or `user:<id>` for a person).
    pub client_requests_per_s: u32,
    /// Requests one subject may send at once above the sustained rate.
    pub client_burst: u32,
    /// Failed `POST /oauth/token` attempts one source IP address may make
    /// per minute, sustained (a wrong secret, password or code).
    pub token_failures_per_minute: u32,
    /// Failed token attempts one address may make in a row before it is
    /// throttled.
    pub token_failure_burst: u32,
    /// Deepest nesting of arrays and objects accepted in a JSON body.
    pub max_json_depth: usize,
    /// Longest query string accepted, in bytes.
    pub max_query_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        // Generous: an interactive tour and the scripted checks never meet
        // them; a runaway integration or a password guesser does.
        RequestLimits {
            client_requests_per_s: 200,
            client_burst: 400,
            token_failures_per_minute: 10,
            token_failure_burst: 20,
            max_json_depth: 32,
            max_query_bytes: 4096,
        }
    }
}

impl RequestLimits {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.client_requests_per_s == 0 || self.client_burst == 0 {
            problems.push(
                "server.limits: client_requests_per_s and client_burst must be at least 1"
                    .to_owned(),
            );
        }
        if self.token_failures_per_minute == 0 || self.token_failure_burst == 0 {
            problems.push(
                "server.limits: token_failures_per_minute and token_failure_burst must be at least 1"
                    .to_owned(),
            );
        }
        if !(2..=128).contains(&self.max_json_depth) {
            problems.push("server.limits.max_json_depth: expected 2..=128".to_owned());
        }
        if !(256..=65_536).contains(&self.max_query_bytes) {
            problems.push("server.limits.max_query_bytes: expected 256..=65536".to_owned());
        }
        problems
    }
}

/// `[server.cors]`: the browser origins that may call the API. Empty (the
/// default): no CORS header is ever sent, so browsers refuse cross-origin
/// calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins, `https://erp.example.com` or `http://localhost:3000`;
    /// no wildcard, no path.
    pub allowed_origins: Vec<String>,
}

impl CorsConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            let canonical = reqwest::Url::parse(origin)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .map(|u| u.origin().ascii_serialization());
            if canonical.as_deref() != Some(origin.as_str()) {
                problems.push(format!(
                    "server.cors.allowed_origins[{i}]: `{origin}` is not an origin; expected scheme://host[:port] with no path or wildcard, e.g. https://erp.example.com"
                ));
            }
        }
        problems
    }
}

/// `[server.headers]`: response headers that depend on how the API is reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    /// Send `Strict-Transport-Security` although the gateway serves plain
    /// HTTP: set it when clients reach it over HTTPS through a terminating
    /// proxy. With `[server.tls]` it is always sent.
    pub hsts: bool,
    pub hsts_max_age_s: u64,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        HeadersConfig {
            hsts: false,
            hsts_max_age_s: 31_536_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://…` for PostgreSQL; empty (the default) means SQLite at
    /// `<data_dir>/bankdirect.db`; `sqlite://path` names another file.
    pub url: String,
    pub read_pool_size: u32,
    pub pg_pool_size: u32,
    pub busy_timeout_ms: u64,
    /// SQLite: most writes the single writer commits together (group commit).
    /// Larger spreads each commit's flush over more writes; smaller answers
    /// the first writers of a busy moment sooner.
    pub write_max_batch: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            read_pool_size: 4,
            pg_pool_size: 10,
            busy_timeout_ms: 5_000,
            write_max_batch: store::StoreOptions::default().max_batch,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub token_ttl_s: u64,
    /// Clock skew tolerated when checking `exp` and `nbf`.
    pub leeway_s: u64,
    /// Ed25519 private key (PKCS#8 PEM) that signs access tokens; created
    /// on first start. Relative to `data_dir`.
    pub signing_key_file: PathBuf,
    /// Key of the keyed hash under which client secrets are stored; created
    /// on first start. Relative to `data_dir`.
    pub secret_hash_key_file: PathBuf,
    /// Verified tokens kept in memory until they expire.
    pub token_cache_capacity: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "bankdirect".to_owned(),
            audience: "bankdirect-api".to_owned(),
            token_ttl_s: 900,
            leeway_s: 5,
            signing_key_file: PathBuf::from("jwt-signing-key.pem"),
            secret_hash_key_file: PathBuf::from("client-secret-hash.key"),
            token_cache_capacity: 100_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalancesConfig {
    /// How often the worker refreshes every connection's balances.
    pub refresh_interval_s: u64,
    /// Set to false to refresh only on explicit requests.
    pub worker_enabled: bool,
    /// Balance reads use an in-memory copy of the stored snapshots for at
    /// most this long (a refresh on this instance renews it at once); 0
    /// reads the store on every request.
    pub read_cache_ttl_ms: u64,
}

impl Default for BalancesConfig {
    fn default() -> Self {
        BalancesConfig {
            refresh_interval_s: 60,
            worker_enabled: true,
            read_cache_ttl_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatementsConfig {
    /// How often the worker syncs every account's transactions.
    pub sync_interval_s: u64,
    /// Set to false to sync only on explicit requests.
    pub worker_enabled: bool,
    /// How far back the first sync of an account reaches.
    pub initial_lookback_days: u32,
    /// Each later sync re-reads this many days before the last synced day,
    /// so late and corrected entries are picked up.
    pub overlap_days: u32,
    /// Longest `from`..`to` range a transaction list request may ask for.
    pub max_query_range_days: u32,
    /// Entries written per store transaction while ingesting.
    pub ingest_chunk_size: usize,
    /// Key that signs transaction cursors (so a tampered cursor is refused).
    /// Created on first start. Relative to `data_dir`.
    pub cursor_key_file: PathBuf,
    /// Transaction pages come from an in-memory copy of each account's
    /// stored entries, used for at most this long (a sync on this instance
    /// renews it at once); 0 reads the store for every page.
    pub read_cache_ttl_ms: u64,
    /// Most entries that copy holds over all accounts (about 0.6 KB each,
    /// up to a few KB with long remittance texts);
    /// the accounts read least recently are dropped first, and an account
    /// with more entries is read from the store. 0 turns the copy off.
    pub read_cache_max_entries: usize,
}

/// Longest `statements.read_cache_ttl_ms`: an hour.
pub const STATEMENTS_READ_CACHE_TTL_MAX_MS: u64 = 3_600_000;
/// Largest `statements.read_cache_max_entries`: ten million (gigabytes of memory).
pub const STATEMENTS_READ_CACHE_MAX_ENTRIES: usize = 10_000_000;

impl Default for StatementsConfig {
    fn default() -> Self {
        StatementsConfig {
            sync_interval_s: 300,
            worker_enabled: true,
            initial_lookback_days: 90,
            overlap_days: 3,
            max_query_range_days: 366,
            ingest_chunk_size: 500,
            cursor_key_file: PathBuf::from("cursor-signing.key"),
            read_cache_ttl_ms: 1_000,
            read_cache_max_entries: 200_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// Run the dispatcher, status poller and reaper in this instance.
    pub workers_enabled: bool,
    /// How often the workers look for due work when nothing wakes them.
    pub poll_interval_ms: u64,
    /// How long a claimed payment is leased to one worker.
    pub lease_duration_ms: u64,
    /// Payments claimed per round of the status poller and the reaper, and
    /// at most this many at once by the dispatcher (1..=1000).
    pub claim_batch: u32,
    /// Most payments the dispatcher has in flight at once (1..=1000). It
    /// keeps sending continuously: as soon as `min(claim_batch,
    /// max_in_flight / 2)` slots are free it claims that many more, rather
    /// than waiting for every payment it holds to finish. Every payment
    /// still passes its bank's `limits` (concurrency and rate) before it is
    /// sent, and holds its lease while it waits for them, so keep this well
    /// below what the banks take within `lease_duration_ms`.
    pub max_in_flight: u32,
    /// First retry delay after `NotProcessed`; doubles per attempt, with jitter.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// How soon an accepted or unknown payment is asked about again.
    pub status_poll_ms: u64,
    /// How long a settled payment is still watched for a return (退票).
    pub return_watch_s: u64,
    /// How long an Idempotency-Key is remembered (at least 24 h).
    pub idempotency_ttl_s: u64,
    /// Most items of one payment batch (`POST /v1/payment-batches`).
    pub max_batch_items: u32,
    /// Largest body of `POST /v1/payment-batches`, in bytes (other routes keep
    /// `server.max_body_bytes`).
    pub max_batch_body_bytes: usize,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        PaymentsConfig {
            workers_enabled: true,
            poll_interval_ms: 500,
            lease_duration_ms: 30_000,
            claim_batch: 32,
            max_in_flight: 64,
            backoff_base_ms: 500,
            backoff_max_ms: 60_000,
            status_poll_ms: 1_000,
            return_watch_s: 600,
            idempotency_ttl_s: 86_400,
            max_batch_items: 5_000,
            max_batch_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// `[webhooks]`: the delivery worker and what may be registered.
/// See docs/webhooks.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Run the fan-out and delivery worker in this instance.
    pub worker_enabled: bool,
    /// How often the worker looks for work when the last round found none.
    pub poll_interval_ms: u64,
    /// Events fanned out per round.
    pub fan_out_batch: u32,
    /// Deliveries sent at once (and claimed per round).
    pub concurrency: u32,
    /// How long a claimed delivery is leased; longer than a request can take.
    pub lease_duration_ms: u64,
    pub connect_timeout_ms: u64,
    /// Whole request, connect included.
    pub request_timeout_ms: u64,
    /// First retry delay; doubles per attempt, capped, with jitter.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// A delivery is dead after this many failed attempts (until re-driven).
    pub max_attempts: u32,
    /// Allow URLs whose host is loopback, private, link-local or `localhost`.
    pub allow_private_urls: bool,
    /// Hosts allowed even when private (exact host names or IP literals).
    pub allowed_hosts: Vec<String>,
    /// The data key webhook secrets are sealed under in the database (made
    /// at first start, mode 0600); relative to `data_dir`.
    pub secret_key_file: PathBuf,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            worker_enabled: true,
            poll_interval_ms: 500,
            fan_out_batch: 200,
            concurrency: 8,
            lease_duration_ms: 60_000,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 3_600_000,
            max_attempts: 12,
            allow_private_urls: false,
            allowed_hosts: Vec::new(),
            secret_key_file: PathBuf::from("webhook-secrets.key"),
        }
    }
}

impl WebhooksConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.poll_interval_ms == 0
            || self.request_timeout_ms == 0
            || self.connect_timeout_ms == 0
        {
            problems.push(
                "webhooks: poll_interval_ms, request_timeout_ms and connect_timeout_ms ≥ 1"
                    .to_owned(),
            );
        }
        if !(1..=1000).contains(&self.fan_out_batch) {
            problems.push("webhooks.fan_out_batch: expected 1..=1000".to_owned());
        }
        if !(1..=256).contains(&self.concurrency) {
            problems.push("webhooks.concurrency: expected 1..=256".to_owned());
        }
        if self.lease_duration_ms < self.request_timeout_ms.saturating_add(1_000)
            || self.lease_duration_ms > 3_600_000
        {
            problems.push(
                "webhooks.lease_duration_ms: expected at least request_timeout_ms + 1000 and at most 3600000"
                    .to_owned(),
            );
        }
        if self.backoff_base_ms == 0 || self.backoff_max_ms < self.backoff_base_ms {
            problems.push(
                "webhooks: backoff_base_ms ≥ 1 and backoff_max_ms ≥ backoff_base_ms".to_owned(),
            );
        }
        if !(1..=100).contains(&self.max_attempts) {
            problems.push("webhooks.max_attempts: expected 1..=100".to_owned());
        }
        problems
    }
}

/// `[audit]`: the hash chain over the audit log and its signed checkpoints
/// (DESIGN.md, security model; `store::audit`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Link audit records by hash in commit order. Turn it off only to
    /// measure what the chain costs (BENCHMARKS.md): records written while
    /// it is off stay unlinked until an instance with it on links them.
    pub chain_enabled: bool,
    /// A signed checkpoint once this many records were linked since the last.
    pub checkpoint_every_records: u64,
    /// A signed checkpoint at least this often while records keep coming.
    pub checkpoint_every_s: u64,
    /// Ed25519 private key (PKCS#8 PEM) that signs checkpoints; created
    /// (mode 0600) on first start. Relative to `data_dir`. It must not live
    /// in the database: whoever can rewrite the chain must not also hold it.
    pub checkpoint_key_file: PathBuf,
    /// How often the chainer runs: on PostgreSQL it links what was committed
    /// since (SQLite links inside the writer's commit); on both it signs a
    /// checkpoint when one is due.
    pub chain_interval_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            chain_enabled: true,
            checkpoint_every_records: 1_000,
            checkpoint_every_s: 60,
            checkpoint_key_file: PathBuf::from("audit-checkpoint-key.pem"),
            chain_interval_ms: 200,
        }
    }
}

impl AuditConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=1_000_000).contains(&self.checkpoint_every_records) {
            problems.push("audit.checkpoint_every_records: expected 1..=1000000".to_owned());
        }
        if !(1..=86_400).contains(&self.checkpoint_every_s) {
            problems.push("audit.checkpoint_every_s: expected 1..=86400".to_owned());
        }
        if !(10..=60_000).contains(&self.chain_interval_ms) {
            problems.push("audit.chain_interval_ms: expected 10..=60000".to_owned());
        }
        if self.checkpoint_key_file.as_os_str().is_empty() {
            problems.push("audit.checkpoint_key_file: expected a path".to_owned());
        }
        problems
    }
}

/// One `[[banks]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankConfig {
    pub id: BankId,
    pub name: String,
    pub family: banks::Family,
    #[serde(default = "default_time_zone")]
    pub time_zone: BankTimeZone,
    #[serde(default)]
    pub limits: BankLimits,
    #[serde(default)]
    pub quirks: BankQuirks,
    /// `[banks.iso20022]`: options of an iso20022 bank's connections; any
    /// key left out keeps its default; `None` keeps them all. Refused on a
    /// bank of another family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso20022: Option<Iso20022Config>,
}

impl BankConfig {
    /// What this bank's connections are built with beyond their settings:
    /// the `[banks.iso20022]` options where given, else the defaults.
    pub fn family_options(&self) -> banks::FamilyOptions {
        match &self.iso20022 {
            Some(options) => banks::FamilyOptions::Iso20022(options.options()),
            None => banks::FamilyOptions::Defaults,
        }
    }
}

fn default_time_zone() -> BankTimeZone {
    BankTimeZone::SHANGHAI
}

/// `[banks.iso20022]` (docs/families/iso20022.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Iso20022Config {
    /// The pain.001 version uploaded: `"09"` (pain.001.001.09) or `"03"`
    /// (pain.001.001.03, for banks that still want it).
    pub pain001_version: Pain001VersionConfig,
    /// Most items in one uploaded batch chunk.
    pub max_batch_items: usize,
    /// Most days asked in one `C53` statement request; longer ranges are
    /// split.
    pub max_statement_range_days: i64,
    /// The characters payment text may hold: `"sepa"` (the SEPA Latin set)
    /// or `"unicode"` (any character XML carries, for banks that take it).
    pub charset: CharsetConfig,
}

impl Default for Iso20022Config {
    fn default() -> Self {
        Iso20022Config::from_options(&banks::iso20022::Iso20022Options::default())
    }
}

impl Iso20022Config {
    fn from_options(options: &banks::iso20022::Iso20022Options) -> Iso20022Config {
        Iso20022Config {
            pain001_version: match options.pain001_version {
                banks::iso20022::Pain001Version::V09 => Pain001VersionConfig::V09,
                banks::iso20022::Pain001Version::V03 => Pain001VersionConfig::V03,
            },
            max_batch_items: options.max_batch_items,
            max_statement_range_days: options.max_statement_range_days,
            charset: match options.charset {
                banks::iso20022::TextCharset::SepaLatin => CharsetConfig::Sepa,
                banks::iso20022::TextCharset::Unicode => CharsetConfig::Unicode,
            },
        }
    }

    /// The connector's options.
    pub fn options(&self) -> banks::iso20022::Iso20022Options {
        banks::iso20022::Iso20022Options {
            pain001_version: match self.pain001_version {
                Pain001VersionConfig::V09 => banks::iso20022::Pain001Version::V09,
                Pain001VersionConfig::V03 => banks::iso20022::Pain001Version::V03,
            },
            max_batch_items: self.max_batch_items,
            max_statement_range_days: self.max_statement_range_days,
            charset: match self.charset {
                CharsetConfig::Sepa => banks::iso20022::TextCharset::SepaLatin,
                CharsetConfig::Unicode => banks::iso20022::TextCharset::Unicode,
            },
        }
    }

    /// Range problems, each naming its key under `at` (`banks[0].iso20022`).
    fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let max_items = banks::iso20022::MAX_BATCH_ITEMS;
        if !(1..=max_items).contains(&self.max_batch_items) {
            problems.push(format!(
                "{at}.max_batch_items: {} is out of range; expected 1..={max_items}",
                self.max_batch_items
            ));
        }
        let max_days = banks::iso20022::MAX_TRANSACTION_RANGE_DAYS;
        if !(1..=max_days).contains(&self.max_statement_range_days) {
            problems.push(format!(
                "{at}.max_statement_range_days: {} is out of range; expected 1..={max_days}",
                self.max_statement_range_days
            ));
        }
        problems
    }
}

/// `banks.iso20022.pain001_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pain001VersionConfig {
    #[serde(rename = "09")]
    V09,
    #[serde(rename = "03")]
    V03,
}

/// `banks.iso20022.charset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CharsetConfig {
    Sepa,
    Unicode,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BankLimits {
    /// Calls in flight to this bank at once (this instance).
    pub concurrency: u32,
    /// Calls started per second (this instance).
    pub queries_per_second: u32,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
}

impl Default for BankLimits {
    fn default() -> Self {
        BankLimits {
            concurrency: 4,
            queries_per_second: 10,
            connect_timeout_ms: 2_000,
            request_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BankQuirks {
    /// Most accounts in one balance request.
    pub max_accounts_per_query: usize,
    /// Largest response accepted, in bytes.
    pub max_response_bytes: usize,
    /// The bank's format for our business references.
    pub reference: domain::ReferencePolicy,
    /// "No such instruction" is believed only this long after the last send
    /// (banks take a while to make a new instruction queryable).
    pub min_none_age_s: u64,
    /// An outcome still unknown this long after the first send goes to
    /// `needs_review` for an operator.
    pub max_unknown_age_s: u64,
    /// Consecutive failed calls that open the circuit breaker, and how long
    /// it stays open (no new submissions to this bank meanwhile).
    pub breaker_failures: u32,
    pub breaker_open_s: u64,
}

impl Default for BankQuirks {
    fn default() -> Self {
        BankQuirks {
            max_accounts_per_query: 50,
            max_response_bytes: 4 * 1024 * 1024,
            reference: domain::ReferencePolicy {
                max_len: 30,
                alphabet: domain::ReferenceAlphabet::UpperAlnum,
                prefix: "BD".to_owned(),
            },
            min_none_age_s: 30,
            max_unknown_age_s: 3_600,
            breaker_failures: 5,
            breaker_open_s: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    pub id: ConnectionId,
    pub bank: BankId,
    /// The bank's endpoint (front machine URL).
    pub endpoint: String,
    /// Login name / enterprise user at the bank.
    pub login: String,
    /// The enterprise's customer number at the bank, where it has one.
    #[serde(default)]
    pub customer_number: Option<String>,
    /// Mutual TLS toward the bank (required by the `iso20022` family):
    /// `tls = { ca_cert = "…", client_cert = "…", client_key = "…" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ConnectionTlsConfig>,
    /// The login's password at the bank (cn-xml sends it in `PASSWD`), or
    /// that password sealed (`sealed:v1:…`). Never printed, never stored.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_secret"
    )]
    pub password: Option<crypto::SecretString>,
    /// Signed traffic (cn-xml): `[connections.signing]` with our SM2 key
    /// and the bank's certificates (docs/families/cn-xml.md, "Signatures").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<ConnectionSigningConfig>,
}

/// `[connections.signing]`: files resolved against the config file's
/// directory and read at start-up; the key is kept as a secret that never
/// prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSigningConfig {
    /// Our SM2 private key (PKCS#8 or SEC1 PEM), or that PEM sealed
    /// (`bankdirect secrets seal < sign.key > sign.key.sealed`).
    pub key: PathBuf,
    /// The SM2 distinguishing id both sides sign under.
    #[serde(default = "default_sm2_id")]
    pub sm2_id: String,
    /// The bank's signing certificates (PEM or DER; a PEM file may hold
    /// several), 1 to 16 in all. Each is used inside its own validity
    /// window, so the next one can be added before a rollover.
    pub bank_certificates: Vec<PathBuf>,
    /// The key opened from a sealed `key` file at load, kept as a secret
    /// that never prints and is never written back.
    #[serde(skip)]
    pub opened_key: Option<crypto::SecretString>,
}

fn default_sm2_id() -> String {
    banks::cn_xml::DEFAULT_SM2_ID.to_owned()
}

impl ConnectionSigningConfig {
    /// Reads the key and every certificate. Errors name the key
    /// (`connections[i].signing.…`) and the file, never the key's content.
    pub fn load(&self, index: usize) -> Result<banks::cn_xml::CnXmlSigning, Vec<String>> {
        let mut problems = Vec::new();
        let at = |field: &str, path: &Path| {
            format!("connections[{index}].signing.{field}: {}", path.display())
        };
        let key_pem = match &self.opened_key {
            Some(opened) => Some(opened.clone()),
            None => match read_pem_file(&self.key, "PRIVATE KEY") {
                Ok(text) => Some(crypto::SecretString::new(text)),
                Err(detail) => {
                    problems.push(format!("{}: {detail}", at("key", &self.key)));
                    None
                }
            },
        };
        let key = key_pem.and_then(|pem| {
            match crypto::PrivateKey::from_pem_or_der(pem.expose_secret().as_bytes()) {
                Ok(key) => Some(key),
                Err(e) => {
                    problems.push(format!("{}: {e}", at("key", &self.key)));
                    None
                }
            }
        });
        let mut certificates = Vec::new();
        for (j, path) in self.bank_certificates.iter().enumerate() {
            let field = format!("bank_certificates[{j}]");
            let read = std::fs::metadata(path)
                .map_err(|e| format!("cannot read the file: {e}"))
                .and_then(|meta| {
                    if meta.len() > MAX_TLS_FILE_BYTES {
                        Err(format!(
                            "{} bytes; expected a certificate file of at most {MAX_TLS_FILE_BYTES} bytes",
                            meta.len()
                        ))
                    } else {
                        std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))
                    }
                })
                .and_then(|bytes| {
                    crypto::Certificate::all_from_pem_or_der(&bytes).map_err(|e| e.to_string())
                });
            match read {
                Ok(certs) => certificates.extend(certs),
                Err(detail) => problems.push(format!("{}: {detail}", at(&field, path))),
            }
        }
        let Some(key) = key else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        banks::cn_xml::CnXmlSigning::new(key, &self.sm2_id, certificates)
            .map_err(|e| vec![format!("connections[{index}].signing: {e}")])
    }

    fn problems(&self, index: usize) -> Vec<String> {
        let mut problems = Vec::new();
        if self.sm2_id.is_empty() {
            problems.push(format!(
                "connections[{index}].signing.sm2_id: empty; expected the bank's SM2 id, usually {}",
                banks::cn_xml::DEFAULT_SM2_ID
            ));
        }
        if self.bank_certificates.is_empty()
            || self.bank_certificates.len() > crypto::cert::CERTIFICATE_SET_MAX_LEN
        {
            problems.push(format!(
                "connections[{index}].signing.bank_certificates: {} files; expected 1 to {}",
                self.bank_certificates.len(),
                crypto::cert::CERTIFICATE_SET_MAX_LEN
            ));
        }
        problems
    }

    fn resolve(&mut self, base_dir: &Path) {
        for path in std::iter::once(&mut self.key).chain(self.bank_certificates.iter_mut()) {
            if path.is_relative() {
                *path = base_dir.join(&*path);
            }
        }
    }
}

/// `connections[].tls`: PEM files, relative paths resolved against the
/// config file's directory (as `data_dir` is). Read at start-up; the key
/// is kept as a secret that never prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionTlsConfig {
    /// The CA certificate(s) the bank's server certificate must chain to;
    /// the only roots trusted for this connection.
    pub ca_cert: PathBuf,
    /// Our client certificate (chain) presented to the bank.
    pub client_cert: PathBuf,
    /// The client certificate's private key (PKCS#8, SEC1 or PKCS#1 PEM),
    /// or that PEM sealed (`bankdirect secrets seal < client.key`).
    pub client_key: PathBuf,
    /// The key opened from a sealed `client_key` file at load, kept as a
    /// secret that never prints and is never written back.
    #[serde(skip)]
    pub opened_client_key: Option<crypto::SecretString>,
}

/// `[secrets]`: the master key that opens sealed values (`sealed:v1:…`, made
/// by `bankdirect secrets seal`). The environment variable
/// `BANKDIRECT_MASTER_KEY` (base64), when set, is used instead of the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// A file holding the master key in base64 (mode 0600); relative to the
    /// config file.
    pub master_key_file: Option<PathBuf>,
}

/// Opens every sealed value of `config` in place (a user's `totp_secret`, a
/// connection's `password`, its TLS `client_key` and signing `key` files)
/// with the master key of the
/// environment or of `[secrets] master_key_file`. Each problem names the key
/// and what to do; none carries a secret.
fn open_sealed(config: &mut Config, env_key: Option<&str>) -> Vec<String> {
    use crypto::sealed::{is_sealed, MasterKey, MASTER_KEY_ENV};
    let master = match (env_key, &config.secrets.master_key_file) {
        (Some(text), _) => match MasterKey::from_base64(text) {
            Ok(key) => Some(key),
            Err(e) => return vec![format!("{MASTER_KEY_ENV}: {e}")],
        },
        (None, Some(path)) => match MasterKey::from_file(path) {
            Ok(key) => Some(key),
            Err(e) => return vec![format!("secrets.master_key_file: {e}")],
        },
        (None, None) => None,
    };
    let open = |field: String, sealed: &str| -> Result<crypto::SecretString, String> {
        match &master {
            None => Err(format!(
                "{field} is sealed; give the master key in {MASTER_KEY_ENV} or [secrets] master_key_file"
            )),
            Some(key) => key.open(sealed).map_err(|e| format!("{field}: {e}")),
        }
    };
    let mut problems = Vec::new();
    for (i, user) in config.users.iter_mut().enumerate() {
        let Some(secret) = &user.totp_secret else {
            continue;
        };
        if is_sealed(secret.expose_secret()) {
            match open(format!("users[{i}].totp_secret"), secret.expose_secret()) {
                Ok(opened) => user.totp_secret = Some(opened),
                Err(problem) => problems.push(problem),
            }
        }
    }
    for (i, connection) in config.connections.iter_mut().enumerate() {
        if let Some(password) = &connection.password {
            if is_sealed(password.expose_secret()) {
                match open(
                    format!("connections[{i}].password"),
                    password.expose_secret(),
                ) {
                    Ok(opened) => connection.password = Some(opened),
                    Err(problem) => problems.push(problem),
                }
            }
        }
        if let Some(signing) = &mut connection.signing {
            let field = format!("connections[{i}].signing.key");
            if let Some(text) = sealed_file(&signing.key) {
                match open(field.clone(), &text) {
                    Ok(pem) if pem_has_block(pem.expose_secret(), "PRIVATE KEY") => {
                        signing.opened_key = Some(pem);
                    }
                    Ok(_) => problems.push(format!(
                        "{field}: {}: the sealed value opens, but holds no PEM PRIVATE KEY block",
                        signing.key.display()
                    )),
                    Err(problem) => problems.push(format!("{problem} ({})", signing.key.display())),
                }
            }
        }
        let Some(tls) = &mut connection.tls else {
            continue;
        };
        let field = format!("connections[{i}].tls.client_key");
        let Ok(meta) = std::fs::metadata(&tls.client_key) else {
            continue; // reported by `load` with the file named
        };
        if meta.len() > MAX_TLS_FILE_BYTES * 2 {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&tls.client_key) else {
            continue;
        };
        if !is_sealed(&text) {
            continue;
        }
        match open(field.clone(), &text) {
            Ok(pem) if pem_has_block(pem.expose_secret(), "PRIVATE KEY") => {
                tls.opened_client_key = Some(pem);
            }
            Ok(_) => problems.push(format!(
                "{field}: {}: the sealed value opens, but holds no PEM PRIVATE KEY block",
                tls.client_key.display()
            )),
            Err(problem) => problems.push(format!("{problem} ({})", tls.client_key.display())),
        }
    }
    problems
}

/// The text of a key file when it holds a sealed value; `None` when it
/// cannot be read (reported by the load with the file named) or is plain.
fn sealed_file(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_TLS_FILE_BYTES * 2 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    crypto::sealed::is_sealed(&text).then_some(text)
}

fn pem_has_block(text: &str, what: &str) -> bool {
    text.lines().any(|line| {
        line.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|label| label.ends_with(what))
    })
}

/// Largest PEM file read for a connection's TLS, in bytes.
pub const MAX_TLS_FILE_BYTES: u64 = 64 * 1024;

impl ConnectionTlsConfig {
    /// Reads the three files. Errors name the key (`connections[i].tls.…`)
    /// and the file, never the key's content.
    pub fn load(&self, index: usize) -> Result<banks::ClientTlsSettings, Vec<String>> {
        let mut problems = Vec::new();
        let mut read = |field: &str, path: &Path, what: &str| -> String {
            match read_pem_file(path, what) {
                Ok(text) => text,
                Err(detail) => {
                    problems.push(format!(
                        "connections[{index}].tls.{field}: {}: {detail}",
                        path.display()
                    ));
                    String::new()
                }
            }
        };
        let ca_cert_pem = read("ca_cert", &self.ca_cert, "CERTIFICATE");
        let client_cert_pem = read("client_cert", &self.client_cert, "CERTIFICATE");
        let client_key_pem = match &self.opened_client_key {
            Some(opened) => opened.clone(),
            None => crypto::SecretString::new(read("client_key", &self.client_key, "PRIVATE KEY")),
        };
        if problems.is_empty() {
            Ok(banks::ClientTlsSettings {
                ca_cert_pem,
                client_cert_pem,
                client_key_pem,
            })
        } else {
            Err(problems)
        }
    }

    fn resolve(&mut self, base_dir: &Path) {
        for path in [
            &mut self.ca_cert,
            &mut self.client_cert,
            &mut self.client_key,
        ] {
            if path.is_relative() {
                *path = base_dir.join(&*path);
            }
        }
    }
}

/// A PEM file of at most [`MAX_TLS_FILE_BYTES`] holding a `-----BEGIN …`
/// block whose label ends with `what` (`CERTIFICATE`, `PRIVATE KEY`).
fn read_pem_file(path: &Path, what: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the file: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.len() > MAX_TLS_FILE_BYTES {
        return Err(format!(
            "{} bytes; expected a PEM file of at most {MAX_TLS_FILE_BYTES} bytes",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let has_block = text.lines().any(|line| {
        line.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|label| label.ends_with(what))
    });
    if !has_block {
        return Err(format!("expected a PEM file with a {what} block"));
    }
    Ok(text)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub id: AccountId,
    pub connection: ConnectionId,
    pub number: AccountNumber,
    #[serde(default)]
    pub name: String,
    pub currencies: Vec<Currency>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub id: ClientId,
    /// Keyed hash of the client secret (`bankdirect clients new-secret` makes one).
    pub secret_hash: String,
    pub scopes: Vec<Scope>,
    /// Entitled account ids; `["*"]` for all.
    pub accounts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Maker,
    Approver,
    Admin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub id: UserId,
    #[serde(default)]
    pub name: String,
    pub roles: Vec<Role>,
    /// Entitled account ids; `["*"]` for all.
    pub accounts: Vec<String>,
    /// argon2 hash of the password (used from the approvals issue on).
    #[serde(default)]
    pub password_hash: Option<String>,
    /// The person's TOTP secret (RFC 6238), base32 as authenticator apps
    /// show it (`bankdirect users totp-secret` makes one). With it, a login
    /// also needs the app's current 6-digit code. Never printed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_secret"
    )]
    pub totp_secret: Option<crypto::SecretString>,
}

/// (De)serializes an optional secret as plain text in the file, and as
/// nothing else: [`crypto::SecretString`] itself prints `[redacted]`.
mod optional_secret {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        secret: &Option<crypto::SecretString>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match secret {
            Some(secret) => s.serialize_some(secret.expose_secret()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<crypto::SecretString>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(crypto::SecretString::new))
    }
}

/// One `[[approval_rules]]` entry. A payment whose amount (a batch whose
/// control sum) in `currency` is strictly above `above`, from
/// `debtor_account` (an account id, or `"*"` for every account), needs
/// `approvers` distinct approvals. When several rules match, the largest
/// `approvers` wins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRuleConfig {
    pub debtor_account: String,
    pub currency: Currency,
    /// An exclusive threshold as a decimal string, e.g. `"1000000.00"`.
    pub above: String,
    pub approvers: u8,
}

impl ApprovalRuleConfig {
    /// The threshold as money, if `above` is a valid amount in `currency`.
    pub fn threshold(&self) -> Option<Money> {
        Money::parse(&self.above, self.currency)
            .ok()
            .filter(|m| !m.is_negative())
    }

    fn matches(&self, account: &str, amount_minor: i128, currency: Currency) -> bool {
        (self.debtor_account == "*" || self.debtor_account == account)
            && self.currency == currency
            && self
                .threshold()
                .is_some_and(|t| amount_minor > i128::from(t.minor()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    pub bank_id: String,
    pub family: banks::Family,
    pub listen: SocketAddr,
    pub seed: u64,
    pub login: String,
    #[serde(default = "default_cny_accounts")]
    pub cny_accounts: usize,
    #[serde(default)]
    pub usd_accounts: usize,
    #[serde(default)]
    pub eur_accounts: usize,
    #[serde(default = "default_time_zone")]
    pub time_zone: BankTimeZone,
    /// `iso20022` only: the directory of the simulated bank's CA, server and
    /// client certificates and keys (`ca.pem`, `server.pem`, `server.key`,
    /// `client.pem`, `client.key`), made there on the first start when it
    /// holds none; relative to the config file's directory. The bank's
    /// `[[connections]]` entry names the same CA and client files in `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki_dir: Option<PathBuf>,
    /// The simulator's payment behaviour (settle/return/ingest delays,
    /// return share, accounts that may overdraw…), as banksim's
    /// `SimPaymentConfig`; checked by `bankdirect sim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments: Option<toml::Table>,
    /// Faults drawn at random, reproducible from their seed, as banksim's
    /// `RandomFaults` (`seed`, `rules = [{kind, when, percent, function}]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_faults: Option<toml::Table>,
}

fn default_cny_accounts() -> usize {
    3
}

/// A configuration that cannot be used, with the key and what was expected.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration in {}:", self.source_name)?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads the file, applies `BANKDIRECT_*` overrides from the process
    /// environment, and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let source_name = path.display().to_string();
        if !path.is_file() {
            return Err(ConfigError {
                source_name,
                problems: vec![format!(
                    "the file does not exist or is not a regular file (create one, or run `bankdirect demo` to get an example)"
                )],
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: source_name.clone(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml_with_env(&text, &source_name, &base_dir, env)
    }

    /// Parses TOML text (no environment), for tests and generated configs.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Self::from_toml_with_env(text, "<inline>", base_dir, std::iter::empty())
    }

    fn from_toml_with_env(
        text: &str,
        source_name: &str,
        base_dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut master_key_env = None;
        let env_pairs: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| {
                if k == crypto::sealed::MASTER_KEY_ENV {
                    master_key_env = Some(crypto::SecretString::new(v));
                    return None;
                }
                let rest = k.strip_prefix("BANKDIRECT_")?;
                let section = rest.split("__").next()?.to_ascii_lowercase();
                ENV_SECTIONS
                    .contains(&section.as_str())
                    .then(|| (rest.to_owned(), v))
            })
            .collect();
        // figment's Env provider reads the process environment itself; the
        // filtered pairs go in as serialized values instead, so that tests
        // can pass their own environment. Values are parsed the way figment
        // parses environment values (numbers, booleans, arrays, strings).
        let mut figment = Figment::new().merge(Toml::string(text));
        for (key, value) in env_pairs {
            let dotted = key.to_ascii_lowercase().replace("__", ".");
            let parsed: figment::value::Value = match value.parse() {
                Ok(v) => v,
                Err(never) => match never {},
            };
            figment = figment.merge(Serialized::global(&dotted, parsed));
        }
        let mut config: Config = figment.extract().map_err(|err| ConfigError {
            source_name: source_name.to_owned(),
            problems: err.into_iter().map(describe_figment_error).collect(),
        })?;
        if config.data_dir.is_relative() {
            config.data_dir = base_dir.join(&config.data_dir);
        }
        for connection in &mut config.connections {
            if let Some(tls) = &mut connection.tls {
                tls.resolve(base_dir);
            }
            if let Some(signing) = &mut connection.signing {
                signing.resolve(base_dir);
            }
        }
        if let Some(tls) = &mut config.server.tls {
            tls.resolve(base_dir);
        }
        if let Some(path) = &mut config.secrets.master_key_file {
            if path.is_relative() {
                *path = base_dir.join(&*path);
            }
        }
        let sealed_problems = open_sealed(
            &mut config,
            master_key_env
                .as_ref()
                .map(crypto::SecretString::expose_secret),
        );
        if !sealed_problems.is_empty() {
            return Err(ConfigError {
                source_name: source_name.to_owned(),
                problems: sealed_problems,
            });
        }
        for simulator in &mut config.simulators {
            if let Some(dir) = &mut simulator.pki_dir {
                if dir.is_relative() {
                    *dir = base_dir.join(&*dir);
                }
            }
        }
        config.validate().map_err(|problems| ConfigError {
            source_name: source_name.to_owned(),
            problems,
        })?;
        // The TLS files are read now, so that a missing or wrong file stops
        // the start with the key and the file named.
        let mut tls_problems: Vec<String> = config
            .connections
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.tls.as_ref().map(|tls| (i, tls)))
            .filter_map(|(i, tls)| tls.load(i).err())
            .flatten()
            .collect();
        // So are the signing key and the bank's certificates.
        tls_problems.extend(
            config
                .connections
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.signing.as_ref().map(|signing| (i, signing)))
                .filter_map(|(i, signing)| signing.load(i).err())
                .flatten(),
        );
        if !tls_problems.is_empty() {
            return Err(ConfigError {
                source_name: source_name.to_owned(),
                problems: tls_problems,
            });
        }
        Ok(config)
    }

    /// Checks what deserialisation cannot: uniqueness, cross references
    /// between levels, and ranges. Returns every problem found, not just the
    /// first.
    /// How many distinct approvals a payment (or a batch, by its control
    /// sum) from `account` of `amount_minor` in `currency` needs: the largest
    /// `approvers` of the matching rules, 0 when none matches.
    pub fn approvals_required(&self, account: &str, amount_minor: i128, currency: Currency) -> u8 {
        self.approval_rules
            .iter()
            .filter(|r| r.matches(account, amount_minor, currency))
            .map(|r| r.approvers)
            .max()
            .unwrap_or(0)
    }

    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Some(tls) = &self.server.tls {
            problems.extend(tls.problems());
        }
        let unique = |kind: &str, ids: Vec<&str>, problems: &mut Vec<String>| {
            let mut seen = BTreeSet::new();
            for id in ids {
                if !seen.insert(id) {
                    problems.push(format!(
                        "{kind}: id `{id}` appears twice; ids must be unique"
                    ));
                }
            }
        };
        unique(
            "banks",
            self.banks.iter().map(|b| b.id.as_str()).collect(),
            &mut problems,
        );
        unique(
            "connections",
            self.connections.iter().map(|c| c.id.as_str()).collect(),
            &mut problems,
        );
        unique(
            "accounts",
            self.accounts.iter().map(|a| a.id.as_str()).collect(),
            &mut problems,
        );
        unique(
            "clients",
            self.clients.iter().map(|c| c.id.as_str()).collect(),
            &mut problems,
        );
        unique(
            "users",
            self.users.iter().map(|u| u.id.as_str()).collect(),
            &mut problems,
        );

        problems.extend(self.server.limits.problems());
        problems.extend(self.server.cors.problems());
        let banks: BTreeSet<&str> = self.banks.iter().map(|b| b.id.as_str()).collect();
        let connections: BTreeSet<&str> = self.connections.iter().map(|c| c.id.as_str()).collect();
        let accounts: BTreeSet<&str> = self.accounts.iter().map(|a| a.id.as_str()).collect();

        for (i, b) in self.banks.iter().enumerate() {
            if b.name.trim().is_empty() {
                problems.push(format!(
                    "banks[{i}].name: expected a non-empty display name"
                ));
            }
            if b.limits.concurrency == 0 {
                problems.push(format!(
                    "banks[{i}].limits.concurrency: expected at least 1"
                ));
            }
            if b.limits.queries_per_second == 0 {
                problems.push(format!(
                    "banks[{i}].limits.queries_per_second: expected at least 1"
                ));
            }
            if b.limits.request_timeout_ms == 0 || b.limits.connect_timeout_ms == 0 {
                problems.push(format!("banks[{i}].limits: timeouts must be at least 1 ms"));
            }
            if let Err(e) = b.quirks.reference.validate() {
                problems.push(format!("banks[{i}].quirks.reference: {e}"));
            }
            if b.quirks.max_unknown_age_s < b.quirks.min_none_age_s {
                problems.push(format!(
                    "banks[{i}].quirks.max_unknown_age_s: must be at least min_none_age_s"
                ));
            }
            if !(1..=1000).contains(&b.quirks.max_accounts_per_query) {
                problems.push(format!(
                    "banks[{i}].quirks.max_accounts_per_query: expected 1..=1000"
                ));
            }
            if let Some(options) = &b.iso20022 {
                if b.family == banks::Family::Iso20022 {
                    problems.extend(options.problems(&format!("banks[{i}].iso20022")));
                } else {
                    problems.push(format!(
                        "banks[{i}].iso20022: this bank is of family {}; only an iso20022 bank takes [banks.iso20022] options",
                        b.family
                    ));
                }
            }
        }
        for (i, c) in self.connections.iter().enumerate() {
            if !banks.contains(c.bank.as_str()) {
                problems.push(format!(
                    "connections[{i}].bank: `{}` is not the id of a bank in [[banks]]",
                    c.bank
                ));
            }
            if !(c.endpoint.starts_with("http://") || c.endpoint.starts_with("https://")) {
                problems.push(format!(
                    "connections[{i}].endpoint: expected an http:// or https:// URL"
                ));
            }
            if c.login.trim().is_empty() {
                problems.push(format!(
                    "connections[{i}].login: expected the login name at the bank"
                ));
            }
            if let Some(signing) = &c.signing {
                problems.extend(signing.problems(i));
            }
            if c.password
                .as_ref()
                .is_some_and(crypto::SecretString::is_empty)
            {
                problems.push(format!(
                    "connections[{i}].password: empty; expected the login's password at the bank, or no password key"
                ));
            }
            if self.bank(&c.bank).map(|b| b.family) == Some(banks::Family::Iso20022) {
                if c.password.is_some() {
                    problems.push(format!(
                        "connections[{i}].password: the iso20022 family sends no password (mutual TLS authenticates); remove it"
                    ));
                }
                if c.signing.is_some() {
                    problems.push(format!(
                        "connections[{i}].signing: {}",
                        banks::iso20022::LACKS_SIGNED_MESSAGES
                    ));
                }
                if !c.endpoint.starts_with("https://") {
                    problems.push(format!(
                        "connections[{i}].endpoint: the iso20022 family speaks https only; expected an https:// URL"
                    ));
                }
                if c.tls.is_none() {
                    problems.push(format!(
                        "connections[{i}].tls: the iso20022 family needs mutual TLS; expected tls = {{ ca_cert = \"…\", client_cert = \"…\", client_key = \"…\" }}"
                    ));
                }
            }
        }
        let mut numbers = BTreeMap::new();
        for (i, a) in self.accounts.iter().enumerate() {
            if !connections.contains(a.connection.as_str()) {
                problems.push(format!(
                    "accounts[{i}].connection: `{}` is not the id of a connection in [[connections]]",
                    a.connection
                ));
            }
            if a.currencies.is_empty() {
                problems.push(format!(
                    "accounts[{i}].currencies: expected at least one currency"
                ));
            }
            if let Some(prev) = numbers.insert((a.connection.as_str(), a.number.as_str()), i) {
                problems.push(format!(
                    "accounts[{i}].number: the same number as accounts[{prev}] on the same connection"
                ));
            }
        }
        for (kind, list) in [
            (
                "clients",
                self.clients.iter().map(|c| &c.accounts).collect::<Vec<_>>(),
            ),
            (
                "users",
                self.users.iter().map(|u| &u.accounts).collect::<Vec<_>>(),
            ),
        ] {
            for (i, entitled) in list.into_iter().enumerate() {
                for id in entitled {
                    if id != "*" && !accounts.contains(id.as_str()) {
                        problems.push(format!(
                            "{kind}[{i}].accounts: `{id}` is not the id of an account in [[accounts]] (use \"*\" for all)"
                        ));
                    }
                }
            }
        }
        let approvers = self
            .users
            .iter()
            .filter(|u| {
                u.roles
                    .iter()
                    .any(|r| matches!(r, Role::Approver | Role::Admin))
            })
            .count();
        for (i, r) in self.approval_rules.iter().enumerate() {
            if r.debtor_account != "*" && !accounts.contains(r.debtor_account.as_str()) {
                problems.push(format!(
                    "approval_rules[{i}].debtor_account: `{}` is not the id of an account in [[accounts]] (use \"*\" for all)",
                    r.debtor_account
                ));
            }
            if r.threshold().is_none() {
                problems.push(format!(
                    "approval_rules[{i}].above: `{}` is not a non-negative amount in {} (a decimal string with at most {} decimals)",
                    r.above,
                    r.currency.code(),
                    r.currency.exponent()
                ));
            }
            if !(1..=store::APPROVALS_REQUIRED_MAX).contains(&r.approvers) {
                problems.push(format!(
                    "approval_rules[{i}].approvers: expected 1..={}",
                    store::APPROVALS_REQUIRED_MAX
                ));
            } else if usize::from(r.approvers) > approvers {
                problems.push(format!(
                    "approval_rules[{i}].approvers: {} distinct approvers needed but only {approvers} of [[users]] have the approver or admin role",
                    r.approvers
                ));
            }
        }
        for (i, u) in self.users.iter().enumerate() {
            if let Some(hash) = &u.password_hash {
                if !crypto::password::is_well_formed_hash(hash) {
                    problems.push(format!(
                        "users[{i}].password_hash: expected an argon2id PHC string starting with `$argon2id$`"
                    ));
                }
            }
            if let Some(secret) = &u.totp_secret {
                if let Err(e) = crypto::totp::TotpKey::from_base32(secret.expose_secret()) {
                    problems.push(format!(
                        "users[{i}].totp_secret: {e} (make one with `bankdirect users totp-secret --user {}`)",
                        u.id
                    ));
                }
            }
            if u.roles.is_empty() {
                problems.push(format!("users[{i}].roles: expected at least one role"));
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if !crypto::KeyedHasher::is_well_formed_hash(&c.secret_hash) {
                problems.push(format!(
                    "clients[{i}].secret_hash: expected a keyed hash starting with `hmac-sha256:` (make one with `bankdirect clients new-secret`)"
                ));
            }
            if c.scopes.is_empty() {
                problems.push(format!("clients[{i}].scopes: expected at least one scope"));
            }
        }
        if self.server.max_page_size == 0 || self.server.default_page_size == 0 {
            problems.push("server: page sizes must be at least 1".to_owned());
        }
        if self.server.default_page_size > self.server.max_page_size {
            problems
                .push("server.default_page_size: must not exceed server.max_page_size".to_owned());
        }
        if self.balances.refresh_interval_s == 0 {
            problems.push("balances.refresh_interval_s: expected at least 1".to_owned());
        }
        if !(1..=4_096).contains(&self.database.write_max_batch) {
            problems.push("database.write_max_batch: expected 1..=4096".to_owned());
        }
        let pay = &self.payments;
        if pay.idempotency_ttl_s < 86_400 {
            problems
                .push("payments.idempotency_ttl_s: keys are kept at least 24 h (86400)".to_owned());
        }
        if pay.lease_duration_ms < 1_000 || pay.poll_interval_ms == 0 || pay.status_poll_ms == 0 {
            problems.push(
                "payments: lease_duration_ms ≥ 1000, poll_interval_ms and status_poll_ms ≥ 1"
                    .to_owned(),
            );
        }
        if !(1..=store::BATCH_ITEMS_MAX as u32).contains(&pay.max_batch_items) {
            problems.push(format!(
                "payments.max_batch_items: expected 1..={}",
                store::BATCH_ITEMS_MAX
            ));
        }
        if !(1024..=256 * 1024 * 1024).contains(&pay.max_batch_body_bytes) {
            problems.push("payments.max_batch_body_bytes: expected 1 KiB..=256 MiB".to_owned());
        }
        if !(1..=1000).contains(&pay.claim_batch) {
            problems.push("payments.claim_batch: expected 1..=1000".to_owned());
        }
        if !(1..=1000).contains(&pay.max_in_flight) {
            problems.push("payments.max_in_flight: expected 1..=1000".to_owned());
        }
        if pay.backoff_base_ms == 0 || pay.backoff_max_ms < pay.backoff_base_ms {
            problems.push(
                "payments: backoff_base_ms ≥ 1 and backoff_max_ms ≥ backoff_base_ms".to_owned(),
            );
        }
        problems.extend(self.webhooks.problems());
        problems.extend(self.audit.problems());
        let st = &self.statements;
        if st.sync_interval_s == 0 {
            problems.push("statements.sync_interval_s: expected at least 1".to_owned());
        }
        if !(1..=3660).contains(&st.initial_lookback_days) {
            problems.push("statements.initial_lookback_days: expected 1..=3660".to_owned());
        }
        if st.overlap_days > 366 {
            problems.push("statements.overlap_days: expected 0..=366".to_owned());
        }
        if !(1..=3660).contains(&st.max_query_range_days) {
            problems.push("statements.max_query_range_days: expected 1..=3660".to_owned());
        }
        if !(1..=10_000).contains(&st.ingest_chunk_size) {
            problems.push("statements.ingest_chunk_size: expected 1..=10000".to_owned());
        }
        if st.read_cache_ttl_ms > STATEMENTS_READ_CACHE_TTL_MAX_MS {
            problems.push(format!(
                "statements.read_cache_ttl_ms: expected 0..={STATEMENTS_READ_CACHE_TTL_MAX_MS} (entries another instance stores reach this one's pages within it; 0 reads the store for every page)"
            ));
        }
        if st.read_cache_max_entries > STATEMENTS_READ_CACHE_MAX_ENTRIES {
            problems.push(format!(
                "statements.read_cache_max_entries: expected 0..={STATEMENTS_READ_CACHE_MAX_ENTRIES} (about 0.6 KB each, more with long remittance texts)"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The database URL in effect: the configured one, or SQLite in the data dir.
    pub fn database_url(&self) -> String {
        if self.database.url.trim().is_empty() {
            self.data_dir.join("bankdirect.db").display().to_string()
        } else {
            self.database.url.clone()
        }
    }

    pub fn data_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.data_dir.join(p)
        }
    }

    pub fn bank(&self, id: &BankId) -> Option<&BankConfig> {
        self.banks.iter().find(|b| &b.id == id)
    }
}

fn describe_figment_error(e: figment::Error) -> String {
    let key = if e.path.is_empty() {
        "(top level)".to_owned()
    } else {
        e.path.join(".")
    };
    let origin = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    format!("{key}: {}{origin}", e.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
data_dir = "data"

[[banks]]
id = "east"
name = "East Bank"
family = "cn-xml"

[[connections]]
id = "east-main"
bank = "east"
endpoint = "http://127.0.0.1:8701/"
login = "DEMO01"

[[accounts]]
id = "east-cny-1"
connection = "east-main"
number = "755900012310001"
currencies = ["CNY"]

[[clients]]
id = "erp"
secret_hash = "hmac-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
scopes = ["accounts:read"]
accounts = ["*"]
"#;

    #[test]
    fn limits_cors_and_headers_have_safe_defaults_and_are_checked() {
        let c = Config::from_toml(MINIMAL, Path::new("/")).unwrap();
        assert!(
            c.server.cors.allowed_origins.is_empty(),
            "CORS off by default"
        );
        assert!(!c.server.headers.hsts, "no HSTS on plain HTTP");
        assert!(c.server.limits.client_requests_per_s >= 100);
        let text = format!(
            "{MINIMAL}\n[server.limits]\nclient_burst = 5\n\n[server.cors]\nallowed_origins = [\"https://erp.example.com\"]\n"
        );
        let c = Config::from_toml(&text, Path::new("/")).unwrap();
        assert_eq!(c.server.limits.client_burst, 5);
        assert_eq!(c.server.limits.client_requests_per_s, 200);
        for bad in [
            "*",
            "https://erp.example.com/",
            "ftp://x.example",
            "erp.example.com",
        ] {
            let text = format!("{MINIMAL}\n[server.cors]\nallowed_origins = [\"{bad}\"]\n");
            let err = Config::from_toml(&text, Path::new("/"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("server.cors.allowed_origins[0]"),
                "{bad}: {err}"
            );
        }
        let text =
            format!("{MINIMAL}\n[server.limits]\nclient_requests_per_s = 0\nmax_json_depth = 1\n");
        let err = Config::from_toml(&text, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("client_requests_per_s") && err.contains("max_json_depth"),
            "{err}"
        );
    }

    #[test]
    fn payments_max_in_flight_has_a_default_and_is_checked() {
        let c = Config::from_toml(MINIMAL, Path::new("/")).unwrap();
        assert_eq!(c.payments.max_in_flight, 64);
        let text = format!("{MINIMAL}\n[payments]\nmax_in_flight = 8\n");
        let c = Config::from_toml(&text, Path::new("/")).unwrap();
        assert_eq!(c.payments.max_in_flight, 8);
        for bad in [0, 1001] {
            let text = format!("{MINIMAL}\n[payments]\nmax_in_flight = {bad}\n");
            let err = Config::from_toml(&text, Path::new("/"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("payments.max_in_flight"), "{bad}: {err}");
        }
    }

    #[test]
    fn database_write_max_batch_has_a_default_and_is_checked() {
        let c = Config::from_toml(MINIMAL, Path::new("/")).unwrap();
        assert_eq!(c.database.write_max_batch, 256);
        let text = format!("{MINIMAL}\n[database]\nwrite_max_batch = 32\n");
        let c = Config::from_toml(&text, Path::new("/")).unwrap();
        assert_eq!(c.database.write_max_batch, 32);
        for bad in [0, 4097] {
            let text = format!("{MINIMAL}\n[database]\nwrite_max_batch = {bad}\n");
            let err = Config::from_toml(&text, Path::new("/"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("database.write_max_batch"), "{bad}: {err}");
        }
    }

    #[test]
    fn page_copy_limits_are_checked() {
        let mut c = Config::from_toml(MINIMAL, Path::new("/etc/bd")).unwrap();
        assert!(c.validate().is_ok());
        c.statements.read_cache_ttl_ms = STATEMENTS_READ_CACHE_TTL_MAX_MS;
        c.statements.read_cache_max_entries = STATEMENTS_READ_CACHE_MAX_ENTRIES;
        assert!(c.validate().is_ok());
        c.statements.read_cache_ttl_ms = 0;
        c.statements.read_cache_max_entries = 0;
        assert!(c.validate().is_ok(), "0 turns the copy off");
        c.statements.read_cache_ttl_ms = STATEMENTS_READ_CACHE_TTL_MAX_MS + 1;
        c.statements.read_cache_max_entries = STATEMENTS_READ_CACHE_MAX_ENTRIES + 1;
        let problems = c.validate().unwrap_err().join("\n");
        assert!(
            problems.contains("statements.read_cache_ttl_ms: expected 0..=3600000"),
            "{problems}"
        );
        assert!(
            problems.contains("statements.read_cache_max_entries: expected 0..=10000000"),
            "{problems}"
        );
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = Config::from_toml(MINIMAL, Path::new("/etc/bd")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/bd/data"));
        assert_eq!(c.banks[0].time_zone, BankTimeZone::SHANGHAI);
        assert_eq!(c.server.listen.port(), 8080);
        assert_eq!(c.database_url(), "/etc/bd/data/bankdirect.db");
    }

    #[test]
    fn wrong_type_names_the_key_and_what_was_expected() {
        let text = MINIMAL.replace("concurrency", "x").replace(
            "family = \"cn-xml\"",
            "family = \"cn-xml\"\n[banks.limits]\nconcurrency = \"many\"",
        );
        let err = Config::from_toml(&text, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("banks.0.limits.concurrency"), "{err}");
        assert!(err.contains("u32") || err.contains("integer"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let text = MINIMAL.replace("login = \"DEMO01\"", "login = \"DEMO01\"\nlogn = 1");
        let err = Config::from_toml(&text, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("logn"), "{err}");
    }

    #[test]
    fn bad_identifier_and_currency_are_named() {
        let text = MINIMAL.replace("\"CNY\"", "\"XXY\"");
        let err = Config::from_toml(&text, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("accounts.0.currencies"), "{err}");
    }

    #[test]
    fn dangling_references_are_reported_together() {
        let text = MINIMAL
            .replace("bank = \"east\"", "bank = \"west\"")
            .replace("accounts = [\"*\"]", "accounts = [\"nope\"]");
        let err = Config::from_toml(&text, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("connections[0].bank: `west`"), "{err}");
        assert!(err.contains("clients[0].accounts: `nope`"), "{err}");
    }

    #[test]
    fn environment_overrides_nested_keys_and_ignores_other_vars() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bankdirect.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let env = vec![
            (
                "BANKDIRECT_SERVER__LISTEN".to_owned(),
                "127.0.0.1:9999".to_owned(),
            ),
            (
                "BANKDIRECT_DATABASE__URL".to_owned(),
                "postgres://x@127.0.0.1/db".to_owned(),
            ),
            ("BANKDIRECT_TEST_PG_URL".to_owned(), "ignored".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let c = Config::load_with_env(&path, env).unwrap();
        assert_eq!(c.server.listen.port(), 9999);
        assert_eq!(c.database_url(), "postgres://x@127.0.0.1/db");
    }

    #[test]
    fn bad_environment_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bankdirect.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let env = vec![(
            "BANKDIRECT_SERVER__LISTEN".to_owned(),
            "not an address".to_owned(),
        )];
        let err = Config::load_with_env(&path, env).unwrap_err().to_string();
        assert!(err.contains("server.listen"), "{err}");
    }

    const ISO: &str = r#"
data_dir = "data"

[[banks]]
id = "hausbank"
name = "Hausbank"
family = "iso20022"
time_zone = "Europe/Berlin"

[[connections]]
id = "hausbank-h2h"
bank = "hausbank"
endpoint = "https://h2h.hausbank.example/"
login = "PARTNER01"
tls = { ca_cert = "tls/ca.pem", client_cert = "tls/client.pem", client_key = "/abs/client.key" }
"#;

    fn write_pem(dir: &Path, name: &str, label: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n"),
        )
        .unwrap();
        path
    }

    #[test]
    fn an_iso20022_connection_reads_its_tls_files_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        write_pem(&dir.path().join("tls"), "ca.pem", "CERTIFICATE");
        write_pem(&dir.path().join("tls"), "client.pem", "CERTIFICATE");
        let key = write_pem(dir.path(), "client.key", "PRIVATE KEY");
        let text = ISO.replace("/abs/client.key", &key.display().to_string());
        let path = dir.path().join("bankdirect.toml");
        std::fs::write(&path, &text).unwrap();
        let c = Config::load_with_env(&path, std::iter::empty()).unwrap();
        assert_eq!(c.banks[0].family, banks::Family::Iso20022);
        let tls = c.connections[0].tls.as_ref().unwrap();
        assert_eq!(tls.ca_cert, dir.path().join("tls/ca.pem"));
        assert_eq!(tls.client_key, key);
        let loaded = tls.load(0).unwrap();
        assert!(loaded.ca_cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(loaded
            .client_key_pem
            .expose_secret()
            .contains("PRIVATE KEY"));
        assert!(!format!("{loaded:?}").contains("AAAA"));
    }

    #[test]
    fn tls_problems_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        write_pem(&dir.path().join("tls"), "ca.pem", "CERTIFICATE");
        // A key where the certificate belongs; the key file is missing.
        write_pem(&dir.path().join("tls"), "client.pem", "PRIVATE KEY");
        let path = dir.path().join("bankdirect.toml");
        std::fs::write(&path, ISO).unwrap();
        let err = Config::load_with_env(&path, std::iter::empty())
            .unwrap_err()
            .to_string();
        assert!(err.contains("connections[0].tls.client_cert"), "{err}");
        assert!(err.contains("tls/client.pem"), "{err}");
        assert!(err.contains("connections[0].tls.client_key"), "{err}");
        assert!(err.contains("/abs/client.key"), "{err}");
        assert!(!err.contains("tls.ca_cert"), "{err}");
    }

    #[test]
    fn sealed_values_open_with_the_master_key_of_the_environment_or_the_file() {
        use crypto::sealed::{MasterKey, MASTER_KEY_ENV};
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        write_pem(&dir.path().join("tls"), "ca.pem", "CERTIFICATE");
        write_pem(&dir.path().join("tls"), "client.pem", "CERTIFICATE");
        let master = MasterKey::write_new(&dir.path().join("master.key")).unwrap();
        let key_pem = "-----BEGIN PRIVATE KEY-----\nQUFBQQ==\n-----END PRIVATE KEY-----\n";
        let key_path = dir.path().join("client.key.sealed");
        std::fs::write(&key_path, master.seal(key_pem)).unwrap();
        let totp = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        let text = format!(
            "{}\n[secrets]\nmaster_key_file = \"master.key\"\n\n[[users]]\nid = \"ops\"\nroles = [\"admin\"]\naccounts = [\"*\"]\ntotp_secret = \"{}\"\n",
            ISO.replace("/abs/client.key", "client.key.sealed"),
            master.seal(totp)
        );
        let path = dir.path().join("bankdirect.toml");
        std::fs::write(&path, &text).unwrap();
        assert!(!text.contains(totp) && !text.contains("QUFBQQ"));

        let c = Config::load_with_env(&path, std::iter::empty()).unwrap();
        assert_eq!(
            c.users[0].totp_secret.as_ref().unwrap().expose_secret(),
            totp
        );
        let tls = c.connections[0].tls.as_ref().unwrap().load(0).unwrap();
        assert_eq!(tls.client_key_pem.expose_secret(), key_pem);
        // Never written back in clear: the opened key is not serialised.
        let rendered = toml::to_string(&c.connections[0]).unwrap();
        assert!(!rendered.contains("QUFBQQ"), "{rendered}");

        // The environment's key wins over the file: a wrong one is named.
        let other = MasterKey::generate();
        let env = vec![(
            MASTER_KEY_ENV.to_owned(),
            other.to_base64().expose_secret().to_owned(),
        )];
        let err = Config::load_with_env(&path, env).unwrap_err().to_string();
        assert!(err.contains("users[0].totp_secret"), "{err}");
        assert!(err.contains("connections[0].tls.client_key"), "{err}");
        assert!(
            err.contains(master.id()) && err.contains(other.id()),
            "{err}"
        );
        assert!(!err.contains(totp), "{err}");
        let env = vec![(
            MASTER_KEY_ENV.to_owned(),
            master.to_base64().expose_secret().to_owned(),
        )];
        assert!(Config::load_with_env(&path, env).is_ok());

        // Without any master key, what is sealed is named with what to do.
        std::fs::write(&path, text.replace("master_key_file = \"master.key\"", "")).unwrap();
        let err = Config::load_with_env(&path, std::iter::empty())
            .unwrap_err()
            .to_string();
        assert!(err.contains("users[0].totp_secret is sealed"), "{err}");
        assert!(err.contains(MASTER_KEY_ENV), "{err}");
    }

    /// MINIMAL with `extra` (a password, `[connections.signing]`) under
    /// its connection.
    fn cn_signed(extra: &str) -> String {
        MINIMAL.replace(
            "login = \"DEMO01\"\n",
            &format!("login = \"DEMO01\"\n{extra}\n"),
        )
    }

    #[test]
    fn a_signed_cn_xml_connection_opens_its_sealed_key_and_password() {
        use crypto::sealed::MasterKey;
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::write_new(&dir.path().join("master.key")).unwrap();
        let ours = banksim::SigningIdentity::generate_now("DEMO01").unwrap();
        let bank = banksim::SigningIdentity::generate_now("East Bank signing").unwrap();
        let key_pem = ours.key_pem().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(
            dir.path().join("keys/sign.key.sealed"),
            master.seal(key_pem.expose_secret()),
        )
        .unwrap();
        std::fs::write(dir.path().join("keys/bank.pem"), bank.certificate_pem()).unwrap();
        let password = "east-Pa55-密码";
        let text = format!(
            "{}\n[secrets]\nmaster_key_file = \"master.key\"\n",
            cn_signed(&format!(
                "password = \"{}\"\n\n[connections.signing]\nkey = \"keys/sign.key.sealed\"\nbank_certificates = [\"keys/bank.pem\"]\n",
                master.seal(password)
            ))
        );
        assert!(!text.contains(password) && !text.contains("PRIVATE"));
        let path = dir.path().join("bankdirect.toml");
        std::fs::write(&path, &text).unwrap();

        let c = Config::load_with_env(&path, std::iter::empty()).unwrap();
        let connection = &c.connections[0];
        assert_eq!(
            connection.password.as_ref().unwrap().expose_secret(),
            password
        );
        let signing = connection.signing.as_ref().unwrap();
        assert_eq!(signing.sm2_id, banks::cn_xml::DEFAULT_SM2_ID);
        assert_eq!(signing.key, dir.path().join("keys/sign.key.sealed"));
        assert!(signing.load(0).is_ok());
        // Neither Debug nor the serialised form shows the opened key; the
        // password never prints.
        let debug = format!("{connection:?}");
        assert!(
            !debug.contains(password) && !debug.contains("PRIVATE"),
            "{debug}"
        );
        let rendered = toml::to_string(&signing).unwrap();
        assert!(!rendered.contains("PRIVATE"), "{rendered}");

        // Without the master key both sealed values are named.
        std::fs::write(&path, text.replace("master_key_file = \"master.key\"", "")).unwrap();
        let err = Config::load_with_env(&path, std::iter::empty())
            .unwrap_err()
            .to_string();
        assert!(err.contains("connections[0].password is sealed"), "{err}");
        assert!(
            err.contains("connections[0].signing.key is sealed"),
            "{err}"
        );
        assert!(err.contains("sign.key.sealed"), "{err}");
    }

    #[test]
    fn signing_problems_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let ours = banksim::SigningIdentity::generate_now("DEMO01").unwrap();
        let bank = banksim::SigningIdentity::generate_now("East Bank signing").unwrap();
        std::fs::write(
            dir.path().join("sign.key"),
            ours.key_pem().unwrap().expose_secret(),
        )
        .unwrap();
        std::fs::write(dir.path().join("bank.pem"), bank.certificate_pem()).unwrap();
        let load = |extra: &str| {
            let path = dir.path().join("bankdirect.toml");
            std::fs::write(&path, cn_signed(extra)).unwrap();
            Config::load_with_env(&path, std::iter::empty()).map_err(|e| e.to_string())
        };

        // A missing certificate file is named with its place in the list.
        let err = load("[connections.signing]\nkey = \"sign.key\"\nbank_certificates = [\"bank.pem\", \"bank-2027.pem\"]").unwrap_err();
        assert!(
            err.contains("connections[0].signing.bank_certificates[1]"),
            "{err}"
        );
        assert!(err.contains("bank-2027.pem"), "{err}");
        assert!(!err.contains("bank_certificates[0]"), "{err}");
        // A missing key file too.
        let err =
            load("[connections.signing]\nkey = \"nope.key\"\nbank_certificates = [\"bank.pem\"]")
                .unwrap_err();
        assert!(err.contains("connections[0].signing.key"), "{err}");
        assert!(err.contains("nope.key"), "{err}");
        // A certificate where the key belongs is no key.
        let err =
            load("[connections.signing]\nkey = \"bank.pem\"\nbank_certificates = [\"bank.pem\"]")
                .unwrap_err();
        assert!(err.contains("connections[0].signing.key"), "{err}");
        // No certificates, an empty id, an empty password.
        let err = load("password = \"\"\n\n[connections.signing]\nkey = \"sign.key\"\nsm2_id = \"\"\nbank_certificates = []").unwrap_err();
        assert!(
            err.contains("connections[0].signing.bank_certificates: 0 files"),
            "{err}"
        );
        assert!(err.contains("connections[0].signing.sm2_id"), "{err}");
        assert!(err.contains("connections[0].password: empty"), "{err}");
        // The right files load.
        let c =
            load("[connections.signing]\nkey = \"sign.key\"\nbank_certificates = [\"bank.pem\"]")
                .unwrap();
        assert!(c.connections[0].signing.as_ref().unwrap().load(0).is_ok());
    }

    #[test]
    fn an_iso20022_connection_takes_no_password_or_signing() {
        let mut c = Config::from_toml(MINIMAL, Path::new("/")).unwrap();
        c.banks[0].family = banks::Family::Iso20022;
        c.connections[0].password = Some(crypto::SecretString::new("p".into()));
        c.connections[0].signing = Some(ConnectionSigningConfig {
            key: "k".into(),
            sm2_id: banks::cn_xml::DEFAULT_SM2_ID.into(),
            bank_certificates: vec!["b".into()],
            opened_key: None,
        });
        let problems = c.validate().unwrap_err().join("\n");
        assert!(
            problems.contains("connections[0].password: the iso20022 family"),
            "{problems}"
        );
        assert!(
            problems.contains("connections[0].signing: iso20022"),
            "{problems}"
        );
    }

    fn with_approvals(users: &str, rules: &str) -> String {
        format!("{MINIMAL}{users}{rules}")
    }

    const APPROVERS: &str = r#"
[[users]]
id = "approver1"
roles = ["approver"]
accounts = ["*"]
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$3XbBpZ9EeI0Q2bZkJ6kAfB4Ylbz8WSq3Tu4h9lNMi1o"

[[users]]
id = "approver2"
roles = ["admin"]
accounts = ["*"]
"#;

    #[test]
    fn approval_rules_match_above_the_threshold_per_account_and_currency() {
        let text = with_approvals(
            APPROVERS,
            r#"
[[approval_rules]]
debtor_account = "*"
currency = "CNY"
above = "1000000.00"
approvers = 1

[[approval_rules]]
debtor_account = "east-cny-1"
currency = "CNY"
above = "5000000"
approvers = 2
"#,
        );
        let c = Config::from_toml(&text, Path::new("/")).unwrap();
        let cny = Currency::CNY;
        // Exclusive: exactly the threshold needs nothing.
        assert_eq!(c.approvals_required("east-cny-1", 100_000_000, cny), 0);
        assert_eq!(c.approvals_required("east-cny-1", 100_000_001, cny), 1);
        assert_eq!(c.approvals_required("other", 100_000_001, cny), 1);
        // The largest requirement of the matching rules wins.
        assert_eq!(c.approvals_required("east-cny-1", 500_000_001, cny), 2);
        assert_eq!(c.approvals_required("other", 500_000_001, cny), 1);
        assert_eq!(
            c.approvals_required("east-cny-1", 900_000_000, Currency::USD),
            0
        );
    }

    #[test]
    fn approval_rule_problems_name_the_key() {
        let text = with_approvals(
            APPROVERS,
            r#"
[[approval_rules]]
debtor_account = "nowhere"
currency = "CNY"
above = "1.001"
approvers = 0

[[approval_rules]]
debtor_account = "*"
currency = "CNY"
above = "-5"
approvers = 3
"#,
        );
        let err = Config::from_toml(&text, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("approval_rules[0].debtor_account"), "{err}");
        assert!(err.contains("approval_rules[0].above"), "{err}");
        assert!(
            err.contains("approval_rules[0].approvers: expected 1..=16"),
            "{err}"
        );
        assert!(err.contains("approval_rules[1].above"), "{err}");
        assert!(
            err.contains("approval_rules[1].approvers: 3 distinct approvers needed but only 2"),
            "{err}"
        );
        let bad_hash = APPROVERS.replace("$argon2id$v=19", "$argon2i$v=19");
        let err = Config::from_toml(&with_approvals(&bad_hash, ""), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("users[0].password_hash"), "{err}");
        assert!(
            !err.contains("c2FsdHNhbHRzYWx0"),
            "a hash is never echoed: {err}"
        );
    }

    #[test]
    fn a_bad_totp_secret_names_the_key_and_is_never_echoed() {
        let with_secret = |secret: &str| {
            let users = APPROVERS.replacen(
                "roles = [\"approver\"]",
                &format!("roles = [\"approver\"]\ntotp_secret = \"{secret}\""),
                1,
            );
            Config::from_toml(&with_approvals(&users, ""), Path::new("/"))
        };
        // As an app shows it: lower case, spaced, unpadded.
        let c = with_secret("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap();
        let secret = c.users[0].totp_secret.as_ref().unwrap();
        assert!(crypto::totp::TotpKey::from_base32(secret.expose_secret()).is_ok());
        assert!(!format!("{c:?}").contains("gezd"), "never printed");
        assert!(c.users[1].totp_secret.is_none());
        // Too short (80 bits), and not base32 (0, 1, 8, 9 are not in it).
        for (bad, why) in [
            ("GEZDGNBVGY3TQOJQ", "shorter than 128 bits"),
            ("GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJ0", "not base32"),
        ] {
            let err = with_secret(bad).unwrap_err().to_string();
            assert!(err.contains("users[0].totp_secret"), "{err}");
            assert!(err.contains(why), "{err}");
            assert!(err.contains("bankdirect users totp-secret"), "{err}");
            assert!(!err.contains(bad), "a secret is never echoed: {err}");
        }
    }

    #[test]
    fn an_iso20022_connection_needs_tls_and_https() {
        let text = ISO
            .replace("https://h2h", "http://h2h")
            .replace(
                "tls = { ca_cert = \"tls/ca.pem\", client_cert = \"tls/client.pem\", client_key = \"/abs/client.key\" }\n",
                "",
            );
        let err = Config::from_toml(&text, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("connections[0].endpoint"), "{err}");
        assert!(err.contains("connections[0].tls"), "{err}");
        let unknown = ISO.replace("client_key =", "clientkey =");
        let err = Config::from_toml(&unknown, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("clientkey"), "{err}");
    }

    #[test]
    fn missing_file_says_what_to_do() {
        let err = Config::load_with_env(Path::new("/nonexistent/bd.toml"), std::iter::empty())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bankdirect demo"), "{err}");
    }

    /// The ISO config with `table` (a `[banks.iso20022]` table, or nothing)
    /// under the bank, loaded with its TLS files in place.
    fn load_iso(table: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        write_pem(&dir.path().join("tls"), "ca.pem", "CERTIFICATE");
        write_pem(&dir.path().join("tls"), "client.pem", "CERTIFICATE");
        let key = write_pem(dir.path(), "client.key", "PRIVATE KEY");
        let text = ISO
            .replace("/abs/client.key", &key.display().to_string())
            .replace("\n[[connections]]", &format!("{table}\n[[connections]]"));
        let path = dir.path().join("bankdirect.toml");
        std::fs::write(&path, &text).unwrap();
        Config::load_with_env(&path, std::iter::empty()).map_err(|e| e.to_string())
    }

    fn iso_options(table: &str) -> banks::iso20022::Iso20022Options {
        let config = load_iso(table).unwrap();
        match config.banks[0].family_options() {
            banks::FamilyOptions::Iso20022(options) => options,
            other => panic!("expected iso20022 options, got {other:?}"),
        }
    }

    #[test]
    fn an_iso20022_bank_without_the_table_keeps_the_connector_defaults() {
        let config = load_iso("").unwrap();
        assert_eq!(config.banks[0].iso20022, None);
        assert_eq!(
            config.banks[0].family_options(),
            banks::FamilyOptions::Defaults
        );
        // An empty table is every default, spelled out.
        assert_eq!(
            iso_options("[banks.iso20022]\n"),
            banks::iso20022::Iso20022Options::default()
        );
    }

    #[test]
    fn iso20022_pain001_version_is_read_and_checked() {
        let options = iso_options("[banks.iso20022]\npain001_version = \"03\"\n");
        assert_eq!(
            options.pain001_version,
            banks::iso20022::Pain001Version::V03
        );
        let options = iso_options("[banks.iso20022]\npain001_version = \"09\"\n");
        assert_eq!(
            options.pain001_version,
            banks::iso20022::Pain001Version::V09
        );
        for bad in ["\"05\"", "\"9\"", "9"] {
            let err =
                load_iso(&format!("[banks.iso20022]\npain001_version = {bad}\n")).unwrap_err();
            assert!(err.contains("banks.0.iso20022.pain001_version"), "{err}");
        }
    }

    #[test]
    fn iso20022_max_batch_items_is_read_and_checked() {
        let options = iso_options("[banks.iso20022]\nmax_batch_items = 250\n");
        assert_eq!(options.max_batch_items, 250);
        for bad in [0, banks::iso20022::MAX_BATCH_ITEMS + 1] {
            let err =
                load_iso(&format!("[banks.iso20022]\nmax_batch_items = {bad}\n")).unwrap_err();
            assert!(
                err.contains(&format!(
                    "banks[0].iso20022.max_batch_items: {bad} is out of range"
                )),
                "{err}"
            );
        }
        let err = load_iso("[banks.iso20022]\nmax_batch_items = -1\n").unwrap_err();
        assert!(err.contains("banks.0.iso20022.max_batch_items"), "{err}");
    }

    #[test]
    fn iso20022_max_statement_range_days_is_read_and_checked() {
        let options = iso_options("[banks.iso20022]\nmax_statement_range_days = 7\n");
        assert_eq!(options.max_statement_range_days, 7);
        for bad in [0, banks::iso20022::MAX_TRANSACTION_RANGE_DAYS + 1] {
            let err = load_iso(&format!(
                "[banks.iso20022]\nmax_statement_range_days = {bad}\n"
            ))
            .unwrap_err();
            assert!(
                err.contains(&format!(
                    "banks[0].iso20022.max_statement_range_days: {bad} is out of range"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn iso20022_charset_is_read_and_checked() {
        let options = iso_options("[banks.iso20022]\ncharset = \"unicode\"\n");
        assert_eq!(options.charset, banks::iso20022::TextCharset::Unicode);
        let options = iso_options("[banks.iso20022]\ncharset = \"sepa\"\n");
        assert_eq!(options.charset, banks::iso20022::TextCharset::SepaLatin);
        let err = load_iso("[banks.iso20022]\ncharset = \"latin1\"\n").unwrap_err();
        assert!(err.contains("banks.0.iso20022.charset"), "{err}");
    }

    #[test]
    fn iso20022_options_together_and_unknown_keys() {
        let options = iso_options(
            "[banks.iso20022]\npain001_version = \"03\"\nmax_batch_items = 500\nmax_statement_range_days = 14\ncharset = \"unicode\"\n",
        );
        assert_eq!(
            options,
            banks::iso20022::Iso20022Options {
                pain001_version: banks::iso20022::Pain001Version::V03,
                max_batch_items: 500,
                max_statement_range_days: 14,
                charset: banks::iso20022::TextCharset::Unicode,
            }
        );
        let err = load_iso("[banks.iso20022]\nmax_items = 5\n").unwrap_err();
        assert!(err.contains("max_items"), "{err}");
        // The options are read at the bank's level only.
        let err = load_iso("[banks.quirks.iso20022]\nmax_batch_items = 5\n").unwrap_err();
        assert!(err.contains("iso20022"), "{err}");
    }

    #[test]
    fn iso20022_options_are_refused_on_a_bank_of_another_family() {
        let text = MINIMAL.replace(
            "family = \"cn-xml\"\n",
            "family = \"cn-xml\"\n\n[banks.iso20022]\nmax_batch_items = 10\n",
        );
        let err = Config::from_toml(&text, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("banks[0].iso20022: this bank is of family cn-xml"),
            "{err}"
        );
    }

    #[test]
    fn a_bank_with_iso20022_options_writes_them_back_at_the_bank_level() {
        let config = load_iso("[banks.iso20022]\ncharset = \"unicode\"\n").unwrap();
        let value = serde_json::to_value(&config.banks[0]).unwrap();
        assert_eq!(value["iso20022"]["charset"], "unicode");
        assert!(value["quirks"].get("iso20022").is_none(), "{value}");
    }
}
