//! Webhooks, generic over the backend (listed in the `suite!` of `suite.rs`): registration
//! per client with its Idempotency-Key and audit record, the fan-out from the outbox (one
//! delivery per subscribed webhook and event, once), claims that keep per-object order,
//! attempts that end delivered, retried, dead or skipped, listing with attempts, and
//! re-drive.

use chrono::{DateTime, Duration, Utc};
use store::{
    AttemptOutcome, AuditQuery, DeliveryQuery, DeliveryState, EventType, IdempotencyClaim,
    NewAttempt, NewAuditRecord, NewWebhook, Store, TransitionGuard, WebhookCreateOutcome,
};

use crate::payments::{change_to, create_one, worker_actor};
use crate::{instant, record, TestDb};

const SECRET: &str = "whsec_0123456789abcdefghijklmnopqrstuv";

fn webhook(id: &str, client: &str, types: &[EventType]) -> NewWebhook {
    NewWebhook {
        id: id.to_owned(),
        client_id: client.to_owned(),
        url: format!("https://hooks.example.com/{id}"),
        secret: SECRET.to_owned(),
        event_types: types.to_vec(),
        created_at: instant(0, 0),
    }
}

fn audit(action: &str) -> NewAuditRecord {
    record("client:erp", action, "webhook")
}

async fn register(store: &dyn Store, id: &str, client: &str, types: &[EventType]) {
    let outcome = store
        .create_webhook(webhook(id, client, types), None, audit("webhook.create"))
        .await
        .unwrap();
    assert!(
        matches!(outcome, WebhookCreateOutcome::Created(_)),
        "{outcome:?}"
    );
}

async fn cancel(store: &dyn Store, p: &store::StoredPayment, at_s: i64) {
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
                at: instant(at_s, 0),
                ..record("ops", "payment.cancel", "payment")
            },
        )
        .await
        .unwrap();
}

fn failed(at: DateTime<Utc>, status: u16, max: u32) -> NewAttempt {
    NewAttempt {
        at,
        duration_ms: 12,
        response_status: Some(status),
        error: None,
        outcome: AttemptOutcome::Failed { retry_at: at },
        max_attempts: max,
    }
}

fn delivered(at: DateTime<Utc>) -> NewAttempt {
    NewAttempt {
        at,
        duration_ms: 3,
        response_status: Some(204),
        error: None,
        outcome: AttemptOutcome::Delivered,
        max_attempts: 5,
    }
}

fn later(s: i64) -> DateTime<Utc> {
    instant(1_000, 0) + Duration::seconds(s)
}

pub(crate) async fn webhooks_are_registered_listed_and_deleted_per_client(db: TestDb) {
    let store = db.open().await;
    register(
        store.as_ref(),
        "whk_a1",
        "erp",
        &[EventType::PaymentStatusChanged],
    )
    .await;
    register(
        store.as_ref(),
        "whk_a2",
        "erp",
        &[
            EventType::TransactionBooked,
            EventType::PaymentStatusChanged,
        ],
    )
    .await;
    register(
        store.as_ref(),
        "whk_b1",
        "other",
        &[EventType::TransactionBooked],
    )
    .await;

    let mine = store.list_webhooks("erp", None, 0).await.unwrap();
    assert_eq!(
        mine.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["whk_a1", "whk_a2"]
    );
    assert_eq!(mine[1].url, "https://hooks.example.com/whk_a2");
    assert_eq!(mine[1].event_types.len(), 2);
    let page = store.list_webhooks("erp", Some("whk_a1"), 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, "whk_a2");
    assert!(
        store.get_webhook("erp", "whk_b1").await.unwrap().is_none(),
        "another client's"
    );
    assert!(store
        .get_webhook("other", "whk_b1")
        .await
        .unwrap()
        .is_some());

    assert!(!store
        .delete_webhook("erp", "whk_b1", audit("webhook.delete"))
        .await
        .unwrap());
    assert!(store
        .delete_webhook("erp", "whk_a1", audit("webhook.delete"))
        .await
        .unwrap());
    assert!(!store
        .delete_webhook("erp", "whk_a1", audit("webhook.delete"))
        .await
        .unwrap());
    assert!(store.get_webhook("erp", "whk_a1").await.unwrap().is_none());
    assert_eq!(store.list_webhooks("erp", None, 0).await.unwrap().len(), 1);

    let audits = store
        .list_audit(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audits.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "webhook.create",
            "webhook.create",
            "webhook.create",
            "webhook.delete"
        ],
        "one record per change, none for a refused delete"
    );
    for a in &audits {
        assert!(!a.details.to_string().contains(SECRET));
    }

    // A secret that is too short is refused, and the error does not carry it.
    let mut short = webhook("whk_s", "erp", &[EventType::TransactionBooked]);
    short.secret = "short-secret".to_owned();
    let refused = store
        .create_webhook(short, None, audit("webhook.create"))
        .await
        .unwrap_err();
    assert!(!refused.to_string().contains("short-secret"), "{refused}");
    store.close().await;
}

