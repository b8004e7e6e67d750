//! Payments in the store: the records that cross the boundary, the checks the schema cannot
//! express, and the two write algorithms (create with its idempotency key, compare-and-set
//! transition) written once against [`PaymentTx`] so SQLite and PostgreSQL cannot drift
//! apart in what "replay", "duplicate" or "stale" means. Each backend supplies the SQL and
//! the transaction (`sqlite/payments.rs`, `postgres/payments.rs`); the work-queue claim is
//! one statement per backend (PostgreSQL needs `FOR UPDATE SKIP LOCKED`, SQLite has the
//! single writer) and lives there.
//!
//! Statuses are snake_case text checked against [`PAYMENT_STATUSES`] (the schema checks them
//! too); which transition is legal is the domain state machine's business, the store only
//! guarantees that a transition applies to the state the caller saw (compare-and-set on the
//! status and, for workers, the fencing token).
//!
//! Instants written by a call are the `at` of its audit record: one clock reading per call,
//! as for statements.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    AccountId, BankReference, Bic, BusinessDate, CnapsCode, CreditorType, EndToEndId, Money,
    PaymentId, Urgency,
};

use crate::codec::{self, AuditRow};
use crate::events::{payment_event, EventRow};
use crate::statements::{check_date, currency_from_text};
use crate::{NewAuditRecord, StoreError};

pub(crate) const PAYMENTS_TABLE: &str = "payments";
pub(crate) const HISTORY_TABLE: &str = "payment_history";
pub(crate) const IDEMPOTENCY_TABLE: &str = "idempotency_keys";

/// Every payment status, as stored (DESIGN.md, "Payment state machine").
pub const PAYMENT_STATUSES: [&str; 13] = [
    "received",
    "pending_approval",
    "approved",
    "declined",
    "queued",
    "submitting",
    "accepted",
    "settled",
    "returned",
    "failed",
    "unknown",
    "needs_review",
    "cancelled",
];

/// An idempotency key is kept at least this long after its request (DESIGN.md, "API
/// conventions"); a claim with an earlier `expires_at` is refused.
pub const IDEMPOTENCY_RETENTION_MIN_S: i64 = 24 * 3600;

/// Most bytes of a stored idempotent response body (UTF-8).
pub const IDEMPOTENCY_RESPONSE_MAX_BYTES: usize = 256 * 1024;

/// Most status steps a payment may be created with (e.g. `received` → `queued`).
pub const INITIAL_STEPS_MAX: usize = 4;

/// `PaymentQuery::limit` above this is lowered to it; 0 means [`PAYMENT_QUERY_DEFAULT_LIMIT`].
pub const PAYMENT_QUERY_MAX_LIMIT: u32 = 1000;
pub const PAYMENT_QUERY_DEFAULT_LIMIT: u32 = 100;

/// Most accounts one listing may be restricted to (the caller's entitlement).
pub const PAYMENT_QUERY_MAX_ACCOUNTS: usize = 1000;

/// Most history rows `payment_history` returns; more is an error, not a silent cut.
pub const PAYMENT_HISTORY_MAX_ROWS: usize = 10_000;

/// Most payments one claim or reaper scan may return.
pub const CLAIM_MAX_LIMIT: u32 = 1000;

/// Longest lease a claim may take. A lease is the time a worker may hold a payment without
/// anyone else touching it; hours would be a unit mistake.
pub const LEASE_DURATION_MAX_MS: u64 = 3_600_000;

/// The part of a payment that never changes after it was accepted: what the client asked
/// for, and our business reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInstruction {
    pub id: PaymentId,
    /// The API client that initiated it (1–128 characters).
    pub client_id: String,
    pub debtor_account_id: AccountId,
    /// Positive.
    pub amount: Money,
    /// 1–256 characters.
    pub creditor_name: String,
    /// 1–64 characters.
    pub creditor_account: String,
    /// At least one of `creditor_bank_code` and `creditor_bic`.
    pub creditor_bank_code: Option<CnapsCode>,
    pub creditor_bic: Option<Bic>,
    /// 1–256 characters.
    pub creditor_bank_name: Option<String>,
    pub creditor_type: CreditorType,
    /// 1–1024 characters.
    pub remittance: String,
    /// 1–256 characters.
    pub purpose: Option<String>,
    /// Unique per debtor account for ever.
    pub end_to_end_id: Option<EndToEndId>,
    pub requested_execution_date: BusinessDate,
    pub urgency: Urgency,
    /// Unique store-wide; stored before the first send and reused on every resend.
    pub business_reference: BankReference,
    /// The person (`user:<id>`, 1–128 characters) the client acted for, if any: the maker.
    pub on_behalf_of: Option<String>,
    /// Distinct approvals needed before it may be queued (0 to [`APPROVALS_REQUIRED_MAX`]);
    /// 0 when no approval rule matched at intake.
    pub approvals_required: u8,
}

/// Most approvals a rule may require.
pub const APPROVALS_REQUIRED_MAX: u8 = 16;

/// One status step of a new payment. The first step's `from_status` is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialStep {
    pub to_status: String,
    /// Why (1–256 characters), e.g. `created`, `no_approval_needed`.
    pub cause: String,
}

/// A payment to create.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub instruction: PaymentInstruction,
    /// 1 to [`INITIAL_STEPS_MAX`] steps; the last one's status is the payment's. Each becomes
    /// a history row, in order.
    pub steps: Vec<InitialStep>,
    /// When a worker should first look at it; `None` while it waits for a person.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The idempotency key of a create, and the response to replay for it. The response is
