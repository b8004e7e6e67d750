//! Payment batches (DESIGN.md, "Batches"): the records, the checks, and the create, chunk
//! transition and cancel algorithms written once against [`BatchTx`], which each backend
//! implements with its SQL (`sqlite/batches.rs`, `postgres/batches.rs`).
//!
//! A batch is one debtor account, one currency, one execution date; it is stored with its
//! chunks (each one bank submission with its own business reference, lease and fencing
//! token, walking the payment state machine) and its items (each with its own business
//! reference and the status the bank reports for it). The batch's `status` is derived
//! after every change by `domain::batch::aggregate`; when it changes, a
//! `payment_batch.status_changed` event is written in the same transaction, and when every
//! item is final a `payment_batch.completed` event follows it.
//!
//! Invariants: a batch, its chunks, items, first history row, idempotency key, event and
//! audit record commit together or not at all; items only move forward
//! (`ItemStatus::may_become`), except by the explicit review and cancel paths; a chunk
//! write-back is compare-and-set on (status, fencing token) like a payment's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    aggregate_batch_status, AccountId, BankReference, BatchCounts, BatchId, BatchItemId,
    BatchStatus, Bic, BusinessDate, CnapsCode, CreditorType, EndToEndId, ItemStatus, Money,
    PaymentStatus,
};
use serde_json::json;

use crate::codec::{self, AuditRow};
use crate::events::{batch_event, EventType};
use crate::payments::{
    check_claim, check_status, corrupt, creditor_type_text, invalid, refuse_nul, replay_of, Actor,
    CreateOutcome, Current, IdempotencyClaim, PaymentChange, PaymentTx, TransitionGuard,
};
use crate::statements::{check_date, currency_from_text};
use crate::{NewAuditRecord, StoreError};

pub(crate) const BATCHES_TABLE: &str = "payment_batches";
pub(crate) const CHUNKS_TABLE: &str = "payment_batch_chunks";
pub(crate) const ITEMS_TABLE: &str = "payment_batch_items";

/// Most items one batch may hold in the store (the gateway's configured limit is lower).
pub const BATCH_ITEMS_MAX: usize = 50_000;
/// Most items one `batch_items` page returns.
pub const BATCH_ITEMS_PAGE_MAX: u32 = 5_000;
/// Most batches one `list_batches` page returns.
pub const BATCH_QUERY_MAX_LIMIT: u32 = 1000;

// ---------------------------------------------------------------------------------------
// Records

/// One chunk of a new batch: the items whose `chunk_no` is this one go to the bank together
/// under `business_reference`.
#[derive(Debug, Clone)]
pub struct NewBatchChunk {
    /// 1, 2, … without gaps.
    pub chunk_no: i64,
    pub business_reference: BankReference,
}

/// One item of a new batch: the fields of a single payment without debtor and currency.
#[derive(Debug, Clone)]
pub struct NewBatchItem {
    pub id: BatchItemId,
    pub chunk_no: i64,
    pub business_reference: BankReference,
    /// Positive, in the batch's currency.
    pub amount: Money,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_bank_code: Option<CnapsCode>,
    pub creditor_bic: Option<Bic>,
    pub creditor_bank_name: Option<String>,
    pub creditor_type: CreditorType,
    pub remittance: String,
    pub purpose: Option<String>,
    /// Unique within the batch.
    pub end_to_end_id: Option<EndToEndId>,
}

/// A batch to create. Items are numbered 1, 2, … in the order given.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: BatchId,
    pub client_id: String,
    pub debtor_account_id: AccountId,
    /// `supplier` or `payroll`.
    pub kind: String,
    pub requested_execution_date: BusinessDate,
    pub business_reference: BankReference,
    /// The sum of the items; its currency is the batch's.
    pub control_sum: Money,
    /// The status every chunk starts in (`queued`, or `pending_approval`).
    pub chunk_status: String,
    /// Why (the first history row's cause).
    pub cause: String,
    pub chunks: Vec<NewBatchChunk>,
    pub items: Vec<NewBatchItem>,
    /// When the dispatcher should first look at the chunks.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Distinct approvals needed before its chunks may be queued (0 to
    /// [`crate::APPROVALS_REQUIRED_MAX`]); more than 0 means `chunk_status` is
    /// `pending_approval`.
    pub approvals_required: u8,
    /// The person the batch was made for (`user:<id>`), if any.
    pub on_behalf_of: Option<String>,
}

/// A batch as stored, without its items (see `Store::batch_items`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    pub id: BatchId,
    pub client_id: String,
    pub debtor_account_id: AccountId,
    pub kind: String,
    pub requested_execution_date: BusinessDate,
    pub business_reference: BankReference,
    pub item_count: i64,
    pub control_sum: Money,
    pub status: String,
    /// The sequence of the batch's latest event.
    pub event_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Distinct approvals needed before it was (or will be) queued; 0 when no rule matched.
    pub approvals_required: u8,
    /// The person the batch was made for (`user:<id>`), if any.
    pub on_behalf_of: Option<String>,
    /// In `chunk_no` order; filled by `get_batch` and the writes, empty in listings.
    pub chunks: Vec<StoredChunk>,
    /// Items per status (statuses with none omitted), in status order; filled like
    /// `chunks`.
    pub item_counts: Vec<(String, i64)>,
}

