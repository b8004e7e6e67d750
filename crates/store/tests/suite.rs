#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The store suite: one set of tests over `Arc<dyn Store>`, run on both backends.
//!
//! `suite!` turns each generic test below into `sqlite::<name>` (a fresh file in a temp
//! dir) and `postgres::<name>` (a fresh database `bd_test_<random>` created on the server
//! named by `BANKDIRECT_TEST_PG_URL` and dropped afterwards, so tests run in parallel).
//! Without that variable the PostgreSQL tests fail, never pass silently. SQLite-only
//! behaviour (pragmas, group commit) follows the generic tests.
//!
//! Run: `scripts/pg-test.sh start && eval "$(scripts/pg-test.sh env)" && cargo test -p store`.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use domain::{AccountId, Currency, Money};
use futures::FutureExt;
use serde_json::json;
use sqlx::Connection;
use store::{
    AuditQuery, AuditRecord, Backend, BalanceSnapshot, NewAuditRecord, SqliteStore, Store,
    StoreError, StoreOptions, AUDIT_DETAILS_MAX_BYTES, AUDIT_TEXT_MAX_CHARS,
};

/// Every test, setup and clean-up included, must finish within this.
const TEST_TIMEOUT_S: u64 = 120;
const PG_URL_VAR: &str = "BANKDIRECT_TEST_PG_URL";

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// One fresh database for one test; `open` may be called again to test reopening.
#[derive(Clone)]
struct TestDb {
    url: String,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Sqlite {
        path: PathBuf,
        _dir: Arc<tempfile::TempDir>,
    },
    Postgres,
}

impl TestDb {
    fn options() -> StoreOptions {
        StoreOptions {
            migrate: true,
            ..StoreOptions::default()
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        store::open(&self.url, &Self::options()).await.unwrap()
    }

    fn backend(&self) -> Backend {
        match self.kind {
            Kind::Sqlite { .. } => Backend::Sqlite,
            Kind::Postgres => Backend::Postgres,
        }
    }

    /// Runs SQL behind the store's back, to damage rows on purpose.
    async fn execute_raw(&self, sql: &str) {
        match &self.kind {
            Kind::Sqlite { path, .. } => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

/// Runs `test` bounded in time; a panic or timeout is re-raised after `cleanup`.
async fn run_bounded<Fut, C>(test: Fut, cleanup: C)
where
    Fut: Future<Output = ()>,
    C: Future<Output = ()>,
{
    let outcome = tokio::time::timeout(
        Duration::from_secs(TEST_TIMEOUT_S),
        std::panic::AssertUnwindSafe(test).catch_unwind(),
    )
    .await;
    cleanup.await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("test did not finish within {TEST_TIMEOUT_S} s"),
    }
}

async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: open must create it.
    let path = dir.path().join("data").join("bankdirect.db");
    let db = TestDb {
        url: format!("sqlite://{}", path.display()),
        kind: Kind::Sqlite {
            path,
            _dir: Arc::new(dir),
        },
    };
    run_bounded(test(db), async {}).await;
}

async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
        panic!(
            "{PG_URL_VAR} is not set: run `eval \"$(scripts/pg-test.sh env)\"` after `scripts/pg-test.sh start`"
        );
    };
    let name = format!("bd_test_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR}: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let db = TestDb {
        url: with_database(&admin_url, &name),
        kind: Kind::Postgres,
    };
    let cleanup = async move {
        // FORCE ends connections a failed test left open.
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
    };
    run_bounded(test(db), cleanup).await;
}

/// `postgres://user@host:port/admin_db?x` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap();
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run_sqlite(crate::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run_postgres(crate::$name).await;
                }
            )*
        }
    };
}

