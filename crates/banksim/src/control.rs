//! The JSON control API of a simulated bank, under `/_sim/`, for tests and
//! for people poking a running demo with curl.
//!
//! - `GET /_sim/ledger`: accounts and per-currency totals ([`LedgerView`]),
//!   amounts as decimal strings;
//! - `GET|POST|DELETE /_sim/faults`: list, add (body: a flat
//!   [`FaultRule`](crate::FaultRule), answers 201), clear (answers 204);
//! - `GET|PUT|DELETE /_sim/faults/random`: the random faults
//!   ([`RandomFaults`](crate::RandomFaults): `{"seed": 7, "rules": [{"kind":
//!   "http_error", "status": 500, "when": "after", "percent": 10,
//!   "function": "SubmitPayment"}]}`); PUT answers 200 with them, DELETE 204;
//! - `GET /_sim/executions`: `{"items": [{"reference", "count", "amount",
//!   "currency", "status", "submissions", "batch_reference"}]}`, every
//!   instruction executed, batch items included (those carry their chunk's
//!   `batch_reference`), in order ([`ExecutionView`](crate::ExecutionView));
//! - `GET /_sim/batches`: `{"items": [{"reference", "batch_reference",
//!   "kind", "items", "succeeded", "failed", "finished", "submissions",
//!   "payroll_debit"}]}`, every batch chunk taken in, in order
//!   ([`BatchView`](crate::BatchView));
//! - `GET|PUT /_sim/payments/config`: the payment behaviour
//!   ([`SimPaymentConfig`](crate::SimPaymentConfig)), PUT answers 200 with it;
//! - `POST /_sim/accounts/{number}/adjust` with `{"delta": "-100.00"}`:
//!   moves booked and available balance (booking an entry for it), answers
//!   the account;
//! - `GET /_sim/accounts/{number}/entries?from=2026-11-01&to=2026-11-28`
//!   (both optional, ISO dates, inclusive booking dates): every entry the
//!   bank holds, hidden late entries included with `"visible": false`, as
//!   [`EntryView`]s;
//! - `POST /_sim/accounts/{number}/entries` with `{"direction": "credit",
//!   "amount": "100.00", "counterparty_name": "张伟", "counterparty_account":
//!   "...", "counterparty_bank": "...", "remittance": "货款", "e2e_ref": "...",
//!   "status": "booked", "serial": "A1"}` (only `direction` and `amount`
//!   required; `status` `booked` or `pending`, default booked; no `serial`
//!   lets the bank number it, `""` makes one without serial): appends an
//!   entry dated today, answers it with 201;
//! - `POST /_sim/accounts/{number}/entries/{serial}/book`: books a pending
//!   entry today, answers it;
//! - `GET|PUT /_sim/iso20022/config` with `{"page_size": 200}`: the
//!   iso20022 front's report page size ([`IsoConfigView`]); PUT answers 200
//!   with it.
//!
//! Errors are `{"error": "..."}` with 400 (bad input) or 404 (no account, no
//! such pending entry).
//! These routes are not part of any bank's protocol and have no auth: the
//! simulator listens on loopback for tests and demos only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{BusinessDate, Currency, Direction, EntryStatus, Money};

use crate::batches::BatchView;
use crate::faults::{FaultRule, RandomFaults};
use crate::history::{NewSimEntry, SimEntry};
use crate::ledger::SimAccount;
use crate::payments::{ExecutionView, SimPaymentConfig};
use crate::{mask, SimError, SimState};

