//! The event outbox, generic over the backend (listed in the `suite!` of `suite.rs`): every
//! payment change and every booked entry writes its event in the same transaction, ids are
//! stable and per-object sequences ascend, and a write that rolls back leaves no event.

use domain::{Direction, EntryId, EntryStatus, OsRandom, StatementEntry};
use store::{
    failpoints, EventQuery, EventType, IngestEntry, NewAuditRecord, Store, StoreError,
    TransitionGuard,
};

use crate::payments::{change_to, create_one, worker_actor};
use crate::{account, instant, record, TestDb};

async fn events_of(store: &dyn Store, object_id: &str) -> Vec<store::StoredEvent> {
    store
        .list_events(&EventQuery {
            object_id: Some(object_id.to_owned()),
            ..EventQuery::default()
        })
        .await
        .unwrap()
}

pub(crate) async fn events_payment_changes_write_one_event_each(db: TestDb) {
    let store = db.open().await;
    let p = create_one(store.as_ref(), "main", 12_345, "ev-1", 10).await;
    let id = p.instruction.id.as_str().to_owned();
    let created = events_of(store.as_ref(), &id).await;
    assert_eq!(created.len(), 1, "one event for the created payment");
    let e = &created[0];
    assert_eq!(e.event_type, EventType::PaymentStatusChanged);
    assert_eq!(e.object_type, "payment");
    assert_eq!(e.object_seq, 2, "the sequence is the newest history row's");
    assert_eq!(e.id, format!("evt_{id}_2"));
    assert_eq!(e.account_id, "main");
    assert_eq!(e.data["status"], "queued");
    assert_eq!(e.data["previous_status"], serde_json::Value::Null);
    assert_eq!(e.data["amount"], "123.45");
    assert_eq!(e.data["currency"], "CNY");

    store
        .transition_payment(
            &p.instruction.id,
            TransitionGuard {
                from_status: "queued".to_owned(),
                fencing_token: None,
            },
            change_to("cancelled"),
            worker_actor("ops"),
            NewAuditRecord {
                at: instant(20, 0),
                ..record("ops", "payment.cancel", "payment")
            },
        )
        .await
        .unwrap();
    let all = events_of(store.as_ref(), &id).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].object_seq, 3);
    assert_eq!(all[1].data["status"], "cancelled");
    assert_eq!(all[1].data["previous_status"], "queued");
    assert_eq!(all[1].occurred_at, instant(20, 0));
    assert!(all[1].seq > all[0].seq);
}

pub(crate) async fn events_a_rolled_back_change_emits_nothing(db: TestDb) {
    let store = db.open().await;
    let p = create_one(store.as_ref(), "main", 500, "ev-rb", 10).await;
    let id = p.instruction.id.as_str().to_owned();
    failpoints::fail_once(
        failpoints::PAYMENT_TRANSITION_BEFORE_COMMIT,
        &id,
        "cancelled",
    );
    let result = store
        .transition_payment(
            &p.instruction.id,
            TransitionGuard {
                from_status: "queued".to_owned(),
                fencing_token: None,
            },
            change_to("cancelled"),
            worker_actor("ops"),
            NewAuditRecord {
                at: instant(20, 0),
                ..record("ops", "payment.cancel", "payment")
            },
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Injected { .. })),
        "{result:?}"
    );
    let after = store.get_payment(&p.instruction.id).await.unwrap().unwrap();
    assert_eq!(after.status, "queued", "the change rolled back");
    assert_eq!(
        store
            .payment_history(&p.instruction.id)
            .await
            .unwrap()
            .len(),
        2
    );
    let events = events_of(store.as_ref(), &id).await;
    assert_eq!(events.len(), 1, "only the creation's event: {events:?}");
    assert_eq!(events[0].data["status"], "queued");
}

fn entry(status: EntryStatus, minor: i64) -> StatementEntry {
    StatementEntry::new(
        EntryId::generate(&OsRandom),
        account("main"),
        Direction::Credit,
        domain::Money::from_minor(minor, domain::Currency::CNY),
        domain::BusinessDate::from_ymd(2026, 11, 27).unwrap(),
        domain::BusinessDate::from_ymd(2026, 11, 27).unwrap(),
        status,
    )
    .unwrap()
}

pub(crate) async fn events_booked_entries_notify_once(db: TestDb) {
    let store = db.open().await;
    let booked = entry(EntryStatus::Booked, 10_000);
    let pending = entry(EntryStatus::Pending, 2_000);
    let offer = |e: &StatementEntry, key: &str, m: Option<&str>| IngestEntry {
        entry: e.clone(),
        dedupe_key: key.to_owned(),
        pending_match_key: m.map(str::to_owned),
    };
    let audit = |s| NewAuditRecord {
        at: instant(s, 0),
        ..record("sync", "statement.ingest", "account:main")
    };
    store
        .ingest_entries(
            &account("main"),
            vec![
                offer(&booked, "bank:1", None),
                offer(&pending, "intraday:2", Some("bank:S2")),
            ],
            audit(10),
        )
        .await
        .unwrap();
    let q = EventQuery {
        event_type: Some(EventType::TransactionBooked),
        ..EventQuery::default()
    };
    let first = store.list_events(&q).await.unwrap();
    assert_eq!(
        first.len(),
        1,
        "a pending entry is not booked yet: {first:?}"
    );
    assert_eq!(first[0].object_id, booked.id.as_str());
    assert_eq!(first[0].object_type, "transaction");
    assert_eq!(first[0].data["amount"], "100.00");
    assert_eq!(first[0].data["direction"], "credit");

    // Re-offering changes nothing and emits nothing; the pending one's booking emits once,
    // under the pending entry's id.
    let mut now_booked = entry(EntryStatus::Booked, 2_000);
    now_booked.id = EntryId::generate(&OsRandom);
    for at in [20, 30] {
        store
            .ingest_entries(
                &account("main"),
                vec![
                    offer(&booked, "bank:1", None),
                    offer(&now_booked, "bank:2", Some("bank:S2")),
                ],
                audit(at),
            )
            .await
            .unwrap();
    }
    let all = store.list_events(&q).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1].object_id, pending.id.as_str());
    assert_eq!(all[1].id, format!("evt_{}_1", pending.id.as_str()));
}
