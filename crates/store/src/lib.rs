//! Persistence for bankdirect: the only crate that knows SQL.
//!
//! Two backends sit behind one object-safe [`Store`] trait:
//!
//! - [`SqliteStore`] (`sqlite.rs`, writer in `sqlite/writer.rs`): the embedded default, one
//!   file in WAL mode with `synchronous=FULL`. All writes go through ONE writer task that owns
//!   ONE connection and commits queued writes together (group commit: many callers share one
//!   fsync); reads use a separate pool of read-only connections.
//! - [`PgStore`] (`postgres.rs`): PostgreSQL for several gateway instances sharing one
//!   database; each write is one transaction on a pooled connection.
//!
//! [`open`] picks the backend from a URL. The other modules:
//!
//! - `model.rs`: the records that cross the boundary ([`NewAuditRecord`], [`AuditRecord`],
//!   [`AuditQuery`], [`BalanceSnapshot`], [`IngestEntry`], [`StoredEntry`], [`EntryQuery`],
//!   [`ContinuityBreak`], [`SyncState`]…), [`StoreOptions`] and the size limits.
//! - `statements.rs`: what both backends share for statements: the checks the schema cannot
//!   express, the row mapping, and the ingest algorithm (dedupe, pending → booked) written
//!   once against a small trait each backend implements with its SQL
//!   (`sqlite/statements.rs`, `postgres/statements.rs`).
//! - `payments.rs`: payments, their history and idempotency keys: the records
//!   ([`NewPayment`], [`StoredPayment`], [`CreateOutcome`]…), the checks, and the create and
//!   compare-and-set transition algorithms written once against a trait each backend
//!   implements (`sqlite/payments.rs`, `postgres/payments.rs`, which also hold the
//!   work-queue claim: `FOR UPDATE SKIP LOCKED` there, the single writer here).
//! - `webhooks.rs`: webhooks, their deliveries and attempts (fan-out from the outbox,
//!   per-object ordered claims, re-drive); SQL in `sqlite/webhooks.rs` and
//!   `postgres/webhooks.rs`.
//! - `codec.rs`: the mapping between domain values and column values that both backends share
//!   (instants truncated to microseconds, JSON details, money as minor units + currency code).
//! - `error.rs`: [`StoreError`].
//!
//! Schemas live in `migrations/sqlite` and `migrations/postgres`, one folder per database,
//! embedded at build time. Limits that the schema enforces (field lengths) are also exported
//! here as constants so callers can check early; the suite tests both agree.
//!
//! Invariants: money is an integer count of minor units beside its currency code, never a
//! float; instants are UTC with microsecond precision on both backends; audit ids and the
//! statement counters (`seq`, `change_seq`) ascend in commit order; an entry's `seq` never
//! changes; a write reported as done has been committed (SQLite: after the batch's
//! `COMMIT` returned).

mod approvals;
pub mod audit;
mod batches;
mod codec;
mod error;
mod events;
mod exchanges;
pub mod failpoints;
mod model;
mod payments;
mod postgres;
mod resolutions;
mod sqlite;
mod statements;
mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use approvals::{
    ApprovalDecision, ApprovalObject, BatchDecisionOutcome, Decision, DecisionOutcome,
    DECISION_COMMENT_MAX_CHARS,
};
pub use batches::{
    item_froms, BatchCursor, BatchQuery, CancelBatchOutcome, ClaimedChunk, CreateBatchOutcome,
    ItemResult, ItemUpdate, NewBatch, NewBatchChunk, NewBatchItem, StoredBatch, StoredBatchItem,
    StoredChunk, BATCH_ITEMS_MAX, BATCH_ITEMS_PAGE_MAX, BATCH_QUERY_MAX_LIMIT,
};
pub use error::StoreError;
pub use resolutions::{
    ProposalOutcome, ResolutionObject, ResolutionProposal, RESOLUTION_REASON_MAX_CHARS,
};

