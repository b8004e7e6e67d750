//! Payments, generic over the backend (listed in the `suite!` of `suite.rs`): create with
//! idempotency keys, end-to-end id duplicates, compare-and-set transitions, the work queue
//! with leases and fencing tokens, several changes applied together, listings, purging,
//! atomicity.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::{
    AccountId, BankReference, BusinessDate, CnapsCode, CreditorType, Currency, EndToEndId, Money,
    OsRandom, PaymentId, Urgency,
};
use store::{
    Actor, CreateOutcome, IdempotencyClaim, InitialStep, NewPayment, PaymentChange, PaymentCursor,
    PaymentInstruction, PaymentQuery, PaymentStep, Store, StoreError, StoredPayment,
    TransitionGuard,
};

use crate::{all_audit, instant, record, TestDb};

fn instruction(acct: &str, minor: i64, e2e: Option<&str>) -> PaymentInstruction {
    let id = PaymentId::generate(&OsRandom);
    // Unique per payment, like the gateway's install id + random part.
    let reference = format!("R{}", &id.as_str()[4..24]);
    PaymentInstruction {
        id,
        client_id: "erp".to_owned(),
        debtor_account_id: AccountId::parse(acct).unwrap(),
        amount: Money::from_minor(minor, Currency::CNY),
        creditor_name: "上海某某贸易有限公司".to_owned(),
        creditor_account: "6222021234567890123".to_owned(),
        creditor_bank_code: Some(CnapsCode::parse("308290003020").unwrap()),
        creditor_bic: None,
        creditor_bank_name: Some("招商银行上海分行".to_owned()),
        creditor_type: CreditorType::Corporate,
        remittance: "货款 INV-42".to_owned(),
        purpose: None,
        end_to_end_id: e2e.map(|e| EndToEndId::parse(e).unwrap()),
        requested_execution_date: BusinessDate::from_ymd(2026, 11, 27).unwrap(),
        urgency: Urgency::Normal,
        business_reference: BankReference::parse(&reference).unwrap(),
        on_behalf_of: None,
        approvals_required: 0,
    }
}

fn new_payment(
    acct: &str,
    minor: i64,
    e2e: Option<&str>,
    due: Option<DateTime<Utc>>,
) -> NewPayment {
    NewPayment {
        instruction: instruction(acct, minor, e2e),
        steps: vec![
            step("received", "created"),
            step("queued", "no_approval_needed"),
        ],
        next_attempt_at: due,
    }
}

fn step(to: &str, cause: &str) -> InitialStep {
    InitialStep {
        to_status: to.to_owned(),
        cause: cause.to_owned(),
    }
}

fn claim(key: &str, hash: &str, body: &str) -> IdempotencyClaim {
    IdempotencyClaim {
        client_id: "erp".to_owned(),
        key: key.to_owned(),
        request_hash: hash.to_owned(),
        expires_at: instant(24 * 3600 + 60, 0),
        response_status: 201,
        response_body: body.to_owned(),
    }
}

fn create_audit(at_s: i64) -> store::NewAuditRecord {
    store::NewAuditRecord {
        at: instant(at_s, 0),
        ..record("erp", "payment.create", "payment")
    }
}

