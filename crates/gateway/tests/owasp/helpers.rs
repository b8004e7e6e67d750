//! The harness of the OWASP suite: the real gateway on 127.0.0.1:0 with real
//! simulated cn-xml banks on loopback and a fresh SQLite database (the idea
//! of `tests/api/helpers.rs`, with a hook to shape the configuration, a
//! restart with another configuration on the same data, and a log capture).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use banksim::{SimBankConfig, SimServer};
use domain::{AccountId, AccountNumber, BankId, ClientId, ConnectionId, SystemClock, UserId};
use gateway::{
    auth::Scope,
    config::{
        AccountConfig, AuthConfig, BalancesConfig, BankConfig, BankLimits, BankQuirks,
        ClientConfig, Config, ConnectionConfig, DatabaseConfig, Role, ServerConfig,
        StatementsConfig, UserConfig,
    },
    App, BuildOptions,
};
use serde_json::{json, Value};

/// Bound on every HTTP call a test makes.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct TestClient {
    pub id: &'static str,
    pub secret: String,
}

/// Changes the configuration before the gateway starts.
pub type Configure = Arc<dyn Fn(&mut Config) + Send + Sync>;

#[derive(Default, Clone)]
pub struct Options {
    /// People; each logs in with the password `pw-<id>`.
    pub users: Vec<UserConfig>,
    pub approval_rules: Vec<gateway::config::ApprovalRuleConfig>,
    /// Last word on the configuration.
    pub configure: Option<Configure>,
    /// Write the configuration to a TOML file and load it the way `serve`
    /// does, with this environment (sealed values are opened there).
    pub load_from_file_with_env: Option<Vec<(String, String)>>,
}

