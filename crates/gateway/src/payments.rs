//! Payment routes: create (with Idempotency-Key), read with history, list,
//! cancel, and an operator's resolution of `needs_review`.
//!
//! A payment is stored — with its business reference, its first history
//! rows, its idempotency record and an audit record, in one transaction —
//! before anything else happens; the dispatcher then sends it. Nothing here
//! calls a bank.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use base64::Engine;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use domain::{
    generate_business_reference, AccountId, BusinessDate, PaymentId, PaymentStatus, ThreadRandom,
    TransitionCause,
};
use serde::{Deserialize, Serialize};
use store::{
    CreateOutcome, IdempotencyClaim, InitialStep, NewAuditRecord, NewPayment, PaymentChange,
    PaymentCursor, PaymentHistoryEntry, PaymentQuery, StoreError, StoredPayment, TransitionGuard,
};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Scope,
    extract::{request_id, ApiQuery, Caller},
    payment_intake::{canonical_hash, check_idempotency_key, parse_payment, FieldProblem},
    problem::{ApiError, FieldError, Problem},
    routes::page_limit,
    AppState,
};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreditorView {
    pub name: String,
    pub account: String,
    pub bank_code: Option<String>,
    pub bic: Option<String>,
    pub bank_name: Option<String>,
    /// `corporate` (对公) or `personal` (对私).
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryView {
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub at: DateTime<Utc>,
    pub from: Option<String>,
    pub to: String,
    pub cause: String,
    /// The bank's raw code and message, when the change came from the bank.
    pub bank_code: Option<String>,
    pub bank_message: Option<String>,
    pub actor: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub id: String,
    pub status: String,
    pub debtor_account_id: String,
    pub amount: String,
    pub currency: String,
    pub creditor: CreditorView,
    pub remittance: String,
    pub purpose: Option<String>,
    pub end_to_end_id: Option<String>,
    pub requested_execution_date: String,
    pub urgency: String,
    /// Our business reference, sent to the bank on every attempt.
    pub business_reference: String,
    pub bank_payment_id: Option<String>,
    /// The client that created the payment (`user:<id>` when a person did
    /// with their own token).
    pub initiated_by: String,
    /// The person the payment was made for (`user:<id>`), if any: the maker.
    pub on_behalf_of: Option<String>,
    /// Approvals required and given (docs/approvals.md).
    pub approvals: crate::approvals::ApprovalsView,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub updated_at: DateTime<Utc>,
    /// Present on single-payment reads; absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryView>>,
    /// The open four-eyes resolution proposal of a payment in `needs_review`,
    /// waiting for a second operator (docs/approvals.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_proposal: Option<crate::resolutions::ProposalView>,
}

fn history_view(h: &PaymentHistoryEntry) -> HistoryView {
    HistoryView {
        at: h.at,
        from: h.from_status.clone(),
        to: h.to_status.clone(),
        cause: h.cause.clone(),
        bank_code: h.bank_code.clone(),
        bank_message: h.bank_message.clone(),
        actor: h.actor.clone(),
    }
}

pub(crate) fn payment_view(
    p: &StoredPayment,
    history: Option<&[PaymentHistoryEntry]>,
) -> PaymentView {
    let i = &p.instruction;
    PaymentView {
        id: i.id.to_string(),
        status: p.status.clone(),
        debtor_account_id: i.debtor_account_id.to_string(),
        amount: i.amount.to_decimal_string(),
        currency: i.amount.currency().code().to_owned(),
        creditor: CreditorView {
            name: i.creditor_name.clone(),
            account: i.creditor_account.clone(),
            bank_code: i.creditor_bank_code.as_ref().map(ToString::to_string),
            bic: i.creditor_bic.as_ref().map(ToString::to_string),
            bank_name: i.creditor_bank_name.clone(),
            kind: match i.creditor_type {
                domain::CreditorType::Corporate => "corporate",
                domain::CreditorType::Personal => "personal",
            }
            .to_owned(),
        },
        remittance: i.remittance.clone(),
        purpose: i.purpose.clone(),
        end_to_end_id: i.end_to_end_id.as_ref().map(ToString::to_string),
        requested_execution_date: i.requested_execution_date.to_string(),
        urgency: match i.urgency {
            domain::Urgency::Normal => "normal",
            domain::Urgency::Urgent => "urgent",
        }
        .to_owned(),
        business_reference: i.business_reference.to_string(),
        bank_payment_id: p.bank_payment_id.clone(),
        initiated_by: i.client_id.clone(),
        on_behalf_of: i.on_behalf_of.clone(),
        approvals: crate::approvals::ApprovalsView::required_only(i.approvals_required),
        created_at: p.created_at,
        updated_at: p.updated_at,
        history: history.map(|h| h.iter().map(history_view).collect()),
        resolution_proposal: None,
    }
}

pub(crate) fn problems_to_error(problems: Vec<FieldProblem>) -> ApiError {
    let first = problems.first().cloned();
    let status = if problems.iter().any(|p| p.field.starts_with("header.")) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut err = match first {
        Some(p) => ApiError::new(status, p.code, p.detail).with_field(p.field),
        None => ApiError::new(status, "invalid_payment", "the payment is not valid"),
    };
    if problems.len() > 1 {
        err.problem.errors = Some(
            problems
                .into_iter()
                .map(|p| FieldError {
                    field: p.field,
                    code: p.code.to_owned(),
                    detail: p.detail,
                })
                .collect(),
        );
    }
    err
}

fn conflict_from_store(e: &StoreError) -> ApiError {
    match e {
        StoreError::Conflict { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "payment_changed",
            "the payment changed while this request was handled; read it again and retry",
        ),
        StoreError::NotFound { .. } => payment_not_found(),
        other => ApiError::storage(other),
    }
}

pub(crate) fn payment_not_found() -> ApiError {
    ApiError::not_found(
        "payment_not_found",
        "path.id",
        "no payment with this id is visible to you; list yours with GET /v1/payments",
    )
}

/// What the start of a create call found: a retry answered with the first
/// answer, or a new request with its key, body and canonical hash.
pub(crate) enum Intake {
    Replay(Response),
    New {
        key: String,
        json: serde_json::Value,
        request_hash: String,
    },
}

/// The common start of every create call: the scope was checked; this
/// checks the `Idempotency-Key`, reads the body as JSON and hashes it, and
/// answers a retry with the stored answer BEFORE the body is judged again:
/// what was valid then (today's date, an entitlement, the bank's rules) may
/// not be now, and refusing a retry of something that exists would make the
/// ERP enter it twice.
pub(crate) async fn read_idempotent_body(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Intake, ApiError> {
    let (key, json, request_hash) = read_keyed_body(headers, body)?;
    if let Some(answer) = stored_answer(state, caller, &key, &request_hash).await? {
        return Ok(Intake::Replay(answer));
    }
    Ok(Intake::New {
        key,
        json,
        request_hash,
    })
}

/// The `Idempotency-Key`, the body as JSON and its canonical hash; no
/// database read.
pub(crate) fn read_keyed_body(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(String, serde_json::Value, String), ApiError> {
    let key = check_idempotency_key(headers.get("idempotency-key").and_then(|v| v.to_str().ok()))
        .map_err(|p| problems_to_error(vec![p]))?;
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            "body",
            format!("the body is not valid JSON ({e}); send a JSON object"),
        )
    })?;
    let request_hash = canonical_hash(&json);
    Ok((key, json, request_hash))
}

