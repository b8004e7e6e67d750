//! The payment workers: the dispatcher sends queued payments, the status
//! poller asks the bank about accepted and unknown ones (and watches settled
//! ones for returns), the reaper turns expired `submitting` into `unknown`.
//!
//! The rules they keep (DESIGN.md, "Payment state machine"):
//! - work is claimed with a lease and a fencing token; every write-back is a
//!   compare-and-set on (status, token), so a worker that lost its lease
//!   cannot overwrite what another did;
//! - `submitting` is committed before the bank is called, and no database
//!   transaction is open during the call;
//! - after any doubt (`OutcomeUnknown`, an expired lease) the payment is only
//!   ever asked about, by its business reference; it is resent (same
//!   reference) only when the bank positively says "none" and the last send
//!   is older than the bank's minimum age, and goes to `needs_review` when
//!   still unknown after the maximum age;
//! - `NotProcessed` is retried with exponential backoff and jitter; calls to
//!   a bank go through its concurrency and rate limits, and a circuit breaker
//!   stops new submissions to a bank that keeps failing.
//!
//! A payment that is looked at and found unchanged is rescheduled (its next
//! due time moved on, its lease released), so claims, ordered by due time,
//! reach every waiting payment in turn; settled payments are watched for a
//! return for `return_watch_s` after they settled, then no more.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use banks::{BankError, BankPaymentStatus, StatusAnswer};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use domain::{AccountNumber, BankId, PaymentStatus, RandomSource, TransitionCause};
use store::{
    ClaimedPayment, NewAuditRecord, PaymentChange, PaymentStep, StoreError, StoredPayment,
    TransitionGuard,
};
use tokio::sync::{watch, Notify};

mod batches;

use crate::{
    banking::{BankDirectory, ConnectionRuntime},
    config::{AccountConfig, Config, PaymentsConfig},
    failpoints,
};

/// One status step a worker writes: where to, why, the bank's code,
/// message and payment id, and when the payment is due again.
struct Move {
    to: PaymentStatus,
    cause: TransitionCause,
    bank: (Option<String>, Option<String>, Option<String>),
    next_attempt_at: Option<DateTime<Utc>>,
}

/// What a found bank status means for a payment in `accepted` or `settled`.
enum Found {
    /// These steps, written together; the last releases the lease.
    Moves(Vec<Move>),
    /// Nothing changed: ask again at the next poll, this instant.
    KeepWatching(DateTime<Utc>),
    /// Settled, and the return window is over: stop asking.
    StopWatching,
}

/// The wire instruction for a stored payment.
pub fn to_bank_instruction(
    p: &store::PaymentInstruction,
    debtor: &AccountNumber,
) -> banks::PaymentInstruction {
    banks::PaymentInstruction {
        reference: p.business_reference.clone(),
        debtor_account: debtor.clone(),
        amount: p.amount,
        creditor_name: p.creditor_name.clone(),
        creditor_account: p.creditor_account.clone(),
        creditor_bank_code: p.creditor_bank_code.clone(),
        creditor_bic: p.creditor_bic.clone(),
        creditor_bank_name: p.creditor_bank_name.clone(),
        creditor_type: p.creditor_type,
        remittance: p.remittance.clone(),
        purpose: p.purpose.clone(),
        urgency: p.urgency,
        requested_execution_date: p.requested_execution_date,
    }
}

/// The wire form of one batch item.
pub fn to_bank_item(i: &store::NewBatchItem) -> banks::BatchItemInstruction {
    banks::BatchItemInstruction {
        reference: i.business_reference.clone(),
        amount: i.amount,
        creditor_name: i.creditor_name.clone(),
        creditor_account: i.creditor_account.clone(),
        creditor_bank_code: i.creditor_bank_code.clone(),
        creditor_bic: i.creditor_bic.clone(),
        creditor_bank_name: i.creditor_bank_name.clone(),
        creditor_type: i.creditor_type,
        remittance: i.remittance.clone(),
        purpose: i.purpose.clone(),
    }
}

/// The bank's own intake rules for a payment (charset, byte lengths).
pub fn intake_check(
    conn: &ConnectionRuntime,
    payment: &banks::PaymentInstruction,
) -> Result<(), Vec<banks::IntakeProblem>> {
    conn.connector().check_payment(payment)
}

/// Consecutive failures, and until when the breaker is open.
type BreakerState = (u32, Option<DateTime<Utc>>);

/// Claimed payments of one connection and debtor account, asked about together.
type PollGroup = (Arc<ConnectionRuntime>, AccountNumber, Vec<ClaimedPayment>);

