//! Maker-checker approvals (docs/approvals.md): which payments and batches
//! need approvals (the `[[approval_rules]]` of the configuration, applied at
//! intake), who made them (`on_behalf_of`), and the approval view.
//!
//! A payment or batch matched by a rule is stored in `pending_approval` with
//! the number of distinct approvals it needs; the dispatcher never claims
//! that status, so nothing reaches a bank before the approvals are in.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{
    ApprovalObject, BatchDecisionOutcome, Decision, DecisionOutcome, NewAuditRecord,
    DECISION_COMMENT_MAX_CHARS,
};
use utoipa::ToSchema;

use crate::{
    auth::Scope,
    config::Role,
    extract::{request_id, Caller, USER_SUBJECT_PREFIX},
    payment_batches::{batch_not_found, batch_view, visible_batch, BatchView},
    payments::{payment_not_found, payment_view, visible_payment, PaymentView},
    problem::{ApiError, Problem},
    AppState,
};

/// One approval given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalGiven {
    /// `user:<id>`.
    pub user: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub at: DateTime<Utc>,
}

/// Where a payment or batch stands with its approvals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalsView {
    /// Distinct approvals needed before it is queued; 0 when no rule matched.
    pub required: u8,
    pub given: Vec<ApprovalGiven>,
    /// `user:<id>` of the person who declined it, if anyone did.
    pub declined_by: Option<String>,
}

impl ApprovalsView {
    pub fn required_only(required: u8) -> ApprovalsView {
        ApprovalsView {
            required,
            given: Vec::new(),
            declined_by: None,
        }
    }
}

/// The person a create request is made for (`user:<id>`), and the body
/// without the `on_behalf_of` member (the payment parser does not know it).
///
/// With a user token the person is the token's user; a body `on_behalf_of`
/// must then name that same user. A client token may name a configured user
/// with the maker or admin role, whom the client acts for; without it the
/// client itself is the maker.
pub(crate) fn on_behalf_of(
    state: &AppState,
    caller: &Caller,
    json: &Value,
) -> Result<(Option<String>, Value), ApiError> {
    let mut body = json.clone();
    let named = match body.as_object_mut().and_then(|o| o.remove("on_behalf_of")) {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(bad_on_behalf_of(
                "on_behalf_of must be a string: the id of a configured user",
            ))
        }
    };
    match (&caller.user, named) {
        (Some(user), None) => Ok((Some(format!("{USER_SUBJECT_PREFIX}{user}")), body)),
        (Some(user), Some(named)) if &named == user => {
            Ok((Some(format!("{USER_SUBJECT_PREFIX}{user}")), body))
        }
        (Some(_), Some(_)) => Err(bad_on_behalf_of(
            "a person's token acts for that person only; leave out on_behalf_of or name yourself",
        )),
        (None, None) => Ok((None, body)),
        (None, Some(named)) => {
            let maker = state.config.users.iter().find(|u| {
                u.id.as_str() == named
                    && u.roles
                        .iter()
                        .any(|r| matches!(r, Role::Maker | Role::Admin))
            });
            match maker {
                Some(u) => Ok((Some(format!("{USER_SUBJECT_PREFIX}{}", u.id)), body)),
                None => Err(bad_on_behalf_of(
                    "on_behalf_of must name a configured user with the maker or admin role",
                )),
            }
        }
    }
}

fn bad_on_behalf_of(detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_on_behalf_of",
        detail,
    )
    .with_field("body.on_behalf_of")
}

/// The approvals view of a payment or batch from its stored decisions.
pub(crate) fn view_of(required: u8, decisions: &[store::ApprovalDecision]) -> ApprovalsView {
    ApprovalsView {
        required,
        given: decisions
            .iter()
            .filter(|d| d.decision == Decision::Approve)
            .map(|d| ApprovalGiven {
                user: d.decided_by.clone(),
                at: d.at,
            })
            .collect(),
        declined_by: decisions
            .iter()
            .find(|d| d.decision == Decision::Decline)
            .map(|d| d.decided_by.clone()),
    }
}

/// The payment with its approvals filled from the store.
pub(crate) async fn payment_approvals(
    state: &AppState,
    p: &store::StoredPayment,
) -> Result<ApprovalsView, ApiError> {
    if p.instruction.approvals_required == 0 {
        return Ok(ApprovalsView::required_only(0));
    }
    let decisions = state
        .store
        .approval_decisions(ApprovalObject::Payment, p.instruction.id.as_str())
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(view_of(p.instruction.approvals_required, &decisions))
}

/// The optional body of a decision: `{"comment": "…"}`.
fn decision_comment(body: &Bytes) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            "body",
            format!("the body is not valid JSON ({e}); send {{\"comment\": \"…\"}} or nothing"),
        )
    })?;
    let Some(obj) = json.as_object() else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            "the body must be a JSON object: {\"comment\": \"…\"}",
        )
        .with_field("body"));
    };
    if let Some(k) = obj.keys().find(|k| k.as_str() != "comment") {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            format!("{k} is not a field of a decision; only comment is"),
        )
        .with_field(format!("body.{k}")));
    }
    match obj.get("comment") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if !s.is_empty()
                && s.chars().count() <= DECISION_COMMENT_MAX_CHARS
                && !s.contains('\0') =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_comment",
            format!("comment must be a string of 1 to {DECISION_COMMENT_MAX_CHARS} characters"),
        )
        .with_field("body.comment")),
    }
}

