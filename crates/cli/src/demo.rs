//! `bankdirect demo`: the gateway on an embedded SQLite file plus simulated
//! banks — two cn-xml front machines and one ISO 20022 host-to-host bank
//! (EUR and USD, mutual TLS) — all on loopback, in one process.
//!
//! It writes `D/bankdirect.toml` (a real configuration that `serve` and
//! `sim` accept), uses `D/bankdirect.db`, keeps the ISO bank's local CA and
//! certificates in `D/pki/<bank>/` (made on the first run, reused after),
//! writes `D/demo.json` with what a client needs, and prints a curl tour.
//! The simulated banks' accounts come from their seeds, so the config
//! written here and a later `bankdirect sim` on it agree.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context;
use gateway::{
    auth::Scope,
    config::{
        AccountConfig, ApprovalRuleConfig, AuthConfig, BalancesConfig, BankConfig, BankLimits,
        BankQuirks, ClientConfig, Config, ConnectionConfig, ConnectionTlsConfig, DatabaseConfig,
        Role, ServerConfig, SimulatorConfig, StatementsConfig, UserConfig,
    },
    App, BuildOptions,
};
use serde::Serialize;

use domain::{
    AccountId, AccountNumber, BankId, BankTimeZone, ClientId, ConnectionId, Currency, UserId,
};

const DEMO_CLIENT: &str = "demo-erp";

struct DemoBank {
    id: &'static str,
    name: &'static str,
    family: banks::Family,
    login: &'static str,
    seed: u64,
    cny_accounts: usize,
    usd_accounts: usize,
    eur_accounts: usize,
    time_zone: &'static str,
}

const DEMO_BANKS: &[DemoBank] = &[
    DemoBank {
        id: "sim-east",
        name: "华东示范银行 East Demo Bank (simulated, cn-xml)",
        family: banks::Family::CnXml,
        login: "EAST01",
        seed: 20261,
        cny_accounts: 3,
        usd_accounts: 1,
        eur_accounts: 0,
        time_zone: "Asia/Shanghai",
    },
    DemoBank {
        id: "sim-south",
        name: "华南示范银行 South Demo Bank (simulated, cn-xml)",
        family: banks::Family::CnXml,
        login: "SOUTH01",
        seed: 20262,
        cny_accounts: 2,
        usd_accounts: 0,
        eur_accounts: 0,
        time_zone: "Asia/Shanghai",
    },
    DemoBank {
        id: "sim-euro",
        name: "Euro Demo Bank AG (simulated, iso20022 host-to-host)",
        family: banks::Family::Iso20022,
        login: "PARTNER01",
        seed: 20263,
        cny_accounts: 0,
        usd_accounts: 2,
        eur_accounts: 3,
        time_zone: "Europe/Berlin",
    },
];

/// The simulator's options for a `[[simulators]]` entry: its payment
/// behaviour and random faults, read from the entry's tables.
pub fn sim_options(s: &SimulatorConfig) -> anyhow::Result<banksim::SimOptions> {
    let mut options = banksim::SimOptions::default();
    if let Some(table) = &s.payments {
        options.payments = table
            .clone()
            .try_into()
            .map_err(|e| anyhow::anyhow!("simulators (bank {}).payments: {e}", s.bank_id))?;
    }
    if let Some(table) = &s.random_faults {
        options.random_faults =
            Some(table.clone().try_into().map_err(|e| {
                anyhow::anyhow!("simulators (bank {}).random_faults: {e}", s.bank_id)
            })?);
    }
    Ok(options)
}

/// The simulator settings for a `[[simulators]]` entry.
pub fn sim_config(s: &SimulatorConfig) -> banksim::SimBankConfig {
    banksim::SimBankConfig {
        bank_id: s.bank_id.clone(),
        family: s.family.as_str().to_owned(),
        seed: s.seed,
        login: s.login.clone(),
        cny_accounts: s.cny_accounts,
        usd_accounts: s.usd_accounts,
        eur_accounts: s.eur_accounts,
        time_zone: s.time_zone.name().to_owned(),
    }
}