suite!(
    migrating_twice_is_fine,
    install_id_is_random_hex_and_stable_across_reopen,
    audit_records_round_trip_in_id_order_and_filter,
    audit_pages_forward_by_after_id,
    audit_fields_at_their_limit_pass_and_beyond_are_refused,
    save_balances_keeps_the_latest_snapshot_per_account_and_currency,
    save_balances_is_all_or_nothing,
    latest_balances_for_returns_one_account,
    a_row_with_an_unknown_currency_is_reported_as_corrupt,
    data_survives_close_and_reopen,
    concurrent_appends_are_all_stored_with_unique_ascending_ids,
    reingesting_the_same_entries_changes_nothing_and_keeps_ids,
    identical_entries_are_kept_apart_only_by_their_dedupe_keys,
    a_booked_entry_replaces_its_pending_one,
    paging_by_seq_returns_every_entry_once_while_entries_arrive,
    the_change_feed_spans_accounts_in_change_seq_order,
    concurrent_ingests_reach_a_polling_reader_exactly_once,
    entries_filter_by_booking_date_and_status,
    continuity_breaks_are_recorded_updated_and_cleared,
    sync_state_round_trips,
    ingest_is_all_or_nothing,
    entry_fields_at_their_limit_pass_and_beyond_are_refused,
    a_damaged_entry_row_is_reported_as_corrupt,
    payments_create_replay_key_reuse_and_in_progress,
    payments_fifty_concurrent_creates_with_one_key_make_one_payment,
    payments_a_burst_of_creates_is_stored_once_each_with_every_case_answered,
    payments_a_burst_of_status_changes_keeps_each_outcome,
    payments_several_changes_apply_together_or_not_at_all,
    payments_several_changes_end_as_their_steps_one_by_one,
    payments_a_reused_end_to_end_id_is_refused_even_with_a_new_key,
    payments_transitions_record_history_and_refuse_stale_writers,
    payments_leases_expire_and_reclaims_draw_larger_tokens,
    payments_concurrent_claimers_get_disjoint_payments,
    payments_list_filters_and_pages_stably,
    payments_create_is_all_or_nothing,
    payments_purge_deletes_only_expired_keys,
    payments_a_stored_idempotency_key_reads_back,
    events_payment_changes_write_one_event_each,
    events_a_rolled_back_change_emits_nothing,
    events_booked_entries_notify_once,
    batches_create_replays_and_refuses_bad_sums,
    batches_chunks_walk_the_state_machine_with_per_item_results,
    batches_cancel_only_before_any_send,
    webhooks_are_registered_listed_and_deleted_per_client,
    webhooks_create_honours_the_idempotency_key_and_the_per_client_limit,
    webhooks_fan_out_makes_one_delivery_per_subscribed_webhook_once,
    webhooks_claims_keep_per_object_order_and_leases,
    webhooks_failures_end_dead_with_their_attempts_and_redrive_resets,
    webhooks_a_skipped_delivery_no_longer_holds_the_next_back,
    chain_links_every_record_in_commit_order_and_verifies,
    chain_links_records_of_any_text_as_the_verifier_hashes_them,
    chain_links_records_written_before_it_existed,
    chain_appends_wait_behind_a_backlog_then_link_as_written,
    chain_two_stores_writing_at_once_make_one_chain,
    chain_checkpoints_every_n_records_or_after_t_seconds,
    tamper_a_changed_field_is_caught,
    tamper_a_deleted_record_is_caught,
    tamper_two_swapped_records_are_caught,
    tamper_two_swapped_contents_are_caught,
    tamper_an_inserted_record_is_caught,
    tamper_a_recomputed_chain_is_caught_by_the_signed_checkpoints,
    tamper_a_cut_tail_is_caught_against_an_exported_head,
    tamper_a_cut_tail_under_a_checkpoint_is_caught,
    approvals_the_last_required_approval_queues_the_payment,
    approvals_a_decline_ends_the_payment,
    approvals_concurrent_approvers_each_count_and_queue_once,
    approvals_the_last_required_approval_queues_every_chunk_of_a_batch,
    approvals_a_declined_batch_cancels_every_item_and_sends_nothing,
    approvals_concurrent_batch_approvers_each_count_and_queue_once,
    resolutions_need_two_people_agreeing_on_one_state,
    resolutions_two_confirmers_at_once_confirm_once,
    exchanges_are_stored_with_their_audit_record,
    exchanges_refused_leave_no_audit_record,
    exchanges_references_resolve_to_their_payment,
    exchanges_a_burst_is_stored_once_each_and_a_faulty_one_fails_alone,
    exchanges_and_status_changes_in_one_burst_keep_their_outcomes,
);

// The statement tests live in their own file (not a test target of its own: cargo only
// picks up `tests/*.rs` and `tests/*/main.rs`); `suite!` finds them through this import.
#[path = "suite/statements.rs"]
mod statements;
use statements::*;

#[path = "suite/payments.rs"]
mod payments;
use payments::*;

#[path = "suite/batches.rs"]
mod batches;
use batches::*;

#[path = "suite/events.rs"]
mod events;
use events::*;

#[path = "suite/webhooks.rs"]
mod webhooks;
use webhooks::*;

#[path = "suite/audit_chain.rs"]
mod audit_chain;
use audit_chain::*;

#[path = "suite/approvals.rs"]
mod approvals;
use approvals::*;

#[path = "suite/exchanges.rs"]
mod exchanges;
use exchanges::*;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn instant(seconds: i64, micros: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(1_714_550_400 + seconds, micros * 1_000)
        .single()
        .unwrap()
}

fn record(actor: &str, action: &str, object: &str) -> NewAuditRecord {
    NewAuditRecord {
        at: instant(0, 123_456),
        actor: actor.to_owned(),
        action: action.to_owned(),
        object: object.to_owned(),
        request_id: Some("req-1".to_owned()),
        outcome: "ok".to_owned(),
        details: json!({"amount": "12.34", "account": "****6789", "nested": {"list": [1, 2]}}),
    }
}

fn account(id: &str) -> AccountId {
    AccountId::parse(id).unwrap()
}

fn snapshot(
    id: &str,
    currency: Currency,
    booked: i64,
    available: i64,
    at_s: i64,
) -> BalanceSnapshot {
    BalanceSnapshot {
        account_id: account(id),
        booked: Money::from_minor(booked, currency),
        available: Money::from_minor(available, currency),
        as_of: instant(at_s, 0),
        fetched_at: instant(at_s + 1, 500_000),
    }
}