/// Who made a payment: its `on_behalf_of` person, else the creating subject
/// (a client id, or `user:<id>`).
fn maker_of(p: &store::StoredPayment) -> &str {
    p.instruction
        .on_behalf_of
        .as_deref()
        .unwrap_or(&p.instruction.client_id)
}

async fn audit_refusal(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    object: String,
    action: &str,
    reason: &str,
) {
    let audit = NewAuditRecord {
        at: state.clock.now(),
        actor: caller.actor(),
        action: action.to_owned(),
        object,
        request_id: request_id(headers),
        outcome: "refused".to_owned(),
        details: serde_json::json!({ "reason": reason }),
    };
    if let Err(e) = state.store.append_audit(audit).await {
        tracing::error!(error = %e, "could not audit a refused approval decision");
    }
}

fn user_of(caller: &Caller) -> Result<&str, ApiError> {
    caller.user.as_deref().ok_or_else(|| {
        ApiError::forbidden(
            "user_token_required",
            "approvals are given by people: log in with grant_type=password and use that token",
        )
    })
}

/// The checks every decision passes before the store (a person's token, a
/// well-formed comment, not the maker), each refusal audited; then the
/// decision and its audit record, ready for the store.
#[allow(clippy::too_many_arguments)]
async fn prepare_decision(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &Bytes,
    decision: Decision,
    object: ApprovalObject,
    id: &str,
    maker: &str,
) -> Result<(store::ApprovalDecision, NewAuditRecord), ApiError> {
    let (noun, audit_kind) = match object {
        ApprovalObject::Payment => ("payment", "payment"),
        ApprovalObject::Batch => ("batch", "payment_batch"),
    };
    let action = format!("{audit_kind}.{}", decision.as_str());
    let audit_object = format!("{audit_kind}:{id}");
    if let Err(e) = user_of(caller) {
        audit_refusal(
            state,
            caller,
            headers,
            audit_object,
            &action,
            "not a person",
        )
        .await;
        return Err(e);
    }
    let comment = decision_comment(body)?;
    if maker == caller.subject {
        audit_refusal(
            state,
            caller,
            headers,
            audit_object,
            &action,
            &format!("own {noun}"),
        )
        .await;
        return Err(ApiError::forbidden(
            match object {
                ApprovalObject::Payment => "own_payment",
                ApprovalObject::Batch => "own_batch",
            },
            format!("the maker of a {noun} never decides on it; another approver must"),
        ));
    }
    let now = state.clock.now();
    Ok((
        store::ApprovalDecision {
            object,
            object_id: id.to_owned(),
            decided_by: caller.subject.clone(),
            decision,
            comment: comment.clone(),
            request_id: request_id(headers),
            at: now,
        },
        NewAuditRecord {
            at: now,
            actor: caller.actor(),
            action,
            object: audit_object,
            request_id: request_id(headers),
            outcome: match decision {
                Decision::Approve => "approved",
                Decision::Decline => "declined",
            }
            .to_owned(),
            details: serde_json::json!({ "comment": comment }),
        },
    ))
}

/// Why the store refused a decision, as the audited 409.
enum Refused {
    AlreadyDecided,
    NotPending(String),
}

async fn refuse_decision(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    audit: &NewAuditRecord,
    noun: &str,
    refused: Refused,
) -> ApiError {
    let (reason, error) = match refused {
        Refused::AlreadyDecided => (
            "already decided",
            ApiError::new(
                StatusCode::CONFLICT,
                "already_decided",
                format!("you already decided on this {noun}; a person counts once"),
            ),
        ),
        Refused::NotPending(status) => (
            "not pending",
            ApiError::new(
                StatusCode::CONFLICT,
                "not_pending_approval",
                format!(
                    "the {noun} is {status}; only a {noun} in pending_approval takes decisions"
                ),
            ),
        ),
    };
    audit_refusal(
        state,
        caller,
        headers,
        audit.object.clone(),
        &audit.action,
        reason,
    )
    .await;
    error
}

