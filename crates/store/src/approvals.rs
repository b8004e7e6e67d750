//! Maker-checker decisions (docs/approvals.md): one row per person and
//! object in `approval_decisions`, written in the same transaction as the
//! status change the last required approval (or a decline) makes.
//!
//! A person counts once: the primary key (kind, object, person) refuses a
//! second decision, so a replayed request cannot count twice either.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{BatchStatus, ItemStatus, PaymentStatus, TransitionCause};

use crate::batches::{
    fetch_full, item_froms, settle_status, BatchHistoryRow, BatchTx, ChunkTransitionRows,
    ItemUpdate, StoredBatch,
};
use crate::codec::{self, AuditRow};
use crate::payments::{
    invalid, refuse_nul, transition, Actor, Current, PaymentChange, PaymentTx, StoredPayment,
    TransitionGuard, TransitionRows,
};
use crate::{NewAuditRecord, StoreError};

/// Longest decision comment, in characters.
pub const DECISION_COMMENT_MAX_CHARS: usize = 1024;

/// What a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalObject {
    Payment,
    Batch,
}

impl ApprovalObject {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalObject::Payment => "payment",
            ApprovalObject::Batch => "batch",
        }
    }
}

/// A person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Decline,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Decline => "decline",
        }
    }

    fn parse(text: &str) -> Option<Decision> {
        match text {
            "approve" => Some(Decision::Approve),
            "decline" => Some(Decision::Decline),
            _ => None,
        }
    }
}

/// One decision, as given and as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalDecision {
    pub object: ApprovalObject,
    pub object_id: String,
    /// `user:<id>` (1–128 characters).
    pub decided_by: String,
    pub decision: Decision,
    /// At most [`DECISION_COMMENT_MAX_CHARS`].
    pub comment: Option<String>,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// What `Store::decide_payment` did.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionOutcome {
    /// The decision was stored; the payment as it is now (still `pending_approval`,
    /// or `queued` after the last approval, or `declined`), with the approvals counted.
    Recorded {
        payment: Box<StoredPayment>,
        approvals: u32,
    },
    /// This person decided on this object before: nothing written.
    AlreadyDecided,
    /// The payment is not waiting for approval: nothing written.
    NotPending { status: String },
    /// No such payment: nothing written.
    NotFound,
}

/// What `Store::decide_batch` did.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchDecisionOutcome {
    /// The decision was stored; the batch as it is now (still `pending_approval`, or
    /// `queued` after the last approval, or `declined`), with the approvals counted.
    Recorded {
        batch: Box<StoredBatch>,
        approvals: u32,
    },
    /// This person decided on this batch before: nothing written.
    AlreadyDecided,
    /// The batch is not waiting for approval: nothing written.
    NotPending { status: String },
    /// No such batch: nothing written.
    NotFound,
}

pub(crate) struct DecisionRows {
    pub decision: ApprovalDecision,
    pub audit: AuditRow,
}

pub(crate) fn decision_rows(
    decision: ApprovalDecision,
    audit: NewAuditRecord,
) -> Result<DecisionRows, StoreError> {
    let at = codec::instant(decision.at, "decision at")?;
    if decision.decided_by.is_empty() || decision.decided_by.chars().count() > 128 {
        return Err(invalid(
            "a decision names its person in 1 to 128 characters".to_owned(),
        ));
    }
    if decision
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > DECISION_COMMENT_MAX_CHARS)
    {
        return Err(invalid(format!(
            "a decision comment takes at most {DECISION_COMMENT_MAX_CHARS} characters"
        )));
    }
    refuse_nul("decision comment", decision.comment.as_deref())?;
    refuse_nul("decision person", Some(&decision.decided_by))?;
    Ok(DecisionRows {
        decision: ApprovalDecision { at, ..decision },
        audit: AuditRow::new(audit)?,
    })
}

/// The decision statements a backend adds to its payment transaction.
#[async_trait]
pub(crate) trait DecisionTx: PaymentTx {
    /// The payment's status, locked until commit where the backend has row locks, and the
    /// approvals it needs.
    async fn lock_for_decision(&mut self, id: &str) -> Result<Option<(Current, i64)>, StoreError>;
    /// Inserts unless this person decided on this object before; true when inserted.
    async fn insert_decision(&mut self, d: &ApprovalDecision) -> Result<bool, StoreError>;
    /// The approvals (not declines) stored for the object.
    async fn count_approvals(
        &mut self,
        object: ApprovalObject,
        id: &str,
    ) -> Result<i64, StoreError>;
}

fn step(
    id: &str,
    from: PaymentStatus,
    to: PaymentStatus,
    cause: TransitionCause,
    next_attempt_at: Option<DateTime<Utc>>,
    d: &ApprovalDecision,
    audit: AuditRow,
) -> TransitionRows {
    TransitionRows {
        id: id.to_owned(),
        guard: decision_guard(from),
        change: decision_change(to, cause, next_attempt_at),
        actor: decider(d),
        audit,
    }
}