/// Most decisions `approval_decisions` returns: more people than any rule can ask for.
pub const APPROVAL_DECISIONS_MAX: i64 = 256;
pub use events::{EventQuery, EventType, StoredEvent, EVENT_DATA_MAX_BYTES, EVENT_QUERY_MAX_LIMIT};
pub use exchanges::{
    NewBankExchange, StoredBankExchange, BANK_EXCHANGE_BODY_MAX_BYTES,
    BANK_EXCHANGE_CODE_MAX_CHARS, BANK_EXCHANGE_LIST_MAX, BANK_EXCHANGE_REFERENCES_MAX,
    BANK_EXCHANGE_TEXT_MAX_CHARS,
};
pub use model::{
    AuditQuery, AuditRecord, BalanceSnapshot, ContinuityBreak, EntryQuery, IngestEntry,
    IngestReport, NewAuditRecord, StoreOptions, StoredEntry, SyncState, ACCOUNT_ID_MAX_CHARS,
    AUDIT_DETAILS_MAX_BYTES, AUDIT_QUERY_DEFAULT_LIMIT, AUDIT_QUERY_MAX_LIMIT,
    AUDIT_TEXT_MAX_CHARS, BALANCES_MAX_ROWS, BOOKED_ENTRIES_PER_DAY_MAX, CHANGE_FEED_MAX_ACCOUNTS,
    CONTINUITY_BREAKS_MAX_ROWS, ENTRY_KEY_MAX_CHARS, ENTRY_QUERY_DEFAULT_LIMIT,
    ENTRY_QUERY_MAX_LIMIT, INGEST_ENTRIES_MAX, SNAPSHOTS_PER_SAVE_MAX, SYNC_ERROR_MAX_CHARS,
};
pub use payments::{
    Actor, ClaimedPayment, CreateOutcome, IdempotencyClaim, IdempotencyRecord, InitialStep,
    NewPayment, PaymentChange, PaymentCursor, PaymentHistoryEntry, PaymentInstruction,
    PaymentQuery, PaymentStep, StoredPayment, TransitionGuard, APPROVALS_REQUIRED_MAX,
    CLAIM_MAX_LIMIT, IDEMPOTENCY_RESPONSE_MAX_BYTES, IDEMPOTENCY_RETENTION_MIN_S,
    INITIAL_STEPS_MAX, LEASE_DURATION_MAX_MS, PAYMENT_HISTORY_MAX_ROWS,
    PAYMENT_QUERY_DEFAULT_LIMIT, PAYMENT_QUERY_MAX_ACCOUNTS, PAYMENT_QUERY_MAX_LIMIT,
    PAYMENT_STATUSES, TRANSITION_STEPS_MAX,
};
pub use postgres::PgStore;
pub use sqlite::{SqliteStore, WriterPragmas, WriterStats};
pub use webhooks::{
    AttemptOutcome, ClaimedDelivery, DeliveryAttempt, DeliveryQuery, DeliveryState, FanOutReport,
    NewAttempt, NewWebhook, StoredDelivery, StoredWebhook, WebhookCreateOutcome,
    DELIVERY_CLAIM_MAX_LIMIT, FAN_OUT_MAX_EVENTS, WEBHOOKS_PER_CLIENT_MAX,
    WEBHOOK_ATTEMPTS_LISTED_MAX, WEBHOOK_ERROR_MAX_CHARS, WEBHOOK_EVENT_TYPES_MAX,
    WEBHOOK_QUERY_MAX_LIMIT, WEBHOOK_SECRET_MAX_CHARS, WEBHOOK_SECRET_MIN_CHARS,
    WEBHOOK_STORED_SECRET_MAX_CHARS, WEBHOOK_URL_MAX_CHARS,
};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// The persistence boundary. Object-safe so the gateway holds an `Arc<dyn Store>` and does
/// not care which database is behind it.
///
/// Every write either commits completely or not at all. A returned `Ok` means committed; an
/// error says whether nothing was written or the outcome is unknown
/// ([`StoreError::OutcomeUnknown`], [`StoreError::WriterLost`]). Dropping a write's future
/// after it was queued does not cancel it.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    fn backend(&self) -> Backend;

    /// Applies the pending migrations of this backend's folder. Idempotent. The first run
    /// also creates the install id.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// A trivial read on the read side: proves a read connection can be had.
    async fn ping(&self) -> Result<(), StoreError>;

    /// A random identifier (16 lowercase hex digits) created by the first migration and
    /// stable afterwards; business references are built from it so they stay unique across
    /// installs.
    async fn install_id(&self) -> Result<String, StoreError>;

    /// Appends one audit record and returns its id. `details` is written exactly as given:
    /// masking secrets and account numbers is the caller's duty.
    async fn append_audit(&self, rec: NewAuditRecord) -> Result<i64, StoreError>;

    /// The audit chain (`audit.rs`): links records committed since the last run (PostgreSQL,
    /// as the one chainer holding the advisory lock; SQLite links inside the writer, so
    /// this only catches up and) signs a checkpoint when one is due. Run it every
    /// `chain_interval_ms`; a run that finds another instance chaining is `skipped`.
    async fn audit_chain_tick(&self) -> Result<audit::ChainTick, StoreError>;

    /// Linked records with `position > after_position`, ascending, at most `min(limit,
    /// CHAIN_PAGE_MAX)`, with their stored hashes and fields as stored (for verification).
    async fn audit_chain_page(
        &self,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<audit::ChainedRecord>, StoreError>;

    /// The highest linked position (0: none).
    async fn audit_chain_length(&self) -> Result<i64, StoreError>;

    /// How many records are not linked yet, and the smallest such id.
    async fn audit_unlinked(&self) -> Result<audit::UnlinkedSummary, StoreError>;

    /// Checkpoints with `position > after_position`, ascending, at most `min(limit,
    /// CHAIN_PAGE_MAX)`.
    async fn audit_checkpoints(
        &self,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<audit::AuditCheckpoint>, StoreError>;

    /// The checkpoint with the highest position, if any.
    async fn latest_audit_checkpoint(&self) -> Result<Option<audit::AuditCheckpoint>, StoreError>;

    /// Audit records matching every given filter, ascending by id, at most
    /// `min(q.limit, AUDIT_QUERY_MAX_LIMIT)` of them.
    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// In ONE transaction: upserts the latest snapshot per (account, currency) and appends
    /// `audit`; both or neither. A snapshot older than the stored one (by `as_of`, then
    /// `fetched_at`) leaves the stored one in place, so a late, out-of-order refresh cannot
    /// move a balance backwards; the audit record is written either way.
    async fn save_balances(
        &self,
        snapshots: &[BalanceSnapshot],
        audit: NewAuditRecord,
    ) -> Result<(), StoreError>;

    /// Every stored snapshot, ordered by account id then currency code (byte order).
    async fn latest_balances(&self) -> Result<Vec<BalanceSnapshot>, StoreError>;

    /// The stored snapshots of one account, ordered by currency code.
    async fn latest_balances_for(
        &self,
        account_id: &domain::AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError>;

    /// In ONE transaction with `audit`: offers `entries` (all of `account_id`) for storage,
    /// in order. For each: if the account already has its `dedupe_key`, it is unchanged —
    /// unless the stored one is pending and this one booked, which books the stored entry
    /// (status, booking and value dates, running balance; id, seq and dedupe key kept).
    /// Else a booked entry whose `pending_match_key` matches a stored PENDING entry of the
    /// account books that entry (the oldest, if several), which keeps its id and `seq` and
    /// takes this dedupe key; a pending entry whose `pending_match_key` any stored entry of
    /// the account has is unchanged. Else it is inserted with its own id. Inserts draw a new
    /// `seq`; inserts and bookings draw a new `change_seq`; both ascend in commit order.
    /// `ingested_at`/`updated_at` are `audit.at`. Nothing of the call is stored if any
    /// entry is refused.
    async fn ingest_entries(
        &self,
        account_id: &domain::AccountId,
        entries: Vec<IngestEntry>,
        audit: NewAuditRecord,
    ) -> Result<IngestReport, StoreError>;

    /// Entries of `q.account_id` with `seq > q.after_seq` matching the filters, ascending by
    /// `seq`, at most `min(q.limit, ENTRY_QUERY_MAX_LIMIT)` (0: the default).
    async fn list_entries(&self, q: &EntryQuery) -> Result<Vec<StoredEntry>, StoreError>;

    /// The change feed: entries of any of `account_ids` with `change_seq >
    /// after_change_seq`, ascending by `change_seq`, at most `min(limit,
    /// ENTRY_QUERY_MAX_LIMIT)` (0: the default). A reader that passes the last `change_seq`
    /// it saw misses nothing: values appear in commit order. At most
    /// [`CHANGE_FEED_MAX_ACCOUNTS`] accounts; none gives an empty feed.
    async fn entries_changed_since(
        &self,
        account_ids: &[domain::AccountId],
        after_change_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// Every booked entry of the account with this booking date, ascending by `seq`, for the
    /// continuity check; more than [`BOOKED_ENTRIES_PER_DAY_MAX`] is an error.
    async fn booked_entries_on(
        &self,
        account_id: &domain::AccountId,
        date: domain::BusinessDate,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// Stores the continuity result of one account and day: `Some` records (or updates) the
    /// break, keeping the `detected_at` of a break already stored for the day; `None` says
    /// the day is consistent now and clears a stored break. The break must be for this
    /// account and day, in one currency, with a non-zero gap that adds up.
    async fn record_continuity(
        &self,
        account_id: &domain::AccountId,
        date: domain::BusinessDate,
        result: Option<ContinuityBreak>,
    ) -> Result<(), StoreError>;

    /// The current (unresolved) breaks of the account with dates in `from..=to` (either
    /// bound optional), ascending by date; more than [`CONTINUITY_BREAKS_MAX_ROWS`] is an
    /// error.
    async fn continuity_breaks(
        &self,
        account_id: &domain::AccountId,
        from: Option<domain::BusinessDate>,
        to: Option<domain::BusinessDate>,
    ) -> Result<Vec<ContinuityBreak>, StoreError>;

    /// The statement sync state of the account, if one was ever saved.
    async fn sync_state(
        &self,
        account_id: &domain::AccountId,
    ) -> Result<Option<SyncState>, StoreError>;

    /// Replaces the account's sync state with `state`.
    async fn save_sync_state(&self, state: &SyncState) -> Result<(), StoreError>;

    /// In ONE transaction: claims `idempotency` (per client), inserts the payment with one
    /// history row per step of `new.steps`, completes the key with the caller's response and
    /// appends `audit`; `created_at`/`updated_at` and the history times are `audit.at`, the
    /// history actor and request id are the audit's. A key already stored gives
    /// [`CreateOutcome::Replay`] (same request hash, completed), [`CreateOutcome::KeyReused`]
    /// (another hash) or [`CreateOutcome::InProgress`], and writes nothing; an end-to-end id
    /// the debtor account already used gives [`CreateOutcome::DuplicateEndToEndId`] and
    /// writes nothing either. Concurrent creates with one key make one payment.
    async fn create_payment(
        &self,
        new: NewPayment,
        idempotency: IdempotencyClaim,
        audit: NewAuditRecord,
    ) -> Result<CreateOutcome, StoreError>;

    async fn get_payment(
        &self,
        id: &domain::PaymentId,
    ) -> Result<Option<StoredPayment>, StoreError>;

    /// In ONE transaction (the payment row locked first): stores `decision` (a payment
    /// decision: `decision.object` is [`ApprovalObject::Payment`]) unless its person decided
    /// on the payment before ([`DecisionOutcome::AlreadyDecided`]) or the payment is not in
    /// `pending_approval` ([`DecisionOutcome::NotPending`]); a decline moves it to
    /// `declined`; the approval that reaches its `approvals_required` moves it through
    /// `approved` to `queued` (due at `decision.at`). `audit` is appended with it; nothing
    /// is written on any other outcome.
    async fn decide_payment(
        &self,
        decision: ApprovalDecision,
        audit: NewAuditRecord,
    ) -> Result<DecisionOutcome, StoreError>;

    /// In ONE transaction (the batch locked first): stores `decision` (a batch decision:
    /// `decision.object` is [`ApprovalObject::Batch`]) unless its person decided on the
    /// batch before ([`BatchDecisionOutcome::AlreadyDecided`]) or the batch is not in
    /// `pending_approval` ([`BatchDecisionOutcome::NotPending`]). A decline moves every
    /// chunk to `declined` and every item to `cancelled`, and the batch to `declined`; the
    /// approval that reaches its `approvals_required` moves every chunk through `approved`
    /// to `queued` (due at `decision.at`). The batch's events and `audit` are written with
    /// it; nothing is written on any other outcome.
    async fn decide_batch(
        &self,
        decision: ApprovalDecision,
        audit: NewAuditRecord,
    ) -> Result<BatchDecisionOutcome, StoreError>;

    /// In ONE transaction: proposes a resolution of a payment or chunk in `needs_review`
    /// (docs/approvals.md, four eyes). With no open proposal for the object, or one with
    /// another decision or about another `snapshot`, `proposal` becomes the open one and
    /// `audit` is appended ([`ProposalOutcome::Stored`]); the same person proposing the same
    /// again writes nothing ([`ProposalOutcome::AlreadyProposed`]); another person proposing
    /// the same decision about the same snapshot removes the open proposal and returns it
    /// ([`ProposalOutcome::Confirmed`], `audit` not written): the caller then applies it.
    async fn propose_resolution(
        &self,
        proposal: ResolutionProposal,
        audit: NewAuditRecord,
    ) -> Result<ProposalOutcome, StoreError>;

    /// The open resolution proposal of the object, if any.
    async fn resolution_proposal(
        &self,
        object: ResolutionObject,
        id: &str,
    ) -> Result<Option<ResolutionProposal>, StoreError>;

    /// Every decision on the object, oldest first (at most [`APPROVAL_DECISIONS_MAX`]).
    async fn approval_decisions(
        &self,
        object: ApprovalObject,
        id: &str,
    ) -> Result<Vec<ApprovalDecision>, StoreError>;

    /// The stored record of an Idempotency-Key of a client, if any (expired
    /// ones included until purged). Lets the API answer a retry with what it
    /// answered the first time before it looks at the body again.
    async fn find_idempotency_key(
        &self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Payments matching every filter of `q`, ascending by (`created_at`, `id`), after
    /// `q.after`, at most `min(q.limit, PAYMENT_QUERY_MAX_LIMIT)` (0: the default).
    async fn list_payments(&self, q: &PaymentQuery) -> Result<Vec<StoredPayment>, StoreError>;

    /// The payment's history in `seq` order (empty for an unknown payment); more than
    /// [`PAYMENT_HISTORY_MAX_ROWS`] is an error.
    async fn payment_history(
        &self,
        id: &domain::PaymentId,
    ) -> Result<Vec<PaymentHistoryEntry>, StoreError>;

    /// Compare-and-set, in ONE transaction with its history row and `audit`: applies
    /// `change` only if the payment is in `expected.from_status` and, when
    /// `expected.fencing_token` is given, still carries that token. Otherwise
    /// [`StoreError::Conflict`] with what it found (or [`StoreError::NotFound`]) and nothing
    /// is written. Instants written are `audit.at`. The one-step case of
    /// [`Store::transition_payment_steps`].
    async fn transition_payment(
        &self,
        id: &domain::PaymentId,
        expected: TransitionGuard,
        change: PaymentChange,
        actor: Actor,
        audit: NewAuditRecord,
    ) -> Result<StoredPayment, StoreError> {
        let step = PaymentStep { change, audit };
        self.transition_payment_steps(id, expected, vec![step], actor)
            .await
    }

    /// Several compare-and-set changes of one payment in ONE transaction, as when a bank
    /// answers that a payment it just accepted is already settled: the first step is
    /// guarded by `expected`, each later one by the status the step before it left and the
    /// same fencing token. Each step writes its own history row, event and audit record,
    /// exactly as [`Store::transition_payment`] would; every step or none is stored. 1 to
    /// [`TRANSITION_STEPS_MAX`] steps, and only the last may release the lease
    /// ([`StoreError::Invalid`] otherwise). Returns the payment after the last step.
    async fn transition_payment_steps(
        &self,
        id: &domain::PaymentId,
        expected: TransitionGuard,
        steps: Vec<PaymentStep>,
        actor: Actor,
    ) -> Result<StoredPayment, StoreError>;

    /// The work queue: atomically leases up to `limit` (1..=[`CLAIM_MAX_LIMIT`]) payments in
    /// one of `statuses` with `next_attempt_at <= now` and no live lease (none, or expired
    /// before `now`), oldest due first, to `lease_owner` until `now + lease_duration_ms`
    /// (at most [`LEASE_DURATION_MAX_MS`]), each with a fencing token one above its last.
    /// Concurrent claimers never get the same payment. A claimed payment is due again when
    /// its lease ends (`next_attempt_at` = the lease's end): a holder that writes nothing
    /// back loses it to the next claim then, and a claim's scan of the due payments meets
    /// none that another holds (left due, they would sort first and every claim would walk
    /// past all of them). Returned in id order.
    async fn claim_due_payments(
        &self,
        statuses: &[&str],
        now: DateTime<Utc>,
        lease_owner: &str,
        lease_duration_ms: u64,
        limit: u32,
    ) -> Result<Vec<ClaimedPayment>, StoreError>;

    /// For the reaper: up to `limit` (1..=[`CLAIM_MAX_LIMIT`]) payments in `submitting`
    /// whose lease expired before `now` (or that hold none), oldest expiry first. Turn them
    /// into `unknown` with `transition_payment`, naming the fencing token read here.
    async fn expired_submitting(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StoredPayment>, StoreError>;

    /// Sets when the workers look at the payment next (`None`: not until
    /// something else changes it) and releases the lease, if the payment
    /// still carries `fencing_token`; else [`StoreError::Conflict`].
    async fn reschedule_payment(
        &self,
        id: &domain::PaymentId,
        fencing_token: i64,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;

    /// In ONE transaction: claims `idempotency`, inserts the batch with its chunks (in
    /// `new.chunk_status`, due at `new.next_attempt_at`) and items (`pending`), its first
    /// history row, its status (derived) and `payment_batch.status_changed` event, completes
    /// the key (pointing at the batch) and appends `audit`. A key already stored gives a
    /// replay, reuse or in-progress outcome and writes nothing. Items are numbered in the
    /// order given; their sum must equal `control_sum`; every chunk must have items.
    async fn create_batch(
        &self,
        new: NewBatch,
        idempotency: IdempotencyClaim,
        audit: NewAuditRecord,
    ) -> Result<CreateBatchOutcome, StoreError>;

    /// The batch with its chunks and item counts.
    async fn get_batch(&self, id: &domain::BatchId) -> Result<Option<StoredBatch>, StoreError>;

    /// Batch headers (no chunks, no counts) matching `q`, ascending by (`created_at`, `id`).
    async fn list_batches(&self, q: &BatchQuery) -> Result<Vec<StoredBatch>, StoreError>;

    /// Items of the batch (of one chunk when `chunk_no` is given) with `item_no >
    /// after_item_no`, ascending, at most `min(limit, BATCH_ITEMS_PAGE_MAX)` (0: the max).
    /// An unknown batch gives [`StoreError::NotFound`].
    async fn batch_items(
        &self,
        id: &domain::BatchId,
        chunk_no: Option<i64>,
        after_item_no: i64,
        limit: u32,
    ) -> Result<Vec<StoredBatchItem>, StoreError>;

    /// Compare-and-set on the chunk's (status, fencing token), in ONE transaction with the
    /// item updates, a history row (when the status changes), the batch's re-derived status
    /// and its events, and `audit`. `change.to_status` may equal the guard's status (an
    /// update of items and schedule only). Else [`StoreError::Conflict`], nothing written.
    #[allow(clippy::too_many_arguments)]
    async fn transition_chunk(
        &self,
        id: &domain::BatchId,
        chunk_no: i64,
        expected: TransitionGuard,
        change: PaymentChange,
        items: ItemUpdate,
        actor: Actor,
        audit: NewAuditRecord,
    ) -> Result<StoredBatch, StoreError>;

    /// The chunk work queue, like `claim_due_payments`: leases due chunks in one of
    /// `statuses`, each with a fencing token one above its last, with its batch's header.
    async fn claim_due_chunks(
        &self,
        statuses: &[&str],
        now: DateTime<Utc>,
        lease_owner: &str,
        lease_duration_ms: u64,
        limit: u32,
    ) -> Result<Vec<ClaimedChunk>, StoreError>;

    /// For the reaper: chunks in `submitting` whose lease expired before `now`.
    async fn expired_submitting_chunks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StoredChunk>, StoreError>;

    /// Sets when the workers look at the chunk next and ends the lease, if the chunk still
    /// carries `fencing_token`; else [`StoreError::Conflict`].
    async fn reschedule_chunk(
        &self,
        id: &domain::BatchId,
        chunk_no: i64,
        fencing_token: i64,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;

    /// Cancels the batch if no chunk was ever sent and every chunk is still before
    /// `submitting`: chunks and pending items `cancelled`, history, status, event and
    /// `audit` in ONE transaction. Otherwise writes nothing.
    async fn cancel_batch(
        &self,
        id: &domain::BatchId,
        actor: Actor,
        audit: NewAuditRecord,
    ) -> Result<CancelBatchOutcome, StoreError>;

    /// Events of the outbox after `q.after_seq` matching its filters, ascending by `seq`.
    async fn list_events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;

    /// Deletes idempotency keys whose `expires_at` is before `now`; returns how many.
    async fn idempotency_purge(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Finishes the queued writes, then closes every connection. Idempotent; later writes
    /// fail with [`StoreError::Closed`].
    async fn close(&self);

    // --- Webhooks (`webhooks.rs`) -------------------------------------------------------

    /// In ONE transaction: claims `idempotency` when given (as `create_payment` does: a key
    /// already stored gives `Replay`, `KeyReused` or `InProgress` and writes nothing),
    /// refuses a client's webhook beyond [`WEBHOOKS_PER_CLIENT_MAX`] (`LimitReached`,
    /// nothing written), inserts the webhook, completes the key and appends `audit`.
    async fn create_webhook(
        &self,
        new: NewWebhook,
        idempotency: Option<IdempotencyClaim>,
        audit: NewAuditRecord,
    ) -> Result<WebhookCreateOutcome, StoreError>;

    /// The client's active webhooks with `id > after_id`, ascending by id, at most
    /// `min(limit, WEBHOOK_QUERY_MAX_LIMIT)` (0: the maximum). Never the secrets.
    async fn list_webhooks(
        &self,
        client_id: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredWebhook>, StoreError>;

    /// The client's active webhook `id`; another client's or a deleted one is `None`.
    async fn get_webhook(
        &self,
        client_id: &str,
        id: &str,
    ) -> Result<Option<StoredWebhook>, StoreError>;

    /// Soft-deletes the client's active webhook (its row stays, with `deleted_at =
    /// audit.at`), ends its pending deliveries `skipped`, and appends `audit`, in ONE
    /// transaction. `false` (and nothing written) when there is no such webhook.
    async fn delete_webhook(
        &self,
        client_id: &str,
        id: &str,
        audit: NewAuditRecord,
    ) -> Result<bool, StoreError>;

    /// In ONE transaction: takes up to `limit` (1..=[`FAN_OUT_MAX_EVENTS`]) events not yet
    /// fanned out, oldest `seq` first, makes a `pending` delivery due at `now` for every
    /// active webhook subscribed to each one's type, and marks them fanned out at `now`.
    /// One instance at a time (see `webhooks.rs`).
    async fn fan_out_events(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<FanOutReport, StoreError>;

    /// Leases up to `limit` (1..=[`DELIVERY_CLAIM_MAX_LIMIT`]) pending deliveries due by
    /// `now` with no live lease, to `lease_owner` until `now + lease_duration_ms`, each with
    /// a new lease token; never one whose webhook has an earlier (lower `object_seq`)
    /// delivery of the same object still pending. Concurrent claimers get disjoint sets.
    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_owner: &str,
        lease_duration_ms: u64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Records one attempt of a claimed delivery and ends its lease, in ONE transaction:
    /// delivered, retry at the given time, `dead` when the failure reaches
    /// `attempt.max_attempts`, or `skipped` (no attempt row). `None` (nothing written) when
    /// the delivery no longer carries `lease_token` or is no longer pending.
    async fn record_webhook_attempt(
        &self,
        delivery_id: i64,
        lease_token: i64,
        attempt: NewAttempt,
    ) -> Result<Option<DeliveryState>, StoreError>;

    /// A webhook's deliveries per [`DeliveryQuery`], each with its latest attempts.
    async fn list_webhook_deliveries(
        &self,
        q: &DeliveryQuery,
    ) -> Result<Vec<StoredDelivery>, StoreError>;

    /// Makes the webhook's `dead` deliveries (only `delivery_id`, when given) `pending`
    /// and due at `now`, with `attempts` reset to 0 (`attempts_total` and the attempt rows
    /// are kept); appends `audit` in the same transaction when any was re-driven. Returns
    /// how many.
    async fn redrive_webhook_deliveries(
        &self,
        webhook_id: &str,
        delivery_id: Option<i64>,
        now: DateTime<Utc>,
        audit: NewAuditRecord,
    ) -> Result<u64, StoreError>;

    // --- Bank exchanges (`exchanges.rs`) ------------------------------------------------

    /// In ONE transaction: stores one exchange with a bank (masked bodies and all its
    /// references) and appends `audit` with `exchange_id` (the new row's id) added to its
    /// details, which must be a JSON object. Returns the id.
    async fn record_bank_exchange(
        &self,
        exchange: NewBankExchange,
        audit: NewAuditRecord,
    ) -> Result<i64, StoreError>;

    /// The exchange `id`, if stored.
    async fn get_bank_exchange(&self, id: i64) -> Result<Option<StoredBankExchange>, StoreError>;

    /// The exchanges naming `reference`, oldest first, at most
    /// `min(limit, BANK_EXCHANGE_LIST_MAX)` (0: the maximum).
    async fn bank_exchanges_by_reference(
        &self,
        reference: &str,
        limit: u32,
    ) -> Result<Vec<StoredBankExchange>, StoreError>;

    /// What a business reference belongs to, as an audit object: `payment:<id>` or
    /// `payment_batch:<id>` (a chunk's); `None` when no payment or chunk carries it.
    async fn bank_reference_object(&self, reference: &str) -> Result<Option<String>, StoreError>;
}

/// Opens the store named by `url`:
///
/// - `postgres://…` or `postgresql://…`: [`PgStore`];
/// - `sqlite://<path>`, `sqlite:<path>` or a plain file path: [`SqliteStore`], creating the
///   file and its parent directory. Connection settings come from `opts`, so a `?query` in a
///   SQLite URL is refused rather than half-honoured; `:memory:` is refused because the
///   writer and the read pool must share one database.
///
/// Runs the migrations first when `opts.migrate` is true.
pub async fn open(url: &str, opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    match Target::parse(url)? {
        Target::Postgres => Ok(Arc::new(PgStore::open(url, opts).await?)),
        Target::Sqlite(path) => Ok(Arc::new(SqliteStore::open(&path, opts).await?)),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Target {
    Postgres,
    Sqlite(PathBuf),
}

impl Target {
    fn parse(url: &str) -> Result<Target, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres);
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreError::UnsupportedUrl {
                scheme: scheme.chars().take(32).collect(),
            });
        } else {
            url
        };
        if path.is_empty() {
            return Err(StoreError::Invalid {
                reason: "the SQLite URL names no file".to_owned(),
            });
        }
        if path.contains('?') {
            return Err(StoreError::Invalid {
                reason:
                    "a SQLite URL takes no ?options: connection settings come from StoreOptions"
                        .to_owned(),
            });
        }
        if path == ":memory:" {
            return Err(StoreError::Invalid {
                reason: "an in-memory SQLite database cannot be shared by the writer and the read pool; give a file path"
                    .to_owned(),
            });
        }
        Ok(Target::Sqlite(PathBuf::from(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(
            Target::parse("postgres://u@h/db").unwrap(),
            Target::Postgres
        );
        assert_eq!(
            Target::parse("postgresql://h/db").unwrap(),
            Target::Postgres
        );
        assert_eq!(
            Target::parse("sqlite:///var/lib/bd/bankdirect.db").unwrap(),
            Target::Sqlite(PathBuf::from("/var/lib/bd/bankdirect.db"))
        );
        assert_eq!(
            Target::parse("sqlite://data/bankdirect.db").unwrap(),
            Target::Sqlite(PathBuf::from("data/bankdirect.db"))
        );
        assert_eq!(
            Target::parse("sqlite:bankdirect.db").unwrap(),
            Target::Sqlite(PathBuf::from("bankdirect.db"))
        );
        assert_eq!(
            Target::parse("/srv/bankdirect.db").unwrap(),
            Target::Sqlite(PathBuf::from("/srv/bankdirect.db"))
        );
    }

    #[test]
    fn unusable_urls_are_refused() {
        assert!(matches!(
            Target::parse("mysql://h/db"),
            Err(StoreError::UnsupportedUrl { scheme }) if scheme == "mysql"
        ));
        assert!(matches!(
            Target::parse("sqlite://"),
            Err(StoreError::Invalid { .. })
        ));
        assert!(matches!(Target::parse(""), Err(StoreError::Invalid { .. })));
        assert!(matches!(
            Target::parse("sqlite://x.db?mode=ro"),
            Err(StoreError::Invalid { .. })
        ));
        assert!(matches!(
            Target::parse("sqlite::memory:"),
            Err(StoreError::Invalid { .. })
        ));
    }
}