async fn create(store: &dyn Store, new: NewPayment, key: &str, at_s: i64) -> StoredPayment {
    let claim = IdempotencyClaim {
        expires_at: instant(at_s + 86_400 + 60, 0),
        ..claim(key, "h", "{}")
    };
    match store
        .create_payment(new, claim, create_audit(at_s))
        .await
        .unwrap()
    {
        CreateOutcome::Created(p) => *p,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn change(to: &str) -> PaymentChange {
    PaymentChange {
        to_status: to.to_owned(),
        cause: format!("to_{to}"),
        bank_code: None,
        bank_message: None,
        bank_payment_id: None,
        mark_sent: false,
        next_attempt_at: None,
        release_lease: false,
    }
}

fn guard(from: &str, token: Option<i64>) -> TransitionGuard {
    TransitionGuard {
        from_status: from.to_owned(),
        fencing_token: token,
    }
}

fn worker(name: &str) -> Actor {
    Actor {
        name: name.to_owned(),
        request_id: None,
    }
}

/// For other suite files: a created payment (steps received, queued).
pub(crate) async fn create_one(
    store: &dyn Store,
    acct: &str,
    minor: i64,
    key: &str,
    at_s: i64,
) -> StoredPayment {
    create(store, new_payment(acct, minor, None, None), key, at_s).await
}

pub(crate) fn change_to(to: &str) -> PaymentChange {
    change(to)
}

pub(crate) fn worker_actor(name: &str) -> Actor {
    worker(name)
}

fn id_of(p: &StoredPayment) -> PaymentId {
    p.instruction.id.clone()
}

pub(crate) async fn payments_create_replay_key_reuse_and_in_progress(db: TestDb) {
    let store = db.open().await;
    let new = new_payment("main", 12_345, Some("E2E-1"), Some(instant(0, 0)));
    let expected = new.instruction.clone();
    let body = r#"{"id":"x","status":"queued"}"#;
    let created = match store
        .create_payment(new, claim("k1", "hash-a", body), create_audit(0))
        .await
        .unwrap()
    {
        CreateOutcome::Created(p) => *p,
        other => panic!("{other:?}"),
    };
    assert_eq!(created.instruction, expected);
    assert_eq!(created.status, "queued");
    assert!(!created.ever_sent);
    assert_eq!(created.fencing_token, 0);
    assert_eq!(created.created_at, instant(0, 0));
    assert_eq!(
        store.get_payment(&expected.id).await.unwrap(),
        Some(created.clone())
    );
    let history = store.payment_history(&expected.id).await.unwrap();
    let path: Vec<_> = history
        .iter()
        .map(|h| (h.seq, h.from_status.clone(), h.to_status.clone()))
        .collect();
    assert_eq!(
        path,
        [
            (1, None, "received".to_owned()),
            (2, Some("received".to_owned()), "queued".to_owned())
        ]
    );
    assert_eq!(history[0].actor, "erp");

    // Same key, same hash: the stored response, nothing new written.
    let again = new_payment("main", 12_345, Some("E2E-1"), None);
    let replay = store
        .create_payment(again, claim("k1", "hash-a", "other"), create_audit(5))
        .await
        .unwrap();
    assert_eq!(
        replay,
        CreateOutcome::Replay {
            status: 201,
            body: body.to_owned(),
            payment_id: Some(expected.id.clone())
        }
    );
    // Same key, another body.
    let reused = store
        .create_payment(
            new_payment("main", 1, None, None),
            claim("k1", "hash-b", "{}"),
            create_audit(6),
        )
        .await
        .unwrap();
    assert_eq!(reused, CreateOutcome::KeyReused);
    // Another client may use the same key.
    let mut other_client = new_payment("main", 2, None, None);
    other_client.instruction.client_id = "payroll".to_owned();
    let other_claim = IdempotencyClaim {
        client_id: "payroll".to_owned(),
        ..claim("k1", "hash-b", "{}")
    };
    assert!(matches!(
        store
            .create_payment(other_client, other_claim, create_audit(7))
            .await
            .unwrap(),
        CreateOutcome::Created(_)
    ));
    // A key whose request has not finished (written by hand: no API leaves one behind yet).
    db.execute_raw(&format!(
        "INSERT INTO idempotency_keys (client_id, key, request_hash, state, created_at, expires_at) \
         VALUES ('erp', 'k2', 'hash-c', 'in_progress', '{}', '{}')",
        instant(0, 0).format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        instant(90_000, 0).format("%Y-%m-%dT%H:%M:%S%.6fZ"),
    ))
    .await;
    let busy = store
        .create_payment(
            new_payment("main", 3, None, None),
            claim("k2", "hash-c", "{}"),
            create_audit(8),
        )
        .await
        .unwrap();
    assert_eq!(busy, CreateOutcome::InProgress);

    let listed = store.list_payments(&PaymentQuery::default()).await.unwrap();
    assert_eq!(listed.len(), 2);
    // Only the two creates were audited.
    assert_eq!(all_audit(store.as_ref()).await.len(), 2);
    store.close().await;
}

pub(crate) async fn payments_fifty_concurrent_creates_with_one_key_make_one_payment(db: TestDb) {
    const CALLERS: usize = 50;
    let store = db.open().await;
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                // Each request generates its own payment id and reference, as the gateway does.
                store
                    .create_payment(
                        new_payment("main", 500, Some("E2E-RACE"), Some(instant(0, 0))),
                        claim("race", "same-hash", "{\"ok\":true}"),
                        create_audit(0),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut replays = 0;
    for task in tasks {
        match task.await.unwrap() {
            CreateOutcome::Created(p) => created.push(*p),
            CreateOutcome::Replay { payment_id, .. } => {
                replays += 1;
                assert!(payment_id.is_some());
            }
            CreateOutcome::InProgress => replays += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created.len(), 1);
    assert_eq!(replays, CALLERS - 1);
    let all = store.list_payments(&PaymentQuery::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].instruction.id, created[0].instruction.id);
    assert_eq!(all_audit(store.as_ref()).await.len(), 1);
    store.close().await;
}

/// Many creates at once, as an ERP's burst arrives: on PostgreSQL they are written in groups
/// (one transaction for many), on SQLite in the writer's batches. Mixed in are the cases
/// that must each get their own answer: a replay of a stored key, an end-to-end id already
/// used, two requests with one key, two new keys with one end-to-end id. Every plain create
/// is stored once with all its rows; every other case is answered exactly as on its own.
pub(crate) async fn payments_a_burst_of_creates_is_stored_once_each_with_every_case_answered(
    db: TestDb,
) {
    const ROUNDS: usize = 8;
    let store = db.open().await;
    let existing = create(
        store.as_ref(),
        new_payment("main", 100, Some("E2E-OLD"), None),
        "old",
        0,
    )
    .await;
    let mut tasks = Vec::new();
    // (kind, key): kinds "plain", "replay", "e2e_taken", "key_pair", "e2e_pair".
    for round in 0..ROUNDS {
        let mut spawn = |kind: &'static str, key: String, e2e: String| {
            let store = Arc::clone(&store);
            let key2 = key.clone();
            tasks.push((
                kind,
                key,
                tokio::spawn(async move {
                    store
                        .create_payment(
                            new_payment("main", 500, Some(&e2e), Some(instant(0, 0))),
                            claim(&key2, "h", "{\"ok\":true}"),
                            create_audit(0),
                        )
                        .await
                        .unwrap()
                }),
            ));
        };
        for n in 0..4 {
            spawn(
                "plain",
                format!("k-{round}-{n}"),
                format!("E2E-{round}-{n}"),
            );
        }
        spawn("replay", "old".to_owned(), format!("E2E-R-{round}"));
        spawn("e2e_taken", format!("t-{round}"), "E2E-OLD".to_owned());
        spawn("key_pair", format!("p-{round}"), format!("E2E-P-{round}"));
        spawn("key_pair", format!("p-{round}"), format!("E2E-P-{round}"));
        spawn("e2e_pair", format!("q-{round}-a"), format!("E2E-Q-{round}"));
        spawn("e2e_pair", format!("q-{round}-b"), format!("E2E-Q-{round}"));
    }
    let mut created: Vec<(String, StoredPayment)> = Vec::new();
    let mut key_pair_created = std::collections::HashMap::new();
    let mut e2e_pair_created = std::collections::HashMap::new();
    for (kind, key, task) in tasks {
        let outcome = task.await.unwrap();
        match (kind, outcome) {
            ("plain", CreateOutcome::Created(p)) => created.push((key, *p)),
            ("replay", CreateOutcome::Replay { payment_id, .. }) => {
                assert_eq!(payment_id, Some(existing.instruction.id.clone()));
            }
            (
                "e2e_taken",
                CreateOutcome::DuplicateEndToEndId {
                    existing_payment_id,
                },
            ) => {
                assert_eq!(existing_payment_id, existing.instruction.id);
            }
            ("key_pair", CreateOutcome::Created(p)) => {
                *key_pair_created.entry(key.clone()).or_insert(0) += 1;
                created.push((key, *p));
            }
            ("key_pair", CreateOutcome::Replay { .. } | CreateOutcome::InProgress) => {}
            ("e2e_pair", CreateOutcome::Created(p)) => {
                let e2e = p.instruction.end_to_end_id.clone().unwrap();
                *e2e_pair_created.entry(e2e).or_insert(0) += 1;
                created.push((key, *p));
            }
            ("e2e_pair", CreateOutcome::DuplicateEndToEndId { .. }) => {}
            (kind, other) => panic!("{kind} {key}: unexpected {other:?}"),
        }
    }
    // Each pair made exactly one payment.
    assert_eq!(key_pair_created.len(), ROUNDS);
    assert!(key_pair_created.values().all(|n| *n == 1));
    assert_eq!(e2e_pair_created.len(), ROUNDS);
    assert!(e2e_pair_created.values().all(|n| *n == 1));
    assert_eq!(created.len(), ROUNDS * 6);

    // Stored once each, with every row of a create.
    let all = store.list_payments(&PaymentQuery::default()).await.unwrap();
    assert_eq!(all.len(), created.len() + 1);
    let ids: HashSet<_> = all.iter().map(|p| p.instruction.id.clone()).collect();
    assert_eq!(ids.len(), all.len());
    for (key, p) in &created {
        assert_eq!(p.status, "queued");
        let stored = store.get_payment(&p.instruction.id).await.unwrap().unwrap();
        assert_eq!(&stored, p);
        let history = store.payment_history(&p.instruction.id).await.unwrap();
        let steps: Vec<_> = history
            .iter()
            .map(|h| (h.seq, h.from_status.as_deref(), h.to_status.as_str()))
            .collect();
        assert_eq!(
            steps,
            vec![(1, None, "received"), (2, Some("received"), "queued")]
        );
        let record = store
            .find_idempotency_key("erp", key)
            .await
            .unwrap()
            .unwrap();
        assert!(record.completed);
        assert_eq!(record.response_status, Some(201));
        let events = store
            .list_events(&store::EventQuery {
                after_seq: 0,
                object_id: Some(p.instruction.id.to_string()),
                event_type: None,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "one event per created payment");
    }
    // No event either: one per payment stored, the earlier one's included.
    let every_event = store
        .list_events(&store::EventQuery {
            after_seq: 0,
            object_id: None,
            event_type: None,
            limit: 1_000,
        })
        .await
        .unwrap();
    assert_eq!(every_event.len(), created.len() + 1);
    // No key is left behind by a create that stored nothing.
    for round in 0..ROUNDS {
        assert!(store
            .find_idempotency_key("erp", &format!("t-{round}"))
            .await
            .unwrap()
            .is_none());
    }
    // One audit record per payment created, the earlier one included.
    let audit = all_audit(store.as_ref()).await;
    assert_eq!(audit.len(), created.len() + 1);
    let mut audit_ids: Vec<_> = audit.iter().map(|r| r.id).collect();
    audit_ids.dedup();
    assert_eq!(audit_ids.len(), audit.len());
    store.close().await;
}

/// Many status changes at once, as the dispatcher makes them: on PostgreSQL they share
/// transactions (written a round per step for the whole group), on SQLite the writer's
/// batches. Mixed in: changes of two steps beside changes of one, two changes racing from
/// the same status (one wins) and a change with a stale guard; then, in a second burst, a
/// change whose write fails before its commit (a failpoint), which on PostgreSQL takes its
/// group back and sends the others to run alone. Each keeps its own outcome; the others
/// commit with every row (history, event, audit).
pub(crate) async fn payments_a_burst_of_status_changes_keeps_each_outcome(db: TestDb) {
    const PAYMENTS: usize = 40;
    let store = db.open().await;
    let mut created = Vec::new();
    for n in 0..PAYMENTS {
        created.push(create_one(store.as_ref(), "main", 100, &format!("burst-{n}"), 0).await);
    }
    // Every third payment (not 3, 5 or 7) moves through `submitting` in the same change.
    let two_steps = |n: usize| n % 3 == 1 && ![3, 5, 7].contains(&n);
    let spawn = |n: usize, from: &'static str| {
        let store = Arc::clone(&store);
        let id = created[n].instruction.id.clone();
        let steps: Vec<PaymentStep> = if two_steps(n) {
            vec!["submitting", "cancelled"]
        } else {
            vec!["cancelled"]
        }
        .into_iter()
        .map(|to| PaymentStep {
            change: change(to),
            audit: create_audit(10),
        })
        .collect();
        let task = tokio::spawn(async move {
            store
                .transition_payment_steps(&id, guard(from, None), steps, worker("ops"))
                .await
        });
        (n, task)
    };
    let audit_before = all_audit(store.as_ref()).await.len();
    // Payment 3 gets two racing changes; payment 5 one with a guard that never held;
    // payment 7 waits for the second burst.
    let mut tasks = Vec::new();
    for n in (0..PAYMENTS).filter(|n| *n != 7) {
        tasks.push(spawn(n, if n == 5 { "accepted" } else { "queued" }));
        if n == 3 {
            tasks.push(spawn(n, "queued"));
        }
    }
    let mut won = std::collections::HashMap::new();
    for (n, task) in tasks {
        match (n, task.await.unwrap()) {
            (5, Err(StoreError::Conflict { status, .. })) => assert_eq!(status, "queued"),
            (3, Err(StoreError::Conflict { status, .. })) => assert_eq!(status, "cancelled"),
            (n, Ok(p)) if n != 5 => {
                assert_eq!(p.status, "cancelled");
                *won.entry(n).or_insert(0) += 1;
            }
            (n, other) => panic!("payment {n}: unexpected {other:?}"),
        }
    }
    assert_eq!(won.len(), PAYMENTS - 2);
    assert!(won.values().all(|w| *w == 1), "one winner each: {won:?}");
    // The second burst: 7's write fails before its commit; 5 now moves.
    store::failpoints::fail_once(
        store::failpoints::PAYMENT_TRANSITION_BEFORE_COMMIT,
        created[7].instruction.id.as_str(),
        "cancelled",
    );
    for (n, task) in [spawn(7, "queued"), spawn(5, "queued")] {
        match (n, task.await.unwrap()) {
            (7, Err(StoreError::Injected { .. })) => {}
            (5, Ok(p)) => assert_eq!(p.status, "cancelled"),
            (n, other) => panic!("payment {n}: unexpected {other:?}"),
        }
    }
    for (n, p) in created.iter().enumerate() {
        let stored = store.get_payment(&p.instruction.id).await.unwrap().unwrap();
        let history = store.payment_history(&p.instruction.id).await.unwrap();
        let events = store
            .list_events(&store::EventQuery {
                after_seq: 0,
                object_id: Some(p.instruction.id.to_string()),
                event_type: None,
                limit: 10,
            })
            .await
            .unwrap();
        let moves: Vec<_> = history[2..]
            .iter()
            .map(|h| (h.seq, h.from_status.as_deref(), h.to_status.as_str()))
            .collect();
        let seqs: Vec<i64> = events.iter().skip(1).map(|e| e.object_seq).collect();
        if n == 7 {
            assert_eq!(stored.status, "queued", "payment {n} unchanged");
            assert_eq!((history.len(), events.len()), (2, 1));
        } else if two_steps(n) {
            assert_eq!(stored.status, "cancelled");
            assert_eq!(
                moves,
                [
                    (3, Some("queued"), "submitting"),
                    (4, Some("submitting"), "cancelled")
                ],
                "payment {n}: both steps recorded in order"
            );
            assert_eq!(seqs, [3, 4], "payment {n}: an event per step, in order");
        } else {
            assert_eq!(stored.status, "cancelled");
            assert_eq!(
                moves,
                [(3, Some("queued"), "cancelled")],
                "payment {n}: one change recorded"
            );
            assert_eq!(seqs, [3], "payment {n}: one event for the change");
        }
    }
    // One audit record per step that happened, none for the refused ones.
    let steps_done = (0..PAYMENTS)
        .filter(|n| *n != 7)
        .map(|n| if two_steps(n) { 2 } else { 1 })
        .sum::<usize>();
    let audit = all_audit(store.as_ref()).await;
    assert_eq!(audit.len() - audit_before, steps_done);
    store.close().await;
}

pub(crate) async fn payments_a_reused_end_to_end_id_is_refused_even_with_a_new_key(db: TestDb) {
    let store = db.open().await;
    let first = create(
        store.as_ref(),
        new_payment("main", 100, Some("INV-7"), None),
        "a",
        0,
    )
    .await;
    // After the first key was purged too.
    assert_eq!(
        store
            .idempotency_purge(instant(3 * 86_400, 0))
            .await
            .unwrap(),
        1
    );
    let dup = store
        .create_payment(
            new_payment("main", 100, Some("INV-7"), None),
            claim("b", "h", "{}"),
            create_audit(10),
        )
        .await
        .unwrap();
    assert_eq!(
        dup,
        CreateOutcome::DuplicateEndToEndId {
            existing_payment_id: id_of(&first)
        }
    );
    // Nothing of the refused call stayed: key "b" is free for a corrected request.
    let fixed = create(
        store.as_ref(),
        new_payment("main", 100, Some("INV-8"), None),
        "b",
        11,
    )
    .await;
    assert_eq!(fixed.instruction.end_to_end_id.unwrap().as_str(), "INV-8");
    // The same end-to-end id on another debtor account is another business.
    create(
        store.as_ref(),
        new_payment("other", 100, Some("INV-7"), None),
        "c",
        12,
    )
    .await;
    store.close().await;
}

/// A new payment due at once, claimed by worker `w1`: its id and fencing token.
async fn claimed_one(store: &dyn Store, key: &str) -> (PaymentId, i64) {
    let p = create(
        store,
        new_payment("main", 100, None, Some(instant(0, 0))),
        key,
        0,
    )
    .await;
    let claimed = store
        .claim_due_payments(&["queued"], instant(1, 0), "w1", 30_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].payment.instruction.id, p.instruction.id);
    (id_of(&p), claimed[0].fencing_token)
}

pub(crate) async fn payments_transitions_record_history_and_refuse_stale_writers(db: TestDb) {
    let store = db.open().await;
    let (id, token) = claimed_one(store.as_ref(), "k").await;
    assert_eq!(token, 1);

    let submitting = store
        .transition_payment(
            &id,
            guard("queued", Some(token)),
            PaymentChange {
                mark_sent: true,
                next_attempt_at: Some(instant(60, 0)),
                ..change("submitting")
            },
            worker("w1"),
            create_audit(2),
        )
        .await
        .unwrap();
    assert!(submitting.ever_sent);
    assert_eq!(submitting.send_attempts, 1);
    assert_eq!(submitting.first_sent_at, Some(instant(2, 0)));
    assert_eq!(submitting.lease_owner.as_deref(), Some("w1"));

    // A stale status: the transition from `queued` no longer applies.
    let stale = store
        .transition_payment(
            &id,
            guard("queued", Some(token)),
            change("submitting"),
            worker("w1"),
            create_audit(3),
        )
        .await;
    assert!(
        matches!(&stale, Err(StoreError::Conflict { status, fencing_token: 1, .. }) if status == "submitting"),
        "{stale:?}"
    );
    // A stale fencing token: a worker whose lease was taken over.
    let stale_token = store
        .transition_payment(
            &id,
            guard("submitting", Some(token - 1)),
            change("accepted"),
            worker("old"),
            create_audit(3),
        )
        .await;
    assert!(
        matches!(stale_token, Err(StoreError::Conflict { .. })),
        "{stale_token:?}"
    );

    let accepted = store
        .transition_payment(
            &id,
            guard("submitting", Some(token)),
            PaymentChange {
                bank_code: Some("AAAAAAA".to_owned()),
                bank_message: Some("业务受理成功".to_owned()),
                bank_payment_id: Some("B-1".to_owned()),
                release_lease: true,
                ..change("accepted")
            },
            Actor {
                name: "w1".to_owned(),
                request_id: Some("req-9".to_owned()),
            },
            create_audit(4),
        )
        .await
        .unwrap();
    assert_eq!(accepted.status, "accepted");
    assert_eq!(accepted.lease_owner, None);
    assert_eq!(accepted.lease_expires_at, None);
    assert_eq!(accepted.bank_payment_id.as_deref(), Some("B-1"));
    assert_eq!(accepted.last_bank_code.as_deref(), Some("AAAAAAA"));
    assert_eq!(accepted.next_attempt_at, None);
    assert_eq!(accepted.fencing_token, 1);

    // An operator transition without a token still checks the status.
    store
        .transition_payment(
            &id,
            guard("accepted", None),
            change("settled"),
            worker("poller"),
            create_audit(5),
        )
        .await
        .unwrap();

    let history = store.payment_history(&id).await.unwrap();
    let steps: Vec<_> = history
        .iter()
        .map(|h| (h.seq, h.to_status.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (1, "received"),
            (2, "queued"),
            (3, "submitting"),
            (4, "accepted"),
            (5, "settled")
        ]
    );
    assert_eq!(history[3].bank_message.as_deref(), Some("业务受理成功"));
    assert_eq!(history[3].request_id.as_deref(), Some("req-9"));
    assert_eq!(history[3].at, instant(4, 0));
    // Create + 3 transitions audited; the refused ones left nothing.
    assert_eq!(all_audit(store.as_ref()).await.len(), 4);

    let missing = store
        .transition_payment(
            &PaymentId::generate(&OsRandom),
            guard("queued", None),
            change("cancelled"),
            worker("x"),
            create_audit(6),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    store.close().await;
}

/// A payment's events, oldest first (up to 20).
async fn events_of(store: &dyn Store, id: &PaymentId) -> Vec<store::StoredEvent> {
    store
        .list_events(&store::EventQuery {
            after_seq: 0,
            object_id: Some(id.to_string()),
            event_type: None,
            limit: 20,
        })
        .await
        .unwrap()
}

/// Several changes at once (`transition_payment_steps`), as a worker applies a bank answer
/// that accepted and already settled the payment: every step's history row, event and
/// audit record, or nothing (a failure in the last step takes the first back); guarded by
/// the status and fencing token as one change is; misuse refused before anything is written.
pub(crate) async fn payments_several_changes_apply_together_or_not_at_all(db: TestDb) {
    let store = db.open().await;
    let (id, token) = claimed_one(store.as_ref(), "steps").await;
    store
        .transition_payment(
            &id,
            guard("queued", Some(token)),
            PaymentChange {
                mark_sent: true,
                ..change("submitting")
            },
            worker("w1"),
            create_audit(2),
        )
        .await
        .unwrap();
    let accepted_then_settled = |release: bool| {
        vec![
            PaymentStep {
                change: PaymentChange {
                    bank_code: Some("AAAAAAA".into()),
                    bank_payment_id: Some("BANK-1".into()),
                    next_attempt_at: Some(instant(30, 0)),
                    ..change("accepted")
                },
                audit: create_audit(3),
            },
            PaymentStep {
                change: PaymentChange {
                    next_attempt_at: Some(instant(90, 0)),
                    release_lease: release,
                    ..change("settled")
                },
                audit: create_audit(3),
            },
        ]
    };
    let counts = |store: Arc<dyn Store>, id: PaymentId| async move {
        let history = store.payment_history(&id).await.unwrap().len();
        let events = events_of(store.as_ref(), &id).await.len();
        (history, events, all_audit(store.as_ref()).await.len())
    };
    let before = counts(Arc::clone(&store), id.clone()).await;

    // Misuse: no step, too many, a lease released before the last step.
    let mut misuse = vec![
        Vec::new(),
        accepted_then_settled(true)
            .into_iter()
            .cycle()
            .take(store::TRANSITION_STEPS_MAX + 1)
            .collect(),
    ];
    let mut early_release = accepted_then_settled(true);
    early_release[0].change.release_lease = true;
    misuse.push(early_release);
    for steps in misuse {
        let n = steps.len();
        let refused = store
            .transition_payment_steps(&id, guard("submitting", Some(token)), steps, worker("w1"))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Invalid { .. })),
            "{n} steps: {refused:?}"
        );
    }
    // A stale status and a stale token: refused as one change would be.
    for stale in [
        guard("queued", Some(token)),
        guard("submitting", Some(token + 1)),
    ] {
        let refused = store
            .transition_payment_steps(&id, stale, accepted_then_settled(true), worker("w1"))
            .await;
        assert!(
            matches!(&refused, Err(StoreError::Conflict { status, .. }) if status == "submitting"),
            "{refused:?}"
        );
    }
    // The last step fails before the commit: the first is taken back with it.
    store::failpoints::fail_once(
        store::failpoints::PAYMENT_TRANSITION_BEFORE_COMMIT,
        id.as_str(),
        "settled",
    );
    let failed = store
        .transition_payment_steps(
            &id,
            guard("submitting", Some(token)),
            accepted_then_settled(true),
            worker("w1"),
        )
        .await;
    assert!(
        matches!(failed, Err(StoreError::Injected { .. })),
        "{failed:?}"
    );
    let unchanged = store.get_payment(&id).await.unwrap().unwrap();
    assert_eq!(unchanged.status, "submitting");
    assert_eq!(unchanged.bank_payment_id, None);
    assert_eq!(counts(Arc::clone(&store), id.clone()).await, before);

    let settled = store
        .transition_payment_steps(
            &id,
            guard("submitting", Some(token)),
            accepted_then_settled(true),
            worker("w1"),
        )
        .await
        .unwrap();
    assert_eq!(settled.status, "settled");
    assert_eq!(settled.bank_payment_id.as_deref(), Some("BANK-1"));
    assert_eq!(settled.last_bank_code.as_deref(), Some("AAAAAAA"));
    assert_eq!(settled.next_attempt_at, Some(instant(90, 0)));
    assert_eq!(
        settled.lease_owner, None,
        "the last step released the lease"
    );
    assert_eq!(store.get_payment(&id).await.unwrap().unwrap(), settled);
    let (history, events, audit) = counts(Arc::clone(&store), id.clone()).await;
    assert_eq!(
        (history, events, audit),
        (before.0 + 2, before.1 + 2, before.2 + 2)
    );
    let rows = store.payment_history(&id).await.unwrap();
    let last_two: Vec<(Option<&str>, &str)> = rows[rows.len() - 2..]
        .iter()
        .map(|h| (h.from_status.as_deref(), h.to_status.as_str()))
        .collect();
    assert_eq!(
        last_two,
        vec![
            (Some("submitting"), "accepted"),
            (Some("accepted"), "settled")
        ]
    );
    assert_eq!(rows[rows.len() - 1].seq, rows[rows.len() - 2].seq + 1);
    store.close().await;
}

