//! Bank exchanges, generic over the backend (listed in the `suite!` of `suite.rs`): the row,
//! its references and its `bank.exchange` audit record commit together; read back by id and
//! by reference; a refused row leaves no audit record; references resolve to the payment or
//! batch they belong to; a burst of concurrent exchanges (written in groups on PostgreSQL)
//! stores each once with its own audit record, and a faulty one fails alone.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use store::{
    NewAuditRecord, NewBankExchange, Store, StoreError, TransitionGuard,
    BANK_EXCHANGE_BODY_MAX_BYTES, BANK_EXCHANGE_CODE_MAX_CHARS, BANK_EXCHANGE_LIST_MAX,
};

use crate::payments::{change_to, create_one, worker_actor};
use crate::{all_audit, instant, TestDb};

fn exchange(function: &str, references: &[&str]) -> NewBankExchange {
    NewBankExchange {
        at: instant(5, 123_456),
        bank_id: "cmb".into(),
        connection_id: "cmb-main".into(),
        function: function.into(),
        references: references.iter().map(|r| r.to_string()).collect(),
        outcome: "ok".into(),
        bank_code: None,
        elapsed_ms: 42,
        request_masked: Some("<DBTACC>***********0001</DBTACC><CRTNAM>上海示例</CRTNAM>".into()),
        request_truncated: false,
        response_masked: None,
        response_truncated: true,
    }
}

fn audit(object: &str) -> NewAuditRecord {
    NewAuditRecord {
        at: instant(5, 123_456),
        actor: "bank:cmb".into(),
        action: "bank.exchange".into(),
        object: object.into(),
        request_id: None,
        outcome: "ok".into(),
        details: json!({"function": "SubmitPayment", "elapsed_ms": 42}),
    }
}

