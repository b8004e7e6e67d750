//! The audit chain, generic over the backend (listed in the `suite!` of `suite.rs`): every
//! record linked in commit order, checkpoints signed every N records, and `audit::verify`
//! finding the first broken link after each kind of tampering — each its own test. The
//! tampering goes behind the store's back through a plain connection while the store is
//! still open: on SQLite the last writes are then still in the `-wal` file (the tests
//! check it is not empty), which the plain connection reads and writes like SQLite does.
//! Plus: two stores on one PostgreSQL database writing and chaining at once make one chain,
//! and appends link their records as written, except behind records not linked yet.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use store::audit::{
    self, record_hash, AuditChainOptions, AuditCheckpoint, AuditHash, ChainBreak, CheckpointSigner,
    VerifyReport,
};
use store::{Backend, Store, StoreOptions};

use crate::{record, Kind, TestDb};

/// A stand-in signer: a keyed SHA-256 (the real one is Ed25519 in the gateway; the chain
/// only needs something that whoever lacks the key cannot produce).
#[derive(Debug)]
pub(crate) struct TestSigner;

const TEST_KEY: &[u8] = b"test checkpoint key";

impl CheckpointSigner for TestSigner {
    fn key_id(&self) -> &str {
        "test-key"
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        Sha256::new()
            .chain_update(TEST_KEY)
            .chain_update(message)
            .finalize()
            .to_vec()
    }
}

fn check_signature(cp: &AuditCheckpoint) -> Result<(), String> {
    let message = cp.message().ok_or("hash of the wrong length")?;
    if cp.key_id != "test-key" {
        return Err(format!("unknown key {}", cp.key_id));
    }
    if TestSigner.sign(&message) == cp.signature {
        Ok(())
    } else {
        Err("bad signature".to_owned())
    }
}

fn chain_options(every: u64) -> StoreOptions {
    StoreOptions {
        migrate: true,
        audit_chain: AuditChainOptions {
            checkpoint_every_records: every,
            checkpoint_every_s: 3_600,
            signer: Some(Arc::new(TestSigner)),
            ..AuditChainOptions::default()
        },
        ..StoreOptions::default()
    }
}

async fn open_chained(db: &TestDb, every: u64) -> Arc<dyn Store> {
    store::open(&db.url, &chain_options(every)).await.unwrap()
}

/// A store with the chain off: its records stay unlinked, as an older database holds.
async fn open_unchained(db: &TestDb) -> Arc<dyn Store> {
    let off = StoreOptions {
        migrate: true,
        audit_chain: AuditChainOptions {
            enabled: false,
            ..AuditChainOptions::default()
        },
        ..StoreOptions::default()
    };
    store::open(&db.url, &off).await.unwrap()
}

