//! Payments: the instruction an enterprise gives, its state machine
//! (DESIGN.md, "Payment state machine"), our business references
//! (DESIGN.md, "References"), and the vocabulary banks share.
//!
//! Layout:
//! - [`PaymentStatus`] and the transition table [`TRANSITIONS`], drawn row by
//!   row like DESIGN.md's picture, with [`transition`] as the one way to get a
//!   [`Transition`] for an unguarded row;
//! - the guarded rows have their own functions that take the facts the guard
//!   needs: [`cancel`] (queued only if never sent), [`requeue_after_none`]
//!   (the bank said "none" after the minimum age) and [`escalate_to_review`]
//!   (unresolved after the maximum age);
//! - [`generate_business_reference`] under a bank's [`ReferencePolicy`], and
//!   [`generate_request_serial`];
//! - intake values: [`Creditor`] and [`Remittance`].
//!
//! Illegal transitions are [`TransitionError`]s, not [`DomainError`]s: they
//! are conflicts with the payment's current state (HTTP 409), not malformed
//! input (HTTP 422). A refused cancel is a [`CancelRefusal`] whose text the
//! API shows as it is.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::RandomSource;
use crate::error::{describe_char, DomainError};
use crate::ids::{BankReference, Bic, CnapsCode, MAX_BANK_REFERENCE_LEN};

/// Whom a payment goes to: a company (对公) or a person (对私). Chinese
/// banks route and check them differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditorType {
    Corporate,
    Personal,
}

/// How fast the enterprise wants the money to move (加急 vs 普通).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    #[default]
    Normal,
    Urgent,
}

// ---------------------------------------------------------------------------
// Status

/// Where a payment is in its life. Stored and shown as the snake_case text
/// of [`PaymentStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Accepted at the API, not yet routed to approval or the dispatcher.
    Received,
    PendingApproval,
    Approved,
    /// The approver said no. Final.
    Declined,
    /// Waiting for the dispatcher.
    Queued,
    /// Committed with a lease BEFORE the bank is called; the bank may or may
    /// not have the instruction.
    Submitting,
    /// The bank took the instruction; it has not settled yet.
    Accepted,
    /// The money left. Final for the ERP, yet it may still move to
    /// [`PaymentStatus::Returned`] (退票).
    Settled,
    /// The creditor's bank sent the money back after settlement. Final.
    Returned,
    /// The bank definitively rejected the payment. Final.
    Failed,
    /// A send whose outcome nobody knows; resolved only by a status query by
    /// our business reference.
    Unknown,
    /// Still unresolved after the bank's maximum age; an operator decides.
    NeedsReview,
    /// Our own cancel before anything was sent. Final.
    Cancelled,
}

impl PaymentStatus {
    /// Every status, in the order of the enum.
    pub const ALL: [PaymentStatus; 13] = [
        PaymentStatus::Received,
        PaymentStatus::PendingApproval,
        PaymentStatus::Approved,
        PaymentStatus::Declined,
        PaymentStatus::Queued,
        PaymentStatus::Submitting,
        PaymentStatus::Accepted,
        PaymentStatus::Settled,
        PaymentStatus::Returned,
        PaymentStatus::Failed,
        PaymentStatus::Unknown,
        PaymentStatus::NeedsReview,
        PaymentStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Received => "received",
            PaymentStatus::PendingApproval => "pending_approval",
            PaymentStatus::Approved => "approved",
            PaymentStatus::Declined => "declined",
            PaymentStatus::Queued => "queued",
            PaymentStatus::Submitting => "submitting",
            PaymentStatus::Accepted => "accepted",
            PaymentStatus::Settled => "settled",
            PaymentStatus::Returned => "returned",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Unknown => "unknown",
            PaymentStatus::NeedsReview => "needs_review",
            PaymentStatus::Cancelled => "cancelled",
        }
    }

    /// The exact text of [`PaymentStatus::as_str`]; no case folding, since
    /// the text comes from our own database and API.
    pub fn parse(text: &str) -> Result<PaymentStatus, DomainError> {
        PaymentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| DomainError::InvalidIdentifier {
                kind: "payment status",
                detail: format!(
                    "{} is not a payment status; expected one of {}",
                    crate::error::snippet(text),
                    PaymentStatus::ALL.map(PaymentStatus::as_str).join(", ")
                ),
            })
    }

    /// Whether the ERP may treat the payment as done: settled, returned,
    /// failed, declined or cancelled. Settled is final for the ERP, yet it
    /// may still move to returned when the creditor's bank sends the money
    /// back (退票), so pollers keep listening for returns on settled
    /// payments.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PaymentStatus::Settled
                | PaymentStatus::Returned
                | PaymentStatus::Failed
                | PaymentStatus::Declined
                | PaymentStatus::Cancelled
        )
    }

    /// Whether the drawing has an arrow from `self` to `to`, for any cause
    /// and regardless of guards. Use [`transition`] (or the guarded
    /// functions) to actually move a payment.
    pub fn can_transition_to(self, to: PaymentStatus) -> bool {
        TRANSITIONS
            .iter()
            .any(|(from, target, _, _)| *from == self && *target == to)
    }

    /// The statuses the drawing allows from `self`, each once, in table
    /// order.
    pub fn next_statuses(self) -> Vec<PaymentStatus> {
        let mut out: Vec<PaymentStatus> = Vec::new();
        for (from, to, _, _) in TRANSITIONS {
            if *from == self && !out.contains(to) {
                out.push(*to);
            }
        }
        out
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentStatus::parse(s)
    }
}