async fn decide_payment(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    decision: Decision,
) -> Result<Json<PaymentView>, ApiError> {
    caller.require(Scope::PaymentsApprove)?;
    let p = visible_payment(&state, &caller, &id).await?;
    let (record, audit) = prepare_decision(
        &state,
        &caller,
        &headers,
        &body,
        decision,
        ApprovalObject::Payment,
        p.instruction.id.as_str(),
        maker_of(&p),
    )
    .await?;
    let outcome = state
        .store
        .decide_payment(record, audit.clone())
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let refused = match outcome {
        DecisionOutcome::Recorded { payment, .. } => Ok(payment),
        DecisionOutcome::AlreadyDecided => Err(Refused::AlreadyDecided),
        DecisionOutcome::NotPending { status } => Err(Refused::NotPending(status)),
        DecisionOutcome::NotFound => return Err(payment_not_found()),
    };
    let updated = match refused {
        Ok(payment) => payment,
        Err(r) => {
            return Err(refuse_decision(&state, &caller, &headers, &audit, "payment", r).await)
        }
    };
    if updated.status == domain::PaymentStatus::Queued.as_str() {
        state.dispatcher_wake.notify_one();
    }
    let history = state
        .store
        .payment_history(&updated.instruction.id)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let mut view = payment_view(&updated, Some(&history));
    view.approvals = payment_approvals(&state, &updated).await?;
    Ok(Json(view))
}

/// The batch with its approvals filled from the store.
pub(crate) async fn batch_approvals(
    state: &AppState,
    b: &store::StoredBatch,
) -> Result<ApprovalsView, ApiError> {
    if b.approvals_required == 0 {
        return Ok(ApprovalsView::required_only(0));
    }
    let decisions = state
        .store
        .approval_decisions(ApprovalObject::Batch, b.id.as_str())
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(view_of(b.approvals_required, &decisions))
}

async fn decide_batch(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    decision: Decision,
) -> Result<Json<BatchView>, ApiError> {
    caller.require(Scope::PaymentsApprove)?;
    let b = visible_batch(&state, &caller, &id).await?;
    let maker = b.on_behalf_of.as_deref().unwrap_or(&b.client_id);
    let (record, audit) = prepare_decision(
        &state,
        &caller,
        &headers,
        &body,
        decision,
        ApprovalObject::Batch,
        b.id.as_str(),
        maker,
    )
    .await?;
    let outcome = state
        .store
        .decide_batch(record, audit.clone())
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let refused = match outcome {
        BatchDecisionOutcome::Recorded { batch, .. } => Ok(batch),
        BatchDecisionOutcome::AlreadyDecided => Err(Refused::AlreadyDecided),
        BatchDecisionOutcome::NotPending { status } => Err(Refused::NotPending(status)),
        BatchDecisionOutcome::NotFound => return Err(batch_not_found()),
    };
    let updated = match refused {
        Ok(batch) => batch,
        Err(r) => return Err(refuse_decision(&state, &caller, &headers, &audit, "batch", r).await),
    };
    if updated.status == domain::BatchStatus::Queued.as_str() {
        state.dispatcher_wake.notify_one();
    }
    let mut view = batch_view(&updated, None, true);
    view.approvals = batch_approvals(&state, &updated).await?;
    Ok(Json(view))
}

/// Approves a payment in `pending_approval`. Needs `payments:approve` and a
/// person's token; the maker never approves their own, a person counts once
/// (a second decision is 409 `already_decided`). The approval that reaches
/// the required number queues the payment.
#[utoipa::path(post, path = "/v1/payments/{id}/approve", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    request_body(content = Object, description = "optional: {\"comment\": \"…\"}"),
    responses((status = 200, body = PaymentView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["payments:approve"])))]
pub async fn approve_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PaymentView>, ApiError> {
    decide_payment(state, caller, headers, id, body, Decision::Approve).await
}

/// Declines a payment in `pending_approval`: it ends `declined` and never
/// reaches a bank. Same rules as approve.
#[utoipa::path(post, path = "/v1/payments/{id}/decline", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    request_body(content = Object, description = "optional: {\"comment\": \"…\"}"),
    responses((status = 200, body = PaymentView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["payments:approve"])))]
pub async fn decline_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PaymentView>, ApiError> {
    decide_payment(state, caller, headers, id, body, Decision::Decline).await
}

/// Approves a batch in `pending_approval` (its total matched an approval
/// rule). Same rules as for payments: `payments:approve` and a person's
/// token; the maker never approves their own; a person counts once. The
/// approval that reaches the required number queues every chunk.
#[utoipa::path(post, path = "/v1/payment-batches/{id}/approve", tag = "payment-batches",
    params(("id" = String, Path, description = "Batch id")),
    request_body(content = Object, description = "optional: {\"comment\": \"…\"}"),
    responses((status = 200, body = BatchView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["payments:approve"])))]
pub async fn approve_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchView>, ApiError> {
    decide_batch(state, caller, headers, id, body, Decision::Approve).await
}

/// Declines a batch in `pending_approval`: it ends `declined`, every item
/// `cancelled`, and no part of it reaches a bank. Same rules as approve.
#[utoipa::path(post, path = "/v1/payment-batches/{id}/decline", tag = "payment-batches",
    params(("id" = String, Path, description = "Batch id")),
    request_body(content = Object, description = "optional: {\"comment\": \"…\"}"),
    responses((status = 200, body = BatchView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["payments:approve"])))]
pub async fn decline_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchView>, ApiError> {
    decide_batch(state, caller, headers, id, body, Decision::Decline).await
}