/// Runs the chainer until nothing is left unlinked.
async fn settle(store: &dyn Store) {
    for _ in 0..1_000 {
        store.audit_chain_tick().await.unwrap();
        if store.audit_unlinked().await.unwrap().count == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the chainer did not link everything");
}

/// `n` records, one write each, checkpointed every `every`, all linked.
async fn chain_of(db: &TestDb, n: usize, every: u64) -> Arc<dyn Store> {
    let store = open_chained(db, every).await;
    for i in 0..n {
        let mut r = record("client:erp", "payment.create", &format!("payment:{i}"));
        r.details = serde_json::json!({"n": i});
        store.append_audit(r).await.unwrap();
        // On PostgreSQL the chainer runs beside the writes, as the gateway runs it.
        if i % 3 == 0 {
            store.audit_chain_tick().await.unwrap();
        }
    }
    settle(store.as_ref()).await;
    store
}

async fn verify(
    store: &dyn Store,
    head: Option<&AuditCheckpoint>,
) -> Result<VerifyReport, ChainBreak> {
    audit::verify(store, &check_signature, head, &mut |_, _| {})
        .await
        .unwrap()
}

/// A blob literal in this database's SQL.
fn blob(db: &TestDb, bytes: &[u8]) -> String {
    match db.backend() {
        Backend::Sqlite => format!("X'{}'", audit::to_hex(bytes)),
        Backend::Postgres => format!("'\\x{}'::bytea", audit::to_hex(bytes)),
    }
}

/// On SQLite: the last writes are still in the WAL, not checkpointed into the main file.
fn assert_wal_holds_writes(db: &TestDb) {
    if let Kind::Sqlite { path, .. } = &db.kind {
        let wal = path.with_extension("db-wal");
        let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{} should hold the last writes", wal.display());
    }
}

async fn tamper(db: &TestDb, sqls: &[String]) {
    assert_wal_holds_writes(db);
    for sql in sqls {
        db.execute_raw(sql).await;
    }
    assert_wal_holds_writes(db);
}

pub(crate) async fn chain_links_every_record_in_commit_order_and_verifies(db: TestDb) {
    let store = open_chained(&db, 10).await;
    // Concurrent writers: on SQLite they share group commits, on PostgreSQL they commit
    // one by one under the audit-order lock; either way one chain in commit order.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                let r = record("client:erp", "payment.create", &format!("p:{t}:{i}"));
                ids.push(store.append_audit(r).await.unwrap());
            }
            ids
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    settle(store.as_ref()).await;
    let report = verify(store.as_ref(), None).await.unwrap();
    assert_eq!(report.records, 200);
    assert_eq!(report.unlinked, 0);
    assert!(report.checkpoints >= 1, "a checkpoint every 10 records");
    let page = store.audit_chain_page(0, 1_000).await.unwrap();
    assert_eq!(page.len(), 200);
    for (i, w) in page.windows(2).enumerate() {
        assert_eq!(w[0].position, i as i64 + 1);
        assert!(w[0].fields.id < w[1].fields.id, "positions follow ids");
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    let latest = store.latest_audit_checkpoint().await.unwrap().unwrap();
    assert!(latest.position <= 200);
    check_signature(&latest).unwrap();
    store.close().await;
}

/// Records of every shape the encoding distinguishes (`records_of_every_shape`) are linked
/// as they are appended exactly as the verifier, reading them back, hashes them: what the
/// database stores (JSON text, instants, UTF-8) is what the appender hashed.
pub(crate) async fn chain_links_records_of_any_text_as_the_verifier_hashes_them(db: TestDb) {
    let store = open_chained(&db, 1_000).await;
    let records = records_of_every_shape();
    for r in &records {
        store.append_audit(r.clone()).await.unwrap();
    }
    assert_eq!(
        store.audit_unlinked().await.unwrap().count,
        0,
        "linked as appended, not by the chainer"
    );
    let report = verify(store.as_ref(), None).await.unwrap();
    assert_eq!(report.records, records.len() as i64);
    assert_eq!(report.unlinked, 0);
    let page = store.audit_chain_page(0, 100).await.unwrap();
    assert_hashes_recompute(&page);
    store.close().await;
}

/// Each record's stored hash is what `record_hash` computes from what was read back.
fn assert_hashes_recompute(page: &[audit::ChainedRecord]) {
    for rec in page {
        let prev: AuditHash = rec.prev_hash.as_slice().try_into().unwrap();
        assert_eq!(
            record_hash(&prev, rec.position, &rec.fields).to_vec(),
            rec.hash,
            "position {}",
            rec.position
        );
    }
}

/// PostgreSQL's payment intake links its audit records in the server
/// (`audit_append_linked`, migration 0016), with SQL that writes the encoding of `audit.rs`
/// a second time. Records of every shape that encoding distinguishes, appended in turn by
/// the store's own path and by the server's (one record a call, and two in one call, the
/// second linked after the first), make one chain that the verifier accepts, every hash
/// recomputed in Rust from what was read back. Then records appended with the chain off
/// stay unlinked, and the server's append behind them leaves its records for the chainer,
/// which links them all.
pub(crate) async fn chain_links_in_the_server_as_the_store_does(db: TestDb) {
    use sqlx::Connection;
    // The store's audit-order lock ("bdaudit" in ASCII, `postgres.rs`).
    const AUDIT_ORDER_LOCK_KEY: i64 = 0x0062_6461_7564_6974;
    let store = open_chained(&db, 1_000).await;
    let server_append = |records: Vec<store::NewAuditRecord>, link: bool| {
        let url = db.url.clone();
        async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let setting = if link { "on" } else { "off" };
            sqlx::query("SELECT set_config('bankdirect.audit_link', $1, false)")
                .bind(setting)
                .execute(&mut conn)
                .await
                .unwrap();
            let ats: Vec<_> = records.iter().map(|r| r.at).collect();
            let actors: Vec<_> = records.iter().map(|r| r.actor.clone()).collect();
            let actions: Vec<_> = records.iter().map(|r| r.action.clone()).collect();
            let objects: Vec<_> = records.iter().map(|r| r.object.clone()).collect();
            let requests: Vec<_> = records.iter().map(|r| r.request_id.clone()).collect();
            let outcomes: Vec<_> = records.iter().map(|r| r.outcome.clone()).collect();
            let details: Vec<_> = records.iter().map(|r| r.details.to_string()).collect();
            let ids: Vec<i64> =
                sqlx::query_scalar("SELECT audit_append_linked($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(AUDIT_ORDER_LOCK_KEY)
                    .bind(&ats)
                    .bind(&actors)
                    .bind(&actions)
                    .bind(&objects)
                    .bind(&requests)
                    .bind(&outcomes)
                    .bind(&details)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            assert_eq!(ids.len(), records.len());
            conn.close().await.unwrap();
        }
    };
    let records = records_of_every_shape();
    assert_eq!(records.len(), 6);
    // Store, server, store, server (two records in one call).
    store.append_audit(records[0].clone()).await.unwrap();
    server_append(vec![records[1].clone()], true).await;
    store.append_audit(records[2].clone()).await.unwrap();
    server_append(vec![records[3].clone(), records[4].clone()], true).await;
    store.append_audit(records[5].clone()).await.unwrap();
    // An empty call takes nothing and writes nothing.
    server_append(Vec::new(), true).await;
    assert_eq!(
        store.audit_unlinked().await.unwrap().count,
        0,
        "linked as appended, not by the chainer"
    );
    let report = verify(store.as_ref(), None).await.unwrap();
    assert_eq!(report.records, 6);
    assert_eq!(report.unlinked, 0);
    let page = store.audit_chain_page(0, 100).await.unwrap();
    assert_eq!(page.len(), 6);
    for (rec, written) in page.iter().zip(&records) {
        assert_eq!(rec.fields.actor, written.actor);
        assert_eq!(rec.fields.request_id, written.request_id);
    }
    assert_hashes_recompute(&page);

    // Behind a record that is not linked (the chain off), the server's append goes in
    // unlinked too, and the chainer links both after the chain.
    server_append(vec![records[0].clone()], false).await;
    server_append(vec![records[1].clone(), records[2].clone()], true).await;
    assert_eq!(store.audit_unlinked().await.unwrap().count, 3);
    settle(store.as_ref()).await;
    let report = verify(store.as_ref(), None).await.unwrap();
    assert_eq!(report.records, 9);
    assert_eq!(report.unlinked, 0);
    store.close().await;
}

/// Records of every shape the encoding distinguishes: no request id and one; text beyond
/// ASCII (and beyond the BMP) in every field; quotes, backslashes, a newline and a control
/// character; one-character fields; instants with microseconds, before and long after 2000
/// and at the epoch; JSON details with nesting, escapes and text beyond ASCII.
fn records_of_every_shape() -> Vec<store::NewAuditRecord> {
    let texts = [
        ("client:erp", "payment.create", "payment:1", None),
        ("用户:财务部", "付款.审批", "payment:付款-2", Some("req-二")),
        ("client:😀", "payment.cancel", "payment:é-3", Some("ß")),
        (
            "operator:o'brien",
            "audit.\\read",
            "object:\"quoted\"",
            Some("r\n1"),
        ),
        ("a", "b", "c", Some("d")),
        ("client:erp", "payment.create", "payment:6", None),
    ];
    let instants = [
        instant_at(1_999_999_999, 999_999),
        instant_at(946_684_799, 1),
        instant_at(4_102_444_800, 500_000),
        instant_at(1_700_000_000, 0),
        instant_at(0, 7),
        instant_at(1_800_000_000, 123_456),
    ];
    texts
        .iter()
        .zip(instants)
        .enumerate()
        .map(|(n, ((actor, action, object, request_id), at))| {
            let mut r = record(actor, action, object);
            r.at = at;
            r.request_id = request_id.map(str::to_owned);
            r.details = serde_json::json!({
                "n": n,
                "备注": "工资 ¥100.00 — «ok»",
                "nested": {"list": [1, "二", null, true], "empty": {}, "esc": "a\"b\\c\u{1}"},
            });
            r
        })
        .collect()
}

fn instant_at(seconds: i64, micros: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(seconds, micros * 1_000).unwrap()
}

pub(crate) async fn chain_links_records_written_before_it_existed(db: TestDb) {
    // A store with the chain off writes unlinked records, as an older database holds.
    let store = open_unchained(&db).await;
    for i in 0..30 {
        store
            .append_audit(record("client:erp", "x", &format!("o:{i}")))
            .await
            .unwrap();
    }
    assert_eq!(store.audit_unlinked().await.unwrap().count, 30);
    store.close().await;
    let store = open_chained(&db, 1_000).await;
    settle(store.as_ref()).await;
    let report = verify(store.as_ref(), None).await.unwrap();
    assert_eq!(report.records, 30);
    assert_eq!(
        report.latest_checkpoint,
        Some(30),
        "the first checkpoint is signed at once"
    );
    store.close().await;
}

pub(crate) async fn chain_appends_wait_behind_a_backlog_then_link_as_written(db: TestDb) {
    let store = open_unchained(&db).await;
    for i in 0..10 {
        store
            .append_audit(record("client:erp", "x", &format!("old:{i}")))
            .await
            .unwrap();
    }
    store.close().await;
    let store = open_chained(&db, 1_000).await;
    for i in 0..3 {
        store
            .append_audit(record("client:erp", "x", &format!("behind:{i}")))
            .await
            .unwrap();
    }
    let unlinked = store.audit_unlinked().await.unwrap().count;
    match db.backend() {
        // No chainer run yet: the appends did not link past the backlog.
        Backend::Postgres => assert_eq!(unlinked, 13),
        // The writer's chainer worked the backlog off at the end of each batch.
        Backend::Sqlite => assert_eq!(unlinked, 0),
    }
    settle(store.as_ref()).await;
    for i in 0..5 {
        store
            .append_audit(record("client:erp", "x", &format!("linked:{i}")))
            .await
            .unwrap();
        // Still no chainer run on PostgreSQL: each append linked itself.
        assert_eq!(store.audit_unlinked().await.unwrap().count, 0);
    }
    let report = verify(store.as_ref(), None).await.unwrap();
    assert_eq!(report.records, 18);
    let page = store.audit_chain_page(0, 100).await.unwrap();
    assert_eq!(page.len(), 18);
    for (i, w) in page.windows(2).enumerate() {
        assert_eq!(w[0].position, i as i64 + 1);
        assert!(w[0].fields.id < w[1].fields.id, "positions follow ids");
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    store.close().await;
}

pub(crate) async fn tamper_a_changed_field_is_caught(db: TestDb) {
    let store = chain_of(&db, 12, 5).await;
    tamper(
        &db,
        &["UPDATE audit_log SET outcome = 'denied' WHERE position = 7".to_owned()],
    )
    .await;
    let found = verify(store.as_ref(), None).await.unwrap_err();
    assert!(
        matches!(found, ChainBreak::HashMismatch { position: 7, .. }),
        "{found}"
    );
    store.close().await;
}

pub(crate) async fn tamper_a_deleted_record_is_caught(db: TestDb) {
    let store = chain_of(&db, 12, 5).await;
    tamper(
        &db,
        &["DELETE FROM audit_log WHERE position = 4".to_owned()],
    )
    .await;
    let found = verify(store.as_ref(), None).await.unwrap_err();
    assert_eq!(
        found,
        ChainBreak::Missing {
            expected: 4,
            found: 5
        },
        "{found}"
    );
    store.close().await;
}

pub(crate) async fn tamper_two_swapped_records_are_caught(db: TestDb) {
    let store = chain_of(&db, 12, 5).await;
    // The rows of positions 6 and 7 trade places, hashes and all.
    tamper(
        &db,
        &[
            "UPDATE audit_log SET position = 1000006 WHERE position = 6".to_owned(),
            "UPDATE audit_log SET position = 6 WHERE position = 7".to_owned(),
            "UPDATE audit_log SET position = 7 WHERE position = 1000006".to_owned(),
        ],
    )
    .await;
    let found = verify(store.as_ref(), None).await.unwrap_err();
    assert!(
        matches!(found, ChainBreak::PrevHashMismatch { position: 6, .. }),
        "{found}"
    );
    store.close().await;
}

pub(crate) async fn tamper_two_swapped_contents_are_caught(db: TestDb) {
    let store = chain_of(&db, 12, 5).await;
    // The contents of positions 6 and 7 trade places; positions and hashes stay.
    let cast = match db.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => "::json",
    };
    let swap = format!(
        "UPDATE audit_log SET object = CASE position WHEN 6 THEN 'payment:6' ELSE 'payment:5' END, \
         details = (CASE position WHEN 6 THEN '{{\"n\":6}}' ELSE '{{\"n\":5}}' END){cast} \
         WHERE position IN (6, 7)"
    );
    tamper(&db, &[swap]).await;
    let found = verify(store.as_ref(), None).await.unwrap_err();
    assert!(
        matches!(found, ChainBreak::HashMismatch { position: 6, .. }),
        "{found}"
    );
    store.close().await;
}

pub(crate) async fn tamper_an_inserted_record_is_caught(db: TestDb) {
    let store = chain_of(&db, 12, 100).await;
    // A careful forger: positions from 5 on move up by one, and the new record at 5 is
    // linked correctly after position 4 (the hash function is public).
    let page = store.audit_chain_page(3, 1).await.unwrap();
    let prev: AuditHash = page[0].hash.as_slice().try_into().unwrap();
    let mut fields = page[0].fields.clone();
    fields.id = 1_000_000;
    fields.object = "payment:forged".to_owned();
    let hash = record_hash(&prev, 5, &fields);
    let at = match db.backend() {
        Backend::Sqlite => "'2024-05-01T08:00:00.123456Z'".to_owned(),
        Backend::Postgres => "'2024-05-01T08:00:00.123456Z'::timestamptz".to_owned(),
    };
    let overriding = match db.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => " OVERRIDING SYSTEM VALUE",
    };
    tamper(
        &db,
        &[
            "UPDATE audit_log SET position = position + 1000000 WHERE position >= 5".to_owned(),
            "UPDATE audit_log SET position = position - 999999 WHERE position > 1000000".to_owned(),
            format!(
                "INSERT INTO audit_log (id, at, actor, action, object, request_id, outcome, \
                 details, position, prev_hash, hash){overriding} VALUES (1000000, {at}, 'client:erp', \
                 'payment.create', 'payment:forged', 'req-1', 'ok', '{}', 5, {}, {})",
                fields.details,
                blob(&db, &prev),
                blob(&db, &hash)
            ),
        ],
    )
    .await;
    let found = verify(store.as_ref(), None).await.unwrap_err();
    // The forged record itself links, but ids no longer follow commit order there, and the
    // record after it does not name it as its predecessor.
    assert!(
        matches!(
            found,
            ChainBreak::PrevHashMismatch { position: 6, .. }
                | ChainBreak::IdOutOfOrder { position: 6, .. }
                | ChainBreak::HashMismatch { position: 5, .. }
        ),
        "{found}"
    );
    store.close().await;
}

