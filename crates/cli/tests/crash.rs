#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The crash test (issue 4, "Must hold"): the real `bankdirect serve` and
//! `bankdirect sim` as separate processes on loopback; 520 payments
//! submitted by 32 concurrent clients while the simulated bank spoils 11 %
//! of the submissions after executing them and 6 % before; the gateway
//! `kill -9`ed three times at seeded moments during submission and once
//! while it works the backlog off, and restarted once with each failpoint
//! armed (it must abort there by itself) — every death followed by a normal
//! restart. Afterwards:
//!
//! - every payment is final or `needs_review` (a handful at most);
//! - each Idempotency-Key made exactly one payment;
//! - no execution at the bank carries a reference the gateway does not know,
//!   and none was executed twice;
//! - what the gateway says happened is what happened at the bank: `settled`
//!   and `returned` were executed exactly once with the same amount and the
//!   same outcome, `failed` moved no money;
//! - the debtor's statement shows one debit per settled payment, a debit
//!   and a credit per returned one, nothing for the rest, and its balance
//!   fell by the settled amounts exactly (returns are credited back).
//!
//! It runs on SQLite and on PostgreSQL (`BANKDIRECT_TEST_PG_URL`, set by
//! `scripts/test`; a fresh database per run, dropped afterwards). It prints
//! its seed first; `CRASH_SEED=N` replays the amounts, the fault seed and
//! the kill moments (which packet draws which fault follows arrival order,
//! so a replay under concurrency is close, not identical). Everything is
//! bounded in time and every child process is killed when the test ends,
//! pass or fail; on failure the working directory (config, logs) and the
//! PostgreSQL database are kept and named.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs::OpenOptions,
    net::SocketAddr,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex,
    },
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
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_bankdirect");

/// Payments submitted (the issue asks for at least 500).
const PAYMENTS: usize = 520;
/// Client threads submitting at once.
const CLIENTS: usize = 32;
/// `kill -9`s at seeded moments while payments are being submitted.
const RANDOM_KILLS: usize = 3;
/// Longest pause of a client before a payment (mean half of it): 32 clients
/// then submit ~45 payments a second, and submission lasts ~12 s.
const MAX_THINK_MS: u64 = 1_400;
/// Payments still in `needs_review` at the end above this fail the test:
/// with queries never faulted, an unknown outcome resolves long before
/// `max_unknown_age_s`.
const MAX_NEEDS_REVIEW: usize = 5;
/// The whole test, set-up and checks included, must end within this.
const BUDGET: Duration = Duration::from_secs(175);
/// Bound on one start of the gateway or the simulator.
const START_WITHIN: Duration = Duration::from_secs(30);
/// Bound on a gateway armed with a failpoint reaching it.
const FAILPOINT_WITHIN: Duration = Duration::from_secs(30);
/// Payments one worker round claims: the configuration's default, so the
/// test runs the shipped setting. (This test once found that the status
/// poller starved when more payments were settled than one batch holds: a
/// claim refreshed `updated_at` and polling did not move `next_attempt_at`.
/// Both are fixed; `CRASH_CLAIM_BATCH` sets another batch size.)
const CLAIM_BATCH: u32 = 32;
/// The wait for the backlog gives up when no status changed for this long
/// (no status at the gateway and none at the bank).
const STUCK_AFTER: Duration = Duration::from_secs(30);
/// Bound on every HTTP call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

const FAILPOINTS: [&str; 2] = ["after_submitting_commit", "after_bank_answer"];
const FINAL: [&str; 5] = ["settled", "returned", "failed", "cancelled", "declined"];

const CLIENT_ID: &str = "crash-erp";
const BANK_ID: &str = "crash-bank";
const ACCOUNT_ID: &str = "crash-cny-1";
const SIM_SEED: u64 = 4_2424;
const SIM_LOGIN: &str = "CRASH01";

// Only one crash test at a time: each alone keeps both cores busy.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn crash_test_on_sqlite() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    crash_test(None);
}

#[test]
fn crash_test_on_postgres() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Ok(admin_url) = std::env::var("BANKDIRECT_TEST_PG_URL") else {
        panic!(
            "BANKDIRECT_TEST_PG_URL is not set: run `scripts/pg-test.sh start && eval \"$(scripts/pg-test.sh env)\"` first (scripts/test does both)"
        );
    };
    let db = PgDatabase::create(&admin_url);
    crash_test(Some(db.url.clone()));
}

