//! Payment batch routes (DESIGN.md, "Batches"): create a supplier or payroll
//! batch with an Idempotency-Key, read it with its items, list, cancel.
//!
//! Intake is all or nothing: the body is judged whole — header fields, then
//! every item with exactly the rules of a single payment (each item is read
//! as a payment of the batch's debtor and currency), the count and control
//! sum, end-to-end ids unique in the batch, and the bank's own rules per item
//! (`BankConnector::check_batch_item`) — and every problem is reported with
//! its field (`body.items[41].creditor.name`); one problem and nothing is
//! stored. A valid batch is split into chunks of the bank's maximum batch
//! size, references are generated at batch, chunk and item level, and the
//! whole batch is stored in one transaction with its idempotency record,
//! first event and audit record. The dispatcher sends it afterwards.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    Json,
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use domain::{
    generate_business_reference, AccountId, BatchId, BatchItemId, BusinessDate, Currency,
    ItemStatus, Money, PaymentStatus, ThreadRandom,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use store::{
    BatchCursor, BatchQuery, CancelBatchOutcome, CreateBatchOutcome, IdempotencyClaim,
    NewAuditRecord, NewBatch, NewBatchChunk, NewBatchItem, StoredBatch, StoredBatchItem,
};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Scope,
    extract::{request_id, ApiQuery, Caller},
    payment_intake::{parse_payment, FieldProblem},
    payments::{
        currencies_of, debtor_route, decode_time_cursor, encode_time_cursor, in_progress,
        json_response, key_reused, problems_to_error, read_idempotent_body, require_read, today_of,
        CreditorView, DebtorRoute, Intake,
    },
    problem::{ApiError, Problem},
    routes::page_limit,
    AppState,
};

/// Most field problems listed in one answer; the detail says how many more.
const MAX_LISTED_PROBLEMS: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChunkView {
    pub chunk_no: i64,
    /// The chunk's business reference: what the bank knows this submission by.
    pub business_reference: String,
    pub item_count: i64,
    /// The chunk's own submission state (the payment state machine).
    pub status: String,
    pub bank_batch_id: Option<String>,
    pub last_bank_code: Option<String>,
    pub last_bank_message: Option<String>,
    /// The open four-eyes resolution proposal of a chunk in `needs_review`
    /// (docs/approvals.md); only on `GET /v1/payment-batches/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_proposal: Option<crate::resolutions::ProposalView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchItemView {
    pub id: String,
    /// pending, accepted, settled, failed, returned, cancelled, needs_review.
    pub status: String,
    pub amount: String,
    pub creditor: CreditorView,
    pub remittance: String,
    pub purpose: Option<String>,
    pub end_to_end_id: Option<String>,
    pub business_reference: String,
    pub chunk_no: i64,
    /// The bank's code and message for this item (e.g. why it was rejected).
    pub bank_code: Option<String>,
    pub bank_message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchView {
    pub id: String,
    /// received, pending_approval, queued, submitting, accepted, unknown,
    /// needs_review, completed, failed, cancelled, declined.
    pub status: String,
    /// `supplier` or `payroll`.
    pub kind: String,
    pub debtor_account_id: String,
    pub currency: String,
    pub control_sum: String,
    pub count: i64,
    pub requested_execution_date: String,
    pub business_reference: String,
    pub initiated_by: String,
    /// The person the batch was made for (`user:<id>`), if any.
    pub on_behalf_of: Option<String>,
    /// Approvals required and given (docs/approvals.md).
    pub approvals: crate::approvals::ApprovalsView,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub updated_at: DateTime<Utc>,
    /// Items per status; absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_by_status: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<Vec<ChunkView>>,
    /// Every item, in the order given; only on `GET /v1/payment-batches/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<BatchItemView>>,
}

pub(crate) fn batch_view(
    b: &StoredBatch,
    items: Option<&[StoredBatchItem]>,
    detailed: bool,
) -> BatchView {
    BatchView {
        id: b.id.to_string(),
        status: b.status.clone(),
        kind: b.kind.clone(),
        debtor_account_id: b.debtor_account_id.to_string(),
        currency: b.control_sum.currency().code().to_owned(),
        control_sum: b.control_sum.to_decimal_string(),
        count: b.item_count,
        requested_execution_date: b.requested_execution_date.to_string(),
        business_reference: b.business_reference.to_string(),
        initiated_by: b.client_id.clone(),
        on_behalf_of: b.on_behalf_of.clone(),
        approvals: crate::approvals::ApprovalsView::required_only(b.approvals_required),
        created_at: b.created_at,
        updated_at: b.updated_at,
        items_by_status: detailed.then(|| {
            b.item_counts
                .iter()
                .map(|(s, n)| (s.clone(), Value::from(*n)))
                .collect()
        }),
        chunks: detailed.then(|| {
            b.chunks
                .iter()
                .map(|c| ChunkView {
                    chunk_no: c.chunk_no,
                    business_reference: c.business_reference.to_string(),
                    item_count: c.item_count,
                    status: c.status.clone(),
                    bank_batch_id: c.bank_batch_id.clone(),
                    last_bank_code: c.last_bank_code.clone(),
                    last_bank_message: c.last_bank_message.clone(),
                    resolution_proposal: None,
                })
                .collect()
        }),
        items: items.map(|items| items.iter().map(item_view).collect()),
    }
}

fn item_view(i: &StoredBatchItem) -> BatchItemView {
    BatchItemView {
        id: i.id.to_string(),
        status: i.status.as_str().to_owned(),
        amount: i.amount.to_decimal_string(),
        creditor: CreditorView {
            name: i.creditor_name.clone(),
            account: i.creditor_account.clone(),
            bank_code: i.creditor_bank_code.clone(),
            bic: i.creditor_bic.clone(),
            bank_name: i.creditor_bank_name.clone(),
            kind: match i.creditor_type {
                domain::CreditorType::Corporate => "corporate",
                domain::CreditorType::Personal => "personal",
            }
            .to_owned(),
        },
        remittance: i.remittance.clone(),
        purpose: i.purpose.clone(),
        end_to_end_id: i.end_to_end_id.clone(),
        business_reference: i.business_reference.to_string(),
        chunk_no: i.chunk_no,
        bank_code: i.bank_code.clone(),
        bank_message: i.bank_message.clone(),
    }
}

pub(crate) fn batch_not_found() -> ApiError {
    ApiError::not_found(
        "batch_not_found",
        "path.id",
        "no payment batch with this id is visible to you; list yours with GET /v1/payment-batches",
    )
}

fn problem(field: &str, code: &'static str, detail: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field: format!("body.{field}"),
        code,
        detail: detail.into(),
    }
}

