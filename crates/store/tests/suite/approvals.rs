//! Approval decisions, generic over the backend: stored once per person, the last required
//! approval queues the payment (through `approved`) in the same transaction, a decline ends
//! it, and nothing is written for a second decision or a payment not waiting. Batches
//! likewise, and the four-eyes resolution proposals of `needs_review`.

use std::sync::Arc;

use store::{
    ApprovalDecision, ApprovalObject, BatchDecisionOutcome, Decision, DecisionOutcome, InitialStep,
    NewBatch, NewPayment, ProposalOutcome, ResolutionObject, ResolutionProposal, Store,
    StoredBatch,
};

use crate::batches::{create as create_batch, new_batch};
use crate::payments::{create_for_suite, instruction_for_suite};
use crate::{all_audit, instant, record, TestDb};

fn pending(required: u8, on_behalf_of: Option<&str>) -> NewPayment {
    let mut instruction = instruction_for_suite("main", 150_000_000);
    instruction.approvals_required = required;
    instruction.on_behalf_of = on_behalf_of.map(str::to_owned);
    NewPayment {
        instruction,
        steps: vec![
            InitialStep {
                to_status: "received".to_owned(),
                cause: "created".to_owned(),
            },
            InitialStep {
                to_status: "pending_approval".to_owned(),
                cause: "approval_required".to_owned(),
            },
        ],
        next_attempt_at: None,
    }
}

fn decision(id: &str, who: &str, what: Decision, at_s: i64) -> ApprovalDecision {
    ApprovalDecision {
        object: ApprovalObject::Payment,
        object_id: id.to_owned(),
        decided_by: who.to_owned(),
        decision: what,
        comment: Some("ok".to_owned()),
        request_id: Some(format!("req-{who}-{at_s}")),
        at: instant(at_s, 0),
    }
}

async fn decide(
    store: &Arc<dyn Store>,
    id: &str,
    who: &str,
    what: Decision,
    at_s: i64,
) -> DecisionOutcome {
    store
        .decide_payment(
            decision(id, who, what, at_s),
            store::NewAuditRecord {
                at: instant(at_s, 0),
                ..record(who, &format!("payment.{}", what.as_str()), "payment")
            },
        )
        .await
        .unwrap()
}

pub(crate) async fn approvals_the_last_required_approval_queues_the_payment(db: TestDb) {
    let store = db.open().await;
    let p = create_for_suite(store.as_ref(), pending(2, Some("user:maker")), "k", 0).await;
    assert_eq!(p.status, "pending_approval");
    assert_eq!(p.instruction.approvals_required, 2);
    assert_eq!(p.instruction.on_behalf_of.as_deref(), Some("user:maker"));
    assert_eq!(p.next_attempt_at, None);
    let id = p.instruction.id.as_str().to_owned();
    let due = store
        .claim_due_payments(
            &["queued", "pending_approval"],
            instant(1, 0),
            "w",
            1000,
            10,
        )
        .await
        .unwrap();
    assert!(due.is_empty(), "nothing due while people decide");

    match decide(&store, &id, "user:a1", Decision::Approve, 2).await {
        DecisionOutcome::Recorded { payment, approvals } => {
            assert_eq!(
                (payment.status.as_str(), approvals),
                ("pending_approval", 1)
            );
        }
        other => panic!("{other:?}"),
    }
    // The same person again (a replay, or a second try) counts nothing and writes nothing.
    let audit_before = all_audit(store.as_ref()).await.len();
    assert_eq!(
        decide(&store, &id, "user:a1", Decision::Approve, 3).await,
        DecisionOutcome::AlreadyDecided
    );
    assert_eq!(all_audit(store.as_ref()).await.len(), audit_before);
    match decide(&store, &id, "user:a2", Decision::Approve, 4).await {
        DecisionOutcome::Recorded { payment, approvals } => {
            assert_eq!((payment.status.as_str(), approvals), ("queued", 2));
            assert_eq!(payment.next_attempt_at, Some(instant(4, 0)));
        }
        other => panic!("{other:?}"),
    }
    let history: Vec<(Option<String>, String, String)> = store
        .payment_history(&p.instruction.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.from_status, h.to_status, h.actor))
        .collect();
    assert_eq!(
        history[2..],
        [
            (
                Some("pending_approval".to_owned()),
                "approved".to_owned(),
                "user:a2".to_owned()
            ),
            (
                Some("approved".to_owned()),
                "queued".to_owned(),
                "user:a2".to_owned()
            ),
        ]
    );
    let decisions = store
        .approval_decisions(ApprovalObject::Payment, &id)
        .await
        .unwrap();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[0], decision(&id, "user:a1", Decision::Approve, 2));
    assert_eq!(decisions[1].decided_by, "user:a2");
    // Decided for good: a late decline is refused and stored nowhere.
    assert_eq!(
        decide(&store, &id, "user:a3", Decision::Decline, 5).await,
        DecisionOutcome::NotPending {
            status: "queued".to_owned()
        }
    );
    assert_eq!(
        store
            .approval_decisions(ApprovalObject::Payment, &id)
            .await
            .unwrap()
            .len(),
        2
    );
    let due = store
        .claim_due_payments(&["queued"], instant(6, 0), "w", 1000, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
}