/// The local CA and certificates of an iso20022 simulator: read from its
/// `pki_dir`, or made and written there on the first start.
fn simulator_pki(s: &SimulatorConfig) -> anyhow::Result<crypto::pki::Pki> {
    let dir = s.pki_dir.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "simulators (bank {}): an iso20022 simulator needs pki_dir, the directory of its CA and certificates",
            s.bank_id
        )
    })?;
    if crypto::pki::PkiFiles::in_dir(dir).ca_cert.exists() {
        return crypto::pki::Pki::read_from_dir(dir).with_context(|| {
            format!(
                "simulators (bank {}): cannot read the certificates in {}; delete the directory to make new ones",
                s.bank_id,
                dir.display()
            )
        });
    }
    let names = vec!["localhost".to_owned(), s.listen.ip().to_string()];
    let pki = crypto::pki::Pki::generate(&names, &s.login)
        .with_context(|| format!("simulators (bank {}): cannot make certificates", s.bank_id))?;
    pki.write_to_dir(dir)
        .with_context(|| format!("cannot write the certificates into {}", dir.display()))?;
    Ok(pki)
}

/// Starts the simulated bank of a `[[simulators]]` entry, as `bankdirect
/// sim` and `bankdirect demo` both do.
pub async fn start_simulator(s: &SimulatorConfig) -> anyhow::Result<banksim::SimServer> {
    let clock = std::sync::Arc::new(domain::SystemClock);
    let started = match s.family {
        banks::Family::CnXml => {
            banksim::SimServer::start_with_options(sim_config(s), s.listen, clock, sim_options(s)?)
                .await
        }
        banks::Family::Iso20022 => {
            let iso = banksim::IsoOptions {
                pki: Some(simulator_pki(s)?),
                ..banksim::IsoOptions::default()
            };
            banksim::SimServer::start_with_iso_options(
                sim_config(s),
                s.listen,
                clock,
                sim_options(s)?,
                iso,
            )
            .await
        }
    };
    started.with_context(|| {
        format!(
            "simulated bank {} could not start on {}; is the port in use? pass another --port or change listen",
            s.bank_id, s.listen
        )
    })
}

#[derive(Debug, Serialize)]
struct DemoJson {
    base_url: String,
    client_id: String,
    client_secret: String,
    /// The demo's people and their passwords (generated at each start).
    users: Vec<DemoUser>,
    config: String,
    simulators: Vec<DemoSim>,
}

#[derive(Debug, Serialize)]
struct DemoUser {
    id: String,
    roles: Vec<Role>,
    password: String,
}

/// The demo's people: one maker and two approvers.
const DEMO_USERS: [(&str, Role); 3] = [
    ("maker", Role::Maker),
    ("approver1", Role::Approver),
    ("approver2", Role::Approver),
];

/// The demo's approval rule: above this, any account, per payment (or batch
/// total), two distinct approvers.
const DEMO_APPROVAL_ABOVE_CNY: &str = "1000000.00";

#[derive(Debug, Serialize)]
struct DemoSim {
    bank_id: String,
    family: String,
    url: String,
    /// For a bank that speaks mutual TLS: the files a client needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<DemoTls>,
}

#[derive(Debug, Serialize)]
struct DemoTls {
    ca_cert: String,
    client_cert: String,
    client_key: String,
}

fn sim_port(port: u16, index: usize) -> u16 {
    if port == 0 {
        0
    } else {
        port.saturating_add(1 + index as u16)
    }
}

/// The API's own CA and server certificate for `demo --tls`, in `D/tls`:
/// made once, then reused, so a CA the user trusted stays valid.
fn demo_api_tls(data_dir: &Path) -> anyhow::Result<(gateway::config::ServerTlsConfig, PathBuf)> {
    let dir = data_dir.join("tls");
    let files = crypto::pki::PkiFiles::in_dir(&dir);
    if !files.server_cert.exists() || !files.server_key.exists() || !files.ca_cert.exists() {
        let pki = crypto::pki::Pki::generate(
            &["localhost".to_owned(), "127.0.0.1".to_owned()],
            "bankdirect-demo-client",
        )
        .context("cannot make the demo's local CA and server certificate")?;
        pki.write_to_dir(&dir)
            .with_context(|| format!("cannot write the demo certificates to {}", dir.display()))?;
    }
    Ok((
        gateway::config::ServerTlsConfig {
            cert_file: files.server_cert,
            key_file: files.server_key,
            reload_interval_s: 30,
        },
        files.ca_cert,
    ))
}

