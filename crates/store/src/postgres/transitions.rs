//! Group commit of payment status changes on PostgreSQL.
//!
//! Every status change is audited, and an audit insert holds the audit-order lock until its
//! commit has flushed (`postgres.rs`): one change per transaction means one change per
//! commit flush across the cluster, and a dispatched payment makes three or four of them
//! (BENCHMARKS.md, issue 5). Here `transition_payment_steps` (and `transition_payment`, one
//! step) hands its checked steps to a few group tasks. Each takes the changes queued (up to
//! [`GROUP_MAX`]) and runs them in ONE transaction, each change (all its steps) with the
//! one-payment algorithm of `payments.rs` inside a SAVEPOINT of its own, with its audit
//! records kept aside; at the end the group appends every kept audit record in one
//! statement, under one hold of the lock, and commits. So groups
//! overlap everything but that last step, and many changes share one commit.
//!
//! Each change keeps its own outcome: one whose guard no longer holds (a stale fencing
//! token, a status moved on) or that fails is rolled back to its savepoint and answered its
//! own error, exactly as on its own; the others are unaffected. Answers go out after COMMIT.
//! When the group itself fails (a savepoint that cannot be closed, the audit insert, a
//! COMMIT the server refuses) nothing of it was stored, and each change that had succeeded
//! is answered `Alone`: its caller runs it again in a transaction of its own.
//! Only a COMMIT whose outcome is unknown answers `OutcomeUnknown`, as the one-change path
//! does.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::group::{self, CommitFailed, GroupQueue};
use super::{intake::insert_audits, payments::PgPayments, BACKEND};
use crate::codec::AuditRow;
use crate::error::statement_error;
use crate::payments::{self as pay, StoredPayment, TransitionRows};
use crate::StoreError;

/// One queued change: the steps of one payment, applied together.
type Steps = Vec<TransitionRows>;

/// Most changes written in one transaction.
const GROUP_MAX: usize = 128;
/// Group tasks: while one appends its audit records and commits, others run their changes.
const GROUP_TASKS: usize = 3;

const OP: &str = "changing payment statuses in a group";

/// A change's answer from its group: committed (`Ok`) or refused on its own (`Err`).
type Decided = Box<Result<StoredPayment, StoreError>>;
/// How a grouped change ended: decided with its group, or `Alone` because the group
/// failed (the caller runs it on its own).
pub(super) type Grouped = group::Grouped<Decided, Steps>;
type Job = group::Job<Steps, Decided>;
/// The callers' side: a queue read by [`GROUP_TASKS`] tasks on the pool.
pub(super) type GroupTransitions = GroupQueue<Steps, Decided>;

/// Starts the group tasks. Needs a tokio runtime; they end when the store is dropped.
pub(super) fn spawn(pool: PgPool) -> GroupTransitions {
    GroupQueue::spawn(pool, GROUP_TASKS, GROUP_MAX, |tx, jobs| {
        Box::pin(write_group(tx, jobs))
    })
}

/// What one change did inside the group: the payment as changed and its kept audit
/// records, or its own refusal.
type ChangeOutcome = Result<(StoredPayment, Vec<AuditRow>), StoreError>;

/// A change that ran in the group.
struct Ran {
    job: Job,
    outcome: ChangeOutcome,
}

fn answer_alone(ran: Vec<Ran>, pending: Vec<Job>) {
    for r in ran {
        match r.outcome {
            // Its own refusal stands: it did not depend on the group.
            Err(e) => r.job.done(Box::new(Err(e))),
            Ok(_) => r.job.alone(),
        }
    }
    pending.into_iter().for_each(Job::alone);
}

async fn execute(conn: &mut PgConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| statement_error(BACKEND, OP, e))
}

/// Runs one change in its own savepoint; `Err` only when the savepoint could not be opened
/// or closed (the group is then broken).
async fn run_one(conn: &mut PgConnection, job: &Job) -> Result<ChangeOutcome, StoreError> {
    execute(conn, "SAVEPOINT change").await?;
    let mut tx = PgPayments {
        conn: &mut *conn,
        deferred_audits: Some(Vec::with_capacity(job.rows.len())),
    };
    let outcome = pay::transition_steps(&mut tx, &job.rows).await;
    let audits = tx.deferred_audits.take().unwrap_or_default();
    match outcome {
        Ok(stored) => {
            execute(conn, "RELEASE SAVEPOINT change").await?;
            Ok(Ok((stored, audits)))
        }
        Err(e) => {
            execute(conn, "ROLLBACK TO SAVEPOINT change").await?;
            execute(conn, "RELEASE SAVEPOINT change").await?;
            Ok(Err(e))
        }
    }
}

async fn write_group(mut tx: Transaction<'static, Postgres>, jobs: Vec<Job>) {
    let mut ran: Vec<Ran> = Vec::with_capacity(jobs.len());
    let mut pending = jobs.into_iter();
    let mut broken = None;
    for job in pending.by_ref() {
        match run_one(&mut tx, &job).await {
            Ok(outcome) => ran.push(Ran { job, outcome }),
            Err(e) => {
                // The job's own result is unknown to it: it runs again alone.
                job.alone();
                broken = Some(e);
                break;
            }
        }
    }
    if broken.is_none() {
        let audits: Vec<&AuditRow> = ran
            .iter()
            .filter_map(|r| r.outcome.as_ref().ok())
            .flat_map(|(_, audits)| audits.iter())
            .collect();
        if !audits.is_empty() {
            if let Err(e) = insert_audits(&mut tx, &audits).await {
                broken = Some(e);
            }
        }
    }
    if let Some(e) = broken {
        // Dropping `tx` rolls the group back: nothing of it is stored.
        drop(tx);
        tracing::warn!(error = %e, "payment change group rolled back; its changes run alone");
        answer_alone(ran, pending.collect());
        return;
    }
    match group::commit(tx, "payment change group", ran.len()).await {
        Ok(()) => {
            for r in ran {
                let answer = r.outcome.map(|(stored, _)| stored);
                r.job.done(Box::new(answer));
            }
        }
        Err(CommitFailed::Refused) => answer_alone(ran, Vec::new()),
        Err(CommitFailed::Unknown(reason)) => {
            for r in ran {
                let answer = match r.outcome {
                    Err(own) => Ok(group::Grouped::Done(Box::new(Err(own)))),
                    Ok(_) => Err(group::outcome_unknown(&reason)),
                };
                r.job.answer(answer);
            }
        }
    }
}
