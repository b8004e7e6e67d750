//! Four-eyes resolutions of `needs_review` (docs/approvals.md): a payment or
//! batch chunk whose outcome stayed unknown waits for a person; an operator
//! (scope `admin`) proposes what the bank's records show (`accepted`,
//! `failed`, or `queued` to send again under the same reference), and only a
//! second, different operator proposing the same decision about the same
//! state of the object applies it. Every proposal, confirmation and refusal
//! is audited.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use domain::{ItemStatus, PaymentStatus, TransitionCause};
use serde::{Deserialize, Serialize};
use store::{
    ItemUpdate, NewAuditRecord, PaymentChange, ProposalOutcome, ResolutionObject,
    ResolutionProposal, StoreError, TransitionGuard, RESOLUTION_REASON_MAX_CHARS,
};
use utoipa::ToSchema;

use crate::{
    auth::Scope,
    extract::{request_id, Caller},
    payment_batches::{batch_view, visible_batch, BatchView},
    payments::{payment_not_found, payment_view, visible_payment, PaymentView},
    problem::{ApiError, Problem},
    AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
pub struct Resolution {
    /// `accepted` (the bank has it), `failed` (it did not and will not), or
    /// `queued` (send it again, same reference).
    pub decision: String,
    /// Why: what the operator checked (kept in the history and audit).
    pub reason: String,
}

/// An open proposal, waiting for a second operator.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProposalView {
    pub decision: String,
    pub reason: String,
    /// `client:<id>` or `user:<id>`.
    pub proposed_by: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub at: DateTime<Utc>,
}

impl From<&ResolutionProposal> for ProposalView {
    fn from(p: &ResolutionProposal) -> ProposalView {
        ProposalView {
            decision: p.decision.clone(),
            reason: p.reason.clone(),
            proposed_by: p.proposed_by.clone(),
            at: p.at,
        }
    }
}

fn parse_resolution(body: &Bytes) -> Result<(PaymentStatus, String), ApiError> {
    let resolution: Resolution = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("expected {{\"decision\", \"reason\"}}: {e}"),
        )
        .with_field("body")
    })?;
    let to = match resolution.decision.as_str() {
        "accepted" => PaymentStatus::Accepted,
        "failed" => PaymentStatus::Failed,
        "queued" => PaymentStatus::Queued,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_decision",
                "decision must be accepted, failed or queued",
            )
            .with_field("body.decision"))
        }
    };
    let reason = resolution.reason.trim();
    if reason.is_empty()
        || reason.chars().count() > RESOLUTION_REASON_MAX_CHARS
        || reason.contains('\0')
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_reason",
            format!(
                "reason must say what was checked (1 to {RESOLUTION_REASON_MAX_CHARS} characters)"
            ),
        )
        .with_field("body.reason"));
    }
    Ok((to, reason.to_owned()))
}

/// Whether an operator may move `from` to `to` at all (409 otherwise).
fn check_transition(from: &str, to: PaymentStatus, noun: &str) -> Result<(), ApiError> {
    let from = PaymentStatus::parse(from).map_err(|e| ApiError::internal("stored status", &e))?;
    domain::transition(from, to, TransitionCause::OperatorDecision).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            format!("a {noun} in {from} cannot be resolved to {to}: {e}"),
        )
    })?;
    Ok(())
}

/// The first step of every resolution: the proposal, stored or confirmed.
/// `Ok(None)`: stored (the caller answers 202); `Ok(Some(p))`: confirmed by
/// this caller, to be applied now.
#[allow(clippy::too_many_arguments)]
async fn propose(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    object: ResolutionObject,
    object_id: &str,
    audit_object: String,
    audit_action: &str,
    from: &str,
    to: PaymentStatus,
    reason: &str,
    snapshot: String,
) -> Result<Option<ResolutionProposal>, ApiError> {
    let now = state.clock.now();
    let outcome = state
        .store
        .propose_resolution(
            ResolutionProposal {
                object,
                object_id: object_id.to_owned(),
                decision: to.as_str().to_owned(),
                reason: reason.to_owned(),
                proposed_by: caller.actor(),
                snapshot,
                request_id: request_id(headers),
                at: now,
            },
            NewAuditRecord {
                at: now,
                actor: caller.actor(),
                action: audit_action.to_owned(),
                object: audit_object.clone(),
                request_id: request_id(headers),
                outcome: "proposed".to_owned(),
                details: serde_json::json!({ "from": from, "decision": to.as_str(), "reason": reason }),
            },
        )
        .await
        .map_err(|e| ApiError::storage(&e))?;
    match outcome {
        ProposalOutcome::Stored { .. } => Ok(None),
        ProposalOutcome::Confirmed(p) => Ok(Some(p)),
        ProposalOutcome::AlreadyProposed(_) => {
            let audit = NewAuditRecord {
                at: now,
                actor: caller.actor(),
                action: audit_action.to_owned(),
                object: audit_object,
                request_id: request_id(headers),
                outcome: "refused".to_owned(),
                details: serde_json::json!({ "reason": "own proposal" }),
            };
            if let Err(e) = state.store.append_audit(audit).await {
                tracing::error!(error = %e, "could not audit a refused resolution");
            }
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_proposed",
                "you proposed this resolution; a second operator with the admin scope must confirm it with the same decision",
            ))
        }
    }
}