pub async fn run(data_dir: PathBuf, port: u16, tls: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;

    // Bind the API port first, so a port in use fails before anything starts.
    let api_listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| {
            format!(
                "port {port} on 127.0.0.1 is in use; pass --port N (or --port 0 for any free port)"
            )
        })?;
    let api_addr = api_listener.local_addr()?;

    let mut simulators = Vec::new();
    let mut servers = Vec::new();
    for (i, b) in DEMO_BANKS.iter().enumerate() {
        let sim = SimulatorConfig {
            bank_id: b.id.to_owned(),
            family: b.family,
            listen: SocketAddr::from(([127, 0, 0, 1], sim_port(port, i))),
            seed: b.seed,
            login: b.login.to_owned(),
            cny_accounts: b.cny_accounts,
            usd_accounts: b.usd_accounts,
            eur_accounts: b.eur_accounts,
            time_zone: BankTimeZone::parse(b.time_zone)?,
            pki_dir: (b.family == banks::Family::Iso20022).then(|| data_dir.join("pki").join(b.id)),
            payments: None,
            random_faults: None,
        };
        let server = start_simulator(&sim).await?;
        simulators.push(SimulatorConfig {
            listen: server.local_addr(),
            ..sim
        });
        servers.push(server);
    }

    let mut config = demo_config(&data_dir, api_addr, &simulators, &servers)?;
    let api_ca = if tls {
        let (server_tls, ca) = demo_api_tls(&data_dir)?;
        config.server.tls = Some(server_tls);
        Some(ca)
    } else {
        None
    };
    let secret = crypto::generate_client_secret();
    let hasher =
        crypto::KeyedHasher::load_or_create(&config.data_path(&config.auth.secret_hash_key_file))
            .context("cannot create the client secret hash key")?;
    config.clients = vec![ClientConfig {
        id: ClientId::parse(DEMO_CLIENT)?,
        secret_hash: hasher.hash(secret.expose_secret()),
        scopes: Scope::ALL.to_vec(),
        accounts: vec!["*".to_owned()],
    }];
    // People with passwords made now: written only to demo.json (0600).
    let mut demo_users = Vec::new();
    for (id, role) in DEMO_USERS {
        let password = crypto::generate_client_secret();
        config.users.push(UserConfig {
            id: UserId::parse(id)?,
            name: String::new(),
            roles: vec![role],
            accounts: vec!["*".to_owned()],
            password_hash: Some(crypto::password::hash_password(password.expose_secret())?),
            totp_secret: None,
        });
        demo_users.push(DemoUser {
            id: id.to_owned(),
            roles: vec![role],
            password: password.expose_secret().to_owned(),
        });
    }
    config.approval_rules = vec![ApprovalRuleConfig {
        debtor_account: "*".to_owned(),
        currency: Currency::CNY,
        above: DEMO_APPROVAL_ABOVE_CNY.to_owned(),
        approvers: 2,
    }];
    let config_path = data_dir.join("bankdirect.toml");
    let text = toml::to_string_pretty(&config).context("cannot render the demo configuration")?;
    std::fs::write(
        &config_path,
        format!(
            "# Written by `bankdirect demo`. `bankdirect serve --config {0}` and\n# `bankdirect sim --config {0}` accept it as it is.\n{text}",
            config_path.display()
        ),
    )
    .with_context(|| format!("cannot write {}", config_path.display()))?;
    // Load it back the way `serve` would, so the demo runs what it wrote.
    let config = Config::load(&config_path)?;

    let app = App::build(config, BuildOptions::default())
        .await
        .context("the gateway could not start")?;
    let base_url = match api_ca {
        Some(_) => format!("https://{api_addr}"),
        None => format!("http://{api_addr}"),
    };
    let demo_json = DemoJson {
        base_url: base_url.clone(),
        client_id: DEMO_CLIENT.to_owned(),
        client_secret: secret.expose_secret().to_owned(),
        users: demo_users,
        config: config_path.display().to_string(),
        simulators: servers
            .iter()
            .zip(DEMO_BANKS)
            .zip(&simulators)
            .map(|((s, b), sim)| DemoSim {
                bank_id: b.id.to_owned(),
                family: b.family.as_str().to_owned(),
                url: s.url(),
                tls: sim.pki_dir.as_ref().map(|dir| {
                    let files = crypto::pki::PkiFiles::in_dir(dir);
                    DemoTls {
                        ca_cert: files.ca_cert.display().to_string(),
                        client_cert: files.client_cert.display().to_string(),
                        client_key: files.client_key.display().to_string(),
                    }
                }),
            })
            .collect(),
    };
    let demo_path = data_dir.join("demo.json");
    write_private(&demo_path, &serde_json::to_string_pretty(&demo_json)?)?;

    print_tour(
        &base_url,
        secret.expose_secret(),
        &demo_json.users,
        &demo_path,
        &servers,
        &simulators,
    );
    if let Some(ca) = &api_ca {
        println!(
            "The API speaks HTTPS with a certificate of the demo's own CA. Trust it for the tour\n(curl reads CURL_CA_BUNDLE), or add it to your system's trust store:\n\n  export CURL_CA_BUNDLE={}\n  curl -s $BASE/healthz\n\nReplace the files in {} and the API picks the new certificate up within 30 s, no restart.\n",
            ca.display(),
            ca.parent().map(|d| d.display().to_string()).unwrap_or_default()
        );
    }

    match app.state.config.server.tls.clone() {
        Some(server_tls) => {
            app.serve_tls(api_listener, &server_tls, crate::shutdown_signal())
                .await?
        }
        None => app.serve(api_listener, crate::shutdown_signal()).await?,
    }
    for s in servers {
        s.shutdown().await;
    }
    Ok(())
}