/// A ledger as the control API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerView {
    pub bank_id: String,
    pub accounts: Vec<AccountView>,
    pub totals: Vec<TotalView>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountView {
    pub number: String,
    pub name: String,
    /// ISO 4217 code.
    pub currency: String,
    pub branch: String,
    /// Decimal string with the currency's decimals, e.g. `"-80.00"`.
    pub booked: String,
    pub available: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TotalView {
    pub currency: String,
    pub booked: String,
    pub available: String,
}

/// An entry as the control API shows it; amounts are decimal strings in the
/// account's currency, dates ISO, empty text means the bank leaves it empty.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryView {
    pub serial: String,
    pub booking_date: BusinessDate,
    pub value_date: BusinessDate,
    pub direction: Direction,
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
    pub status: EntryStatus,
    /// Running booked balance after the entry; null for pending and hidden
    /// entries.
    pub balance_after: Option<String>,
    pub counterparty_name: String,
    pub counterparty_account: String,
    pub counterparty_bank: String,
    pub remittance: String,
    pub e2e_ref: String,
    pub visible: bool,
}

impl EntryView {
    pub fn of(entry: &SimEntry, currency: Currency) -> EntryView {
        let decimal = |minor: i64| Money::from_minor(minor, currency).to_decimal_string();
        EntryView {
            serial: entry.serial.clone(),
            booking_date: entry.booking_date,
            value_date: entry.value_date,
            direction: entry.direction,
            amount: decimal(entry.amount_minor),
            currency: currency.code().to_string(),
            status: entry.status,
            balance_after: entry.balance_after_minor.map(decimal),
            counterparty_name: entry.counterparty_name.clone(),
            counterparty_account: entry.counterparty_account.clone(),
            counterparty_bank: entry.counterparty_bank.clone(),
            remittance: entry.remittance.clone(),
            e2e_ref: entry.e2e_ref.clone(),
            visible: entry.visible,
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntriesQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntryRequest {
    direction: Direction,
    /// Positive decimal string in the account's currency.
    amount: String,
    #[serde(default)]
    status: Option<EntryStatus>,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    counterparty_name: Option<String>,
    #[serde(default)]
    counterparty_account: Option<String>,
    #[serde(default)]
    counterparty_bank: Option<String>,
    #[serde(default)]
    remittance: Option<String>,
    #[serde(default)]
    e2e_ref: Option<String>,
}

#[derive(serde::Deserialize)]
struct AdjustRequest {
    /// Decimal string in the account's currency, negative for a debit.
    delta: String,
}

impl AccountView {
    pub fn of(account: &SimAccount) -> AccountView {
        AccountView {
            number: account.number.clone(),
            name: account.name.clone(),
            currency: account.currency.code().to_string(),
            branch: account.branch.clone(),
            booked: Money::from_minor(account.booked_minor, account.currency).to_decimal_string(),
            available: Money::from_minor(account.available_minor, account.currency)
                .to_decimal_string(),
        }
    }
}

/// Formats a sum of minor units, which may exceed what a `Money` holds.
fn decimal_of_total(minor: i128, currency: Currency) -> String {
    let exponent = usize::from(currency.exponent());
    let sign = if minor < 0 { "-" } else { "" };
    let digits = minor.unsigned_abs().to_string();
    if exponent == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = exponent + 1);
    let (whole, fraction) = padded.split_at(padded.len() - exponent);
    format!("{sign}{whole}.{fraction}")
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

pub(crate) async fn ledger(State(state): State<Arc<SimState>>) -> Json<LedgerView> {
    let ledger = &state.ledger;
    Json(LedgerView {
        bank_id: ledger.bank_id().to_string(),
        accounts: ledger.accounts().iter().map(AccountView::of).collect(),
        totals: ledger
            .totals()
            .into_iter()
            .map(|(currency, booked, available)| TotalView {
                currency: currency.code().to_string(),
                booked: decimal_of_total(booked, currency),
                available: decimal_of_total(available, currency),
            })
            .collect(),
    })
}

pub(crate) async fn list_faults(State(state): State<Arc<SimState>>) -> Json<Vec<FaultRule>> {
    Json(state.faults.rules())
}

pub(crate) async fn inject_fault(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let rule: FaultRule = match serde_json::from_slice(&body) {
        Ok(rule) => rule,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not a fault rule: {e}; expected e.g. {{\"kind\":\"delay\",\"ms\":500,\"function\":\"QueryBalance\",\"remaining\":1}}"),
            )
        }
    };
    match state.faults.try_inject(rule.clone()) {
        Ok(()) => (StatusCode::CREATED, Json(rule)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

pub(crate) async fn random_faults(
    State(state): State<Arc<SimState>>,
) -> Json<Option<RandomFaults>> {
    Json(state.faults.random())
}

pub(crate) async fn set_random_faults(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let config: RandomFaults = match serde_json::from_slice(&body) {
        Ok(config) => config,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not a random fault set: {e}; expected e.g. {{\"seed\":7,\"rules\":[{{\"kind\":\"reset\",\"when\":\"after\",\"percent\":10}}]}}"),
            )
        }
    };
    match state.faults.set_random(config.clone()) {
        Ok(()) => Json(config).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

pub(crate) async fn clear_random_faults(State(state): State<Arc<SimState>>) -> StatusCode {
    state.faults.clear_random();
    StatusCode::NO_CONTENT
}

/// The body of `GET /_sim/executions`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecutionsView {
    pub items: Vec<ExecutionView>,
}

pub(crate) async fn executions(State(state): State<Arc<SimState>>) -> Json<ExecutionsView> {
    Json(ExecutionsView {
        items: state.payments.executions(),
    })
}

/// The body of `GET /_sim/batches`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchesView {
    pub items: Vec<BatchView>,
}

pub(crate) async fn batches(State(state): State<Arc<SimState>>) -> Json<BatchesView> {
    Json(BatchesView {
        items: state.payments.batches(),
    })
}

pub(crate) async fn payment_config(State(state): State<Arc<SimState>>) -> Json<SimPaymentConfig> {
    Json(state.payments.config())
}

pub(crate) async fn set_payment_config(
    State(state): State<Arc<SimState>>,
    body: Bytes,
) -> Response {
    let config: SimPaymentConfig = match serde_json::from_slice(&body) {
        Ok(config) => config,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not a payment config: {e}; expected e.g. {{\"settle_delay_ms\":200,\"ingest_delay_ms\":0}}"),
            )
        }
    };
    match state.payments.set_config(config.clone()) {
        Ok(()) => Json(config).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// The iso20022 front's settings, for `GET|PUT /_sim/iso20022/config`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsoConfigView {
    /// Entries per C52/C53/C54 page.
    pub page_size: usize,
}

pub(crate) async fn iso_config(State(state): State<Arc<SimState>>) -> Json<IsoConfigView> {
    Json(IsoConfigView {
        page_size: state.iso.page_size(),
    })
}

pub(crate) async fn set_iso_config(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let config: IsoConfigView = match serde_json::from_slice(&body) {
        Ok(config) => config,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not an iso20022 config: {e}; expected e.g. {{\"page_size\":200}}"),
            )
        }
    };
    if let Err(e) = crate::iso20022::check_page_size(config.page_size) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    state.iso.set_page_size(config.page_size);
    Json(config).into_response()
}

pub(crate) async fn clear_faults(State(state): State<Arc<SimState>>) -> StatusCode {
    state.faults.clear();
    StatusCode::NO_CONTENT
}

pub(crate) async fn adjust(
    State(state): State<Arc<SimState>>,
    Path(number): Path<String>,
    body: Bytes,
) -> Response {
    let Some(account) = state.ledger.account(&number) else {
        return error(
            StatusCode::NOT_FOUND,
            SimError::UnknownAccount {
                masked: mask(&number),
            }
            .to_string(),
        );
    };
    let request: AdjustRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not an adjustment: {e}; expected {{\"delta\": \"-100.00\"}}"),
            )
        }
    };
    let delta = match Money::parse_bank_decimal(&request.delta, account.currency) {
        Ok(delta) => delta,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("delta: {e}")),
    };
    if let Err(e) = state.ledger.adjust(&number, delta.minor()) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    tracing::info!(bank = %state.cfg.bank_id, account = %mask(&number), delta = %request.delta, "balance adjusted");
    match state.ledger.account(&number) {
        Some(account) => Json(AccountView::of(&account)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            SimError::UnknownAccount {
                masked: mask(&number),
            }
            .to_string(),
        ),
    }
}