// ---------------------------------------------------------------------------
// Causes and the table

/// Why a payment moved. Stored with every transition (with the time and
/// the bank's raw code and message, which the store keeps beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionCause {
    /// The debtor account's rules require an approver.
    ApprovalRequired,
    NoApprovalNeeded,
    ApprovalGranted,
    /// The approver said no.
    Declined,
    /// An approved payment is handed to the dispatcher.
    Released,
    /// The dispatcher committed `submitting` with a lease and is about to
    /// call the bank.
    Dispatched,
    BankAccepted,
    BankSettled,
    /// The bank's documented business rejection, at once or later.
    BankRejected,
    /// The money came back after settlement (退票).
    BankReturned,
    /// Provably nothing reached the bank (connection refused, TLS failed).
    NotProcessed,
    /// The bank call ended without a trustworthy answer.
    OutcomeUnknown,
    /// The reaper found a `submitting` whose lease expired: the worker died
    /// somewhere around the bank call.
    LeaseExpired,
    /// A status query by our business reference gave a definite answer.
    StatusQueryAnswered,
    /// A status query by our business reference said "no such instruction"
    /// after the bank's minimum age.
    BankSaysNone,
    /// Still unknown after the bank's maximum age.
    MaxAgeExceeded,
    /// An operator resolved a payment in review.
    OperatorDecision,
    CancelledByClient,
}

impl TransitionCause {
    /// Every cause, in the order of the enum.
    pub const ALL: [TransitionCause; 18] = [
        TransitionCause::ApprovalRequired,
        TransitionCause::NoApprovalNeeded,
        TransitionCause::ApprovalGranted,
        TransitionCause::Declined,
        TransitionCause::Released,
        TransitionCause::Dispatched,
        TransitionCause::BankAccepted,
        TransitionCause::BankSettled,
        TransitionCause::BankRejected,
        TransitionCause::BankReturned,
        TransitionCause::NotProcessed,
        TransitionCause::OutcomeUnknown,
        TransitionCause::LeaseExpired,
        TransitionCause::StatusQueryAnswered,
        TransitionCause::BankSaysNone,
        TransitionCause::MaxAgeExceeded,
        TransitionCause::OperatorDecision,
        TransitionCause::CancelledByClient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransitionCause::ApprovalRequired => "approval_required",
            TransitionCause::NoApprovalNeeded => "no_approval_needed",
            TransitionCause::ApprovalGranted => "approval_granted",
            TransitionCause::Declined => "declined",
            TransitionCause::Released => "released",
            TransitionCause::Dispatched => "dispatched",
            TransitionCause::BankAccepted => "bank_accepted",
            TransitionCause::BankSettled => "bank_settled",
            TransitionCause::BankRejected => "bank_rejected",
            TransitionCause::BankReturned => "bank_returned",
            TransitionCause::NotProcessed => "not_processed",
            TransitionCause::OutcomeUnknown => "outcome_unknown",
            TransitionCause::LeaseExpired => "lease_expired",
            TransitionCause::StatusQueryAnswered => "status_query_answered",
            TransitionCause::BankSaysNone => "bank_says_none",
            TransitionCause::MaxAgeExceeded => "max_age_exceeded",
            TransitionCause::OperatorDecision => "operator_decision",
            TransitionCause::CancelledByClient => "cancelled_by_client",
        }
    }

    /// The exact text of [`TransitionCause::as_str`].
    pub fn parse(text: &str) -> Result<TransitionCause, DomainError> {
        TransitionCause::ALL
            .into_iter()
            .find(|cause| cause.as_str() == text)
            .ok_or_else(|| DomainError::InvalidIdentifier {
                kind: "transition cause",
                detail: format!(
                    "{} is not a transition cause; expected one of {}",
                    crate::error::snippet(text),
                    TransitionCause::ALL.map(TransitionCause::as_str).join(", ")
                ),
            })
    }
}

impl fmt::Display for TransitionCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TransitionCause {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TransitionCause::parse(s)
    }
}

/// A condition beyond (from, to, cause) that a row of [`TRANSITIONS`]
/// needs. A guarded row is taken only through the function named here,
/// which is handed the facts the condition is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guard {
    Unconditional,
    /// The payment was never sent ([`cancel`]).
    NeverSent,
    /// The bank's "none" came at least the minimum age after the last send
    /// ([`requeue_after_none`]).
    MinAgeSinceLastSend,
    /// The first send is at least the maximum age old
    /// ([`escalate_to_review`]).
    MaxAgeExceeded,
}

impl Guard {
    /// What a caller must use to take a row with this guard.
    fn function(self) -> &'static str {
        match self {
            Guard::Unconditional => "payment::transition",
            Guard::NeverSent => "payment::cancel",
            Guard::MinAgeSinceLastSend => "payment::requeue_after_none",
            Guard::MaxAgeExceeded => "payment::escalate_to_review",
        }
    }
}

use Guard as G;
use PaymentStatus as S;
use TransitionCause as C;

