//! `bankdirect demo`: the gateway on an embedded SQLite file plus simulated
//! cn-xml banks, all on loopback, in one process.
//!
//! It writes `D/bankdirect.toml` (a real configuration that `serve` and
//! `sim` accept), uses `D/bankdirect.db`, writes `D/demo.json` with what a
//! client needs, and prints a curl tour. The simulated banks' accounts come
//! from their seeds, so the config written here and a later `bankdirect sim`
//! on it agree.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context;
use gateway::{
    auth::Scope,
    config::{
        AccountConfig, AuthConfig, BalancesConfig, BankConfig, BankLimits, BankQuirks,
        ClientConfig, Config, ConnectionConfig, DatabaseConfig, ServerConfig, SimulatorConfig,
        StatementsConfig,
    },
    App, BuildOptions,
};
use serde::Serialize;

use domain::{AccountId, AccountNumber, BankId, BankTimeZone, ClientId, ConnectionId};

const DEMO_CLIENT: &str = "demo-erp";

struct DemoBank {
    id: &'static str,
    name: &'static str,
    login: &'static str,
    seed: u64,
    cny_accounts: usize,
    usd_accounts: usize,
}

const DEMO_BANKS: &[DemoBank] = &[
    DemoBank {
        id: "sim-east",
        name: "华东示范银行 East Demo Bank (simulated, cn-xml)",
        login: "EAST01",
        seed: 20261,
        cny_accounts: 3,
        usd_accounts: 1,
    },
    DemoBank {
        id: "sim-south",
        name: "华南示范银行 South Demo Bank (simulated, cn-xml)",
        login: "SOUTH01",
        seed: 20262,
        cny_accounts: 2,
        usd_accounts: 0,
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
        time_zone: s.time_zone.name().to_owned(),
    }
}

#[derive(Debug, Serialize)]
struct DemoJson {
    base_url: String,
    client_id: String,
    client_secret: String,
    config: String,
    simulators: Vec<DemoSim>,
}

#[derive(Debug, Serialize)]
struct DemoSim {
    bank_id: String,
    family: String,
    url: String,
}

fn sim_port(port: u16, index: usize) -> u16 {
    if port == 0 {
        0
    } else {
        port.saturating_add(1 + index as u16)
    }
}

pub async fn run(data_dir: PathBuf, port: u16) -> anyhow::Result<()> {
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
            family: banks::Family::CnXml,
            listen: SocketAddr::from(([127, 0, 0, 1], sim_port(port, i))),
            seed: b.seed,
            login: b.login.to_owned(),
            cny_accounts: b.cny_accounts,
            usd_accounts: b.usd_accounts,
            time_zone: BankTimeZone::SHANGHAI,
            payments: None,
            random_faults: None,
        };
        let server = banksim::SimServer::start(sim_config(&sim), sim.listen)
            .await
            .with_context(|| {
                format!(
                    "simulated bank {} could not listen on {}; pass another --port",
                    b.id, sim.listen
                )
            })?;
        simulators.push(SimulatorConfig {
            listen: server.local_addr(),
            ..sim
        });
        servers.push(server);
    }

    let config = demo_config(&data_dir, api_addr, &simulators, &servers)?;
    let secret = crypto::generate_client_secret();
    let hasher =
        crypto::KeyedHasher::load_or_create(&config.data_path(&config.auth.secret_hash_key_file))
            .context("cannot create the client secret hash key")?;
    let mut config = config;
    config.clients = vec![ClientConfig {
        id: ClientId::parse(DEMO_CLIENT)?,
        secret_hash: hasher.hash(secret.expose_secret()),
        scopes: Scope::ALL.to_vec(),
        accounts: vec!["*".to_owned()],
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
    let base_url = format!("http://{api_addr}");
    let demo_json = DemoJson {
        base_url: base_url.clone(),
        client_id: DEMO_CLIENT.to_owned(),
        client_secret: secret.expose_secret().to_owned(),
        config: config_path.display().to_string(),
        simulators: servers
            .iter()
            .zip(DEMO_BANKS)
            .map(|(s, b)| DemoSim {
                bank_id: b.id.to_owned(),
                family: "cn-xml".to_owned(),
                url: s.url(),
            })
            .collect(),
    };
    let demo_path = data_dir.join("demo.json");
    write_private(&demo_path, &serde_json::to_string_pretty(&demo_json)?)?;

    print_tour(&base_url, secret.expose_secret(), &demo_path, &servers);

    app.serve(api_listener, crate::shutdown_signal()).await?;
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
            name: b.name.to_owned(),
            family: banks::Family::CnXml,
            time_zone: BankTimeZone::SHANGHAI,
            limits: BankLimits {
                request_timeout_ms: 5_000,
                ..BankLimits::default()
            },
            quirks: BankQuirks::default(),
        });
        connections.push(ConnectionConfig {
            id: conn_id.clone(),
            bank: bank_id,
            endpoint: format!("http://{}/", sim.listen),
            login: b.login.to_owned(),
            customer_number: None,
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
        simulators: simulators.to_vec(),
    })
}

fn print_tour(base_url: &str, secret: &str, demo_path: &Path, servers: &[banksim::SimServer]) {
    let sims: Vec<String> = servers
        .iter()
        .zip(DEMO_BANKS)
        .map(|(s, b)| format!("  {:<10} {}", b.id, s.url()))
        .collect();
    let first_sim = servers.first().map(|s| s.url()).unwrap_or_default();
    println!(
        r#"
bankdirect demo is running.
  API        {base_url}   (docs: {base_url}/docs)
  client     {DEMO_CLIENT} (secret in {demo})
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
  curl -s {first_sim}_sim/ledger | jq        # what the simulated bank itself holds
  curl -s $BASE/readyz | jq; curl -s $BASE/metrics | grep bank_calls_total

Stop with Ctrl-C. Run it again with the same --data-dir to keep the database.
"#,
        demo = demo_path.display(),
        sims = sims.join("\n"),
    );
}