pub struct TestApp {
    pub base_url: String,
    pub http: reqwest::Client,
    pub sims: Vec<SimServer>,
    pub config: Arc<Config>,
    pub data_dir: tempfile::TempDir,
    /// All scopes, all accounts.
    pub erp: TestClient,
    /// All scopes, only `south-1`: a second tenant.
    pub other: TestClient,
    /// `accounts:read`, only `east-1`.
    pub limited: TestClient,
    /// Only `audit:read`, all accounts.
    pub auditor: TestClient,
    /// `audit:read` and `accounts:read`, only `south-1`.
    pub narrow_auditor: TestClient,
    pub state: gateway::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

fn sim_cfg(bank_id: &str, seed: u64, login: &str, cny: usize) -> SimBankConfig {
    SimBankConfig {
        bank_id: bank_id.to_owned(),
        family: "cn-xml".to_owned(),
        seed,
        login: login.to_owned(),
        cny_accounts: cny,
        usd_accounts: 0,
        eur_accounts: 0,
        time_zone: "Asia/Shanghai".to_owned(),
    }
}

pub fn user(id: &str, roles: &[Role]) -> UserConfig {
    UserConfig {
        id: UserId::parse(id).unwrap(),
        name: String::new(),
        roles: roles.to_vec(),
        accounts: vec!["*".to_owned()],
        password_hash: Some(crypto::password::hash_password(&format!("pw-{id}")).unwrap()),
        totp_secret: None,
    }
}

/// A bank of the cn-xml family at `endpoint` with one account on one
/// connection: `<id>`, `<id>-main`, `<id>-1`.
pub fn add_bank(config: &mut Config, id: &str, endpoint: String, login: &str, number: &str) {
    let bank_id = BankId::parse(id).unwrap();
    let conn_id = ConnectionId::parse(&format!("{id}-main")).unwrap();
    config.banks.push(bank_config(&bank_id));
    config
        .connections
        .push(connection(&conn_id, &bank_id, &endpoint, login, json!({})));
    config.accounts.push(AccountConfig {
        id: AccountId::parse(&format!("{id}-1")).unwrap(),
        connection: conn_id,
        number: AccountNumber::parse(number).unwrap(),
        name: format!("{id} account"),
        currencies: vec![domain::Currency::CNY],
    });
}

/// A `[[connections]]` entry as the configuration file gives it, with
/// `extra` keys (`tls`, `password`…) added: read through serde, so fields
/// with defaults need not be named here.
pub fn connection(
    id: &ConnectionId,
    bank: &BankId,
    endpoint: &str,
    login: &str,
    extra: Value,
) -> ConnectionConfig {
    let mut entry = json!({
        "id": id.as_str(),
        "bank": bank.as_str(),
        "endpoint": endpoint,
        "login": login,
    });
    for (k, v) in extra.as_object().unwrap() {
        entry[k] = v.clone();
    }
    serde_json::from_value(entry).unwrap()
}

fn bank_config(bank_id: &BankId) -> BankConfig {
    BankConfig {
        id: bank_id.clone(),
        iso20022: None,
        name: format!("{bank_id} bank"),
        family: banks::Family::CnXml,
        time_zone: domain::BankTimeZone::SHANGHAI,
        limits: BankLimits {
            request_timeout_ms: 2_000,
            connect_timeout_ms: 500,
            ..BankLimits::default()
        },
        quirks: BankQuirks {
            min_none_age_s: 1,
            max_unknown_age_s: 20,
            breaker_failures: 1_000,
            ..BankQuirks::default()
        },
    }
}

type Started = (
    gateway::AppState,
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

async fn start_app(config: Config) -> Started {
    let app = App::build(
        config,
        BuildOptions {
            clock: Arc::new(SystemClock),
            run_workers: false,
        },
    )
    .await
    .unwrap();
    let state = app.state.clone();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
        };
        app.serve(listener, stop).await.unwrap();
    });
    (state, addr, tx, server)
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> TestApp {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let east = SimServer::start(sim_cfg("east", 21, "EAST01", 2), any)
            .await
            .unwrap();
        let south = SimServer::start(sim_cfg("south", 22, "SOUTH01", 1), any)
            .await
            .unwrap();
        let data_dir = tempfile::tempdir().unwrap();

        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            server: ServerConfig {
                listen: any,
                ..ServerConfig::default()
            },
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            balances: BalancesConfig {
                refresh_interval_s: 3600,
                worker_enabled: false,
                ..BalancesConfig::default()
            },
            statements: StatementsConfig {
                sync_interval_s: 3600,
                worker_enabled: false,
                ..StatementsConfig::default()
            },
            payments: gateway::config::PaymentsConfig {
                workers_enabled: false,
                ..gateway::config::PaymentsConfig::default()
            },
            webhooks: gateway::config::WebhooksConfig {
                worker_enabled: false,
                ..gateway::config::WebhooksConfig::default()
            },
            banks: Vec::new(),
            connections: Vec::new(),
            accounts: Vec::new(),
            clients: Vec::new(),
            users: opts.users.clone(),
            approval_rules: opts.approval_rules.clone(),
            audit: gateway::config::AuditConfig::default(),
            secrets: gateway::config::SecretsConfig::default(),
            simulators: Vec::new(),
        };
        for (sim, id, login) in [(&east, "east", "EAST01"), (&south, "south", "SOUTH01")] {
            let bank_id = BankId::parse(id).unwrap();
            let conn_id = ConnectionId::parse(&format!("{id}-main")).unwrap();
            config.banks.push(bank_config(&bank_id));
            config
                .connections
                .push(connection(&conn_id, &bank_id, &sim.url(), login, json!({})));
            for (i, acc) in sim.ledger().accounts().iter().enumerate() {
                config.accounts.push(AccountConfig {
                    id: AccountId::parse(&format!("{id}-{}", i + 1)).unwrap(),
                    connection: conn_id.clone(),
                    number: AccountNumber::parse(&acc.number).unwrap(),
                    name: acc.name.clone(),
                    currencies: vec![acc.currency],
                });
            }
        }

        let hasher = crypto::KeyedHasher::load_or_create(
            &data_dir
                .path()
                .join(AuthConfig::default().secret_hash_key_file),
        )
        .unwrap();
        let new_client = |id: &'static str| TestClient {
            id,
            secret: crypto::generate_client_secret().expose_secret().to_owned(),
        };
        let erp = new_client("erp");
        let other = new_client("other");
        let limited = new_client("limited");
        let auditor = new_client("auditor");
        let narrow_auditor = new_client("narrow-auditor");
        let mut register = |c: &TestClient, scopes: Vec<Scope>, accounts: &[&str]| {
            config.clients.push(ClientConfig {
                id: ClientId::parse(c.id).unwrap(),
                secret_hash: hasher.hash(&c.secret),
                scopes,
                accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
            });
        };
        register(&erp, Scope::ALL.to_vec(), &["*"]);
        register(&other, Scope::ALL.to_vec(), &["south-1"]);
        register(&limited, vec![Scope::AccountsRead], &["east-1"]);
        register(&auditor, vec![Scope::AuditRead], &["*"]);
        register(
            &narrow_auditor,
            vec![Scope::AuditRead, Scope::AccountsRead],
            &["south-1"],
        );
        if let Some(configure) = &opts.configure {
            configure(&mut config);
        }
        if let Some(env) = &opts.load_from_file_with_env {
            let path = data_dir.path().join("bankdirect.toml");
            std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
            config = Config::load_with_env(&path, env.clone()).unwrap();
        } else {
            config.validate().unwrap();
        }
        let (state, addr, tx, server) = start_app(config).await;
        TestApp {
            base_url: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .no_proxy()
                .build()
                .unwrap(),
            config: state.config.clone(),
            state,
            sims: vec![east, south],
            data_dir,
            erp,
            other,
            limited,
            auditor,
            narrow_auditor,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the gateway and starts it again on the same data dir, keys and
    /// banks with the configuration changed by `change`.
    pub async fn restart_with(&mut self, change: impl FnOnce(&mut Config)) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
        let mut config = (*self.config).clone();
        change(&mut config);
        config.validate().unwrap();
        let (state, addr, tx, server) = start_app(config).await;
        self.base_url = format!("http://{addr}");
        self.config = state.config.clone();
        self.state = state;
        self.shutdown = Some(tx);
        self.server = Some(server);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn sim(&self, bank: &str) -> &SimServer {
        match bank {
            "east" => &self.sims[0],
            "south" => &self.sims[1],
            other => panic!("no simulator {other}"),
        }
    }

    /// What the simulated bank executed: reference → how many times.
    pub async fn executions(&self, bank: &str) -> std::collections::HashMap<String, u64> {
        self.sim(bank)
            .executions()
            .into_iter()
            .map(|e| (e.reference.clone(), u64::from(e.count)))
            .collect()
    }

    pub async fn token_for(&self, client: &TestClient, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let resp = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(client.id, Some(&client.secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "token request for {} failed", client.id);
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A person's login with the password `pw-<id>`.
    pub async fn login(&self, id: &str) -> String {
        let (status, body) = self.login_with(id, &format!("pw-{id}")).await;
        assert_eq!(status, 200, "login of {id}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn login_with(&self, username: &str, password: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/oauth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        split(resp).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        split(resp).await
    }

    /// POST with a JSON body and a fresh Idempotency-Key.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let key = format!("k-{}", uuid::Uuid::new_v4());
        self.post_keyed(path, token, &key, body).await
    }

    pub async fn post_keyed(
        &self,
        path: &str,
        token: &str,
        key: &str,
        body: &Value,
    ) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        split(resp).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        split(resp).await
    }

    /// Creates a payment of `amount` CNY from `debtor`; asserts 201.
    pub async fn pay(&self, token: &str, debtor: &str, amount: &str) -> Value {
        let (s, v) = self
            .post("/v1/payments", token, &payment_body(debtor, amount))
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    /// Runs every payment worker round `n` times.
    pub async fn drive_rounds(&self, n: usize) {
        for _ in 0..n {
            let w = &self.state.payment_workers;
            w.dispatch_round().await.unwrap();
            w.reap_round().await.unwrap();
            w.poll_round().await.unwrap();
        }
    }

    /// Runs the payment workers' rounds until the payment is `want`,
    /// bounded in time.
    pub async fn drive_to(&self, token: &str, id: &str, want: &[&str]) -> Value {
        let started = Instant::now();
        loop {
            let w = &self.state.payment_workers;
            w.dispatch_round().await.unwrap();
            w.reap_round().await.unwrap();
            w.poll_round().await.unwrap();
            let (_, p) = self.get(&format!("/v1/payments/{id}"), token).await;
            if want.contains(&p["status"].as_str().unwrap_or("")) {
                return p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(25),
                "payment {id} never became {want:?}: {p}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
        for s in std::mem::take(&mut self.sims) {
            s.shutdown().await;
        }
    }
}

pub fn payment_body(debtor: &str, amount: &str) -> Value {
    json!({
        "debtor_account_id": debtor,
        "amount": amount,
        "currency": "CNY",
        "creditor": {
            "name": "上海测试贸易有限公司",
            "account": "6222020000001234",
            "bank_code": "102290000001",
            "bank_name": "中国工商银行上海分行",
            "type": "corporate"
        },
        "remittance": "设备款",
    })
}

pub fn batch_body(debtor: &str, n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "amount": "1.00",
                "creditor": {
                    "name": format!("员工{i}"),
                    "account": format!("62220200{i:08}"),
                    "bank_code": "102290000001",
                    "type": "personal"
                },
                "remittance": "工资",
            })
        })
        .collect();
    json!({
        "debtor_account_id": debtor,
        "currency": "CNY",
        "kind": "payroll",
        "count": n,
        "control_sum": format!("{n}.00"),
        "items": items,
    })
}