/// Every legal move, exactly as DESIGN.md draws it. (from, to, cause, guard).
/// A pair with several causes has one row per cause.
pub const TRANSITIONS: &[(PaymentStatus, PaymentStatus, TransitionCause, Guard)] = &[
    // received ─┬─> pending_approval ─┬─> approved ─> queued
    //           │                     └─> declined
    //           └─> queued   (no approval needed)
    (
        S::Received,
        S::PendingApproval,
        C::ApprovalRequired,
        G::Unconditional,
    ),
    (
        S::PendingApproval,
        S::Approved,
        C::ApprovalGranted,
        G::Unconditional,
    ),
    (S::Approved, S::Queued, C::Released, G::Unconditional),
    (
        S::PendingApproval,
        S::Declined,
        C::Declined,
        G::Unconditional,
    ),
    (
        S::Received,
        S::Queued,
        C::NoApprovalNeeded,
        G::Unconditional,
    ),
    // queued ─> submitting ─┬─> accepted ─┬─> settled ─> returned
    //                       │             └─> failed
    //                       ├─> failed
    //                       ├─> queued     (NotProcessed)
    //                       └─> unknown
    (S::Queued, S::Submitting, C::Dispatched, G::Unconditional),
    (
        S::Submitting,
        S::Accepted,
        C::BankAccepted,
        G::Unconditional,
    ),
    (S::Accepted, S::Settled, C::BankSettled, G::Unconditional),
    (S::Settled, S::Returned, C::BankReturned, G::Unconditional),
    (S::Accepted, S::Failed, C::BankRejected, G::Unconditional),
    (S::Submitting, S::Failed, C::BankRejected, G::Unconditional),
    (S::Submitting, S::Queued, C::NotProcessed, G::Unconditional),
    (
        S::Submitting,
        S::Unknown,
        C::OutcomeUnknown,
        G::Unconditional,
    ),
    (S::Submitting, S::Unknown, C::LeaseExpired, G::Unconditional),
    // unknown ─┬─> accepted | failed   (status query answered)
    //          ├─> queued              (bank says "none", after the minimum age)
    //          └─> needs_review        (still unresolved after the maximum age)
    (
        S::Unknown,
        S::Accepted,
        C::StatusQueryAnswered,
        G::Unconditional,
    ),
    (
        S::Unknown,
        S::Failed,
        C::StatusQueryAnswered,
        G::Unconditional,
    ),
    (
        S::Unknown,
        S::Queued,
        C::BankSaysNone,
        G::MinAgeSinceLastSend,
    ),
    (
        S::Unknown,
        S::NeedsReview,
        C::MaxAgeExceeded,
        G::MaxAgeExceeded,
    ),
    // needs_review ─> accepted | failed | queued   (operator decision)
    (
        S::NeedsReview,
        S::Accepted,
        C::OperatorDecision,
        G::Unconditional,
    ),
    (
        S::NeedsReview,
        S::Failed,
        C::OperatorDecision,
        G::Unconditional,
    ),
    (
        S::NeedsReview,
        S::Queued,
        C::OperatorDecision,
        G::Unconditional,
    ),
    // cancelled: from received, pending_approval, approved, or queued if never sent
    (
        S::Received,
        S::Cancelled,
        C::CancelledByClient,
        G::Unconditional,
    ),
    (
        S::PendingApproval,
        S::Cancelled,
        C::CancelledByClient,
        G::Unconditional,
    ),
    (
        S::Approved,
        S::Cancelled,
        C::CancelledByClient,
        G::Unconditional,
    ),
    (S::Queued, S::Cancelled, C::CancelledByClient, G::NeverSent),
];

/// A legal move, checked against [`TRANSITIONS`] and its guard. Only this
/// module makes one, so holding a `Transition` means the move is legal; the
/// store writes it with the time and the bank's raw code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    from: PaymentStatus,
    to: PaymentStatus,
    cause: TransitionCause,
}

impl Transition {
    pub fn from(&self) -> PaymentStatus {
        self.from
    }

    pub fn to(&self) -> PaymentStatus {
        self.to
    }

    pub fn cause(&self) -> TransitionCause {
        self.cause
    }

    /// Whether this move makes the payment "ever sent" for good: entering
    /// `submitting` is committed before the bank call, so from then on the
    /// bank may have the instruction, even after a later `NotProcessed` or
    /// "none" (a delayed first request can still arrive).
    pub fn sets_ever_sent(&self) -> bool {
        self.to == PaymentStatus::Submitting
    }
}

/// A move the state machine does not allow, or a guarded move whose
/// condition does not hold. Maps to HTTP 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a payment cannot move from {from} to {to}; from {from} it may move to {}", list_or_none(&from.next_statuses()))]
    NoSuchArrow {
        from: PaymentStatus,
        to: PaymentStatus,
    },

    #[error(
        "cause {cause} does not move a payment from {from} to {to}; expected {}",
        list_or_none(expected)
    )]
    WrongCause {
        from: PaymentStatus,
        to: PaymentStatus,
        cause: TransitionCause,
        expected: Vec<TransitionCause>,
    },

    /// A guarded row was asked for through [`transition`], which cannot see
    /// the facts the guard is about.
    #[error(
        "moving from {from} to {to} ({cause}) has a condition; use {function}, which checks it"
    )]
    GuardNotChecked {
        from: PaymentStatus,
        to: PaymentStatus,
        cause: TransitionCause,
        function: &'static str,
    },

    #[error("the payment was never sent, so a {cause} answer cannot apply to it; expected a payment that has been sent at least once")]
    NeverSent { cause: TransitionCause },

    #[error("the bank's \"none\" came {age_s} s after the last send; a resend needs at least the bank's minimum age of {min_age_s} s, so query again later")]
    ResendTooEarly { age_s: i64, min_age_s: i64 },

    #[error("the first send is {age_s} s old; review is due only after the bank's maximum age of {max_age_s} s")]
    ReviewNotDue { age_s: i64, max_age_s: i64 },
}