/// demo.json holds a client secret: readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn demo_config(
    data_dir: &Path,
    api_addr: SocketAddr,
    simulators: &[SimulatorConfig],
    servers: &[banksim::SimServer],
) -> anyhow::Result<Config> {
    let mut banks = Vec::new();
    let mut connections = Vec::new();
    let mut accounts = Vec::new();
    for ((b, sim), server) in DEMO_BANKS.iter().zip(simulators).zip(servers) {
        let bank_id = BankId::parse(b.id)?;
        let conn_id = ConnectionId::parse(&format!("{}-main", b.id))?;
        banks.push(BankConfig {
            id: bank_id.clone(),
            iso20022: None,
            name: b.name.to_owned(),
            family: b.family,
            time_zone: sim.time_zone,
            limits: BankLimits {
                request_timeout_ms: 5_000,
                ..BankLimits::default()
            },
            quirks: BankQuirks::default(),
        });
        connections.push(ConnectionConfig {
            id: conn_id.clone(),
            bank: bank_id,
            endpoint: server.url(),
            login: b.login.to_owned(),
            customer_number: None,
            tls: sim.pki_dir.as_ref().map(|dir| {
                let files = crypto::pki::PkiFiles::in_dir(dir);
                ConnectionTlsConfig {
                    ca_cert: files.ca_cert,
                    client_cert: files.client_cert,
                    client_key: files.client_key,
                    opened_client_key: None,
                }
            }),
            password: None,
            signing: None,
        });
        let mut per_currency = std::collections::BTreeMap::<String, usize>::new();
        for acc in server.ledger().accounts() {
            let cur = acc.currency.code().to_ascii_lowercase();
            let n = per_currency.entry(cur.clone()).or_insert(0);
            *n += 1;
            accounts.push(AccountConfig {
                id: AccountId::parse(&format!("{}-{}-{}", b.id, cur, n))?,
                connection: conn_id.clone(),
                number: AccountNumber::parse(&acc.number)?,
                name: acc.name.clone(),
                currencies: vec![acc.currency],
            });
        }
    }
    Ok(Config {
        data_dir: data_dir.to_path_buf(),
        server: ServerConfig {
            listen: api_addr,
            ..ServerConfig::default()
        },
        database: DatabaseConfig::default(),
        auth: AuthConfig::default(),
        balances: BalancesConfig {
            refresh_interval_s: 30,
            worker_enabled: true,
            ..BalancesConfig::default()
        },
        statements: StatementsConfig {
            sync_interval_s: 60,
            ..StatementsConfig::default()
        },
        payments: gateway::config::PaymentsConfig::default(),
        // The demo's receivers run on this machine: loopback is allowed by name.
        webhooks: gateway::config::WebhooksConfig {
            allowed_hosts: vec![
                "127.0.0.1".to_owned(),
                "localhost".to_owned(),
                "::1".to_owned(),
            ],
            ..gateway::config::WebhooksConfig::default()
        },
        banks,
        connections,
        accounts,
        clients: Vec::new(),
        users: Vec::new(),
        approval_rules: Vec::new(),
        audit: gateway::config::AuditConfig::default(),
        secrets: gateway::config::SecretsConfig::default(),
        simulators: simulators.to_vec(),
    })
}

