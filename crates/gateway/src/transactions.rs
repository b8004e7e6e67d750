//! Transaction routes: an account's entries paged by ingest sequence, the
//! change feed across accounts, an explicit sync, and continuity breaks.
//! Reads never call a bank.
//!
//! Cursors are opaque to clients and signed (HMAC under a key of the data
//! dir): an account cursor names its account and the last `seq` returned; a
//! feed cursor names its client and the last `change_seq` returned. A cursor
//! that was altered, or belongs to another account or client, is a 400 that
//! names the parameter.

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::Response,
    Json,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::{AccountId, BusinessDate, EntryStatus};
use serde::{Deserialize, Serialize};
use store::{EntryQuery, StoredEntry};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Scope,
    extract::{request_id, ApiQuery, Caller},
    problem::{ApiError, Problem},
    routes::{page_limit, visible_account},
    statements::SyncError,
    AppState,
};

/// Signs and checks cursors.
#[derive(Debug)]
pub struct CursorSigner {
    hasher: crypto::KeyedHasher,
}

const ACCOUNT_CURSOR: &str = "a1";
const FEED_CURSOR: &str = "f1";

impl CursorSigner {
    pub fn new(hasher: crypto::KeyedHasher) -> CursorSigner {
        CursorSigner { hasher }
    }

    /// Base64url of `kind|owner|position|<the payload's keyed hash>`, the
    /// hash in [`crypto::KeyedHasher::hash`]'s stored form. The text is
    /// written into one buffer sized for it and the hash into it in place:
    /// two allocations, the text and the answer (a page that has a next
    /// page signs one).
    fn encode(&self, kind: &str, owner: &str, position: i64) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use std::io::Write as _;
        // An i64 has at most 20 characters.
        let mut text =
            Vec::with_capacity(kind.len() + owner.len() + 20 + crypto::KEYED_HASH_STORED_LEN + 3);
        text.extend_from_slice(kind.as_bytes());
        text.push(b'|');
        text.extend_from_slice(owner.as_bytes());
        text.push(b'|');
        // Writing into a Vec cannot fail.
        let _ = write!(text, "{position}");
        let signature = self.hasher.stored_hash(&text);
        text.push(b'|');
        text.extend_from_slice(&signature);
        URL_SAFE_NO_PAD.encode(text)
    }

    /// The position in a cursor of `kind` that belongs to `owner`.
    fn decode(&self, cursor: &str, kind: &str, owner: &str, param: &str) -> Result<i64, ApiError> {
        let bad = |detail: &str| ApiError::bad_request("invalid_cursor", param, detail.to_owned());
        let not_ours = "the cursor is not one this API returned (altered or truncated); start again without it";
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| bad(not_ours))?;
        let text = String::from_utf8(bytes).map_err(|_| bad(not_ours))?;
        let mut parts = text.rsplitn(2, '|');
        let (Some(sig), Some(payload)) = (parts.next(), parts.next()) else {
            return Err(bad(not_ours));
        };
        if !self.hasher.verify(payload, sig) {
            return Err(bad(not_ours));
        }
        let fields: Vec<&str> = payload.split('|').collect();
        let [k, o, pos] = fields.as_slice() else {
            return Err(bad(not_ours));
        };
        if *k != kind {
            return Err(bad(
                "this cursor belongs to another list; use the next_cursor of this list",
            ));
        }
        if *o != owner {
            return Err(bad(if kind == ACCOUNT_CURSOR {
                "this cursor belongs to another account; use the next_cursor returned for this account"
            } else {
                "this cursor belongs to another client"
            }));
        }
        pos.parse::<i64>().map_err(|_| bad(not_ours))
    }
}

// The views borrow from the stored entries: a page used to copy every text of every entry
// into a view (13 allocations per entry) only to serialise and drop it.