/// A batch body whose every field and item is valid.
struct BatchRequest {
    debtor_account_id: AccountId,
    kind: banks::BatchKind,
    requested_execution_date: Option<BusinessDate>,
    control_sum: Money,
    items: Vec<crate::payment_intake::PaymentRequest>,
}

/// Judges the whole body; every problem found, or the request.
fn parse_batch(
    body: &Value,
    max_items: usize,
    currencies_of: &dyn Fn(&AccountId) -> Option<Vec<Currency>>,
    today_of: &dyn Fn(&AccountId) -> Option<BusinessDate>,
) -> Result<BatchRequest, Vec<FieldProblem>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldProblem {
            field: "body".to_owned(),
            code: "invalid_type",
            detail: "the body must be a JSON object".to_owned(),
        }]);
    };
    let mut problems = Vec::new();
    const KNOWN: &[&str] = &[
        "debtor_account_id",
        "currency",
        "kind",
        "requested_execution_date",
        "count",
        "control_sum",
        "items",
    ];
    for k in obj.keys() {
        if !KNOWN.contains(&k.as_str()) {
            problems.push(problem(
                k,
                "unknown_field",
                format!("{k} is not a field of a payment batch; check its spelling"),
            ));
        }
    }
    let kind = match obj.get("kind") {
        Some(Value::String(k)) if k == "payroll" => Some(banks::BatchKind::Payroll),
        Some(Value::String(k)) if k == "supplier" => Some(banks::BatchKind::Supplier),
        None | Some(Value::Null) => {
            problems.push(problem(
                "kind",
                "required",
                "kind is required: payroll (代发工资) or supplier",
            ));
            None
        }
        Some(_) => {
            problems.push(problem(
                "kind",
                "invalid_kind",
                "kind must be payroll (代发工资) or supplier",
            ));
            None
        }
    };
    let count = match obj.get("count") {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(c) if c >= 1 => Some(c),
            _ => {
                problems.push(problem(
                    "count",
                    "invalid_count",
                    "count must be a whole number of items, at least 1",
                ));
                None
            }
        },
        None | Some(Value::Null) => {
            problems.push(problem(
                "count",
                "required",
                "count is required: the number of items, checked against items",
            ));
            None
        }
        Some(_) => {
            problems.push(problem(
                "count",
                "invalid_type",
                "count must be a JSON integer",
            ));
            None
        }
    };
    let items_raw: &[Value] = match obj.get("items") {
        Some(Value::Array(items)) if items.is_empty() => {
            problems.push(problem(
                "items",
                "required",
                "items must hold at least one payment",
            ));
            &[]
        }
        Some(Value::Array(items)) if items.len() > max_items => {
            problems.push(problem(
                "items",
                "too_many_items",
                format!(
                    "a batch holds at most {max_items} items, not {}; split it",
                    items.len()
                ),
            ));
            &[]
        }
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => {
            problems.push(problem(
                "items",
                "required",
                "items is required: the list of payments",
            ));
            &[]
        }
        Some(_) => {
            problems.push(problem("items", "invalid_type", "items must be an array"));
            &[]
        }
    };

    // The header through the single payment's parser: the same rules for the
    // debtor, currency and execution date, and the same field names.
    let mut header = Map::new();
    for k in ["debtor_account_id", "currency", "requested_execution_date"] {
        if let Some(v) = obj.get(k) {
            header.insert(k.to_owned(), v.clone());
        }
    }
    header.insert("amount".to_owned(), Value::from("1"));
    header.insert(
        "creditor".to_owned(),
        serde_json::json!({"name": "x", "account": "1", "bank_code": "308290003020", "type": "corporate"}),
    );
    header.insert("remittance".to_owned(), Value::from("x"));
    let head = match parse_payment(&Value::Object(header), currencies_of, today_of) {
        Ok(h) => Some(h),
        Err(found) => {
            problems.extend(found);
            None
        }
    };
    let control_sum = match (obj.get("control_sum"), &head) {
        (Some(Value::String(raw)), Some(h)) => match Money::parse(raw, h.amount.currency()) {
            Ok(m) if m.minor() > 0 => Some(m),
            Ok(_) => {
                problems.push(problem(
                    "control_sum",
                    "invalid_amount",
                    "control_sum must be greater than zero",
                ));
                None
            }
            Err(e) => {
                problems.push(problem("control_sum", e.code(), e.to_string()));
                None
            }
        },
        (Some(Value::String(_)), None) => None,
        (None | Some(Value::Null), _) => {
            problems.push(problem(
                "control_sum",
                "required",
                "control_sum is required: the items' total as a decimal string",
            ));
            None
        }
        (Some(_), _) => {
            problems.push(problem(
                "control_sum",
                "invalid_type",
                "control_sum must be a decimal string like \"1234.50\", never a JSON number",
            ));
            None
        }
    };

    let mut items = Vec::with_capacity(items_raw.len());
    let mut seen_e2e: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, raw) in items_raw.iter().enumerate() {
        let at = |field: &str| format!("items[{i}].{field}");
        let Some(item) = raw.as_object() else {
            problems.push(problem(
                &format!("items[{i}]"),
                "invalid_type",
                "an item must be a JSON object",
            ));
            continue;
        };
        let mut as_payment = item.clone();
        for k in [
            "debtor_account_id",
            "currency",
            "requested_execution_date",
            "urgency",
        ] {
            if as_payment.remove(k).is_some() {
                problems.push(problem(
                    &at(k),
                    "unknown_field",
                    format!(
                        "{k} is the batch's, not an item's: set it once at the top of the body"
                    ),
                ));
            }
        }
        if let Some(h) = &head {
            as_payment.insert(
                "debtor_account_id".to_owned(),
                Value::from(h.debtor_account_id.as_str()),
            );
            as_payment.insert(
                "currency".to_owned(),
                Value::from(h.amount.currency().code()),
            );
        } else {
            // Without a valid header the item is still judged on its own fields.
            let currency = obj
                .get("currency")
                .and_then(Value::as_str)
                .filter(|c| Currency::from_code(c).is_ok())
                .unwrap_or("CNY");
            as_payment.insert("currency".to_owned(), Value::from(currency));
        }
        let without_debtor = head.is_none();
        match parse_payment(
            &Value::Object(as_payment),
            |id| {
                if without_debtor {
                    None
                } else {
                    currencies_of(id)
                }
            },
            today_of,
        ) {
            Ok(p) => {
                if let Some(e2e) = &p.end_to_end_id {
                    if let Some(first) = seen_e2e.insert(e2e.as_str().to_owned(), i) {
                        problems.push(problem(
                            &at("end_to_end_id"),
                            "duplicate_end_to_end_id",
                            format!("end_to_end_id is also used by items[{first}]; it must be unique in the batch"),
                        ));
                    }
                }
                items.push(p);
            }
            Err(found) => {
                for p in found {
                    // Problems of the synthetic debtor are the header's, already reported.
                    if without_debtor && p.field == "body.debtor_account_id" {
                        continue;
                    }
                    problems.push(FieldProblem {
                        field: p.field.replacen("body.", &format!("body.items[{i}]."), 1),
                        ..p
                    });
                }
            }
        }
    }
    if let Some(c) = count {
        if items_raw.len() as u64 != c && !items_raw.is_empty() {
            problems.push(problem(
                "count",
                "count_mismatch",
                format!("count is {c} but items holds {}", items_raw.len()),
            ));
        }
    }
    if let Some(cs) = control_sum {
        if items.len() == items_raw.len() && !items.is_empty() {
            let total: Option<i64> = items
                .iter()
                .try_fold(0i64, |acc, p| acc.checked_add(p.amount.minor()));
            match total {
                Some(t) if t == cs.minor() => {}
                Some(t) => problems.push(problem(
                    "control_sum",
                    "control_sum_mismatch",
                    format!(
                        "control_sum is {} but the items add up to {}",
                        cs.to_decimal_string(),
                        Money::from_minor(t, cs.currency()).to_decimal_string()
                    ),
                )),
                None => problems.push(problem(
                    "control_sum",
                    "invalid_amount",
                    "the items' total is too large",
                )),
            }
        }
    }
    match (head, kind, control_sum) {
        (Some(h), Some(kind), Some(control_sum)) if problems.is_empty() => Ok(BatchRequest {
            debtor_account_id: h.debtor_account_id,
            kind,
            requested_execution_date: h.requested_execution_date,
            control_sum,
            items,
        }),
        _ => Err(problems),
    }
}