/// computed by the caller from the payment it is about to create (it is derivable from the
/// stored payment), so key and payment commit together and a replay needs no second write.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    /// 1–128 characters: keys are scoped per client.
    pub client_id: String,
    /// 1–256 characters.
    pub key: String,
    /// The caller's hash of the canonical request body (1–128 characters).
    pub request_hash: String,
    /// At least [`IDEMPOTENCY_RETENTION_MIN_S`] after the call's `audit.at`.
    pub expires_at: DateTime<Utc>,
    /// HTTP status to replay (100–599).
    pub response_status: u16,
    /// At most [`IDEMPOTENCY_RESPONSE_MAX_BYTES`].
    pub response_body: String,
}

/// What `create_payment` did.
/// A stored Idempotency-Key: the hash of the body it was first used with,
/// and (once completed) the answer given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub completed: bool,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// The payment, its history, the key and the audit record were committed together.
    /// Boxed: a stored payment is large and the other outcomes are small.
    Created(Box<StoredPayment>),
    /// The key was used before with the same request: replay this response. Nothing written.
    Replay {
        status: u16,
        body: String,
        payment_id: Option<PaymentId>,
    },
    /// The key was used before with a different request (409). Nothing written.
    KeyReused,
    /// The key belongs to a request that has not finished (409 `idempotency_in_progress`).
    InProgress,
    /// The debtor account already has a payment with this end-to-end id, whatever its key
    /// (409). Nothing written, the key included.
    DuplicateEndToEndId { existing_payment_id: PaymentId },
}

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayment {
    pub instruction: PaymentInstruction,
    pub status: String,
    /// True from the moment a send was committed (before the bank call): such a payment can
    /// no longer be cancelled locally.
    pub ever_sent: bool,
    pub first_sent_at: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub send_attempts: i64,
    pub bank_payment_id: Option<String>,
    pub last_bank_code: Option<String>,
    pub last_bank_message: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Grows by one on every claim.
    pub fencing_token: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Grows by one on every change (transition, claim, lease release).
    pub version: i64,
}

/// One row of a payment's history, in `seq` order (1, 2, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentHistoryEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// None for the row that created the payment.
    pub from_status: Option<String>,
    pub to_status: String,
    pub cause: String,
    pub bank_code: Option<String>,
    pub bank_message: Option<String>,
    pub actor: String,
    pub request_id: Option<String>,
}

/// What a transition expects to find: it is applied only if the payment is still in
/// `from_status` and, when given, still carries `fencing_token` (a worker names the token of
/// its claim, so a worker whose lease was taken over cannot write back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionGuard {
    pub from_status: String,
    pub fencing_token: Option<i64>,
}

/// What a transition changes. Instants are the audit record's `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentChange {
    pub to_status: String,
    /// 1–256 characters.
    pub cause: String,
    /// The bank's raw code and message (1–64 / 1–1024 characters), recorded in the history
    /// row and, when given, as the payment's last ones.
    pub bank_code: Option<String>,
    pub bank_message: Option<String>,
    /// Set when given; a known bank id is never cleared.
    pub bank_payment_id: Option<String>,
    /// A send is about to happen (written before the bank call): sets `ever_sent`,
    /// `first_sent_at` (once), `last_sent_at` and counts the attempt.
    pub mark_sent: bool,
    /// Replaces the stored value; `None`: nothing due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Clears the lease (owner and expiry); the fencing token is kept.
    pub release_lease: bool,
}

/// Most steps in one [`crate::Store::transition_payment_steps`] call (accepted, settled,
/// returned is the longest path a bank answer walks).
pub const TRANSITION_STEPS_MAX: usize = 4;

/// One step of several changes applied together: what it changes and its audit record.
#[derive(Debug, Clone)]
pub struct PaymentStep {
    pub change: PaymentChange,
    pub audit: NewAuditRecord,
}

/// Who made a transition, for its history row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// 1–256 characters: a client id, a user, or a worker name.
    pub name: String,
    pub request_id: Option<String>,
}

/// A payment claimed by a worker, with the token its write-backs must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedPayment {
    pub payment: StoredPayment,
    pub fencing_token: i64,
}

/// The position after the last payment of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCursor {
    pub created_at: DateTime<Utc>,
    pub id: PaymentId,
}

/// Filters of `list_payments`; every given filter must match. Results ascend by
/// (`created_at`, `id`); page forward with `after` = the last row's.
#[derive(Debug, Clone, Default)]
pub struct PaymentQuery {
    pub status: Option<String>,
    /// The caller's entitlement: `Some` restricts to these debtor accounts (empty: nothing),
    /// at most [`PAYMENT_QUERY_MAX_ACCOUNTS`]. `None`: every account.
    pub account_ids: Option<Vec<AccountId>>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before (exclusive).
    pub created_before: Option<DateTime<Utc>>,
    pub after: Option<PaymentCursor>,
    /// 0 means [`PAYMENT_QUERY_DEFAULT_LIMIT`]; above [`PAYMENT_QUERY_MAX_LIMIT`] it is capped.
    pub limit: u32,
}

impl PaymentQuery {
    pub(crate) fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => PAYMENT_QUERY_DEFAULT_LIMIT,
            n => n.min(PAYMENT_QUERY_MAX_LIMIT),
        }
    }

    /// Checks what the query can be refused for before it reaches the database.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if let Some(status) = &self.status {
            check_status("payment query status", status)?;
        }
        if let Some(ids) = &self.account_ids {
            if ids.len() > PAYMENT_QUERY_MAX_ACCOUNTS {
                return Err(invalid(format!(
                    "{} accounts in one payment listing, more than the limit of {PAYMENT_QUERY_MAX_ACCOUNTS}",
                    ids.len()
                )));
            }
        }
        Ok(())
    }
}