/// A chunk as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    pub batch_id: BatchId,
    pub chunk_no: i64,
    pub business_reference: BankReference,
    pub item_count: i64,
    pub status: String,
    pub ever_sent: bool,
    pub first_sent_at: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub send_attempts: i64,
    pub bank_batch_id: Option<String>,
    pub last_bank_code: Option<String>,
    pub last_bank_message: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub fencing_token: i64,
    /// When the chunk last changed status (an update of items only keeps it).
    pub updated_at: DateTime<Utc>,
}

/// An item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatchItem {
    pub id: BatchItemId,
    pub item_no: i64,
    pub chunk_no: i64,
    pub business_reference: BankReference,
    pub amount: Money,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_bank_code: Option<String>,
    pub creditor_bic: Option<String>,
    pub creditor_bank_name: Option<String>,
    pub creditor_type: CreditorType,
    pub remittance: String,
    pub purpose: Option<String>,
    pub end_to_end_id: Option<String>,
    pub status: ItemStatus,
    pub bank_code: Option<String>,
    pub bank_message: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A chunk claimed by a worker, with the batch it belongs to (without chunks or counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedChunk {
    pub batch: StoredBatch,
    pub chunk: StoredChunk,
}

/// What happens to the items of a chunk along with its transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemUpdate {
    None,
    /// Every item of the chunk that may move to `status` does (see [`item_froms`]).
    AllOpen {
        status: ItemStatus,
        bank_code: Option<String>,
        bank_message: Option<String>,
    },
    /// Items by business reference; an item that may not move there is left alone.
    Each(Vec<ItemResult>),
}

/// The bank's word on one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    pub business_reference: String,
    pub status: ItemStatus,
    pub bank_code: Option<String>,
    pub bank_message: Option<String>,
}

/// What `create_batch` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateBatchOutcome {
    /// The batch, chunks, items, key, event and audit record were committed together.
    Created(Box<StoredBatch>),
    /// The key was used before with the same request: replay this response.
    Replay { status: u16, body: String },
    /// The key was used before with a different request (409).
    KeyReused,
    /// The key's first request has not finished (409 `idempotency_in_progress`).
    InProgress,
}

/// What `cancel_batch` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelBatchOutcome {
    Cancelled(Box<StoredBatch>),
    /// Some chunk was already sent (or is past `queued`): nothing was written.
    NotCancellable {
        status: String,
    },
}

/// The position after the last batch of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchCursor {
    pub created_at: DateTime<Utc>,
    pub id: BatchId,
}

/// Filters of `list_batches`; results ascend by (`created_at`, `id`).
#[derive(Debug, Clone, Default)]
pub struct BatchQuery {
    pub status: Option<String>,
    /// `Some` restricts to these debtor accounts (empty: nothing).
    pub account_ids: Option<Vec<AccountId>>,
    pub after: Option<BatchCursor>,
    /// 0: 100; capped at [`BATCH_QUERY_MAX_LIMIT`].
    pub limit: u32,
}

impl BatchQuery {
    pub(crate) fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => 100,
            n => n.min(BATCH_QUERY_MAX_LIMIT),
        }
    }
}

/// The item statuses an item may move from to reach `to`: the bank's forward moves, plus
/// the explicit paths a person or the escalation takes (into and out of review, cancel).
pub fn item_froms(to: ItemStatus) -> Vec<ItemStatus> {
    let mut froms: Vec<ItemStatus> = ItemStatus::ALL
        .into_iter()
        .filter(|s| s.may_become(to))
        .collect();
    match to {
        ItemStatus::NeedsReview => froms.extend([ItemStatus::Pending, ItemStatus::Accepted]),
        ItemStatus::Pending | ItemStatus::Failed | ItemStatus::Accepted => {
            froms.push(ItemStatus::NeedsReview)
        }
        ItemStatus::Cancelled => froms.push(ItemStatus::Pending),
        ItemStatus::Settled | ItemStatus::Returned => {}
    }
    froms.sort();
    froms.dedup();
    froms
}

// ---------------------------------------------------------------------------------------
// Rows for binding