/// Rewrites the chain from `from` on with correct hashes, as someone who can write to the
/// database but lacks the checkpoint key can.
async fn recompute_from(db: &TestDb, store: &dyn Store, from: i64) {
    let page = store.audit_chain_page(0, 10_000).await.unwrap();
    let mut prev: AuditHash = audit::GENESIS_HASH;
    let mut sqls = Vec::new();
    for rec in page {
        if rec.position >= from {
            let hash = record_hash(&prev, rec.position, &rec.fields);
            sqls.push(format!(
                "UPDATE audit_log SET prev_hash = {}, hash = {} WHERE position = {}",
                blob(db, &prev),
                blob(db, &hash),
                rec.position
            ));
            prev = hash;
        } else {
            prev = rec.hash.as_slice().try_into().unwrap();
        }
    }
    tamper(db, &sqls).await;
}

pub(crate) async fn tamper_a_recomputed_chain_is_caught_by_the_signed_checkpoints(db: TestDb) {
    let store = chain_of(&db, 20, 5).await;
    let checkpoints = store.audit_checkpoints(0, 100).await.unwrap();
    assert!(checkpoints.iter().any(|c| c.position >= 8));
    tamper(
        &db,
        &["UPDATE audit_log SET outcome = 'denied' WHERE position = 8".to_owned()],
    )
    .await;
    recompute_from(&db, store.as_ref(), 8).await;
    let found = verify(store.as_ref(), None).await.unwrap_err();
    let first_after = checkpoints
        .iter()
        .find(|c| c.position >= 8)
        .unwrap()
        .position;
    assert_eq!(
        found,
        ChainBreak::CheckpointMismatch {
            position: first_after
        },
        "{found}"
    );
    // Re-signing without the key does not help either.
    let forged = format!(
        "UPDATE audit_checkpoints SET signature = {} WHERE position = {first_after}",
        blob(&db, &[7; 32])
    );
    tamper(&db, &[forged]).await;
    let found = verify(store.as_ref(), None).await.unwrap_err();
    assert!(
        matches!(found, ChainBreak::BadCheckpointSignature { position, .. } if position == first_after),
        "{found}"
    );
    store.close().await;
}

