//! Payment batches, generic over the backend (listed in the `suite!` of `suite.rs`): create
//! with its idempotency key, all-or-nothing checks, the chunk work queue and
//! compare-and-set transitions with per-item results, the derived batch status and its
//! events, cancel.

use domain::{
    AccountId, BankReference, BatchId, BatchItemId, BusinessDate, CnapsCode, CreditorType,
    Currency, ItemStatus, Money, OsRandom,
};
use store::{
    Actor, CancelBatchOutcome, CreateBatchOutcome, EventQuery, EventType, IdempotencyClaim,
    ItemResult, ItemUpdate, NewAuditRecord, NewBatch, NewBatchChunk, NewBatchItem, PaymentChange,
    Store, StoreError, StoredBatch, TransitionGuard,
};

use crate::{instant, record, TestDb};

fn reference(tag: &str) -> BankReference {
    let id = BatchItemId::generate(&OsRandom);
    BankReference::parse(&format!("{tag}{}", &id.as_str()[4..24])).unwrap()
}

/// A batch of `amounts` (minor units, CNY) in chunks of `chunk_size`.
pub(crate) fn new_batch(amounts: &[i64], chunk_size: usize, control_sum: i64) -> NewBatch {
    let chunk_count = amounts.len().div_ceil(chunk_size);
    NewBatch {
        id: BatchId::generate(&OsRandom),
        client_id: "erp".to_owned(),
        debtor_account_id: AccountId::parse("main").unwrap(),
        kind: "payroll".to_owned(),
        requested_execution_date: BusinessDate::from_ymd(2026, 11, 27).unwrap(),
        business_reference: reference("B"),
        control_sum: Money::from_minor(control_sum, Currency::CNY),
        chunk_status: "queued".to_owned(),
        cause: "no_approval_needed".to_owned(),
        chunks: (1..=chunk_count)
            .map(|n| NewBatchChunk {
                chunk_no: n as i64,
                business_reference: reference("C"),
            })
            .collect(),
        items: amounts
            .iter()
            .enumerate()
            .map(|(i, minor)| NewBatchItem {
                id: BatchItemId::generate(&OsRandom),
                chunk_no: (i / chunk_size + 1) as i64,
                business_reference: reference("I"),
                amount: Money::from_minor(*minor, Currency::CNY),
                creditor_name: format!("员工{i}"),
                creditor_account: format!("62220212345678{i:05}"),
                creditor_bank_code: Some(CnapsCode::parse("308290003020").unwrap()),
                creditor_bic: None,
                creditor_bank_name: None,
                creditor_type: CreditorType::Personal,
                remittance: "十一月工资".to_owned(),
                purpose: None,
                end_to_end_id: None,
            })
            .collect(),
        next_attempt_at: Some(instant(0, 0)),
        approvals_required: 0,
        on_behalf_of: None,
    }
}

pub(crate) fn claim(key: &str, hash: &str) -> IdempotencyClaim {
    IdempotencyClaim {
        client_id: "erp".to_owned(),
        key: key.to_owned(),
        request_hash: hash.to_owned(),
        expires_at: instant(200_000, 0),
        response_status: 201,
        response_body: "{\"batch\":1}".to_owned(),
    }
}

pub(crate) fn audit(at_s: i64) -> NewAuditRecord {
    NewAuditRecord {
        at: instant(at_s, 0),
        ..record("erp", "batch.create", "batch")
    }
}