pub(crate) async fn approvals_a_decline_ends_the_payment(db: TestDb) {
    let store = db.open().await;
    let p = create_for_suite(store.as_ref(), pending(2, None), "k", 0).await;
    let id = p.instruction.id.as_str().to_owned();
    match decide(&store, &id, "user:a1", Decision::Decline, 1).await {
        DecisionOutcome::Recorded { payment, .. } => assert_eq!(payment.status, "declined"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        decide(&store, &id, "user:a2", Decision::Approve, 2).await,
        DecisionOutcome::NotPending {
            status: "declined".to_owned()
        }
    );
    let unknown = domain::PaymentId::generate(&domain::OsRandom);
    assert_eq!(
        decide(&store, unknown.as_str(), "user:a2", Decision::Approve, 3).await,
        DecisionOutcome::NotFound
    );
}

pub(crate) async fn approvals_concurrent_approvers_each_count_and_queue_once(db: TestDb) {
    let store = db.open().await;
    for round in 0..5 {
        let p = create_for_suite(
            store.as_ref(),
            pending(2, Some("user:maker")),
            &format!("k{round}"),
            0,
        )
        .await;
        let id = p.instruction.id.as_str().to_owned();
        let (a, b) = tokio::join!(
            decide(&store, &id, "user:a1", Decision::Approve, 1),
            decide(&store, &id, "user:a2", Decision::Approve, 1),
        );
        let statuses: Vec<String> = [a, b]
            .into_iter()
            .map(|o| match o {
                DecisionOutcome::Recorded { payment, .. } => payment.status,
                other => panic!("{other:?}"),
            })
            .collect();
        // One of them saw the other's approval: exactly one queued the payment.
        assert_eq!(
            statuses.iter().filter(|s| s.as_str() == "queued").count(),
            1,
            "{statuses:?}"
        );
        let stored = store.get_payment(&p.instruction.id).await.unwrap().unwrap();
        assert_eq!(stored.status, "queued");
        let to_queued = store
            .payment_history(&p.instruction.id)
            .await
            .unwrap()
            .iter()
            .filter(|h| h.to_status == "queued")
            .count();
        assert_eq!(to_queued, 1);
    }
}

/// Three items in two chunks, waiting for `required` approvals.
fn pending_batch(required: u8) -> NewBatch {
    let mut new = new_batch(&[100_000_000, 60_000_000, 50_000_000], 2, 210_000_000);
    new.approvals_required = required;
    new.on_behalf_of = Some("user:maker".to_owned());
    new.chunk_status = "pending_approval".to_owned();
    new.cause = "approval_required".to_owned();
    new.next_attempt_at = None;
    new
}

async fn decide_batch(
    store: &Arc<dyn Store>,
    id: &str,
    who: &str,
    what: Decision,
    at_s: i64,
) -> BatchDecisionOutcome {
    store
        .decide_batch(
            ApprovalDecision {
                object: ApprovalObject::Batch,
                ..decision(id, who, what, at_s)
            },
            store::NewAuditRecord {
                at: instant(at_s, 0),
                ..record(who, &format!("payment_batch.{}", what.as_str()), "batch")
            },
        )
        .await
        .unwrap()
}

fn recorded(outcome: BatchDecisionOutcome) -> (StoredBatch, u32) {
    match outcome {
        BatchDecisionOutcome::Recorded { batch, approvals } => (*batch, approvals),
        other => panic!("expected Recorded, got {other:?}"),
    }
}

fn chunk_statuses(b: &StoredBatch) -> Vec<&str> {
    b.chunks.iter().map(|c| c.status.as_str()).collect()
}

pub(crate) async fn approvals_the_last_required_approval_queues_every_chunk_of_a_batch(db: TestDb) {
    let store = db.open().await;
    let b = create_batch(store.as_ref(), pending_batch(2), "k").await;
    assert_eq!(b.status, "pending_approval");
    assert_eq!(b.approvals_required, 2);
    assert_eq!(b.on_behalf_of.as_deref(), Some("user:maker"));
    assert_eq!(chunk_statuses(&b), ["pending_approval", "pending_approval"]);
    let id = b.id.as_str().to_owned();
    // Nothing is due while it waits.
    let due = store
        .claim_due_chunks(
            &["queued", "pending_approval"],
            instant(50, 0),
            "w",
            1000,
            10,
        )
        .await
        .unwrap();
    assert!(due.is_empty(), "{due:?}");

    let (after_one, approvals) =
        recorded(decide_batch(&store, &id, "user:a1", Decision::Approve, 1).await);
    assert_eq!(
        (after_one.status.as_str(), approvals),
        ("pending_approval", 1)
    );
    assert_eq!(
        decide_batch(&store, &id, "user:a1", Decision::Approve, 2).await,
        BatchDecisionOutcome::AlreadyDecided
    );
    assert_eq!(
        decide_batch(&store, &id, "user:a1", Decision::Decline, 2).await,
        BatchDecisionOutcome::AlreadyDecided,
        "a person's second word, even a different one, does not count"
    );
    let (queued, approvals) =
        recorded(decide_batch(&store, &id, "user:a2", Decision::Approve, 3).await);
    assert_eq!((queued.status.as_str(), approvals), ("queued", 2));
    assert_eq!(chunk_statuses(&queued), ["queued", "queued"]);
    assert!(queued
        .chunks
        .iter()
        .all(|c| c.next_attempt_at == Some(instant(3, 0))));
    assert_eq!(
        decide_batch(&store, &id, "user:a3", Decision::Decline, 4).await,
        BatchDecisionOutcome::NotPending {
            status: "queued".to_owned()
        }
    );
    let due = store
        .claim_due_chunks(&["queued"], instant(5, 0), "w", 1000, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    let decisions = store
        .approval_decisions(ApprovalObject::Batch, &id)
        .await
        .unwrap();
    let people: Vec<&str> = decisions.iter().map(|d| d.decided_by.as_str()).collect();
    assert_eq!(people, ["user:a1", "user:a2"]);
    // The decisions, and the release, are audited in the same transactions.
    let actions: Vec<String> = all_audit(store.as_ref())
        .await
        .into_iter()
        .map(|r| r.action)
        .filter(|a| a.starts_with("payment_batch."))
        .collect();
    assert_eq!(
        actions,
        [
            "payment_batch.approve",
            "payment_batch.approve",
            "payment_batch.release"
        ]
    );
}

pub(crate) async fn approvals_a_declined_batch_cancels_every_item_and_sends_nothing(db: TestDb) {
    let store = db.open().await;
    let b = create_batch(store.as_ref(), pending_batch(1), "k").await;
    let id = b.id.as_str().to_owned();
    let (declined, _) = recorded(decide_batch(&store, &id, "user:a1", Decision::Decline, 1).await);
    assert_eq!(declined.status, "declined");
    assert_eq!(chunk_statuses(&declined), ["declined", "declined"]);
    assert_eq!(declined.item_counts, [("cancelled".to_owned(), 3)]);
    assert_eq!(
        decide_batch(&store, &id, "user:a2", Decision::Approve, 2).await,
        BatchDecisionOutcome::NotPending {
            status: "declined".to_owned()
        }
    );
    let due = store
        .claim_due_chunks(&["queued", "declined"], instant(50, 0), "w", 1000, 10)
        .await
        .unwrap();
    assert!(due.is_empty(), "{due:?}");
    let unknown = domain::BatchId::generate(&domain::OsRandom);
    assert_eq!(
        decide_batch(&store, unknown.as_str(), "user:a2", Decision::Approve, 3).await,
        BatchDecisionOutcome::NotFound
    );
    // A payment decision is not taken for a batch, nor the other way round.
    assert!(store
        .decide_batch(
            decision(&id, "user:a3", Decision::Approve, 4),
            record("user:a3", "payment_batch.approve", "batch"),
        )
        .await
        .is_err());
}

pub(crate) async fn approvals_concurrent_batch_approvers_each_count_and_queue_once(db: TestDb) {
    let store = db.open().await;
    for round in 0..5 {
        let b = create_batch(store.as_ref(), pending_batch(2), &format!("k{round}")).await;
        let id = b.id.as_str().to_owned();
        let (a, c) = tokio::join!(
            decide_batch(&store, &id, "user:a1", Decision::Approve, 1),
            decide_batch(&store, &id, "user:a2", Decision::Approve, 1),
        );
        let statuses: Vec<String> = [a, c].into_iter().map(|o| recorded(o).0.status).collect();
        assert_eq!(
            statuses.iter().filter(|s| s.as_str() == "queued").count(),
            1,
            "{statuses:?}"
        );
        let stored = store.get_batch(&b.id).await.unwrap().unwrap();
        assert_eq!(stored.status, "queued");
        assert_eq!(chunk_statuses(&stored), ["queued", "queued"]);
    }
}

fn proposal(who: &str, decision: &str, snapshot: &str, at_s: i64) -> ResolutionProposal {
    ResolutionProposal {
        object: ResolutionObject::Payment,
        object_id: "pay_review".to_owned(),
        decision: decision.to_owned(),
        reason: format!("{who} checked the statement"),
        proposed_by: who.to_owned(),
        snapshot: snapshot.to_owned(),
        request_id: Some(format!("req-{who}")),
        at: instant(at_s, 0),
    }
}

async fn propose(store: &Arc<dyn Store>, p: ResolutionProposal) -> ProposalOutcome {
    let who = p.proposed_by.clone();
    store
        .propose_resolution(p, record(&who, "payment.resolve", "payment:pay_review"))
        .await
        .unwrap()
}

pub(crate) async fn resolutions_need_two_people_agreeing_on_one_state(db: TestDb) {
    let store = db.open().await;
    assert_eq!(
        propose(&store, proposal("user:a", "failed", "version:3", 1)).await,
        ProposalOutcome::Stored { replaced: None }
    );
    let open = store
        .resolution_proposal(ResolutionObject::Payment, "pay_review")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (open.proposed_by.as_str(), open.decision.as_str()),
        ("user:a", "failed")
    );
    // The same person again is not a second pair of eyes.
    assert!(matches!(
        propose(&store, proposal("user:a", "failed", "version:3", 2)).await,
        ProposalOutcome::AlreadyProposed(_)
    ));
    // Another decision, or the same about another state, replaces the open proposal.
    match propose(&store, proposal("user:b", "queued", "version:3", 3)).await {
        ProposalOutcome::Stored {
            replaced: Some(old),
        } => assert_eq!(old.proposed_by, "user:a"),
        other => panic!("{other:?}"),
    }
    match propose(&store, proposal("user:a", "queued", "version:4", 4)).await {
        ProposalOutcome::Stored {
            replaced: Some(old),
        } => assert_eq!(old.snapshot, "version:3"),
        other => panic!("{other:?}"),
    }
    // Another person, same decision, same state: confirmed, and the proposal is gone.
    match propose(&store, proposal("user:c", "queued", "version:4", 5)).await {
        ProposalOutcome::Confirmed(p) => {
            assert_eq!((p.proposed_by.as_str(), p.at), ("user:a", instant(4, 0)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .resolution_proposal(ResolutionObject::Payment, "pay_review")
            .await
            .unwrap(),
        None
    );
    // Stored proposals are audited; the refusal and the confirmation write nothing here.
    let proposals = all_audit(store.as_ref())
        .await
        .into_iter()
        .filter(|r| r.action == "payment.resolve")
        .count();
    assert_eq!(proposals, 3);
    // Bad input is refused before anything is written.
    assert!(store
        .propose_resolution(
            proposal("user:a", "settled", "version:4", 6),
            record("user:a", "payment.resolve", "payment:pay_review"),
        )
        .await
        .is_err());
}

pub(crate) async fn resolutions_two_confirmers_at_once_confirm_once(db: TestDb) {
    let store = db.open().await;
    for round in 0..5 {
        let snapshot = format!("version:{round}");
        propose(&store, proposal("user:a", "failed", &snapshot, 1)).await;
        let (x, y) = tokio::join!(
            propose(&store, proposal("user:b", "failed", &snapshot, 2)),
            propose(&store, proposal("user:c", "failed", &snapshot, 2)),
        );
        let confirmed = [&x, &y]
            .iter()
            .filter(|o| matches!(o, ProposalOutcome::Confirmed(_)))
            .count();
        assert_eq!(confirmed, 1, "{x:?} {y:?}");
        // The other found no open proposal and left its own, which the next round's
        // proposal (about a newer state) replaces.
        let left = store
            .resolution_proposal(ResolutionObject::Payment, "pay_review")
            .await
            .unwrap();
        if let Some(open) = left {
            assert_ne!(open.proposed_by, "user:a");
        }
    }
}