/// The status and body of a ledger error.
fn sim_error(e: &SimError) -> Response {
    let status = match e {
        SimError::UnknownAccount { .. } | SimError::NoPendingEntry { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}

fn unknown_account(number: &str) -> Response {
    sim_error(&SimError::UnknownAccount {
        masked: mask(number),
    })
}

pub(crate) async fn list_entries(
    State(state): State<Arc<SimState>>,
    Path(number): Path<String>,
    query: Result<Query<EntriesQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "query string must only hold from and to, ISO dates such as 2026-11-28".into(),
        );
    };
    let Some(account) = state.ledger.account(&number) else {
        return unknown_account(&number);
    };
    let date = |name: &str, text: Option<String>| match text {
        None => Ok(None),
        Some(text) => BusinessDate::parse_iso(&text)
            .map(Some)
            .map_err(|e| format!("{name}: {e}")),
    };
    let (from, to) = match (date("from", query.from), date("to", query.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(message), _) | (_, Err(message)) => return error(StatusCode::BAD_REQUEST, message),
    };
    match state.ledger.entries_between(&number, from, to) {
        Ok(entries) => Json(
            entries
                .iter()
                .map(|entry| EntryView::of(entry, account.currency))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => sim_error(&e),
    }
}

pub(crate) async fn add_entry(
    State(state): State<Arc<SimState>>,
    Path(number): Path<String>,
    body: Bytes,
) -> Response {
    let Some(account) = state.ledger.account(&number) else {
        return unknown_account(&number);
    };
    let request: NewEntryRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not a new entry: {e}; expected e.g. {{\"direction\": \"credit\", \"amount\": \"100.00\", \"remittance\": \"货款\"}}"),
            )
        }
    };
    let amount = match Money::parse(&request.amount, account.currency) {
        Ok(amount) if amount.is_positive() => amount,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("amount is {}; expected a positive amount", request.amount),
            )
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("amount: {e}")),
    };
    let new = NewSimEntry {
        direction: request.direction,
        amount_minor: amount.minor(),
        status: request.status.unwrap_or(EntryStatus::Booked),
        serial: request.serial,
        counterparty_name: request.counterparty_name,
        counterparty_account: request.counterparty_account,
        counterparty_bank: request.counterparty_bank,
        remittance: request.remittance,
        e2e_ref: request.e2e_ref,
    };
    match state.ledger.add_entry(&number, new) {
        Ok(entry) => {
            tracing::info!(bank = %state.cfg.bank_id, account = %mask(&number),
                direction = ?entry.direction, status = ?entry.status, "entry added");
            (
                StatusCode::CREATED,
                Json(EntryView::of(&entry, account.currency)),
            )
                .into_response()
        }
        Err(e) => sim_error(&e),
    }
}

pub(crate) async fn book_pending(
    State(state): State<Arc<SimState>>,
    Path((number, serial)): Path<(String, String)>,
) -> Response {
    let Some(account) = state.ledger.account(&number) else {
        return unknown_account(&number);
    };
    match state.ledger.book_pending(&number, &serial) {
        Ok(entry) => {
            tracing::info!(bank = %state.cfg.bank_id, account = %mask(&number), "pending entry booked");
            Json(EntryView::of(&entry, account.currency)).into_response()
        }
        Err(e) => sim_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_formatted_exactly() {
        assert_eq!(decimal_of_total(0, Currency::CNY), "0.00");
        assert_eq!(decimal_of_total(5, Currency::CNY), "0.05");
        assert_eq!(decimal_of_total(-8000, Currency::CNY), "-80.00");
        assert_eq!(
            decimal_of_total(i128::from(i64::MAX) * 4, Currency::USD),
            "368934881474191032.28"
        );
        assert_eq!(decimal_of_total(-1234, Currency::JPY), "-1234");
    }
}