/// Several steps, each touching other fields, leave the payment exactly as the same steps
/// applied one at a time would (PostgreSQL folds them into one `UPDATE` of the row,
/// `postgres/transitions.rs`; SQLite applies them in turn, so this test holds both to the
/// same answer): the send counted once with its instant, each bank field the last value a
/// step gave (an earlier one kept where a later step gave none), one version per step, the
/// last step's instant; one history row, event and audit record per step, each event
/// saying its own step's status and instant.
pub(crate) async fn payments_several_changes_end_as_their_steps_one_by_one(db: TestDb) {
    let store = db.open().await;
    let (id, token) = claimed_one(store.as_ref(), "fold").await;
    let before = store.get_payment(&id).await.unwrap().unwrap();
    let steps = vec![
        PaymentStep {
            change: PaymentChange {
                mark_sent: true,
                next_attempt_at: Some(instant(40, 0)),
                ..change("submitting")
            },
            audit: create_audit(2),
        },
        PaymentStep {
            change: PaymentChange {
                bank_code: Some("AAAAAAA".into()),
                bank_message: Some("受理成功".into()),
                bank_payment_id: Some("BANK-7".into()),
                ..change("accepted")
            },
            audit: create_audit(3),
        },
        PaymentStep {
            change: PaymentChange {
                bank_message: Some("已入账".into()),
                next_attempt_at: Some(instant(90, 0)),
                release_lease: true,
                ..change("settled")
            },
            audit: create_audit(4),
        },
    ];
    let settled = store
        .transition_payment_steps(&id, guard("queued", Some(token)), steps, worker("w1"))
        .await
        .unwrap();
    assert_eq!(settled.status, "settled");
    assert!(settled.ever_sent);
    assert_eq!(settled.send_attempts, before.send_attempts + 1);
    assert_eq!(settled.first_sent_at, Some(instant(2, 0)));
    assert_eq!(settled.last_sent_at, Some(instant(2, 0)));
    assert_eq!(settled.last_bank_code.as_deref(), Some("AAAAAAA"));
    assert_eq!(settled.last_bank_message.as_deref(), Some("已入账"));
    assert_eq!(settled.bank_payment_id.as_deref(), Some("BANK-7"));
    assert_eq!(settled.next_attempt_at, Some(instant(90, 0)));
    assert_eq!(
        (settled.lease_owner.as_deref(), settled.lease_expires_at),
        (None, None)
    );
    assert_eq!(settled.fencing_token, token);
    assert_eq!(settled.version, before.version + 3, "one version per step");
    assert_eq!(settled.updated_at, instant(4, 0));
    assert_eq!(store.get_payment(&id).await.unwrap().unwrap(), settled);
    let history = store.payment_history(&id).await.unwrap();
    let moves: Vec<_> = history[2..]
        .iter()
        .map(|h| (h.seq, h.at, h.from_status.as_deref(), h.to_status.as_str()))
        .collect();
    assert_eq!(
        moves,
        [
            (3, instant(2, 0), Some("queued"), "submitting"),
            (4, instant(3, 0), Some("submitting"), "accepted"),
            (5, instant(4, 0), Some("accepted"), "settled"),
        ]
    );
    let events = events_of(store.as_ref(), &id).await;
    let said: Vec<_> = events
        .iter()
        .skip(1)
        .map(|e| {
            (
                e.object_seq,
                e.occurred_at,
                e.data["status"].as_str().unwrap_or_default().to_owned(),
                e.data["previous_status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e.data["bank_code"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        said,
        [
            (3, instant(2, 0), "submitting".into(), "queued".into(), None),
            (
                4,
                instant(3, 0),
                "accepted".into(),
                "submitting".into(),
                Some("AAAAAAA".into())
            ),
            (5, instant(4, 0), "settled".into(), "accepted".into(), None),
        ]
    );
    store.close().await;
}

pub(crate) async fn payments_leases_expire_and_reclaims_draw_larger_tokens(db: TestDb) {
    let store = db.open().await;
    let due = create(
        store.as_ref(),
        new_payment("main", 100, None, Some(instant(10, 0))),
        "a",
        0,
    )
    .await;
    let later = create(
        store.as_ref(),
        new_payment("main", 100, None, Some(instant(100, 0))),
        "b",
        0,
    )
    .await;
    let id = id_of(&due);
    // Not yet due.
    assert!(store
        .claim_due_payments(&["queued"], instant(5, 0), "w1", 10_000, 10)
        .await
        .unwrap()
        .is_empty());
    // Wrong status.
    assert!(store
        .claim_due_payments(&["unknown"], instant(20, 0), "w1", 10_000, 10)
        .await
        .unwrap()
        .is_empty());
    let first = store
        .claim_due_payments(&["queued"], instant(20, 0), "w1", 10_000, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(id_of(&first[0].payment), id);
    assert_eq!(first[0].payment.lease_expires_at, Some(instant(30, 0)));
    // Due again when the lease ends, should its holder write nothing back.
    assert_eq!(first[0].payment.next_attempt_at, Some(instant(30, 0)));
    // Held: nobody else gets it while the lease lives.
    assert!(store
        .claim_due_payments(&["queued"], instant(29, 0), "w2", 10_000, 10)
        .await
        .unwrap()
        .is_empty());
    store
        .transition_payment(
            &id,
            guard("queued", Some(first[0].fencing_token)),
            PaymentChange {
                mark_sent: true,
                next_attempt_at: Some(instant(30, 0)),
                ..change("submitting")
            },
            worker("w1"),
            create_audit(21),
        )
        .await
        .unwrap();
    // The reaper sees it only once the lease expired.
    assert!(store
        .expired_submitting(instant(29, 0), 10)
        .await
        .unwrap()
        .is_empty());
    let expired = store.expired_submitting(instant(31, 0), 10).await.unwrap();
    assert_eq!(expired.len(), 1);
    let reaped = store
        .transition_payment(
            &id,
            guard("submitting", Some(expired[0].fencing_token)),
            PaymentChange {
                next_attempt_at: Some(instant(31, 0)),
                release_lease: true,
                ..change("unknown")
            },
            worker("reaper"),
            create_audit(31),
        )
        .await
        .unwrap();
    assert_eq!(reaped.status, "unknown");

    // The poller re-claims with a larger token; the first worker's write-back fails.
    let second = store
        .claim_due_payments(&["unknown", "queued"], instant(40, 0), "w2", 10_000, 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(id_of(&second[0].payment), id);
    assert!(second[0].fencing_token > first[0].fencing_token);
    let late = store
        .transition_payment(
            &id,
            guard("submitting", Some(first[0].fencing_token)),
            change("accepted"),
            worker("w1"),
            create_audit(41),
        )
        .await;
    assert!(matches!(late, Err(StoreError::Conflict { .. })), "{late:?}");
    // The second claimer holds it until 50, when it would be due again.
    assert_eq!(second[0].payment.next_attempt_at, Some(instant(50, 0)));
    // Rescheduling with a stale token fails; with the current one it frees the payment,
    // due at the time given.
    assert!(matches!(
        store
            .reschedule_payment(&id, first[0].fencing_token, Some(instant(41, 0)))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .reschedule_payment(&id, second[0].fencing_token, Some(instant(41, 0)))
        .await
        .unwrap();
    let third = store
        .claim_due_payments(&["unknown"], instant(41, 0), "w3", 10_000, 10)
        .await
        .unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].fencing_token, second[0].fencing_token + 1);
    // Its holder writes nothing back: held until its lease ends at 51, then claimed again.
    assert!(store
        .claim_due_payments(&["unknown"], instant(50, 0), "w4", 10_000, 10)
        .await
        .unwrap()
        .is_empty());
    let fourth = store
        .claim_due_payments(&["unknown"], instant(52, 0), "w4", 10_000, 10)
        .await
        .unwrap();
    assert_eq!(fourth.len(), 1);
    assert_eq!(fourth[0].fencing_token, third[0].fencing_token + 1);
    // Rescheduled to nothing (the poller's end of a return watch): never due again.
    store
        .reschedule_payment(&id, fourth[0].fencing_token, None)
        .await
        .unwrap();
    assert!(store
        .claim_due_payments(&["unknown"], instant(10_000, 0), "w5", 10_000, 10)
        .await
        .unwrap()
        .is_empty());
    // The other payment was never touched.
    let untouched = store.get_payment(&id_of(&later)).await.unwrap().unwrap();
    assert_eq!(untouched.fencing_token, 0);
    assert_eq!(untouched.lease_owner, None);
    store.close().await;
}

pub(crate) async fn payments_concurrent_claimers_get_disjoint_payments(db: TestDb) {
    const PAYMENTS: usize = 60;
    const CLAIMERS: usize = 6;
    let store = db.open().await;
    let mut ids = HashSet::new();
    for n in 0..PAYMENTS {
        let p = create(
            store.as_ref(),
            new_payment("main", 100, None, Some(instant(0, 0))),
            &format!("k{n}"),
            0,
        )
        .await;
        ids.insert(id_of(&p));
    }
    let tasks: Vec<_> = (0..CLAIMERS)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim_due_payments(&["queued"], instant(1, 0), &format!("w{n}"), 60_000, 4)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        break mine;
                    }
                    let got: Vec<_> = got.into_iter().map(|c| id_of(&c.payment)).collect();
                    // Each claim comes back in id order.
                    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
                    mine.extend(got);
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for task in tasks {
        for id in task.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "a payment was claimed twice");
        }
    }
    assert_eq!(total, PAYMENTS);
    assert_eq!(seen, ids);
    store.close().await;
}

pub(crate) async fn payments_list_filters_and_pages_stably(db: TestDb) {
    let store = db.open().await;
    let mut main_ids = Vec::new();
    for n in 0..7 {
        // Pairs share a created_at, so paging must break ties by id.
        let p = create(
            store.as_ref(),
            new_payment("main", 100 + n, None, None),
            &format!("m{n}"),
            n / 2,
        )
        .await;
        main_ids.push((p.created_at, id_of(&p)));
    }
    main_ids.sort();
    let other = create(store.as_ref(), new_payment("ops", 5, None, None), "o", 1).await;
    store
        .transition_payment(
            &id_of(&other),
            guard("queued", None),
            change("cancelled"),
            worker("erp"),
            create_audit(2),
        )
        .await
        .unwrap();

    let main_only = Some(vec![AccountId::parse("main").unwrap()]);
    let mut q = PaymentQuery {
        account_ids: main_only.clone(),
        limit: 3,
        ..PaymentQuery::default()
    };
    let mut paged = Vec::new();
    loop {
        let page = store.list_payments(&q).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        q.after = Some(PaymentCursor {
            created_at: last.created_at,
            id: id_of(last),
        });
        paged.extend(page.iter().map(|p| (p.created_at, id_of(p))));
    }
    assert_eq!(paged, main_ids);

    let cancelled = store
        .list_payments(&PaymentQuery {
            status: Some("cancelled".to_owned()),
            ..PaymentQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(id_of(&cancelled[0]), id_of(&other));

    let window = store
        .list_payments(&PaymentQuery {
            created_from: Some(instant(1, 0)),
            created_before: Some(instant(2, 0)),
            ..PaymentQuery::default()
        })
        .await
        .unwrap();
    // m2, m3 and the ops payment were created at second 1.
    assert_eq!(window.len(), 3);

    let nothing = store
        .list_payments(&PaymentQuery {
            account_ids: Some(Vec::new()),
            ..PaymentQuery::default()
        })
        .await
        .unwrap();
    assert!(nothing.is_empty());
    let bad = store
        .list_payments(&PaymentQuery {
            status: Some("paid".to_owned()),
            ..PaymentQuery::default()
        })
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid { .. })), "{bad:?}");
    store.close().await;
}

pub(crate) async fn payments_create_is_all_or_nothing(db: TestDb) {
    let store = db.open().await;
    // The payment row breaks a schema limit: no key, no history, no audit remain.
    let mut too_long = new_payment("main", 100, Some("E2E-X"), None);
    too_long.instruction.remittance = "x".repeat(1025);
    let refused = store
        .create_payment(too_long, claim("k", "h", "{}"), create_audit(0))
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid { reason }) if reason.contains("payment_remittance_length")),
        "{refused:?}"
    );
    // The audit record, written last, breaks its limit: the payment goes too.
    let mut bad_audit = create_audit(0);
    bad_audit.outcome = "o".repeat(300);
    let payment = new_payment("main", 100, Some("E2E-X"), None);
    let id = payment.instruction.id.clone();
    let refused = store
        .create_payment(payment, claim("k", "h", "{}"), bad_audit)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid { .. })),
        "{refused:?}"
    );
    assert_eq!(store.get_payment(&id).await.unwrap(), None);
    assert!(store.payment_history(&id).await.unwrap().is_empty());
    assert!(all_audit(store.as_ref()).await.is_empty());
    // A too-short retention is refused before anything is tried.
    let short = IdempotencyClaim {
        expires_at: instant(3600, 0),
        ..claim("k", "h", "{}")
    };
    assert!(matches!(
        store
            .create_payment(new_payment("main", 1, None, None), short, create_audit(0))
            .await,
        Err(StoreError::Invalid { .. })
    ));
    // Key and end-to-end id are both still free.
    create(
        store.as_ref(),
        new_payment("main", 100, Some("E2E-X"), None),
        "k",
        1,
    )
    .await;
    // A failed transition writes nothing either.
    let p = store.list_payments(&PaymentQuery::default()).await.unwrap();
    let bad = store
        .transition_payment(
            &id_of(&p[0]),
            guard("queued", None),
            PaymentChange {
                bank_message: Some("m".repeat(1025)),
                ..change("failed")
            },
            worker("w"),
            create_audit(2),
        )
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid { .. })), "{bad:?}");
    let after = store.get_payment(&id_of(&p[0])).await.unwrap().unwrap();
    assert_eq!(after.status, "queued");
    assert_eq!(store.payment_history(&id_of(&p[0])).await.unwrap().len(), 2);
    store.close().await;
}