// ---------------------------------------------------------------------------
// The seed and what is drawn from it
// ---------------------------------------------------------------------------

fn seed() -> u64 {
    match std::env::var("CRASH_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CRASH_SEED={text:?} is not an unsigned integer")),
        Err(_) => domain::OsRandom.next_u64() >> 1,
    }
}

/// Draws from the seed. A `SeededRandom` is ChaCha20: the same seed gives
/// the same draws everywhere.
struct Draws(domain::SeededRandom);

impl Draws {
    /// A number in `lo..=hi`.
    fn between(&self, lo: u64, hi: u64) -> u64 {
        lo + self.0.next_u64() % (hi - lo + 1)
    }
}

/// What one gateway death looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// `kill -9`, then a normal restart.
    Kill,
    /// `kill -9`, a restart with this failpoint armed (the gateway must
    /// abort there by itself), then a normal restart.
    Failpoint(&'static str),
}

#[derive(Debug, Clone, Copy)]
struct Event {
    /// Submitted payments (201s seen by the clients) before it happens.
    after_accepted: usize,
    /// And this much later.
    delay_ms: u64,
    death: Death,
}

struct Plan {
    /// Amounts in CNY fen, one per payment.
    amounts_minor: Vec<i64>,
    /// How long the client waits before submitting each payment, so that
    /// submission lasts long enough for the kills to land in it.
    think_ms: Vec<u64>,
    fault_seed: u64,
    /// During submission, ordered by `after_accepted`.
    events: Vec<Event>,
    /// The last `kill -9`, this long after the last payment was accepted.
    backlog_kill_ms: u64,
}

impl Plan {
    fn from_seed(seed: u64) -> Plan {
        let draws = Draws(domain::SeededRandom::new(seed));
        let amounts_minor = (0..PAYMENTS)
            .map(|_| draws.between(100, 500_000) as i64)
            .collect();
        let think_ms = (0..PAYMENTS)
            .map(|_| draws.between(0, MAX_THINK_MS))
            .collect();
        let fault_seed = draws.between(0, u64::MAX >> 1);
        let mut deaths: Vec<Death> = (0..RANDOM_KILLS).map(|_| Death::Kill).collect();
        deaths.extend(FAILPOINTS.into_iter().map(Death::Failpoint));
        let n = PAYMENTS as u64;
        let mut events: Vec<Event> = deaths
            .into_iter()
            .map(|death| Event {
                // Leave enough payments behind the last event for a gateway
                // armed with a failpoint to find one to dispatch.
                after_accepted: draws.between(n / 20, n * 4 / 5) as usize,
                delay_ms: draws.between(0, 400),
                death,
            })
            .collect();
        events.sort_by_key(|e| e.after_accepted);
        Plan {
            amounts_minor,
            think_ms,
            fault_seed,
            events,
            backlog_kill_ms: draws.between(300, 2_500),
        }
    }
}