/// Words that give away the implementation: none may be in an error body.
pub const INTERNALS: &[&str] = &[
    "panicked",
    "RUST_BACKTRACE",
    "stack backtrace",
    "src/",
    ".rs:",
    "/root/",
    "/home/",
    "/tmp/",
    "sqlx",
    "SQLITE",
    "sqlite",
    "tokio",
    "called `Option::unwrap()`",
    "called `Result::unwrap()`",
    "thread '",
];

/// Asserts that an error body gives nothing of the implementation away.
pub fn assert_no_internals(context: &str, body: &str) {
    for word in INTERNALS {
        assert!(
            !body.contains(word),
            "{context}: the error body shows {word:?}: {body}"
        );
    }
}

/// Status and JSON body; asserts that errors are problem+json, carry a
/// code and a detail, never a 500 and never internals.
pub async fn split(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap();
    record_error_body(status, &text);
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    if status >= 400 {
        assert_eq!(
            ctype, "application/problem+json",
            "error {status} must be problem+json: {body}"
        );
        assert!(body["code"].is_string(), "problem has a code: {body}");
        assert!(body["detail"].is_string(), "problem has a detail: {body}");
        assert_no_internals(&format!("{status}"), &text);
    }
    assert_ne!(status, 500, "never a 500: {body}");
    (status, body)
}

/// Every error body any test of this binary has seen.
pub fn error_bodies() -> Vec<String> {
    ERROR_BODIES
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .clone()
}

static ERROR_BODIES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

fn record_error_body(status: u16, text: &str) {
    if status >= 400 {
        ERROR_BODIES
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .push(text.to_owned());
    }
}

/// The log lines of this test process at debug level, from the moment
/// [`capture_logs`] was first called.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<LogBuffer> = OnceLock::new();

/// Installs (once per process) a subscriber writing every event at debug
/// level and above, with its span fields, into a buffer.
pub fn capture_logs() -> LogBuffer {
    LOGS.get_or_init(|| {
        use tracing_subscriber::util::SubscriberInitExt as _;
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
            .try_init()
            .expect("no other subscriber in the owasp test process");
        buffer
    })
    .clone()
}
