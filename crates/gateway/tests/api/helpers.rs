//! Spawns the real gateway on 127.0.0.1:0 with real simulated banks on
//! loopback and a fresh SQLite database, and talks to it over HTTP.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use banksim::{SimBankConfig, SimServer};
use domain::{AccountId, AccountNumber, BankId, ClientId, ConnectionId, SystemClock};
use gateway::{
    auth::Scope,
    config::{
        AccountConfig, AuthConfig, BalancesConfig, BankConfig, BankLimits, BankQuirks,
        ClientConfig, Config, ConnectionConfig, DatabaseConfig, ServerConfig, StatementsConfig,
    },
    App, BuildOptions,
};
use serde_json::Value;

/// Bound on every HTTP call a test makes.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

pub struct TestClient {
    pub id: &'static str,
    pub secret: String,
}

pub struct TestApp {
    workers: bool,
    pub base_url: String,
    pub http: reqwest::Client,
    pub sims: Vec<SimServer>,
    pub config: Arc<Config>,
    /// Held so the data dir lives as long as the app.
    _data_dir: tempfile::TempDir,
    /// All scopes, all accounts.
    pub erp: TestClient,
    /// `accounts:read`, only the first account of the first bank.
    pub limited: TestClient,
    /// Only `audit:read`.
    pub auditor: TestClient,
    pub state: gateway::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default, Clone)]
pub struct Options {
    /// Add a bank whose endpoint is a closed port.
    pub dead_bank: bool,
    /// Bank request timeout (default 2 s).
    pub bank_timeout_ms: Option<u64>,
    /// Run the background workers (balance refresh at start).
    pub workers: bool,
    /// Close every operational endpoint (`server.open_endpoints.* = false`).
    pub closed_ops: bool,
    /// The `[webhooks]` section (default: worker as `workers`, 127.0.0.1 allowed).
    pub webhooks: Option<gateway::config::WebhooksConfig>,
    /// `[[users]]` and `[[approval_rules]]` (default: none).
    pub users: Vec<gateway::config::UserConfig>,
    pub approval_rules: Vec<gateway::config::ApprovalRuleConfig>,
    /// Serve the API over TLS (`[server.tls]`); the test client trusts the
    /// CA given as PEM.
    pub tls: Option<(gateway::config::ServerTlsConfig, String)>,
    /// The `[payments]` section (default: the shipped one, workers as `workers`).
    pub payments: Option<gateway::config::PaymentsConfig>,
    /// Every bank's concurrency and rate limits (default: the shipped ones).
    pub bank_limits: Option<BankLimits>,
    /// The in-memory copy of entries for pages: `statements.read_cache_ttl_ms`
    /// and `read_cache_max_entries` (default: the shipped ones).
    pub entry_cache: Option<(u64, usize)>,
}

fn sim_cfg(bank_id: &str, seed: u64, login: &str, cny: usize, usd: usize) -> SimBankConfig {
    SimBankConfig {
        bank_id: bank_id.to_owned(),
        family: "cn-xml".to_owned(),
        seed,
        login: login.to_owned(),
        cny_accounts: cny,
        usd_accounts: usd,
        eur_accounts: 0,
        time_zone: "Asia/Shanghai".to_owned(),
    }
}

/// A port that nothing listens on: bound, noted, released.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