/// Every problem, the first few hundred listed.
fn batch_problems(mut problems: Vec<FieldProblem>) -> ApiError {
    let total = problems.len();
    problems.truncate(MAX_LISTED_PROBLEMS);
    let mut err = problems_to_error(problems.clone());
    if problems.len() == 1 {
        // Keep the list even for one problem: clients of batches read `errors`.
        err.problem.errors = Some(
            problems
                .into_iter()
                .map(|p| crate::problem::FieldError {
                    field: p.field,
                    code: p.code.to_owned(),
                    detail: p.detail,
                })
                .collect(),
        );
    }
    if total > MAX_LISTED_PROBLEMS {
        err.problem.detail = format!(
            "{} ({total} problems in the batch; the first {MAX_LISTED_PROBLEMS} are listed in errors)",
            err.problem.detail
        );
    }
    err
}

/// Creates a payment batch (supplier run or payroll 代发). All or nothing:
/// any invalid field or item is a 422 listing every problem by field, and
/// nothing is stored. The `Idempotency-Key` header is required. Needs
/// `payments:write`.
#[utoipa::path(post, path = "/v1/payment-batches", tag = "payment-batches",
    params(("Idempotency-Key" = String, Header, description = "Unique per batch; resend it to retry safely")),
    request_body(content = Object, description = "debtor_account_id, currency, kind (payroll|supplier), requested_execution_date?, count, control_sum (decimal string), items: [{amount, creditor {name, account, bank_code | bic, type, bank_name?}, remittance, purpose?, end_to_end_id?}]"),
    responses((status = 201, body = BatchView), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let (key, json, request_hash) =
        match read_idempotent_body(&state, &caller, &headers, &body).await? {
            Intake::Replay(response) => return Ok(response),
            Intake::New {
                key,
                json,
                request_hash,
            } => (key, json, request_hash),
        };
    let (on_behalf_of, json) = crate::approvals::on_behalf_of(&state, &caller, &json)?;
    let now = state.clock.now();
    let max_items = state.config.payments.max_batch_items as usize;
    let req = parse_batch(
        &json,
        max_items,
        &|id| currencies_of(&state, &caller, id),
        &|id| today_of(&state, now, id),
    )
    .map_err(batch_problems)?;
    let DebtorRoute { conn, bank, .. } = debtor_route(&state, &req.debtor_account_id)?;
    let chunk_size = conn.connector().max_batch_items();
    if chunk_size == 0 {
        return Err(batch_problems(vec![problem(
            "debtor_account_id",
            "batch_not_supported",
            format!(
                "bank {} takes no batch payments; send the items as single payments",
                bank.id
            ),
        )]));
    }
    // A batch whose total an approval rule matches waits for its approvers
    // (docs/approvals.md), with nothing due: the dispatcher never claims it.
    let approvals_required = state.config.approvals_required(
        req.debtor_account_id.as_str(),
        i128::from(req.control_sum.minor()),
        req.control_sum.currency(),
    );
    let (chunk_status, cause, next_attempt_at) = if approvals_required > 0 {
        (
            PaymentStatus::PendingApproval,
            domain::TransitionCause::ApprovalRequired,
            None,
        )
    } else {
        (
            PaymentStatus::Queued,
            domain::TransitionCause::NoApprovalNeeded,
            Some(now),
        )
    };
    let install_id = state
        .store
        .install_id()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let new_reference = || {
        generate_business_reference(&install_id, now, &ThreadRandom, &bank.quirks.reference)
            .map_err(|e| ApiError::internal("business reference", &e))
    };
    let execution_date = req
        .requested_execution_date
        .unwrap_or_else(|| BusinessDate::of_instant(now, bank.time_zone));
    let mut items = Vec::with_capacity(req.items.len());
    let mut bank_problems = Vec::new();
    for (i, p) in req.items.into_iter().enumerate() {
        let item = NewBatchItem {
            id: BatchItemId::generate(&ThreadRandom),
            chunk_no: i64::try_from(i / chunk_size)
                .unwrap_or(i64::MAX)
                .saturating_add(1),
            business_reference: new_reference()?,
            amount: p.amount,
            creditor_name: p.creditor_name,
            creditor_account: p.creditor_account,
            creditor_bank_code: p.creditor_bank_code,
            creditor_bic: p.creditor_bic,
            creditor_bank_name: p.creditor_bank_name,
            creditor_type: p.creditor_type,
            remittance: p.remittance,
            purpose: p.purpose,
            end_to_end_id: p.end_to_end_id,
        };
        // The bank's own rules (charset, lengths in its bytes) before storing.
        if let Err(found) = conn
            .connector()
            .check_batch_item(req.kind, &crate::dispatch::to_bank_item(&item))
        {
            bank_problems.extend(found.into_iter().map(|p| FieldProblem {
                field: format!("body.items[{i}].{}", p.field),
                code: "not_accepted_by_bank",
                detail: p.detail,
            }));
        }
        items.push(item);
    }
    if !bank_problems.is_empty() {
        return Err(batch_problems(bank_problems));
    }
    let chunk_count = items.len().div_ceil(chunk_size);
    let mut chunks = Vec::with_capacity(chunk_count);
    for n in 1..=chunk_count {
        chunks.push(NewBatchChunk {
            chunk_no: i64::try_from(n).unwrap_or(i64::MAX),
            business_reference: new_reference()?,
        });
    }
    let id = BatchId::generate(&ThreadRandom);
    let new = NewBatch {
        id: id.clone(),
        client_id: caller.subject.clone(),
        debtor_account_id: req.debtor_account_id.clone(),
        kind: req.kind.as_str().to_owned(),
        requested_execution_date: execution_date,
        business_reference: new_reference()?,
        control_sum: req.control_sum,
        chunk_status: chunk_status.as_str().to_owned(),
        cause: cause.as_str().to_owned(),
        chunks,
        items,
        next_attempt_at,
        approvals_required,
        on_behalf_of,
    };
    let batch_status = if approvals_required > 0 {
        domain::BatchStatus::PendingApproval
    } else {
        domain::BatchStatus::Queued
    };
    // The answer is derivable from what is stored: the batch as created
    // (queued or pending_approval, every item pending), so key and batch
    // commit together.
    let preview = StoredBatch {
        id: id.clone(),
        client_id: new.client_id.clone(),
        debtor_account_id: new.debtor_account_id.clone(),
        kind: new.kind.clone(),
        requested_execution_date: execution_date,
        business_reference: new.business_reference.clone(),
        item_count: i64::try_from(new.items.len()).unwrap_or(i64::MAX),
        control_sum: new.control_sum,
        status: batch_status.as_str().to_owned(),
        event_seq: 1,
        created_at: now,
        updated_at: now,
        approvals_required: new.approvals_required,
        on_behalf_of: new.on_behalf_of.clone(),
        chunks: new
            .chunks
            .iter()
            .map(|c| store::StoredChunk {
                batch_id: id.clone(),
                chunk_no: c.chunk_no,
                business_reference: c.business_reference.clone(),
                item_count: i64::try_from(
                    new.items
                        .iter()
                        .filter(|i| i.chunk_no == c.chunk_no)
                        .count(),
                )
                .unwrap_or(i64::MAX),
                status: chunk_status.as_str().to_owned(),
                ever_sent: false,
                first_sent_at: None,
                last_sent_at: None,
                send_attempts: 0,
                bank_batch_id: None,
                last_bank_code: None,
                last_bank_message: None,
                next_attempt_at,
                lease_owner: None,
                lease_expires_at: None,
                fencing_token: 0,
                updated_at: now,
            })
            .collect(),
        item_counts: vec![(
            ItemStatus::Pending.as_str().to_owned(),
            i64::try_from(new.items.len()).unwrap_or(i64::MAX),
        )],
    };
    let response_body = serde_json::to_string(&batch_view(&preview, None, true))
        .map_err(|e| ApiError::internal("batch response", &e))?;
    let outcome = state
        .store
        .create_batch(
            new,
            IdempotencyClaim {
                client_id: caller.subject.clone(),
                key,
                request_hash,
                expires_at: now
                    + ChronoDuration::seconds(state.config.payments.idempotency_ttl_s as i64),
                response_status: 201,
                response_body: response_body.clone(),
            },
            NewAuditRecord {
                at: now,
                actor: caller.actor(),
                action: "payment_batch.create".to_owned(),
                object: format!("payment_batch:{id}"),
                request_id: request_id(&headers),
                outcome: "created".to_owned(),
                details: serde_json::json!({
                    "debtor_account_id": preview.debtor_account_id.as_str(),
                    "kind": preview.kind,
                    "count": preview.item_count,
                    "control_sum": preview.control_sum.to_decimal_string(),
                    "currency": preview.control_sum.currency().code(),
                    "chunks": preview.chunks.len(),
                    "business_reference": preview.business_reference.as_str(),
                    "on_behalf_of": preview.on_behalf_of,
                    "approvals_required": preview.approvals_required,
                }),
            },
        )
        .await
        .map_err(|e| ApiError::storage(&e))?;
    match outcome {
        CreateBatchOutcome::Created(_) => {
            if approvals_required == 0 {
                state.dispatcher_wake.notify_one();
            }
            Ok(json_response(StatusCode::CREATED, response_body, false))
        }
        CreateBatchOutcome::Replay { status, body } => Ok(json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body,
            true,
        )),
        CreateBatchOutcome::KeyReused => Err(key_reused()),
        CreateBatchOutcome::InProgress => Err(in_progress()),
    }
}

