//! The `bankdirect` binary: run the gateway (`serve`), the simulated banks
//! (`sim`), both at once for a first look (`demo`), the database migrations
//! (`migrate`), and operator tools (`clients new-secret`, `users
//! hash-password`, `users totp-secret`, `audit verify`, `audit export-head`).

mod audit;
mod crypto_cmd;
mod demo;
mod secrets_cmd;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::{config::Config, App, BuildOptions};

/// jemalloc instead of glibc's malloc: under tokio's work stealing a buffer
/// is often freed on another thread than the one that allocated it, and
/// glibc then takes arena locks; and its thread cache hands back the block
/// freed last, still in the cache, where mimalloc walked a page's free
/// blocks in turn (BENCHMARKS.md, run 5 item 1, and run 15).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "bankdirect",
    version,
    about = "Bank-enterprise direct-connect gateway: one API for all of an enterprise's banks.",
    long_about = "bankdirect sits between an ERP and the banks where the enterprise holds accounts. \
The ERP sees one REST API (accounts, balances, …); bankdirect speaks each bank's own protocol.\n\n\
Start here:  bankdirect demo            (gateway + simulated banks on this machine)\n\
Then:        cat bankdirect-demo/demo.json and follow the printed curl tour.",
    after_help = "Logging: set RUST_LOG (e.g. RUST_LOG=debug) to change verbosity; logs go to stderr."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway API and its workers with a configuration file.
    ///
    /// Example: bankdirect serve --config /etc/bankdirect/bankdirect.toml
    Serve {
        /// Path of the TOML configuration (BANKDIRECT_* environment variables override it).
        #[arg(long, short, env = "BANKDIRECT_CONFIG")]
        config: PathBuf,
    },
    /// Run every simulated bank listed under [[simulators]] in the configuration,
    /// so a gateway can be stopped and restarted while its banks live on.
    ///
    /// Example: bankdirect sim --config bankdirect-demo/bankdirect.toml
    Sim {
        #[arg(long, short, env = "BANKDIRECT_CONFIG")]
        config: PathBuf,
    },
    /// Start the gateway on an embedded SQLite file together with simulated
    /// banks, write D/bankdirect.toml and D/demo.json, and print a curl tour.
    ///
    /// Example: bankdirect demo --data-dir /tmp/bd --port 8080
    ///          bankdirect demo --tls   (HTTPS; trust D/tls/ca.pem)
    Demo {
        /// Directory for the config, the database and the generated keys.
        #[arg(long, default_value = "bankdirect-demo")]
        data_dir: PathBuf,
        /// API port on 127.0.0.1; the simulated banks take the next ports. 0 picks free ports.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Serve the API over HTTPS with a local CA and server certificate made
        /// into D/tls (kept across runs); the tour says how to trust the CA.
        #[arg(long)]
        tls: bool,
    },
    /// Create or upgrade the database schema, then exit.
    ///
    /// Example: bankdirect migrate --config bankdirect.toml
    Migrate {
        #[arg(long, short, env = "BANKDIRECT_CONFIG")]
        config: PathBuf,
    },
    /// Manage API clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Manage people (the [[users]] who log in, make and approve payments).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Check the audit chain, or export its signed head for safekeeping.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Seal secrets for the configuration under a master key, and rotate
    /// that key (docs/secrets.md).
    #[command(subcommand)]
    Secrets(secrets_cmd::SecretsCommand),
    /// Sign, verify, hash and encrypt as banks do (SM2, SM3, SM4, RSA), make
    /// keys, and explain keys, certificates and failing signatures.
    #[command(subcommand)]
    Crypto(crypto_cmd::CryptoCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every link and signed checkpoint of the audit chain.
    ///
    /// Recomputes every link of the audit chain from its first record and
    /// checks every signed checkpoint with the public key of the configured
    /// checkpoint key file (audit.checkpoint_key_file); with --head, also
    /// checks that the chain still reaches a head exported earlier, with the
    /// same hash. Reads the database only.
    ///
    /// Prints a one-line summary and exits 0 when the chain is intact; prints
    /// the FIRST broken link (its position and what is wrong) and exits 1 when
    /// it is not; exits 2 when it could not check (config, key or database
    /// unreadable). Long chains print their progress on stderr.
    #[command(after_help = "Examples:\n  \
bankdirect audit verify --config /etc/bankdirect/bankdirect.toml\n  \
bankdirect audit export-head --config bankdirect.toml > head-2026-06-30.json\n  \
bankdirect audit verify --config bankdirect.toml --head head-2026-06-30.json")]
    Verify {
        #[arg(long, short, env = "BANKDIRECT_CONFIG")]
        config: PathBuf,
        /// A file written by `audit export-head`, or its JSON itself.
        #[arg(long)]
        head: Option<String>,
    },
    /// Print the latest signed checkpoint as JSON, for safekeeping.
    ///
    /// The head (position, hash, time, key id, signature) is meant to be kept
    /// outside the database's reach; a later `audit verify --head` proves the
    /// chain was neither rewritten nor cut off before it.
    #[command(after_help = "Examples:\n  \
bankdirect audit export-head --config bankdirect.toml > head-$(date +%F).json\n  \
bankdirect audit verify --config bankdirect.toml --head head-2026-06-30.json")]
    ExportHead {
        #[arg(long, short, env = "BANKDIRECT_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Read a password from standard input (one line) and print the
    /// `password_hash` line (argon2id) to put in the person's [[users]]
    /// entry. The password is never taken as an argument, so it does not
    /// show in the process list or the shell history.
    ///
    /// Example: bankdirect users hash-password < approver1.pass
    HashPassword,
    /// Generate a random TOTP secret (160 bits) for a person's authenticator
    /// app and print the `totp_secret` line for their [[users]] entry and
    /// the `otpauth://` URI to put into the app (typed in, or as a QR code).
    /// With a totp_secret, the person's login also needs the app's current
    /// 6-digit code (`totp` in the form). Both lines are secret.
    ///
    /// Example: bankdirect users totp-secret --user approver1 --issuer "bankdirect ACME"
    TotpSecret {
        /// The person's id, as in their [[users]] entry; the app shows it.
        #[arg(long)]
        user: String,
        /// The name the app shows above the code.
        #[arg(long, default_value = "bankdirect")]
        issuer: String,
    },
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Generate a new random client secret and print it with the
    /// `secret_hash` line to put in the client's [[clients]] entry.
    ///
    /// Example: bankdirect clients new-secret --config bankdirect.toml
    NewSecret {
        #[arg(long, short, env = "BANKDIRECT_CONFIG")]
        config: PathBuf,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Sim { config } => sim(config).await,
        Command::Demo {
            data_dir,
            port,
            tls,
        } => demo::run(data_dir, port, tls).await,
        Command::Migrate { config } => migrate(config).await,
        Command::Clients(ClientsCommand::NewSecret { config }) => new_secret(config),
        Command::Users(UsersCommand::HashPassword) => hash_password(),
        Command::Secrets(command) => secrets_cmd::run(command),
        Command::Users(UsersCommand::TotpSecret { user, issuer }) => totp_secret(&user, &issuer),
        // Its own exit statuses: 1 broken, 2 not checked.
        Command::Audit(AuditCommand::Verify { config, head }) => {
            return Ok(audit::verify(config, head).await)
        }
        Command::Audit(AuditCommand::ExportHead { config }) => audit::export_head(config).await,
        // Its own exit statuses: 1 does not verify, 2 could not run.
        Command::Crypto(command) => return Ok(crypto_cmd::run(command)),
    }
    .map(|()| ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

async fn serve(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    let listen = config.server.listen;
    let app = App::build(config, BuildOptions::default())
        .await
        .context("the gateway could not start")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}; is another process using it? change server.listen")
        })?;
    match app.state.config.server.tls.clone() {
        Some(tls) => {
            tracing::info!(address = %listener.local_addr()?, cert = %tls.cert_file.display(), "bankdirect gateway listening over TLS");
            app.serve_tls(listener, &tls, shutdown_signal()).await?;
        }
        None => {
            tracing::info!(address = %listener.local_addr()?, "bankdirect gateway listening");
            app.serve(listener, shutdown_signal()).await?;
        }
    }
    Ok(())
}