/// Consecutive-failure circuit breaker per bank.
#[derive(Debug, Default)]
struct Breakers {
    banks: Mutex<HashMap<BankId, BreakerState>>,
}

impl Breakers {
    fn open_until(&self, bank: &BankId, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let map = self.banks.lock().unwrap_or_else(|p| p.into_inner());
        map.get(bank)
            .and_then(|(_, until)| *until)
            .filter(|u| *u > now)
    }

    fn record(&self, bank: &BankId, ok: bool, now: DateTime<Utc>, failures: u32, open_s: u64) {
        let mut map = self.banks.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(bank.clone()).or_insert((0, None));
        if ok {
            *entry = (0, None);
        } else {
            entry.0 = entry.0.saturating_add(1);
            if entry.0 >= failures.max(1) {
                entry.1 = Some(now + ChronoDuration::seconds(open_s as i64));
                tracing::warn!(bank = %bank, failures = entry.0, open_s, "circuit breaker open: no new submissions to this bank for a while");
                metrics::counter!("payment_breaker_opened_total", "bank" => bank.to_string())
                    .increment(1);
            }
        }
    }
}

/// Everything the workers need; one per gateway instance.
#[derive(Debug)]
pub struct PaymentWorkers {
    directory: Arc<BankDirectory>,
    store: Arc<dyn store::Store>,
    clock: Arc<dyn domain::Clock>,
    settings: PaymentsConfig,
    accounts: BTreeMap<domain::AccountId, AccountConfig>,
    /// This instance's name in leases.
    owner: String,
    breakers: Breakers,
    rng: domain::ThreadRandom,
    pub wake: Arc<Notify>,
}

const ACTOR: &str = "system:payment-worker";

impl PaymentWorkers {
    pub fn new(
        config: &Config,
        directory: Arc<BankDirectory>,
        store: Arc<dyn store::Store>,
        clock: Arc<dyn domain::Clock>,
        wake: Arc<Notify>,
    ) -> PaymentWorkers {
        PaymentWorkers {
            directory,
            store,
            clock,
            settings: config.payments.clone(),
            accounts: config
                .accounts
                .iter()
                .map(|a| (a.id.clone(), a.clone()))
                .collect(),
            owner: format!("gw-{}", uuid::Uuid::new_v4().simple()),
            breakers: Breakers::default(),
            rng: domain::ThreadRandom,
            wake,
        }
    }

    fn connection_of(&self, p: &StoredPayment) -> Option<(&AccountConfig, Arc<ConnectionRuntime>)> {
        let account = self.accounts.get(&p.instruction.debtor_account_id)?;
        let conn = self.directory.connections.get(&account.connection)?.clone();
        Some((account, conn))
    }

    fn quirks(&self, bank: &BankId) -> Option<&crate::config::BankQuirks> {
        self.directory
            .banks
            .iter()
            .find(|b| &b.id == bank)
            .map(|b| &b.quirks)
    }

    /// The bank's circuit breaker settings (failures, open seconds), read
    /// without copying its quirks: this is on every payment's path.
    fn breaker_limits(&self, bank: &BankId) -> (u32, u64) {
        match self.quirks(bank) {
            Some(q) => (q.breaker_failures, q.breaker_open_s),
            None => {
                let d = crate::config::BankQuirks::default();
                (d.breaker_failures, d.breaker_open_s)
            }
        }
    }

    /// Exponential backoff with jitter: base·2^(attempts−1), capped, then a
    /// random 50–100 % of it so retries of many payments spread out.
    fn backoff(&self, attempts: i64) -> ChronoDuration {
        let exp = u32::try_from(attempts.clamp(1, 30) - 1).unwrap_or(0);
        let full = self
            .settings
            .backoff_base_ms
            .saturating_mul(1u64 << exp.min(30))
            .min(self.settings.backoff_max_ms);
        let jitter = self.rng.next_u64() % (full / 2 + 1);
        ChronoDuration::milliseconds((full / 2 + jitter) as i64)
    }

    /// One compare-and-set step of a claimed payment. `Ok(None)` when
    /// another worker got there first (the write is dropped, as it must be).
    /// (Each argument is one column of the drawing's arrows; a struct would
    /// only rename them.)
    #[allow(clippy::too_many_arguments)]
    async fn step(
        &self,
        p: &StoredPayment,
        from: PaymentStatus,
        fencing_token: Option<i64>,
        to: PaymentStatus,
        cause: TransitionCause,
        bank: (Option<String>, Option<String>, Option<String>),
        next_attempt_at: Option<DateTime<Utc>>,
        release_lease: bool,
    ) -> Result<Option<StoredPayment>, StoreError> {
        let only = Move {
            to,
            cause,
            bank,
            next_attempt_at,
        };
        self.walk(p, from, fencing_token, vec![only], release_lease)
            .await
    }