pub(crate) async fn tamper_a_cut_tail_is_caught_against_an_exported_head(db: TestDb) {
    let store = chain_of(&db, 20, 5).await;
    let head = store.latest_audit_checkpoint().await.unwrap().unwrap();
    assert_eq!(
        verify(store.as_ref(), Some(&head)).await.unwrap().records,
        20
    );
    // The tail and the checkpoints that covered it go: what is left is a valid chain.
    let keep = head.position - 7;
    tamper(
        &db,
        &[
            format!("DELETE FROM audit_log WHERE position > {keep}"),
            format!("DELETE FROM audit_checkpoints WHERE position > {keep}"),
        ],
    )
    .await;
    let shorter = verify(store.as_ref(), None).await.unwrap();
    assert_eq!(shorter.records, keep, "alone, a cut chain still links");
    let found = verify(store.as_ref(), Some(&head)).await.unwrap_err();
    assert_eq!(
        found,
        ChainBreak::CutOff {
            end: keep,
            expected: head.position,
            by: "the exported head"
        },
        "{found}"
    );
    store.close().await;
}

pub(crate) async fn tamper_a_cut_tail_under_a_checkpoint_is_caught(db: TestDb) {
    let store = chain_of(&db, 20, 5).await;
    let head = store.latest_audit_checkpoint().await.unwrap().unwrap();
    tamper(
        &db,
        &[format!(
            "DELETE FROM audit_log WHERE position > {}",
            head.position - 2
        )],
    )
    .await;
    let found = verify(store.as_ref(), None).await.unwrap_err();
    assert!(
        matches!(
            found,
            ChainBreak::CutOff {
                by: "a signed checkpoint",
                ..
            }
        ),
        "{found}"
    );
    store.close().await;
}

