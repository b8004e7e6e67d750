//! Every exchange with a bank, recorded: the [`ExchangeRecorder`] is the
//! [`banks::ExchangeSink`] each connector is built with (`banking.rs`), and
//! `GET /v1/bank-exchanges/{id}` ([`get_exchange`]) shows one with its masked bodies.
//!
//! For each call to a bank the recorder writes, in one store transaction, a
//! `bank_exchanges` row (the masked request and answer, kept apart from the chain) and a
//! `bank.exchange` audit record: actor `bank:<bank id>`, object the payment, batch or
//! account the call concerns (else `bank:<bank id>`), outcome the call's, details
//! `{function, reference, elapsed_ms, exchange_id, …}` — never a body, never an account
//! number (accounts appear by their configured id).
//!
//! A failure to record never fails or repeats the bank call: the write runs as a task of
//! its own, the call waits for it at most [`RECORD_WAIT_MS`], and a failed write is logged
//! at error and counted in `bank_exchange_audit_failures_total`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::Json;
use banks::{BankExchange, ExchangeSubject, MaskedBody};
use chrono::{DateTime, Utc};
use domain::AccountId;
use serde::Serialize;
use store::{NewAuditRecord, NewBankExchange, Store};
use utoipa::ToSchema;

use crate::auth::Scope;
use crate::extract::{Caller, Entitlement};
use crate::problem::{ApiError, Problem};
use crate::AppState;

/// How long a bank call waits for its exchange to be recorded before it goes on (the
/// write then finishes on its own). Keeps the record before the caller acts on the
/// answer in the normal case, without letting a stuck database hold a bank call.
pub const RECORD_WAIT_MS: u64 = 5_000;
/// The audit action of an exchange.
pub const ACTION: &str = "bank.exchange";
/// Counts exchanges whose row or audit record could not be written.
pub const FAILURES_METRIC: &str = "bank_exchange_audit_failures_total";

/// What the business references of the bank calls in flight belong to, as told by the
/// workers that make them (a payment's dispatcher knows its payment). The recorder reads
/// an exchange's object here first and asks the store only for a reference nobody told
/// it about, so a dispatched payment's exchange costs no look-up in the database (a
/// round trip per payment, in the dispatch benchmark: BENCHMARKS.md, issue 5). A
/// business reference is generated for one payment or chunk and never changes owner
/// (each table also refuses a reference twice), so what the worker that sends it says is
/// what the look-up would find. An entry lives while its [`OwnerHold`] does: the map
/// holds only the calls in flight.
#[derive(Debug, Default)]
pub struct ReferenceOwners {
    /// reference → (object, holds of it).
    held: StdMutex<HashMap<String, (String, usize)>>,
    /// Exchanges whose object was found here (a worker had said it).
    answered: AtomicU64,
}

impl ReferenceOwners {
    /// Tells the recorder that `reference` belongs to `object` (`payment:<id>`,
    /// `payment_batch:<id>`) until the hold is dropped.
    pub fn hold(self: &Arc<Self>, reference: &str, object: String) -> OwnerHold {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.entry(reference.to_owned())
            .and_modify(|(known, n)| {
                debug_assert_eq!(*known, object, "one reference, two owners");
                *n += 1;
            })
            .or_insert((object, 1));
        OwnerHold {
            owners: Arc::clone(self),
            reference: reference.to_owned(),
        }
    }

    fn object_of(&self, reference: &str) -> Option<String> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let object = held.get(reference).map(|(object, _)| object.clone());
        if object.is_some() {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
        object
    }

    /// How many exchanges took their object from a worker's word, since the start.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// How many references are held (for tests).
    pub fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no reference is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One worker's word on a reference's owner; withdrawn when dropped.
#[derive(Debug)]
pub struct OwnerHold {
    owners: Arc<ReferenceOwners>,
    reference: String,
}

impl Drop for OwnerHold {
    fn drop(&mut self) {
        let mut held = self.owners.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, n)) = held.get_mut(&self.reference) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.reference);
            }
        }
    }
}

/// The sink of one bank connection's exchanges.
#[derive(Debug)]
pub struct ExchangeRecorder {
    store: Arc<dyn Store>,
    /// The connection's account numbers → their configured ids.
    accounts: HashMap<String, AccountId>,
    /// What the references of calls in flight belong to (shared by every connection).
    owners: Arc<ReferenceOwners>,
}

