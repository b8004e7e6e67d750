//! The batch workers: the same rules as for single payments (see the parent
//! module), applied to batch chunks. A chunk is one bank submission under its
//! own business reference; it is claimed with a lease and a fencing token,
//! `submitting` is committed before the bank is called, and every write-back
//! is a compare-and-set on (status, token) that also records what the bank
//! said about each item. After any doubt a chunk is only asked about by its
//! reference; it is resent (same reference, same items) only when the bank
//! positively says "none" after the minimum age, and goes to `needs_review`
//! (its open items with it) past the maximum age.

use banks::{BankError, BankPaymentStatus, BatchStatusAnswer};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use domain::{Bic, CnapsCode, ItemStatus, PaymentStatus, TransitionCause};
use store::{
    ClaimedChunk, ItemResult, ItemUpdate, NewAuditRecord, PaymentChange, StoreError, StoredBatch,
    StoredChunk, TransitionGuard,
};

use super::{bank_text, ignore_conflict, PaymentWorkers, ACTOR};
use crate::banking::ConnectionRuntime;
use crate::failpoints;

/// One chunk write-back: the arrow, what the bank said, what happens to the
/// items, and when the chunk is due next.
struct ChunkStep {
    from: PaymentStatus,
    to: PaymentStatus,
    cause: TransitionCause,
    bank_code: Option<String>,
    bank_message: Option<String>,
    bank_batch_id: Option<String>,
    items: ItemUpdate,
    next_attempt_at: Option<DateTime<Utc>>,
    release_lease: bool,
}

impl ChunkStep {
    fn new(from: PaymentStatus, to: PaymentStatus, cause: TransitionCause) -> ChunkStep {
        ChunkStep {
            from,
            to,
            cause,
            bank_code: None,
            bank_message: None,
            bank_batch_id: None,
            items: ItemUpdate::None,
            next_attempt_at: None,
            release_lease: true,
        }
    }
}

fn item_status(status: &BankPaymentStatus) -> (ItemStatus, Option<String>, Option<String>) {
    match status {
        BankPaymentStatus::Processing => (ItemStatus::Accepted, None, None),
        BankPaymentStatus::Settled => (ItemStatus::Settled, None, None),
        BankPaymentStatus::Failed { code, message } => (
            ItemStatus::Failed,
            bank_text(Some(code.clone())),
            bank_text(Some(message.clone())),
        ),
        BankPaymentStatus::Returned { code, message } => (
            ItemStatus::Returned,
            bank_text(Some(code.clone())),
            bank_text(Some(message.clone())),
        ),
    }
}

impl PaymentWorkers {
    fn chunk_connection(
        &self,
        b: &StoredBatch,
    ) -> Option<(
        &crate::config::AccountConfig,
        std::sync::Arc<ConnectionRuntime>,
    )> {
        let account = self.accounts.get(&b.debtor_account_id)?;
        let conn = self.directory.connections.get(&account.connection)?.clone();
        Some((account, conn))
    }