pub(crate) async fn payments_purge_deletes_only_expired_keys(db: TestDb) {
    let store = db.open().await;
    create(store.as_ref(), new_payment("main", 1, None, None), "a", 0).await;
    let mut late = claim("b", "h", "{}");
    late.expires_at = instant(10 * 86_400, 0);
    store
        .create_payment(new_payment("main", 2, None, None), late, create_audit(0))
        .await
        .unwrap();
    assert_eq!(store.idempotency_purge(instant(60, 0)).await.unwrap(), 0);
    assert_eq!(
        store
            .idempotency_purge(instant(2 * 86_400, 0))
            .await
            .unwrap(),
        1
    );
    // "a" is free again; "b" still replays.
    create(
        store.as_ref(),
        new_payment("main", 3, None, None),
        "a",
        2 * 86_400,
    )
    .await;
    assert!(matches!(
        store
            .create_payment(
                new_payment("main", 4, None, None),
                claim("b", "h", "{}"),
                create_audit(5)
            )
            .await
            .unwrap(),
        CreateOutcome::Replay { .. }
    ));
    store.close().await;
}

/// A stored key reads back with its hash and its answer (regression: on
/// PostgreSQL the INTEGER status once failed to decode, and a retry whose
/// first answer was lost got a 503 for ever).
pub(crate) async fn payments_a_stored_idempotency_key_reads_back(db: TestDb) {
    let store = db.open().await;
    assert_eq!(
        store.find_idempotency_key("erp", "k-find").await.unwrap(),
        None
    );
    let new = new_payment("main", 500, None, Some(instant(0, 0)));
    let body = r#"{"status":"queued"}"#;
    match store
        .create_payment(new, claim("k-find", "hash-f", body), create_audit(0))
        .await
        .unwrap()
    {
        CreateOutcome::Created(_) => {}
        other => panic!("{other:?}"),
    }
    let found = store
        .find_idempotency_key("erp", "k-find")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.request_hash, "hash-f");
    assert!(found.completed);
    assert_eq!(found.response_status, Some(201));
    assert_eq!(found.response_body.as_deref(), Some(body));
    assert_eq!(
        store
            .find_idempotency_key("other-client", "k-find")
            .await
            .unwrap(),
        None
    );
    store.close().await;
}

/// A payment instruction for other suite files.
pub(crate) fn instruction_for_suite(acct: &str, minor: i64) -> PaymentInstruction {
    instruction(acct, minor, None)
}

/// `create` for other suite files.
pub(crate) async fn create_for_suite(
    store: &dyn Store,
    new: NewPayment,
    key: &str,
    at_s: i64,
) -> StoredPayment {
    create(store, new, key, at_s).await
}
