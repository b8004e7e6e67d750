//! The JSON control API of a simulated bank, under `/_sim/`, for tests and
//! for people poking a running demo with curl.
//!
//! - `GET /_sim/ledger`: accounts and per-currency totals ([`LedgerView`]),
//!   amounts as decimal strings;
//! - `GET|POST|DELETE /_sim/faults`: list, add (body: a flat
//!   [`FaultRule`](crate::FaultRule), answers 201), clear (answers 204);
//! - `POST /_sim/accounts/{number}/adjust` with `{"delta": "-100.00"}`:
//!   moves booked and available balance, answers the account.
//!
//! Errors are `{"error": "..."}` with 400 (bad input) or 404 (no account).
//! These routes are not part of any bank's protocol and have no auth: the
//! simulator listens on loopback for tests and demos only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{Currency, Money};

use crate::faults::FaultRule;
use crate::ledger::SimAccount;
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