/// What a stored key answers for this request: the first answer replayed
/// (same body), a 409 (another body, or the first still being handled), or
/// `None` when the key is new.
pub(crate) async fn stored_answer(
    state: &AppState,
    caller: &Caller,
    key: &str,
    request_hash: &str,
) -> Result<Option<Response>, ApiError> {
    let Some(record) = state
        .store
        .find_idempotency_key(&caller.subject, key)
        .await
        .map_err(|e| ApiError::storage(&e))?
    else {
        return Ok(None);
    };
    if record.request_hash != request_hash {
        return Err(key_reused());
    }
    match (
        record.completed,
        record.response_status,
        record.response_body,
    ) {
        (true, Some(status), Some(body)) => Ok(Some(json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body,
            true,
        ))),
        _ => Err(in_progress()),
    }
}

/// The currencies an account holds, if it exists and the caller may use it.
pub(crate) fn currencies_of(
    state: &AppState,
    caller: &Caller,
    id: &AccountId,
) -> Option<Vec<domain::Currency>> {
    state
        .config
        .accounts
        .iter()
        .find(|a| &a.id == id)
        .filter(|a| caller.entitlement.allows(a.id.as_str()))
        .map(|a| a.currencies.clone())
}

/// Today in the time zone of the account's bank.
pub(crate) fn today_of(
    state: &AppState,
    now: DateTime<Utc>,
    id: &AccountId,
) -> Option<BusinessDate> {
    let account = state.config.accounts.iter().find(|a| &a.id == id)?;
    let conn = state.directory.connections.get(&account.connection)?;
    let bank = state
        .directory
        .banks
        .iter()
        .find(|b| b.id == conn.bank_id)?;
    Some(BusinessDate::of_instant(now, bank.time_zone))
}

