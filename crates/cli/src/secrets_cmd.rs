//! `bankdirect secrets`: sealed values in the configuration (docs/secrets.md).
//!
//! - `new-master-key --out F` writes a fresh master key (base64, mode 0600);
//! - `seal` reads a secret on standard input and prints it sealed under the
//!   master key, to paste into the configuration (a `totp_secret`) or to
//!   write as a key file (`connections[].tls.client_key`);
//! - `rotate --config F --new-master-key-file N` re-seals every sealed value
//!   of the configuration and of the key files it names (TLS client keys,
//!   signing keys) under the new key.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use crypto::sealed::{is_sealed, key_id_of, MasterKey, MASTER_KEY_ENV, SEALED_PREFIX};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Write a fresh random master key (32 bytes, base64) to a new file with
    /// mode 0600. It is never overwritten; keep a copy where the database is not.
    ///
    /// Example: bankdirect secrets new-master-key --out /etc/bankdirect/master.key
    NewMasterKey {
        #[arg(long)]
        out: PathBuf,
    },
    /// Seal a secret read from standard input (a bank password, a PEM private
    /// key, a TOTP secret) under the master key and print the sealed value.
    /// The master key comes from --master-key-file, else BANKDIRECT_MASTER_KEY.
    ///
    /// Example: bankdirect secrets seal --master-key-file master.key < client.key > client.key.sealed
    Seal {
        #[arg(long)]
        master_key_file: Option<PathBuf>,
    },
    /// Re-seal every sealed value of the configuration file and of the TLS key
    /// files it names under a new master key, each file replaced atomically.
    /// Values already under the new key are left as they are, so a rotation
    /// that stopped half-way can be run again.
    ///
    /// Example: bankdirect secrets rotate --config bankdirect.toml --master-key-file old.key --new-master-key-file new.key
    Rotate {
        #[arg(long, short, env = "BANKDIRECT_CONFIG")]
        config: PathBuf,
        /// The key the values are sealed under now (default: BANKDIRECT_MASTER_KEY,
        /// else the config's [secrets] master_key_file).
        #[arg(long)]
        master_key_file: Option<PathBuf>,
        #[arg(long)]
        new_master_key_file: PathBuf,
    },
}

pub fn run(command: SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::NewMasterKey { out } => {
            let key = MasterKey::write_new(&out).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("master key {} written to {}", key.id(), out.display());
            eprintln!(
                "Name it in the configuration ([secrets] master_key_file = \"{}\") or give its content in {MASTER_KEY_ENV}; keep a copy apart from the database and its backups.",
                out.display()
            );
            Ok(())
        }
        SecretsCommand::Seal { master_key_file } => {
            let key = master_key(master_key_file.as_deref(), None)?;
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("Type the secret, then Enter and Ctrl-D (it is shown as you type; prefer `< file`):");
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the secret from standard input (is it UTF-8 text?)")?;
            let text = crypto::Zeroizing::new(text);
            let secret = text.trim_end_matches(['\n', '\r']);
            if secret.is_empty() {
                anyhow::bail!("the secret is empty; give it on standard input, e.g. `bankdirect secrets seal < client.key`");
            }
            if is_sealed(secret) {
                anyhow::bail!("the input is sealed already; to move it to another key use `bankdirect secrets rotate`");
            }
            println!("{}", key.seal(secret));
            eprintln!("Sealed under master key {}.", key.id());
            Ok(())
        }
        SecretsCommand::Rotate {
            config,
            master_key_file,
            new_master_key_file,
        } => rotate(&config, master_key_file.as_deref(), &new_master_key_file),
    }
}

/// The master key from a file, else the environment, else the config's
/// `[secrets] master_key_file`.
fn master_key(file: Option<&Path>, config_file: Option<&Path>) -> anyhow::Result<MasterKey> {
    if let Some(path) = file {
        return MasterKey::from_file(path).map_err(|e| anyhow::anyhow!("{e}"));
    }
    if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
        let text = crypto::Zeroizing::new(text);
        return MasterKey::from_base64(&text).map_err(|e| anyhow::anyhow!("{MASTER_KEY_ENV}: {e}"));
    }
    if let Some(path) = config_file {
        return MasterKey::from_file(path).map_err(|e| anyhow::anyhow!("{e}"));
    }
    anyhow::bail!("no master key: pass --master-key-file F or set {MASTER_KEY_ENV} (make one with `bankdirect secrets new-master-key --out F`)")
}