#[derive(Debug, Clone)]
pub(crate) struct BatchRow {
    pub id: String,
    pub client_id: String,
    pub debtor_account_id: String,
    pub currency: &'static str,
    pub kind: String,
    pub requested_execution_date: BusinessDate,
    pub item_count: i64,
    pub control_sum_minor: i64,
    pub chunk_count: i64,
    pub business_reference: String,
    pub chunk_status: String,
    pub cause: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub approvals_required: i64,
    pub on_behalf_of: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ChunkRow {
    pub chunk_no: i64,
    pub business_reference: String,
    pub item_count: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct ItemRow {
    pub item_no: i64,
    pub id: String,
    pub chunk_no: i64,
    pub business_reference: String,
    pub amount_minor: i64,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_bank_code: Option<String>,
    pub creditor_bic: Option<String>,
    pub creditor_bank_name: Option<String>,
    pub creditor_type: &'static str,
    pub remittance: String,
    pub purpose: Option<String>,
    pub end_to_end_id: Option<String>,
}

/// A history row of a batch (`chunk_no` None: the batch as a whole).
#[derive(Debug, Clone)]
pub(crate) struct BatchHistoryRow {
    pub batch_id: String,
    pub at: DateTime<Utc>,
    pub chunk_no: Option<i64>,
    pub from_status: Option<String>,
    pub to_status: String,
    pub cause: String,
    pub bank_code: Option<String>,
    pub bank_message: Option<String>,
    pub actor: String,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct CreateBatchRows {
    pub batch: BatchRow,
    pub chunks: Vec<ChunkRow>,
    pub items: Vec<ItemRow>,
    pub claim: IdempotencyClaim,
    pub audit: AuditRow,
}

pub(crate) fn create_batch_rows(
    new: NewBatch,
    claim: IdempotencyClaim,
    audit: NewAuditRecord,
) -> Result<CreateBatchRows, StoreError> {
    let audit = AuditRow::new(audit)?;
    if new.kind != "supplier" && new.kind != "payroll" {
        return Err(invalid(format!(
            "batch kind {:?} is neither supplier nor payroll",
            new.kind.chars().take(32).collect::<String>()
        )));
    }
    check_status("batch chunk status", &new.chunk_status)?;
    refuse_nul("batch cause", Some(&new.cause))?;
    refuse_nul("batch on_behalf_of", new.on_behalf_of.as_deref())?;
    if new.approvals_required > crate::APPROVALS_REQUIRED_MAX {
        return Err(invalid(format!(
            "a batch needs at most {} approvals, not {}",
            crate::APPROVALS_REQUIRED_MAX,
            new.approvals_required
        )));
    }
    if (new.approvals_required > 0) != (new.chunk_status == PaymentStatus::PendingApproval.as_str())
    {
        return Err(invalid(
            "a batch waits in pending_approval exactly when it needs approvals".to_owned(),
        ));
    }
    refuse_nul("batch client id", Some(&new.client_id))?;
    check_date(
        "batch requested execution date",
        new.requested_execution_date,
    )?;
    check_claim(&claim, audit.at)?;
    if claim.client_id != new.client_id {
        return Err(invalid(
            "the idempotency key belongs to another client than the batch".to_owned(),
        ));
    }
    if new.items.is_empty() || new.items.len() > BATCH_ITEMS_MAX {
        return Err(invalid(format!(
            "a batch takes 1 to {BATCH_ITEMS_MAX} items, not {}",
            new.items.len()
        )));
    }
    if new.chunks.is_empty() {
        return Err(invalid("a batch needs at least one chunk".to_owned()));
    }
    for (index, chunk) in new.chunks.iter().enumerate() {
        if chunk.chunk_no != i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1) {
            return Err(invalid(format!(
                "batch chunks must be numbered 1, 2, … in order; chunk {} is at position {}",
                chunk.chunk_no,
                index + 1
            )));
        }
    }
    let currency = new.control_sum.currency();
    let mut per_chunk = vec![0i64; new.chunks.len()];
    let mut sum: i64 = 0;
    let mut items = Vec::with_capacity(new.items.len());
    for (index, item) in new.items.into_iter().enumerate() {
        let item_no = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
        if item.amount.currency() != currency {
            return Err(invalid(format!(
                "batch item {item_no} is in {}, the batch in {}",
                item.amount.currency().code(),
                currency.code()
            )));
        }
        if item.amount.minor() <= 0 {
            return Err(invalid(format!(
                "batch item {item_no}: the amount must be positive"
            )));
        }
        if item.creditor_bank_code.is_none() && item.creditor_bic.is_none() {
            return Err(invalid(format!(
                "batch item {item_no} needs the creditor's CNAPS bank code or BIC"
            )));
        }
        let slot = usize::try_from(item.chunk_no - 1)
            .ok()
            .and_then(|i| per_chunk.get_mut(i))
            .ok_or_else(|| {
                invalid(format!(
                    "batch item {item_no} names chunk {}, which the batch does not have",
                    item.chunk_no
                ))
            })?;
        *slot += 1;
        sum = sum
            .checked_add(item.amount.minor())
            .ok_or_else(|| invalid("the batch's items overflow its sum".to_owned()))?;
        for (what, text) in [
            ("creditor name", Some(item.creditor_name.as_str())),
            ("creditor account", Some(item.creditor_account.as_str())),
            ("creditor bank name", item.creditor_bank_name.as_deref()),
            ("remittance", Some(item.remittance.as_str())),
            ("purpose", item.purpose.as_deref()),
        ] {
            refuse_nul(&format!("batch item {item_no} {what}"), text)?;
        }
        items.push(ItemRow {
            item_no,
            id: item.id.as_str().to_owned(),
            chunk_no: item.chunk_no,
            business_reference: item.business_reference.as_str().to_owned(),
            amount_minor: item.amount.minor(),
            creditor_name: item.creditor_name,
            creditor_account: item.creditor_account,
            creditor_bank_code: item.creditor_bank_code.map(|c| c.as_str().to_owned()),
            creditor_bic: item.creditor_bic.map(|b| b.as_str().to_owned()),
            creditor_bank_name: item.creditor_bank_name,
            creditor_type: creditor_type_text(item.creditor_type),
            remittance: item.remittance,
            purpose: item.purpose,
            end_to_end_id: item.end_to_end_id.map(|e| e.as_str().to_owned()),
        });
    }
    if sum != new.control_sum.minor() {
        return Err(invalid(format!(
            "the batch's items sum to {} minor units, its control sum is {}",
            sum,
            new.control_sum.minor()
        )));
    }
    if let Some(empty) = per_chunk.iter().position(|n| *n == 0) {
        return Err(invalid(format!("batch chunk {} has no items", empty + 1)));
    }
    let chunks = new
        .chunks
        .into_iter()
        .zip(per_chunk)
        .map(|(c, n)| ChunkRow {
            chunk_no: c.chunk_no,
            business_reference: c.business_reference.as_str().to_owned(),
            item_count: n,
        })
        .collect::<Vec<_>>();
    Ok(CreateBatchRows {
        batch: BatchRow {
            id: new.id.as_str().to_owned(),
            client_id: new.client_id,
            debtor_account_id: new.debtor_account_id.as_str().to_owned(),
            currency: currency.code(),
            kind: new.kind,
            requested_execution_date: new.requested_execution_date,
            item_count: i64::try_from(items.len()).unwrap_or(i64::MAX),
            control_sum_minor: sum,
            chunk_count: i64::try_from(chunks.len()).unwrap_or(i64::MAX),
            business_reference: new.business_reference.as_str().to_owned(),
            chunk_status: new.chunk_status,
            cause: new.cause,
            next_attempt_at: new
                .next_attempt_at
                .map(|at| codec::instant(at, "batch next_attempt_at"))
                .transpose()?,
            approvals_required: i64::from(new.approvals_required),
            on_behalf_of: new.on_behalf_of,
        },
        chunks,
        items,
        claim: IdempotencyClaim {
            expires_at: codec::instant(claim.expires_at, "idempotency expires_at")?,
            ..claim
        },
        audit,
    })
}

/// A checked chunk transition.
#[derive(Debug, Clone)]
pub(crate) struct ChunkTransitionRows {
    pub batch_id: String,
    pub chunk_no: i64,
    pub guard: TransitionGuard,
    pub change: PaymentChange,
    pub items: ItemUpdate,
    pub actor: Actor,
    pub audit: AuditRow,
}

pub(crate) fn chunk_transition_rows(
    batch_id: &BatchId,
    chunk_no: i64,
    guard: TransitionGuard,
    change: PaymentChange,
    items: ItemUpdate,
    actor: Actor,
    audit: NewAuditRecord,
) -> Result<ChunkTransitionRows, StoreError> {
    check_status("chunk transition from", &guard.from_status)?;
    check_status("chunk transition to", &change.to_status)?;
    for (what, text) in [
        ("cause", Some(change.cause.as_str())),
        ("bank code", change.bank_code.as_deref()),
        ("bank message", change.bank_message.as_deref()),
        ("bank batch id", change.bank_payment_id.as_deref()),
        ("actor", Some(actor.name.as_str())),
        ("request id", actor.request_id.as_deref()),
    ] {
        refuse_nul(&format!("chunk transition {what}"), text)?;
    }
    if let ItemUpdate::Each(results) = &items {
        for r in results {
            refuse_nul("item reference", Some(&r.business_reference))?;
            refuse_nul("item bank code", r.bank_code.as_deref())?;
            refuse_nul("item bank message", r.bank_message.as_deref())?;
        }
    }
    let next_attempt_at = change
        .next_attempt_at
        .map(|at| codec::instant(at, "chunk next_attempt_at"))
        .transpose()?;
    Ok(ChunkTransitionRows {
        batch_id: batch_id.as_str().to_owned(),
        chunk_no,
        guard,
        change: PaymentChange {
            next_attempt_at,
            ..change
        },
        items,
        actor,
        audit: AuditRow::new(audit)?,
    })
}

// ---------------------------------------------------------------------------------------
// Reading back

pub(crate) const BATCH_COLUMNS: &str = "id, client_id, debtor_account_id, currency, kind, \
     requested_execution_date, item_count, control_sum_minor, business_reference, status, \
     event_seq, created_at, updated_at, approvals_required, on_behalf_of";

pub(crate) const CHUNK_COLUMNS: &str = "batch_id, chunk_no, business_reference, item_count, \
     status, ever_sent, first_sent_at, last_sent_at, send_attempts, bank_batch_id, \
     last_bank_code, last_bank_message, next_attempt_at, lease_owner, lease_expires_at, \
     fencing_token, updated_at";

pub(crate) const ITEM_COLUMNS: &str = "id, item_no, chunk_no, business_reference, \
     amount_minor, creditor_name, creditor_account, creditor_bank_code, creditor_bic, \
     creditor_bank_name, creditor_type, remittance, purpose, end_to_end_id, status, \
     bank_code, bank_message, updated_at";

pub(crate) struct BatchColumns {
    pub id: String,
    pub client_id: String,
    pub debtor_account_id: String,
    pub currency: String,
    pub kind: String,
    pub requested_execution_date: BusinessDate,
    pub item_count: i64,
    pub control_sum_minor: i64,
    pub business_reference: String,
    pub status: String,
    pub event_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub approvals_required: i64,
    pub on_behalf_of: Option<String>,
}

impl BatchColumns {
    pub(crate) fn into_domain(self) -> Result<StoredBatch, StoreError> {
        const T: &str = BATCHES_TABLE;
        let currency = currency_from_text(&self.currency, T)?;
        Ok(StoredBatch {
            id: BatchId::parse(&self.id)
                .map_err(|e| corrupt(T, "id", format!("not a batch id ({e})")))?,
            client_id: self.client_id,
            debtor_account_id: AccountId::parse(&self.debtor_account_id)
                .map_err(|e| corrupt(T, "debtor_account_id", e.to_string()))?,
            kind: self.kind,
            requested_execution_date: self.requested_execution_date,
            business_reference: BankReference::parse(&self.business_reference)
                .map_err(|e| corrupt(T, "business_reference", e.to_string()))?,
            item_count: self.item_count,
            control_sum: Money::from_minor(self.control_sum_minor, currency),
            status: BatchStatus::parse(&self.status)
                .map_err(|e| corrupt(T, "status", e.to_string()))?
                .as_str()
                .to_owned(),
            event_seq: self.event_seq,
            created_at: self.created_at,
            updated_at: self.updated_at,
            approvals_required: u8::try_from(self.approvals_required)
                .ok()
                .filter(|n| *n <= crate::APPROVALS_REQUIRED_MAX)
                .ok_or_else(|| corrupt(T, "approvals_required", "out of range".to_owned()))?,
            on_behalf_of: self.on_behalf_of,
            chunks: Vec::new(),
            item_counts: Vec::new(),
        })
    }
}

pub(crate) struct ChunkColumns {
    pub batch_id: String,
    pub chunk_no: i64,
    pub business_reference: String,
    pub item_count: i64,
    pub status: String,
    pub ever_sent: bool,
    pub first_sent_at: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub send_attempts: i64,
    pub bank_batch_id: Option<String>,
    pub last_bank_code: Option<String>,
    pub last_bank_message: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub fencing_token: i64,
    pub updated_at: DateTime<Utc>,
}

impl ChunkColumns {
    pub(crate) fn into_domain(self) -> Result<StoredChunk, StoreError> {
        const T: &str = CHUNKS_TABLE;
        check_status("stored chunk status", &self.status)
            .map_err(|_| corrupt(T, "status", "not a payment status".to_owned()))?;
        Ok(StoredChunk {
            batch_id: BatchId::parse(&self.batch_id)
                .map_err(|e| corrupt(T, "batch_id", e.to_string()))?,
            chunk_no: self.chunk_no,
            business_reference: BankReference::parse(&self.business_reference)
                .map_err(|e| corrupt(T, "business_reference", e.to_string()))?,
            item_count: self.item_count,
            status: self.status,
            ever_sent: self.ever_sent,
            first_sent_at: self.first_sent_at,
            last_sent_at: self.last_sent_at,
            send_attempts: self.send_attempts,
            bank_batch_id: self.bank_batch_id,
            last_bank_code: self.last_bank_code,
            last_bank_message: self.last_bank_message,
            next_attempt_at: self.next_attempt_at,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            fencing_token: self.fencing_token,
            updated_at: self.updated_at,
        })
    }
}

pub(crate) struct ItemColumns {
    pub id: String,
    pub item_no: i64,
    pub chunk_no: i64,
    pub business_reference: String,
    pub amount_minor: i64,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_bank_code: Option<String>,
    pub creditor_bic: Option<String>,
    pub creditor_bank_name: Option<String>,
    pub creditor_type: String,
    pub remittance: String,
    pub purpose: Option<String>,
    pub end_to_end_id: Option<String>,
    pub status: String,
    pub bank_code: Option<String>,
    pub bank_message: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl ItemColumns {
    pub(crate) fn into_domain(
        self,
        currency: domain::Currency,
    ) -> Result<StoredBatchItem, StoreError> {
        const T: &str = ITEMS_TABLE;
        let creditor_type = match self.creditor_type.as_str() {
            "corporate" => CreditorType::Corporate,
            "personal" => CreditorType::Personal,
            _ => {
                return Err(corrupt(
                    T,
                    "creditor_type",
                    "unknown creditor type".to_owned(),
                ))
            }
        };
        Ok(StoredBatchItem {
            id: BatchItemId::parse(&self.id).map_err(|e| corrupt(T, "id", e.to_string()))?,
            item_no: self.item_no,
            chunk_no: self.chunk_no,
            business_reference: BankReference::parse(&self.business_reference)
                .map_err(|e| corrupt(T, "business_reference", e.to_string()))?,
            amount: Money::from_minor(self.amount_minor, currency),
            creditor_name: self.creditor_name,
            creditor_account: self.creditor_account,
            creditor_bank_code: self.creditor_bank_code,
            creditor_bic: self.creditor_bic,
            creditor_bank_name: self.creditor_bank_name,
            creditor_type,
            remittance: self.remittance,
            purpose: self.purpose,
            end_to_end_id: self.end_to_end_id,
            status: ItemStatus::parse(&self.status)
                .map_err(|e| corrupt(T, "status", e.to_string()))?,
            bank_code: self.bank_code,
            bank_message: self.bank_message,
            updated_at: self.updated_at,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The algorithms

/// The statements the batch writes need from a backend, all inside one transaction. The
/// idempotency key, event and audit statements are the payment ones ([`PaymentTx`]).
#[async_trait]
pub(crate) trait BatchTx: PaymentTx {
    /// Inserts the key as `in_progress` unless (client, key) exists; true when inserted.
    /// PostgreSQL waits here for a concurrent transaction holding the same key, so the
    /// loser of a race sees the winner's committed row afterwards.
    async fn insert_key(
        &mut self,
        claim: &IdempotencyClaim,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    async fn complete_batch_key(
        &mut self,
        claim: &IdempotencyClaim,
        batch_id: &str,
    ) -> Result<(), StoreError>;
    /// Inserts the batch row (status `received`, event_seq 0) unless its id or business
    /// reference is taken; true when inserted.
    async fn insert_batch(&mut self, row: &BatchRow, at: DateTime<Utc>)
        -> Result<bool, StoreError>;
    async fn insert_chunks(
        &mut self,
        batch: &BatchRow,
        chunks: &[ChunkRow],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn insert_items(
        &mut self,
        batch_id: &str,
        items: &[ItemRow],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Appends a history row with the batch's next seq.
    async fn insert_batch_history(&mut self, row: &BatchHistoryRow) -> Result<(), StoreError>;
    /// The batch header (no chunks, no counts).
    async fn batch_header(&mut self, batch_id: &str) -> Result<Option<StoredBatch>, StoreError>;
    async fn chunks_of(&mut self, batch_id: &str) -> Result<Vec<StoredChunk>, StoreError>;
    /// (status, count) of the batch's items.
    async fn item_counts(&mut self, batch_id: &str) -> Result<Vec<(String, i64)>, StoreError>;
    /// The compare-and-set chunk update; true when the guard held.
    async fn update_chunk(&mut self, t: &ChunkTransitionRows) -> Result<bool, StoreError>;
    async fn chunk_current(
        &mut self,
        batch_id: &str,
        chunk_no: i64,
    ) -> Result<Option<Current>, StoreError>;
    /// Moves the items of the chunk (all of them: `reference` None) that are in one of
    /// `froms` to `to`; returns how many moved.
    #[allow(clippy::too_many_arguments)]
    async fn update_items(
        &mut self,
        batch_id: &str,
        chunk_no: Option<i64>,
        reference: Option<&str>,
        froms: &[ItemStatus],
        to: ItemStatus,
        bank_code: Option<&str>,
        bank_message: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    async fn set_batch_status(
        &mut self,
        batch_id: &str,
        status: &str,
        event_seq: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Serialises writers of one batch (PostgreSQL: the batch row `FOR UPDATE`; SQLite: the
    /// single writer already does).
    async fn lock_batch(&mut self, batch_id: &str) -> Result<(), StoreError>;
    /// Locks the batch's chunks for a cancel (PostgreSQL: `FOR UPDATE`; SQLite: the writer).
    async fn lock_chunks(&mut self, batch_id: &str) -> Result<Vec<StoredChunk>, StoreError>;
    /// Cancels every chunk of the batch: status, no lease, nothing due.
    async fn cancel_chunks(&mut self, batch_id: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
}

/// The full batch as stored: header, chunks and item counts.
pub(crate) async fn fetch_full(
    tx: &mut dyn BatchTx,
    batch_id: &str,
) -> Result<Option<StoredBatch>, StoreError> {
    let Some(mut batch) = tx.batch_header(batch_id).await? else {
        return Ok(None);
    };
    batch.chunks = tx.chunks_of(batch_id).await?;
    batch.item_counts = tx.item_counts(batch_id).await?;
    Ok(Some(batch))
}

fn counts_of(batch: &StoredBatch) -> Result<BatchCounts, StoreError> {
    let mut counts = BatchCounts::default();
    for chunk in &batch.chunks {
        let status = PaymentStatus::parse(&chunk.status)
            .map_err(|e| corrupt(CHUNKS_TABLE, "status", e.to_string()))?;
        counts.chunks.push((status, 1));
    }
    for (status, n) in &batch.item_counts {
        let status =
            ItemStatus::parse(status).map_err(|e| corrupt(ITEMS_TABLE, "status", e.to_string()))?;
        counts
            .items
            .push((status, u32::try_from(*n).unwrap_or(u32::MAX)));
    }
    Ok(counts)
}

fn summary(batch: &StoredBatch) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = batch
        .item_counts
        .iter()
        .map(|(s, n)| (s.clone(), json!(n)))
        .collect();
    json!({
        "batch_id": batch.id.as_str(),
        "kind": batch.kind,
        "debtor_account_id": batch.debtor_account_id.as_str(),
        "currency": batch.control_sum.currency().code(),
        "control_sum": batch.control_sum.to_decimal_string(),
        "count": batch.item_count,
        "business_reference": batch.business_reference.as_str(),
        "client_id": batch.client_id,
        "items_by_status": counts,
    })
}

/// Re-derives the batch's status after a change and, when it moved, stores it and writes
/// its events (status changed; completed when every item is final). Returns the batch as
/// it now stands.
pub(crate) async fn settle_status(
    tx: &mut dyn BatchTx,
    batch_id: &str,
    at: DateTime<Utc>,
) -> Result<StoredBatch, StoreError> {
    let mut batch = fetch_full(tx, batch_id)
        .await?
        .ok_or_else(|| corrupt(BATCHES_TABLE, "id", format!("batch {batch_id} vanished")))?;
    let stored = BatchStatus::parse(&batch.status)
        .map_err(|e| corrupt(BATCHES_TABLE, "status", e.to_string()))?;
    let waiting = match stored {
        BatchStatus::PendingApproval => BatchStatus::PendingApproval,
        _ => BatchStatus::Received,
    };
    let next = aggregate_batch_status(&counts_of(&batch)?, waiting);
    if next == stored {
        return Ok(batch);
    }
    let mut seq = batch.event_seq;
    let account = batch.debtor_account_id.as_str().to_owned();
    let mut data = summary(&batch);
    data["status"] = json!(next.as_str());
    data["previous_status"] = json!(stored.as_str());
    seq += 1;
    tx.insert_event(&batch_event(
        EventType::PaymentBatchStatusChanged,
        batch_id,
        seq,
        &account,
        at,
        data.clone(),
    )?)
    .await?;
    if matches!(next, BatchStatus::Completed | BatchStatus::Failed) {
        seq += 1;
        tx.insert_event(&batch_event(
            EventType::PaymentBatchCompleted,
            batch_id,
            seq,
            &account,
            at,
            data,
        )?)
        .await?;
    }
    tx.set_batch_status(batch_id, next.as_str(), seq, at)
        .await?;
    batch.status = next.as_str().to_owned();
    batch.event_seq = seq;
    batch.updated_at = at;
    Ok(batch)
}

/// `Store::create_batch`.
pub(crate) async fn create(
    tx: &mut dyn BatchTx,
    rows: &CreateBatchRows,
) -> Result<CreateBatchOutcome, StoreError> {
    let at = rows.audit.at;
    let claim = &rows.claim;
    if !tx.insert_key(claim, at).await? {
        let found =
            tx.find_key(&claim.client_id, &claim.key)
                .await?
                .ok_or(StoreError::Contention {
                    what: "an idempotency key purged during its own use",
                })?;
        return Ok(match replay_of(found, &claim.request_hash)? {
            CreateOutcome::Replay { status, body, .. } => {
                CreateBatchOutcome::Replay { status, body }
            }
            CreateOutcome::InProgress => CreateBatchOutcome::InProgress,
            _ => CreateBatchOutcome::KeyReused,
        });
    }
    let b = &rows.batch;
    if !tx.insert_batch(b, at).await? {
        return Err(invalid(
            "the batch id or business reference is already taken".to_owned(),
        ));
    }
    tx.insert_chunks(b, &rows.chunks, at).await?;
    tx.insert_items(&b.id, &rows.items, at).await?;
    tx.insert_batch_history(&BatchHistoryRow {
        batch_id: b.id.clone(),
        at,
        chunk_no: None,
        from_status: None,
        to_status: b.chunk_status.clone(),
        cause: b.cause.clone(),
        bank_code: None,
        bank_message: None,
        actor: rows.audit.actor.clone(),
        request_id: rows.audit.request_id.clone(),
    })
    .await?;
    // The batch as it now stands (the key and the audit record below do not change it).
    let stored = settle_status(tx, &b.id, at).await?;
    tx.complete_batch_key(claim, &b.id).await?;
    tx.insert_audit(&rows.audit).await?;
    Ok(CreateBatchOutcome::Created(Box::new(stored)))
}

/// `Store::transition_chunk`.
pub(crate) async fn transition_chunk(
    tx: &mut dyn BatchTx,
    t: &ChunkTransitionRows,
) -> Result<StoredBatch, StoreError> {
    tx.lock_batch(&t.batch_id).await?;
    if !tx.update_chunk(t).await? {
        return Err(match tx.chunk_current(&t.batch_id, t.chunk_no).await? {
            None => StoreError::NotFound {
                what: "batch chunk",
                id: format!("{}#{}", t.batch_id, t.chunk_no),
            },
            Some(current) => StoreError::Conflict {
                payment_id: format!("{}#{}", t.batch_id, t.chunk_no),
                status: current.status,
                fencing_token: current.fencing_token,
            },
        });
    }
    let at = t.audit.at;
    match &t.items {
        ItemUpdate::None => {}
        ItemUpdate::AllOpen {
            status,
            bank_code,
            bank_message,
        } => {
            tx.update_items(
                &t.batch_id,
                Some(t.chunk_no),
                None,
                &item_froms(*status),
                *status,
                bank_code.as_deref(),
                bank_message.as_deref(),
                at,
            )
            .await?;
        }
        ItemUpdate::Each(results) => {
            for r in results {
                tx.update_items(
                    &t.batch_id,
                    Some(t.chunk_no),
                    Some(&r.business_reference),
                    &item_froms(r.status),
                    r.status,
                    r.bank_code.as_deref(),
                    r.bank_message.as_deref(),
                    at,
                )
                .await?;
            }
        }
    }
    if t.guard.from_status != t.change.to_status {
        tx.insert_batch_history(&BatchHistoryRow {
            batch_id: t.batch_id.clone(),
            at,
            chunk_no: Some(t.chunk_no),
            from_status: Some(t.guard.from_status.clone()),
            to_status: t.change.to_status.clone(),
            cause: t.change.cause.clone(),
            bank_code: t.change.bank_code.clone(),
            bank_message: t.change.bank_message.clone(),
            actor: t.actor.name.clone(),
            request_id: t.actor.request_id.clone(),
        })
        .await?;
    }
    let batch = settle_status(tx, &t.batch_id, at).await?;
    tx.insert_audit(&t.audit).await?;
    Ok(batch)
}

/// `Store::cancel_batch`.
pub(crate) async fn cancel(
    tx: &mut dyn BatchTx,
    batch_id: &str,
    actor: &Actor,
    audit: &AuditRow,
) -> Result<CancelBatchOutcome, StoreError> {
    tx.lock_batch(batch_id).await?;
    let Some(header) = tx.batch_header(batch_id).await? else {
        return Err(StoreError::NotFound {
            what: "batch",
            id: batch_id.to_owned(),
        });
    };
    let chunks = tx.lock_chunks(batch_id).await?;
    let cancellable = chunks.iter().all(|c| {
        !c.ever_sent
            && matches!(
                c.status.as_str(),
                "received" | "pending_approval" | "approved" | "queued"
            )
    });
    if !cancellable {
        return Ok(CancelBatchOutcome::NotCancellable {
            status: header.status,
        });
    }
    let at = audit.at;
    tx.cancel_chunks(batch_id, at).await?;
    tx.update_items(
        batch_id,
        None,
        None,
        &item_froms(ItemStatus::Cancelled),
        ItemStatus::Cancelled,
        None,
        None,
        at,
    )
    .await?;
    tx.insert_batch_history(&BatchHistoryRow {
        batch_id: batch_id.to_owned(),
        at,
        chunk_no: None,
        from_status: Some(header.status.clone()),
        to_status: "cancelled".to_owned(),
        cause: "cancelled_by_client".to_owned(),
        bank_code: None,
        bank_message: None,
        actor: actor.name.clone(),
        request_id: actor.request_id.clone(),
    })
    .await?;
    let batch = settle_status(tx, batch_id, at).await?;
    tx.insert_audit(audit).await?;
    Ok(CancelBatchOutcome::Cancelled(Box::new(batch)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_move_forward_and_along_the_explicit_paths_only() {
        assert_eq!(
            item_froms(ItemStatus::Settled),
            vec![ItemStatus::Pending, ItemStatus::Accepted]
        );
        assert_eq!(
            item_froms(ItemStatus::Returned),
            vec![
                ItemStatus::Pending,
                ItemStatus::Accepted,
                ItemStatus::Settled
            ]
        );
        assert_eq!(
            item_froms(ItemStatus::NeedsReview),
            vec![ItemStatus::Pending, ItemStatus::Accepted]
        );
        assert_eq!(item_froms(ItemStatus::Cancelled), vec![ItemStatus::Pending]);
        assert!(item_froms(ItemStatus::Pending).contains(&ItemStatus::NeedsReview));
        assert!(!item_froms(ItemStatus::Accepted).contains(&ItemStatus::Settled));
    }
}
