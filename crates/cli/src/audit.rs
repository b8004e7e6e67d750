//! `bankdirect audit verify` and `bankdirect audit export-head`: the auditor's side of the
//! audit chain (`store::audit`). Both read the database named by the configuration and never
//! write to it; the public key that checks the checkpoints is derived from the configured
//! checkpoint key file, which must already exist (it is never created here).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use gateway::config::Config;
use store::audit::{AuditCheckpoint, ExportedHead, VerifyReport};

/// Exit status of `verify` when the chain is broken.
pub const EXIT_BROKEN: u8 = 1;
/// Exit status of `verify` when it could not check (unreadable config, key or database).
pub const EXIT_ERROR: u8 = 2;

/// Most bytes of a `--head` file.
const HEAD_FILE_MAX_BYTES: u64 = 64 * 1024;

async fn open_read_side(config: &Config) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    let url = config.database_url();
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        // Opening a SQLite path that does not exist would create an empty database.
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(&url);
        anyhow::ensure!(
            Path::new(path).is_file(),
            "there is no database at {path} (database.url, or bankdirect.db in the data dir)"
        );
    }
    let opts = store::StoreOptions {
        // The auditor's tool changes nothing: no migration, no chaining.
        migrate: false,
        audit_chain: store::audit::AuditChainOptions {
            enabled: false,
            ..store::audit::AuditChainOptions::default()
        },
        ..store::StoreOptions::default()
    };
    store::open(&url, &opts)
        .await
        .context("cannot open the database")
}

fn public_key(config: &Config) -> anyhow::Result<crypto::Ed25519PublicKey> {
    let path = config.data_path(&config.audit.checkpoint_key_file);
    let meta = std::fs::metadata(&path).with_context(|| {
        format!(
            "cannot read the checkpoint key file {} (audit.checkpoint_key_file)",
            path.display()
        )
    })?;
    anyhow::ensure!(
        meta.is_file() && meta.len() <= HEAD_FILE_MAX_BYTES,
        "{} is not a key file",
        path.display()
    );
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the checkpoint key file {}", path.display()))?;
    let key = crypto::Ed25519Key::from_pkcs8_pem(&pem).map_err(|_| {
        anyhow::anyhow!("{} is not a PKCS#8 PEM Ed25519 private key", path.display())
    })?;
    Ok(key.public_key())
}

/// `--head`: a file holding what `export-head` printed, or that JSON itself.
fn read_head(head: &str) -> anyhow::Result<ExportedHead> {
    let path = Path::new(head);
    let text = if !head.trim_start().starts_with('{') && path.exists() {
        let meta = std::fs::metadata(path)?;
        anyhow::ensure!(
            meta.len() <= HEAD_FILE_MAX_BYTES,
            "the head file {} is larger than {HEAD_FILE_MAX_BYTES} bytes",
            path.display()
        );
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the head file {}", path.display()))?
    } else {
        head.to_owned()
    };
    serde_json::from_str(&text)
        .context("--head is neither a file nor the JSON printed by `bankdirect audit export-head`")
}

fn summary(report: &VerifyReport, head: Option<&ExportedHead>) -> String {
    let mut line = format!("audit chain intact: {} records", report.records);
    if let Some(hash) = &report.head_hash {
        line.push_str(&format!(", head {}", store::audit::to_hex(hash)));
    }
    match report.latest_checkpoint {
        Some(p) => line.push_str(&format!(
            ", {} signed checkpoints (latest at position {p})",
            report.checkpoints
        )),
        None => line.push_str(", no signed checkpoint yet"),
    }
    if let Some(h) = head {
        line.push_str(&format!(
            ", reaches the exported head at position {}",
            h.position
        ));
    }
    if report.unlinked > 0 {
        line.push_str(&format!(
            ", {} newer records not linked yet",
            report.unlinked
        ));
    }
    line
}

async fn verify_inner(config_path: &Path, head: Option<&str>) -> anyhow::Result<bool> {
    let config = Config::load(config_path)?;
    let public = public_key(&config)?;
    let head = head.map(read_head).transpose()?;
    if let Some(h) = &head {
        gateway::audit::check_checkpoint(&public, h).map_err(|reason| {
            anyhow::anyhow!("the exported head is not signed by the configured key: {reason}")
        })?;
    }
    let store = open_read_side(&config).await?;
    let check = |cp: &AuditCheckpoint| gateway::audit::check_checkpoint(&public, cp);
    let mut last_shown = 0;
    let mut progress = |done: i64, total: i64| {
        // Only long chains print progress, about every 100,000 records.
        if total > 100_000 && done - last_shown >= 100_000 {
            last_shown = done;
            eprintln!("verified {done} of {total} records…");
        }
    };
    let outcome = store::audit::verify(store.as_ref(), &check, head.as_ref(), &mut progress)
        .await
        .context("cannot read the audit chain (is the database migrated?)");
    store.close().await;
    match outcome? {
        Ok(report) => {
            println!("{}", summary(&report, head.as_ref()));
            Ok(true)
        }
        Err(broken) => {
            println!("audit chain BROKEN at the first bad link: {broken}");
            Ok(false)
        }
    }
}

/// `bankdirect audit verify`: 0 intact, [`EXIT_BROKEN`] broken, [`EXIT_ERROR`] not checked.
pub async fn verify(config: PathBuf, head: Option<String>) -> ExitCode {
    match verify_inner(&config, head.as_deref()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_BROKEN),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// `bankdirect audit export-head`: the latest signed checkpoint as JSON on stdout.
pub async fn export_head(config: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config)?;
    let store = open_read_side(&config).await?;
    let latest = store.latest_audit_checkpoint().await;
    store.close().await;
    let Some(head) =
        latest.context("cannot read the audit checkpoints (is the database migrated?)")?
    else {
        anyhow::bail!(
            "there is no signed checkpoint yet: the gateway signs one every audit.checkpoint_every_records records or audit.checkpoint_every_s seconds"
        );
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &head)?;
    writeln!(out)?;
    Ok(())
}