async fn all_audit(store: &dyn Store) -> Vec<AuditRecord> {
    store
        .list_audit(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Generic tests
// ---------------------------------------------------------------------------------------

async fn migrating_twice_is_fine(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.backend(), db.backend());
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    store.append_audit(record("a", "x", "o")).await.unwrap();
    store.close().await;
}

async fn install_id_is_random_hex_and_stable_across_reopen(db: TestDb) {
    let store = db.open().await;
    let id = store.install_id().await.unwrap();
    assert_eq!(id.len(), 16, "{id}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{id}"
    );
    store.migrate().await.unwrap();
    assert_eq!(store.install_id().await.unwrap(), id);
    store.close().await;

    let reopened = db.open().await;
    assert_eq!(reopened.install_id().await.unwrap(), id);
    reopened.close().await;
}

async fn audit_records_round_trip_in_id_order_and_filter(db: TestDb) {
    let store = db.open().await;
    let mut nanos = record("alice", "payment.create", "payment:1");
    // Stored with microsecond precision on both backends.
    nanos.at = instant(0, 0) + chrono::Duration::nanoseconds(1_234_567);
    let inputs = [
        nanos,
        record("bob", "payment.approve", "payment:1"),
        NewAuditRecord {
            request_id: None,
            details: json!(null),
            ..record("alice", "balance.refresh", "account:main")
        },
        record("alice", "payment.approve", "payment:2"),
    ];
    let mut ids = Vec::new();
    for input in &inputs {
        ids.push(store.append_audit(input.clone()).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let all = all_audit(store.as_ref()).await;
    assert_eq!(all.len(), inputs.len());
    for ((stored, input), id) in all.iter().zip(&inputs).zip(&ids) {
        assert_eq!(stored.id, *id);
        assert_eq!(stored.actor, input.actor);
        assert_eq!(stored.action, input.action);
        assert_eq!(stored.object, input.object);
        assert_eq!(stored.request_id, input.request_id);
        assert_eq!(stored.outcome, input.outcome);
        assert_eq!(stored.details, input.details);
    }
    assert_eq!(all[0].at, instant(0, 1_234));
    assert_eq!(all[1].at, instant(0, 123_456));

    let by = |q: AuditQuery| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_audit(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let alice = by(AuditQuery {
        actor: Some("alice".to_owned()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(alice, [ids[0], ids[2], ids[3]]);
    let approvals = by(AuditQuery {
        action: Some("payment.approve".to_owned()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(approvals, [ids[1], ids[3]]);
    let payment_1 = by(AuditQuery {
        object: Some("payment:1".to_owned()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(payment_1, [ids[0], ids[1]]);
    let alice_approvals = by(AuditQuery {
        actor: Some("alice".to_owned()),
        action: Some("payment.approve".to_owned()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(alice_approvals, [ids[3]]);
    let nobody = by(AuditQuery {
        actor: Some("mallory".to_owned()),
        ..AuditQuery::default()
    })
    .await;
    assert!(nobody.is_empty());
    store.close().await;
}

async fn audit_pages_forward_by_after_id(db: TestDb) {
    let store = db.open().await;
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(
            store
                .append_audit(record("pager", "page.test", &format!("item:{n}")))
                .await
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    let mut after_id = None;
    loop {
        let page = store
            .list_audit(&AuditQuery {
                after_id,
                limit: 3,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after_id = page.last().map(|r| r.id);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen, ids);
    store.close().await;
}

async fn audit_fields_at_their_limit_pass_and_beyond_are_refused(db: TestDb) {
    let store = db.open().await;
    // Multi-byte characters: the limit counts characters on both backends, not bytes.
    let at_limit = "账".repeat(AUDIT_TEXT_MAX_CHARS);
    let over_limit = "账".repeat(AUDIT_TEXT_MAX_CHARS + 1);
    let full = NewAuditRecord {
        request_id: Some(at_limit.clone()),
        outcome: at_limit.clone(),
        ..record(&at_limit, &at_limit, &at_limit)
    };
    let id = store.append_audit(full).await.unwrap();
    let stored = all_audit(store.as_ref()).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, id);
    assert_eq!(stored[0].actor, at_limit);

    let base = record("limits", "limit.test", "limits");
    let refused = [
        (
            "actor",
            NewAuditRecord {
                actor: over_limit.clone(),
                ..base.clone()
            },
        ),
        (
            "action",
            NewAuditRecord {
                action: over_limit.clone(),
                ..base.clone()
            },
        ),
        (
            "object",
            NewAuditRecord {
                object: over_limit.clone(),
                ..base.clone()
            },
        ),
        (
            "outcome",
            NewAuditRecord {
                outcome: over_limit.clone(),
                ..base.clone()
            },
        ),
        (
            "request_id",
            NewAuditRecord {
                request_id: Some(over_limit.clone()),
                ..base.clone()
            },
        ),
        (
            "empty actor",
            NewAuditRecord {
                actor: String::new(),
                ..base.clone()
            },
        ),
        (
            "empty request_id",
            NewAuditRecord {
                request_id: Some(String::new()),
                ..base.clone()
            },
        ),
        (
            "NUL",
            NewAuditRecord {
                actor: "a\0b".to_owned(),
                ..base.clone()
            },
        ),
        (
            "details",
            NewAuditRecord {
                details: json!({ "blob": "x".repeat(AUDIT_DETAILS_MAX_BYTES) }),
                ..base.clone()
            },
        ),
    ];
    for (what, rec) in refused {
        let result = store.append_audit(rec).await;
        assert!(
            matches!(result, Err(StoreError::Invalid { .. })),
            "{what}: {result:?}"
        );
    }
    assert_eq!(all_audit(store.as_ref()).await.len(), 1);
    store.close().await;
}

async fn save_balances_keeps_the_latest_snapshot_per_account_and_currency(db: TestDb) {
    let store = db.open().await;
    let first = vec![
        snapshot("ops", Currency::USD, 500, 400, 10),
        snapshot("main", Currency::CNY, 1_000_000, 900_000, 10),
        // Overdraft: balances may be negative.
        snapshot("main", Currency::EUR, -2_500, 0, 10),
    ];
    store
        .save_balances(&first, record("sync", "balance.refresh", "bank:cmb"))
        .await
        .unwrap();
    let stored = store.latest_balances().await.unwrap();
    assert_eq!(
        stored,
        vec![first[1].clone(), first[2].clone(), first[0].clone()]
    );

    // A newer snapshot replaces; extremes of i64 survive.
    let newer = snapshot("main", Currency::CNY, i64::MAX, i64::MIN, 20);
    store
        .save_balances(
            std::slice::from_ref(&newer),
            record("sync", "balance.refresh", "bank:cmb"),
        )
        .await
        .unwrap();
    // An older one arriving late does not move the balance back, but is audited.
    let late = snapshot("main", Currency::CNY, 1, 1, 15);
    store
        .save_balances(&[late], record("sync", "balance.refresh", "bank:cmb"))
        .await
        .unwrap();
    let stored = store.latest_balances().await.unwrap();
    assert_eq!(stored, vec![newer, first[2].clone(), first[0].clone()]);
    assert_eq!(all_audit(store.as_ref()).await.len(), 3);

    // Booked and available in different currencies cannot be one snapshot.
    let mut mixed = snapshot("main", Currency::CNY, 1, 1, 30);
    mixed.available = Money::from_minor(1, Currency::USD);
    let result = store
        .save_balances(&[mixed], record("sync", "balance.refresh", "bank:cmb"))
        .await;
    assert!(
        matches!(result, Err(StoreError::Invalid { .. })),
        "{result:?}"
    );
    assert_eq!(all_audit(store.as_ref()).await.len(), 3);
    store.close().await;
}

async fn save_balances_is_all_or_nothing(db: TestDb) {
    let store = db.open().await;
    let before = vec![
        snapshot("main", Currency::CNY, 100, 100, 10),
        snapshot("main", Currency::USD, 7, 7, 10),
    ];
    store
        .save_balances(&before, record("sync", "balance.refresh", "bank:cmb"))
        .await
        .unwrap();

    // The audit insert comes after the upserts in the same transaction; the schema refuses
    // its over-long actor, so the upserts must be undone with it.
    let rejected_audit = NewAuditRecord {
        actor: "x".repeat(AUDIT_TEXT_MAX_CHARS + 1),
        ..record("sync", "balance.refresh", "bank:cmb")
    };
    let changes = vec![
        snapshot("main", Currency::CNY, 999, 999, 20),
        snapshot("other", Currency::JPY, 5, 5, 20),
    ];
    let result = store.save_balances(&changes, rejected_audit).await;
    assert!(
        matches!(result, Err(StoreError::Invalid { .. })),
        "{result:?}"
    );

    assert_eq!(store.latest_balances().await.unwrap(), before);
    assert_eq!(all_audit(store.as_ref()).await.len(), 1);
    store.close().await;
}

async fn latest_balances_for_returns_one_account(db: TestDb) {
    let store = db.open().await;
    let snapshots = vec![
        snapshot("main", Currency::USD, 1, 1, 10),
        snapshot("main", Currency::CNY, 2, 2, 10),
        snapshot("main-2", Currency::CNY, 3, 3, 10),
        snapshot("ops", Currency::HKD, 4, 4, 10),
    ];
    store
        .save_balances(&snapshots, record("sync", "balance.refresh", "bank:cmb"))
        .await
        .unwrap();
    let main = store.latest_balances_for(&account("main")).await.unwrap();
    assert_eq!(main, vec![snapshots[1].clone(), snapshots[0].clone()]);
    let none = store
        .latest_balances_for(&account("unknown"))
        .await
        .unwrap();
    assert!(none.is_empty());
    store.close().await;
}

async fn a_row_with_an_unknown_currency_is_reported_as_corrupt(db: TestDb) {
    let store = db.open().await;
    store
        .save_balances(
            &[snapshot("main", Currency::CNY, 1, 1, 10)],
            record("sync", "balance.refresh", "bank:cmb"),
        )
        .await
        .unwrap();
    db.execute_raw("UPDATE balance_snapshots SET currency = 'QQQ'")
        .await;
    let result = store.latest_balances().await;
    assert!(
        matches!(
            result,
            Err(StoreError::Corrupt {
                table: "balance_snapshots",
                column: "currency",
                ..
            })
        ),
        "{result:?}"
    );
    store.close().await;
}

async fn data_survives_close_and_reopen(db: TestDb) {
    let store = db.open().await;
    let id = store
        .append_audit(record("alice", "payment.create", "payment:1"))
        .await
        .unwrap();
    let balances = vec![snapshot("main", Currency::CNY, 42, 40, 10)];
    store
        .save_balances(&balances, record("sync", "balance.refresh", "bank:cmb"))
        .await
        .unwrap();
    store.close().await;
    store.close().await;
    let after_close = store
        .append_audit(record("alice", "payment.create", "payment:2"))
        .await;
    assert!(
        matches!(after_close, Err(StoreError::Closed)),
        "{after_close:?}"
    );

    let reopened = db.open().await;
    let audit = all_audit(reopened.as_ref()).await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].id, id);
    assert_eq!(reopened.latest_balances().await.unwrap(), balances);
    reopened.close().await;
}

/// Appends `count` records at once from separate tasks; returns their ids.
async fn append_concurrently(store: &Arc<dyn Store>, count: usize) -> Vec<i64> {
    let tasks: Vec<_> = (0..count)
        .map(|n| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                store
                    .append_audit(record("crowd", "load.test", &format!("item:{n}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(count);
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids
}

async fn concurrent_appends_are_all_stored_with_unique_ascending_ids(db: TestDb) {
    const WRITERS: usize = 200;
    let store = db.open().await;
    let ids = append_concurrently(&store, WRITERS).await;
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), WRITERS);

    let stored = all_audit(store.as_ref()).await;
    assert_eq!(stored.len(), WRITERS);
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    let stored_ids: HashSet<i64> = stored.iter().map(|r| r.id).collect();
    assert_eq!(stored_ids, unique);
    let objects: HashSet<&str> = stored.iter().map(|r| r.object.as_str()).collect();
    assert_eq!(objects.len(), WRITERS);
    store.close().await;
}

// ---------------------------------------------------------------------------------------
// SQLite only
// ---------------------------------------------------------------------------------------

async fn open_sqlite(dir: &tempfile::TempDir, opts: &StoreOptions) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(&dir.path().join("bankdirect.db"), opts)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn sqlite_writer_runs_in_wal_mode_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        busy_timeout_ms: 1_234,
        ..StoreOptions::default()
    };
    let store = open_sqlite(&dir, &opts).await;
    let pragmas = store.writer_pragmas().await.unwrap();
    assert_eq!(pragmas.journal_mode, "wal");
    assert_eq!(pragmas.synchronous, 2);
    assert!(pragmas.foreign_keys);
    assert_eq!(pragmas.busy_timeout_ms, 1_234);
    store.close().await;

    // WAL is a property of the file: a fresh connection that sets nothing sees it.
    let options =
        sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("bankdirect.db"));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    conn.close().await.unwrap();
}

/// The WAL is copied back into the database file by the checkpointer, beside the writer,
/// long before the writer's own backstop (20,000 pages) would: the database file grows
/// while the store is open and writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_is_checkpointed_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = open_sqlite(&dir, &StoreOptions::default()).await;
    let store: Arc<dyn Store> = sqlite.clone();
    let db = dir.path().join("bankdirect.db");
    let wal = dir.path().join("bankdirect.db-wal");
    // Whatever the migrations left in the WAL is checkpointed first.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let size_before = std::fs::metadata(&db).unwrap().len();
    // A few hundred pages of writes: far below the writer's backstop.
    append_concurrently(&store, 2_000).await;
    let wal_size = std::fs::metadata(&wal).unwrap().len();
    assert!(wal_size > 0, "the writes went to the WAL");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let size = std::fs::metadata(&db).unwrap().len();
        if size > size_before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file never grew ({size_before} bytes): nothing checkpointed the WAL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writes_share_commits() {
    const WRITERS: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = open_sqlite(&dir, &StoreOptions::default()).await;
    let store: Arc<dyn Store> = sqlite.clone();
    let before = sqlite.writer_stats();
    let ids = append_concurrently(&store, WRITERS).await;
    let after = sqlite.writer_stats();

    assert_eq!(ids.iter().copied().collect::<HashSet<_>>().len(), WRITERS);
    let mut stored = 0;
    let mut after_id = None;
    loop {
        let page = store
            .list_audit(&AuditQuery {
                after_id,
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after_id = Some(last.id);
        stored += page.len();
    }
    assert_eq!(stored, WRITERS);
    let jobs = after.jobs - before.jobs;
    let commits = after.commits - before.commits;
    assert_eq!(jobs, WRITERS as u64);
    assert!(
        commits < jobs,
        "{commits} commits for {jobs} jobs: no group commit"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refused_writes_among_concurrent_ones_do_not_lose_the_others() {
    const WRITERS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = open_sqlite(&dir, &StoreOptions::default()).await;
    let store: Arc<dyn Store> = sqlite.clone();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                // Every third write breaks the schema's actor limit.
                let actor = if n % 3 == 0 {
                    "x".repeat(AUDIT_TEXT_MAX_CHARS + 1)
                } else {
                    format!("writer-{n}")
                };
                (
                    n,
                    store
                        .append_audit(record(&actor, "load.test", "mixed"))
                        .await,
                )
            })
        })
        .collect();
    let mut accepted = HashSet::new();
    for task in tasks {
        let (n, result) = task.await.unwrap();
        if n % 3 == 0 {
            assert!(
                matches!(result, Err(StoreError::Invalid { .. })),
                "{n}: {result:?}"
            );
        } else {
            result.unwrap();
            accepted.insert(format!("writer-{n}"));
        }
    }
    let stored: HashSet<String> = all_audit(store.as_ref())
        .await
        .into_iter()
        .map(|r| r.actor)
        .collect();
    assert_eq!(stored, accepted);
    let stats = sqlite.writer_stats();
    assert!(stats.commits < stats.jobs, "{stats:?}");
    store.close().await;
}

/// Schema 14 (PostgreSQL) keeps the events still to fan out in a queue instead of
/// marking each one. A database written under schema 13 with events already fanned out
/// (marked) and events not yet fanned out upgrades with exactly the unmarked ones queued,
/// and an event appended afterwards is queued by the trigger.
#[tokio::test]
async fn postgres_schema_14_queues_the_events_not_yet_fanned_out() {
    run_postgres(|db| async move {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        migrations_up_to("postgres", 13)
            .await
            .run(&pool)
            .await
            .unwrap();
        let at = instant(0, 0);
        sqlx::query(
            "INSERT INTO webhooks (id, client_id, url, secret, event_types, created_at) \
             VALUES ('whk_legacy', 'erp', 'https://erp.example/hooks', $1, \
                     '[\"payment.status_changed\"]', $2)",
        )
        .bind("s".repeat(40))
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
        let append = |n: u32, fanned: Option<DateTime<Utc>>| {
            sqlx::query(
                "INSERT INTO events (id, type, version, object_type, object_id, object_seq, \
                   account_id, occurred_at, data, fanned_out_at) \
                 VALUES ($1, 'payment.status_changed', 1, 'payment', $2, 1, 'east-1', $3, \
                         '{}', $4)",
            )
            .bind(format!("evt_pay_{n}_1"))
            .bind(format!("pay_{n}"))
            .bind(at)
            .bind(fanned)
        };
        // Events 1-3 fanned out before the upgrade, 4-5 not yet.
        for n in 1..=5 {
            let fanned = (n <= 3).then_some(at);
            append(n, fanned).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let store = db.open().await;
        let now = instant(3_600, 0);
        let first = store.fan_out_events(now, 100).await.unwrap();
        assert_eq!((first.events, first.deliveries), (2, 2), "{first:?}");
        let again = store.fan_out_events(now, 100).await.unwrap();
        assert_eq!((again.events, again.deliveries), (0, 0), "{again:?}");
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        append(6, None).execute(&pool).await.unwrap();
        pool.close().await;
        let appended = store.fan_out_events(now, 100).await.unwrap();
        assert_eq!(
            (appended.events, appended.deliveries),
            (1, 1),
            "{appended:?}"
        );
        store.close().await;
    })
    .await;
}

/// A SQLite database `bankdirect.db` in `dir` migrated up to schema `version` only, as
/// an older release left it; with the options to open it again.
async fn sqlite_at_schema(
    dir: &tempfile::TempDir,
    version: i64,
) -> (sqlx::SqlitePool, sqlx::sqlite::SqliteConnectOptions) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("bankdirect.db"))
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(options.clone())
        .await
        .unwrap();
    migrations_up_to("sqlite", version)
        .await
        .run(&pool)
        .await
        .unwrap();
    (pool, options)
}

/// The migrations of `backend` (`sqlite`, `postgres`) up to schema `version`, as an older
/// release shipped them.
async fn migrations_up_to(backend: &str, version: i64) -> sqlx::migrate::Migrator {
    let mut older = sqlx::migrate::Migrator::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend),
    )
    .await
    .unwrap();
    older.migrations = older
        .migrations
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    older
}

/// The audit link written in SQL for PostgreSQL's intake (migration 0016) is the store's
/// (`suite/audit_chain.rs`).
#[tokio::test]
async fn postgres_links_audit_records_in_the_server_as_the_store_does() {
    run_postgres(audit_chain::chain_links_in_the_server_as_the_store_does).await;
}

#[tokio::test]
async fn postgres_an_exchange_group_the_server_refuses_runs_alone() {
    run_postgres(exchanges::exchanges_a_group_the_server_refuses_runs_alone).await;
}

#[tokio::test]
async fn postgres_connections_the_server_ended_while_idle_are_replaced() {
    run_postgres(exchanges::exchanges_after_the_server_ended_idle_connections).await;
}

/// PostgreSQL's write groups run on a thread of their own with a pool of their own
/// (`postgres/group.rs`): a payment created and moved on goes through both group queues,
/// and once the store is closed none of their connections is left on the server.
#[tokio::test]
async fn postgres_write_groups_leave_no_connection_after_close() {
    run_postgres(|db| async move {
        let database = db
            .url
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let store = db.open().await;
        let p = payments::create_one(&*store, "main", 1_000, "close-1", 0).await;
        store
            .transition_payment(
                &p.instruction.id,
                store::TransitionGuard {
                    from_status: "queued".to_owned(),
                    fencing_token: None,
                },
                payments::change_to("cancelled"),
                payments::worker_actor("worker"),
                NewAuditRecord {
                    at: instant(1, 0),
                    actor: "worker".to_owned(),
                    action: "payment.transition".to_owned(),
                    object: format!("payment:{}", p.instruction.id),
                    request_id: None,
                    outcome: "cancelled".to_owned(),
                    details: json!({}),
                },
            )
            .await
            .unwrap();
        let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let others = || {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&database)
        };
        assert!(others().fetch_one(&mut watcher).await.unwrap() >= 1);
        store.close().await;
        let mut left = -1;
        for _ in 0..100 {
            left = others().fetch_one(&mut watcher).await.unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let open: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT state, query FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_all(&mut watcher)
        .await
        .unwrap();
        assert_eq!(left, 0, "connections left open after close: {open:?}");
        watcher.close().await.unwrap();
    })
    .await;
}

/// Schema 13 replaces the per-event fan-out mark with a cursor. A database written under
/// schema 12 with events already fanned out (marked) and events not yet fanned out
/// upgrades with the cursor at the last marked one: the next fan-out takes exactly the
/// unmarked events, once, and none of the others again.
#[tokio::test]
async fn sqlite_schema_13_starts_the_fan_out_where_the_marks_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, _) = sqlite_at_schema(&dir, 12).await;
    let at = "2026-11-28T09:00:00.000000Z";
    sqlx::query(&format!(
        "INSERT INTO webhooks (id, client_id, url, secret, event_types, created_at) \
         VALUES ('whk_legacy', 'erp', 'https://erp.example/hooks', '{}', \
                 '[\"payment.status_changed\"]', '{at}')",
        "s".repeat(40)
    ))
    .execute(&pool)
    .await
    .unwrap();
    // Events 1-3 fanned out before the upgrade, 4-5 not yet.
    for n in 1..=5 {
        let fanned = if n <= 3 {
            format!("'{at}'")
        } else {
            "NULL".to_owned()
        };
        sqlx::query(&format!(
            "INSERT INTO events (id, type, version, object_type, object_id, object_seq, \
               account_id, occurred_at, data, fanned_out_at) \
             VALUES ('evt_pay_{n}_1', 'payment.status_changed', 1, 'payment', 'pay_{n}', 1, \
                     'east-1', '{at}', '{{}}', {fanned})"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = open_sqlite(&dir, &StoreOptions::default()).await;
    let now = instant(3_600, 0);
    let first = store.fan_out_events(now, 100).await.unwrap();
    assert_eq!((first.events, first.deliveries), (2, 2), "{first:?}");
    let again = store.fan_out_events(now, 100).await.unwrap();
    assert_eq!((again.events, again.deliveries), (0, 0), "{again:?}");
    store.close().await;
}

/// Schema 14 moves the idempotency keys into a rowid table. Keys written under schema 13
/// (completed with their answer, and in progress) upgrade with every column as it was, and
/// the (client, key) pair stays unique: the insert the store runs for a retried request
/// finds the key taken and writes nothing.
#[tokio::test]
async fn sqlite_schema_14_keeps_every_idempotency_key_and_its_uniqueness() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, options) = sqlite_at_schema(&dir, 13).await;
    for n in 1..=4 {
        let (state, status, body) = if n % 2 == 0 {
            (
                "completed",
                "201",
                format!("'{{\"n\":{n},\"name\":\"张三\"}}'"),
            )
        } else {
            ("in_progress", "NULL", "NULL".to_owned())
        };
        sqlx::query(&format!(
            "INSERT INTO idempotency_keys (client_id, key, request_hash, state, \
               response_status, response_body, created_at, expires_at) \
             VALUES ('erp', 'key-{}', 'h{n}', '{state}', {status}, {body}, \
               '2026-11-28T09:00:0{n}.000000Z', '2026-11-29T09:00:00.000000Z')",
            5 - n
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    type KeyRow = (
        String,
        String,
        String,
        String,
        Option<i64>,
        Option<String>,
        String,
        String,
    );
    let all = "SELECT client_id, key, request_hash, state, response_status, response_body, \
                 created_at, expires_at FROM idempotency_keys ORDER BY client_id, key";
    let before: Vec<KeyRow> = sqlx::query_as(all).fetch_all(&pool).await.unwrap();
    assert_eq!(before.len(), 4);
    pool.close().await;

    let store = open_sqlite(&dir, &StoreOptions::default()).await;
    store.close().await;

    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let after: Vec<KeyRow> = sqlx::query_as(all).fetch_all(&pool).await.unwrap();
    assert_eq!(after, before);
    // A rowid table now, its rows in the order they were created.
    let by_rowid: Vec<(String,)> =
        sqlx::query_as("SELECT key FROM idempotency_keys ORDER BY rowid")
            .fetch_all(&pool)
            .await
            .unwrap();
    let keys: Vec<String> = by_rowid.into_iter().map(|(k,)| k).collect();
    assert_eq!(keys, ["key-4", "key-3", "key-2", "key-1"]);
    let again = sqlx::query(
        "INSERT INTO idempotency_keys (client_id, key, request_hash, state, created_at, expires_at) \
         VALUES ('erp', 'key-2', 'other', 'in_progress', '2026-11-28T10:00:00.000000Z', \
                 '2026-11-29T10:00:00.000000Z') \
         ON CONFLICT (client_id, key) DO NOTHING",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(again.rows_affected(), 0);
    let plain = sqlx::query(
        "INSERT INTO idempotency_keys (client_id, key, request_hash, state, created_at, expires_at) \
         VALUES ('erp', 'key-2', 'other', 'in_progress', '2026-11-28T10:00:00.000000Z', \
                 '2026-11-29T10:00:00.000000Z')",
    )
    .execute(&pool)
    .await;
    assert!(plain.is_err(), "a second (client, key) must be refused");
    let indexes: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'idempotency_keys' \
           AND sql IS NOT NULL ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let names: Vec<String> = indexes.into_iter().map(|(n,)| n).collect();
    assert_eq!(
        names,
        ["idempotency_keys_client_key", "idempotency_keys_expiry"]
    );
    let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(broken.is_empty(), "{broken:?}");
}

/// Schema 9 rebuilds `payment_batches` and schema 12 `webhooks` (a CHECK constraint
/// cannot be altered in SQLite). A database with batches, their chunks, items, history and
/// idempotency keys, and a webhook, written under schema 8 upgrades with every row and
/// reference intact, takes `declined`, and stores secrets up to 512 characters.
#[tokio::test]
async fn sqlite_schema_9_rebuilds_batches_keeping_every_row_and_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, options) = sqlite_at_schema(&dir, 8).await;
    let at = "2026-11-28T09:00:00.000000Z";
    for n in 1..=3 {
        let batch = format!("bat_{n:026}");
        for sql in [
            format!(
                "INSERT INTO payment_batches (id, client_id, debtor_account_id, currency, kind, \
                   requested_execution_date, item_count, control_sum_minor, chunk_count, \
                   business_reference, status, event_seq, created_at, updated_at, \
                   approvals_required, on_behalf_of) \
                 VALUES ('{batch}', 'erp', 'east-1', 'CNY', 'payroll', '2026-11-28', 1, 100, 1, \
                   'B{n}', 'queued', 1, '{at}', '{at}', {n}, 'user:maker')"
            ),
            format!(
                "INSERT INTO payment_batch_chunks (batch_id, chunk_no, business_reference, \
                   item_count, status, ever_sent, send_attempts, fencing_token, updated_at) \
                 VALUES ('{batch}', 1, 'C{n}', 1, 'queued', 0, 0, 0, '{at}')"
            ),
            format!(
                "INSERT INTO payment_batch_items (batch_id, item_no, id, chunk_no, \
                   business_reference, amount_minor, creditor_name, creditor_account, \
                   creditor_bank_code, creditor_type, remittance, status, updated_at) \
                 VALUES ('{batch}', 1, 'itm_{n:026}', 1, 'I{n}', 100, '张三', '6222020000001234', \
                   '102290000001', 'personal', '工资', 'pending', '{at}')"
            ),
            format!(
                "INSERT INTO payment_batch_history (batch_id, seq, at, to_status, cause, actor) \
                 VALUES ('{batch}', 1, '{at}', 'queued', 'no_approval_needed', 'client:erp')"
            ),
            format!(
                "INSERT INTO idempotency_keys (client_id, key, request_hash, state, \
                   response_status, response_body, created_at, expires_at, batch_id) \
                 VALUES ('erp', 'k{n}', 'h', 'completed', 201, '{{}}', '{at}', \
                   '2026-11-29T09:00:00.000000Z', '{batch}')"
            ),
        ] {
            sqlx::query(&sql).execute(&pool).await.unwrap();
        }
    }
    // A webhook of schema 5, its secret as given (schema 12 rebuilds the table).
    sqlx::query(&format!(
        "INSERT INTO webhooks (id, client_id, url, secret, event_types, created_at) \
         VALUES ('whk_legacy', 'erp', 'https://erp.example/hooks', '{}', '[\"payment.status_changed\"]', '{at}')",
        "s".repeat(40)
    ))
    .execute(&pool)
    .await
    .unwrap();
    let before: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT id, business_reference, approvals_required, on_behalf_of \
         FROM payment_batches ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = open_sqlite(&dir, &StoreOptions::default()).await;
    let batch = store
        .get_batch(&domain::BatchId::parse(&format!("bat_{:026}", 2)).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch.approvals_required, 2);
    assert_eq!(batch.on_behalf_of.as_deref(), Some("user:maker"));
    assert_eq!(batch.chunks.len(), 1);
    store.close().await;

    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let after: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT id, business_reference, approvals_required, on_behalf_of \
         FROM payment_batches ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(after, before);
    let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    let indexes: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'payment_batches' \
           AND name LIKE 'payment_batches_%' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            ("payment_batches_account_created".to_owned(),),
            ("payment_batches_created".to_owned(),)
        ]
    );
    sqlx::query("UPDATE payment_batches SET status = 'declined' WHERE id = ?")
        .bind(format!("bat_{:026}", 1))
        .execute(&pool)
        .await
        .unwrap();
    // Schema 12: the webhook kept, a sealed-length secret (over 256) now fits.
    let (secret,): (String,) =
        sqlx::query_as("SELECT secret FROM webhooks WHERE id = 'whk_legacy'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(secret, "s".repeat(40));
    sqlx::query("UPDATE webhooks SET secret = ? WHERE id = 'whk_legacy'")
        .bind("s".repeat(400))
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        sqlx::query("UPDATE webhooks SET secret = ? WHERE id = 'whk_legacy'")
            .bind("s".repeat(513))
            .execute(&pool)
            .await
            .is_err()
    );
    // Foreign keys still hold on the rebuilt tables.
    let orphan = sqlx::query(
        "INSERT INTO payment_batch_history (batch_id, seq, at, to_status, cause, actor) \
         VALUES ('bat_99999999999999999999999999', 1, '2026-11-28T09:00:00.000000Z', 'queued', 'x', 'y')",
    )
    .execute(&pool)
    .await;
    assert!(orphan.is_err(), "{orphan:?}");
    pool.close().await;
}

#[tokio::test]
async fn sqlite_open_without_migrate_leaves_the_schema_alone() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        migrate: false,
        ..StoreOptions::default()
    };
    let store = open_sqlite(&dir, &opts).await;
    store.ping().await.unwrap();
    assert!(store.install_id().await.is_err());
    store.migrate().await.unwrap();
    assert_eq!(store.install_id().await.unwrap().len(), 16);
    store.close().await;
}

#[tokio::test]
async fn invalid_options_are_refused_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never.db");
    let opts = StoreOptions {
        read_pool_size: 0,
        ..StoreOptions::default()
    };
    let result = store::open(path.to_str().unwrap(), &opts).await;
    assert!(
        matches!(result, Err(StoreError::InvalidOptions { .. })),
        "{result:?}"
    );
    assert!(!path.exists());
}

#[test]
fn pg_test_urls_name_the_fresh_database() {
    assert_eq!(
        with_database(
            "postgres://bankdirect@127.0.0.1:54329/bankdirect",
            "bd_test_1"
        ),
        "postgres://bankdirect@127.0.0.1:54329/bd_test_1"
    );
    assert_eq!(
        with_database("postgresql://u:p@h/admin?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}