impl ExchangeRecorder {
    pub fn new(
        store: Arc<dyn Store>,
        accounts: impl IntoIterator<Item = (String, AccountId)>,
        owners: Arc<ReferenceOwners>,
    ) -> ExchangeRecorder {
        ExchangeRecorder {
            store,
            accounts: accounts.into_iter().collect(),
            owners,
        }
    }

    /// The references of an exchange as they may be stored: business references as
    /// they are, accounts by their configured id (masked number when not configured).
    fn references(&self, subject: &ExchangeSubject) -> (Vec<String>, bool) {
        match subject {
            ExchangeSubject::Nothing => (Vec::new(), false),
            ExchangeSubject::References(refs) => {
                (refs.iter().map(|r| r.as_str().to_owned()).collect(), false)
            }
            ExchangeSubject::Accounts(numbers) => (
                numbers
                    .iter()
                    .map(|n| match self.accounts.get(n.as_str()) {
                        Some(id) => id.as_str().to_owned(),
                        None => n.masked(),
                    })
                    .collect(),
                true,
            ),
        }
    }
}

#[async_trait]
impl banks::ExchangeSink for ExchangeRecorder {
    async fn record(&self, exchange: BankExchange) {
        let (references, accounts) = self.references(&exchange.subject);
        // The object when it is known without asking the store.
        let known_object = match &exchange.subject {
            ExchangeSubject::Accounts(numbers) => numbers
                .first()
                .and_then(|n| self.accounts.get(n.as_str()))
                .map(|id| format!("account:{id}")),
            ExchangeSubject::References(_) => {
                references.first().and_then(|r| self.owners.object_of(r))
            }
            ExchangeSubject::Nothing => None,
        };
        let store = self.store.clone();
        let write = tokio::spawn(async move {
            let bank = exchange.bank_id.clone();
            let function = exchange.function;
            if let Err(e) = write(store, exchange, references, accounts, known_object).await {
                metrics::counter!(FAILURES_METRIC, "bank" => bank.clone()).increment(1);
                tracing::error!(bank = %bank, function, error = %e,
                    "could not record a bank exchange; the bank call goes on");
            }
        });
        if tokio::time::timeout(Duration::from_millis(RECORD_WAIT_MS), write)
            .await
            .is_err()
        {
            tracing::warn!(
                wait_ms = RECORD_WAIT_MS,
                "recording a bank exchange is slow; the bank call goes on without waiting"
            );
        }
    }
}

async fn write(
    store: Arc<dyn Store>,
    exchange: BankExchange,
    references: Vec<String>,
    accounts: bool,
    known_object: Option<String>,
) -> Result<i64, store::StoreError> {
    let bank_object = format!("bank:{}", exchange.bank_id);
    let object = match (&exchange.subject, references.first(), known_object) {
        (_, _, Some(known)) => known,
        (ExchangeSubject::References(_), Some(first), None) => {
            match store.bank_reference_object(first).await {
                Ok(Some(object)) => object,
                Ok(None) => bank_object,
                Err(e) => {
                    tracing::warn!(error = %e, "could not find what a reference belongs to");
                    bank_object
                }
            }
        }
        _ => bank_object,
    };
    let elapsed_ms = u64::try_from(exchange.elapsed.as_millis()).unwrap_or(u64::MAX);
    let finished = exchange.started_at
        + chrono::Duration::from_std(exchange.elapsed).unwrap_or_else(|_| chrono::Duration::zero());
    let mut details = serde_json::json!({
        "function": exchange.function,
        "connection_id": exchange.connection_id,
        "reference": references.first(),
        "elapsed_ms": elapsed_ms,
    });
    if references.len() > 1 {
        details["reference_count"] = serde_json::Value::from(references.len());
    }
    if accounts {
        details["reference_kind"] = "account".into();
    }
    if let Some(code) = &exchange.bank_code {
        details["bank_code"] = code.clone().into();
    }
    let audit = NewAuditRecord {
        at: finished,
        actor: format!("bank:{}", exchange.bank_id),
        action: ACTION.to_owned(),
        object,
        request_id: None,
        outcome: exchange.outcome.to_owned(),
        details,
    };
    let (request_masked, request_truncated) = body_parts(exchange.request);
    let (response_masked, response_truncated) = body_parts(exchange.response);
    let row = NewBankExchange {
        at: exchange.started_at,
        bank_id: exchange.bank_id,
        connection_id: exchange.connection_id,
        function: exchange.function.to_owned(),
        references,
        outcome: exchange.outcome.to_owned(),
        bank_code: exchange.bank_code,
        elapsed_ms,
        request_masked,
        request_truncated,
        response_masked,
        response_truncated,
    };
    store.record_bank_exchange(row, audit).await
}