/// The history and audit text of an applied resolution: both people's words.
fn applied_message(proposal: &ResolutionProposal, confirmer: &str, reason: &str) -> String {
    // The history column holds 1024 characters; two full reasons fit with room to spare
    // only when the names are short, so the tail is cut rather than refused.
    format!(
        "{} (proposed by {}); confirmed by {confirmer}: {reason}",
        proposal.reason, proposal.proposed_by
    )
    .chars()
    .take(1024)
    .collect()
}

fn applied_details(
    from: &str,
    proposal: &ResolutionProposal,
    caller: &Caller,
    reason: &str,
) -> serde_json::Value {
    serde_json::json!({
        "from": from,
        "decision": proposal.decision,
        "proposed_by": proposal.proposed_by,
        "proposal_reason": proposal.reason,
        "confirmed_by": caller.actor(),
        "reason": reason,
    })
}

/// Resolves a payment in `needs_review`, four eyes: the first operator's
/// call stores a proposal (202, the payment unchanged, its
/// `resolution_proposal` shown); a second, different operator sending the
/// same decision applies it (200). A different decision replaces the open
/// proposal; the proposer repeating it is 409 `already_proposed`. Needs
/// `admin`.
#[utoipa::path(post, path = "/v1/payments/{id}/resolve", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    request_body = Resolution,
    responses((status = 200, body = PaymentView), (status = 202, body = PaymentView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn resolve_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let (to, reason) = parse_resolution(&body)?;
    let p = visible_payment(&state, &caller, &id).await?;
    check_transition(&p.status, to, "payment")?;
    let object = format!("payment:{}", p.instruction.id);
    let confirmed = propose(
        &state,
        &caller,
        &headers,
        ResolutionObject::Payment,
        p.instruction.id.as_str(),
        object.clone(),
        "payment.resolve",
        &p.status,
        to,
        &reason,
        format!("version:{}", p.version),
    )
    .await?;
    let Some(proposal) = confirmed else {
        let history = state
            .store
            .payment_history(&p.instruction.id)
            .await
            .map_err(|e| ApiError::storage(&e))?;
        let mut view = payment_view(&p, Some(&history));
        view.resolution_proposal = payment_proposal(&state, &p).await?;
        return Ok((StatusCode::ACCEPTED, Json(view)).into_response());
    };
    let now = state.clock.now();
    let updated = state
        .store
        .transition_payment(
            &p.instruction.id,
            TransitionGuard {
                from_status: p.status.clone(),
                fencing_token: Some(p.fencing_token),
            },
            operator_change(
                to,
                applied_message(&proposal, &caller.actor(), &reason),
                now,
            ),
            store::Actor {
                name: caller.actor(),
                request_id: request_id(&headers),
            },
            NewAuditRecord {
                at: now,
                actor: caller.actor(),
                action: "payment.resolve".to_owned(),
                object,
                request_id: request_id(&headers),
                outcome: to.as_str().to_owned(),
                details: applied_details(&p.status, &proposal, &caller, &reason),
            },
        )
        .await
        .map_err(|e| changed(&e, "payment"))?;
    state.dispatcher_wake.notify_one();
    let history = state
        .store
        .payment_history(&updated.instruction.id)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(payment_view(&updated, Some(&history))).into_response())
}

/// The transition an applied resolution makes: to `to` by an operator's
/// decision, both people's words as the message, the lease released, and
/// due now when the bank is to be sent to or asked again.
fn operator_change(to: PaymentStatus, message: String, now: DateTime<Utc>) -> PaymentChange {
    PaymentChange {
        to_status: to.as_str().to_owned(),
        cause: TransitionCause::OperatorDecision.as_str().to_owned(),
        bank_code: None,
        bank_message: Some(message),
        bank_payment_id: None,
        mark_sent: false,
        next_attempt_at: matches!(to, PaymentStatus::Queued | PaymentStatus::Accepted)
            .then_some(now),
        release_lease: true,
    }
}

fn changed(e: &StoreError, noun: &str) -> ApiError {
    match e {
        StoreError::Conflict { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "resolution_stale",
            format!("the {noun} changed since the resolution was proposed; read it again and propose anew"),
        ),
        StoreError::NotFound { .. } => payment_not_found(),
        other => ApiError::storage(other),
    }
}

