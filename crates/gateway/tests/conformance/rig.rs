//! The families under test and one rig per test: a simulated bank of the
//! family (a real server on loopback), the real gateway in front of it on a
//! fresh SQLite file, and the family's connector built directly, for the
//! cases that talk to the bank without the gateway. A family with
//! [`Capability::SignedMessages`] runs signed, with a bank password.
//!
//! Everything family-specific lives in [`Fam`]: how its simulator is
//! configured, which order type or function code each operation uses (fault
//! rules match on it), what a valid creditor looks like, and which
//! capabilities it lacks and why. The cases in the other modules are
//! written once, against [`Rig`].

use std::{net::SocketAddr, sync::Arc, time::Duration};

use banks::{BankConnector, Capability, ConnectionSettings};
use banksim::{CnXmlSimOptions, SigningIdentity, SimBankConfig, SimOptions, SimServer, SimSigning};
use domain::{AccountId, AccountNumber, BankId, ClientId, ConnectionId, Currency, SystemClock};
use gateway::{
    auth::Scope,
    config::{
        AccountConfig, AuthConfig, BalancesConfig, BankConfig, BankLimits, BankQuirks,
        ClientConfig, Config, ConnectionConfig, DatabaseConfig, ServerConfig, StatementsConfig,
    },
    App, BuildOptions,
};
use serde_json::{json, Value};

/// Bound on every HTTP call a case makes.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// The bank request timeout of the gateway and of the direct connector.
pub const BANK_TIMEOUT_MS: u64 = 2_000;
/// The login's password at a bank whose family sends one.
const BANK_PASSWORD: &str = "conformance-密码-1";

/// The fixed capability list (DESIGN.md, "Bank connector contract"). A
/// family either implements each or names it in [`Fam::lacks`] with a reason.
pub const CAPABILITIES: [Capability; 6] = [
    Capability::Balances,
    Capability::Transactions,
    Capability::SinglePayment,
    Capability::BatchPayment,
    Capability::StatusByReference,
    Capability::SignedMessages,
];

/// What a case asks the bank to do; each family names it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Balances,
    Transactions,
    SubmitPayment,
    PaymentStatus,
    SubmitBatch,
    BatchStatus,
}

/// A bank family under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fam {
    CnXml,
    Iso20022,
}

/// Every family; each case runs for each, in this order.
pub const FAMILIES: [Fam; 2] = [Fam::CnXml, Fam::Iso20022];

impl Fam {
    pub fn name(self) -> &'static str {
        match self {
            Fam::CnXml => "cn-xml",
            Fam::Iso20022 => "iso20022",
        }
    }

    pub fn family(self) -> banks::Family {
        match self {
            Fam::CnXml => banks::Family::CnXml,
            Fam::Iso20022 => banks::Family::Iso20022,
        }
    }

    /// The capabilities of the fixed list this family does not have, each
    /// with the reason it must also give in `/v1/banks`: iso20022 signs no
    /// messages (mutual TLS authenticates both ends).
    pub fn lacks(self) -> &'static [(Capability, &'static str)] {
        match self {
            Fam::CnXml => &[],
            Fam::Iso20022 => &[(
                Capability::SignedMessages,
                banks::iso20022::LACKS_SIGNED_MESSAGES,
            )],
        }
    }

    fn sim_config(self, seed: u64) -> SimBankConfig {
        match self {
            Fam::CnXml => SimBankConfig::cn_xml_demo("conf-cn", seed),
            Fam::Iso20022 => SimBankConfig::iso20022_demo("conf-iso", seed),
        }
    }

    /// The function code (cn-xml) or order type (iso20022) of an operation,
    /// which is what the simulator's fault rules match.
    pub fn function(self, op: Op) -> &'static str {
        match (self, op) {
            (Fam::CnXml, Op::Balances) => "QueryBalance",
            (Fam::CnXml, Op::Transactions) => "QueryHistory",
            (Fam::CnXml, Op::SubmitPayment) => "SubmitPayment",
            (Fam::CnXml, Op::PaymentStatus) => "QueryPayment",
            (Fam::CnXml, Op::SubmitBatch) => "SubmitBatch",
            (Fam::CnXml, Op::BatchStatus) => "QueryBatch",
            (Fam::Iso20022, Op::Balances) => "C52",
            (Fam::Iso20022, Op::Transactions) => "C53",
            (Fam::Iso20022, Op::SubmitPayment | Op::SubmitBatch) => "CCT",
            (Fam::Iso20022, Op::PaymentStatus | Op::BatchStatus) => "PSR",
        }
    }

    /// The currency the cases pay in.
    pub fn currency(self) -> Currency {
        match self {
            Fam::CnXml => Currency::CNY,
            Fam::Iso20022 => Currency::EUR,
        }
    }

    /// A creditor the family's bank pays without complaint; `i` varies the
    /// account so that batch items differ.
    pub fn creditor(self, i: usize, name: &str) -> Value {
        match self {
            Fam::CnXml => json!({
                "name": name,
                "account": format!("62220200{i:08}"),
                "bank_code": "102290000001",
                "bank_name": "中国工商银行上海分行",
                "type": "corporate",
            }),
            Fam::Iso20022 => json!({
                "name": name,
                "account": iban_de(i),
                "bic": "COBADEFFXXX",
                "type": "corporate",
            }),
        }
    }

    /// A plain creditor name in the family's usual script.
    pub fn creditor_name(self, i: usize) -> String {
        match self {
            Fam::CnXml => format!("上海测试贸易有限公司{i}"),
            Fam::Iso20022 => format!("Muster Handel GmbH {i}"),
        }
    }

    /// The creditor account of [`Fam::creditor`], as the connector sends it.
    pub fn creditor_account(self, i: usize) -> String {
        match self {
            Fam::CnXml => format!("62220200{i:08}"),
            Fam::Iso20022 => iban_de(i),
        }
    }
}