#[derive(Debug, Serialize, ToSchema)]
pub struct CounterpartyView<'a> {
    pub name: Option<&'a str>,
    pub account: Option<&'a str>,
    pub bank: Option<&'a str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionView<'a> {
    /// bankdirect's stable id of the entry.
    pub id: &'a str,
    pub account_id: &'a str,
    /// `credit` (money in) or `debit` (money out).
    pub direction: &'static str,
    /// Positive decimal string; the direction carries the sign.
    pub amount: String,
    pub currency: &'static str,
    pub booking_date: String,
    pub value_date: String,
    /// `pending` or `booked`.
    pub status: &'static str,
    pub counterparty: CounterpartyView<'a>,
    pub remittance: Option<&'a str>,
    pub bank_transaction_id: Option<&'a str>,
    pub end_to_end_id: Option<&'a str>,
    /// The account's balance after this entry, where the bank gives one.
    pub running_balance: Option<String>,
    /// When bankdirect first stored the entry.
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub ingested_at: DateTime<Utc>,
    /// When bankdirect last changed it (pending → booked).
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub updated_at: DateTime<Utc>,
}

fn view(s: &StoredEntry) -> TransactionView<'_> {
    let e = &s.entry;
    TransactionView {
        id: e.id.as_str(),
        account_id: e.account_id.as_str(),
        direction: match e.direction {
            domain::Direction::Credit => "credit",
            domain::Direction::Debit => "debit",
        },
        amount: e.amount.to_decimal_string(),
        currency: e.amount.currency().code(),
        booking_date: e.booking_date.to_string(),
        value_date: e.value_date.to_string(),
        status: status_str(e.status),
        counterparty: CounterpartyView {
            name: e.counterparty.name.as_deref(),
            account: e.counterparty.account.as_deref(),
            bank: e.counterparty.bank.as_deref(),
        },
        remittance: e.remittance.as_deref(),
        bank_transaction_id: e.bank_transaction_id.as_deref(),
        end_to_end_id: e.end_to_end_id.as_deref(),
        running_balance: e.running_balance.map(|m| m.to_decimal_string()),
        ingested_at: s.ingested_at,
        updated_at: s.updated_at,
    }
}

/// Bytes of JSON per entry to reserve up front (a page averages ~510), so the body is
/// written into one buffer instead of one that doubles its way up from 128 bytes.
const JSON_BYTES_PER_ENTRY: usize = 640;

/// `Json(value)`, serialised into a buffer of `capacity` bytes. Same body and
/// `content-type` as axum's `Json`; a value that cannot be serialised is a 500 problem.
pub(crate) fn json_response<T: Serialize>(
    value: &T,
    capacity: usize,
) -> Result<Response, ApiError> {
    let mut body = Vec::with_capacity(capacity);
    json_bytes_response(serde_json::to_writer(&mut body, value).map(|()| body))
}

