//! `bankdirect audit verify` and `export-head`, the real binary against a SQLite database
//! whose chain was written by the store with the gateway's real checkpoint key (Ed25519,
//! from the configured key file), then tampered with — each kind in its own test — through
//! the `sqlite3` shell while the store still holds the database open, so the last writes
//! (and the tampering) are in the `-wal` file, never checkpointed into the main file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::json;
use store::audit::{record_hash, AuditHash};
use store::{NewAuditRecord, Store};

const BIN: &str = env!("CARGO_BIN_EXE_bankdirect");

struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
    store: Arc<dyn Store>,
}

/// A config in a temp dir, and `n` audit records written through the store with the
/// configured checkpoint key, a checkpoint every `every` records.
async fn fixture(n: usize, every: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("bankdirect.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n\n[audit]\ncheckpoint_every_records = {every}\n",
            data.display()
        ),
    )
    .unwrap();
    let cfg = gateway::config::Config::load(&config).unwrap();
    let key = gateway::audit::CheckpointKey::load_or_create(
        &cfg.data_path(&cfg.audit.checkpoint_key_file),
    )
    .unwrap();
    let opts = store::StoreOptions {
        audit_chain: store::audit::AuditChainOptions {
            checkpoint_every_records: every,
            checkpoint_every_s: 3_600,
            signer: Some(Arc::new(key)),
            ..store::audit::AuditChainOptions::default()
        },
        ..store::StoreOptions::default()
    };
    let store = store::open(&cfg.database_url(), &opts).await.unwrap();
    for i in 0..n {
        store
            .append_audit(NewAuditRecord {
                at: domain::Clock::now(&domain::SystemClock),
                actor: "client:erp".to_owned(),
                action: "payment.create".to_owned(),
                object: format!("payment:{i}"),
                request_id: Some(format!("req-{i}")),
                outcome: "ok".to_owned(),
                details: json!({"amount": "12.34", "account": "****6789"}),
            })
            .await
            .unwrap();
    }
    store.audit_chain_tick().await.unwrap();
    Fixture {
        _dir: dir,
        config,
        db: data.join("bankdirect.db"),
        store,
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn bankdirect(args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn verify(f: &Fixture, head: Option<&str>) -> Run {
    let config = f.config.to_str().unwrap();
    let mut args = vec!["audit", "verify", "--config", config];
    if let Some(h) = head {
        args.extend(["--head", h]);
    }
    bankdirect(&args)
}

fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(db.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Runs SQL through the `sqlite3` shell (not our code), while the store is still open:
/// the writes go to the WAL, like the store's own last writes.
fn tamper(f: &Fixture, sql: &str) {
    assert!(wal_len(&f.db) > 0, "the last writes are still in the WAL");
    let out = Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg(&f.db)
        .arg(sql)
        .output()
        .expect("the sqlite3 shell (apt install sqlite3)");
    assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wal_len(&f.db) > 0, "the tampering is in the WAL too");
}

fn assert_broken(run: &Run, needle: &str) {
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("BROKEN") && run.stdout.contains(needle),
        "expected {needle:?} in: {}",
        run.stdout
    );
}

fn x(bytes: &[u8]) -> String {
    format!("X'{}'", store::audit::to_hex(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intact_chain_verifies_and_its_exported_head_is_reached() {
    // Checkpoints at 1, 11, 21 and 31.
    let f = fixture(31, 10).await;
    let run = verify(&f, None);
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("audit chain intact: 31 records"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), 1, "one line: {}", run.stdout);

    let export = bankdirect(&[
        "audit",
        "export-head",
        "--config",
        f.config.to_str().unwrap(),
    ]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let head: serde_json::Value = serde_json::from_str(&export.stdout).unwrap();
    assert_eq!(head["position"], 31);
    assert_eq!(head["hash"].as_str().unwrap().len(), 64);
    assert!(head["key_id"].as_str().unwrap().starts_with("ed25519:"));

    let file = f.config.with_file_name("head.json");
    std::fs::write(&file, &export.stdout).unwrap();
    let run = verify(&f, Some(file.to_str().unwrap()));
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert!(run
        .stdout
        .contains("reaches the exported head at position 31"));
    let run = verify(&f, Some(export.stdout.trim()));
    assert_eq!(
        run.code, 0,
        "the head given as JSON: {} {}",
        run.stdout, run.stderr
    );
    f.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_field_is_reported_at_its_position() {
    let f = fixture(20, 5).await;
    tamper(
        &f,
        "UPDATE audit_log SET outcome = 'denied' WHERE position = 9",
    );
    assert_broken(
        &verify(&f, None),
        "position 9 (id 9): its fields do not match its hash",
    );
    f.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_record_is_reported_missing() {
    let f = fixture(20, 5).await;
    tamper(&f, "DELETE FROM audit_log WHERE position = 4");
    assert_broken(&verify(&f, None), "position 4: missing");
    f.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_swapped_records_are_reported() {
    let f = fixture(20, 5).await;
    tamper(
        &f,
        "UPDATE audit_log SET position = 1000006 WHERE position = 6; \
         UPDATE audit_log SET position = 6 WHERE position = 7; \
         UPDATE audit_log SET position = 7 WHERE position = 1000006;",
    );
    assert_broken(&verify(&f, None), "position 6 (id 7): its prev_hash");
    f.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inserted_record_is_reported() {
    let f = fixture(20, 100).await;
    // A careful forger links the new record correctly after position 4 and moves the rest
    // up by one; the record after it still names position 4's hash.
    let before = f.store.audit_chain_page(3, 1).await.unwrap().remove(0);
    let prev: AuditHash = before.hash.as_slice().try_into().unwrap();
    let mut fields = before.fields.clone();
    fields.id = 500;
    fields.object = "payment:forged".to_owned();
    let hash = record_hash(&prev, 5, &fields);
    let at = before_at_text(&f, 4);
    tamper(
        &f,
        &format!(
            "UPDATE audit_log SET position = position + 1000000 WHERE position >= 5; \
             UPDATE audit_log SET position = position - 999999 WHERE position > 1000000; \
             INSERT INTO audit_log (id, at, actor, action, object, request_id, outcome, details, \
               position, prev_hash, hash) VALUES (500, '{at}', '{}', '{}', 'payment:forged', '{}', \
               '{}', '{}', 5, {}, {});",
            fields.actor,
            fields.action,
            fields.request_id.clone().unwrap(),
            fields.outcome,
            fields.details,
            x(&prev),
            x(&hash)
        ),
    );
    assert_broken(&verify(&f, None), "position 6 (id 5): its prev_hash");
    f.store.close().await;
}

/// The stored `at` text of a position, as the sqlite3 shell reads it.
fn before_at_text(f: &Fixture, position: i64) -> String {
    let out = Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg(&f.db)
        .arg(format!(
            "SELECT at FROM audit_log WHERE position = {position}"
        ))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recomputed_chain_is_caught_by_the_signed_checkpoints() {
    let f = fixture(20, 5).await;
    // Change position 8, then rewrite every hash from there on correctly: the links hold,
    // only the signatures (whose key is not in the database) give it away.
    let page = f.store.audit_chain_page(0, 100).await.unwrap();
    let mut sql = String::from("UPDATE audit_log SET outcome = 'denied' WHERE position = 8;");
    let mut prev: AuditHash = store::audit::GENESIS_HASH;
    for mut rec in page {
        if rec.position >= 8 {
            if rec.position == 8 {
                rec.fields.outcome = "denied".to_owned();
            }
            let hash = record_hash(&prev, rec.position, &rec.fields);
            sql.push_str(&format!(
                "UPDATE audit_log SET prev_hash = {}, hash = {} WHERE position = {};",
                x(&prev),
                x(&hash),
                rec.position
            ));
            prev = hash;
        } else {
            prev = rec.hash.as_slice().try_into().unwrap();
        }
    }
    tamper(&f, &sql);
    assert_broken(
        &verify(&f, None),
        "position 11: the chain's hash differs from the signed checkpoint's",
    );
    // Forging the checkpoint without the key fails on its signature.
    let run = verify(&f, None);
    assert!(run.stdout.contains("rewritten"), "{}", run.stdout);
    tamper(
        &f,
        &format!(
            "UPDATE audit_checkpoints SET hash = (SELECT hash FROM audit_log WHERE position = 11) \
             WHERE position = 11; UPDATE audit_checkpoints SET signature = {} WHERE position = 11;",
            x(&[9; 64])
        ),
    );
    assert_broken(
        &verify(&f, None),
        "checkpoint at position 11: the signature does not verify",
    );
    f.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_tail_is_caught_against_the_exported_head() {
    let f = fixture(20, 5).await;
    let export = bankdirect(&[
        "audit",
        "export-head",
        "--config",
        f.config.to_str().unwrap(),
    ]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let head: serde_json::Value = serde_json::from_str(&export.stdout).unwrap();
    assert_eq!(head["position"], 16, "checkpoints at 1, 6, 11, 16");
    // The tail goes, and with it every checkpoint that covered it: what is left links.
    tamper(
        &f,
        "DELETE FROM audit_log WHERE position > 10; \
         DELETE FROM audit_checkpoints WHERE position > 10;",
    );
    let alone = verify(&f, None);
    assert_eq!(
        alone.code, 0,
        "alone, a cut chain still links: {}",
        alone.stdout
    );
    assert!(alone.stdout.contains("intact: 10 records"));
    assert_broken(
        &verify(&f, Some(export.stdout.trim())),
        "the chain ends at position 10 but the exported head is at position 16",
    );
    f.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_signed_by_another_key_are_refused() {
    let f = fixture(10, 5).await;
    let cfg = gateway::config::Config::load(&f.config).unwrap();
    let key_file = cfg.data_path(&cfg.audit.checkpoint_key_file);
    std::fs::remove_file(&key_file).unwrap();
    // A key of the same kind, but not the one that signed.
    gateway::audit::CheckpointKey::load_or_create(&key_file).unwrap();
    assert_broken(&verify(&f, None), "not by the configured key");
    f.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_without_the_key_file_cannot_check() {
    let f = fixture(3, 5).await;
    let cfg = gateway::config::Config::load(&f.config).unwrap();
    std::fs::remove_file(cfg.data_path(&cfg.audit.checkpoint_key_file)).unwrap();
    let run = verify(&f, None);
    assert_eq!(run.code, 2, "{} {}", run.stdout, run.stderr);
    assert!(run.stderr.contains("checkpoint_key_file"), "{}", run.stderr);
    assert!(
        !cfg.data_path(&cfg.audit.checkpoint_key_file).exists(),
        "verify never creates a key"
    );
    f.store.close().await;
}

#[test]
fn audit_help_shows_examples() {
    for cmd in ["verify", "export-head"] {
        let run = bankdirect(&["audit", cmd, "--help"]);
        assert_eq!(run.code, 0);
        assert!(run.stdout.contains("Examples:"), "{}", run.stdout);
        assert!(run.stdout.contains("bankdirect audit verify --config"));
        assert!(run.stdout.contains("--head"));
    }
}

#[test]
fn verify_of_a_missing_database_cannot_check_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("bankdirect.toml");
    std::fs::write(&config, format!("data_dir = \"{}\"\n", data.display())).unwrap();
    let cfg = gateway::config::Config::load(&config).unwrap();
    gateway::audit::CheckpointKey::load_or_create(&cfg.data_path(&cfg.audit.checkpoint_key_file))
        .unwrap();
    let run = bankdirect(&["audit", "verify", "--config", config.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{} {}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("there is no database"),
        "{}",
        run.stderr
    );
    assert!(
        !data.join("bankdirect.db").exists(),
        "verify creates no database"
    );
}