pub(crate) async fn chain_two_stores_writing_at_once_make_one_chain(db: TestDb) {
    // Two gateway instances on one database (on SQLite: two processes' worth of stores on
    // one file, each with its own writer; SQLite's file lock serialises their commits).
    let a = open_chained(&db, 25).await;
    let b = open_chained(&db, 25).await;
    let mut tasks = Vec::new();
    for (n, store) in [Arc::clone(&a), Arc::clone(&b)].into_iter().enumerate() {
        for t in 0..4 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for i in 0..40 {
                    let r = record("client:erp", "payment.create", &format!("s{n}:{t}:{i}"));
                    store.append_audit(r).await.unwrap();
                }
            }));
        }
        // Each instance's chainer runs beside its writes, as the gateway runs it.
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..60 {
                store.audit_chain_tick().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    settle(a.as_ref()).await;
    settle(b.as_ref()).await;
    let report = verify(a.as_ref(), None).await.unwrap();
    assert_eq!(report.records, 320, "every record in one chain");
    assert_eq!(report.unlinked, 0);
    let page = a.audit_chain_page(0, 1_000).await.unwrap();
    let positions: std::collections::BTreeSet<i64> = page.iter().map(|r| r.position).collect();
    assert_eq!(positions.len(), 320, "no position twice: no fork");
    a.close().await;
    b.close().await;
}