/// A debtor account with its connection and bank.
pub(crate) struct DebtorRoute<'a> {
    pub account: &'a crate::config::AccountConfig,
    pub conn: &'a std::sync::Arc<crate::banking::ConnectionRuntime>,
    pub bank: &'a crate::config::BankConfig,
}

/// Where a validated debtor account's payments go.
pub(crate) fn debtor_route<'a>(
    state: &'a AppState,
    id: &AccountId,
) -> Result<DebtorRoute<'a>, ApiError> {
    let account = state
        .config
        .accounts
        .iter()
        .find(|a| &a.id == id)
        .ok_or_else(|| ApiError::internal_msg("the debtor account left the configuration"))?;
    let conn = state
        .directory
        .connections
        .get(&account.connection)
        .ok_or_else(|| ApiError::internal_msg("the debtor account's connection is missing"))?;
    let bank = state
        .directory
        .banks
        .iter()
        .find(|b| b.id == conn.bank_id)
        .ok_or_else(|| ApiError::internal_msg("the debtor account's bank is missing"))?;
    Ok(DebtorRoute {
        account,
        conn,
        bank,
    })
}

/// Creates a payment. The `Idempotency-Key` header is required: the same
/// key with the same body returns the stored answer; with another body it is
/// a 409. Needs `payments:write`.
#[utoipa::path(post, path = "/v1/payments", tag = "payments",
    params(("Idempotency-Key" = String, Header, description = "Unique per payment; resend it to retry safely")),
    request_body(content = Object, description = "debtor_account_id, amount (decimal string), currency, creditor {name, account, bank_code | bic, type: corporate|personal, bank_name?}, remittance, purpose?, end_to_end_id?, requested_execution_date?, urgency?"),
    responses((status = 201, body = PaymentView), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn create_payment(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let (key, json, request_hash) = read_keyed_body(&headers, &body)?;
    // A new payment is judged first and goes to the store, whose create
    // finds a stored key itself (and replays it) in the same transaction:
    // no separate read for the common case. A request judged wrong is
    // looked up before it is refused, so that a retry of something stored
    // still gets its first answer, whatever is true now (see
    // `read_idempotent_body`).
    let prepared = match prepare_payment(
        &state,
        &caller,
        &headers,
        json,
        key.clone(),
        request_hash.clone(),
    )
    .await
    {
        Ok(prepared) => prepared,
        Err(refusal) => {
            return match stored_answer(&state, &caller, &key, &request_hash).await? {
                Some(answer) => Ok(answer),
                None => Err(refusal),
            };
        }
    };
    let Prepared {
        new,
        claim,
        audit,
        response_body,
    } = prepared;
    let outcome = state
        .store
        .create_payment(new, claim, audit)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    match outcome {
        CreateOutcome::Created(_) => {
            state.dispatcher_wake.notify_one();
            Ok(json_response(StatusCode::CREATED, response_body, false))
        }
        CreateOutcome::Replay { status, body, .. } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            Ok(json_response(status, body, true))
        }
        CreateOutcome::KeyReused => Err(key_reused()),
        CreateOutcome::InProgress => Err(in_progress()),
        CreateOutcome::DuplicateEndToEndId { existing_payment_id } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "duplicate_end_to_end_id",
            format!(
                "end_to_end_id was already used for payment {existing_payment_id} of this debtor account; it must be unique for ever"
            ),
        )
        .with_field("body.end_to_end_id")),
    }
}

/// A payment request judged and turned into what the store writes.
struct Prepared {
    new: NewPayment,
    claim: IdempotencyClaim,
    audit: NewAuditRecord,
    response_body: String,
}