/// A decision's transitions start from a status, whatever the fencing token: the object
/// is locked and nothing holds a lease on what waits for people.
fn decision_guard(from: PaymentStatus) -> TransitionGuard {
    TransitionGuard {
        from_status: from.as_str().to_owned(),
        fencing_token: None,
    }
}

/// What a decision changes: the status and why, when the object is next due.
fn decision_change(
    to: PaymentStatus,
    cause: TransitionCause,
    next_attempt_at: Option<DateTime<Utc>>,
) -> PaymentChange {
    PaymentChange {
        to_status: to.as_str().to_owned(),
        cause: cause.as_str().to_owned(),
        bank_code: None,
        bank_message: None,
        bank_payment_id: None,
        mark_sent: false,
        next_attempt_at,
        release_lease: false,
    }
}

fn decider(d: &ApprovalDecision) -> Actor {
    Actor {
        name: d.decided_by.clone(),
        request_id: d.request_id.clone(),
    }
}

/// `Store::decide_payment` (see there).
pub(crate) async fn decide_payment<T: DecisionTx>(
    tx: &mut T,
    rows: &DecisionRows,
) -> Result<DecisionOutcome, StoreError> {
    let d = &rows.decision;
    let id = d.object_id.as_str();
    let Some((current, required)) = tx.lock_for_decision(id).await? else {
        return Ok(DecisionOutcome::NotFound);
    };
    if current.status != PaymentStatus::PendingApproval.as_str() {
        return Ok(DecisionOutcome::NotPending {
            status: current.status,
        });
    }
    if !tx.insert_decision(d).await? {
        return Ok(DecisionOutcome::AlreadyDecided);
    }
    let approvals = tx.count_approvals(ApprovalObject::Payment, id).await?;
    let approvals_u32 = u32::try_from(approvals).unwrap_or(u32::MAX);
    let payment = match d.decision {
        Decision::Decline => {
            let t = step(
                id,
                PaymentStatus::PendingApproval,
                PaymentStatus::Declined,
                TransitionCause::Declined,
                None,
                d,
                rows.audit.clone(),
            );
            transition(tx, &t).await?
        }
        Decision::Approve if approvals >= required => {
            // pending_approval -> approved -> queued, as the state machine draws it; the
            // release carries its own audit record, the decision's comes first.
            let t = step(
                id,
                PaymentStatus::PendingApproval,
                PaymentStatus::Approved,
                TransitionCause::ApprovalGranted,
                None,
                d,
                rows.audit.clone(),
            );
            transition(tx, &t).await?;
            let mut release = rows.audit.clone();
            release.action = "payment.release".to_owned();
            release.outcome = "queued".to_owned();
            release.details = serde_json::json!({ "approvals": approvals }).to_string();
            let t = step(
                id,
                PaymentStatus::Approved,
                PaymentStatus::Queued,
                TransitionCause::Released,
                Some(d.at),
                d,
                release,
            );
            transition(tx, &t).await?
        }
        Decision::Approve => {
            tx.insert_audit(&rows.audit).await?;
            tx.fetch(id)
                .await?
                .ok_or_else(|| crate::payments::missing_after_write(id))?
        }
    };
    Ok(DecisionOutcome::Recorded {
        payment: Box::new(payment),
        approvals: approvals_u32,
    })
}

