//! What the crash tests share (`crash.rs`, single payments; `batch_crash.rs`,
//! payment batches): the seed and its draws, the real `bankdirect serve` and
//! `bankdirect sim` as child processes that die with the test, a fresh
//! PostgreSQL database per run, the configuration both run on, and the HTTP
//! helpers. Each test target compiles this module and uses its own part of
//! it, hence `dead_code` is allowed here.
#![allow(dead_code)]

use std::{
    fs::OpenOptions,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use domain::{AccountId, AccountNumber, BankId, ClientId, ConnectionId, RandomSource};
use gateway::{
    auth::Scope,
    config::{
        AccountConfig, AuthConfig, BalancesConfig, BankConfig, BankLimits, BankQuirks,
        ClientConfig, Config, ConnectionConfig, DatabaseConfig, PaymentsConfig, ServerConfig,
        SimulatorConfig, StatementsConfig,
    },
};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_bankdirect");

/// Bound on one start of the gateway or the simulator.
pub const START_WITHIN: Duration = Duration::from_secs(30);
/// Bound on a gateway armed with a failpoint reaching it.
pub const FAILPOINT_WITHIN: Duration = Duration::from_secs(30);
/// Bound on every HTTP call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub const FAILPOINTS: [&str; 2] = ["after_submitting_commit", "after_bank_answer"];

pub const CLIENT_ID: &str = "crash-erp";
pub const BANK_ID: &str = "crash-bank";
pub const ACCOUNT_ID: &str = "crash-cny-1";
pub const SIM_SEED: u64 = 4_2424;
pub const SIM_LOGIN: &str = "CRASH01";

// ---------------------------------------------------------------------------
// The seed and what is drawn from it
// ---------------------------------------------------------------------------

/// The seed given in the environment variable `var` (to replay a run), or a
/// fresh one.
pub fn seed(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={text:?} is not an unsigned integer")),
        Err(_) => domain::OsRandom.next_u64() >> 1,
    }
}

/// Draws from the seed. A `SeededRandom` is ChaCha20: the same seed gives
/// the same draws everywhere.
pub struct Draws(pub domain::SeededRandom);

impl Draws {
    /// A number in `lo..=hi`.
    pub fn between(&self, lo: u64, hi: u64) -> u64 {
        lo + self.0.next_u64() % (hi - lo + 1)
    }
}

pub fn decimal(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

pub fn minor_of(text: &str) -> i64 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "00"));
    assert_eq!(fraction.len(), 2, "a CNY amount has two decimals: {text}");
    let negative = whole.starts_with('-');
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap();
    let value = whole * 100 + fraction.parse::<i64>().unwrap();
    if negative {
        -value
    } else {
        value
    }
}

// ---------------------------------------------------------------------------
// Processes and files
// ---------------------------------------------------------------------------

/// The test's files; kept (and their path printed) when the test fails.
pub struct WorkDir(pub Option<tempfile::TempDir>);

impl WorkDir {
    /// A fresh temporary directory named `<prefix>…`.
    pub fn new(prefix: &str) -> WorkDir {
        WorkDir(Some(
            tempfile::Builder::new().prefix(prefix).tempdir().unwrap(),
        ))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!(
                    "crash test files (config, gateway.log, sim.log) kept in {}",
                    dir.keep().display()
                );
            }
        }
    }
}

/// A child process that is killed when the test ends, pass or fail.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn log_file(path: &Path) -> Stdio {
    Stdio::from(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap(),
    )
}

pub fn spawn(args: &[&str], log: &Path, failpoint: Option<&str>) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .env_remove("BANKDIRECT_FAILPOINTS")
        .env_remove("BANKDIRECT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(log));
    if let Some(name) = failpoint {
        cmd.env("BANKDIRECT_FAILPOINTS", format!("{name}=1"));
    }
    cmd.spawn().unwrap()
}

/// The last lines of a log, for a failure message.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The gateway process, stopped and started by the test.
pub struct Gateway {
    pub config: PathBuf,
    pub log: PathBuf,
    pub base: String,
    pub child: Option<Running>,
    pub starts: usize,
}

