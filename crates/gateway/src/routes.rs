//! The `/v1` resource routes: banks, accounts and balances. Handlers are
//! thin: check scope and entitlement, read from the store or the bank
//! directory, shape the JSON. Reads never call a bank; only the explicit
//! refresh does.

use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
    Json,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::{AccountId, Currency, MoneyTotal};
use serde::{Deserialize, Serialize};
use store::BalanceSnapshot;
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Scope,
    banking::{ConnectionHealth, HealthStatus, RefreshError},
    config::AccountConfig,
    extract::{request_id, ApiQuery, Caller},
    problem::{ApiError, Problem},
    transactions::json_response,
    AppState,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct BankView {
    pub id: String,
    pub name: String,
    /// Protocol family, e.g. `cn-xml`.
    pub family: String,
    /// What this bank's connector can do, from the fixed capability list.
    pub capabilities: Vec<String>,
    /// The capabilities of the fixed list this bank's family lacks, and why.
    pub missing_capabilities: Vec<MissingCapability>,
    pub health: HealthStatus,
    pub connections: Vec<ConnectionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MissingCapability {
    pub capability: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub id: String,
    #[serde(flatten)]
    pub health: ConnectionHealth,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BankList {
    pub items: Vec<BankView>,
    pub next_cursor: Option<String>,
}

/// The banks and their health. Needs `accounts:read`.
#[utoipa::path(get, path = "/v1/banks", tag = "banks",
    responses((status = 200, body = BankList), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn list_banks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BankList>, ApiError> {
    caller.require(Scope::AccountsRead)?;
    let mut items = Vec::new();
    for bank in &state.directory.banks {
        let mut connections = Vec::new();
        let mut capabilities: Vec<String> = Vec::new();
        let mut missing_capabilities: Vec<MissingCapability> = Vec::new();
        for conn in state.directory.connections_of(&bank.id) {
            if capabilities.is_empty() && missing_capabilities.is_empty() {
                capabilities = conn
                    .connector()
                    .capabilities()
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect();
                missing_capabilities = conn
                    .connector()
                    .lacking_capabilities()
                    .iter()
                    .map(|(c, reason)| MissingCapability {
                        capability: c.as_str().to_owned(),
                        reason: (*reason).to_owned(),
                    })
                    .collect();
            }
            connections.push(ConnectionView {
                id: conn.config.id.to_string(),
                health: conn.health(),
            });
        }
        let health = aggregate_health(connections.iter().map(|c| c.health.status));
        items.push(BankView {
            id: bank.id.to_string(),
            name: bank.name.clone(),
            family: bank.family.as_str().to_owned(),
            capabilities,
            missing_capabilities,
            health,
            connections,
        });
    }
    Ok(Json(BankList {
        items,
        next_cursor: None,
    }))
}

fn aggregate_health(statuses: impl Iterator<Item = HealthStatus>) -> HealthStatus {
    let all: Vec<HealthStatus> = statuses.collect();
    if all.is_empty() || all.iter().all(|s| *s == HealthStatus::Unknown) {
        HealthStatus::Unknown
    } else if all.iter().all(|s| *s == HealthStatus::Up) {
        HealthStatus::Up
    } else if all.iter().all(|s| *s == HealthStatus::Down) {
        HealthStatus::Down
    } else {
        HealthStatus::Degraded
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub bank_id: String,
    pub connection_id: String,
    pub number: String,
    pub name: String,
    pub currencies: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    pub items: Vec<AccountView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageParams {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size (default and maximum from the configuration).
    pub limit: Option<String>,
}

fn account_view(state: &AppState, a: &AccountConfig) -> AccountView {
    let bank_id = state
        .directory
        .connections
        .get(&a.connection)
        .map(|c| c.bank_id.to_string())
        .unwrap_or_default();
    AccountView {
        id: a.id.to_string(),
        bank_id,
        connection_id: a.connection.to_string(),
        number: a.number.to_string(),
        name: a.name.clone(),
        currencies: a.currencies.iter().map(|c| c.code().to_owned()).collect(),
    }
}

const CURSOR_PREFIX: &str = "acc:";

fn encode_cursor(last_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{last_id}"))
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "query.cursor",
            "the cursor is not one this API returned; start again without a cursor",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(CURSOR_PREFIX)
        .map(str::to_owned)
        .ok_or_else(bad)
}

pub(crate) fn page_limit(state: &AppState, raw: Option<&str>) -> Result<usize, ApiError> {
    let max = state.config.server.max_page_size;
    match raw {
        None => Ok(state.config.server.default_page_size as usize),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n as usize),
            _ => Err(ApiError::bad_request(
                "invalid_limit",
                "query.limit",
                format!("limit must be an integer from 1 to {max}"),
            )),
        },
    }
}

/// Accounts the caller is entitled to, ordered by id, in pages. Needs `accounts:read`.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", params(PageParams),
    responses((status = 200, body = AccountList), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<AccountList>, ApiError> {
    caller.require(Scope::AccountsRead)?;
    let limit = page_limit(&state, page.limit.as_deref())?;
    let after = page.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut visible: Vec<&AccountConfig> = state
        .config
        .accounts
        .iter()
        .filter(|a| caller.entitlement.allows(a.id.as_str()))
        .filter(|a| after.as_deref().is_none_or(|after| a.id.as_str() > after))
        .collect();
    visible.sort_by(|a, b| a.id.cmp(&b.id));
    let has_more = visible.len() > limit;
    visible.truncate(limit);
    let next_cursor = if has_more {
        visible.last().map(|a| encode_cursor(a.id.as_str()))
    } else {
        None
    };
    Ok(Json(AccountList {
        items: visible
            .into_iter()
            .map(|a| account_view(&state, a))
            .collect(),
        next_cursor,
    }))
}

/// Finds an account the caller may see; a missing one and one the caller is
/// not entitled to are the same 404, so ids cannot be probed.
pub(crate) fn visible_account<'a>(
    state: &'a AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<&'a AccountConfig, ApiError> {
    let not_found = || {
        ApiError::not_found(
            "account_not_found",
            "path.id",
            "no account with this id is visible to you; list yours with GET /v1/accounts",
        )
    };
    // Configured ids are valid, so a text that is not one matches none: it
    // is compared as it is, with no id built from it per request.
    state
        .config
        .accounts
        .iter()
        .find(|a| a.id.as_str() == raw_id)
        .filter(|a| caller.entitlement.allows(a.id.as_str()))
        .ok_or_else(not_found)
}

/// One account. Needs `accounts:read`.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = AccountView), (status = 404, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn get_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    caller.require(Scope::AccountsRead)?;
    let account = visible_account(&state, &caller, &id)?;
    Ok(Json(account_view(&state, account)))
}

// The balance views borrow their texts from the snapshots and the configuration: the
// balance read is the most polled call, and these copies were most of its own work.

#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceItem<'a> {
    pub account_id: &'a str,
    pub bank_id: &'a str,
    pub currency: &'static str,
    /// Booked (ledger) balance, decimal string in the currency's minor-unit precision; may be negative.
    pub booked: String,
    /// Available balance, decimal string; may be negative.
    pub available: String,
    /// When the bank says the balance was taken.
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub as_of: DateTime<Utc>,
    /// When bankdirect fetched it from the bank.
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub fetched_at: DateTime<Utc>,
    /// Seconds since `fetched_at`: how old this snapshot is.
    pub age_s: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountBalance<'a> {
    pub account_id: &'a str,
    pub bank_id: &'a str,
    pub balances: Vec<BalanceItem<'a>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceTotal {
    pub currency: String,
    pub booked: String,
    pub available: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceList<'a> {
    pub items: Vec<BalanceItem<'a>>,
    /// Per-currency sums over `items`.
    pub totals: Vec<BalanceTotal>,
    pub next_cursor: Option<String>,
}

fn balance_item<'a>(state: &AppState, bank_id: &'a str, s: &'a BalanceSnapshot) -> BalanceItem<'a> {
    BalanceItem {
        account_id: s.account_id.as_str(),
        bank_id,
        currency: s.booked.currency().code(),
        booked: s.booked.to_decimal_string(),
        available: s.available.to_decimal_string(),
        as_of: s.as_of,
        fetched_at: s.fetched_at,
        age_s: (state.clock.now() - s.fetched_at).num_seconds().max(0),
    }
}

fn bank_of<'a>(state: &'a AppState, account: &AccountConfig) -> &'a str {
    state
        .directory
        .connections
        .get(&account.connection)
        .map_or("", |c| c.bank_id.as_str())
}