async fn sim(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    if config.simulators.is_empty() {
        anyhow::bail!(
            "{} lists no [[simulators]]; add one per simulated bank (see `bankdirect demo` for an example)",
            path.display()
        );
    }
    let mut servers = Vec::new();
    for s in &config.simulators {
        let server = demo::start_simulator(s).await?;
        println!(
            "simulated bank {} ({}) at {}",
            s.bank_id,
            s.family,
            server.url()
        );
        servers.push(server);
    }
    shutdown_signal().await;
    for s in servers {
        s.shutdown().await;
    }
    Ok(())
}

async fn migrate(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
    let opts = store::StoreOptions {
        migrate: true,
        ..store::StoreOptions::default()
    };
    let store = store::open(&config.database_url(), &opts)
        .await
        .context("migration failed")?;
    println!(
        "database schema is up to date ({:?}, install id {})",
        store.backend(),
        store.install_id().await?
    );
    store.close().await;
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("Type the password and press Enter (it is shown as you type; prefer `< file`):");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        anyhow::bail!("the password is empty; give it on standard input, e.g. `bankdirect users hash-password < approver1.pass`");
    }
    let hash = crypto::password::hash_password(password)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    println!("password_hash = \"{hash}\"");
    eprintln!("Put the password_hash line in the person's [[users]] entry; the password itself is not stored.");
    Ok(())
}

fn totp_secret(user: &str, issuer: &str) -> anyhow::Result<()> {
    let user = domain::UserId::parse(user)
        .map_err(|e| anyhow::anyhow!("--user: {e} (the id of the person's [[users]] entry)"))?;
    // The app's label is `issuer:account`; a colon would split it wrongly.
    if issuer.trim().is_empty() || issuer.contains(':') {
        anyhow::bail!("--issuer: expected a name without `:`, e.g. --issuer \"bankdirect ACME\"");
    }
    let key = crypto::totp::TotpKey::generate();
    let uri = crypto::totp::provisioning_uri(issuer, user.as_str(), &key);
    println!("totp_secret = \"{}\"", key.to_base32().expose_secret());
    println!("{}", uri.expose_secret());
    eprintln!(
        "Put the totp_secret line in {user}'s [[users]] entry and the otpauth:// URI into their \
authenticator app (e.g. shown as a QR code: qrencode -t ansiutf8 '<uri>'). Keep neither anywhere else."
    );
    Ok(())
}

fn new_secret(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    let hasher =
        crypto::KeyedHasher::load_or_create(&config.data_path(&config.auth.secret_hash_key_file))
            .context("cannot open the client secret hash key")?;
    let secret = crypto::generate_client_secret();
    println!("client_secret = {}", secret.expose_secret());
    println!("secret_hash = \"{}\"", hasher.hash(secret.expose_secret()));
    eprintln!("Give the client_secret to the client once; put the secret_hash line in its [[clients]] entry.");
    Ok(())
}