impl Gateway {
    /// The gateway of this configuration, not started; it logs to
    /// `gateway.log` in `dir`.
    pub fn new(setup: &Setup, dir: &Path) -> Gateway {
        Gateway {
            config: setup.config_path.clone(),
            log: dir.join("gateway.log"),
            base: setup.base.clone(),
            child: None,
            starts: 0,
        }
    }

    pub fn start(&mut self, failpoint: Option<&'static str>) {
        assert!(self.child.is_none(), "the gateway is already running");
        if let Some(name) = failpoint {
            eprintln!("crash test: starting the gateway with failpoint {name}");
        }
        let config = self.config.to_str().unwrap();
        self.child = Some(Running(spawn(
            &["serve", "--config", config],
            &self.log,
            failpoint,
        )));
        self.starts += 1;
    }

    pub fn kill(&mut self) {
        if let Some(mut running) = self.child.take() {
            running.0.kill().unwrap();
            running.0.wait().unwrap();
        }
    }

    /// Whether the gateway process has exited (its status is kept for
    /// [`Gateway::wait_for_failpoint`]).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(running) => running.0.try_wait().unwrap().is_some(),
            None => true,
        }
    }

    /// Fails the test if the gateway exited without being told to.
    pub fn check_alive(&mut self) {
        if let Some(running) = self.child.as_mut() {
            if let Some(status) = running.0.try_wait().unwrap() {
                panic!(
                    "the gateway exited by itself ({status}); last lines of its log:\n{}",
                    tail(&self.log, 40)
                );
            }
        }
    }

    pub fn wait_ready(&mut self, http: &reqwest::blocking::Client) {
        let started = Instant::now();
        loop {
            self.check_alive();
            if let Ok(resp) = http.get(format!("{}/healthz", self.base)).send() {
                if resp.status() == 200 {
                    return;
                }
            }
            assert!(
                started.elapsed() < START_WITHIN,
                "the gateway did not answer /healthz within {START_WITHIN:?}; log:\n{}",
                tail(&self.log, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a gateway armed with a failpoint to die there.
    pub fn wait_for_failpoint(&mut self, name: &str, abort: &AtomicBool) -> ExitStatus {
        let started = Instant::now();
        let running = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = running.0.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                started.elapsed() < FAILPOINT_WITHIN && !abort.load(Ordering::SeqCst),
                "the gateway armed with failpoint {name} did not reach it within {FAILPOINT_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts `bankdirect sim` (logging to `sim.log` in `dir`) and waits until
/// its control API answers.
pub fn start_sim(http: &reqwest::blocking::Client, setup: &Setup, dir: &Path) -> Running {
    let sim_log = dir.join("sim.log");
    let sim = Running(spawn(
        &["sim", "--config", setup.config_path.to_str().unwrap()],
        &sim_log,
        None,
    ));
    let sim_up = Instant::now();
    loop {
        if let Ok(resp) = http.get(format!("{}_sim/ledger", setup.sim_url)).send() {
            if resp.status() == 200 {
                break;
            }
        }
        assert!(
            sim_up.elapsed() < START_WITHIN,
            "bankdirect sim did not come up; log:\n{}",
            tail(&sim_log, 40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sim
}

/// A fresh PostgreSQL database for one run, dropped afterwards (the `psql`
/// binary does the admin work: the cli crate has no SQL driver).
pub struct PgDatabase {
    pub admin_url: String,
    pub name: String,
    pub url: String,
    pub psql: PathBuf,
}

impl PgDatabase {
    /// A fresh database on the cluster `BANKDIRECT_TEST_PG_URL` names.
    pub fn from_env() -> PgDatabase {
        let Ok(admin_url) = std::env::var("BANKDIRECT_TEST_PG_URL") else {
            panic!(
                "BANKDIRECT_TEST_PG_URL is not set: run `scripts/pg-test.sh start && eval \"$(scripts/pg-test.sh env)\"` first (scripts/test does both)"
            );
        };
        PgDatabase::create(&admin_url)
    }

    pub fn create(admin_url: &str) -> PgDatabase {
        let psql = find_psql();
        let name = format!("bd_crash_{:016x}", domain::OsRandom.next_u64());
        let (without_query, query) = match admin_url.split_once('?') {
            Some((u, q)) => (u, format!("?{q}")),
            None => (admin_url, String::new()),
        };
        let authority_end = without_query
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| without_query[start..].find('/').map(|j| start + j))
            .unwrap_or(without_query.len());
        let url = format!("{}/{name}{query}", &without_query[..authority_end]);
        let db = PgDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url,
            psql,
        };
        db.psql(&format!("CREATE DATABASE {}", db.name));
        db
    }

    pub fn psql(&self, sql: &str) {
        let out = Command::new(&self.psql)
            .args([
                self.admin_url.as_str(),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "crash test database kept: {} (drop it with psql -c 'DROP DATABASE {}')",
                self.url, self.name
            );
            return;
        }
        let _ = Command::new(&self.psql)
            .args([
                self.admin_url.as_str(),
                "-X",
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

pub fn find_psql() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("psql"))
        .find(|p| p.is_file());
    if let Some(p) = on_path {
        return p;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path().join("bin/psql"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("no psql binary on PATH or under /usr/lib/postgresql/*/bin; scripts/pg-test.sh start installs PostgreSQL")
    })
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

pub struct Setup {
    pub config_path: PathBuf,
    pub base: String,
    pub sim_url: String,
    pub client_secret: String,
    pub debtor_number: String,
}

/// Writes the configuration of one run: the gateway, and the simulated bank
/// it talks to with `random_faults` (a `[simulators.random_faults]` table)
/// spoiling some of its answers.
pub fn write_config(
    dir: &Path,
    database_url: Option<&str>,
    random_faults: toml::Table,
    claim_batch: u32,
) -> Setup {
    let gateway_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let sim_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let sim_bank = banksim::SimBankConfig {
        bank_id: BANK_ID.to_owned(),
        family: banksim::FAMILY_CN_XML.to_owned(),
        seed: SIM_SEED,
        login: SIM_LOGIN.to_owned(),
        cny_accounts: 3,
        usd_accounts: 0,
        eur_accounts: 0,
        time_zone: "Asia/Shanghai".to_owned(),
    };
    // The same generation `bankdirect sim` runs: the same accounts.
    let debtor = banksim::Ledger::generate(&sim_bank)
        .accounts()
        .into_iter()
        .find(|a| a.currency == domain::Currency::CNY)
        .unwrap();

    let sim_payments: toml::Table = toml::from_str(&format!(
        r#"
settle_delay_ms = 100
return_delay_ms = 200
return_share_percent = 5
ingest_delay_ms = 0
overdraft_accounts = ["{}"]
"#,
        debtor.number
    ))
    .unwrap();
    let hasher = crypto::KeyedHasher::load_or_create(&dir.join("client-secret-hash.key")).unwrap();
    let secret = crypto::generate_client_secret();
    let bank_id = BankId::parse(BANK_ID).unwrap();
    let conn_id = ConnectionId::parse("crash-bank-main").unwrap();
    let config = Config {
        data_dir: dir.to_path_buf(),
        server: ServerConfig {
            listen: gateway_addr,
            ..ServerConfig::default()
        },
        database: DatabaseConfig {
            url: database_url.unwrap_or_default().to_owned(),
            ..DatabaseConfig::default()
        },
        auth: AuthConfig::default(),
        // Only payments (single and batched) talk to the bank in these tests.
        balances: BalancesConfig {
            worker_enabled: false,
            ..BalancesConfig::default()
        },
        statements: StatementsConfig {
            worker_enabled: false,
            ..StatementsConfig::default()
        },
        // Short times, so that the backlog left by the crashes clears in
        // seconds.
        payments: PaymentsConfig {
            workers_enabled: true,
            poll_interval_ms: 100,
            lease_duration_ms: 3_000,
            claim_batch,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            status_poll_ms: 300,
            return_watch_s: 10,
            ..PaymentsConfig::default()
        },
        webhooks: gateway::config::WebhooksConfig::default(),
        banks: vec![BankConfig {
            id: bank_id.clone(),
            iso20022: None,
            name: "崩溃测试银行 Crash Test Bank (simulated, cn-xml)".to_owned(),
            family: banks::Family::CnXml,
            time_zone: domain::BankTimeZone::SHANGHAI,
            limits: BankLimits {
                concurrency: 8,
                queries_per_second: 500,
                connect_timeout_ms: 500,
                request_timeout_ms: 3_000,
            },
            quirks: BankQuirks {
                min_none_age_s: 2,
                max_unknown_age_s: 90,
                // Faults come one after another on purpose; an open
                // breaker would only slow the test down.
                breaker_failures: 1_000,
                ..BankQuirks::default()
            },
        }],
        connections: vec![ConnectionConfig {
            id: conn_id.clone(),
            bank: bank_id,
            endpoint: format!("http://{sim_addr}/"),
            login: SIM_LOGIN.to_owned(),
            customer_number: None,
            tls: None,
            password: None,
            signing: None,
        }],
        accounts: vec![AccountConfig {
            id: AccountId::parse(ACCOUNT_ID).unwrap(),
            connection: conn_id,
            number: AccountNumber::parse(&debtor.number).unwrap(),
            name: debtor.name.clone(),
            currencies: vec![domain::Currency::CNY],
        }],
        clients: vec![ClientConfig {
            id: ClientId::parse(CLIENT_ID).unwrap(),
            secret_hash: hasher.hash(secret.expose_secret()),
            scopes: Scope::ALL.to_vec(),
            accounts: vec!["*".to_owned()],
        }],
        users: Vec::new(),
        approval_rules: Vec::new(),
        audit: gateway::config::AuditConfig::default(),
        secrets: gateway::config::SecretsConfig::default(),
        simulators: vec![SimulatorConfig {
            bank_id: BANK_ID.to_owned(),
            family: banks::Family::CnXml,
            listen: sim_addr,
            seed: SIM_SEED,
            login: SIM_LOGIN.to_owned(),
            cny_accounts: 3,
            usd_accounts: 0,
            eur_accounts: 0,
            time_zone: domain::BankTimeZone::SHANGHAI,
            pki_dir: None,
            payments: Some(sim_payments),
            random_faults: Some(random_faults),
        }],
    };
    let config_path = dir.join("bankdirect.toml");
    std::fs::write(&config_path, toml::to_string_pretty(&config).unwrap()).unwrap();
    Setup {
        config_path,
        base: format!("http://{gateway_addr}"),
        sim_url: format!("http://{sim_addr}/"),
        client_secret: secret.expose_secret().to_owned(),
        debtor_number: debtor.number,
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap()
}

/// A token, asking again while the gateway is down.
pub fn token(http: &reqwest::blocking::Client, setup: &Setup, deadline: Instant) -> String {
    loop {
        let resp = http
            .post(format!("{}/oauth/token", setup.base))
            .basic_auth(CLIENT_ID, Some(&setup.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send();
        if let Ok(resp) = resp {
            if resp.status() == 200 {
                if let Ok(body) = resp.json::<Value>() {
                    return body["access_token"].as_str().unwrap().to_owned();
                }
            }
        }
        assert!(Instant::now() < deadline, "no token before the deadline");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn get_json(http: &reqwest::blocking::Client, url: &str) -> Value {
    let resp = http.get(url).send().unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().unwrap()
}

/// Sets the flag when the thread holding it panics, so the others stop.
pub struct StopOnPanic<'a>(pub &'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

pub fn executions(http: &reqwest::blocking::Client, setup: &Setup) -> Vec<Value> {
    get_json(http, &format!("{}_sim/executions", setup.sim_url))["items"]
        .as_array()
        .unwrap()
        .clone()
}

pub fn booked_balance(http: &reqwest::blocking::Client, setup: &Setup) -> i64 {
    let ledger = get_json(http, &format!("{}_sim/ledger", setup.sim_url));
    let account = ledger["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["number"] == setup.debtor_number.as_str())
        .unwrap();
    minor_of(account["booked"].as_str().unwrap())
}