fn body_parts(body: Option<MaskedBody>) -> (Option<String>, bool) {
    match body {
        Some(b) => (Some(b.text), b.truncated),
        None => (None, false),
    }
}

/// Whether `caller` may see exchange `e`: any, for a caller entitled to every account;
/// otherwise only one about an account it is entitled to — the account asked about, or
/// the debtor account of the payment or batch whose reference it carries. Anything else
/// (no reference, a reference nobody owns) is hidden, as a missing exchange is.
async fn visible_to(
    state: &AppState,
    caller: &Caller,
    e: &store::StoredBankExchange,
) -> Result<bool, ApiError> {
    if matches!(caller.entitlement, Entitlement::All) {
        return Ok(true);
    }
    let Some(reference) = e.reference.as_deref() else {
        return Ok(false);
    };
    let is_account = state
        .config
        .accounts
        .iter()
        .any(|a| a.id.as_str() == reference && a.connection.as_str() == e.connection_id);
    if is_account {
        return Ok(caller.entitlement.allows(reference));
    }
    let storage = |e: store::StoreError| ApiError::storage(&e);
    let object = state
        .store
        .bank_reference_object(reference)
        .await
        .map_err(storage)?;
    let debtor = match object.as_deref().and_then(|o| o.split_once(':')) {
        Some(("payment", id)) => match domain::PaymentId::parse(id) {
            Ok(id) => state
                .store
                .get_payment(&id)
                .await
                .map_err(storage)?
                .map(|p| p.instruction.debtor_account_id),
            Err(_) => None,
        },
        Some(("payment_batch", id)) => match domain::BatchId::parse(id) {
            Ok(id) => state
                .store
                .get_batch(&id)
                .await
                .map_err(storage)?
                .map(|b| b.debtor_account_id),
            Err(_) => None,
        },
        _ => None,
    };
    Ok(debtor.is_some_and(|a| caller.entitlement.allows(a.as_str())))
}

/// One masked body of an exchange.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeBody {
    /// The body as text (cn-xml decoded from GBK), account numbers masked to their last
    /// four characters, secret fields removed.
    pub text: String,
    /// True when the masked body was longer than 64 KiB and has been cut.
    pub truncated: bool,
}

/// One exchange with a bank.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub bank_id: String,
    pub connection_id: String,
    /// The cn-xml function code or iso20022 order type.
    pub function: String,
    /// The (first) business reference or account id the exchange concerns.
    pub reference: Option<String>,
    /// `ok`, `not_processed`, `rejected`, `timeout` or `unknown`.
    pub outcome: String,
    pub bank_code: Option<String>,
    pub elapsed_ms: u64,
    /// `null` when nothing was sent.
    pub request: Option<ExchangeBody>,
    /// `null` when no answer body was read.
    pub response: Option<ExchangeBody>,
}

/// One exchange with a bank and its masked bodies; its `bank.exchange` audit record names
/// it by `exchange_id`. Needs `audit:read`; a caller entitled to some accounts only sees
/// the exchanges about those (another's is a 404, as a missing one is).
#[utoipa::path(get, path = "/v1/bank-exchanges/{id}", tag = "audit",
    params(("id" = i64, Path, description = "Exchange id (an audit record's details.exchange_id)")),
    responses((status = 200, body = ExchangeView), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = ["audit:read"])))]
pub async fn get_exchange(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ExchangeView>, ApiError> {
    caller.require(Scope::AuditRead)?;
    let not_found = || {
        ApiError::not_found(
            "bank_exchange_not_found",
            "path.id",
            "no bank exchange with this id",
        )
    };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let e = state
        .store
        .get_bank_exchange(id)
        .await
        .map_err(|e| ApiError::storage(&e))?
        .ok_or_else(not_found)?;
    if !visible_to(&state, &caller, &e).await? {
        return Err(not_found());
    }
    let body =
        |text: Option<String>, truncated: bool| text.map(|text| ExchangeBody { text, truncated });
    Ok(Json(ExchangeView {
        id: e.id,
        at: e.at,
        bank_id: e.bank_id,
        connection_id: e.connection_id,
        function: e.function,
        reference: e.reference,
        outcome: e.outcome,
        bank_code: e.bank_code,
        elapsed_ms: e.elapsed_ms,
        request: body(e.request_masked, e.request_truncated),
        response: body(e.response_masked, e.response_truncated),
    }))
}