pub(crate) fn invalid(reason: String) -> StoreError {
    StoreError::Invalid { reason }
}

pub(crate) fn corrupt(table: &'static str, column: &'static str, reason: String) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        reason,
    }
}

pub(crate) fn check_status(what: &str, status: &str) -> Result<(), StoreError> {
    if PAYMENT_STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what}: {:?} is not a payment status",
            status.chars().take(32).collect::<String>()
        )))
    }
}

pub(crate) fn refuse_nul(what: &str, text: Option<&str>) -> Result<(), StoreError> {
    if text.is_some_and(|t| t.contains('\0')) {
        return Err(invalid(format!("{what} contains a NUL character")));
    }
    Ok(())
}

pub(crate) fn creditor_type_text(t: CreditorType) -> &'static str {
    match t {
        CreditorType::Corporate => "corporate",
        CreditorType::Personal => "personal",
    }
}

fn urgency_text(u: Urgency) -> &'static str {
    match u {
        Urgency::Normal => "normal",
        Urgency::Urgent => "urgent",
    }
}

// ---------------------------------------------------------------------------------------
// Rows for binding

/// A new payment checked and converted for binding. Lengths are the schema's CHECKs.
#[derive(Debug, Clone)]
pub(crate) struct PaymentRow {
    pub id: String,
    pub client_id: String,
    pub debtor_account_id: String,
    pub amount_minor: i64,
    pub currency: &'static str,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_bank_code: Option<String>,
    pub creditor_bic: Option<String>,
    pub creditor_bank_name: Option<String>,
    pub creditor_type: &'static str,
    pub remittance: String,
    pub purpose: Option<String>,
    pub end_to_end_id: Option<String>,
    pub requested_execution_date: BusinessDate,
    pub urgency: &'static str,
    pub business_reference: String,
    pub status: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub on_behalf_of: Option<String>,
    pub approvals_required: i64,
}

/// A history row to insert.
#[derive(Debug, Clone)]
pub(crate) struct HistoryRow {
    pub payment_id: String,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub from_status: Option<String>,
    pub to_status: String,
    pub cause: String,
    pub bank_code: Option<String>,
    pub bank_message: Option<String>,
    pub actor: String,
    pub request_id: Option<String>,
}

/// A checked create: everything one transaction writes.
#[derive(Debug, Clone)]
pub(crate) struct CreateRows {
    pub payment: PaymentRow,
    /// The instruction the row was made from, for the payment as created
    /// ([`CreateRows::created`]).
    pub instruction: PaymentInstruction,
    /// The event of the status the payment is created in, made before the write (not in
    /// the writer): one per payment, not one per initial step, since a receiver cares
    /// where it stands, and intake stays one outbox row per payment.
    pub event: EventRow,
    pub steps: Vec<InitialStep>,
    pub claim: IdempotencyClaim,
    pub audit: AuditRow,
}

pub(crate) fn create_rows(
    new: NewPayment,
    claim: IdempotencyClaim,
    audit: NewAuditRecord,
) -> Result<CreateRows, StoreError> {
    let audit = AuditRow::new(audit)?;
    let NewPayment {
        instruction: i,
        steps,
        next_attempt_at,
    } = new;
    if steps.is_empty() || steps.len() > INITIAL_STEPS_MAX {
        return Err(invalid(format!(
            "a new payment takes 1 to {INITIAL_STEPS_MAX} status steps, not {}",
            steps.len()
        )));
    }
    for step in &steps {
        check_status("initial step", &step.to_status)?;
        refuse_nul("initial step cause", Some(&step.cause))?;
    }
    if i.amount.minor() <= 0 {
        return Err(invalid("a payment amount must be positive".to_owned()));
    }
    if i.creditor_bank_code.is_none() && i.creditor_bic.is_none() {
        return Err(invalid(
            "a payment needs the creditor's CNAPS bank code or BIC".to_owned(),
        ));
    }
    check_date(
        "payment requested execution date",
        i.requested_execution_date,
    )?;
    for (what, text) in [
        ("client id", Some(i.client_id.as_str())),
        ("creditor name", Some(i.creditor_name.as_str())),
        ("creditor account", Some(i.creditor_account.as_str())),
        ("creditor bank name", i.creditor_bank_name.as_deref()),
        ("remittance", Some(i.remittance.as_str())),
        ("purpose", i.purpose.as_deref()),
    ] {
        refuse_nul(&format!("payment {what}"), text)?;
    }
    check_claim(&claim, audit.at)?;
    refuse_nul("payment on_behalf_of", i.on_behalf_of.as_deref())?;
    if i.approvals_required > APPROVALS_REQUIRED_MAX {
        return Err(invalid(format!(
            "a payment needs at most {APPROVALS_REQUIRED_MAX} approvals, not {}",
            i.approvals_required
        )));
    }
    if claim.client_id != i.client_id {
        return Err(invalid(
            "the idempotency key belongs to another client than the payment".to_owned(),
        ));
    }
    let status = steps
        .last()
        .map(|s| s.to_status.clone())
        .unwrap_or_default();
    let instruction = i.clone();
    let payment = PaymentRow {
        id: i.id.as_str().to_owned(),
        client_id: i.client_id,
        debtor_account_id: i.debtor_account_id.as_str().to_owned(),
        amount_minor: i.amount.minor(),
        currency: i.amount.currency().code(),
        creditor_name: i.creditor_name,
        creditor_account: i.creditor_account,
        creditor_bank_code: i.creditor_bank_code.map(|c| c.as_str().to_owned()),
        creditor_bic: i.creditor_bic.map(|b| b.as_str().to_owned()),
        creditor_bank_name: i.creditor_bank_name,
        creditor_type: creditor_type_text(i.creditor_type),
        remittance: i.remittance,
        purpose: i.purpose,
        end_to_end_id: i.end_to_end_id.map(|e| e.as_str().to_owned()),
        requested_execution_date: i.requested_execution_date,
        urgency: urgency_text(i.urgency),
        business_reference: i.business_reference.as_str().to_owned(),
        status,
        next_attempt_at: next_attempt_at
            .map(|at| codec::instant(at, "payment next_attempt_at"))
            .transpose()?,
        on_behalf_of: i.on_behalf_of,
        approvals_required: i64::from(i.approvals_required),
    };
    let cause = steps.last().map_or("created", |s| s.cause.as_str());
    let event = payment_event(
        &instruction,
        &payment.status,
        audit.at,
        i64::try_from(steps.len()).unwrap_or(i64::MAX),
        &PaymentChangeFacts {
            from_status: None,
            cause,
            bank_code: None,
            bank_message: None,
        },
    )?;
    Ok(CreateRows {
        payment,
        instruction,
        event,
        steps,
        claim: IdempotencyClaim {
            expires_at: codec::instant(claim.expires_at, "idempotency expires_at")?,
            ..claim
        },
        audit,
    })
}