    /// One compare-and-set step of a chunk; `Ok(None)` when another worker
    /// got there first.
    async fn chunk_step(
        &self,
        batch: &StoredBatch,
        chunk: &StoredChunk,
        token: i64,
        step: ChunkStep,
    ) -> Result<Option<StoredBatch>, StoreError> {
        let now = self.clock.now();
        let bank_code = bank_text(step.bank_code);
        let result = self
            .store
            .transition_chunk(
                &batch.id,
                chunk.chunk_no,
                TransitionGuard {
                    from_status: step.from.as_str().to_owned(),
                    fencing_token: Some(token),
                },
                PaymentChange {
                    to_status: step.to.as_str().to_owned(),
                    cause: step.cause.as_str().to_owned(),
                    bank_code: bank_code.clone(),
                    bank_message: bank_text(step.bank_message),
                    bank_payment_id: bank_text(step.bank_batch_id),
                    mark_sent: step.to == PaymentStatus::Submitting,
                    next_attempt_at: step.next_attempt_at,
                    release_lease: step.release_lease,
                },
                step.items,
                store::Actor {
                    name: ACTOR.to_owned(),
                    request_id: None,
                },
                NewAuditRecord {
                    at: now,
                    actor: ACTOR.to_owned(),
                    action: "payment_batch.chunk_transition".to_owned(),
                    object: format!("payment_batch:{}#{}", batch.id, chunk.chunk_no),
                    request_id: None,
                    outcome: step.to.as_str().to_owned(),
                    details: serde_json::json!({
                        "from": step.from.as_str(),
                        "cause": step.cause.as_str(),
                        "bank_code": bank_code,
                        "reference": chunk.business_reference.as_str(),
                    }),
                },
            )
            .await;
        match result {
            Ok(b) => {
                metrics::counter!("batch_chunk_transitions_total", "to" => step.to.as_str())
                    .increment(1);
                Ok(Some(b))
            }
            Err(StoreError::Conflict { .. }) => {
                tracing::info!(batch = %batch.id, chunk = chunk.chunk_no, to = %step.to, "chunk moved on meanwhile; this worker's write is dropped");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn keep_watching_chunk(
        &self,
        chunk: &StoredChunk,
        token: i64,
        next: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.store
            .reschedule_chunk(&chunk.batch_id, chunk.chunk_no, token, next)
            .await
            .or_else(ignore_conflict)
    }

    /// The wire form of a claimed chunk, from its stored items.
    async fn chunk_instruction(
        &self,
        batch: &StoredBatch,
        chunk: &StoredChunk,
        debtor: &domain::AccountNumber,
    ) -> Result<Option<banks::BatchInstruction>, StoreError> {
        let items = self
            .store
            .batch_items(&batch.id, Some(chunk.chunk_no), 0, 0)
            .await?;
        let kind = match batch.kind.as_str() {
            "payroll" => banks::BatchKind::Payroll,
            _ => banks::BatchKind::Supplier,
        };
        let mut wire = Vec::with_capacity(items.len());
        for i in items {
            let bank_code = i
                .creditor_bank_code
                .as_deref()
                .map(CnapsCode::parse)
                .transpose();
            let bic = i.creditor_bic.as_deref().map(Bic::parse).transpose();
            let (Ok(creditor_bank_code), Ok(creditor_bic)) = (bank_code, bic) else {
                tracing::error!(batch = %batch.id, item = %i.id, "a stored item's bank code or BIC no longer parses; the chunk is left for an operator");
                return Ok(None);
            };
            wire.push(banks::BatchItemInstruction {
                reference: i.business_reference,
                amount: i.amount,
                creditor_name: i.creditor_name,
                creditor_account: i.creditor_account,
                creditor_bank_code,
                creditor_bic,
                creditor_bank_name: i.creditor_bank_name,
                creditor_type: i.creditor_type,
                remittance: i.remittance,
                purpose: i.purpose,
            });
        }
        if wire.len() as i64 != chunk.item_count {
            tracing::error!(batch = %batch.id, chunk = chunk.chunk_no, "the chunk's items do not match its count; not sending");
            return Ok(None);
        }
        Ok(Some(banks::BatchInstruction {
            kind,
            reference: chunk.business_reference.clone(),
            batch_reference: batch.business_reference.clone(),
            debtor_account: debtor.clone(),
            currency: batch.control_sum.currency(),
            requested_execution_date: batch.requested_execution_date,
            items: wire,
        }))
    }

    /// Sends one claimed, queued chunk.
    async fn dispatch_chunk(&self, claimed: ClaimedChunk) -> Result<(), StoreError> {
        let ClaimedChunk { batch, chunk } = claimed;
        let token = chunk.fencing_token;
        let Some((account, conn)) = self.chunk_connection(&batch) else {
            tracing::error!(batch = %batch.id, "the batch's debtor account is no longer configured; left queued");
            return Ok(());
        };
        let now = self.clock.now();
        if let Some(until) = self.breakers.open_until(&conn.bank_id, now) {
            return self.keep_watching_chunk(&chunk, token, Some(until)).await;
        }
        // Items are read before `submitting` is committed: a chunk must never
        // sit in `submitting` for a reason that has nothing to do with the bank.
        let Some(wire) = self
            .chunk_instruction(&batch, &chunk, &account.number)
            .await?
        else {
            return self.keep_watching_chunk(&chunk, token, None).await;
        };
        let _admitted = conn.admit().await;
        let mut submitting = ChunkStep::new(
            PaymentStatus::Queued,
            PaymentStatus::Submitting,
            TransitionCause::Dispatched,
        );
        submitting.release_lease = false;
        if self
            .chunk_step(&batch, &chunk, token, submitting)
            .await?
            .is_none()
        {
            return Ok(());
        }
        failpoints::hit(failpoints::AFTER_SUBMITTING_COMMIT);
        // The call's exchange record names this batch without a look-up.
        let owner = self.directory.reference_owners.hold(
            chunk.business_reference.as_str(),
            format!("payment_batch:{}", batch.id),
        );
        let result = conn.connector().submit_batch(&wire).await;
        drop(owner);
        failpoints::hit(failpoints::AFTER_BANK_ANSWER);
        let now = self.clock.now();
        let poll_at = Some(now + ChronoDuration::milliseconds(self.settings.status_poll_ms as i64));
        let quirks = self.quirks(&conn.bank_id).cloned().unwrap_or_default();
        self.breakers.record(
            &conn.bank_id,
            !matches!(
                result,
                Err(BankError::NotProcessed { .. } | BankError::OutcomeUnknown { .. })
            ),
            now,
            quirks.breaker_failures,
            quirks.breaker_open_s,
        );
        let from = PaymentStatus::Submitting;
        let step = match result {
            Ok(receipt) => ChunkStep {
                bank_code: Some(receipt.bank_code),
                bank_message: Some(receipt.bank_message),
                bank_batch_id: receipt.bank_batch_id,
                items: ItemUpdate::AllOpen {
                    status: ItemStatus::Accepted,
                    bank_code: None,
                    bank_message: None,
                },
                next_attempt_at: poll_at,
                ..ChunkStep::new(from, PaymentStatus::Accepted, TransitionCause::BankAccepted)
            },
            Err(BankError::Rejected { code, message, .. }) => ChunkStep {
                items: ItemUpdate::AllOpen {
                    status: ItemStatus::Failed,
                    bank_code: bank_text(Some(code.clone())),
                    bank_message: bank_text(Some(message.clone())),
                },
                bank_code: Some(code),
                bank_message: Some(message),
                ..ChunkStep::new(from, PaymentStatus::Failed, TransitionCause::BankRejected)
            },
            Err(BankError::NotProcessed { reason, .. }) => ChunkStep {
                bank_message: Some(reason),
                next_attempt_at: Some(now + self.backoff(chunk.send_attempts.saturating_add(1))),
                ..ChunkStep::new(from, PaymentStatus::Queued, TransitionCause::NotProcessed)
            },
            Err(BankError::OutcomeUnknown { reason, .. }) => ChunkStep {
                bank_message: Some(reason),
                next_attempt_at: poll_at,
                ..ChunkStep::new(
                    from,
                    PaymentStatus::Unknown,
                    TransitionCause::OutcomeUnknown,
                )
            },
        };
        self.chunk_step(&batch, &chunk, token, step).await?;
        Ok(())
    }

    /// Moves an `unknown` chunk (and its open items) to `needs_review` past
    /// the bank's maximum age; says whether it did.
    async fn escalate_chunk_if_overdue(
        &self,
        batch: &StoredBatch,
        chunk: &StoredChunk,
        token: i64,
        quirks: &crate::config::BankQuirks,
    ) -> Result<bool, StoreError> {
        if chunk.status != PaymentStatus::Unknown.as_str() {
            return Ok(false);
        }
        let max_age = ChronoDuration::seconds(quirks.max_unknown_age_s as i64);
        if domain::escalate_to_review(
            PaymentStatus::Unknown,
            self.clock.now(),
            chunk.first_sent_at,
            max_age,
        )
        .is_err()
        {
            return Ok(false);
        }
        let step = ChunkStep {
            items: ItemUpdate::AllOpen {
                status: ItemStatus::NeedsReview,
                bank_code: None,
                bank_message: None,
            },
            ..ChunkStep::new(
                PaymentStatus::Unknown,
                PaymentStatus::NeedsReview,
                TransitionCause::MaxAgeExceeded,
            )
        };
        self.chunk_step(batch, chunk, token, step).await?;
        Ok(true)
    }

    /// Asks the bank about one claimed chunk and applies the answer.
    async fn poll_chunk(&self, claimed: ClaimedChunk) -> Result<(), StoreError> {
        let ClaimedChunk { batch, chunk } = claimed;
        let token = chunk.fencing_token;
        let Ok(from) = PaymentStatus::parse(&chunk.status) else {
            return Ok(());
        };
        let Some((account, conn)) = self.chunk_connection(&batch) else {
            return Ok(());
        };
        let now = self.clock.now();
        let next_poll = now + ChronoDuration::milliseconds(self.settings.status_poll_ms as i64);
        let quirks = self.quirks(&conn.bank_id).cloned().unwrap_or_default();
        let owner = self.directory.reference_owners.hold(
            chunk.business_reference.as_str(),
            format!("payment_batch:{}", batch.id),
        );
        let answer = conn
            .gated(
                conn.connector()
                    .batch_status(&account.number, &chunk.business_reference),
            )
            .await;
        drop(owner);
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(batch = %batch.id, chunk = chunk.chunk_no, error = %e, "batch status query failed; asking again later");
                if !self
                    .escalate_chunk_if_overdue(&batch, &chunk, token, &quirks)
                    .await?
                {
                    let later = now + self.backoff(2);
                    self.keep_watching_chunk(&chunk, token, Some(later)).await?;
                }
                return Ok(());
            }
        };
        match answer {
            BatchStatusAnswer::NotFound => {
                if from != PaymentStatus::Unknown {
                    tracing::warn!(batch = %batch.id, chunk = chunk.chunk_no, "the bank does not (yet) know a chunk it accepted; asking again later");
                    return self
                        .keep_watching_chunk(&chunk, token, Some(next_poll))
                        .await;
                }
                let min_age = ChronoDuration::seconds(quirks.min_none_age_s as i64);
                if self
                    .escalate_chunk_if_overdue(&batch, &chunk, token, &quirks)
                    .await?
                {
                } else if domain::requeue_after_none(from, now, chunk.last_sent_at, min_age).is_ok()
                {
                    tracing::info!(batch = %batch.id, chunk = chunk.chunk_no, "the bank positively knows no such batch after the minimum age: resending with the same reference");
                    let step = ChunkStep {
                        bank_code: Some("NOT_FOUND".to_owned()),
                        next_attempt_at: Some(now),
                        ..ChunkStep::new(from, PaymentStatus::Queued, TransitionCause::BankSaysNone)
                    };
                    self.chunk_step(&batch, &chunk, token, step).await?;
                    self.wake.notify_one();
                } else {
                    self.keep_watching_chunk(&chunk, token, Some(next_poll))
                        .await?;
                }
            }
            BatchStatusAnswer::Found {
                finished,
                items,
                bank_batch_id,
                bank_code,
                bank_message,
            } => {
                let results: Vec<ItemResult> = items
                    .iter()
                    .map(|r| {
                        let (status, code, message) = item_status(&r.status);
                        ItemResult {
                            business_reference: r.reference.as_str().to_owned(),
                            status,
                            bank_code: code,
                            bank_message: message,
                        }
                    })
                    .collect();
                // `updated_at` moves only with the chunk's status: for a
                // settled chunk it is when it settled.
                let watch_until =
                    chunk.updated_at + ChronoDuration::seconds(self.settings.return_watch_s as i64);
                let watch_next = (now < watch_until).then_some(next_poll);
                // Only what the bank's answer changes is written: an answer
                // that repeats what is stored only moves the next look (no
                // write, no audit record, no event).
                let results = if matches!(from, PaymentStatus::Accepted | PaymentStatus::Settled) {
                    let stored: std::collections::HashMap<String, ItemStatus> = self
                        .store
                        .batch_items(&batch.id, Some(chunk.chunk_no), 0, 0)
                        .await?
                        .into_iter()
                        .map(|i| (i.business_reference.as_str().to_owned(), i.status))
                        .collect();
                    results
                        .into_iter()
                        .filter(|r| {
                            stored
                                .get(&r.business_reference)
                                .is_some_and(|s| store::item_froms(r.status).contains(s))
                        })
                        .collect()
                } else {
                    results
                };
                let unchanged = results.is_empty();
                let step = match (from, finished) {
                    // Found after doubt: the bank has it.
                    (PaymentStatus::Unknown, _) => ChunkStep {
                        bank_code: Some(bank_code),
                        bank_message: Some(bank_message),
                        bank_batch_id,
                        items: ItemUpdate::Each(results),
                        next_attempt_at: Some(now),
                        ..ChunkStep::new(
                            from,
                            PaymentStatus::Accepted,
                            TransitionCause::StatusQueryAnswered,
                        )
                    },
                    (PaymentStatus::Accepted, true) => ChunkStep {
                        bank_batch_id,
                        items: ItemUpdate::Each(results),
                        // Watched a while longer for returns (退票).
                        next_attempt_at: Some(next_poll),
                        ..ChunkStep::new(from, PaymentStatus::Settled, TransitionCause::BankSettled)
                    },
                    (PaymentStatus::Accepted, false) if unchanged => {
                        return self
                            .keep_watching_chunk(&chunk, token, Some(next_poll))
                            .await
                    }
                    (PaymentStatus::Accepted, false) => ChunkStep {
                        items: ItemUpdate::Each(results),
                        next_attempt_at: Some(next_poll),
                        ..ChunkStep::new(from, from, TransitionCause::StatusQueryAnswered)
                    },
                    (PaymentStatus::Settled, _) if unchanged => {
                        return self.keep_watching_chunk(&chunk, token, watch_next).await
                    }
                    (PaymentStatus::Settled, _) => ChunkStep {
                        items: ItemUpdate::Each(results),
                        next_attempt_at: watch_next,
                        ..ChunkStep::new(from, from, TransitionCause::StatusQueryAnswered)
                    },
                    _ => {
                        return self
                            .keep_watching_chunk(&chunk, token, Some(next_poll))
                            .await
                    }
                };
                self.chunk_step(&batch, &chunk, token, step).await?;
            }
        }
        Ok(())
    }

    /// One round of the chunk dispatcher; returns how many chunks it handled.
    pub async fn dispatch_chunk_round(&self) -> Result<usize, StoreError> {
        let claimed = self
            .store
            .claim_due_chunks(
                &[PaymentStatus::Queued.as_str()],
                self.clock.now(),
                &self.owner,
                self.settings.lease_duration_ms,
                self.settings.claim_batch,
            )
            .await?;
        let n = claimed.len();
        let results =
            futures::future::join_all(claimed.into_iter().map(|c| self.dispatch_chunk(c))).await;
        for r in results {
            if let Err(e) = r {
                tracing::error!(error = %e, "dispatching a batch chunk failed in the store; its lease will expire and the reaper or poller takes over");
            }
        }
        Ok(n)
    }

    /// One round of the chunk status poller.
    pub async fn poll_chunk_round(&self) -> Result<usize, StoreError> {
        let statuses = [
            PaymentStatus::Accepted.as_str(),
            PaymentStatus::Unknown.as_str(),
            PaymentStatus::Settled.as_str(),
        ];
        let claimed = self
            .store
            .claim_due_chunks(
                &statuses,
                self.clock.now(),
                &self.owner,
                self.settings.lease_duration_ms,
                self.settings.claim_batch,
            )
            .await?;
        let n = claimed.len();
        for r in futures::future::join_all(claimed.into_iter().map(|c| self.poll_chunk(c))).await {
            if let Err(e) = r {
                tracing::error!(error = %e, "applying a batch status answer failed in the store; asking again later");
            }
        }
        Ok(n)
    }

    /// One round of the chunk reaper: expired `submitting` leases become `unknown`.
    pub async fn reap_chunk_round(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let expired = self
            .store
            .expired_submitting_chunks(now, self.settings.claim_batch)
            .await?;
        let n = expired.len();
        for chunk in expired {
            let Some(batch) = self.store.get_batch(&chunk.batch_id).await? else {
                continue;
            };
            let step = ChunkStep {
                bank_message: Some("the worker's lease expired mid-submission".to_owned()),
                next_attempt_at: Some(now),
                ..ChunkStep::new(
                    PaymentStatus::Submitting,
                    PaymentStatus::Unknown,
                    TransitionCause::LeaseExpired,
                )
            };
            self.chunk_step(&batch, &chunk, chunk.fencing_token, step)
                .await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_item_statuses_map_like_single_payments() {
        assert_eq!(
            item_status(&BankPaymentStatus::Processing).0,
            ItemStatus::Accepted
        );
        assert_eq!(
            item_status(&BankPaymentStatus::Settled).0,
            ItemStatus::Settled
        );
        let (s, code, msg) = item_status(&BankPaymentStatus::Failed {
            code: "INVALID_ACCOUNT".to_owned(),
            message: "收款账号不存在".to_owned(),
        });
        assert_eq!(
            (s, code.as_deref(), msg.as_deref()),
            (
                ItemStatus::Failed,
                Some("INVALID_ACCOUNT"),
                Some("收款账号不存在")
            )
        );
        assert_eq!(
            item_status(&BankPaymentStatus::Returned {
                code: "RETURNED".to_owned(),
                message: "退票".to_owned()
            })
            .0,
            ItemStatus::Returned
        );
    }
}