/// Judges a payment request (fields, entitlement, the bank's rules) and
/// builds its rows: no write, and no database read once the install id is
/// known.
async fn prepare_payment(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    json: serde_json::Value,
    key: String,
    request_hash: String,
) -> Result<Prepared, ApiError> {
    let now = state.clock.now();
    let (on_behalf_of, json) = crate::approvals::on_behalf_of(state, caller, &json)?;
    let req = parse_payment(
        &json,
        |id| currencies_of(state, caller, id),
        |id| today_of(state, now, id),
    )
    .map_err(problems_to_error)?;
    let DebtorRoute {
        account,
        conn,
        bank,
    } = debtor_route(state, &req.debtor_account_id)?;
    let install_id = state
        .store
        .install_id()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let reference =
        generate_business_reference(&install_id, now, &ThreadRandom, &bank.quirks.reference)
            .map_err(|e| ApiError::internal("business reference", &e))?;
    let instruction = store::PaymentInstruction {
        id: PaymentId::generate_at(now, &ThreadRandom),
        client_id: caller.subject.clone(),
        debtor_account_id: req.debtor_account_id.clone(),
        amount: req.amount,
        creditor_name: req.creditor_name.clone(),
        creditor_account: req.creditor_account.clone(),
        creditor_bank_code: req.creditor_bank_code.clone(),
        creditor_bic: req.creditor_bic.clone(),
        creditor_bank_name: req.creditor_bank_name.clone(),
        creditor_type: req.creditor_type,
        remittance: req.remittance.clone(),
        purpose: req.purpose.clone(),
        end_to_end_id: req.end_to_end_id.clone(),
        requested_execution_date: req
            .requested_execution_date
            .unwrap_or_else(|| BusinessDate::of_instant(now, bank.time_zone)),
        urgency: req.urgency,
        business_reference: reference,
        approvals_required: state.config.approvals_required(
            req.debtor_account_id.as_str(),
            i128::from(req.amount.minor()),
            req.amount.currency(),
        ),
        on_behalf_of,
    };
    // The bank's own rules (charset, lengths in its bytes) before storing.
    let wire = crate::dispatch::to_bank_instruction(&instruction, &account.number);
    if let Err(problems) = crate::dispatch::intake_check(conn, &wire) {
        return Err(problems_to_error(
            problems
                .into_iter()
                .map(|p| FieldProblem {
                    field: format!("body.{}", p.field),
                    code: "not_accepted_by_bank",
                    detail: p.detail,
                })
                .collect(),
        ));
    }
    // A payment an approval rule matched waits for people, with no due
    // time: the dispatcher never looks at it. Any other is queued at once.
    let (status, cause, next_attempt_at) = if instruction.approvals_required > 0 {
        (
            PaymentStatus::PendingApproval,
            TransitionCause::ApprovalRequired,
            None,
        )
    } else {
        (
            PaymentStatus::Queued,
            TransitionCause::NoApprovalNeeded,
            Some(now),
        )
    };
    let steps = vec![
        InitialStep {
            to_status: PaymentStatus::Received.as_str().to_owned(),
            cause: "created".to_owned(),
        },
        InitialStep {
            to_status: status.as_str().to_owned(),
            cause: cause.as_str().to_owned(),
        },
    ];
    let preview = StoredPayment::as_created(
        instruction.clone(),
        status.as_str().to_owned(),
        next_attempt_at,
        now,
    );
    let response_body = serde_json::to_string(&payment_view(&preview, None))
        .map_err(|e| ApiError::internal("payment response", &e))?;
    Ok(Prepared {
        new: NewPayment {
            instruction,
            steps,
            next_attempt_at,
        },
        claim: IdempotencyClaim {
            client_id: caller.subject.clone(),
            key,
            request_hash,
            expires_at: now
                + ChronoDuration::seconds(state.config.payments.idempotency_ttl_s as i64),
            response_status: 201,
            response_body: response_body.clone(),
        },
        audit: NewAuditRecord {
            at: now,
            actor: caller.actor(),
            action: "payment.create".to_owned(),
            object: format!("payment:{}", preview.instruction.id),
            request_id: request_id(headers),
            outcome: "created".to_owned(),
            details: serde_json::json!({
                "debtor_account_id": preview.instruction.debtor_account_id.as_str(),
                "amount": preview.instruction.amount.to_decimal_string(),
                "currency": preview.instruction.amount.currency().code(),
                "business_reference": preview.instruction.business_reference.as_str(),
                "on_behalf_of": preview.instruction.on_behalf_of,
                "approvals_required": preview.instruction.approvals_required,
            }),
        },
        response_body,
    })
}

pub(crate) fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different body; use a new key for a new payment",
    )
    .with_field("header.Idempotency-Key")
}

pub(crate) fn in_progress() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_in_progress",
        "a request with this Idempotency-Key is still being handled; retry in a moment",
    )
    .with_field("header.Idempotency-Key")
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