impl TransitionError {
    /// A stable snake_case code for problem+json.
    pub fn code(&self) -> &'static str {
        match self {
            TransitionError::NoSuchArrow { .. } | TransitionError::WrongCause { .. } => {
                "illegal_transition"
            }
            TransitionError::GuardNotChecked { .. } => "transition_guard_not_checked",
            TransitionError::NeverSent { .. } => "payment_never_sent",
            TransitionError::ResendTooEarly { .. } => "resend_too_early",
            TransitionError::ReviewNotDue { .. } => "review_not_due",
        }
    }
}

fn list_or_none<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "nothing (it is final)".to_owned();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The row for (from, to, cause), or why there is none.
fn find_row(
    from: PaymentStatus,
    to: PaymentStatus,
    cause: TransitionCause,
) -> Result<Guard, TransitionError> {
    let rows = TRANSITIONS
        .iter()
        .filter(|(row_from, row_to, _, _)| *row_from == from && *row_to == to);
    let mut expected = Vec::new();
    for (_, _, row_cause, guard) in rows {
        if *row_cause == cause {
            return Ok(*guard);
        }
        expected.push(*row_cause);
    }
    if expected.is_empty() {
        Err(TransitionError::NoSuchArrow { from, to })
    } else {
        Err(TransitionError::WrongCause {
            from,
            to,
            cause,
            expected,
        })
    }
}

/// Moves a payment along an unguarded row of [`TRANSITIONS`]. Fails with
/// [`TransitionError::NoSuchArrow`] when the drawing has no arrow,
/// [`TransitionError::WrongCause`] when the arrow exists for other causes,
/// and [`TransitionError::GuardNotChecked`] for a guarded row (take those
/// through [`cancel`], [`requeue_after_none`] or [`escalate_to_review`]).
pub fn transition(
    from: PaymentStatus,
    to: PaymentStatus,
    cause: TransitionCause,
) -> Result<Transition, TransitionError> {
    match find_row(from, to, cause)? {
        Guard::Unconditional => Ok(Transition { from, to, cause }),
        guard => Err(TransitionError::GuardNotChecked {
            from,
            to,
            cause,
            function: guard.function(),
        }),
    }
}

// ---------------------------------------------------------------------------
// Cancel

/// Why a cancel is refused. The `Display` text is written for the client and
/// goes into the 409 as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CancelRefusal {
    /// Once sent, only the bank can stop a payment; a local cancel could
    /// leave money moving that we call cancelled.
    #[error("the payment may already have reached the bank (it is {status} and has been sent at least once), so it can no longer be cancelled here")]
    MayHaveReachedBank { status: PaymentStatus },

    #[error("the payment is already {status}, which is final; only received, pending_approval, approved, or queued payments that were never sent can be cancelled")]
    AlreadyFinal { status: PaymentStatus },
}

impl CancelRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            CancelRefusal::MayHaveReachedBank { .. } => "payment_may_have_reached_bank",
            CancelRefusal::AlreadyFinal { .. } => "payment_already_final",
        }
    }
}

/// Whether a payment in `status` may be cancelled locally. `ever_sent` is the
/// stored flag set when the payment first entered `submitting`; it is
/// checked for every status, not only `queued`, so a wrong status can never
/// cancel a payment the bank may have.
pub fn can_cancel(status: PaymentStatus, ever_sent: bool) -> Result<(), CancelRefusal> {
    if status.is_final() {
        return Err(CancelRefusal::AlreadyFinal { status });
    }
    let cancellable = TRANSITIONS.iter().any(|(from, to, cause, _)| {
        *from == status && *to == PaymentStatus::Cancelled && *cause == C::CancelledByClient
    });
    if !cancellable || ever_sent {
        return Err(CancelRefusal::MayHaveReachedBank { status });
    }
    Ok(())
}

/// The client's cancel, checked by [`can_cancel`].
pub fn cancel(from: PaymentStatus, ever_sent: bool) -> Result<Transition, CancelRefusal> {
    can_cancel(from, ever_sent)?;
    Ok(Transition {
        from,
        to: PaymentStatus::Cancelled,
        cause: C::CancelledByClient,
    })
}

// ---------------------------------------------------------------------------
// Unknown outcomes

/// Whether the bank's "no such instruction", received at `answer_none_at`,
/// may be believed and the payment resent with the same reference.
///
/// The age is counted from the LAST send, not the first: every send carries
/// the same reference, and the bank may not yet have ingested the newest
/// one, so "none" only says something about sends older than the bank's
/// minimum age. A negative `min_age` is a misconfiguration and never allows
/// a resend: the payment then waits for review instead of risking a double.
pub fn may_resend(
    answer_none_at: DateTime<Utc>,
    last_sent_at: DateTime<Utc>,
    min_age: Duration,
) -> bool {
    min_age >= Duration::zero() && answer_none_at.signed_duration_since(last_sent_at) >= min_age
}