/// Bytes reserved for one balance response (one snapshot is ~250 bytes of JSON).
const BALANCE_JSON_BYTES: usize = 512;

/// The latest stored balance snapshot of one account (one entry per
/// currency). Never calls the bank. Needs `accounts:read`.
#[utoipa::path(get, path = "/v1/accounts/{id}/balance", tag = "balances",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = AccountBalance), (status = 404, body = Problem), (status = 503, body = Problem, description = "no snapshot stored yet")),
    security(("bearer" = ["accounts:read"])))]
pub async fn get_balance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::AccountsRead)?;
    let account = visible_account(&state, &caller, &id)?;
    let all = state
        .directory
        .balance_cache
        .all()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let snapshots = all.get(&account.id).map_or(&[][..], Vec::as_slice);
    if snapshots.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "balance_not_yet_available",
            format!(
                "no balance of account {} has been fetched yet; POST /v1/accounts/{}/balance:refresh to fetch one now",
                account.id, account.id
            ),
        ));
    }
    let bank_id = bank_of(&state, account);
    json_response(
        &AccountBalance {
            account_id: account.id.as_str(),
            balances: snapshots
                .iter()
                .map(|s| balance_item(&state, bank_id, s))
                .collect(),
            bank_id,
        },
        snapshots.len() * BALANCE_JSON_BYTES,
    )
}