pub(crate) async fn webhooks_create_honours_the_idempotency_key_and_the_per_client_limit(
    db: TestDb,
) {
    let store = db.open().await;
    let claim = |hash: &str| IdempotencyClaim {
        client_id: "erp".to_owned(),
        key: "wk-1".to_owned(),
        request_hash: hash.to_owned(),
        expires_at: instant(0, 0) + Duration::days(2),
        response_status: 201,
        response_body: r#"{"id":"whk_i1"}"#.to_owned(),
    };
    let first = store
        .create_webhook(
            webhook("whk_i1", "erp", &[EventType::PaymentStatusChanged]),
            Some(claim("h1")),
            audit("webhook.create"),
        )
        .await
        .unwrap();
    assert!(
        matches!(first, WebhookCreateOutcome::Created(_)),
        "{first:?}"
    );
    let again = store
        .create_webhook(
            webhook("whk_i2", "erp", &[EventType::PaymentStatusChanged]),
            Some(claim("h1")),
            audit("webhook.create"),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        WebhookCreateOutcome::Replay {
            status: 201,
            body: r#"{"id":"whk_i1"}"#.to_owned()
        }
    );
    let other = store
        .create_webhook(
            webhook("whk_i3", "erp", &[EventType::PaymentStatusChanged]),
            Some(claim("h2")),
            audit("webhook.create"),
        )
        .await
        .unwrap();
    assert_eq!(other, WebhookCreateOutcome::KeyReused);
    assert_eq!(store.list_webhooks("erp", None, 0).await.unwrap().len(), 1);

    for n in 1..store::WEBHOOKS_PER_CLIENT_MAX {
        register(
            store.as_ref(),
            &format!("whk_n{n:02}"),
            "erp",
            &[EventType::TransactionBooked],
        )
        .await;
    }
    let over = store
        .create_webhook(
            webhook("whk_over", "erp", &[EventType::TransactionBooked]),
            None,
            audit("webhook.create"),
        )
        .await
        .unwrap();
    assert_eq!(over, WebhookCreateOutcome::LimitReached);
    store.close().await;
}