    /// Several steps of a claimed payment written together, in one
    /// transaction (a bank answer that accepted and already settled it):
    /// each with its own history row, event and audit record, all or none.
    /// Only the last step may release the lease. `Ok(None)` when another
    /// worker got there first.
    async fn walk(
        &self,
        p: &StoredPayment,
        from: PaymentStatus,
        fencing_token: Option<i64>,
        moves: Vec<Move>,
        release_lease: bool,
    ) -> Result<Option<StoredPayment>, StoreError> {
        let now = self.clock.now();
        let last = moves.len().saturating_sub(1);
        let mut steps = Vec::with_capacity(moves.len());
        let mut counted = Vec::with_capacity(moves.len());
        let mut step_from = from;
        for (n, m) in moves.into_iter().enumerate() {
            let (bank_code, bank_message, bank_payment_id) = (
                bank_text(m.bank.0),
                bank_text(m.bank.1),
                bank_text(m.bank.2),
            );
            let audit = NewAuditRecord {
                at: now,
                actor: ACTOR.to_owned(),
                action: "payment.transition".to_owned(),
                object: format!("payment:{}", p.instruction.id),
                request_id: None,
                outcome: m.to.as_str().to_owned(),
                details: serde_json::json!({
                    "from": step_from.as_str(),
                    "cause": m.cause.as_str(),
                    "bank_code": bank_code,
                    "reference": p.instruction.business_reference.as_str(),
                }),
            };
            steps.push(PaymentStep {
                change: PaymentChange {
                    to_status: m.to.as_str().to_owned(),
                    cause: m.cause.as_str().to_owned(),
                    bank_code,
                    bank_message,
                    bank_payment_id,
                    mark_sent: m.to == PaymentStatus::Submitting,
                    next_attempt_at: m.next_attempt_at,
                    release_lease: release_lease && n == last,
                },
                audit,
            });
            counted.push(m.to);
            step_from = m.to;
        }
        let result = self
            .store
            .transition_payment_steps(
                &p.instruction.id,
                TransitionGuard {
                    from_status: from.as_str().to_owned(),
                    fencing_token,
                },
                steps,
                store::Actor {
                    name: ACTOR.to_owned(),
                    request_id: None,
                },
            )
            .await;
        match result {
            Ok(updated) => {
                for to in counted {
                    metrics::counter!("payment_transitions_total", "to" => to.as_str())
                        .increment(1);
                }
                Ok(Some(updated))
            }
            Err(StoreError::Conflict { .. }) => {
                tracing::info!(payment = %p.instruction.id, from = %from, to = %step_from, "payment moved on meanwhile; this worker's write is dropped");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends one claimed, queued payment.
    async fn dispatch_one(&self, claimed: ClaimedPayment) -> Result<(), StoreError> {
        let token = Some(claimed.fencing_token);
        let p = claimed.payment;
        let Some((account, conn)) = self.connection_of(&p) else {
            tracing::error!(payment = %p.instruction.id, "the payment's debtor account is no longer configured; left queued");
            return Ok(());
        };
        let now = self.clock.now();
        if let Some(until) = self.breakers.open_until(&conn.bank_id, now) {
            // Not sent, still queued: due again when the breaker closes.
            tracing::debug!(payment = %p.instruction.id, bank = %conn.bank_id, %until, "breaker open; not sending now");
            return self.keep_watching(&p, token, until).await;
        }
        // Wait for the bank's limits BEFORE committing `submitting`: a payment
        // must not sit in `submitting` behind the gate (the reaper would call
        // it unknown and the minimum age would count from a send that has not
        // happened yet). The permit is held until the call is answered.
        let admitted = conn.admit().await;
        let Some(p) = self
            .step(
                &p,
                PaymentStatus::Queued,
                token,
                PaymentStatus::Submitting,
                TransitionCause::Dispatched,
                (None, None, None),
                None,
                false,
            )
            .await?
        else {
            return Ok(());
        };
        failpoints::hit(failpoints::AFTER_SUBMITTING_COMMIT);
        let wire = to_bank_instruction(&p.instruction, &account.number);
        // The call's exchange record names this payment without a look-up.
        let owner = self.directory.reference_owners.hold(
            p.instruction.business_reference.as_str(),
            format!("payment:{}", p.instruction.id),
        );
        let result = conn.connector().submit_payment(&wire).await;
        drop(owner);
        // Answered: the bank's call slot goes to the next payment now, not
        // after this payment's write-backs (they call no bank).
        drop(admitted);
        failpoints::hit(failpoints::AFTER_BANK_ANSWER);
        let now = self.clock.now();
        let poll_at = Some(now + ChronoDuration::milliseconds(self.settings.status_poll_ms as i64));
        let (breaker_failures, breaker_open_s) = self.breaker_limits(&conn.bank_id);
        self.breakers.record(
            &conn.bank_id,
            !matches!(
                result,
                Err(BankError::NotProcessed { .. } | BankError::OutcomeUnknown { .. })
            ),
            now,
            breaker_failures,
            breaker_open_s,
        );
        match result {
            Ok(receipt) => {
                let bank = (
                    Some(receipt.bank_code.clone()),
                    Some(receipt.bank_message.clone()),
                    receipt.bank_payment_id.clone(),
                );
                match receipt.status {
                    BankPaymentStatus::Failed { code, message } => {
                        self.step(
                            &p,
                            PaymentStatus::Submitting,
                            token,
                            PaymentStatus::Failed,
                            TransitionCause::BankRejected,
                            (Some(code), Some(message), receipt.bank_payment_id),
                            None,
                            true,
                        )
                        .await?;
                    }
                    other => {
                        let accepted = Move {
                            to: PaymentStatus::Accepted,
                            cause: TransitionCause::BankAccepted,
                            bank,
                            next_attempt_at: poll_at,
                        };
                        self.accept_found(&p, PaymentStatus::Submitting, token, accepted, other)
                            .await?;
                    }
                }
            }
            Err(BankError::Rejected { code, message, .. }) => {
                self.step(
                    &p,
                    PaymentStatus::Submitting,
                    token,
                    PaymentStatus::Failed,
                    TransitionCause::BankRejected,
                    (Some(code), Some(message), None),
                    None,
                    true,
                )
                .await?;
            }
            Err(BankError::NotProcessed { reason, .. }) => {
                let retry_at = Some(now + self.backoff(p.send_attempts));
                self.step(
                    &p,
                    PaymentStatus::Submitting,
                    token,
                    PaymentStatus::Queued,
                    TransitionCause::NotProcessed,
                    (None, Some(reason), None),
                    retry_at,
                    true,
                )
                .await?;
            }
            Err(BankError::OutcomeUnknown { reason, .. }) => {
                self.step(
                    &p,
                    PaymentStatus::Submitting,
                    token,
                    PaymentStatus::Unknown,
                    TransitionCause::OutcomeUnknown,
                    (None, Some(reason), None),
                    poll_at,
                    true,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// What a found status means for a payment in `accepted` or `settled`:
    /// the steps through the states in between, or nothing to write.
    fn found(
        &self,
        p: &StoredPayment,
        from: PaymentStatus,
        status: BankPaymentStatus,
        bank_payment_id: Option<String>,
    ) -> Found {
        let now = self.clock.now();
        let watch_until =
            p.updated_at + ChronoDuration::seconds(self.settings.return_watch_s as i64);
        let next_poll = now + ChronoDuration::milliseconds(self.settings.status_poll_ms as i64);
        let settled = |bank_payment_id| Move {
            to: PaymentStatus::Settled,
            cause: TransitionCause::BankSettled,
            bank: (None, None, bank_payment_id),
            // Settled, and watched for a return for a while.
            next_attempt_at: Some(next_poll),
        };
        let returned = |code, message| Move {
            to: PaymentStatus::Returned,
            cause: TransitionCause::BankReturned,
            bank: (Some(code), Some(message), None),
            next_attempt_at: None,
        };
        match (from, status) {
            (PaymentStatus::Accepted, BankPaymentStatus::Settled) => {
                Found::Moves(vec![settled(bank_payment_id)])
            }
            (PaymentStatus::Accepted, BankPaymentStatus::Failed { code, message }) => {
                Found::Moves(vec![Move {
                    to: PaymentStatus::Failed,
                    cause: TransitionCause::BankRejected,
                    bank: (Some(code), Some(message), bank_payment_id),
                    next_attempt_at: None,
                }])
            }
            (PaymentStatus::Accepted, BankPaymentStatus::Returned { code, message }) => {
                // Settled, then returned: both steps recorded, in one write.
                Found::Moves(vec![settled(bank_payment_id), returned(code, message)])
            }
            (PaymentStatus::Settled, BankPaymentStatus::Returned { code, message }) => {
                Found::Moves(vec![returned(code, message)])
            }
            // The return window is over: stop looking at it.
            (PaymentStatus::Settled, _) if now >= watch_until => Found::StopWatching,
            _ => Found::KeepWatching(next_poll),
        }
    }

    /// Applies a found status to a payment in `accepted` or `settled`,
    /// walking through the states in between in one write.
    async fn apply_found(
        &self,
        p: &StoredPayment,
        from: PaymentStatus,
        token: Option<i64>,
        status: BankPaymentStatus,
        bank_payment_id: Option<String>,
    ) -> Result<(), StoreError> {
        match self.found(p, from, status, bank_payment_id) {
            Found::Moves(moves) => {
                self.walk(p, from, token, moves, true).await?;
            }
            Found::StopWatching => {
                self.store
                    .reschedule_payment(&p.instruction.id, token.unwrap_or(p.fencing_token), None)
                    .await
                    .or_else(ignore_conflict)?;
            }
            Found::KeepWatching(next_poll) => {
                self.keep_watching(p, token, next_poll).await?;
            }
        }
        Ok(())
    }

    /// A bank answer that the payment is accepted, with the status found
    /// beside it (submitted and already settled, say): `accepted` and the
    /// steps after it are written together, in one transaction, and the
    /// lease is released with the last of them. Accepted and nothing more
    /// yet: accepted, due again at `accepted.next_attempt_at`.
    async fn accept_found(
        &self,
        p: &StoredPayment,
        from: PaymentStatus,
        token: Option<i64>,
        accepted: Move,
        status: BankPaymentStatus,
    ) -> Result<(), StoreError> {
        let mut moves = vec![accepted];
        // The accepted step has set the bank's payment id already.
        if let Found::Moves(then) = self.found(p, PaymentStatus::Accepted, status, None) {
            moves.extend(then);
        }
        self.walk(p, from, token, moves, true).await?;
        Ok(())
    }

    /// Nothing changed: look at the payment again at `next` (and let the
    /// others due before it go first — claims are ordered by due time).
    async fn keep_watching(
        &self,
        p: &StoredPayment,
        token: Option<i64>,
        next: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.store
            .reschedule_payment(
                &p.instruction.id,
                token.unwrap_or(p.fencing_token),
                Some(next),
            )
            .await
            .or_else(ignore_conflict)
    }

    /// The question could not be asked: every payment of it is due again
    /// after a backoff.
    async fn retry_group_later(
        &self,
        conn: &ConnectionRuntime,
        group: &[ClaimedPayment],
    ) -> Result<(), StoreError> {
        let next = self.clock.now() + self.backoff(2);
        let quirks = self.quirks(&conn.bank_id).cloned().unwrap_or_default();
        for c in group {
            // A bank that cannot be asked must not keep an unknown payment
            // unknown for ever: past the maximum age an operator looks.
            if !self
                .escalate_if_overdue(&c.payment, Some(c.fencing_token), &quirks)
                .await?
            {
                self.keep_watching(&c.payment, Some(c.fencing_token), next)
                    .await?;
            }
        }
        Ok(())
    }

    /// Moves an `unknown` payment to `needs_review` once the bank's maximum
    /// age since its first send has passed; says whether it did.
    async fn escalate_if_overdue(
        &self,
        p: &StoredPayment,
        token: Option<i64>,
        quirks: &crate::config::BankQuirks,
    ) -> Result<bool, StoreError> {
        if p.status != PaymentStatus::Unknown.as_str() {
            return Ok(false);
        }
        let max_age = ChronoDuration::seconds(quirks.max_unknown_age_s as i64);
        if domain::escalate_to_review(
            PaymentStatus::Unknown,
            self.clock.now(),
            p.first_sent_at,
            max_age,
        )
        .is_err()
        {
            return Ok(false);
        }
        self.step(
            p,
            PaymentStatus::Unknown,
            token,
            PaymentStatus::NeedsReview,
            TransitionCause::MaxAgeExceeded,
            (None, None, None),
            None,
            true,
        )
        .await?;
        Ok(true)
    }

    /// Asks the bank about claimed payments of one connection and account.
    async fn poll_group(
        &self,
        conn: &ConnectionRuntime,
        debtor: &AccountNumber,
        group: Vec<ClaimedPayment>,
    ) -> Result<(), StoreError> {
        let refs: Vec<domain::BankReference> = group
            .iter()
            .map(|c| c.payment.instruction.business_reference.clone())
            .collect();
        let owners: Vec<_> = group
            .iter()
            .map(|c| {
                self.directory.reference_owners.hold(
                    c.payment.instruction.business_reference.as_str(),
                    format!("payment:{}", c.payment.instruction.id),
                )
            })
            .collect();
        let answered = conn
            .gated(conn.connector().payment_status(debtor, &refs))
            .await;
        drop(owners);
        let answers = match answered {
            Ok(a) if a.len() == refs.len() => a,
            Ok(_) => {
                tracing::error!(bank = %conn.bank_id, "status answer count differs from the question; asking again later");
                return self.retry_group_later(conn, &group).await;
            }
            Err(e) => {
                tracing::warn!(bank = %conn.bank_id, error = %e, "status query failed; asking again later");
                return self.retry_group_later(conn, &group).await;
            }
        };
        let now = self.clock.now();
        let next_poll = now + ChronoDuration::milliseconds(self.settings.status_poll_ms as i64);
        let quirks = self.quirks(&conn.bank_id).cloned().unwrap_or_default();
        for (claimed, answer) in group.into_iter().zip(answers) {
            let token = Some(claimed.fencing_token);
            let p = claimed.payment;
            let Ok(from) = PaymentStatus::parse(&p.status) else {
                continue;
            };
            match (from, answer) {
                (
                    PaymentStatus::Unknown,
                    StatusAnswer::Found {
                        status,
                        bank_payment_id,
                        bank_code,
                        bank_message,
                    },
                ) => match status {
                    BankPaymentStatus::Failed { code, message } => {
                        self.step(
                            &p,
                            from,
                            token,
                            PaymentStatus::Failed,
                            TransitionCause::StatusQueryAnswered,
                            (Some(code), Some(message), bank_payment_id),
                            None,
                            true,
                        )
                        .await?;
                    }
                    other => {
                        let accepted = Move {
                            to: PaymentStatus::Accepted,
                            cause: TransitionCause::StatusQueryAnswered,
                            bank: (Some(bank_code), Some(bank_message), bank_payment_id),
                            next_attempt_at: Some(next_poll),
                        };
                        self.accept_found(&p, from, token, accepted, other).await?;
                    }
                },
                (PaymentStatus::Unknown, StatusAnswer::NotFound) => {
                    let min_age = ChronoDuration::seconds(quirks.min_none_age_s as i64);
                    if self.escalate_if_overdue(&p, token, &quirks).await? {
                        // Past the maximum age nothing is resent automatically.
                    } else if domain::requeue_after_none(from, now, p.last_sent_at, min_age).is_ok()
                    {
                        tracing::info!(payment = %p.instruction.id, "the bank positively knows no such instruction after the minimum age: resending with the same reference");
                        self.step(
                            &p,
                            from,
                            token,
                            PaymentStatus::Queued,
                            TransitionCause::BankSaysNone,
                            (Some("NOT_FOUND".to_owned()), None, None),
                            Some(now),
                            true,
                        )
                        .await?;
                        self.wake.notify_one();
                    } else {
                        // Too early to believe "none": ask again later.
                        self.keep_watching(&p, token, next_poll).await?;
                    }
                }
                (
                    PaymentStatus::Accepted | PaymentStatus::Settled,
                    StatusAnswer::Found {
                        status,
                        bank_payment_id,
                        ..
                    },
                ) => {
                    self.apply_found(&p, from, token, status, bank_payment_id)
                        .await?;
                }
                (PaymentStatus::Accepted | PaymentStatus::Settled, StatusAnswer::NotFound) => {
                    tracing::warn!(payment = %p.instruction.id, "the bank does not (yet) know a payment it accepted; asking again later");
                    self.keep_watching(&p, token, next_poll).await?;
                }
                _ => self.keep_watching(&p, token, next_poll).await?,
            }
        }
        Ok(())
    }

    /// Leases up to `limit` due `queued` payments to this instance.
    async fn claim_queued(&self, limit: u32) -> Result<Vec<ClaimedPayment>, StoreError> {
        self.store
            .claim_due_payments(
                &[PaymentStatus::Queued.as_str()],
                self.clock.now(),
                &self.owner,
                self.settings.lease_duration_ms,
                limit,
            )
            .await
    }

    /// One round of the dispatcher: claims up to `claim_batch` payments and
    /// sends them all; returns how many it handled. (The running gateway
    /// uses [`run_dispatcher`], which keeps payments in flight continuously;
    /// tests drive the dispatcher one round at a time with this.)
    pub async fn dispatch_round(&self) -> Result<usize, StoreError> {
        let claimed = self.claim_queued(self.settings.claim_batch).await?;
        let n = claimed.len();
        let results =
            futures::future::join_all(claimed.into_iter().map(|c| self.dispatch_one(c))).await;
        for r in results {
            if let Err(e) = r {
                log_dispatch_error(&e);
            }
        }
        Ok(n)
    }

    /// One round of the status poller.
    pub async fn poll_round(&self) -> Result<usize, StoreError> {
        let statuses = [
            PaymentStatus::Accepted.as_str(),
            PaymentStatus::Unknown.as_str(),
            PaymentStatus::Settled.as_str(),
        ];
        let claimed = self
            .store
            .claim_due_payments(
                &statuses,
                self.clock.now(),
                &self.owner,
                self.settings.lease_duration_ms,
                self.settings.claim_batch,
            )
            .await?;
        let n = claimed.len();
        let mut groups: BTreeMap<(String, String), PollGroup> = BTreeMap::new();
        for c in claimed {
            let Some((account, conn)) = self.connection_of(&c.payment) else {
                continue;
            };
            groups
                .entry((conn.config.id.to_string(), account.number.to_string()))
                .or_insert_with(|| (conn.clone(), account.number.clone(), Vec::new()))
                .2
                .push(c);
        }
        let polls = groups
            .into_values()
            .map(
                |(conn, number, group)| async move { self.poll_group(&conn, &number, group).await },
            );
        for r in futures::future::join_all(polls).await {
            if let Err(e) = r {
                tracing::error!(error = %e, "applying a status answer failed in the store; asking again later");
            }
        }
        Ok(n)
    }

    /// One round of the reaper: expired `submitting` leases become `unknown`.
    pub async fn reap_round(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let expired = self
            .store
            .expired_submitting(now, self.settings.claim_batch)
            .await?;
        let n = expired.len();
        for p in expired {
            let poll_at = Some(now);
            self.step(
                &p,
                PaymentStatus::Submitting,
                Some(p.fencing_token),
                PaymentStatus::Unknown,
                TransitionCause::LeaseExpired,
                (
                    None,
                    Some("the worker's lease expired mid-submission".to_owned()),
                    None,
                ),
                poll_at,
                true,
            )
            .await?;
        }
        Ok(n)
    }
}

/// Most characters of a bank's code or message kept in the history; the
/// store refuses longer text and empty text means "none".
const MAX_BANK_TEXT_CHARS: usize = 256;

fn bank_text(text: Option<String>) -> Option<String> {
    text.map(|t| {
        t.trim()
            .chars()
            .take(MAX_BANK_TEXT_CHARS)
            .collect::<String>()
    })
    .filter(|t| !t.is_empty())
}

fn log_dispatch_error(e: &StoreError) {
    tracing::error!(error = %e, "dispatching a payment failed in the store; its lease will expire and the reaper or poller takes over");
}

fn ignore_conflict(e: StoreError) -> Result<(), StoreError> {
    match e {
        StoreError::Conflict { .. } => Ok(()),
        other => Err(other),
    }
}

/// Runs the three workers until shutdown. The dispatcher keeps payments in
/// flight continuously ([`run_dispatcher`]); the status poller and the
/// reaper work in rounds and sleep `poll_interval_ms` (the reaper four times
/// that) between them.
pub async fn run_payment_workers(
    workers: Arc<PaymentWorkers>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(workers.settings.poll_interval_ms);
    let dispatcher = run_dispatcher(workers.clone(), shutdown.clone());
    let poller = {
        let w = workers.clone();
        let mut stop = shutdown.clone();
        async move {
            loop {
                if let Err(e) = w.poll_round().await {
                    tracing::error!(error = %e, "status poller round failed");
                }
                if let Err(e) = w.poll_chunk_round().await {
                    tracing::error!(error = %e, "batch status poller round failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    let reaper = {
        let w = workers.clone();
        async move {
            loop {
                if let Err(e) = w.reap_round().await {
                    tracing::error!(error = %e, "reaper round failed");
                }
                if let Err(e) = w.reap_chunk_round().await {
                    tracing::error!(error = %e, "batch reaper round failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval * 4) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    tokio::join!(dispatcher, poller, reaper);
}

/// Outcome of one spawned dispatch: the store's answer, or the task's
/// panic.
type DispatchTask = Result<Result<(), StoreError>, tokio::task::JoinError>;

fn log_dispatch_task(r: DispatchTask) {
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log_dispatch_error(&e),
        Err(e) => {
            tracing::error!(error = %e, "a payment dispatch panicked; its lease will expire and the reaper or poller takes over")
        }
    }
}

/// Whether a chunk dispatcher round handled any chunk; logs its failure.
fn chunk_round_found_work(r: Result<Result<usize, StoreError>, tokio::task::JoinError>) -> bool {
    match r {
        Ok(Ok(n)) => n > 0,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "batch dispatcher round failed");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "batch dispatcher round panicked");
            false
        }
    }
}

/// The dispatcher: keeps up to `max_in_flight` claimed payments being sent,
/// each in its own task, so that a slow payment holds one slot, not the
/// others. Once at least `min(claim_batch, max_in_flight / 2)` slots are
/// free it claims more, at most `claim_batch` at a time (claims stay
/// batched; the pipeline does not drain while payments are due). When a
/// claim finds fewer than it asked for, it asks again only when woken
/// (`wake`), after `poll_interval_ms`, or once all it holds are sent.
///
/// The batch-chunk dispatcher gets its turn (one round at a time, in its
/// own task) whenever payments are claimed, whenever the dispatcher wakes,
/// at least every `poll_interval_ms`, and again at once while it finds
/// chunks, so a steady stream of payments cannot starve it.
///
/// On shutdown it claims nothing more and waits for what is in flight (a
/// bank call already made is answered and committed), as the round-based
/// dispatcher did with the round it was in; `App::drain` bounds that wait,
/// and whatever it abandons is left to its lease.
pub async fn run_dispatcher(workers: Arc<PaymentWorkers>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis(workers.settings.poll_interval_ms);
    let max_in_flight = workers.settings.max_in_flight.max(1) as usize;
    let claim_batch = workers.settings.claim_batch.max(1) as usize;
    let refill_at = claim_batch.min(max_in_flight.div_ceil(2));
    let mut in_flight: tokio::task::JoinSet<Result<(), StoreError>> = tokio::task::JoinSet::new();
    let mut chunk_round: Option<tokio::task::JoinHandle<Result<usize, StoreError>>> = None;
    // `more_due`: the last claim got all it asked for, so more may be due.
    // `chunks_due`: the chunk dispatcher is to run as soon as it is idle.
    let (mut more_due, mut chunks_due) = (true, true);
    let mut tick = tokio::time::Instant::now() + interval;
    loop {
        if *stop.borrow() {
            break;
        }
        let free = max_in_flight.saturating_sub(in_flight.len());
        if more_due && (in_flight.is_empty() || free >= refill_at) {
            let want = free.min(claim_batch);
            match workers.claim_queued(want as u32).await {
                Ok(claimed) => {
                    more_due = claimed.len() == want;
                    if !claimed.is_empty() {
                        chunks_due = true;
                    }
                    for c in claimed {
                        let w = workers.clone();
                        in_flight.spawn(async move { w.dispatch_one(c).await });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming payments to dispatch failed in the store; trying again after the poll interval");
                    more_due = false;
                }
            }
        }
        if chunks_due && chunk_round.is_none() {
            chunks_due = false;
            let w = workers.clone();
            chunk_round = Some(tokio::spawn(async move { w.dispatch_chunk_round().await }));
        }
        tokio::select! {
            Some(r) = in_flight.join_next(), if !in_flight.is_empty() => {
                log_dispatch_task(r);
                // Collect whatever else has finished, to claim for it at once.
                while let Some(r) = in_flight.try_join_next() {
                    log_dispatch_task(r);
                }
                // All sent: look for more at once, as after a busy round.
                more_due |= in_flight.is_empty();
            }
            r = async {
                match chunk_round.as_mut() {
                    Some(round) => round.await,
                    None => std::future::pending().await,
                }
            }, if chunk_round.is_some() => {
                chunk_round = None;
                // Chunks found: the chunk dispatcher goes again at once.
                chunks_due |= chunk_round_found_work(r);
            }
            _ = workers.wake.notified(), if !more_due => {
                more_due = true;
                chunks_due = true;
            }
            _ = tokio::time::sleep_until(tick) => {
                tick = tokio::time::Instant::now() + interval;
                more_due = true;
                chunks_due = true;
            }
            _ = stop.changed() => break,
        }
    }
    // Shutdown: nothing new is claimed; what is in flight finishes.
    if let Some(round) = chunk_round {
        chunk_round_found_work(round.await);
    }
    while let Some(r) = in_flight.join_next().await {
        log_dispatch_task(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_closes_on_success() {
        let b = Breakers::default();
        let bank = BankId::parse("east").unwrap();
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        for _ in 0..2 {
            b.record(&bank, false, t0, 3, 30);
        }
        assert_eq!(b.open_until(&bank, t0), None, "two failures: still closed");
        b.record(&bank, false, t0, 3, 30);
        let until = b.open_until(&bank, t0).unwrap();
        assert_eq!(until, t0 + ChronoDuration::seconds(30));
        assert_eq!(
            b.open_until(&bank, until),
            None,
            "closed again once the time is up"
        );
        b.record(&bank, true, t0, 3, 30);
        assert_eq!(b.open_until(&bank, t0), None, "a success resets it");
    }

    #[test]
    fn bank_text_drops_empty_and_cuts_long_text() {
        assert_eq!(bank_text(Some("  ".to_owned())), None);
        assert_eq!(
            bank_text(Some("x".repeat(300))).unwrap().chars().count(),
            MAX_BANK_TEXT_CHARS
        );
        assert_eq!(bank_text(Some(" ok ".to_owned())).as_deref(), Some("ok"));
    }
}