/// Fetches fresh balances from the bank for the account's connection (every
/// account on it), stores them, and returns this account's. Joins a refresh
/// of the same connection already running. Needs `accounts:read`.
#[utoipa::path(post, path = "/v1/accounts/{id}/balance:refresh", tag = "balances",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = AccountBalance), (status = 404, body = Problem),
        (status = 502, body = Problem, description = "the bank rejected the query or answered garbage; `bank_code` keeps its code"),
        (status = 503, body = Problem, description = "the bank could not be reached"),
        (status = 504, body = Problem, description = "the bank did not answer in time")),
    security(("bearer" = ["accounts:read"])))]
pub async fn refresh_balance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Scope::AccountsRead)?;
    let account = visible_account(&state, &caller, &id)?;
    let request_id = request_id(&headers);
    let report = state
        .directory
        .refresh_connection(&account.connection, &caller.actor(), request_id)
        .await
        .map_err(|e| match e {
            RefreshError::Bank(b) => ApiError::bank(&b),
            other => ApiError::internal("balance refresh", &other),
        })?;
    if let Some(f) = report.failed.iter().find(|f| f.account_id == account.id) {
        let mut err = ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "bank_rejected",
            format!(
                "the bank reported no balance for account {}: {}",
                account.id, f.message
            ),
        );
        err.problem.bank_id = Some(bank_of(&state, account).to_owned());
        err.problem.bank_code = Some(f.code.clone());
        err.problem.bank_message = Some(f.message.clone());
        return Err(err);
    }
    let bank_id = bank_of(&state, account);
    let balances: Vec<BalanceItem<'_>> = report
        .stored
        .iter()
        .filter(|s| s.account_id == account.id)
        .map(|s| balance_item(&state, bank_id, s))
        .collect();
    json_response(
        &AccountBalance {
            account_id: account.id.as_str(),
            bank_id,
            balances,
        },
        report.stored.len().max(1) * BALANCE_JSON_BYTES,
    )
}

/// The latest balances of every account the caller is entitled to, with
/// per-currency totals. Never calls a bank. Needs `accounts:read`.
#[utoipa::path(get, path = "/v1/balances", tag = "balances",
    responses((status = 200, body = BalanceList), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn list_balances(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Scope::AccountsRead)?;
    let snapshots = state
        .directory
        .balance_cache
        .all()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let accounts: BTreeMap<&AccountId, &AccountConfig> =
        state.config.accounts.iter().map(|a| (&a.id, a)).collect();
    let mut items = Vec::new();
    let mut totals: BTreeMap<Currency, (MoneyTotal, MoneyTotal)> = BTreeMap::new();
    for s in snapshots.values().flatten() {
        // A snapshot of an account that left the config is not shown.
        let Some(account) = accounts.get(&s.account_id) else {
            continue;
        };
        if !caller.entitlement.allows(account.id.as_str()) {
            continue;
        }
        let cur = s.booked.currency();
        let entry = totals
            .entry(cur)
            .or_insert_with(|| (MoneyTotal::zero(cur), MoneyTotal::zero(cur)));
        entry
            .0
            .add(s.booked)
            .and_then(|()| entry.1.add(s.available))
            .map_err(|e| ApiError::internal("balance totals", &e))?;
        items.push(balance_item(&state, bank_of(&state, account), s));
    }
    let capacity = (items.len() + totals.len()) * BALANCE_JSON_BYTES;
    json_response(
        &BalanceList {
            items,
            totals: totals
                .into_iter()
                .map(|(cur, (booked, available))| BalanceTotal {
                    currency: cur.code().to_owned(),
                    booked: booked.to_decimal_string(),
                    available: available.to_decimal_string(),
                })
                .collect(),
            next_cursor: None,
        },
        capacity,
    )
}