pub(crate) async fn create(store: &dyn Store, new: NewBatch, key: &str) -> StoredBatch {
    match store
        .create_batch(new, claim(key, "h"), audit(10))
        .await
        .unwrap()
    {
        CreateBatchOutcome::Created(b) => *b,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn change(to: &str, mark_sent: bool) -> PaymentChange {
    PaymentChange {
        to_status: to.to_owned(),
        cause: format!("to_{to}"),
        bank_code: None,
        bank_message: None,
        bank_payment_id: None,
        mark_sent,
        next_attempt_at: Some(instant(0, 0)),
        release_lease: true,
    }
}

fn worker() -> Actor {
    Actor {
        name: "dispatcher".to_owned(),
        request_id: None,
    }
}

async fn batch_events(store: &dyn Store, id: &BatchId) -> Vec<store::StoredEvent> {
    store
        .list_events(&EventQuery {
            object_id: Some(id.as_str().to_owned()),
            ..EventQuery::default()
        })
        .await
        .unwrap()
}

pub(crate) async fn batches_create_replays_and_refuses_bad_sums(db: TestDb) {
    let store = db.open().await;
    let new = new_batch(&[100, 200, 300, 400, 500], 2, 1500);
    let id = new.id.clone();
    let batch = create(store.as_ref(), new.clone(), "k1").await;
    assert_eq!(batch.status, "queued");
    assert_eq!(batch.item_count, 5);
    assert_eq!(batch.chunks.len(), 3);
    assert_eq!(
        batch
            .chunks
            .iter()
            .map(|c| c.item_count)
            .collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    assert_eq!(batch.item_counts, vec![("pending".to_owned(), 5)]);
    let items = store.batch_items(&id, None, 0, 0).await.unwrap();
    assert_eq!(
        items.iter().map(|i| i.amount.minor()).collect::<Vec<_>>(),
        vec![100, 200, 300, 400, 500]
    );
    assert_eq!(items[4].chunk_no, 3);
    assert_eq!(items[0].creditor_name, "员工0");
    let page = store.batch_items(&id, None, 2, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|i| i.item_no).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let events = batch_events(store.as_ref(), &id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::PaymentBatchStatusChanged);
    assert_eq!(events[0].data["status"], "queued");
    assert_eq!(events[0].data["control_sum"], "15.00");

    // The same key: a replay (same hash) or a reuse (another), nothing written.
    let again = store
        .create_batch(new_batch(&[1], 1, 1), claim("k1", "h"), audit(11))
        .await
        .unwrap();
    assert!(
        matches!(again, CreateBatchOutcome::Replay { status: 201, .. }),
        "{again:?}"
    );
    let reused = store
        .create_batch(new_batch(&[1], 1, 1), claim("k1", "other"), audit(11))
        .await
        .unwrap();
    assert_eq!(reused, CreateBatchOutcome::KeyReused);

    // A wrong control sum or an empty chunk is refused and leaves nothing, not even the key.
    let bad = new_batch(&[100, 200], 2, 301);
    let bad_id = bad.id.clone();
    assert!(matches!(
        store.create_batch(bad, claim("k2", "h"), audit(12)).await,
        Err(StoreError::Invalid { reason }) if reason.contains("control sum")
    ));
    assert!(store.get_batch(&bad_id).await.unwrap().is_none());
    let mut empty_chunk = new_batch(&[100, 200], 1, 300);
    empty_chunk.items[1].chunk_no = 1;
    assert!(matches!(
        store.create_batch(empty_chunk, claim("k2", "h"), audit(12)).await,
        Err(StoreError::Invalid { reason }) if reason.contains("no items")
    ));
    assert!(store
        .find_idempotency_key("erp", "k2")
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.batch_items(&bad_id, None, 0, 0).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(crate) async fn batches_chunks_walk_the_state_machine_with_per_item_results(db: TestDb) {
    let store = db.open().await;
    let new = new_batch(&[100, 200, 300], 2, 600);
    let id = new.id.clone();
    create(store.as_ref(), new, "k").await;
    let claimed = store
        .claim_due_chunks(&["queued"], instant(100, 0), "w1", 30_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].batch.id, id);
    let (c1, c2) = (&claimed[0].chunk, &claimed[1].chunk);
    assert_eq!((c1.chunk_no, c2.chunk_no), (1, 2));
    // Leased: a second claimer gets nothing.
    assert!(store
        .claim_due_chunks(&["queued"], instant(101, 0), "w2", 30_000, 10)
        .await
        .unwrap()
        .is_empty());

    let guard = |from: &str, token| TransitionGuard {
        from_status: from.to_owned(),
        fencing_token: Some(token),
    };
    let at = |s| NewAuditRecord {
        at: instant(s, 0),
        ..record("dispatcher", "batch.chunk", "batch")
    };
    let b = store
        .transition_chunk(
            &id,
            1,
            guard("queued", c1.fencing_token),
            change("submitting", true),
            ItemUpdate::None,
            worker(),
            at(102),
        )
        .await
        .unwrap();
    assert_eq!(b.status, "submitting");
    assert!(b.chunks[0].ever_sent);
    // A stale token is refused and writes nothing.
    let stale = store
        .transition_chunk(
            &id,
            2,
            guard("queued", c2.fencing_token - 1),
            change("submitting", true),
            ItemUpdate::None,
            worker(),
            at(102),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );

    let b = store
        .transition_chunk(
            &id,
            1,
            guard("submitting", c1.fencing_token),
            change("accepted", false),
            ItemUpdate::AllOpen {
                status: ItemStatus::Accepted,
                bank_code: Some("ACC".to_owned()),
                bank_message: None,
            },
            worker(),
            at(103),
        )
        .await
        .unwrap();
    assert_eq!(b.status, "submitting", "chunk 2 is still queued");
    // Chunk 2 is rejected as a whole by the bank.
    store
        .transition_chunk(
            &id,
            2,
            guard("queued", c2.fencing_token),
            change("submitting", true),
            ItemUpdate::None,
            worker(),
            at(104),
        )
        .await
        .unwrap();
    let b = store
        .transition_chunk(
            &id,
            2,
            guard("submitting", c2.fencing_token),
            change("failed", false),
            ItemUpdate::AllOpen {
                status: ItemStatus::Failed,
                bank_code: Some("INSUFFICIENT_FUNDS".to_owned()),
                bank_message: Some("余额不足".to_owned()),
            },
            worker(),
            at(105),
        )
        .await
        .unwrap();
    assert_eq!(b.status, "accepted");

    // The bank finishes chunk 1: item 1 settled, item 2 rejected alone.
    let items = store.batch_items(&id, Some(1), 0, 0).await.unwrap();
    let results = vec![
        ItemResult {
            business_reference: items[0].business_reference.as_str().to_owned(),
            status: ItemStatus::Settled,
            bank_code: None,
            bank_message: None,
        },
        ItemResult {
            business_reference: items[1].business_reference.as_str().to_owned(),
            status: ItemStatus::Failed,
            bank_code: Some("INVALID_ACCOUNT".to_owned()),
            bank_message: Some("收款账号不存在".to_owned()),
        },
    ];
    let b = store
        .transition_chunk(
            &id,
            1,
            guard("accepted", c1.fencing_token),
            change("settled", false),
            ItemUpdate::Each(results.clone()),
            worker(),
            at(106),
        )
        .await
        .unwrap();
    assert_eq!(b.status, "completed");
    assert_eq!(
        b.item_counts,
        vec![("failed".to_owned(), 2), ("settled".to_owned(), 1)]
    );
    let all = store.batch_items(&id, None, 0, 0).await.unwrap();
    assert_eq!(all[1].status, ItemStatus::Failed);
    assert_eq!(all[1].bank_code.as_deref(), Some("INVALID_ACCOUNT"));
    assert_eq!(all[2].bank_message.as_deref(), Some("余额不足"));

    // Events: one per status change, then completed; sequences ascend by one.
    let events = batch_events(store.as_ref(), &id).await;
    let kinds: Vec<(&str, i64, String)> = events
        .iter()
        .map(|e| {
            (
                e.event_type.as_str(),
                e.object_seq,
                e.data["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("payment_batch.status_changed", 1, "queued".to_owned()),
            ("payment_batch.status_changed", 2, "submitting".to_owned()),
            ("payment_batch.status_changed", 3, "accepted".to_owned()),
            ("payment_batch.status_changed", 4, "completed".to_owned()),
            ("payment_batch.completed", 5, "completed".to_owned()),
        ]
    );

    // A late, repeated answer moves nothing backwards and emits nothing.
    let b = store
        .transition_chunk(
            &id,
            1,
            guard("settled", c1.fencing_token),
            change("settled", false),
            ItemUpdate::Each(results),
            worker(),
            at(107),
        )
        .await
        .unwrap();
    assert_eq!(b.event_seq, 5);
    assert_eq!(batch_events(store.as_ref(), &id).await.len(), 5);
}

pub(crate) async fn batches_cancel_only_before_any_send(db: TestDb) {
    let store = db.open().await;
    let who = || Actor {
        name: "erp".to_owned(),
        request_id: Some("req-1".to_owned()),
    };
    let cancel_audit = || NewAuditRecord {
        at: instant(50, 0),
        ..record("erp", "batch.cancel", "batch")
    };
    let first = new_batch(&[100, 200], 1, 300);
    let first_id = first.id.clone();
    create(store.as_ref(), first, "c1").await;
    match store
        .cancel_batch(&first_id, who(), cancel_audit())
        .await
        .unwrap()
    {
        CancelBatchOutcome::Cancelled(b) => {
            assert_eq!(b.status, "cancelled");
            assert_eq!(b.item_counts, vec![("cancelled".to_owned(), 2)]);
            assert!(b
                .chunks
                .iter()
                .all(|c| c.status == "cancelled" && c.next_attempt_at.is_none()));
        }
        other => panic!("{other:?}"),
    }
    assert!(store
        .claim_due_chunks(&["queued"], instant(100, 0), "w", 30_000, 10)
        .await
        .unwrap()
        .is_empty());

    let second = new_batch(&[100, 200], 1, 300);
    let second_id = second.id.clone();
    create(store.as_ref(), second, "c2").await;
    let claimed = store
        .claim_due_chunks(&["queued"], instant(100, 0), "w", 30_000, 1)
        .await
        .unwrap();
    store
        .transition_chunk(
            &second_id,
            claimed[0].chunk.chunk_no,
            TransitionGuard {
                from_status: "queued".to_owned(),
                fencing_token: Some(claimed[0].chunk.fencing_token),
            },
            change("submitting", true),
            ItemUpdate::None,
            worker(),
            NewAuditRecord {
                at: instant(101, 0),
                ..record("dispatcher", "batch.chunk", "batch")
            },
        )
        .await
        .unwrap();
    let refused = store
        .cancel_batch(&second_id, who(), cancel_audit())
        .await
        .unwrap();
    assert!(
        matches!(refused, CancelBatchOutcome::NotCancellable { .. }),
        "{refused:?}"
    );
    let after = store.get_batch(&second_id).await.unwrap().unwrap();
    assert_eq!(after.status, "submitting");
    assert_eq!(after.item_counts, vec![("pending".to_owned(), 2)]);
}