fn status_str(s: EntryStatus) -> &'static str {
    match s {
        EntryStatus::Pending => "pending",
        EntryStatus::Booked => "booked",
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionList<'a> {
    pub items: Vec<TransactionView<'a>>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TransactionParams {
    /// First booking date, `YYYY-MM-DD`, inclusive.
    pub from: Option<String>,
    /// Last booking date, `YYYY-MM-DD`, inclusive.
    pub to: Option<String>,
    /// `pending` or `booked`.
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

fn parse_date(raw: Option<&str>, param: &str) -> Result<Option<BusinessDate>, ApiError> {
    raw.map(|text| {
        BusinessDate::parse_iso(text).map_err(|_| {
            ApiError::bad_request(
                "invalid_date",
                param,
                format!(
                    "{} must be a date written YYYY-MM-DD",
                    param.trim_start_matches("query.")
                ),
            )
        })
    })
    .transpose()
}

/// An account's entries in ingest order, so pages stay stable while new
/// entries arrive (they come after). Needs `accounts:read`.
#[utoipa::path(get, path = "/v1/accounts/{id}/transactions", tag = "transactions",
    params(("id" = String, Path, description = "Account id"), TransactionParams),
    responses((status = 200, body = TransactionList), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn list_transactions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<TransactionParams>,
) -> Result<Response, ApiError> {
    caller.require(Scope::AccountsRead)?;
    let account = visible_account(&state, &caller, &id)?;
    let limit = page_limit(&state, params.limit.as_deref())?;
    let from = parse_date(params.from.as_deref(), "query.from")?;
    let to = parse_date(params.to.as_deref(), "query.to")?;
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(ApiError::bad_request(
                "invalid_date_range",
                "query.to",
                "to is before from; swap them",
            ));
        }
        let days = (t.naive() - f.naive()).num_days() + 1;
        let max = state.config.statements.max_query_range_days;
        if days > i64::from(max) {
            return Err(ApiError::bad_request(
                "date_range_too_long",
                "query.to",
                format!("the range covers {days} days; at most {max} are allowed per request — split it"),
            ));
        }
    }
    let status = match params.status.as_deref() {
        None => None,
        Some("pending") => Some(EntryStatus::Pending),
        Some("booked") => Some(EntryStatus::Booked),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_status",
                "query.status",
                "status must be `pending` or `booked`",
            ))
        }
    };
    let after_seq = match params.cursor.as_deref() {
        None => 0,
        Some(c) => state
            .cursors
            .decode(c, ACCOUNT_CURSOR, account.id.as_str(), "query.cursor")?,
    };
    let query = EntryQuery {
        account_id: account.id.clone(),
        from,
        to,
        status,
        after_seq,
        limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
    };
    let cursor_after = |seq: i64| {
        state
            .cursors
            .encode(ACCOUNT_CURSOR, account.id.as_str(), seq)
    };
    if let Some(page) = state.entry_cache.page(&query) {
        let n = page.len().min(limit);
        let next_cursor = if page.len() > limit {
            page.seq(n.saturating_sub(1)).map(cursor_after)
        } else {
            None
        };
        let body = page
            .body(n, next_cursor)
            .map_err(|e| ApiError::internal("serialising a response", &e))?;
        return Ok(json_body_response(axum::body::Body::new(body)));
    }
    let rows = state
        .store
        .list_entries(&query)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let has_more = rows.len() > limit;
    let page = &rows[..rows.len().min(limit)];
    let next_cursor = if has_more {
        page.last().map(|r| cursor_after(r.seq))
    } else {
        None
    };
    json_bytes_response(write_page(
        page,
        next_cursor.as_deref(),
        (page.len() + 1) * JSON_BYTES_PER_ENTRY,
        write_entry,
    ))
}

/// Writes one entry as the API shows it (a [`TransactionView`]).
pub(crate) fn write_entry(body: &mut Vec<u8>, entry: &StoredEntry) -> serde_json::Result<()> {
    serde_json::to_writer(body, &view(entry))
}

/// Writes a [`TransactionList`] of `items`, each written by `write_item`: the
/// same bytes serde writes for the struct. A page from the
/// [`crate::entry_cache`] is the same bytes, sent in pieces
/// ([`crate::entry_cache::CachedPage::body`]).
pub(crate) fn write_page<T>(
    items: impl IntoIterator<Item = T>,
    next_cursor: Option<&str>,
    capacity: usize,
    mut write_item: impl FnMut(&mut Vec<u8>, T) -> serde_json::Result<()>,
) -> serde_json::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(capacity);
    body.extend_from_slice(PAGE_START);
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        write_item(&mut body, item)?;
    }
    write_page_end(&mut body, next_cursor)?;
    Ok(body)
}

/// How a [`TransactionList`] starts, before its items (joined by commas).
pub(crate) const PAGE_START: &[u8] = b"{\"items\":[";

/// What follows a [`TransactionList`]'s items, before its cursor's JSON.
const PAGE_ITEMS_END: &[u8] = b"],\"next_cursor\":";