fn print_tour(
    base_url: &str,
    secret: &str,
    users: &[DemoUser],
    demo_path: &Path,
    servers: &[banksim::SimServer],
    simulators: &[SimulatorConfig],
) {
    let sims: Vec<String> = servers
        .iter()
        .zip(DEMO_BANKS)
        .map(|(s, b)| format!("  {:<10} {:<9} {}", b.id, b.family.as_str(), s.url()))
        .collect();
    let first_sim = servers.first().map(|s| s.url()).unwrap_or_default();
    // The ISO bank speaks mutual TLS: curl needs its CA and client certificate.
    let iso = servers
        .iter()
        .zip(simulators)
        .find_map(|(server, sim)| sim.pki_dir.as_ref().map(|dir| (server.url(), dir)));
    let iso_curl = match iso {
        Some((url, dir)) => {
            let files = crypto::pki::PkiFiles::in_dir(dir);
            format!(
                "  curl -s --cacert {} --cert {} --key {} {url}_sim/ledger | jq   # the ISO 20022 bank, over mutual TLS",
                files.ca_cert.display(),
                files.client_cert.display(),
                files.client_key.display()
            )
        }
        None => String::new(),
    };
    let password_of = |id: &str| {
        users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.password.clone())
            .unwrap_or_default()
    };
    let (maker_pw, a1_pw, a2_pw) = (
        password_of("maker"),
        password_of("approver1"),
        password_of("approver2"),
    );
    println!(
        r#"
bankdirect demo is running.
  API        {base_url}   (docs: {base_url}/docs)
  client     {DEMO_CLIENT} (secret in {demo})
  people     maker, approver1, approver2 (passwords in {demo}); payments above {DEMO_APPROVAL_ABOVE_CNY} CNY need two approvals
simulated banks:
{sims}

A five-minute tour (paste into a shell; needs curl and jq):

  BASE={base_url}
  TOKEN=$(curl -s -u {DEMO_CLIENT}:{secret} -d grant_type=client_credentials $BASE/oauth/token | jq -r .access_token)
  curl -s -H "Authorization: Bearer $TOKEN" $BASE/v1/banks | jq
  curl -s -H "Authorization: Bearer $TOKEN" $BASE/v1/accounts | jq
  curl -s -H "Authorization: Bearer $TOKEN" $BASE/v1/balances | jq
  curl -s -H "Authorization: Bearer $TOKEN" $BASE/v1/accounts/sim-east-cny-1/balance | jq
  curl -s -X POST -H "Authorization: Bearer $TOKEN" $BASE/v1/accounts/sim-east-cny-1/balance:refresh | jq
  curl -s -X POST -H "Authorization: Bearer $TOKEN" $BASE/v1/accounts/sim-east-cny-1/transactions:refresh | jq
  curl -s -H "Authorization: Bearer $TOKEN" "$BASE/v1/accounts/sim-east-cny-1/transactions?limit=5" | jq
  curl -s -H "Authorization: Bearer $TOKEN" "$BASE/v1/transactions?limit=5" | jq   # change feed; poll again with since=<next_cursor>
  curl -s -H "Authorization: Bearer $TOKEN" "$BASE/v1/payment-batches?limit=5" | jq   # payroll and supplier batches (README: how to send one)
  curl -s -X POST -H "Authorization: Bearer $TOKEN" $BASE/v1/accounts/sim-euro-eur-1/transactions:refresh | jq   # camt.053 from the ISO 20022 bank
  curl -s -H "Authorization: Bearer $TOKEN" "$BASE/v1/accounts/sim-euro-eur-1/transactions?limit=5" | jq
  # Maker-checker: a large payment waits for two approvers, then goes to the bank.
  login() {{ curl -s -d grant_type=password -d username=$1 --data-urlencode password=$2 $BASE/oauth/token | jq -r .access_token; }}
  MAKER=$(login maker {maker_pw}); A1=$(login approver1 {a1_pw}); A2=$(login approver2 {a2_pw})
  PID=$(curl -s -H "Authorization: Bearer $MAKER" -H "Idempotency-Key: big-$RANDOM" -H 'Content-Type: application/json' $BASE/v1/payments -d '{{"debtor_account_id":"sim-east-cny-1","amount":"1200000.00","currency":"CNY","creditor":{{"name":"上海测试贸易有限公司","account":"6222020000001234","bank_code":"102290000001","type":"corporate"}},"remittance":"设备款"}}' | jq -r .id)
  curl -s -H "Authorization: Bearer $A1" $BASE/v1/payments/$PID | jq '{{status, approvals}}'   # pending_approval
  curl -s -X POST -H "Authorization: Bearer $A1" $BASE/v1/payments/$PID/approve | jq '{{status, approvals}}'
  curl -s -X POST -H "Authorization: Bearer $A2" $BASE/v1/payments/$PID/approve | jq '{{status, approvals}}'   # queued
  sleep 3; curl -s -H "Authorization: Bearer $TOKEN" $BASE/v1/payments/$PID | jq .status   # settled
  curl -s {first_sim}_sim/ledger | jq        # what the simulated bank itself holds
{iso_curl}
  curl -s $BASE/readyz | jq; curl -s $BASE/metrics | grep bank_calls_total

Stop with Ctrl-C. Run it again with the same --data-dir to keep the database.
"#,
        demo = demo_path.display(),
        sims = sims.join("\n"),
    );
}