/// `unknown → queued` after the bank said "none". `last_sent_at` is `None`
/// for a payment that was never sent (which cannot be `unknown` in a
/// consistent store, so it is refused).
pub fn requeue_after_none(
    from: PaymentStatus,
    answer_none_at: DateTime<Utc>,
    last_sent_at: Option<DateTime<Utc>>,
    min_age: Duration,
) -> Result<Transition, TransitionError> {
    let (to, cause) = (PaymentStatus::Queued, C::BankSaysNone);
    find_row(from, to, cause)?;
    let last_sent_at = last_sent_at.ok_or(TransitionError::NeverSent { cause })?;
    if !may_resend(answer_none_at, last_sent_at, min_age) {
        return Err(TransitionError::ResendTooEarly {
            age_s: answer_none_at
                .signed_duration_since(last_sent_at)
                .num_seconds(),
            min_age_s: min_age.num_seconds(),
        });
    }
    Ok(Transition { from, to, cause })
}

/// Whether a payment first sent at `first_sent_at` has been unresolved for
/// the bank's maximum age at `now`. The age counts from the FIRST send: the
/// question is how long the enterprise has not known where its money is. A
/// negative `max_age` counts as zero (review at once), the safe side.
pub fn review_due(now: DateTime<Utc>, first_sent_at: DateTime<Utc>, max_age: Duration) -> bool {
    now.signed_duration_since(first_sent_at) >= max_age.max(Duration::zero())
}

/// `unknown → needs_review` once [`review_due`] holds.
pub fn escalate_to_review(
    from: PaymentStatus,
    now: DateTime<Utc>,
    first_sent_at: Option<DateTime<Utc>>,
    max_age: Duration,
) -> Result<Transition, TransitionError> {
    let (to, cause) = (PaymentStatus::NeedsReview, C::MaxAgeExceeded);
    find_row(from, to, cause)?;
    let first_sent_at = first_sent_at.ok_or(TransitionError::NeverSent { cause })?;
    if !review_due(now, first_sent_at, max_age) {
        return Err(TransitionError::ReviewNotDue {
            age_s: now.signed_duration_since(first_sent_at).num_seconds(),
            max_age_s: max_age.num_seconds(),
        });
    }
    Ok(Transition { from, to, cause })
}

// ---------------------------------------------------------------------------
// Business references

/// Fewer random bits than this and a reference policy is refused: at 40 bits
/// one install could make a million payments with a collision chance of
/// about 1 in 2 million, and banks answer a reused reference with the old
/// payment's result, which would lose the new payment.
pub const MIN_REFERENCE_RANDOM_BITS: u32 = 40;
/// Longest install id accepted; install ids are short configuration values.
pub const MAX_INSTALL_ID_LEN: usize = 256;
/// A reference's time part counts ticks of this many milliseconds.
pub const REFERENCE_TIME_TICK_MS: i64 = 16;
/// A reference gets a time part only when at least this many random bits
/// are left beside it: within one 16 ms tick two references of one install
/// then collide with a chance of 2^-64, and across ticks never.
pub const REFERENCE_RANDOM_BITS_WITH_TIME: u32 = 64;
/// A request serial: 'R' and 16 upper-case hex digits (64 random bits).
pub const REQUEST_SERIAL_LEN: usize = 17;

/// The characters a bank accepts in a business reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceAlphabet {
    /// 0-9 and A-Z.
    UpperAlnum,
    /// 0-9, A-Z and a-z.
    Alnum,
    /// 0-9 only.
    Digits,
}

impl ReferenceAlphabet {
    fn chars(self) -> &'static [u8] {
        match self {
            ReferenceAlphabet::UpperAlnum => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            ReferenceAlphabet::Alnum => {
                b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
            }
            ReferenceAlphabet::Digits => b"0123456789",
        }
    }

    pub fn contains(self, ch: char) -> bool {
        ch.is_ascii() && self.chars().contains(&(ch as u8))
    }

    /// log2 of the alphabet's size in thousandths of a bit, rounded down, so
    /// bit counts made from it never overstate the randomness.
    fn millibits_per_char(self) -> u32 {
        match self {
            ReferenceAlphabet::UpperAlnum => 5_169, // log2(36) = 5.1699…
            ReferenceAlphabet::Alnum => 5_954,      // log2(62) = 5.9541…
            ReferenceAlphabet::Digits => 3_321,     // log2(10) = 3.3219…
        }
    }

    /// Length of the install tag: about 20 bits, enough that two installs
    /// rarely share a tag (and when they do, the random part still has to
    /// collide), short enough to leave room for the random part.
    fn install_tag_len(self) -> usize {
        match self {
            ReferenceAlphabet::UpperAlnum | ReferenceAlphabet::Alnum => 4,
            ReferenceAlphabet::Digits => 6,
        }
    }

    /// Length of the time part: enough characters that the count of
    /// [`REFERENCE_TIME_TICK_MS`] ticks wraps only after decades (36^7,
    /// 62^6 and 10^11 ticks of 16 ms are 39, 28 and 50 years).
    fn time_len(self) -> usize {
        match self {
            ReferenceAlphabet::UpperAlnum => 7,
            ReferenceAlphabet::Alnum => 6,
            ReferenceAlphabet::Digits => 11,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ReferenceAlphabet::UpperAlnum => "digits and upper-case ASCII letters",
            ReferenceAlphabet::Alnum => "digits and ASCII letters",
            ReferenceAlphabet::Digits => "digits",
        }
    }
}