pub(crate) async fn exchanges_are_stored_with_their_audit_record(db: TestDb) {
    let store = db.open().await;
    let id = store
        .record_bank_exchange(
            exchange("SubmitPayment", &["REF-1", "REF-2", "REF-1"]),
            audit("payment:x"),
        )
        .await
        .unwrap();
    let stored = store.get_bank_exchange(id).await.unwrap().expect("stored");
    assert_eq!(stored.id, id);
    assert_eq!(stored.at, instant(5, 123_456));
    assert_eq!(stored.function, "SubmitPayment");
    assert_eq!(stored.reference.as_deref(), Some("REF-1"));
    assert_eq!(stored.elapsed_ms, 42);
    assert_eq!(
        stored.request_masked.as_deref(),
        Some("<DBTACC>***********0001</DBTACC><CRTNAM>上海示例</CRTNAM>")
    );
    assert!(!stored.request_truncated);
    assert_eq!(stored.response_masked, None);
    assert!(stored.response_truncated);

    let records = all_audit(store.as_ref()).await;
    let record = records.last().unwrap();
    assert_eq!(record.action, "bank.exchange");
    assert_eq!(record.object, "payment:x");
    assert_eq!(record.details["exchange_id"], json!(id));
    assert_eq!(record.details["function"], "SubmitPayment");

    let second = store
        .record_bank_exchange(exchange("QueryPayment", &["REF-2"]), audit("payment:y"))
        .await
        .unwrap();
    assert!(second > id);
    let of_two: Vec<i64> = store
        .bank_exchanges_by_reference("REF-2", 0)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(of_two, vec![id, second]);
    let limited = store.bank_exchanges_by_reference("REF-2", 1).await.unwrap();
    assert_eq!(limited.len(), 1);
    assert!(store
        .bank_exchanges_by_reference("REF-9", BANK_EXCHANGE_LIST_MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .get_bank_exchange(second + 100)
        .await
        .unwrap()
        .is_none());
    store.close().await;
}

pub(crate) async fn exchanges_refused_leave_no_audit_record(db: TestDb) {
    let store = db.open().await;
    let before = all_audit(store.as_ref()).await.len();
    let mut too_big = exchange("C53", &[]);
    too_big.response_masked = Some("x".repeat(BANK_EXCHANGE_BODY_MAX_BYTES + 1));
    let mut not_object = audit("bank:cmb");
    not_object.details = json!(["a"]);
    let mut empty_function = exchange("", &[]);
    empty_function.bank_id = "cmb".into();
    // The columns hold 64 characters of function, outcome and bank code: beyond, the
    // store refuses before the database would.
    let long_function = exchange(&"F".repeat(BANK_EXCHANGE_CODE_MAX_CHARS + 1), &[]);
    let mut long_outcome = exchange("C53", &[]);
    long_outcome.outcome = "o".repeat(BANK_EXCHANGE_CODE_MAX_CHARS + 1);
    let mut long_code = exchange("C53", &[]);
    long_code.bank_code = Some("9".repeat(BANK_EXCHANGE_CODE_MAX_CHARS + 1));
    for (new, audit) in [
        (too_big, audit("bank:cmb")),
        (exchange("C53", &[]), not_object),
        (empty_function, audit("bank:cmb")),
        (long_function, audit("bank:cmb")),
        (long_outcome, audit("bank:cmb")),
        (long_code, audit("bank:cmb")),
    ] {
        let refused = store.record_bank_exchange(new, audit).await;
        assert!(
            matches!(refused, Err(StoreError::Invalid { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(all_audit(store.as_ref()).await.len(), before);
    // At their limit they pass.
    let mut at_limit = exchange(&"F".repeat(BANK_EXCHANGE_CODE_MAX_CHARS), &[]);
    at_limit.outcome = "o".repeat(BANK_EXCHANGE_CODE_MAX_CHARS);
    at_limit.bank_code = Some("9".repeat(BANK_EXCHANGE_CODE_MAX_CHARS));
    store
        .record_bank_exchange(at_limit, audit("bank:cmb"))
        .await
        .unwrap();
    // An exchange without references or bodies is fine.
    let mut bare = exchange("HTD", &[]);
    bare.request_masked = None;
    let id = store
        .record_bank_exchange(bare, audit("bank:cmb"))
        .await
        .unwrap();
    let stored = store.get_bank_exchange(id).await.unwrap().unwrap();
    assert_eq!(stored.reference, None);
    assert_eq!(stored.request_masked, None);
    store.close().await;
}

pub(crate) async fn exchanges_references_resolve_to_their_payment(db: TestDb) {
    let store = db.open().await;
    let p = create_one(store.as_ref(), "main", 12_345, "bx-1", 10).await;
    let object = store
        .bank_reference_object(p.instruction.business_reference.as_str())
        .await
        .unwrap();
    assert_eq!(object, Some(format!("payment:{}", p.instruction.id)));
    let batch = crate::batches::create(
        store.as_ref(),
        crate::batches::new_batch(&[100, 200], 1, 300),
        "bx-2",
    )
    .await;
    let chunk = &batch.chunks[0];
    let object = store
        .bank_reference_object(chunk.business_reference.as_str())
        .await
        .unwrap();
    assert_eq!(object, Some(format!("payment_batch:{}", batch.id)));
    assert_eq!(store.bank_reference_object("NOPE").await.unwrap(), None);
    store.close().await;
}

/// Many exchanges at once, as a dispatcher with many payments in flight records them: on
/// PostgreSQL they share group commits. Mixed in: exchanges whose audit details are not an
/// object, which can only be refused once their row is written (the audit record names the
/// exchange's id), so they break whatever group they land in. Each of them is refused on
/// its own; every other exchange is stored once, with its references and exactly one audit
/// record naming it.
/// One exchange's answer in a burst, checked: a `faulty` one refused as invalid (`None`),
/// any other stored once under `reference`, its first (its id).
async fn stored_once(
    store: &dyn Store,
    reference: &str,
    faulty: bool,
    outcome: Result<i64, StoreError>,
) -> Option<i64> {
    if faulty {
        assert!(
            matches!(outcome, Err(StoreError::Invalid { .. })),
            "exchange {reference}: {outcome:?}"
        );
        return None;
    }
    let id = outcome.unwrap_or_else(|e| panic!("exchange {reference}: {e:?}"));
    let of_reference = store
        .bank_exchanges_by_reference(reference, 0)
        .await
        .unwrap();
    let ids: Vec<i64> = of_reference.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        vec![id],
        "exchange {reference} is stored once under it"
    );
    assert_eq!(of_reference[0].reference.as_deref(), Some(reference));
    Some(id)
}

pub(crate) async fn exchanges_a_burst_is_stored_once_each_and_a_faulty_one_fails_alone(db: TestDb) {
    const EXCHANGES: usize = 96;
    let store = db.open().await;
    let before = all_audit(store.as_ref()).await.len();
    let mut tasks = Vec::new();
    for n in 0..EXCHANGES {
        let store = Arc::clone(&store);
        let faulty = n % 29 == 5;
        tasks.push((
            n,
            faulty,
            tokio::spawn(async move {
                let reference = format!("BURST-{n}");
                let mut record = audit(&format!("payment:burst-{n}"));
                if faulty {
                    record.details = json!("not an object");
                }
                store
                    .record_bank_exchange(
                        exchange("SubmitPayment", &[&reference, "BURST-ALL"]),
                        record,
                    )
                    .await
            }),
        ));
    }
    let mut stored = Vec::new();
    for (n, faulty, task) in tasks {
        let outcome = task.await.unwrap();
        if let Some(id) = stored_once(store.as_ref(), &format!("BURST-{n}"), faulty, outcome).await
        {
            stored.push((n, id));
        }
    }
    let faulty = (0..EXCHANGES).filter(|n| n % 29 == 5).count();
    assert_eq!(stored.len(), EXCHANGES - faulty);
    let distinct: HashSet<i64> = stored.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        distinct.len(),
        stored.len(),
        "every exchange has its own id"
    );
    let shared_reference = store
        .bank_exchanges_by_reference("BURST-ALL", BANK_EXCHANGE_LIST_MAX)
        .await
        .unwrap();
    assert_eq!(
        shared_reference.len(),
        stored.len(),
        "no row of a refused exchange is left"
    );

    let records = all_audit(store.as_ref()).await;
    let new_records = &records[before..];
    assert_eq!(
        new_records.len(),
        stored.len(),
        "one audit record per stored exchange"
    );
    for (n, id) in &stored {
        let naming: Vec<_> = new_records
            .iter()
            .filter(|r| r.details["exchange_id"] == json!(id))
            .collect();
        assert_eq!(naming.len(), 1, "exchange {n} has one audit record");
        assert_eq!(naming[0].object, format!("payment:burst-{n}"));
    }
    store.close().await;
}

/// Exchanges and payment status changes at once, as a dispatcher makes them (on
/// PostgreSQL two group queues, each waiting for the audit-order lock in turn; on SQLite
/// jobs of one writer). Each keeps its own outcome: every change moves its payment once
/// with its history row and audit record, every exchange is stored once under its
/// reference with its audit record; a faulty exchange in the second burst takes its group
/// back, and everything of that group is written again on its own except the faulty one.
pub(crate) async fn exchanges_and_status_changes_in_one_burst_keep_their_outcomes(db: TestDb) {
    const N: usize = 24;
    let store = db.open().await;
    let mut payments = Vec::new();
    for n in 0..2 * N {
        payments.push(create_one(store.as_ref(), "main", 100, &format!("mixed-{n}"), 0).await);
    }
    let before = all_audit(store.as_ref()).await.len();
    let mut faulty_exchanges = 0;
    for burst in 0..2 {
        let mut changes = Vec::new();
        let mut exchanges = Vec::new();
        for (n, payment) in payments.iter().enumerate().skip(burst * N).take(N) {
            let id = payment.instruction.id.clone();
            let s = Arc::clone(&store);
            changes.push((
                n,
                tokio::spawn(async move {
                    let mut record = audit(&format!("payment:{id}"));
                    record.action = "payment.cancel".into();
                    s.transition_payment(
                        &id,
                        TransitionGuard {
                            from_status: "queued".into(),
                            fencing_token: None,
                        },
                        change_to("cancelled"),
                        worker_actor("ops"),
                        record,
                    )
                    .await
                }),
            ));
            let faulty = burst == 1 && n % 7 == 3;
            faulty_exchanges += usize::from(faulty);
            let s = Arc::clone(&store);
            exchanges.push((
                n,
                faulty,
                tokio::spawn(async move {
                    let mut record = audit(&format!("payment:mixed-{n}"));
                    if faulty {
                        record.details = json!("not an object");
                    }
                    s.record_bank_exchange(
                        exchange("SubmitPayment", &[&format!("MIXED-{n}")]),
                        record,
                    )
                    .await
                }),
            ));
        }
        for (n, task) in changes {
            let moved = task
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("change {n}: {e:?}"));
            assert_eq!(moved.status, "cancelled");
        }
        for (n, faulty, task) in exchanges {
            let outcome = task.await.unwrap();
            stored_once(store.as_ref(), &format!("MIXED-{n}"), faulty, outcome).await;
        }
    }
    for (n, p) in payments.iter().enumerate() {
        let history = store.payment_history(&p.instruction.id).await.unwrap();
        let moves: Vec<_> = history[2..]
            .iter()
            .map(|h| (h.seq, h.from_status.as_deref(), h.to_status.as_str()))
            .collect();
        assert_eq!(
            moves,
            [(3, Some("queued"), "cancelled")],
            "payment {n} moved once"
        );
    }
    let records = all_audit(store.as_ref()).await;
    let new_records = &records[before..];
    let changes_audited = new_records
        .iter()
        .filter(|r| r.action == "payment.cancel")
        .count();
    let exchanges_audited = new_records
        .iter()
        .filter(|r| r.action == "bank.exchange")
        .count();
    assert!(faulty_exchanges > 0);
    assert_eq!(changes_audited, 2 * N, "one audit record per change");
    assert_eq!(
        exchanges_audited,
        2 * N - faulty_exchanges,
        "one audit record per stored exchange, none for a faulty one"
    );
    store.close().await;
}

/// PostgreSQL: a group the server refuses stores nothing of itself, and each of its
/// exchanges then runs alone (`postgres/exchanges.rs`). A constraint added for the test
/// refuses some exchanges of a burst in the server, past the store's own checks: each of
/// those is answered the server's refusal, naming the constraint, and leaves no audit
/// record; every other is stored once, with its audit record.
pub(crate) async fn exchanges_a_group_the_server_refuses_runs_alone(db: TestDb) {
    use sqlx::Connection;
    const EXCHANGES: usize = 64;
    let refused_at = |n: usize| n % 13 == 3;
    let store = db.open().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "ALTER TABLE bank_exchanges ADD CONSTRAINT test_refuses CHECK (bank_id <> 'refused')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let before = all_audit(store.as_ref()).await.len();
    let mut tasks = Vec::new();
    for n in 0..EXCHANGES {
        let store = Arc::clone(&store);
        tasks.push((
            n,
            tokio::spawn(async move {
                let reference = format!("REFUSED-BURST-{n}");
                let mut new = exchange("SubmitPayment", &[&reference]);
                if refused_at(n) {
                    new.bank_id = "refused".into();
                }
                store
                    .record_bank_exchange(new, audit(&format!("payment:refused-burst-{n}")))
                    .await
            }),
        ));
    }
    let mut stored = 0;
    for (n, task) in tasks {
        let outcome = task.await.unwrap();
        let reference = format!("REFUSED-BURST-{n}");
        if refused_at(n) {
            assert!(
                matches!(&outcome, Err(StoreError::Invalid { reason }) if reason.contains("test_refuses")),
                "exchange {n}: {outcome:?}"
            );
            let kept = store
                .bank_exchanges_by_reference(&reference, 0)
                .await
                .unwrap();
            assert!(kept.is_empty(), "refused exchange {n} left {kept:?}");
        } else {
            stored_once(store.as_ref(), &reference, false, outcome).await;
            stored += 1;
        }
    }
    assert_eq!(
        stored,
        EXCHANGES - (0..EXCHANGES).filter(|n| refused_at(*n)).count()
    );
    assert_eq!(
        all_audit(store.as_ref()).await.len(),
        before + stored,
        "one audit record per exchange stored, none for a refused one"
    );
    store.close().await;
}

/// PostgreSQL: connections the server ended while they sat idle in the pools are found
/// before use (a connection idle for a second or more is pinged, `PING_IF_IDLE_FOR`) and
/// replaced, so a read and a one-statement exchange group afterwards both succeed, the
/// exchange stored once.
pub(crate) async fn exchanges_after_the_server_ended_idle_connections(db: TestDb) {
    use sqlx::Connection;
    let store = db.open().await;
    // Both pools hold a connection: the store's (a read) and the exchange group's.
    store.ping().await.unwrap();
    store
        .record_bank_exchange(
            exchange("SubmitPayment", &["ENDED-1"]),
            audit("payment:ended-1"),
        )
        .await
        .unwrap();
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND application_name LIKE 'bankdirect%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    assert!(ended.len() >= 2 && ended.iter().all(|e| *e), "{ended:?}");
    // Idle long enough to be pinged before use.
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    store.ping().await.expect("a read on a new connection");
    store
        .record_bank_exchange(
            exchange("SubmitPayment", &["ENDED-2"]),
            audit("payment:ended-2"),
        )
        .await
        .expect("the group on a new connection");
    for reference in ["ENDED-1", "ENDED-2"] {
        let kept = store
            .bank_exchanges_by_reference(reference, 0)
            .await
            .unwrap();
        assert_eq!(kept.len(), 1, "{reference}: {kept:?}");
    }
    // The group pool replaced its connection too: without its ping the group's statement
    // would have failed on the ended one, which is then closed, and the exchange run
    // alone on the store's pool, leaving the group pool with no session.
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'bankdirect-groups'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    assert!(sessions >= 1, "the group pool's sessions: {sessions}");
    store.close().await;
}