impl CreateRows {
    /// The payment as its insert stores it, so the writer need not read it back.
    pub(crate) fn created(&self) -> StoredPayment {
        StoredPayment::as_created(
            self.instruction.clone(),
            self.payment.status.clone(),
            self.payment.next_attempt_at,
            self.audit.at,
        )
    }
}

impl StoredPayment {
    /// A payment as its create stores it at `at` in `status`: nothing sent, no lease,
    /// fencing token 0, version 1.
    pub fn as_created(
        instruction: PaymentInstruction,
        status: String,
        next_attempt_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> StoredPayment {
        StoredPayment {
            instruction,
            status,
            ever_sent: false,
            first_sent_at: None,
            last_sent_at: None,
            send_attempts: 0,
            bank_payment_id: None,
            last_bank_code: None,
            last_bank_message: None,
            next_attempt_at,
            lease_owner: None,
            lease_expires_at: None,
            fencing_token: 0,
            created_at: at,
            updated_at: at,
            version: 1,
        }
    }
}

pub(crate) fn check_claim(claim: &IdempotencyClaim, at: DateTime<Utc>) -> Result<(), StoreError> {
    for (what, text) in [
        ("client id", claim.client_id.as_str()),
        ("key", claim.key.as_str()),
        ("request hash", claim.request_hash.as_str()),
        ("response body", claim.response_body.as_str()),
    ] {
        refuse_nul(&format!("idempotency {what}"), Some(text))?;
    }
    if claim.response_body.len() > IDEMPOTENCY_RESPONSE_MAX_BYTES {
        return Err(invalid(format!(
            "the idempotent response body is {} bytes, more than the limit of {IDEMPOTENCY_RESPONSE_MAX_BYTES}",
            claim.response_body.len()
        )));
    }
    if (claim.expires_at - at).num_seconds() < IDEMPOTENCY_RETENTION_MIN_S {
        return Err(invalid(format!(
            "an idempotency key must be kept at least {IDEMPOTENCY_RETENTION_MIN_S} s after its request"
        )));
    }
    Ok(())
}

/// A checked transition.
#[derive(Debug, Clone)]
pub(crate) struct TransitionRows {
    pub id: String,
    pub guard: TransitionGuard,
    pub change: PaymentChange,
    pub actor: Actor,
    pub audit: AuditRow,
}

pub(crate) fn transition_rows(
    id: &PaymentId,
    guard: TransitionGuard,
    change: PaymentChange,
    actor: Actor,
    audit: NewAuditRecord,
) -> Result<TransitionRows, StoreError> {
    check_status("transition from", &guard.from_status)?;
    check_status("transition to", &change.to_status)?;
    for (what, text) in [
        ("cause", Some(change.cause.as_str())),
        ("bank code", change.bank_code.as_deref()),
        ("bank message", change.bank_message.as_deref()),
        ("bank payment id", change.bank_payment_id.as_deref()),
        ("actor", Some(actor.name.as_str())),
        ("request id", actor.request_id.as_deref()),
    ] {
        refuse_nul(&format!("transition {what}"), text)?;
    }
    let next_attempt_at = change
        .next_attempt_at
        .map(|at| codec::instant(at, "payment next_attempt_at"))
        .transpose()?;
    Ok(TransitionRows {
        id: id.as_str().to_owned(),
        guard,
        change: PaymentChange {
            next_attempt_at,
            ..change
        },
        actor,
        audit: AuditRow::new(audit)?,
    })
}

/// The checked steps of [`crate::Store::transition_payment_steps`]: the first guarded by
/// `expected`, each later one by the status the step before it leaves and the same token.
pub(crate) fn steps_rows(
    id: &PaymentId,
    expected: TransitionGuard,
    steps: Vec<PaymentStep>,
    actor: Actor,
) -> Result<Vec<TransitionRows>, StoreError> {
    if steps.is_empty() || steps.len() > TRANSITION_STEPS_MAX {
        return Err(StoreError::Invalid {
            reason: format!(
                "a payment's status changes come 1 to {TRANSITION_STEPS_MAX} at a time, not {}",
                steps.len()
            ),
        });
    }
    let last = steps.len() - 1;
    let mut from = expected.from_status;
    let mut rows = Vec::with_capacity(steps.len());
    for (n, step) in steps.into_iter().enumerate() {
        if n < last && step.change.release_lease {
            return Err(StoreError::Invalid {
                reason: "only the last of several status changes may release the lease: the \
                         ones after it are guarded by its fencing token"
                    .into(),
            });
        }
        let to = step.change.to_status.clone();
        let guard = TransitionGuard {
            from_status: from,
            fencing_token: expected.fencing_token,
        };
        rows.push(transition_rows(
            id,
            guard,
            step.change,
            actor.clone(),
            step.audit,
        )?);
        from = to;
    }
    Ok(rows)
}

/// Applies checked steps in order inside the caller's transaction; returns the payment
/// after the last. The first refusal ends it, and the caller rolls everything back.
pub(crate) async fn transition_steps(
    tx: &mut dyn PaymentTx,
    steps: &[TransitionRows],
) -> Result<StoredPayment, StoreError> {
    let mut last = None;
    for rows in steps {
        last = Some(transition(tx, rows).await?);
    }
    last.ok_or_else(|| StoreError::Invalid {
        reason: "no status change to apply".into(),
    })
}

/// A claim's payments as handed to the claimer, with their fencing tokens, in id order
/// (RETURNING gives none; every claimed payment is now due at its lease's end).
pub(crate) fn handed_out(claimed: Vec<StoredPayment>) -> Vec<ClaimedPayment> {
    let mut claimed: Vec<ClaimedPayment> = claimed
        .into_iter()
        .map(|payment| ClaimedPayment {
            fencing_token: payment.fencing_token,
            payment,
        })
        .collect();
    claimed.sort_by(|a, b| a.payment.instruction.id.cmp(&b.payment.instruction.id));
    claimed
}

/// Checks a claim's arguments; returns the lease expiry.
pub(crate) fn check_claim_args(
    statuses: &[&str],
    now: DateTime<Utc>,
    lease_owner: &str,
    lease_duration_ms: u64,
    limit: u32,
) -> Result<(DateTime<Utc>, DateTime<Utc>), StoreError> {
    if statuses.is_empty() {
        return Err(invalid("a claim names no status".to_owned()));
    }
    for status in statuses {
        check_status("claim status", status)?;
    }
    refuse_nul("lease owner", Some(lease_owner))?;
    if lease_duration_ms == 0 || lease_duration_ms > LEASE_DURATION_MAX_MS {
        return Err(invalid(format!(
            "a lease lasts 1 to {LEASE_DURATION_MAX_MS} ms, not {lease_duration_ms}"
        )));
    }
    if limit == 0 || limit > CLAIM_MAX_LIMIT {
        return Err(invalid(format!(
            "a claim takes 1 to {CLAIM_MAX_LIMIT} payments, not {limit}"
        )));
    }
    let now = codec::instant(now, "claim now")?;
    let millis = i64::try_from(lease_duration_ms).unwrap_or(i64::MAX);
    let expires = now
        .checked_add_signed(chrono::Duration::milliseconds(millis))
        .ok_or_else(|| invalid("the lease expiry is out of range".to_owned()))?;
    Ok((now, codec::instant(expires, "lease expiry")?))
}

/// Refuses a scan limit of 0 or above [`CLAIM_MAX_LIMIT`].
pub(crate) fn check_scan_limit(limit: u32) -> Result<(), StoreError> {
    if limit == 0 || limit > CLAIM_MAX_LIMIT {
        return Err(invalid(format!(
            "a scan takes 1 to {CLAIM_MAX_LIMIT} payments, not {limit}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reading back

/// Column values of one `payments` row, as read; instants and dates already decoded by the
/// backend.
pub(crate) struct PaymentColumns {
    pub id: String,
    pub client_id: String,
    pub debtor_account_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_bank_code: Option<String>,
    pub creditor_bic: Option<String>,
    pub creditor_bank_name: Option<String>,
    pub creditor_type: String,
    pub remittance: String,
    pub purpose: Option<String>,
    pub end_to_end_id: Option<String>,
    pub requested_execution_date: BusinessDate,
    pub urgency: String,
    pub business_reference: String,
    pub status: String,
    pub ever_sent: bool,
    pub first_sent_at: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub send_attempts: i64,
    pub bank_payment_id: Option<String>,
    pub last_bank_code: Option<String>,
    pub last_bank_message: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub fencing_token: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub on_behalf_of: Option<String>,
    pub approvals_required: i64,
}

/// The columns every payment read selects, in the order both backends use.
pub(crate) const PAYMENT_COLUMNS: &str = "id, client_id, debtor_account_id, amount_minor, \
     currency, creditor_name, creditor_account, creditor_bank_code, creditor_bic, \
     creditor_bank_name, creditor_type, remittance, purpose, end_to_end_id, \
     requested_execution_date, urgency, business_reference, status, ever_sent, first_sent_at, \
     last_sent_at, send_attempts, bank_payment_id, last_bank_code, last_bank_message, \
     next_attempt_at, lease_owner, lease_expires_at, fencing_token, created_at, updated_at, \
     version, on_behalf_of, approvals_required";

pub(crate) const HISTORY_COLUMNS: &str =
    "seq, at, from_status, to_status, cause, bank_code, bank_message, actor, request_id";

pub(crate) fn payment_id_from_text(
    text: &str,
    table: &'static str,
    column: &'static str,
) -> Result<PaymentId, StoreError> {
    PaymentId::parse(text)
        .map_err(|err| corrupt(table, column, format!("not a payment id ({err})")))
}

fn stored_status(
    text: String,
    table: &'static str,
    column: &'static str,
) -> Result<String, StoreError> {
    if PAYMENT_STATUSES.contains(&text.as_str()) {
        Ok(text)
    } else {
        Err(corrupt(table, column, "not a payment status".to_owned()))
    }
}

impl PaymentColumns {
    pub(crate) fn into_domain(self) -> Result<StoredPayment, StoreError> {
        const T: &str = PAYMENTS_TABLE;
        let currency = currency_from_text(&self.currency, T)?;
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
        let urgency = match self.urgency.as_str() {
            "normal" => Urgency::Normal,
            "urgent" => Urgency::Urgent,
            _ => return Err(corrupt(T, "urgency", "unknown urgency".to_owned())),
        };
        let instruction = PaymentInstruction {
            id: payment_id_from_text(&self.id, T, "id")?,
            client_id: self.client_id,
            debtor_account_id: AccountId::parse(&self.debtor_account_id).map_err(|err| {
                corrupt(T, "debtor_account_id", format!("not an account id ({err})"))
            })?,
            amount: Money::from_minor(self.amount_minor, currency),
            creditor_name: self.creditor_name,
            creditor_account: self.creditor_account,
            creditor_bank_code: self
                .creditor_bank_code
                .map(|c| CnapsCode::parse(&c))
                .transpose()
                .map_err(|err| corrupt(T, "creditor_bank_code", format!("{err}")))?,
            creditor_bic: self
                .creditor_bic
                .map(|b| Bic::parse(&b))
                .transpose()
                .map_err(|err| corrupt(T, "creditor_bic", format!("{err}")))?,
            creditor_bank_name: self.creditor_bank_name,
            creditor_type,
            remittance: self.remittance,
            purpose: self.purpose,
            end_to_end_id: self
                .end_to_end_id
                .map(|e| EndToEndId::parse(&e))
                .transpose()
                .map_err(|err| corrupt(T, "end_to_end_id", format!("{err}")))?,
            requested_execution_date: self.requested_execution_date,
            urgency,
            business_reference: BankReference::parse(&self.business_reference)
                .map_err(|err| corrupt(T, "business_reference", format!("{err}")))?,
            on_behalf_of: self.on_behalf_of,
            approvals_required: u8::try_from(self.approvals_required)
                .ok()
                .filter(|n| *n <= APPROVALS_REQUIRED_MAX)
                .ok_or_else(|| corrupt(T, "approvals_required", "out of range".to_owned()))?,
        };
        Ok(StoredPayment {
            instruction,
            status: stored_status(self.status, T, "status")?,
            ever_sent: self.ever_sent,
            first_sent_at: self.first_sent_at,
            last_sent_at: self.last_sent_at,
            send_attempts: self.send_attempts,
            bank_payment_id: self.bank_payment_id,
            last_bank_code: self.last_bank_code,
            last_bank_message: self.last_bank_message,
            next_attempt_at: self.next_attempt_at,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            fencing_token: self.fencing_token,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        })
    }
}

/// Column values of one `payment_history` row, as read.
pub(crate) struct HistoryColumns {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub from_status: Option<String>,
    pub to_status: String,
    pub cause: String,
    pub bank_code: Option<String>,
    pub bank_message: Option<String>,
    pub actor: String,
    pub request_id: Option<String>,
}

impl HistoryColumns {
    pub(crate) fn into_domain(self) -> Result<PaymentHistoryEntry, StoreError> {
        const T: &str = HISTORY_TABLE;
        Ok(PaymentHistoryEntry {
            seq: self.seq,
            at: self.at,
            from_status: self
                .from_status
                .map(|s| stored_status(s, T, "from_status"))
                .transpose()?,
            to_status: stored_status(self.to_status, T, "to_status")?,
            cause: self.cause,
            bank_code: self.bank_code,
            bank_message: self.bank_message,
            actor: self.actor,
            request_id: self.request_id,
        })
    }
}

/// A stored idempotency key, as the create algorithm needs it.
#[derive(Debug, Clone)]
pub(crate) struct KeyColumns {
    pub request_hash: String,
    pub state: String,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub payment_id: Option<String>,
}

pub(crate) fn replay_of(
    found: KeyColumns,
    request_hash: &str,
) -> Result<CreateOutcome, StoreError> {
    const T: &str = IDEMPOTENCY_TABLE;
    if found.request_hash != request_hash {
        return Ok(CreateOutcome::KeyReused);
    }
    match found.state.as_str() {
        "in_progress" => Ok(CreateOutcome::InProgress),
        "completed" => {
            let status = found
                .response_status
                .and_then(|s| u16::try_from(s).ok())
                .ok_or_else(|| {
                    corrupt(T, "response_status", "missing or out of range".to_owned())
                })?;
            let body = found
                .response_body
                .ok_or_else(|| corrupt(T, "response_body", "missing".to_owned()))?;
            let payment_id = found
                .payment_id
                .map(|id| payment_id_from_text(&id, T, "payment_id"))
                .transpose()?;
            Ok(CreateOutcome::Replay {
                status,
                body,
                payment_id,
            })
        }
        _ => Err(corrupt(T, "state", "unknown state".to_owned())),
    }
}

/// The current status and fencing token of a payment, for a conflict's report.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub status: String,
    pub fencing_token: i64,
}

/// What a payment event says about the step that caused it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PaymentChangeFacts<'a> {
    pub from_status: Option<&'a str>,
    pub cause: &'a str,
    pub bank_code: Option<&'a str>,
    pub bank_message: Option<&'a str>,
}

// ---------------------------------------------------------------------------------------
// The algorithms

/// The statements the payment writes need from a backend, all inside one transaction.
#[async_trait]
pub(crate) trait PaymentTx: Send {
    /// Whether the key goes in before its payment. PostgreSQL: yes, the order its group
    /// writer (`postgres/intake.rs`) takes the same rows' locks in, so the two never wait
    /// on each other crosswise; its key's reference to the payment is checked at commit.
    /// SQLite (one writer, no lock order to keep): the payment first, so the key's
    /// reference is checked as it is inserted.
    fn key_goes_first(&self) -> bool;
    /// Inserts the key completed, with the answer it replays and its payment's id, unless
    /// (client, key) exists; true when inserted. PostgreSQL waits here for a concurrent
    /// transaction holding the same key, so the loser of a race sees the winner's
    /// committed row afterwards.
    async fn insert_completed_key(
        &mut self,
        claim: &IdempotencyClaim,
        at: DateTime<Utc>,
        payment_id: &str,
    ) -> Result<bool, StoreError>;
    async fn find_key(
        &mut self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<KeyColumns>, StoreError>;
    /// Deletes a key inserted in this transaction that must not stay.
    async fn delete_key(&mut self, client_id: &str, key: &str) -> Result<(), StoreError>;
    /// Deletes a payment inserted in this transaction that must not stay (its key turned
    /// out to be taken); nothing else refers to it yet.
    async fn delete_payment(&mut self, id: &str) -> Result<(), StoreError>;
    /// Inserts unless a unique constraint (id, business reference, end-to-end id) already
    /// holds the values; true when inserted.
    async fn insert_payment(
        &mut self,
        row: &PaymentRow,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    async fn find_end_to_end(
        &mut self,
        debtor_account_id: &str,
        end_to_end_id: &str,
    ) -> Result<Option<String>, StoreError>;
    /// The compare-and-set update; true when the guard held and the row changed.
    async fn update_payment(&mut self, t: &TransitionRows) -> Result<bool, StoreError>;
    async fn current(&mut self, id: &str) -> Result<Option<Current>, StoreError>;
    /// The next history seq of the payment. Called after the payment row was inserted or
    /// updated in this transaction, whose row lock (or the single writer) keeps it unique.
    async fn next_history_seq(&mut self, id: &str) -> Result<i64, StoreError>;
    async fn insert_history(&mut self, row: &HistoryRow) -> Result<(), StoreError>;
    async fn fetch(&mut self, id: &str) -> Result<Option<StoredPayment>, StoreError>;
    /// Appends an event to the outbox (events.rs).
    async fn insert_event(&mut self, row: &EventRow) -> Result<(), StoreError>;
    /// Last: on PostgreSQL it takes the audit-order lock, held until the imminent commit.
    async fn insert_audit(&mut self, audit: &AuditRow) -> Result<(), StoreError>;
}

pub(crate) fn missing_after_write(id: &str) -> StoreError {
    corrupt(
        PAYMENTS_TABLE,
        "id",
        format!("payment {id} vanished inside its own transaction"),
    )
}

/// The stored key that made this call's key insert conflict.
async fn stored_key(
    tx: &mut dyn PaymentTx,
    claim: &IdempotencyClaim,
) -> Result<KeyColumns, StoreError> {
    tx.find_key(&claim.client_id, &claim.key)
        .await?
        // The row that made the insert conflict was deleted since (a purge): refuse
        // rather than guess; the client's retry will find the key free.
        .ok_or(StoreError::Contention {
            what: "an idempotency key purged during its own use",
        })
}

/// Why a payment insert found its place taken: an end-to-end id in use, or (a clash of
/// generated values) its id or business reference.
async fn payment_taken(
    tx: &mut dyn PaymentTx,
    p: &PaymentRow,
) -> Result<CreateOutcome, StoreError> {
    if let Some(e2e) = &p.end_to_end_id {
        if let Some(existing) = tx.find_end_to_end(&p.debtor_account_id, e2e).await? {
            return Ok(CreateOutcome::DuplicateEndToEndId {
                existing_payment_id: payment_id_from_text(&existing, PAYMENTS_TABLE, "id")?,
            });
        }
    }
    Err(invalid(
        "the payment id or business reference is already taken".to_owned(),
    ))
}

/// `Store::create_payment` (see there).
pub(crate) async fn create(
    tx: &mut dyn PaymentTx,
    rows: &CreateRows,
) -> Result<CreateOutcome, StoreError> {
    let at = rows.audit.at;
    let claim = &rows.claim;
    // The key goes in completed at once (one write instead of an insert and an update),
    // before or after its payment as the backend orders them (`key_goes_first`). Either
    // way the key decides first: when an insert finds its place taken and the key is
    // stored, this is a replay; and nothing of a refused call stays.
    let p = &rows.payment;
    if tx.key_goes_first() {
        if !tx.insert_completed_key(claim, at, &p.id).await? {
            return replay_of(stored_key(tx, claim).await?, &claim.request_hash);
        }
        if !tx.insert_payment(p, at).await? {
            // The client may retry with a new end-to-end id under the same key.
            tx.delete_key(&claim.client_id, &claim.key).await?;
            return payment_taken(tx, p).await;
        }
    } else {
        if !tx.insert_payment(p, at).await? {
            if let Some(found) = tx.find_key(&claim.client_id, &claim.key).await? {
                return replay_of(found, &claim.request_hash);
            }
            return payment_taken(tx, p).await;
        }
        if !tx.insert_completed_key(claim, at, &p.id).await? {
            tx.delete_payment(&p.id).await?;
            return replay_of(stored_key(tx, claim).await?, &claim.request_hash);
        }
    }
    let mut from: Option<String> = None;
    for (index, step) in rows.steps.iter().enumerate() {
        let seq = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
        tx.insert_history(&HistoryRow {
            payment_id: p.id.clone(),
            seq,
            at,
            from_status: from.take(),
            to_status: step.to_status.clone(),
            cause: step.cause.clone(),
            bank_code: None,
            bank_message: None,
            actor: rows.audit.actor.clone(),
            request_id: rows.audit.request_id.clone(),
        })
        .await?;
        from = Some(step.to_status.clone());
    }
    tx.insert_event(&rows.event).await?;
    tx.insert_audit(&rows.audit).await?;
    Ok(CreateOutcome::Created(Box::new(rows.created())))
}

/// `Store::transition_payment` (see there).
pub(crate) async fn transition(
    tx: &mut dyn PaymentTx,
    t: &TransitionRows,
) -> Result<StoredPayment, StoreError> {
    if !tx.update_payment(t).await? {
        return Err(match tx.current(&t.id).await? {
            None => StoreError::NotFound {
                what: "payment",
                id: t.id.clone(),
            },
            Some(current) => StoreError::Conflict {
                payment_id: t.id.clone(),
                status: current.status,
                fencing_token: current.fencing_token,
            },
        });
    }
    let seq = tx.next_history_seq(&t.id).await?;
    tx.insert_history(&HistoryRow {
        payment_id: t.id.clone(),
        seq,
        at: t.audit.at,
        from_status: Some(t.guard.from_status.clone()),
        to_status: t.change.to_status.clone(),
        cause: t.change.cause.clone(),
        bank_code: t.change.bank_code.clone(),
        bank_message: t.change.bank_message.clone(),
        actor: t.actor.name.clone(),
        request_id: t.actor.request_id.clone(),
    })
    .await?;
    let stored = tx
        .fetch(&t.id)
        .await?
        .ok_or_else(|| missing_after_write(&t.id))?;
    let event = payment_event(
        &stored.instruction,
        &stored.status,
        stored.updated_at,
        seq,
        &PaymentChangeFacts {
            from_status: Some(&t.guard.from_status),
            cause: &t.change.cause,
            bank_code: t.change.bank_code.as_deref(),
            bank_message: t.change.bank_message.as_deref(),
        },
    )?;
    tx.insert_event(&event).await?;
    crate::failpoints::hit(
        crate::failpoints::PAYMENT_TRANSITION_BEFORE_COMMIT,
        &t.id,
        &t.change.to_status,
    )?;
    tx.insert_audit(&t.audit).await?;
    Ok(stored)
}

/// After a failed lease release: says whether the payment is missing or moved on.
pub(crate) fn release_failure(id: &str, current: Option<Current>) -> StoreError {
    match current {
        None => StoreError::NotFound {
            what: "payment",
            id: id.to_owned(),
        },
        Some(current) => StoreError::Conflict {
            payment_id: id.to_owned(),
            status: current.status,
            fencing_token: current.fencing_token,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_limits_default_and_cap() {
        let mut q = PaymentQuery::default();
        assert_eq!(q.effective_limit(), PAYMENT_QUERY_DEFAULT_LIMIT);
        q.limit = 3;
        assert_eq!(q.effective_limit(), 3);
        q.limit = u32::MAX;
        assert_eq!(q.effective_limit(), PAYMENT_QUERY_MAX_LIMIT);
    }

    #[test]
    fn unknown_statuses_and_bad_claims_are_refused() {
        assert!(check_status("t", "queued").is_ok());
        assert!(check_status("t", "Queued").is_err());
        let now = Utc::now();
        assert!(check_claim_args(&[], now, "w", 1000, 1).is_err());
        assert!(check_claim_args(&["queued"], now, "w", 0, 1).is_err());
        assert!(check_claim_args(&["queued"], now, "w", LEASE_DURATION_MAX_MS + 1, 1).is_err());
        assert!(check_claim_args(&["queued"], now, "w", 1000, 0).is_err());
        assert!(check_claim_args(&["queued"], now, "w", 1000, CLAIM_MAX_LIMIT + 1).is_err());
        assert!(check_claim_args(&["nope"], now, "w", 1000, 1).is_err());
        let (at, expires) = check_claim_args(&["queued"], now, "w", 1500, 1).unwrap();
        assert_eq!((expires - at).num_milliseconds(), 1500);
    }

    #[test]
    fn a_replay_needs_the_same_hash_and_a_completed_key() {
        let key = |state: &str| KeyColumns {
            request_hash: "h1".to_owned(),
            state: state.to_owned(),
            response_status: Some(201),
            response_body: Some("{}".to_owned()),
            payment_id: None,
        };
        assert_eq!(
            replay_of(key("completed"), "h2").unwrap(),
            CreateOutcome::KeyReused
        );
        assert_eq!(
            replay_of(key("in_progress"), "h1").unwrap(),
            CreateOutcome::InProgress
        );
        assert_eq!(
            replay_of(key("completed"), "h1").unwrap(),
            CreateOutcome::Replay {
                status: 201,
                body: "{}".to_owned(),
                payment_id: None
            }
        );
        assert!(matches!(
            replay_of(key("weird"), "h1"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