pub(crate) async fn webhooks_fan_out_makes_one_delivery_per_subscribed_webhook_once(db: TestDb) {
    let store = db.open().await;
    register(
        store.as_ref(),
        "whk_pay",
        "erp",
        &[EventType::PaymentStatusChanged],
    )
    .await;
    register(
        store.as_ref(),
        "whk_txn",
        "erp",
        &[EventType::TransactionBooked],
    )
    .await;
    register(
        store.as_ref(),
        "whk_gone",
        "erp",
        &[EventType::PaymentStatusChanged],
    )
    .await;
    store
        .delete_webhook("erp", "whk_gone", audit("webhook.delete"))
        .await
        .unwrap();
    let a = create_one(store.as_ref(), "main", 100, "fo-1", 10).await;
    let b = create_one(store.as_ref(), "main", 200, "fo-2", 11).await;
    cancel(store.as_ref(), &a, 12).await;

    let first = store.fan_out_events(later(0), 2).await.unwrap();
    assert_eq!((first.events, first.deliveries), (2, 2), "the limit holds");
    let rest = store.fan_out_events(later(1), 100).await.unwrap();
    assert_eq!((rest.events, rest.deliveries), (1, 1));
    let none = store.fan_out_events(later(2), 100).await.unwrap();
    assert_eq!(
        (none.events, none.deliveries),
        (0, 0),
        "an event is fanned out once"
    );

    let pay = store
        .list_webhook_deliveries(&DeliveryQuery {
            webhook_id: "whk_pay".to_owned(),
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    let seen: Vec<(String, i64)> = pay
        .iter()
        .map(|d| (d.object_id.clone(), d.object_seq))
        .collect();
    let (a_id, b_id) = (
        a.instruction.id.as_str().to_owned(),
        b.instruction.id.as_str().to_owned(),
    );
    assert_eq!(seen, [(a_id.clone(), 2), (b_id, 2), (a_id.clone(), 3)]);
    assert!(pay.iter().all(|d| d.state == DeliveryState::Pending
        && d.event_type == EventType::PaymentStatusChanged
        && d.attempts == 0
        && d.event_id == format!("evt_{}_{}", d.object_id, d.object_seq)));
    for other in ["whk_txn", "whk_gone"] {
        let none = store
            .list_webhook_deliveries(&DeliveryQuery {
                webhook_id: other.to_owned(),
                ..DeliveryQuery::default()
            })
            .await
            .unwrap();
        assert!(none.is_empty(), "{other}: {none:?}");
    }
    store.close().await;
}

pub(crate) async fn webhooks_claims_keep_per_object_order_and_leases(db: TestDb) {
    let store = db.open().await;
    register(
        store.as_ref(),
        "whk_o",
        "erp",
        &[EventType::PaymentStatusChanged],
    )
    .await;
    let a = create_one(store.as_ref(), "main", 100, "or-1", 10).await;
    cancel(store.as_ref(), &a, 11).await;
    let b = create_one(store.as_ref(), "main", 300, "or-2", 12).await;
    store.fan_out_events(later(0), 100).await.unwrap();

    // a's second event waits for its first; b's is free.
    let claimed = store
        .claim_webhook_deliveries(later(1), "w1", 30_000, 10)
        .await
        .unwrap();
    let got: Vec<(String, i64)> = claimed
        .iter()
        .map(|c| (c.event.object_id.clone(), c.event.object_seq))
        .collect();
    let a_id = a.instruction.id.as_str().to_owned();
    let b_id = b.instruction.id.as_str().to_owned();
    assert_eq!(got, [(a_id.clone(), 2), (b_id.clone(), 2)]);
    assert_eq!(claimed[0].secret, SECRET);
    assert_eq!(claimed[0].client_id, "erp");
    assert!(!format!("{:?}", claimed[0]).contains(SECRET));
    // Leased: nothing more for anyone, not even a's next.
    assert!(store
        .claim_webhook_deliveries(later(2), "w2", 30_000, 10)
        .await
        .unwrap()
        .is_empty());

    // a's first fails: it is due again, and a's second still waits behind it.
    let first = &claimed[0];
    let state = store
        .record_webhook_attempt(
            first.delivery_id,
            first.lease_token,
            failed(later(3), 500, 5),
        )
        .await
        .unwrap();
    assert_eq!(state, Some(DeliveryState::Pending));
    let again = store
        .claim_webhook_deliveries(later(4), "w2", 30_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_id, first.delivery_id);
    assert_eq!(again[0].attempts, 1);
    assert!(again[0].lease_token > first.lease_token);
    // The first worker's lease is gone: what it records now is dropped.
    assert_eq!(
        store
            .record_webhook_attempt(first.delivery_id, first.lease_token, delivered(later(5)))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .record_webhook_attempt(
                again[0].delivery_id,
                again[0].lease_token,
                delivered(later(5))
            )
            .await
            .unwrap(),
        Some(DeliveryState::Delivered)
    );
    let next = store
        .claim_webhook_deliveries(later(6), "w2", 30_000, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(
        (next[0].event.object_id.clone(), next[0].event.object_seq),
        (a_id, 3)
    );

    // An expired lease is taken over.
    let taken = store
        .claim_webhook_deliveries(later(6) + Duration::seconds(31), "w3", 30_000, 10)
        .await
        .unwrap();
    let ids: Vec<i64> = taken.iter().map(|c| c.delivery_id).collect();
    assert!(ids.contains(&next[0].delivery_id), "{ids:?}");
    store.close().await;
}

pub(crate) async fn webhooks_failures_end_dead_with_their_attempts_and_redrive_resets(db: TestDb) {
    let store = db.open().await;
    register(
        store.as_ref(),
        "whk_d",
        "erp",
        &[EventType::PaymentStatusChanged],
    )
    .await;
    let p = create_one(store.as_ref(), "main", 100, "dd-1", 10).await;
    store.fan_out_events(later(0), 100).await.unwrap();
    for (i, status) in [500u16, 503].into_iter().enumerate() {
        let c = store
            .claim_webhook_deliveries(later(i as i64 * 10), "w", 30_000, 10)
            .await
            .unwrap();
        assert_eq!(c.len(), 1);
        store
            .record_webhook_attempt(
                c[0].delivery_id,
                c[0].lease_token,
                failed(later(i as i64 * 10 + 1), status, 2),
            )
            .await
            .unwrap();
    }
    assert!(store
        .claim_webhook_deliveries(later(100), "w", 30_000, 10)
        .await
        .unwrap()
        .is_empty());
    let dead = store
        .list_webhook_deliveries(&DeliveryQuery {
            webhook_id: "whk_d".to_owned(),
            state: Some(DeliveryState::Dead),
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.object_id, p.instruction.id.as_str());
    assert_eq!(
        (d.attempts, d.attempts_total, d.last_status),
        (2, 2, Some(503))
    );
    assert!(d.next_attempt_at.is_none());
    let codes: Vec<(i32, Option<u16>)> = d
        .attempt_log
        .iter()
        .map(|a| (a.attempt, a.response_status))
        .collect();
    assert_eq!(codes, [(1, Some(500)), (2, Some(503))]);

    // Only dead ones are re-driven; the counter starts again, the history stays.
    assert_eq!(
        store
            .redrive_webhook_deliveries(
                "whk_d",
                Some(d.id + 1000),
                later(200),
                audit("webhook.redrive")
            )
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .redrive_webhook_deliveries("whk_d", None, later(200), audit("webhook.redrive"))
            .await
            .unwrap(),
        1
    );
    let c = store
        .claim_webhook_deliveries(later(201), "w", 30_000, 10)
        .await
        .unwrap();
    assert_eq!((c.len(), c[0].attempts), (1, 0));
    store
        .record_webhook_attempt(c[0].delivery_id, c[0].lease_token, delivered(later(202)))
        .await
        .unwrap();
    let done = store
        .list_webhook_deliveries(&DeliveryQuery {
            webhook_id: "whk_d".to_owned(),
            state: Some(DeliveryState::Delivered),
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].attempts, done[0].attempts_total), (1, 3));
    let codes: Vec<Option<u16>> = done[0]
        .attempt_log
        .iter()
        .map(|a| a.response_status)
        .collect();
    assert_eq!(codes, [Some(500), Some(503), Some(204)]);
    assert_eq!(
        store
            .redrive_webhook_deliveries("whk_d", None, later(300), audit("webhook.redrive"))
            .await
            .unwrap(),
        0,
        "a delivered one is not re-driven"
    );
    let redrives = store
        .list_audit(&AuditQuery {
            action: Some("webhook.redrive".to_owned()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(redrives.len(), 1, "audited when something was re-driven");
    store.close().await;
}

pub(crate) async fn webhooks_a_skipped_delivery_no_longer_holds_the_next_back(db: TestDb) {
    let store = db.open().await;
    register(
        store.as_ref(),
        "whk_k",
        "erp",
        &[EventType::PaymentStatusChanged],
    )
    .await;
    let p = create_one(store.as_ref(), "main", 100, "sk-1", 10).await;
    cancel(store.as_ref(), &p, 11).await;
    store.fan_out_events(later(0), 100).await.unwrap();
    let c = store
        .claim_webhook_deliveries(later(1), "w", 30_000, 10)
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    let skipped = store
        .record_webhook_attempt(
            c[0].delivery_id,
            c[0].lease_token,
            NewAttempt {
                at: later(2),
                duration_ms: 0,
                response_status: None,
                error: Some("the client is not entitled to the account".to_owned()),
                outcome: AttemptOutcome::Skipped,
                max_attempts: 5,
            },
        )
        .await
        .unwrap();
    assert_eq!(skipped, Some(DeliveryState::Skipped));
    let next = store
        .claim_webhook_deliveries(later(3), "w", 30_000, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event.object_seq, 3);
    let all = store
        .list_webhook_deliveries(&DeliveryQuery {
            webhook_id: "whk_k".to_owned(),
            state: Some(DeliveryState::Skipped),
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].attempt_log.is_empty(), "a skip is not an attempt");
    assert_eq!(all[0].attempts_total, 0);
    // Deleting the webhook ends what is still pending.
    store
        .delete_webhook("erp", "whk_k", audit("webhook.delete"))
        .await
        .unwrap();
    let pending = store
        .list_webhook_deliveries(&DeliveryQuery {
            webhook_id: "whk_k".to_owned(),
            state: Some(DeliveryState::Pending),
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    store.close().await;
}