pub(crate) async fn visible_batch(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<StoredBatch, ApiError> {
    let id = BatchId::parse(raw).map_err(|_| batch_not_found())?;
    let b = state
        .store
        .get_batch(&id)
        .await
        .map_err(|e| ApiError::storage(&e))?
        .ok_or_else(batch_not_found)?;
    if !caller.entitlement.allows(b.debtor_account_id.as_str()) {
        return Err(batch_not_found());
    }
    Ok(b)
}

/// One batch with its chunks, counts and every item with its status.
/// Needs `payments:write` or `accounts:read`.
#[utoipa::path(get, path = "/v1/payment-batches/{id}", tag = "payment-batches",
    params(("id" = String, Path, description = "Batch id")),
    responses((status = 200, body = BatchView), (status = 404, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn get_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BatchView>, ApiError> {
    require_read(&caller)?;
    let b = visible_batch(&state, &caller, &id).await?;
    let mut items = Vec::with_capacity(usize::try_from(b.item_count).unwrap_or(0));
    loop {
        let after = items.last().map_or(0, |i: &StoredBatchItem| i.item_no);
        let page = state
            .store
            .batch_items(&b.id, None, after, 0)
            .await
            .map_err(|e| ApiError::storage(&e))?;
        if page.is_empty() {
            break;
        }
        items.extend(page);
    }
    let mut view = batch_view(&b, Some(&items), true);
    view.approvals = crate::approvals::batch_approvals(&state, &b).await?;
    crate::resolutions::chunk_proposals(&state, &b, &mut view).await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct BatchListParams {
    /// A batch status, e.g. `completed`.
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchList {
    pub items: Vec<BatchView>,
    pub next_cursor: Option<String>,
}

const BATCH_CURSOR: &str = "b1";

fn encode_cursor(c: &BatchCursor) -> String {
    encode_time_cursor(BATCH_CURSOR, c.created_at, c.id.as_str())
}

fn decode_cursor(raw: &str) -> Result<BatchCursor, ApiError> {
    let (created_at, id) = decode_time_cursor(BATCH_CURSOR, raw)?;
    let id = BatchId::parse(&id).map_err(|_| {
        ApiError::bad_request(
            "invalid_cursor",
            "query.cursor",
            "the cursor is not one this API returned; start again without it",
        )
    })?;
    Ok(BatchCursor { created_at, id })
}

/// Batches of the caller's entitled accounts, oldest first, without items.
/// Needs `payments:write` or `accounts:read`.
#[utoipa::path(get, path = "/v1/payment-batches", tag = "payment-batches", params(BatchListParams),
    responses((status = 200, body = BatchList), (status = 400, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn list_batches(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<BatchListParams>,
) -> Result<Json<BatchList>, ApiError> {
    require_read(&caller)?;
    let limit = page_limit(&state, params.limit.as_deref())?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            domain::BatchStatus::parse(s)
                .map(|st| st.as_str().to_owned())
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_status",
                        "query.status",
                        "status must be a batch status: received, pending_approval, queued, submitting, accepted, unknown, needs_review, completed, failed, cancelled, declined",
                    )
                })
        })
        .transpose()?;
    let accounts: Vec<AccountId> = state
        .config
        .accounts
        .iter()
        .filter(|a| caller.entitlement.allows(a.id.as_str()))
        .map(|a| a.id.clone())
        .collect();
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let rows = state
        .store
        .list_batches(&BatchQuery {
            status,
            account_ids: Some(accounts),
            after,
            limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
        })
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let has_more = rows.len() > limit;
    let page = &rows[..rows.len().min(limit)];
    let next_cursor = if has_more {
        page.last().map(|b| {
            encode_cursor(&BatchCursor {
                created_at: b.created_at,
                id: b.id.clone(),
            })
        })
    } else {
        None
    };
    Ok(Json(BatchList {
        items: page.iter().map(|b| batch_view(b, None, false)).collect(),
        next_cursor,
    }))
}

/// Cancels a batch none of whose chunks was ever sent; after that it is a
/// 409 saying why. Cancelling a cancelled batch is not an error. Needs
/// `payments:write`.
#[utoipa::path(post, path = "/v1/payment-batches/{id}/cancel", tag = "payment-batches",
    params(("id" = String, Path, description = "Batch id")),
    responses((status = 200, body = BatchView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn cancel_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<BatchView>, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let b = visible_batch(&state, &caller, &id).await?;
    if b.status == domain::BatchStatus::Cancelled.as_str() {
        return Ok(Json(batch_view(&b, None, true)));
    }
    let now = state.clock.now();
    let outcome = state
        .store
        .cancel_batch(
            &b.id,
            store::Actor {
                name: caller.actor(),
                request_id: request_id(&headers),
            },
            NewAuditRecord {
                at: now,
                actor: caller.actor(),
                action: "payment_batch.cancel".to_owned(),
                object: format!("payment_batch:{}", b.id),
                request_id: request_id(&headers),
                outcome: "cancelled".to_owned(),
                details: serde_json::json!({ "from": b.status }),
            },
        )
        .await
        .map_err(|e| ApiError::storage(&e))?;
    match outcome {
        CancelBatchOutcome::Cancelled(b) => Ok(Json(batch_view(&b, None, true))),
        CancelBatchOutcome::NotCancellable { status } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "batch_may_have_reached_bank",
            format!("the batch is {status}: part of it may have reached the bank, so it can no longer be cancelled here"),
        )),
    }
}
