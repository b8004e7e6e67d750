//! `bankdirect audit verify` on PostgreSQL: two stores (two gateway instances' worth)
//! write audit records at once on one database, each running its chainer beside its
//! writes; the real binary then finds one intact chain, reaching the head exported
//! earlier; a field changed behind the store's back (through `psql`) is reported at its
//! position. Needs `BANKDIRECT_TEST_PG_URL` (scripts/pg-test.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;
use std::sync::Arc;

use store::NewAuditRecord;
use support::PgDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_bankdirect");

fn bankdirect(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_make_one_chain_that_the_binary_verifies() {
    let db = PgDatabase::from_env();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bankdirect.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n\n[database]\nurl = \"{}\"\n\n[audit]\ncheckpoint_every_records = 25\n",
            dir.path().join("data").display(),
            db.url
        ),
    )
    .unwrap();
    let cfg = gateway::config::Config::load(&config).unwrap();
    let key = Arc::new(
        gateway::audit::CheckpointKey::load_or_create(
            &cfg.data_path(&cfg.audit.checkpoint_key_file),
        )
        .unwrap(),
    );
    let opts = store::StoreOptions {
        audit_chain: store::audit::AuditChainOptions {
            checkpoint_every_records: 25,
            signer: Some(key),
            ..store::audit::AuditChainOptions::default()
        },
        ..store::StoreOptions::default()
    };
    let a = store::open(&db.url, &opts).await.unwrap();
    let b = store::open(&db.url, &opts).await.unwrap();
    let mut tasks = Vec::new();
    for (n, s) in [Arc::clone(&a), Arc::clone(&b)].into_iter().enumerate() {
        for t in 0..4 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                for i in 0..30 {
                    s.append_audit(NewAuditRecord {
                        at: domain::Clock::now(&domain::SystemClock),
                        actor: format!("client:instance-{n}"),
                        action: "payment.create".to_owned(),
                        object: format!("payment:{n}-{t}-{i}"),
                        request_id: None,
                        outcome: "ok".to_owned(),
                        details: serde_json::json!({"i": i}),
                    })
                    .await
                    .unwrap();
                }
            }));
        }
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                s.audit_chain_tick().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for _ in 0..100 {
        a.audit_chain_tick().await.unwrap();
        if a.audit_unlinked().await.unwrap().count == 0 {
            break;
        }
    }
    assert_eq!(a.audit_unlinked().await.unwrap().count, 0);
    assert_eq!(
        a.audit_chain_length().await.unwrap(),
        240,
        "one chain, no fork"
    );

    let (code, head, err) =
        bankdirect(&["audit", "export-head", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = bankdirect(&[
        "audit",
        "verify",
        "--config",
        config.to_str().unwrap(),
        "--head",
        head.trim(),
    ]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.starts_with("audit chain intact: 240 records"), "{out}");
    assert!(out.contains("reaches the exported head"), "{out}");

    // Behind the store's back.
    let psql = Command::new(&db.psql)
        .args([
            db.url.as_str(),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "UPDATE audit_log SET outcome = 'denied' WHERE position = 77",
        ])
        .output()
        .unwrap();
    assert!(
        psql.status.success(),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    let (code, out, _) = bankdirect(&["audit", "verify", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("position 77") && out.contains("do not match its hash"),
        "{out}"
    );
    a.close().await;
    b.close().await;
}