pub(crate) fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// Loads a payment the caller may see: its own entitled debtor accounts.
pub(crate) async fn visible_payment(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<StoredPayment, ApiError> {
    let id = PaymentId::parse(raw).map_err(|_| payment_not_found())?;
    let p = state
        .store
        .get_payment(&id)
        .await
        .map_err(|e| ApiError::storage(&e))?
        .ok_or_else(payment_not_found)?;
    if !caller
        .entitlement
        .allows(p.instruction.debtor_account_id.as_str())
    {
        return Err(payment_not_found());
    }
    Ok(p)
}

/// One payment with its full history. Needs `payments:write` or `accounts:read`.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, body = PaymentView), (status = 404, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn get_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    require_read(&caller)?;
    let p = visible_payment(&state, &caller, &id).await?;
    let history = state
        .store
        .payment_history(&p.instruction.id)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let mut view = payment_view(&p, Some(&history));
    view.approvals = crate::approvals::payment_approvals(&state, &p).await?;
    view.resolution_proposal = crate::resolutions::payment_proposal(&state, &p).await?;
    Ok(Json(view))
}

pub(crate) fn require_read(caller: &Caller) -> Result<(), ApiError> {
    // An approver reads what they decide on.
    if caller.claims.has_scope(Scope::PaymentsWrite)
        || caller.claims.has_scope(Scope::PaymentsApprove)
    {
        Ok(())
    } else {
        caller.require(Scope::AccountsRead)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PaymentListParams {
    /// A payment status, e.g. `settled`.
    pub status: Option<String>,
    pub account_id: Option<String>,
    /// Created on or after this date (UTC), `YYYY-MM-DD`.
    pub from: Option<String>,
    /// Created on or before this date (UTC), `YYYY-MM-DD`.
    pub to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    pub items: Vec<PaymentView>,
    pub next_cursor: Option<String>,
}

const PAYMENT_CURSOR: &str = "p1";

/// A listing cursor of (creation time, id) under a kind tag: opaque to the
/// client, checked on the way back in.
pub(crate) fn encode_time_cursor(kind: &str, created_at: DateTime<Utc>, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{kind}|{}|{id}", created_at.timestamp_micros()))
}

/// The (creation time, id text) of a cursor of `kind`; a 400 naming
/// `query.cursor` for anything this API did not hand out.
pub(crate) fn decode_time_cursor(
    kind: &str,
    raw: &str,
) -> Result<(DateTime<Utc>, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "query.cursor",
            "the cursor is not one this API returned; start again without it",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let parts: Vec<&str> = text.split('|').collect();
    let [tag, micros, id] = parts.as_slice() else {
        return Err(bad());
    };
    if *tag != kind {
        return Err(bad());
    }
    let created_at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((created_at, (*id).to_owned()))
}

fn encode_payment_cursor(c: &PaymentCursor) -> String {
    encode_time_cursor(PAYMENT_CURSOR, c.created_at, c.id.as_str())
}

fn decode_payment_cursor(raw: &str) -> Result<PaymentCursor, ApiError> {
    let (created_at, id) = decode_time_cursor(PAYMENT_CURSOR, raw)?;
    let id = PaymentId::parse(&id).map_err(|_| {
        ApiError::bad_request(
            "invalid_cursor",
            "query.cursor",
            "the cursor is not one this API returned; start again without it",
        )
    })?;
    Ok(PaymentCursor { created_at, id })
}

fn day_start(raw: &str, field: &str, next_day: bool) -> Result<DateTime<Utc>, ApiError> {
    let date = BusinessDate::parse_iso(raw).map_err(|_| {
        ApiError::bad_request(
            "invalid_date",
            field,
            format!(
                "{} must be a date written YYYY-MM-DD",
                field.trim_start_matches("query.")
            ),
        )
    })?;
    let d = if next_day {
        date.add_days(1)
            .map_err(|e| ApiError::bad_request("invalid_date", field, e.to_string()))?
    } else {
        date
    };
    d.naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .ok_or_else(|| ApiError::bad_request("invalid_date", field, "not a valid date"))
}

/// Payments of the caller's entitled accounts, oldest first. Needs
/// `payments:write` or `accounts:read`.
#[utoipa::path(get, path = "/v1/payments", tag = "payments", params(PaymentListParams),
    responses((status = 200, body = PaymentList), (status = 400, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn list_payments(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PaymentListParams>,
) -> Result<Json<PaymentList>, ApiError> {
    require_read(&caller)?;
    let limit = page_limit(&state, params.limit.as_deref())?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            PaymentStatus::parse(s).map(|st| st.as_str().to_owned()).map_err(|_| {
                ApiError::bad_request(
                    "invalid_status",
                    "query.status",
                    "status must be a payment status, e.g. queued, accepted, settled, failed, unknown, needs_review",
                )
            })
        })
        .transpose()?;
    let accounts: Vec<AccountId> = match params.account_id.as_deref() {
        Some(raw) => {
            let id = AccountId::parse(raw).ok().filter(|id| {
                caller.entitlement.allows(id.as_str())
                    && state.config.accounts.iter().any(|a| &a.id == id)
            });
            match id {
                Some(id) => vec![id],
                None => {
                    return Err(ApiError::bad_request(
                        "unknown_account",
                        "query.account_id",
                        "no account with this id is visible to you",
                    ))
                }
            }
        }
        None => state
            .config
            .accounts
            .iter()
            .filter(|a| caller.entitlement.allows(a.id.as_str()))
            .map(|a| a.id.clone())
            .collect(),
    };
    let created_from = params
        .from
        .as_deref()
        .map(|d| day_start(d, "query.from", false))
        .transpose()?;
    let created_before = params
        .to
        .as_deref()
        .map(|d| day_start(d, "query.to", true))
        .transpose()?;
    if let (Some(f), Some(t)) = (created_from, created_before) {
        if t <= f {
            return Err(ApiError::bad_request(
                "invalid_date_range",
                "query.to",
                "to is before from; swap them",
            ));
        }
    }
    let after = params
        .cursor
        .as_deref()
        .map(decode_payment_cursor)
        .transpose()?;
    let rows = state
        .store
        .list_payments(&PaymentQuery {
            status,
            account_ids: Some(accounts),
            created_from,
            created_before,
            after,
            limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
        })
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let has_more = rows.len() > limit;
    let page = &rows[..rows.len().min(limit)];
    let next_cursor = if has_more {
        page.last().map(|p| {
            encode_payment_cursor(&PaymentCursor {
                created_at: p.created_at,
                id: p.instruction.id.clone(),
            })
        })
    } else {
        None
    };
    Ok(Json(PaymentList {
        items: page.iter().map(|p| payment_view(p, None)).collect(),
        next_cursor,
    }))
}

/// Cancels a payment that has never been sent. Once it may have reached
/// the bank this is a 409 that says why. Needs `payments:write`.
#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, body = PaymentView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["payments:write"])))]
pub async fn cancel_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<PaymentView>, ApiError> {
    caller.require(Scope::PaymentsWrite)?;
    let p = visible_payment(&state, &caller, &id).await?;
    let status =
        PaymentStatus::parse(&p.status).map_err(|e| ApiError::internal("stored status", &e))?;
    if status == PaymentStatus::Cancelled {
        // Cancelling twice is not an error: the payment is cancelled.
        return get_payment(State(state), caller, Path(id)).await;
    }
    domain::cancel(status, p.ever_sent).map_err(|refusal| {
        ApiError::new(StatusCode::CONFLICT, refusal.code(), refusal.to_string())
    })?;
    let now = state.clock.now();
    let updated = state
        .store
        .transition_payment(
            &p.instruction.id,
            TransitionGuard {
                from_status: p.status.clone(),
                fencing_token: Some(p.fencing_token),
            },
            PaymentChange {
                to_status: PaymentStatus::Cancelled.as_str().to_owned(),
                cause: TransitionCause::CancelledByClient.as_str().to_owned(),
                bank_code: None,
                bank_message: None,
                bank_payment_id: None,
                mark_sent: false,
                next_attempt_at: None,
                release_lease: true,
            },
            store::Actor {
                name: caller.actor(),
                request_id: request_id(&headers),
            },
            NewAuditRecord {
                at: now,
                actor: caller.actor(),
                action: "payment.cancel".to_owned(),
                object: format!("payment:{}", p.instruction.id),
                request_id: request_id(&headers),
                outcome: "cancelled".to_owned(),
                details: serde_json::json!({ "from": p.status }),
            },
        )
        .await
        .map_err(|e| match e {
            // A worker claimed it in between: it may be on its way to the bank.
            StoreError::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "payment_may_have_reached_bank",
                "the payment was picked up for sending while the cancel was handled; it can no longer be cancelled here",
            ),
            other => conflict_from_store(&other),
        })?;
    let history = state
        .store
        .payment_history(&updated.instruction.id)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(payment_view(&updated, Some(&history))))
}