/// A bank's format for business references (part of the bank's quirks).
/// A reference is `prefix`, an install tag, a time part when there is room
/// for it, and a random part, all in `alphabet`, at most `max_len`
/// characters, and never longer than [`MAX_BANK_REFERENCE_LEN`] even when
/// the bank allows more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencePolicy {
    pub max_len: usize,
    pub alphabet: ReferenceAlphabet,
    pub prefix: String,
}

impl ReferencePolicy {
    /// The length generated references have.
    pub fn reference_len(&self) -> usize {
        self.max_len.min(MAX_BANK_REFERENCE_LEN)
    }

    /// Characters after the prefix and the install tag.
    fn free_len(&self) -> usize {
        self.reference_len()
            .saturating_sub(self.prefix.len())
            .saturating_sub(self.alphabet.install_tag_len())
    }

    /// Characters of the time part: the alphabet's time length when the
    /// random part left after it still has at least
    /// [`REFERENCE_RANDOM_BITS_WITH_TIME`] bits, else none (all random).
    pub fn time_len(&self) -> usize {
        let time = self.alphabet.time_len();
        let Some(left) = self.free_len().checked_sub(time) else {
            return 0;
        };
        let bits = u32::try_from(left)
            .unwrap_or(u32::MAX)
            .saturating_mul(self.alphabet.millibits_per_char())
            / 1_000;
        if bits >= REFERENCE_RANDOM_BITS_WITH_TIME {
            time
        } else {
            0
        }
    }

    /// Characters of the random part.
    fn random_len(&self) -> usize {
        self.free_len() - self.time_len()
    }

    /// Random bits in each generated reference, rounded down.
    pub fn random_bits(&self) -> u32 {
        let chars = u32::try_from(self.random_len()).unwrap_or(u32::MAX);
        chars.saturating_mul(self.alphabet.millibits_per_char()) / 1_000
    }

    /// Checks that the policy can make references: the prefix is in the
    /// alphabet and leaves at least [`MIN_REFERENCE_RANDOM_BITS`].
    pub fn validate(&self) -> Result<(), DomainError> {
        let invalid = |detail: String| DomainError::InvalidIdentifier {
            kind: "reference policy",
            detail,
        };
        if let Some((index, ch)) = self
            .prefix
            .chars()
            .enumerate()
            .find(|(_, ch)| !self.alphabet.contains(*ch))
        {
            return Err(invalid(format!(
                "prefix character {} is {}; expected only {}",
                index + 1,
                describe_char(ch),
                self.alphabet.describe()
            )));
        }
        let bits = self.random_bits();
        if bits < MIN_REFERENCE_RANDOM_BITS {
            return Err(invalid(format!(
                "{} characters minus a {}-character prefix and a {}-character install tag leave {} random characters ({bits} bits); expected at least {MIN_REFERENCE_RANDOM_BITS} bits: allow longer references or shorten the prefix",
                self.reference_len(),
                self.prefix.len(),
                self.alphabet.install_tag_len(),
                self.random_len()
            )));
        }
        Ok(())
    }

    /// Checks that `reference` fits this policy: the prefix, the alphabet,
    /// and the length. Does not check the install tag.
    pub fn check(&self, reference: &BankReference) -> Result<(), DomainError> {
        let invalid = |detail: String| DomainError::InvalidIdentifier {
            kind: "bank reference",
            detail,
        };
        let text = reference.as_str();
        if !text.starts_with(&self.prefix) {
            return Err(invalid(format!(
                "it does not start with the bank's prefix {}; expected that prefix",
                crate::error::snippet(&self.prefix)
            )));
        }
        if let Some((index, ch)) = text
            .chars()
            .enumerate()
            .find(|(_, ch)| !self.alphabet.contains(*ch))
        {
            return Err(invalid(format!(
                "character {} is {}; expected only {}",
                index + 1,
                describe_char(ch),
                self.alphabet.describe()
            )));
        }
        if text.len() > self.reference_len() {
            return Err(invalid(format!(
                "it has {} characters; the bank allows at most {}",
                text.len(),
                self.reference_len()
            )));
        }
        Ok(())
    }
}