type Started = (
    gateway::AppState,
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

async fn start_app(config: Config, workers: bool) -> Started {
    let app = App::build(
        config,
        BuildOptions {
            clock: Arc::new(SystemClock),
            run_workers: workers,
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
        match app.state.config.server.tls.clone() {
            Some(tls) => app.serve_tls(listener, &tls, stop).await.unwrap(),
            None => app.serve(listener, stop).await.unwrap(),
        }
    });
    (state, addr, tx, server)
}

impl TestApp {
    /// Kills the gateway as a crash would (no graceful shutdown: in-flight
    /// requests are dropped) and starts a new one on the same data dir and
    /// banks. The simulators live on.
    pub async fn crash_and_restart(&mut self) {
        self.crash_and_restart_with(|_| {}).await;
    }

    /// [`TestApp::crash_and_restart`], with `change` made to the configuration first.
    pub async fn crash_and_restart_with(&mut self, change: impl FnOnce(&mut Config)) {
        if let Some(h) = self.server.take() {
            h.abort();
            let _ = h.await;
        }
        self.shutdown.take();
        let mut config = (*self.config).clone();
        change(&mut config);
        let (state, addr, tx, server) = start_app(config, self.workers).await;
        let scheme = if self.config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        self.base_url = format!("{scheme}://{addr}");
        self.config = state.config.clone();
        self.state = state;
        self.shutdown = Some(tx);
        self.server = Some(server);
    }

    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> TestApp {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let east = SimServer::start(sim_cfg("east", 11, "EAST01", 3, 1), any)
            .await
            .unwrap();
        let south = SimServer::start(sim_cfg("south", 12, "SOUTH01", 2, 0), any)
            .await
            .unwrap();
        let data_dir = tempfile::tempdir().unwrap();

        let mut banks = Vec::new();
        let mut connections = Vec::new();
        let mut accounts = Vec::new();
        let mut add_bank =
            |id: &str, endpoint: String, login: &str, ledger: Vec<banksim::SimAccount>| {
                let bank_id = BankId::parse(id).unwrap();
                let conn_id = ConnectionId::parse(&format!("{id}-main")).unwrap();
                banks.push(BankConfig {
                    id: bank_id.clone(),
                    iso20022: None,
                    name: format!("{id} bank"),
                    family: banks::Family::CnXml,
                    time_zone: domain::BankTimeZone::SHANGHAI,
                    limits: BankLimits {
                        request_timeout_ms: opts.bank_timeout_ms.unwrap_or(2_000),
                        connect_timeout_ms: 500,
                        ..opts.bank_limits.clone().unwrap_or_default()
                    },
                    quirks: BankQuirks {
                        // Short ages so unknown outcomes resolve within a test.
                        min_none_age_s: 1,
                        max_unknown_age_s: 20,
                        // The fault matrix fails calls on purpose, one after
                        // another; the breaker would (rightly) pause the bank.
                        breaker_failures: 1_000,
                        ..BankQuirks::default()
                    },
                });
                connections.push(ConnectionConfig {
                    id: conn_id.clone(),
                    bank: bank_id,
                    endpoint,
                    login: login.to_owned(),
                    customer_number: None,
                    tls: None,
                    password: None,
                    signing: None,
                });
                for (i, acc) in ledger.iter().enumerate() {
                    accounts.push(AccountConfig {
                        id: AccountId::parse(&format!("{id}-{}", i + 1)).unwrap(),
                        connection: conn_id.clone(),
                        number: AccountNumber::parse(&acc.number).unwrap(),
                        name: acc.name.clone(),
                        currencies: vec![acc.currency],
                    });
                }
            };
        add_bank("east", east.url(), "EAST01", east.ledger().accounts());
        add_bank("south", south.url(), "SOUTH01", south.ledger().accounts());
        if opts.dead_bank {
            add_bank(
                "dead",
                format!("http://127.0.0.1:{}/", closed_port()),
                "DEAD01",
                vec![banksim::SimAccount {
                    number: "622200000000001".to_owned(),
                    name: "无法连接的账户".to_owned(),
                    currency: domain::Currency::CNY,
                    branch: String::new(),
                    booked_minor: 0,
                    available_minor: 0,
                }],
            );
        }

        let hasher = crypto::KeyedHasher::load_or_create(
            &data_dir
                .path()
                .join(AuthConfig::default().secret_hash_key_file),
        )
        .unwrap();
        let erp = TestClient {
            id: "erp",
            secret: crypto::generate_client_secret().expose_secret().to_owned(),
        };
        let limited = TestClient {
            id: "limited",
            secret: crypto::generate_client_secret().expose_secret().to_owned(),
        };
        let auditor = TestClient {
            id: "auditor",
            secret: crypto::generate_client_secret().expose_secret().to_owned(),
        };
        let clients = vec![
            ClientConfig {
                id: ClientId::parse(erp.id).unwrap(),
                secret_hash: hasher.hash(&erp.secret),
                scopes: Scope::ALL.to_vec(),
                accounts: vec!["*".to_owned()],
            },
            ClientConfig {
                id: ClientId::parse(limited.id).unwrap(),
                secret_hash: hasher.hash(&limited.secret),
                scopes: vec![Scope::AccountsRead],
                accounts: vec!["east-1".to_owned()],
            },
            ClientConfig {
                id: ClientId::parse(auditor.id).unwrap(),
                secret_hash: hasher.hash(&auditor.secret),
                scopes: vec![Scope::AuditRead],
                accounts: vec!["*".to_owned()],
            },
        ];
        let config = Config {
            data_dir: data_dir.path().to_path_buf(),
            server: ServerConfig {
                listen: any,
                open_endpoints: gateway::config::OpenEndpoints {
                    healthz: !opts.closed_ops,
                    readyz: !opts.closed_ops,
                    metrics: !opts.closed_ops,
                    openapi: !opts.closed_ops,
                    docs: !opts.closed_ops,
                },
                tls: opts.tls.as_ref().map(|(tls, _)| tls.clone()),
                ..ServerConfig::default()
            },
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            balances: BalancesConfig {
                refresh_interval_s: 3600,
                worker_enabled: opts.workers,
                ..BalancesConfig::default()
            },
            statements: {
                let shipped = StatementsConfig::default();
                let (ttl, max) = opts
                    .entry_cache
                    .unwrap_or((shipped.read_cache_ttl_ms, shipped.read_cache_max_entries));
                StatementsConfig {
                    sync_interval_s: 3600,
                    worker_enabled: opts.workers,
                    read_cache_ttl_ms: ttl,
                    read_cache_max_entries: max,
                    ..shipped
                }
            },
            payments: gateway::config::PaymentsConfig {
                workers_enabled: opts.workers,
                ..opts.payments.clone().unwrap_or_default()
            },
            webhooks: opts
                .webhooks
                .clone()
                .unwrap_or_else(|| gateway::config::WebhooksConfig {
                    worker_enabled: opts.workers,
                    allowed_hosts: vec!["127.0.0.1".to_owned()],
                    ..gateway::config::WebhooksConfig::default()
                }),
            banks,
            connections,
            accounts,
            clients,
            users: opts.users.clone(),
            approval_rules: opts.approval_rules.clone(),
            audit: gateway::config::AuditConfig::default(),
            secrets: gateway::config::SecretsConfig::default(),
            simulators: Vec::new(),
        };
        config.validate().unwrap();
        let (state, addr, tx, server) = start_app(config, opts.workers).await;
        let mut http = reqwest::Client::builder().timeout(CALL_TIMEOUT).no_proxy();
        if let Some((_, ca)) = &opts.tls {
            http = http
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
        }
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        TestApp {
            workers: opts.workers,
            base_url: format!("{scheme}://{addr}"),
            http: http.build().unwrap(),
            config: state.config.clone(),
            state,
            sims: vec![east, south],
            _data_dir: data_dir,
            erp,
            limited,
            auditor,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// What the simulated bank executed: reference → how many times.
    pub async fn executions(&self, bank: &str) -> std::collections::HashMap<String, u64> {
        let url = format!("{}_sim/executions", self.sim(bank).url());
        let body: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["reference"].as_str().unwrap().to_owned(),
                    e["count"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn sim(&self, bank: &str) -> &SimServer {
        let i = match bank {
            "east" => 0,
            "south" => 1,
            other => panic!("no simulator {other}"),
        };
        &self.sims[i]
    }

    /// Requests a token over HTTP with client_secret_basic.
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

    /// A person's login (grant_type=password): status and body.
    pub async fn login(&self, username: &str, password: &str) -> (u16, Value) {
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
        split(self.get_response(path, token).await).await
    }

    /// `GET path` with `token`, the response as it came (for its bytes).
    pub async fn get_response(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        split(resp).await
    }

    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
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

/// Status and JSON body; asserts that errors are problem+json.
pub async fn split(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        resp.headers().contains_key("x-request-id"),
        "every response carries X-Request-ID"
    );
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status >= 400 {
        assert_eq!(
            ctype, "application/problem+json",
            "error {status} must be problem+json: {body}"
        );
        assert!(body["code"].is_string(), "problem has a code: {body}");
        assert!(body["detail"].is_string(), "problem has a detail: {body}");
    }
    assert_ne!(status, 500, "never a 500: {body}");
    (status, body)
}