/// A German IBAN with valid check digits whose account part ends in `i`.
pub fn iban_de(i: usize) -> String {
    let bban = format!("37040044{:010}", 532_013_000 + i);
    // Check digits: move "DE00" to the end, letters to numbers, mod 97.
    let rearranged = format!("{bban}131400");
    let remainder = rearranged
        .bytes()
        .fold(0u32, |acc, b| (acc * 10 + u32::from(b - b'0')) % 97);
    format!("DE{:02}{bban}", 98 - remainder)
}

/// A client of the gateway in a rig.
pub struct TestClient {
    pub id: &'static str,
    pub secret: String,
}

/// One family's simulated bank, the gateway in front of it, and the
/// family's connector.
pub struct Rig {
    pub fam: Fam,
    pub sim: SimServer,
    pub base_url: String,
    pub http: reqwest::Client,
    pub state: gateway::AppState,
    pub config: Arc<Config>,
    pub connector: Arc<dyn BankConnector>,
    pub erp: TestClient,
    token: String,
    _data_dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Rig {
    /// Starts the family's simulator (seeded) and a gateway without
    /// background workers (cases drive the rounds by hand).
    pub async fn start(fam: Fam, seed: u64) -> Rig {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        // A family that signs runs every case signed, with a password: the
        // bank checks our signature and password, we check its signature.
        let client_identity = SigningIdentity::generate_now("conformance client").unwrap();
        let sim = match fam {
            Fam::CnXml => {
                SimServer::start_with_cn_xml_options(
                    fam.sim_config(seed),
                    any,
                    Arc::new(SystemClock),
                    SimOptions::default(),
                    CnXmlSimOptions {
                        signing: Some(SimSigning {
                            client_certificates: vec![client_identity.certificate().clone()],
                            ..SimSigning::default()
                        }),
                        password: Some(crypto::SecretString::new(BANK_PASSWORD.to_owned())),
                    },
                )
                .await
            }
            Fam::Iso20022 => {
                SimServer::start_with_options(
                    fam.sim_config(seed),
                    any,
                    Arc::new(SystemClock),
                    SimOptions::default(),
                )
                .await
            }
        }
        .unwrap_or_else(|e| panic!("{}: simulator: {e}", fam.name()));
        let data_dir = tempfile::tempdir().unwrap();
        let tls = family_tls(fam, &sim, data_dir.path());
        let signing = family_signing(&sim, &client_identity, data_dir.path());
        let password = signing
            .as_ref()
            .map(|_| crypto::SecretString::new(BANK_PASSWORD.to_owned()));

        let bank_id = BankId::parse("bank").unwrap();
        let conn_id = ConnectionId::parse("bank-main").unwrap();
        let login = sim.config().login.clone();
        let time_zone = domain::BankTimeZone::parse(&sim.config().time_zone).unwrap();
        let bank = BankConfig {
            id: bank_id.clone(),
            iso20022: None,
            name: format!("{} conformance bank", fam.name()),
            family: fam.family(),
            time_zone,
            limits: BankLimits {
                request_timeout_ms: BANK_TIMEOUT_MS,
                connect_timeout_ms: 500,
                ..BankLimits::default()
            },
            quirks: BankQuirks {
                // Short ages so unknown outcomes resolve within a case.
                min_none_age_s: 1,
                max_unknown_age_s: 20,
                // Faults come one after another on purpose; the breaker
                // would (rightly) pause the bank.
                breaker_failures: 1_000,
                ..BankQuirks::default()
            },
        };
        let connection = ConnectionConfig {
            id: conn_id.clone(),
            bank: bank_id,
            endpoint: sim.url(),
            login: login.clone(),
            customer_number: None,
            tls: tls.clone(),
            password: password.clone(),
            signing: signing.clone(),
        };
        let accounts: Vec<AccountConfig> = sim
            .ledger()
            .accounts()
            .iter()
            .enumerate()
            .map(|(i, acc)| AccountConfig {
                id: AccountId::parse(&format!("acc-{}", i + 1)).unwrap(),
                connection: conn_id.clone(),
                number: AccountNumber::parse(&acc.number).unwrap(),
                name: acc.name.clone(),
                currencies: vec![acc.currency],
            })
            .collect();

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
        let clients = vec![ClientConfig {
            id: ClientId::parse(erp.id).unwrap(),
            secret_hash: hasher.hash(&erp.secret),
            scopes: Scope::ALL.to_vec(),
            accounts: vec!["*".to_owned()],
        }];
        let config = Config {
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
            banks: vec![bank.clone()],
            connections: vec![connection.clone()],
            accounts,
            clients,
            users: Vec::new(),
            approval_rules: Vec::new(),
            audit: gateway::config::AuditConfig::default(),
            secrets: gateway::config::SecretsConfig::default(),
            simulators: Vec::new(),
        };
        config
            .validate()
            .unwrap_or_else(|e| panic!("{}: config: {e:?}", fam.name()));

        // The connector as the gateway builds it, for the direct cases.
        let settings = ConnectionSettings {
            bank_id: "bank".to_owned(),
            connection_id: "bank-main".to_owned(),
            endpoint: sim.url(),
            login,
            time_zone: time_zone.tz(),
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(BANK_TIMEOUT_MS),
            max_response_bytes: 8 * 1024 * 1024,
            max_accounts_per_query: 20,
            max_idle_connections: 4,
            tls: client_tls(fam, &sim),
        };
        let connector: Arc<dyn BankConnector> = match &signing {
            Some(files) => Arc::new(
                banks::cn_xml::CnXmlConnector::with_options(
                    settings,
                    banks::cn_xml::CnXmlOptions {
                        password: password.clone(),
                        signing: Some(files.load(0).unwrap()),
                        ..banks::cn_xml::CnXmlOptions::default()
                    },
                )
                .unwrap_or_else(|e| panic!("{}: connector: {e}", fam.name())),
            ),
            None => banks::connect(fam.family(), settings)
                .unwrap_or_else(|e| panic!("{}: connector: {e}", fam.name())),
        };

        let app = App::build(
            config,
            BuildOptions {
                clock: Arc::new(SystemClock),
                run_workers: false,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{}: gateway: {e}", fam.name()));
        let state = app.state.clone();
        let listener = tokio::net::TcpListener::bind(any).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.serve(listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap();
        let mut rig = Rig {
            fam,
            sim,
            base_url: format!("http://{addr}"),
            http,
            config: state.config.clone(),
            state,
            connector,
            erp,
            token: String::new(),
            _data_dir: data_dir,
            shutdown: Some(tx),
            server: Some(server),
        };
        rig.token = rig.fetch_token().await;
        rig
    }

    async fn fetch_token(&self) -> String {
        let resp = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(self.erp.id, Some(&self.erp.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}: token", self.fam.name());
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The account of the gateway's config in `currency` with the most
    /// available money at the bank (so that payments from it are covered):
    /// its id and number.
    pub fn account_in(&self, currency: Currency) -> (String, String) {
        self.accounts_in(currency)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{}: no {currency} account", self.fam.name()))
    }

    /// Every account in `currency`, the richest first: (id, number).
    pub fn accounts_in(&self, currency: Currency) -> Vec<(String, String)> {
        let ledger = self.sim.ledger();
        let mut found: Vec<(i64, String, String)> = self
            .config
            .accounts
            .iter()
            .filter(|a| a.currencies.contains(&currency))
            .map(|a| {
                let available = ledger
                    .account(a.number.as_str())
                    .map_or(i64::MIN, |bank| bank.available_minor);
                (available, a.id.to_string(), a.number.to_string())
            })
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        found
            .into_iter()
            .map(|(_, id, number)| (id, number))
            .collect()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        split(self.fam, resp).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).bearer_auth(&self.token);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        split(self.fam, req.send().await.unwrap()).await
    }

    /// Every reference the bank executed, and how often.
    pub fn executions(&self) -> std::collections::HashMap<String, u32> {
        self.sim
            .executions()
            .into_iter()
            .map(|e| (e.reference, e.count))
            .collect()
    }

    /// Runs the payment workers' rounds by hand until the payment is final
    /// (or in needs_review), bounded in time.
    pub async fn drive_payment(&self, id: &str, within: Duration) -> Value {
        let started = std::time::Instant::now();
        loop {
            let w = &self.state.payment_workers;
            w.dispatch_round().await.unwrap();
            w.reap_round().await.unwrap();
            w.poll_round().await.unwrap();
            let (_, p) = self.get(&format!("/v1/payments/{id}")).await;
            let status = p["status"].as_str().unwrap_or("").to_owned();
            if [
                "settled",
                "returned",
                "failed",
                "cancelled",
                "declined",
                "needs_review",
            ]
            .contains(&status.as_str())
            {
                return p;
            }
            assert!(
                started.elapsed() < within,
                "{}: payment {id} still {status} after {within:?}: {p}",
                self.fam.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The same for a batch.
    pub async fn drive_batch(&self, id: &str, within: Duration) -> Value {
        let started = std::time::Instant::now();
        loop {
            let w = &self.state.payment_workers;
            w.dispatch_chunk_round().await.unwrap();
            w.reap_chunk_round().await.unwrap();
            w.poll_chunk_round().await.unwrap();
            let (s, b) = self.get(&format!("/v1/payment-batches/{id}")).await;
            assert_eq!(s, 200, "{}: {b}", self.fam.name());
            let status = b["status"].as_str().unwrap_or("").to_owned();
            if ["completed", "failed", "cancelled", "needs_review"].contains(&status.as_str()) {
                return b;
            }
            assert!(
                started.elapsed() < within,
                "{}: batch {id} still {status} after {within:?}",
                self.fam.name()
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
        self.sim.shutdown().await;
    }
}

/// The gateway's TLS settings for the family's connection: iso20022 banks
/// speak mutual TLS, with the simulator's CA and client certificate written
/// into the data dir as an operator would.
fn family_tls(
    fam: Fam,
    sim: &SimServer,
    dir: &std::path::Path,
) -> Option<gateway::config::ConnectionTlsConfig> {
    match fam {
        Fam::CnXml => None,
        Fam::Iso20022 => {
            let pki = sim.pki().expect("an iso20022 simulator has a PKI");
            let files = pki.write_to_dir(&dir.join("bank-pki")).unwrap();
            Some(gateway::config::ConnectionTlsConfig {
                ca_cert: files.ca_cert,
                client_cert: files.client_cert,
                client_key: files.client_key,
                opened_client_key: None,
            })
        }
    }
}

/// `[connections.signing]` of a bank that signs (cn-xml): our key and the
/// bank's certificate written into the data dir as an operator would.
fn family_signing(
    sim: &SimServer,
    client: &SigningIdentity,
    dir: &std::path::Path,
) -> Option<gateway::config::ConnectionSigningConfig> {
    let bank_cert = sim.signing_certificate_pem()?;
    let signing_dir = dir.join("signing");
    std::fs::create_dir_all(&signing_dir).unwrap();
    let key = signing_dir.join("sign.key");
    std::fs::write(&key, client.key_pem().unwrap().expose_secret()).unwrap();
    let cert = signing_dir.join("bank.pem");
    std::fs::write(&cert, bank_cert).unwrap();
    Some(gateway::config::ConnectionSigningConfig {
        key,
        sm2_id: banks::cn_xml::DEFAULT_SM2_ID.to_owned(),
        bank_certificates: vec![cert],
        opened_key: None,
    })
}

fn client_tls(fam: Fam, sim: &SimServer) -> Option<banks::ClientTlsSettings> {
    match fam {
        Fam::CnXml => None,
        Fam::Iso20022 => {
            let pki = sim.pki().expect("an iso20022 simulator has a PKI");
            Some(banks::ClientTlsSettings {
                ca_cert_pem: pki.ca_cert_pem.clone(),
                client_cert_pem: pki.client_cert_pem.clone(),
                client_key_pem: pki.client_key_pem.clone(),
            })
        }
    }
}

/// Status and JSON body; errors must be problem+json and never a 500.
pub async fn split(fam: Fam, resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status >= 400 {
        assert_eq!(
            ctype,
            "application/problem+json",
            "{}: error {status} must be problem+json: {body}",
            fam.name()
        );
    }
    assert_ne!(status, 500, "{}: never a 500: {body}", fam.name());
    (status, body)
}