/// The install tag: characters of `alphabet` from SHA-256 of the install
/// id, so every instance of one install agrees on it and other installs
/// (reinstalls, other environments, which must get their own install id)
/// almost always differ.
fn install_tag(install_id: &str, alphabet: ReferenceAlphabet) -> String {
    let digest = Sha256::digest(install_id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let mut value = u64::from_be_bytes(head);
    let chars = alphabet.chars();
    let base = chars.len() as u64;
    let mut tag = String::with_capacity(alphabet.install_tag_len());
    for _ in 0..alphabet.install_tag_len() {
        // Indexing is in bounds: value % base < chars.len().
        tag.push(char::from(chars[(value % base) as usize]));
        value /= base;
    }
    tag
}

/// A new business reference for a payment made at `at` under `policy`: the
/// prefix, the install tag of `install_id`, a time part, and random
/// characters filling the rest up to [`ReferencePolicy::reference_len`]
/// (at least 64 random bits when the length allows, never fewer than
/// [`MIN_REFERENCE_RANDOM_BITS`]).
///
/// The time part ([`ReferencePolicy::time_len`] characters, present only
/// when at least [`REFERENCE_RANDOM_BITS_WITH_TIME`] random bits are left
/// beside it) is the count of [`REFERENCE_TIME_TICK_MS`] ms ticks since the
/// Unix epoch in the alphabet's digits, most significant first. So one
/// install's references sort by creation time, and the store's unique index
/// over them grows at its end instead of taking a random page per payment
/// (BENCHMARKS.md, issue 5); it says to the bank no more than the payment
/// id's own time part says to anyone who sees it.
///
/// Generated once per payment and stored before the first send; every
/// resend reuses it. Fails when the install id is empty or too long, or the
/// policy cannot make safe references ([`ReferencePolicy::validate`]).
pub fn generate_business_reference(
    install_id: &str,
    at: DateTime<Utc>,
    rng: &dyn RandomSource,
    policy: &ReferencePolicy,
) -> Result<BankReference, DomainError> {
    if install_id.trim().is_empty() || install_id.len() > MAX_INSTALL_ID_LEN {
        return Err(DomainError::InvalidIdentifier {
            kind: "install id",
            detail: format!(
                "it has {} bytes{}; expected 1 to {MAX_INSTALL_ID_LEN} bytes, not only spaces",
                install_id.len(),
                if install_id.is_empty() {
                    ""
                } else {
                    " or is blank"
                }
            ),
        });
    }
    policy.validate()?;
    let chars = policy.alphabet.chars();
    let base = chars.len() as u64;
    let mut text = String::with_capacity(policy.reference_len());
    text.push_str(&policy.prefix);
    text.push_str(&install_tag(install_id, policy.alphabet));
    // Ticks before the epoch (a clock set far back) count as 0; the count
    // wraps after decades (`time_len`), which only moves where the index grows.
    let mut ticks = u64::try_from(at.timestamp_millis() / REFERENCE_TIME_TICK_MS).unwrap_or(0);
    let mut time = vec![0u8; policy.time_len()];
    for slot in time.iter_mut().rev() {
        // Indexing is in bounds: ticks % base < chars.len().
        *slot = chars[(ticks % base) as usize];
        ticks /= base;
    }
    text.extend(time.into_iter().map(char::from));
    for _ in 0..policy.random_len() {
        // A 64-bit draw reduced modulo at most 62 is biased by under 2^-58
        // per character: nothing a collision estimate notices, and no
        // rejection loop that a stuck generator could spin forever.
        text.push(char::from(chars[(rng.next_u64() % base) as usize]));
    }
    BankReference::parse(&text)
}

/// A fresh request serial for one bank call: 'R' and 16 upper-case hex
/// digits. Never used to ask about a payment; that is what the business
/// reference is for.
pub fn generate_request_serial(rng: &dyn RandomSource) -> String {
    format!("R{:016X}", rng.next_u64())
}

// ---------------------------------------------------------------------------
// Intake values

/// Longest creditor name, in characters.
pub const MAX_CREDITOR_NAME_CHARS: usize = 200;
/// Longest creditor bank name, in characters.
pub const MAX_CREDITOR_BANK_NAME_CHARS: usize = 200;
/// Longest creditor account as typed (with grouping spaces), in characters.
pub const MAX_CREDITOR_ACCOUNT_CHARS: usize = 64;
/// Longest remittance text, in characters (ISO 20022's `Max140Text`).
pub const MAX_PAYMENT_REMITTANCE_CHARS: usize = 140;

/// Characters refused in names and remittance: control characters break
/// bank messages and logs, and the bidirectional overrides and line
/// separators can make an approver read a different name than the bank gets.
fn is_forbidden_text_char(ch: char) -> bool {
    ch.is_control()
        || matches!(ch, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` trimmed, checked to be non-empty, at most `max_chars` characters
/// and free of forbidden characters. `kind` names the field in the error.
fn checked_text(text: &str, kind: &'static str, max_chars: usize) -> Result<String, DomainError> {
    let invalid = |detail: String| DomainError::InvalidIdentifier { kind, detail };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid(format!(
            "it is empty or blank; expected 1 to {max_chars} characters"
        )));
    }
    if let Some((index, ch)) = trimmed
        .chars()
        .enumerate()
        .find(|(_, ch)| is_forbidden_text_char(*ch))
    {
        return Err(invalid(format!(
            "character {} (after trimming) is {}; expected text without control or direction-override characters",
            index + 1,
            describe_char(ch)
        )));
    }
    let chars = trimmed.chars().count();
    if chars > max_chars {
        return Err(invalid(format!(
            "it has {chars} characters; expected at most {max_chars}"
        )));
    }
    Ok(trimmed.to_owned())
}

/// The account of a creditor as typed: 1 to 64 ASCII letters, digits, '-'
/// and grouping spaces; kept without the spaces. The number never appears
/// in an error.
fn creditor_account(text: &str) -> Result<String, DomainError> {
    let invalid = |detail: String| DomainError::InvalidAccountNumber { detail };
    const EXPECTED: &str = "expected ASCII letters, digits, '-' and spaces";
    if let Some(index) = text
        .chars()
        .position(|ch| !(ch.is_ascii_alphanumeric() || ch == '-' || ch == ' '))
    {
        return Err(invalid(format!(
            "character {} of the creditor account is not allowed; {EXPECTED}",
            index + 1
        )));
    }
    // ASCII only from here, so bytes are characters.
    if text.len() > MAX_CREDITOR_ACCOUNT_CHARS {
        return Err(invalid(format!(
            "the creditor account has {} characters; expected at most {MAX_CREDITOR_ACCOUNT_CHARS}",
            text.len()
        )));
    }
    let compact: String = text.chars().filter(|ch| *ch != ' ').collect();
    if compact.is_empty() {
        return Err(invalid(format!(
            "the creditor account is empty; {EXPECTED}, at least one letter or digit"
        )));
    }
    Ok(compact)
}

/// Whom a payment goes to, validated at intake. At least one of a CNAPS
/// bank code and a BIC identifies the creditor's bank (both may be given;
/// the connector picks the one its bank routes by). `Debug` masks the
/// account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CreditorFields", into = "CreditorFields")]
pub struct Creditor {
    name: String,
    account: String,
    bank_code: Option<CnapsCode>,
    bic: Option<Bic>,
    bank_name: Option<String>,
    kind: CreditorType,
}

/// The wire form of [`Creditor`] (the API body's `creditor` object).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditorFields {
    name: String,
    account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bank_code: Option<CnapsCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bic: Option<Bic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bank_name: Option<String>,
    #[serde(rename = "type")]
    kind: CreditorType,
}

impl TryFrom<CreditorFields> for Creditor {
    type Error = DomainError;

    fn try_from(f: CreditorFields) -> Result<Self, Self::Error> {
        Creditor::new(
            &f.name,
            &f.account,
            f.bank_code,
            f.bic,
            f.bank_name.as_deref(),
            f.kind,
        )
    }
}

impl From<Creditor> for CreditorFields {
    fn from(c: Creditor) -> Self {
        CreditorFields {
            name: c.name,
            account: c.account,
            bank_code: c.bank_code,
            bic: c.bic,
            bank_name: c.bank_name,
            kind: c.kind,
        }
    }
}

impl Creditor {
    /// Names are trimmed and must be 1 to 200 characters without control
    /// characters; the account follows the rules of the creditor account
    /// (1 to 64 ASCII letters, digits, '-' and spaces, stored without
    /// spaces); `bank_code` or `bic` (or both) must be given.
    pub fn new(
        name: &str,
        account: &str,
        bank_code: Option<CnapsCode>,
        bic: Option<Bic>,
        bank_name: Option<&str>,
        kind: CreditorType,
    ) -> Result<Creditor, DomainError> {
        let name = checked_text(name, "creditor name", MAX_CREDITOR_NAME_CHARS)?;
        let account = creditor_account(account)?;
        if bank_code.is_none() && bic.is_none() {
            return Err(DomainError::InvalidIdentifier {
                kind: "creditor bank",
                detail: "neither bank_code (CNAPS) nor bic is given; expected at least one"
                    .to_owned(),
            });
        }
        let bank_name = bank_name
            .map(|text| checked_text(text, "creditor bank name", MAX_CREDITOR_BANK_NAME_CHARS))
            .transpose()?;
        Ok(Creditor {
            name,
            account,
            bank_code,
            bic,
            bank_name,
            kind,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The account without grouping spaces, unmasked (for the bank message).
    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn bank_code(&self) -> Option<&CnapsCode> {
        self.bank_code.as_ref()
    }

    pub fn bic(&self) -> Option<&Bic> {
        self.bic.as_ref()
    }

    pub fn bank_name(&self) -> Option<&str> {
        self.bank_name.as_deref()
    }

    pub fn kind(&self) -> CreditorType {
        self.kind
    }

    /// The account with all but the last four characters as '*'.
    pub fn masked_account(&self) -> String {
        let count = self.account.chars().count();
        let hidden = if count <= 4 { count } else { count - 4 };
        self.account
            .chars()
            .enumerate()
            .map(|(index, ch)| if index < hidden { '*' } else { ch })
            .collect()
    }
}

impl fmt::Debug for Creditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Creditor")
            .field("name", &self.name)
            .field("account", &self.masked_account())
            .field("bank_code", &self.bank_code)
            .field("bic", &self.bic)
            .field("bank_name", &self.bank_name)
            .field("kind", &self.kind)
            .finish()
    }
}

/// The payment's remittance text (用途/附言): trimmed, 1 to 140 characters,
/// no control characters. Whether a bank's charset and byte limit can carry
/// it is checked by the bank's connector at intake.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Remittance(String);

impl Remittance {
    pub fn parse(text: &str) -> Result<Remittance, DomainError> {
        checked_text(text, "remittance", MAX_PAYMENT_REMITTANCE_CHARS).map(Remittance)
    }
}

crate::ids::string_id_impls!(Remittance);