fn claim_batch() -> u32 {
    std::env::var("CRASH_CLAIM_BATCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(CLAIM_BATCH)
}

fn decimal(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn minor_of(text: &str) -> i64 {
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
struct WorkDir(Option<tempfile::TempDir>);

impl WorkDir {
    fn path(&self) -> &Path {
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
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn log_file(path: &Path) -> Stdio {
    Stdio::from(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap(),
    )
}

fn spawn(args: &[&str], log: &Path, failpoint: Option<&str>) -> Child {
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
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The gateway process, stopped and started by the test.
struct Gateway {
    config: PathBuf,
    log: PathBuf,
    base: String,
    child: Option<Running>,
    starts: usize,
}

impl Gateway {
    fn start(&mut self, failpoint: Option<&'static str>) {
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

    fn kill(&mut self) {
        if let Some(mut running) = self.child.take() {
            running.0.kill().unwrap();
            running.0.wait().unwrap();
        }
    }

    /// Fails the test if the gateway exited without being told to.
    fn check_alive(&mut self) {
        if let Some(running) = self.child.as_mut() {
            if let Some(status) = running.0.try_wait().unwrap() {
                panic!(
                    "the gateway exited by itself ({status}); last lines of its log:\n{}",
                    tail(&self.log, 40)
                );
            }
        }
    }

    fn wait_ready(&mut self, http: &reqwest::blocking::Client) {
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
    fn wait_for_failpoint(&mut self, name: &str, abort: &AtomicBool) -> ExitStatus {
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

/// A fresh PostgreSQL database for one run, dropped afterwards (the `psql`
/// binary does the admin work: the cli crate has no SQL driver).
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
    psql: PathBuf,
}

impl PgDatabase {
    fn create(admin_url: &str) -> PgDatabase {
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

    fn psql(&self, sql: &str) {
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

fn find_psql() -> PathBuf {
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

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

struct Setup {
    config_path: PathBuf,
    base: String,
    sim_url: String,
    client_secret: String,
    debtor_number: String,
}

fn write_config(dir: &Path, database_url: Option<&str>, plan: &Plan) -> Setup {
    let gateway_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let sim_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let sim_bank = banksim::SimBankConfig {
        bank_id: BANK_ID.to_owned(),
        family: banksim::FAMILY_CN_XML.to_owned(),
        seed: SIM_SEED,
        login: SIM_LOGIN.to_owned(),
        cny_accounts: 3,
        usd_accounts: 0,
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
    // 11 % of the submissions spoiled after the bank executed them, 6 %
    // before; status queries are never spoiled.
    let random_faults: toml::Table = toml::from_str(&format!(
        r#"
seed = {}
rules = [
  {{ kind = "http_error", status = 500, when = "after", percent = 5, function = "SubmitPayment" }},
  {{ kind = "reset", when = "after", percent = 3, function = "SubmitPayment" }},
  {{ kind = "response_lost", hold_ms = 0, percent = 3, function = "SubmitPayment" }},
  {{ kind = "http_error", status = 503, when = "before", percent = 3, function = "SubmitPayment" }},
  {{ kind = "reset", when = "before", percent = 3, function = "SubmitPayment" }},
]
"#,
        plan.fault_seed
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
        // Only payments talk to the bank in this test.
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
            claim_batch: claim_batch(),
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            status_poll_ms: 300,
            return_watch_s: 10,
            ..PaymentsConfig::default()
        },
        webhooks: gateway::config::WebhooksConfig::default(),
        banks: vec![BankConfig {
            id: bank_id.clone(),
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
        simulators: vec![SimulatorConfig {
            bank_id: BANK_ID.to_owned(),
            family: banks::Family::CnXml,
            listen: sim_addr,
            seed: SIM_SEED,
            login: SIM_LOGIN.to_owned(),
            cny_accounts: 3,
            usd_accounts: 0,
            time_zone: domain::BankTimeZone::SHANGHAI,
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

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap()
}

/// A token, asking again while the gateway is down.
fn token(http: &reqwest::blocking::Client, setup: &Setup, deadline: Instant) -> String {
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

fn get_json(http: &reqwest::blocking::Client, url: &str) -> Value {
    let resp = http.get(url).send().unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().unwrap()
}

fn payment_body(i: usize, amount_minor: i64) -> Value {
    json!({
        "debtor_account_id": ACCOUNT_ID,
        "amount": decimal(amount_minor),
        "currency": "CNY",
        "creditor": {
            "name": "上海测试贸易有限公司",
            "account": "6222020000001234",
            "bank_code": "102290000001",
            "bank_name": "中国工商银行上海分行",
            "type": "corporate"
        },
        "remittance": format!("货款 {i}"),
    })
}

/// What the gateway answered when it took a payment.
#[derive(Debug, Clone)]
struct Accepted {
    id: String,
    reference: String,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicUsize,
    /// Requests that found the gateway down or dying.
    retries: AtomicUsize,
    /// Answers marked `idempotent-replayed`.
    replays: AtomicUsize,
}

/// Sets the flag when the thread holding it panics, so the others stop.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// Submits payment `i` until the gateway has taken it: the same key and the
/// same body on every attempt, whatever happened to the previous one.
#[allow(clippy::too_many_arguments)]
fn submit(
    http: &reqwest::blocking::Client,
    setup: &Setup,
    bearer: &mut String,
    seed: u64,
    i: usize,
    amount_minor: i64,
    counters: &Counters,
    stop: &AtomicBool,
    deadline: Instant,
) -> Option<Accepted> {
    let key = format!("crash-{seed}-{i}");
    let body = payment_body(i, amount_minor);
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "payment {i} not accepted before the deadline"
        );
        let resp = http
            .post(format!("{}/v1/payments", setup.base))
            .bearer_auth(bearer.as_str())
            .header("idempotency-key", &key)
            .json(&body)
            .send();
        let retry = match resp {
            Err(_) => true,
            Ok(resp) => {
                let status = resp.status().as_u16();
                let replayed = resp.headers().contains_key("idempotent-replayed");
                let text = resp.text().unwrap_or_default();
                match status {
                    201 => {
                        // A body cut short by a kill is one more reason to ask again.
                        if let Ok(v) = serde_json::from_str::<Value>(&text) {
                            if replayed {
                                counters.replays.fetch_add(1, Ordering::SeqCst);
                            }
                            assert_eq!(v["amount"], decimal(amount_minor), "payment {i}: {v}");
                            return Some(Accepted {
                                id: v["id"].as_str().unwrap().to_owned(),
                                reference: v["business_reference"].as_str().unwrap().to_owned(),
                            });
                        }
                        true
                    }
                    401 => {
                        *bearer = token(http, setup, deadline);
                        true
                    }
                    409 if text.contains("idempotency_in_progress") => true,
                    429 | 500..=599 => true,
                    _ => panic!("payment {i} (key {key}): unexpected {status}: {text}"),
                }
            }
        };
        if retry {
            counters.retries.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Every payment the gateway holds, through its API (all pages).
fn list_payments(
    http: &reqwest::blocking::Client,
    setup: &Setup,
    bearer: &mut String,
    deadline: Instant,
) -> Vec<Value> {
    'again: loop {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/payments?limit=500", setup.base);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = match http.get(&url).bearer_auth(bearer.as_str()).send() {
                Ok(resp) if resp.status() == 200 => resp.json::<Value>().ok(),
                Ok(resp) if resp.status() == 401 => {
                    *bearer = token(http, setup, deadline);
                    None
                }
                _ => None,
            };
            let Some(page) = page else {
                assert!(Instant::now() < deadline, "cannot list the payments");
                std::thread::sleep(Duration::from_millis(200));
                continue 'again;
            };
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
    }
}

/// For each transition cause, how many payments went through it (read
/// from every payment's history).
fn causes(
    http: &reqwest::blocking::Client,
    setup: &Setup,
    bearer: &mut String,
    payments: &[Value],
    deadline: Instant,
) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for p in payments {
        let url = format!("{}/v1/payments/{}", setup.base, p["id"].as_str().unwrap());
        let full = loop {
            match http.get(&url).bearer_auth(bearer.as_str()).send() {
                Ok(resp) if resp.status() == 200 => break resp.json::<Value>().unwrap(),
                Ok(resp) if resp.status() == 401 => *bearer = token(http, setup, deadline),
                _ => {
                    assert!(Instant::now() < deadline, "cannot read {url}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        let seen: BTreeSet<String> = full["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["cause"].as_str().unwrap().to_owned())
            .collect();
        for cause in seen {
            *counts.entry(cause).or_default() += 1;
        }
    }
    counts
}

fn executions(http: &reqwest::blocking::Client, setup: &Setup) -> Vec<Value> {
    get_json(http, &format!("{}_sim/executions", setup.sim_url))["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn booked_balance(http: &reqwest::blocking::Client, setup: &Setup) -> i64 {
    let ledger = get_json(http, &format!("{}_sim/ledger", setup.sim_url));
    let account = ledger["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["number"] == setup.debtor_number.as_str())
        .unwrap();
    minor_of(account["booked"].as_str().unwrap())
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

fn crash_test(database_url: Option<String>) {
    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let seed = seed();
    println!("crash test seed: {seed} (replay with CRASH_SEED={seed})");
    eprintln!("crash test seed: {seed} (replay with CRASH_SEED={seed}), on {backend}");
    let started = Instant::now();
    let deadline = started + BUDGET;
    let plan = Plan::from_seed(seed);

    let work = WorkDir(Some(
        tempfile::Builder::new()
            .prefix("bankdirect-crash-")
            .tempdir()
            .unwrap(),
    ));
    let setup = write_config(work.path(), database_url.as_deref(), &plan);
    let http = http();

    // The bank lives through every crash of the gateway.
    let sim_log = work.path().join("sim.log");
    let _sim = Running(spawn(
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
    let balance_before = booked_balance(&http, &setup);

    let gateway = Mutex::new(Gateway {
        config: setup.config_path.clone(),
        log: work.path().join("gateway.log"),
        base: setup.base.clone(),
        child: None,
        starts: 0,
    });
    gateway.lock().unwrap().start(None);
    gateway.lock().unwrap().wait_ready(&http);

    // Submission: the clients in threads, the killer here.
    let counters = Counters::default();
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Accepted>>> = Mutex::new(vec![None; PAYMENTS]);
    let mut kills = 0usize;
    let mut failpoint_deaths = Vec::new();
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (http, setup, plan, counters, stop, results) =
                (&http, &setup, &plan, &counters, &stop, &results);
            scope.spawn(move || {
                let _guard = StopOnPanic(stop);
                let mut token = token(http, setup, deadline);
                for i in (client..PAYMENTS).step_by(CLIENTS) {
                    std::thread::sleep(Duration::from_millis(plan.think_ms[i]));
                    let Some(accepted) = submit(
                        http,
                        setup,
                        &mut token,
                        seed,
                        i,
                        plan.amounts_minor[i],
                        counters,
                        stop,
                        deadline,
                    ) else {
                        return;
                    };
                    results.lock().unwrap()[i] = Some(accepted);
                    counters.accepted.fetch_add(1, Ordering::SeqCst);
                }
            });
        }

        let _guard = StopOnPanic(&stop);
        for event in &plan.events {
            while counters.accepted.load(Ordering::SeqCst) < event.after_accepted {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                gateway.lock().unwrap().check_alive();
                assert!(
                    Instant::now() < deadline,
                    "submission stalled before {} payments",
                    event.after_accepted
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(event.delay_ms));
            let mut gw = gateway.lock().unwrap();
            gw.check_alive();
            gw.kill();
            kills += 1;
            eprintln!(
                "crash test: kill -9 after {} accepted payments ({:?})",
                counters.accepted.load(Ordering::SeqCst),
                event.death
            );
            if let Death::Failpoint(name) = event.death {
                gw.start(Some(name));
                let status = gw.wait_for_failpoint(name, &stop);
                assert_eq!(
                    status.signal(),
                    Some(6),
                    "the gateway armed with {name} should abort there, but exited with {status}; log:\n{}",
                    tail(&gw.log, 40)
                );
                failpoint_deaths.push(name);
            }
            gw.start(None);
            gw.wait_ready(&http);
        }
        // Wait for the clients while watching the gateway.
        while counters.accepted.load(Ordering::SeqCst) < PAYMENTS && !stop.load(Ordering::SeqCst) {
            gateway.lock().unwrap().check_alive();
            assert!(Instant::now() < deadline, "submission did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert!(!stop.load(Ordering::SeqCst), "a client stopped early");
    let submitted_in = started.elapsed();
    let accepted: Vec<Accepted> = results
        .into_inner()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, a)| a.unwrap_or_else(|| panic!("payment {i} was never accepted")))
        .collect();

    // One more crash while the gateway works the backlog off.
    std::thread::sleep(Duration::from_millis(plan.backlog_kill_ms));
    {
        let mut gw = gateway.lock().unwrap();
        gw.check_alive();
        gw.kill();
        kills += 1;
        eprintln!("crash test: kill -9 while the backlog is worked off");
        gw.start(None);
        gw.wait_ready(&http);
    }

    // Wait until everything is final and the gateway has seen what the bank
    // did (settlements, returns).
    let mut token = token(&http, &setup, deadline);
    let mut last_change = (Instant::now(), Vec::new());
    let (payments, execs) = loop {
        gateway.lock().unwrap().check_alive();
        let payments = list_payments(&http, &setup, &mut token, deadline);
        let execs = executions(&http, &setup);
        let sim_status: HashMap<&str, &str> = execs
            .iter()
            .map(|e| {
                (
                    e["reference"].as_str().unwrap(),
                    e["status"].as_str().unwrap(),
                )
            })
            .collect();
        let pending = payments
            .iter()
            .filter(|p| {
                let status = p["status"].as_str().unwrap();
                let at_bank = sim_status
                    .get(p["business_reference"].as_str().unwrap())
                    .copied();
                !(FINAL.contains(&status) || status == "needs_review")
                    || at_bank == Some("processing")
                    || (status == "settled" && at_bank == Some("returned"))
            })
            .count();
        if pending == 0 && payments.len() >= PAYMENTS {
            break (payments, execs);
        }
        // Stuck (nothing moves any more) or out of time: the checks below
        // say what is wrong.
        let snapshot: Vec<String> = payments
            .iter()
            .map(|p| p["status"].as_str().unwrap().to_owned())
            .chain(
                execs
                    .iter()
                    .map(|e| e["status"].as_str().unwrap().to_owned()),
            )
            .collect();
        if snapshot != last_change.1 {
            last_change = (Instant::now(), snapshot);
        }
        if last_change.0.elapsed() > STUCK_AFTER || Instant::now() >= deadline {
            eprintln!("crash test: {pending} payments still pending; checking what there is");
            break (payments, execs);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let converged_in = started.elapsed();
    let balance_after = booked_balance(&http, &setup);
    let entries = get_json(
        &http,
        &format!(
            "{}_sim/accounts/{}/entries",
            setup.sim_url, setup.debtor_number
        ),
    );
    let causes = causes(&http, &setup, &mut token, &payments, deadline);
    let starts = gateway.lock().unwrap().starts;
    gateway.lock().unwrap().kill();

    // ---- The checks --------------------------------------------------------

    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for p in &payments {
        *by_status
            .entry(p["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let mut sim_by_status: BTreeMap<String, usize> = BTreeMap::new();
    for e in &execs {
        *sim_by_status
            .entry(e["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let resends: u64 = execs
        .iter()
        .map(|e| e["submissions"].as_u64().unwrap().saturating_sub(1))
        .sum();
    println!(
        "crash test on {backend}: seed {seed}; {} payments from {CLIENTS} clients, submitted in {:.1?}, all settled in {:.1?}",
        PAYMENTS, submitted_in, converged_in
    );
    println!(
        "  gateway: {kills} kill -9 ({RANDOM_KILLS} at random during submission, 2 before failpoint restarts, 1 in the backlog), {} failpoint aborts {:?}, {starts} starts; clients retried {} requests, {} answers replayed",
        failpoint_deaths.len(),
        failpoint_deaths,
        counters.retries.load(Ordering::SeqCst),
        counters.replays.load(Ordering::SeqCst)
    );
    println!("  gateway statuses: {by_status:?}");
    println!("  payments per transition cause: {causes:?}");
    println!(
        "  bank: {} executions {sim_by_status:?}, {resends} resubmissions of a known reference",
        execs.len()
    );

    // Every payment final or needs_review.
    let not_final: Vec<String> = payments
        .iter()
        .filter(|p| {
            let s = p["status"].as_str().unwrap();
            !(FINAL.contains(&s) || s == "needs_review")
        })
        .map(|p| format!("{} {}", p["id"], p["status"]))
        .collect();
    assert!(
        not_final.is_empty(),
        "{} payments are neither final nor in needs_review after {:?} (seed {seed}): {:?}",
        not_final.len(),
        BUDGET,
        not_final.iter().take(20).collect::<Vec<_>>()
    );
    let review: Vec<&Value> = payments
        .iter()
        .filter(|p| p["status"] == "needs_review")
        .collect();
    if !review.is_empty() {
        println!(
            "  needs_review: {:?}",
            review
                .iter()
                .map(|p| format!("{} {}", p["id"], p["business_reference"]))
                .collect::<Vec<_>>()
        );
    }
    assert!(
        review.len() <= MAX_NEEDS_REVIEW,
        "{} payments in needs_review (at most {MAX_NEEDS_REVIEW} expected; seed {seed})",
        review.len()
    );

    // One payment per Idempotency-Key: exactly the ones the clients were given.
    assert_eq!(
        payments.len(),
        PAYMENTS,
        "the gateway holds {} payments for {PAYMENTS} keys (seed {seed})",
        payments.len()
    );
    let ids: BTreeSet<&str> = payments.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), PAYMENTS, "payment ids are unique");
    let by_reference: HashMap<&str, &Value> = payments
        .iter()
        .map(|p| (p["business_reference"].as_str().unwrap(), p))
        .collect();
    assert_eq!(
        by_reference.len(),
        PAYMENTS,
        "business references are unique"
    );
    for (i, a) in accepted.iter().enumerate() {
        let p = by_reference
            .get(a.reference.as_str())
            .unwrap_or_else(|| panic!("payment {i} ({a:?}) is not in the gateway's list"));
        assert_eq!(p["id"], a.id.as_str(), "payment {i}: the id the client got");
        assert_eq!(
            minor_of(p["amount"].as_str().unwrap()),
            plan.amounts_minor[i],
            "payment {i}: amount"
        );
    }

    // The bank: only known references, each executed at most once.
    let mut executed: HashMap<&str, &Value> = HashMap::new();
    for e in &execs {
        let reference = e["reference"].as_str().unwrap();
        assert!(
            by_reference.contains_key(reference),
            "the bank executed reference {reference}, which the gateway does not know: {e}"
        );
        assert_eq!(e["count"], 1, "executed more than once: {e}");
        assert!(
            executed.insert(reference, e).is_none(),
            "reference {reference} listed twice by the bank"
        );
    }

    // What the gateway says happened is what happened at the bank.
    let mut settled_minor = 0i64;
    let mut review_moved_minor = 0i64;
    for p in &payments {
        let reference = p["business_reference"].as_str().unwrap();
        let status = p["status"].as_str().unwrap();
        let amount = minor_of(p["amount"].as_str().unwrap());
        let at_bank = executed.get(reference);
        if let Some(e) = at_bank {
            assert_eq!(
                minor_of(e["amount"].as_str().unwrap()),
                amount,
                "amount at the bank: {p} vs {e}"
            );
        }
        let bank_status = at_bank.map(|e| e["status"].as_str().unwrap());
        match status {
            "settled" | "returned" => {
                assert_eq!(
                    bank_status,
                    Some(status),
                    "gateway says {status}, the bank says {bank_status:?}: {p}"
                );
                if status == "settled" {
                    settled_minor += amount;
                }
            }
            "needs_review" => {
                if matches!(bank_status, Some("settled" | "processing")) {
                    review_moved_minor += amount;
                }
            }
            _ => assert!(
                matches!(bank_status, None | Some("failed")),
                "gateway says {status} but the bank moved the money ({bank_status:?}): {p}"
            ),
        }
    }

    // The debtor's statement: a debit per executed payment, a credit back
    // per returned one, nothing for the others.
    let mut debits: HashMap<&str, usize> = HashMap::new();
    let mut credits: HashMap<&str, usize> = HashMap::new();
    for entry in entries.as_array().unwrap() {
        let e2e = entry["e2e_ref"].as_str().unwrap();
        if !by_reference.contains_key(e2e) {
            continue;
        }
        let side = if entry["direction"] == "debit" {
            &mut debits
        } else {
            &mut credits
        };
        *side.entry(e2e).or_default() += 1;
    }
    for p in &payments {
        let reference = p["business_reference"].as_str().unwrap();
        let (d, c) = (
            debits.get(reference).copied().unwrap_or(0),
            credits.get(reference).copied().unwrap_or(0),
        );
        let ok = match p["status"].as_str().unwrap() {
            "settled" => (d, c) == (1, 0),
            "returned" => (d, c) == (1, 1),
            // Whatever happened, at most once.
            "needs_review" => d <= 1 && c <= d,
            _ => (d, c) == (0, 0),
        };
        assert!(
            ok,
            "{d} debits and {c} credits for {reference} in the debtor's statement: {p}"
        );
    }

    // The ledger's net debit is the settled payments (returns came back).
    let net_debit = balance_before - balance_after;
    println!(
        "  ledger: debtor net debit {} = settled {} (+ {} moved by payments in needs_review)",
        decimal(net_debit),
        decimal(settled_minor),
        decimal(review_moved_minor)
    );
    assert_eq!(
        net_debit,
        settled_minor + review_moved_minor,
        "the debtor's net debit differs from the settled payments (seed {seed})"
    );
    assert!(
        by_status.get("settled").copied().unwrap_or(0) > PAYMENTS / 2,
        "most payments settle: {by_status:?}"
    );
    assert_eq!(
        failpoint_deaths.len(),
        FAILPOINTS.len(),
        "each failpoint crashed the gateway once"
    );
    assert!(kills > RANDOM_KILLS);
    // The faults and crashes really happened: outcomes were unknown, the
    // bank's "none" led to resends, and crashes left work mid-submission.
    let went_through = |cause: &str| causes.get(cause).copied().unwrap_or(0);
    assert!(
        went_through("outcome_unknown") >= PAYMENTS / 20,
        "too few unknown outcomes for the faults injected: {causes:?}"
    );
    assert!(went_through("bank_says_none") >= 1, "{causes:?}");
    assert!(went_through("lease_expired") >= 1, "{causes:?}");
    drop(work);
}