/// Every sealed token of `text` (`sealed:v1:<id>:<base64url>`), as byte ranges.
fn sealed_tokens(text: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(SEALED_PREFIX) {
        let start = from + at;
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_')))
            .map_or(text.len(), |n| start + n);
        found.push((start, end));
        from = end;
    }
    found
}

/// `sealed` under `new`: opened with `old` (or left when already under `new`).
fn reseal(
    sealed: &str,
    old: &MasterKey,
    new: &MasterKey,
    at: &str,
) -> anyhow::Result<Option<String>> {
    let id = key_id_of(sealed).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
    if id == new.id() {
        return Ok(None);
    }
    let plain = old.open(sealed).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
    Ok(Some(new.seal(plain.expose_secret())))
}

/// Replaces `path` by `text` atomically (a sibling temporary file, synced,
/// renamed over it), keeping its permissions.
fn replace_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("rotate-tmp");
    let permissions = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions();
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, permissions)
            .with_context(|| format!("cannot set the permissions of {}", tmp.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot replace {} with {}", path.display(), tmp.display()))
}

fn rotate(config: &Path, old_file: Option<&Path>, new_file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let base = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let doc: toml::Value =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", config.display()))?;
    let configured_key = doc
        .get("secrets")
        .and_then(|s| s.get("master_key_file"))
        .and_then(toml::Value::as_str)
        .map(|p| base.join(p));
    let old = master_key(old_file, configured_key.as_deref())?;
    let new = MasterKey::from_file(new_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    if old.id() == new.id() {
        anyhow::bail!("the new master key is the current one ({}); make a new one with `bankdirect secrets new-master-key`", new.id());
    }

    // The TLS key files the configuration names, re-sealed first: the
    // configuration is replaced last.
    let mut files = 0;
    let connections = doc
        .get("connections")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Every key file a connection names: its TLS client key, its signing key.
    let key_files = connections.iter().enumerate().flat_map(|(i, connection)| {
        [("tls", "client_key"), ("signing", "key")]
            .into_iter()
            .filter_map(move |(table, field)| {
                connection
                    .get(table)
                    .and_then(|t| t.get(field))
                    .and_then(toml::Value::as_str)
                    .map(|file| (format!("connections[{i}].{table}.{field}"), file.to_owned()))
            })
    });
    for (at, file) in key_files {
        let path = base.join(file);
        let content = std::fs::read_to_string(&path)
            .with_context(|| format!("{at}: cannot read {}", path.display()))?;
        if !is_sealed(&content) {
            continue;
        }
        let at = format!("{at} ({})", path.display());
        if let Some(resealed) = reseal(content.trim(), &old, &new, &at)? {
            replace_file(&path, &format!("{resealed}\n"))?;
            files += 1;
        }
    }

    let mut values = 0;
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in sealed_tokens(&text) {
        out.push_str(&text[last..start]);
        let line = text[..start].lines().count().max(1);
        let at = format!("{}:{line}", config.display());
        match reseal(&text[start..end], &old, &new, &at)? {
            Some(resealed) => {
                out.push_str(&resealed);
                values += 1;
            }
            None => out.push_str(&text[start..end]),
        }
        last = end;
    }
    out.push_str(&text[last..]);
    if values > 0 {
        replace_file(config, &out)?;
    }
    println!(
        "re-sealed {values} value(s) in {} and {files} key file(s) under master key {} (was {})",
        config.display(),
        new.id(),
        old.id()
    );
    eprintln!(
        "Now give the gateway the new key: [secrets] master_key_file = \"{}\" or {MASTER_KEY_ENV}; keep the old key until every instance runs with the new one.",
        new_file.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_are_found_inside_toml_strings() {
        let text = "a = \"sealed:v1:0123456789abcdef:AbC-_9\"\nb = 'x'\nc = \"sealed:v1:0123456789abcdef:zz\"";
        let tokens: Vec<&str> = sealed_tokens(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect();
        assert_eq!(
            tokens,
            [
                "sealed:v1:0123456789abcdef:AbC-_9",
                "sealed:v1:0123456789abcdef:zz"
            ]
        );
    }
}