/// The open proposal of a payment in review, for its view.
pub(crate) async fn payment_proposal(
    state: &AppState,
    p: &store::StoredPayment,
) -> Result<Option<ProposalView>, ApiError> {
    if p.status != PaymentStatus::NeedsReview.as_str() {
        return Ok(None);
    }
    let open = state
        .store
        .resolution_proposal(ResolutionObject::Payment, p.instruction.id.as_str())
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(open
        .filter(|o| o.snapshot == format!("version:{}", p.version))
        .as_ref()
        .map(ProposalView::from))
}

fn chunk_object_id(batch: &str, chunk_no: i64) -> String {
    format!("{batch}#{chunk_no}")
}

fn chunk_snapshot(c: &store::StoredChunk) -> String {
    format!(
        "fence:{}@{}",
        c.fencing_token,
        c.updated_at.timestamp_micros()
    )
}

/// The open proposals of a batch's chunks in review, for its view.
pub(crate) async fn chunk_proposals(
    state: &AppState,
    b: &store::StoredBatch,
    view: &mut BatchView,
) -> Result<(), ApiError> {
    let Some(chunks) = view.chunks.as_mut() else {
        return Ok(());
    };
    for (stored, shown) in b.chunks.iter().zip(chunks.iter_mut()) {
        if stored.status != PaymentStatus::NeedsReview.as_str() {
            continue;
        }
        let open = state
            .store
            .resolution_proposal(
                ResolutionObject::Chunk,
                &chunk_object_id(b.id.as_str(), stored.chunk_no),
            )
            .await
            .map_err(|e| ApiError::storage(&e))?;
        shown.resolution_proposal = open
            .filter(|o| o.snapshot == chunk_snapshot(stored))
            .as_ref()
            .map(ProposalView::from);
    }
    Ok(())
}

/// Resolves one chunk of a batch in `needs_review`, four eyes as for a
/// payment. Applied, its open items follow the decision: `failed` fails
/// them, `accepted` marks them accepted (the bank's status queries then
/// settle them), `queued` makes them pending again for the resend under the
/// chunk's reference. Needs `admin`.
#[utoipa::path(post, path = "/v1/payment-batches/{id}/chunks/{chunk_no}/resolve", tag = "payment-batches",
    params(("id" = String, Path, description = "Batch id"), ("chunk_no" = i64, Path, description = "Chunk number, from 1")),
    request_body = Resolution,
    responses((status = 200, body = BatchView), (status = 202, body = BatchView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn resolve_chunk(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, chunk_no)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let (to, reason) = parse_resolution(&body)?;
    let b = visible_batch(&state, &caller, &id).await?;
    let chunk = chunk_no
        .parse::<i64>()
        .ok()
        .and_then(|n| b.chunks.iter().find(|c| c.chunk_no == n))
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(
                "chunk_not_found",
                "path.chunk_no",
                format!(
                    "batch {} has chunks 1 to {}; see its chunks with GET /v1/payment-batches/{}",
                    b.id,
                    b.chunks.len(),
                    b.id
                ),
            )
        })?;
    check_transition(&chunk.status, to, "chunk")?;
    let object_id = chunk_object_id(b.id.as_str(), chunk.chunk_no);
    let object = format!("payment_batch:{}", b.id);
    let confirmed = propose(
        &state,
        &caller,
        &headers,
        ResolutionObject::Chunk,
        &object_id,
        object.clone(),
        "payment_batch.resolve_chunk",
        &chunk.status,
        to,
        &reason,
        chunk_snapshot(&chunk),
    )
    .await?;
    let Some(proposal) = confirmed else {
        let mut view = batch_view(&b, None, true);
        chunk_proposals(&state, &b, &mut view).await?;
        return Ok((StatusCode::ACCEPTED, Json(view)).into_response());
    };
    let now = state.clock.now();
    let message = applied_message(&proposal, &caller.actor(), &reason);
    let items = match to {
        PaymentStatus::Failed => ItemStatus::Failed,
        PaymentStatus::Accepted => ItemStatus::Accepted,
        _ => ItemStatus::Pending,
    };
    let mut details = applied_details(&chunk.status, &proposal, &caller, &reason);
    details["chunk_no"] = serde_json::json!(chunk.chunk_no);
    let updated = state
        .store
        .transition_chunk(
            &b.id,
            chunk.chunk_no,
            TransitionGuard {
                from_status: chunk.status.clone(),
                fencing_token: Some(chunk.fencing_token),
            },
            operator_change(to, message.clone(), now),
            ItemUpdate::AllOpen {
                status: items,
                bank_code: None,
                bank_message: (to == PaymentStatus::Failed).then_some(message),
            },
            store::Actor {
                name: caller.actor(),
                request_id: request_id(&headers),
            },
            NewAuditRecord {
                at: now,
                actor: caller.actor(),
                action: "payment_batch.resolve_chunk".to_owned(),
                object,
                request_id: request_id(&headers),
                outcome: to.as_str().to_owned(),
                details,
            },
        )
        .await
        .map_err(|e| changed(&e, "chunk"))?;
    state.dispatcher_wake.notify_one();
    Ok(Json(batch_view(&updated, None, true)).into_response())
}