/// Column values of one `approval_decisions` row.
pub(crate) struct DecisionColumns {
    pub object_kind: String,
    pub object_id: String,
    pub decided_by: String,
    pub decision: String,
    pub comment: Option<String>,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

pub(crate) const DECISIONS_TABLE: &str = "approval_decisions";

impl DecisionColumns {
    pub(crate) fn into_domain(self) -> Result<ApprovalDecision, StoreError> {
        let object = match self.object_kind.as_str() {
            "payment" => ApprovalObject::Payment,
            "batch" => ApprovalObject::Batch,
            _ => {
                return Err(crate::payments::corrupt(
                    DECISIONS_TABLE,
                    "object_kind",
                    "unknown object kind".to_owned(),
                ))
            }
        };
        let decision = Decision::parse(&self.decision).ok_or_else(|| {
            crate::payments::corrupt(DECISIONS_TABLE, "decision", "unknown decision".to_owned())
        })?;
        Ok(ApprovalDecision {
            object,
            object_id: self.object_id,
            decided_by: self.decided_by,
            decision,
            comment: self.comment,
            request_id: self.request_id,
            at: self.at,
        })
    }
}

/// Moves the chunks `chunk_nos` of the batch from `from` to `to` (the batch is locked, so
/// the compare-and-set cannot lose), with one batch-level history row.
#[allow(clippy::too_many_arguments)]
async fn move_chunks<T: BatchTx + ?Sized>(
    tx: &mut T,
    batch_id: &str,
    chunk_nos: &[i64],
    from: PaymentStatus,
    to: PaymentStatus,
    cause: TransitionCause,
    next_attempt_at: Option<DateTime<Utc>>,
    d: &ApprovalDecision,
    audit: &AuditRow,
) -> Result<(), StoreError> {
    let actor = decider(d);
    for &chunk_no in chunk_nos {
        let rows = ChunkTransitionRows {
            batch_id: batch_id.to_owned(),
            chunk_no,
            guard: decision_guard(from),
            change: decision_change(to, cause, next_attempt_at),
            items: ItemUpdate::None,
            actor: actor.clone(),
            audit: audit.clone(),
        };
        if !tx.update_chunk(&rows).await? {
            return Err(StoreError::Contention {
                what: "a batch chunk changed under its batch lock",
            });
        }
    }
    tx.insert_batch_history(&BatchHistoryRow {
        batch_id: batch_id.to_owned(),
        at: d.at,
        chunk_no: None,
        from_status: Some(from.as_str().to_owned()),
        to_status: to.as_str().to_owned(),
        cause: cause.as_str().to_owned(),
        bank_code: None,
        bank_message: None,
        actor: actor.name,
        request_id: actor.request_id,
    })
    .await
}

/// `Store::decide_batch` (see there). The batch-level twin of [`decide_payment`]: a
/// decline moves every chunk to `declined` and every item to `cancelled` (nothing was
/// sent); the approval that reaches the batch's `approvals_required` moves every chunk
/// through `approved` to `queued`, due at once.
pub(crate) async fn decide_batch<T: BatchTx + DecisionTx>(
    tx: &mut T,
    rows: &DecisionRows,
) -> Result<BatchDecisionOutcome, StoreError> {
    let d = &rows.decision;
    let id = d.object_id.as_str();
    tx.lock_batch(id).await?;
    let Some(header) = tx.batch_header(id).await? else {
        return Ok(BatchDecisionOutcome::NotFound);
    };
    if header.status != BatchStatus::PendingApproval.as_str() {
        return Ok(BatchDecisionOutcome::NotPending {
            status: header.status,
        });
    }
    if !tx.insert_decision(d).await? {
        return Ok(BatchDecisionOutcome::AlreadyDecided);
    }
    let approvals = tx.count_approvals(ApprovalObject::Batch, id).await?;
    let approvals_u32 = u32::try_from(approvals).unwrap_or(u32::MAX);
    // The chunks waiting for people: every chunk of a batch in pending_approval.
    let waiting: Vec<i64> = tx
        .lock_chunks(id)
        .await?
        .iter()
        .filter(|c| c.status == PaymentStatus::PendingApproval.as_str())
        .map(|c| c.chunk_no)
        .collect();
    let at = d.at;
    let batch = match d.decision {
        Decision::Decline => {
            move_chunks(
                tx,
                id,
                &waiting,
                PaymentStatus::PendingApproval,
                PaymentStatus::Declined,
                TransitionCause::Declined,
                None,
                d,
                &rows.audit,
            )
            .await?;
            tx.update_items(
                id,
                None,
                None,
                &item_froms(ItemStatus::Cancelled),
                ItemStatus::Cancelled,
                None,
                None,
                at,
            )
            .await?;
            let batch = settle_status(tx, id, at).await?;
            tx.insert_audit(&rows.audit).await?;
            batch
        }
        Decision::Approve if approvals >= i64::from(header.approvals_required) => {
            move_chunks(
                tx,
                id,
                &waiting,
                PaymentStatus::PendingApproval,
                PaymentStatus::Approved,
                TransitionCause::ApprovalGranted,
                None,
                d,
                &rows.audit,
            )
            .await?;
            move_chunks(
                tx,
                id,
                &waiting,
                PaymentStatus::Approved,
                PaymentStatus::Queued,
                TransitionCause::Released,
                Some(at),
                d,
                &rows.audit,
            )
            .await?;
            let batch = settle_status(tx, id, at).await?;
            // The decision's record first, then the release's.
            tx.insert_audit(&rows.audit).await?;
            let mut release = rows.audit.clone();
            release.action = "payment_batch.release".to_owned();
            release.outcome = "queued".to_owned();
            release.details = serde_json::json!({ "approvals": approvals }).to_string();
            tx.insert_audit(&release).await?;
            batch
        }
        Decision::Approve => {
            tx.insert_audit(&rows.audit).await?;
            fetch_full(tx, id)
                .await?
                .ok_or_else(|| crate::payments::missing_after_write(id))?
        }
    };
    Ok(BatchDecisionOutcome::Recorded {
        batch: Box::new(batch),
        approvals: approvals_u32,
    })
}