/// [`PAGE_ITEMS_END`] and the cursor's opening quote, and the closing quote
/// and the list's end: around a cursor that JSON writes as it is.
pub(crate) const PAGE_CURSOR_OPEN: &[u8] = b"],\"next_cursor\":\"";
pub(crate) const PAGE_CURSOR_CLOSE: &[u8] = b"\"}";

/// How a [`TransactionList`] ends, after its items.
pub(crate) fn write_page_end(
    body: &mut Vec<u8>,
    next_cursor: Option<&str>,
) -> serde_json::Result<()> {
    body.extend_from_slice(PAGE_ITEMS_END);
    serde_json::to_writer(&mut *body, &next_cursor)?;
    body.push(b'}');
    Ok(())
}

/// A JSON body already written, as `json_response` answers it.
fn json_bytes_response(body: serde_json::Result<Vec<u8>>) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError::internal("serialising a response", &e))?;
    Ok(json_body_response(axum::body::Body::from(body)))
}

/// A 200 JSON answer of `body`, its header map made with room for the
/// headers every answer gets on its way out (content length, request id,
/// the security headers), so it is allocated once.
fn json_body_response(body: axum::body::Body) -> Response {
    let mut headers = axum::http::HeaderMap::with_capacity(12);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut resp = Response::new(body);
    *resp.headers_mut() = headers;
    resp
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeFeed<'a> {
    /// New and changed entries in the order they were stored. An entry
    /// appears once when it is first stored and once more if it later
    /// changes (pending → booked).
    pub items: Vec<TransactionView<'a>>,
    /// Always set: pass it as `since` on the next poll to get only what is
    /// new since this page.
    pub next_cursor: String,
    /// True when more items are already waiting.
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct FeedParams {
    /// The `next_cursor` of the previous poll; absent to start from the beginning.
    pub since: Option<String>,
    pub limit: Option<String>,
}

/// What is new since the last poll, across every account the caller is
/// entitled to. Needs `accounts:read`.
#[utoipa::path(get, path = "/v1/transactions", tag = "transactions", params(FeedParams),
    responses((status = 200, body = ChangeFeed), (status = 400, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn change_feed(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<FeedParams>,
) -> Result<Response, ApiError> {
    caller.require(Scope::AccountsRead)?;
    let limit = page_limit(&state, params.limit.as_deref())?;
    let after = match params.since.as_deref() {
        None => 0,
        Some(c) => state
            .cursors
            .decode(c, FEED_CURSOR, &caller.subject, "query.since")?,
    };
    let accounts: Vec<AccountId> = state
        .config
        .accounts
        .iter()
        .filter(|a| caller.entitlement.allows(a.id.as_str()))
        .map(|a| a.id.clone())
        .collect();
    let rows = state
        .store
        .entries_changed_since(
            &accounts,
            after,
            u32::try_from(limit + 1).unwrap_or(u32::MAX),
        )
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let has_more = rows.len() > limit;
    let page = &rows[..rows.len().min(limit)];
    let position = page.last().map(|r| r.change_seq).unwrap_or(after);
    json_response(
        &ChangeFeed {
            items: page.iter().map(view).collect(),
            next_cursor: state.cursors.encode(FEED_CURSOR, &caller.subject, position),
            has_more,
        },
        (page.len() + 1) * JSON_BYTES_PER_ENTRY,
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncResult {
    pub account_id: String,
    /// The window read from the bank, booking dates inclusive.
    pub from: String,
    pub to: String,
    pub inserted: u32,
    pub booked_from_pending: u32,
    pub unchanged: u32,
    /// Days whose entries do not add up to the bank's balances.
    pub continuity_breaks: Vec<String>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub finished_at: DateTime<Utc>,
}

/// Pulls the account's entries from its bank now (overlapping the last
/// sync), or joins a sync of it already running. Idempotent by nature.
/// Needs `accounts:read`.
#[utoipa::path(post, path = "/v1/accounts/{id}/transactions:refresh", tag = "transactions",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = SyncResult), (status = 404, body = Problem),
        (status = 502, body = Problem), (status = 503, body = Problem), (status = 504, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn refresh_transactions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<SyncResult>, ApiError> {
    caller.require(Scope::AccountsRead)?;
    let account = visible_account(&state, &caller, &id)?;
    let request_id = request_id(&headers);
    let report = state
        .statements
        .sync_account(&account.id, &caller.actor(), request_id)
        .await
        .map_err(|e| match e {
            SyncError::Bank(b) => ApiError::bank(&b),
            SyncError::BadEntry(detail) => {
                let mut err = ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "bank_bad_response",
                    format!("the bank sent an entry that cannot be stored: {detail}"),
                );
                err.problem.bank_id = state
                    .directory
                    .connections
                    .get(&account.connection)
                    .map(|c| c.bank_id.to_string());
                err
            }
            other => ApiError::internal("statement sync", &other),
        })?;
    Ok(Json(SyncResult {
        account_id: report.account_id.to_string(),
        from: report.from.to_string(),
        to: report.to.to_string(),
        inserted: report.inserted,
        booked_from_pending: report.booked_from_pending,
        unchanged: report.unchanged,
        continuity_breaks: report
            .continuity_breaks
            .iter()
            .map(ToString::to_string)
            .collect(),
        finished_at: report.finished_at,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContinuityBreakView {
    pub date: String,
    pub currency: String,
    /// The bank's opening balance of the day.
    pub opening: String,
    /// The bank's closing balance of the day.
    pub closing: String,
    /// Σ stored booked entries of the day (credits − debits).
    pub entries_sum: String,
    /// closing − (opening + entries_sum): what is missing or extra.
    pub gap: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub detected_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContinuityBreakList {
    pub items: Vec<ContinuityBreakView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct BreakParams {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Days on which the stored entries do not add up to the bank's balances
/// (opening + Σ entries ≠ closing), still unresolved. Needs `accounts:read`.
#[utoipa::path(get, path = "/v1/accounts/{id}/continuity-breaks", tag = "transactions",
    params(("id" = String, Path, description = "Account id"), BreakParams),
    responses((status = 200, body = ContinuityBreakList), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = ["accounts:read"])))]
pub async fn continuity_breaks(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<BreakParams>,
) -> Result<Json<ContinuityBreakList>, ApiError> {
    caller.require(Scope::AccountsRead)?;
    let account = visible_account(&state, &caller, &id)?;
    let from = parse_date(params.from.as_deref(), "query.from")?;
    let to = parse_date(params.to.as_deref(), "query.to")?;
    let breaks = state
        .store
        .continuity_breaks(&account.id, from, to)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(ContinuityBreakList {
        items: breaks
            .iter()
            .map(|b| ContinuityBreakView {
                date: b.date.to_string(),
                currency: b.opening.currency().code().to_owned(),
                opening: b.opening.to_decimal_string(),
                closing: b.closing.to_decimal_string(),
                entries_sum: b.entries_sum.to_decimal_string(),
                gap: b.gap.to_decimal_string(),
                detected_at: b.detected_at,
            })
            .collect(),
        next_cursor: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> CursorSigner {
        CursorSigner::new(crypto::KeyedHasher::from_bytes([7; 32]))
    }

    fn stored(seq: i64, remittance: Option<&str>) -> StoredEntry {
        let day = BusinessDate::from_ymd(2026, 11, 30).unwrap();
        let mut entry = domain::StatementEntry::new(
            domain::EntryId::generate(&domain::SeededRandom::new(seq as u64)),
            AccountId::parse("east-1").unwrap(),
            domain::Direction::Debit,
            domain::Money::from_minor(123_456 + seq, domain::Currency::CNY),
            day,
            day,
            EntryStatus::Pending,
        )
        .unwrap();
        entry.remittance = remittance.map(str::to_owned);
        entry.counterparty.name = Some("上海\"引号\"贸易有限公司".to_owned());
        let at = DateTime::parse_from_rfc3339("2026-11-30T08:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        StoredEntry {
            entry,
            seq,
            change_seq: seq,
            ingested_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn a_written_page_is_what_serde_writes_for_a_transaction_list() {
        let entries = [
            stored(1, Some("货款\n第二行")),
            stored(2, None),
            stored(3, Some("</script>")),
        ];
        for (items, cursor) in [
            (&entries[..], Some("YTF8ZWFzdC0xfDN8c2ln")),
            (&entries[..1], None),
            (&entries[..0], None),
        ] {
            let want = serde_json::to_vec(&TransactionList {
                items: items.iter().map(view).collect(),
                next_cursor: cursor.map(str::to_owned),
            })
            .unwrap();
            let direct = write_page(items, cursor, 16, write_entry).unwrap();
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                String::from_utf8(want.clone()).unwrap()
            );
            // As the entry copy does: each entry's JSON written once, then joined.
            let held: Vec<Vec<u8>> = items
                .iter()
                .map(|e| {
                    let mut json = Vec::new();
                    write_entry(&mut json, e).unwrap();
                    json
                })
                .collect();
            let joined = write_page(held.iter(), cursor, 16, |body, json| {
                body.extend_from_slice(json);
                Ok(())
            })
            .unwrap();
            assert_eq!(joined, want);
        }
    }

    #[test]
    fn a_cursor_round_trips_for_its_owner_only() {
        let s = signer();
        let c = s.encode(ACCOUNT_CURSOR, "east-1", 42);
        assert_eq!(
            s.decode(&c, ACCOUNT_CURSOR, "east-1", "query.cursor")
                .unwrap(),
            42
        );
        let e = s
            .decode(&c, ACCOUNT_CURSOR, "east-2", "query.cursor")
            .unwrap_err();
        assert_eq!(e.problem.field.as_deref(), Some("query.cursor"));
        assert!(e.problem.detail.contains("another account"));
        assert!(s.decode(&c, FEED_CURSOR, "east-1", "query.since").is_err());
    }

    #[test]
    fn the_cursor_pieces_are_the_page_end_around_a_plain_cursor() {
        let mut end = Vec::new();
        write_page_end(&mut end, Some("YWJj-_")).unwrap();
        assert_eq!(
            end,
            [PAGE_CURSOR_OPEN, b"YWJj-_", PAGE_CURSOR_CLOSE].concat()
        );
    }

    #[test]
    fn a_cursor_keeps_its_form_so_earlier_cursors_still_decode() {
        // Cursors handed out before stay valid: the text is
        // `kind|owner|position|` and the payload's stored-form keyed hash.
        let s = signer();
        for (owner, position) in [
            ("east-1", 0),
            ("东-账户-1", 42),
            ("x", i64::MAX),
            ("y", i64::MIN),
        ] {
            let c = s.encode(ACCOUNT_CURSOR, owner, position);
            let text = String::from_utf8(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&c)
                    .unwrap(),
            )
            .unwrap();
            let payload = format!("{ACCOUNT_CURSOR}|{owner}|{position}");
            assert_eq!(text, format!("{payload}|{}", s.hasher.hash(&payload)));
            assert_eq!(
                s.decode(&c, ACCOUNT_CURSOR, owner, "query.cursor").unwrap(),
                position
            );
        }
    }

    #[test]
    fn an_altered_cursor_is_refused() {
        let s = signer();
        let c = s.encode(ACCOUNT_CURSOR, "east-1", 42);
        let text = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&c)
                .unwrap(),
        )
        .unwrap();
        let forged =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.replace("|42|", "|41|"));
        let e = s
            .decode(&forged, ACCOUNT_CURSOR, "east-1", "query.cursor")
            .unwrap_err();
        assert_eq!(e.problem.code, "invalid_cursor");
        let other_key = CursorSigner::new(crypto::KeyedHasher::from_bytes([8; 32]));
        assert!(other_key
            .decode(&c, ACCOUNT_CURSOR, "east-1", "query.cursor")
            .is_err());
    }
}