pub(crate) async fn chain_checkpoints_every_n_records_or_after_t_seconds(db: TestDb) {
    let clock = Arc::new(domain::ManualClock::new(crate::instant(0, 0)));
    let opts = StoreOptions {
        migrate: true,
        audit_chain: AuditChainOptions {
            checkpoint_every_records: 4,
            checkpoint_every_s: 60,
            signer: Some(Arc::new(TestSigner)),
            clock: clock.clone(),
            ..AuditChainOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = store::open(&db.url, &opts).await.unwrap();
    let append = |n: usize| {
        let store = Arc::clone(&store);
        async move {
            for i in 0..n {
                store
                    .append_audit(record("client:erp", "x", &format!("o:{i}")))
                    .await
                    .unwrap();
            }
            settle(store.as_ref()).await;
        }
    };
    let positions = |cps: Vec<AuditCheckpoint>| cps.iter().map(|c| c.position).collect::<Vec<_>>();
    append(1).await;
    // The first is signed at once; then every 4 records.
    assert_eq!(
        positions(store.audit_checkpoints(0, 100).await.unwrap()),
        [1]
    );
    append(2).await;
    assert_eq!(
        positions(store.audit_checkpoints(0, 100).await.unwrap()),
        [1]
    );
    append(2).await;
    assert_eq!(
        positions(store.audit_checkpoints(0, 100).await.unwrap()),
        [1, 5]
    );
    // One more record, and time passes: a run of the chainer signs it.
    append(1).await;
    store.audit_chain_tick().await.unwrap();
    assert_eq!(
        positions(store.audit_checkpoints(0, 100).await.unwrap()),
        [1, 5]
    );
    clock.advance(chrono::Duration::seconds(61));
    let tick = store.audit_chain_tick().await.unwrap();
    assert_eq!(tick.checkpoint, Some(6));
    let latest = store.latest_audit_checkpoint().await.unwrap().unwrap();
    assert_eq!(latest.position, 6);
    assert_eq!(latest.at, crate::instant(61, 0));
    // Nothing new: time alone signs nothing.
    clock.advance(chrono::Duration::seconds(120));
    assert_eq!(store.audit_chain_tick().await.unwrap().checkpoint, None);
    assert_eq!(
        verify(store.as_ref(), Some(&latest)).await.unwrap().records,
        6
    );
    store.close().await;
}
