//! Group commit of payment status changes on PostgreSQL, written set-based.
//!
//! Every status change is audited, and an audit insert holds the audit-order lock until its
//! commit has flushed (`postgres.rs`): one change per transaction means one change per
//! commit flush across the cluster, and a dispatched payment makes three or four of them
//! (BENCHMARKS.md, issue 5). Here `transition_payment_steps` (and `transition_payment`, one
//! step) hands its checked steps to one group task. It takes the changes queued (up to
//! [`GROUP_MAX`]) and writes them in ONE transaction with a few statements for the whole
//! group, as intake does: one guarded `UPDATE … FROM unnest(…)` moves every change's payment
//! once, its steps (up to [`crate::TRANSITION_STEPS_MAX`], e.g. `accepted` then `settled`)
//! folded into what they do together to the row ([`fold`]); one `INSERT` writes every step's
//! history row (each payment's numbered on from its newest), one `INSERT` every step's
//! event. At the end the group appends every audit record in one statement, under one hold
//! of the audit-order lock, and commits. Row by row, each statement would pay its executor
//! start-up and the payments table's CHECK constraints once per row, and step by step each
//! step would write a new version of the payment's row with an entry in each of its indexes
//! (BENCHMARKS.md).
//!
//! Each change keeps its own outcome, exactly as on its own:
//! - a change whose first step's guard no longer holds (a stale fencing token, a status
//!   moved on, a payment that does not exist) is left out of the group's `UPDATE` and
//!   answered its own `Conflict` or `NotFound`; nothing of it was written;
//! - a change whose payment an earlier change of the same group also moves is handed back
//!   (`Alone`) before anything runs: its caller runs it after this group, on the row as the
//!   group left it;
//! - a store failpoint armed for one of the changes fails the group after every row was
//!   written: that change is answered the injected error, the others run alone.
//!
//! When the group itself fails (a statement refused, steps that do not follow one another
//! ([`check_chained`]), a COMMIT the server refuses) nothing of it was stored, and
//! each change that had not been refused on its own is answered `Alone`: its caller runs it
//! again in a transaction of its own. Only a COMMIT whose outcome is unknown answers
//! `OutcomeUnknown`, as the one-change path does.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};

use super::append_audits;
use super::group::{self, CommitFailed, GroupQueue};
use super::intake::insert_events;
use super::payments::{payment_from_row, returning_payment_columns};
use super::BACKEND;
use crate::codec::AuditRow;
use crate::error::statement_error;
use crate::events::{payment_event, EventRow};
use crate::failpoints::{self, PAYMENT_TRANSITION_BEFORE_COMMIT};
use crate::payments::{
    missing_after_write, release_failure, Current, PaymentChangeFacts, StoredPayment,
    TransitionRows,
};
use crate::StoreError;

/// One queued change: the steps of one payment, applied together.
type Steps = Vec<TransitionRows>;

/// Most changes written in one transaction.
const GROUP_MAX: usize = 128;
/// Group tasks. One: every group waits for the one audit-order lock anyway, and while the
/// task waits for it and commits, the changes queue up for its next group, so groups grow
/// with the load. With more tasks each took a share of the queue, and more, smaller groups
/// waited for the lock in turn. PostgreSQL dispatch, with the exchange records' tasks
/// beside these (`exchanges.rs`): 1 and 1 task, 1 074 and 972 payments/s; 2 and 1, 1 016
/// and 949; 3 and 2, 923 and 938; 4 and 3, 872 and 864 (BENCHMARKS.md).
const GROUP_TASKS: usize = 1;

const OP: &str = "changing payment statuses in a group";

/// A change's answer from its group: committed (`Ok`) or refused on its own (`Err`).
type Decided = Box<Result<StoredPayment, StoreError>>;
/// How a grouped change ended: decided with its group, or `Alone` because the group
/// failed (the caller runs it on its own).
pub(super) type Grouped = group::Grouped<Decided, Steps>;
type Job = group::Job<Steps, Decided>;
/// The callers' side: a queue read by [`GROUP_TASKS`] group task(s).
pub(super) type GroupTransitions = GroupQueue<Steps, Decided>;

/// Starts the group task(s) (`group.rs`); they end when the store is dropped.
pub(super) fn spawn(pool: PgPool) -> GroupTransitions {
    GroupQueue::spawn(pool, GROUP_TASKS, GROUP_MAX, |tx, jobs| {
        Box::pin(write_group(tx, jobs))
    })
}

fn err(e: sqlx::Error) -> StoreError {
    statement_error(BACKEND, OP, e)
}

/// Splits off the changes whose payment an earlier change of the group moves: one
/// statement may move a row once, so those go `Alone` and run after the group.
fn split_repeats(jobs: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let mut ids = HashSet::with_capacity(jobs.len());
    let (mut grouped, mut alone) = (Vec::with_capacity(jobs.len()), Vec::new());
    for job in jobs {
        let first = job.rows.first().map(|t| t.id.clone()).unwrap_or_default();
        if ids.insert(first) {
            grouped.push(job);
        } else {
            alone.push(job);
        }
    }
    (grouped, alone)
}

/// Where one change stands in its group: refused on its own (`Err`), or the payment as its
/// last written step left it.
type Standing = Result<StoredPayment, StoreError>;

/// Why a group could not be written: a statement failed, or one change's own failure (an
/// injected one) takes the group back with it.
enum Broken {
    Group(StoreError),
    Change(usize, StoreError),
}

fn first_id(job: &Job) -> &str {
    job.rows.first().map_or("", |t| t.id.as_str())
}

async fn write_group(mut tx: Transaction<'static, Postgres>, jobs: Vec<Job>) {
    let (mut jobs, alone) = split_repeats(jobs);
    alone.into_iter().for_each(Job::alone);
    // Ordered by payment, so racing groups lock their payments in one order.
    jobs.sort_by(|a, b| first_id(a).cmp(first_id(b)));
    let written = {
        let changes: Vec<&[TransitionRows]> = jobs.iter().map(|j| j.rows.as_slice()).collect();
        write_rows(&mut tx, &changes).await
    };
    let standing = match written {
        Ok(standing) => standing,
        Err(broken) => {
            // Dropping `tx` rolls the group back: nothing of it is stored.
            drop(tx);
            let mut own = match broken {
                Broken::Group(e) => {
                    tracing::warn!(changes = jobs.len(), error = %e, "payment change group rolled back; its changes run alone");
                    None
                }
                Broken::Change(n, e) => Some((n, e)),
            };
            for (n, job) in jobs.into_iter().enumerate() {
                match own.take_if(|(at, _)| *at == n) {
                    Some((_, e)) => job.done(Box::new(Err(e))),
                    None => job.alone(),
                }
            }
            return;
        }
    };
    match group::commit(tx, "payment change group", jobs.len()).await {
        Ok(()) => {
            for (job, stood) in jobs.into_iter().zip(standing) {
                job.done(Box::new(stood));
            }
        }
        Err(failed) => {
            for (job, stood) in jobs.into_iter().zip(standing) {
                match (stood, &failed) {
                    // Its own refusal stands: it did not depend on the group.
                    (Err(own), _) => job.done(Box::new(Err(own))),
                    (Ok(_), CommitFailed::Refused) => job.alone(),
                    (Ok(_), CommitFailed::Unknown(reason)) => {
                        job.answer(Err(group::outcome_unknown(reason)));
                    }
                }
            }
        }
    }
}

/// The group's statements; returns each change's standing, in order.
async fn write_rows(
    conn: &mut PgConnection,
    changes: &[&[TransitionRows]],
) -> Result<Vec<Standing>, Broken> {
    for steps in changes {
        check_chained(steps).map_err(Broken::Group)?;
    }
    // `None`: not written (its guard did not hold); every change has a first step.
    let mut standing: Vec<Option<Standing>> = changes.iter().map(|_| None).collect();
    let mut moved = update_payments(conn, changes)
        .await
        .map_err(Broken::Group)?;
    let mut went: Vec<(usize, &[TransitionRows])> = Vec::with_capacity(changes.len());
    let mut refused: Vec<(usize, &TransitionRows)> = Vec::new();
    for (n, steps) in changes.iter().enumerate() {
        let Some(first) = steps.first() else {
            continue;
        };
        match moved.remove(&first.id) {
            Some(stored) => {
                standing[n] = Some(Ok(stored));
                went.push((n, steps));
            }
            // Its guard no longer holds: refused on its own, nothing of it written.
            None => refused.push((n, first)),
        }
    }
    if !refused.is_empty() {
        let ids: Vec<&str> = refused.iter().map(|(_, t)| t.id.as_str()).collect();
        let mut current = read_current(conn, &ids).await.map_err(Broken::Group)?;
        for (n, t) in refused {
            standing[n] = Some(Err(release_failure(&t.id, current.remove(&t.id))));
        }
    }
    let mut events: Vec<EventRow> = Vec::with_capacity(changes.len());
    if !went.is_empty() {
        let mut first_seqs = insert_history(conn, &went).await.map_err(Broken::Group)?;
        for (n, steps) in &went {
            let Some(Some(Ok(last))) = standing.get(*n) else {
                continue;
            };
            let first_seq = steps
                .first()
                .and_then(|t| first_seqs.remove(&t.id))
                .ok_or_else(|| {
                    Broken::Group(missing_after_write(steps.first().map_or("", |t| &t.id)))
                })?;
            for (step_no, t) in (0_i64..).zip(steps.iter()) {
                // Each step's event says the status and time that step left.
                let facts = PaymentChangeFacts {
                    from_status: Some(&t.guard.from_status),
                    cause: &t.change.cause,
                    bank_code: t.change.bank_code.as_deref(),
                    bank_message: t.change.bank_message.as_deref(),
                };
                events.push(
                    payment_event(
                        &last.instruction,
                        &t.change.to_status,
                        t.audit.at,
                        first_seq + step_no,
                        &facts,
                    )
                    .map_err(Broken::Group)?,
                );
            }
        }
    }
    if !events.is_empty() {
        let events: Vec<&EventRow> = events.iter().collect();
        insert_events(conn, &events).await.map_err(Broken::Group)?;
    }
    let mut audits: Vec<&AuditRow> = Vec::with_capacity(events.len());
    for (n, steps) in changes.iter().enumerate() {
        if !matches!(standing[n], Some(Ok(_))) {
            continue;
        }
        for t in steps.iter() {
            // After all of the change's rows, before the commit (`failpoints.rs`).
            failpoints::hit(PAYMENT_TRANSITION_BEFORE_COMMIT, &t.id, &t.change.to_status)
                .map_err(|e| Broken::Change(n, e))?;
            audits.push(&t.audit);
        }
    }
    if !audits.is_empty() {
        append_audits(conn, &audits).await.map_err(Broken::Group)?;
    }
    standing
        .into_iter()
        .zip(changes)
        .map(|(stood, steps)| {
            stood.ok_or_else(|| {
                Broken::Group(StoreError::Invalid {
                    reason: format!(
                        "a status change of {} came with no step",
                        steps.first().map_or("", |t| t.id.as_str())
                    ),
                })
            })
        })
        .collect()
}

/// What one `UPDATE` may apply for a change of several steps: each step starts where the
/// one before it ended, on the same payment, under the same fencing token, and only the
/// last releases the lease (`steps_rows` builds them so; checked again here because one
/// `UPDATE` checks only the first step's guard).
fn check_chained(steps: &[TransitionRows]) -> Result<(), StoreError> {
    let Some(first) = steps.first() else {
        return Err(StoreError::Invalid {
            reason: "a status change came with no step".into(),
        });
    };
    for (n, pair) in steps.windows(2).enumerate() {
        let (before, after) = (&pair[0], &pair[1]);
        if after.id != first.id
            || after.guard.from_status != before.change.to_status
            || after.guard.fencing_token != first.guard.fencing_token
            || before.change.release_lease
        {
            return Err(StoreError::Invalid {
                reason: format!(
                    "step {} of a status change of {} does not follow its step {}",
                    n + 2,
                    first.id,
                    n + 1
                ),
            });
        }
    }
    Ok(())
}

/// One change's steps folded into what they do together to the payment's row, applied in
/// order: the last step's status and next attempt; each bank field the last value a step
/// gave (`COALESCE` keeps the stored one when none did); the sends counted, the first of
/// them the first send unless one was already recorded, the last of them the last send;
/// the lease released if a step releases it; one version per step.
struct Folded<'a> {
    to_status: &'a str,
    bank_code: Option<&'a str>,
    bank_message: Option<&'a str>,
    bank_payment_id: Option<&'a str>,
    sends: i64,
    first_send_at: Option<DateTime<Utc>>,
    last_send_at: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
    release_lease: bool,
    at: DateTime<Utc>,
    steps: i64,
}

fn fold(steps: &[TransitionRows]) -> Option<Folded<'_>> {
    let last = steps.last()?;
    let mut f = Folded {
        to_status: last.change.to_status.as_str(),
        bank_code: None,
        bank_message: None,
        bank_payment_id: None,
        sends: 0,
        first_send_at: None,
        last_send_at: None,
        next_attempt_at: last.change.next_attempt_at,
        release_lease: false,
        at: last.audit.at,
        steps: 0,
    };
    for t in steps {
        let c = &t.change;
        f.bank_code = c.bank_code.as_deref().or(f.bank_code);
        f.bank_message = c.bank_message.as_deref().or(f.bank_message);
        f.bank_payment_id = c.bank_payment_id.as_deref().or(f.bank_payment_id);
        if c.mark_sent {
            f.sends += 1;
            f.first_send_at = f.first_send_at.or(Some(t.audit.at));
            f.last_send_at = Some(t.audit.at);
        }
        f.release_lease |= c.release_lease;
        f.steps += 1;
    }
    Some(f)
}

/// Every change's steps in one guarded statement, one row update per payment (a payment
/// appears once per group: `split_repeats`); returns the payments moved, by id, as their
/// last step left them. A payment whose first step's guard no longer holds is not moved and
/// not returned.
async fn update_payments(
    conn: &mut PgConnection,
    changes: &[&[TransitionRows]],
) -> Result<HashMap<String, StoredPayment>, StoreError> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "UPDATE payments p SET \
               status = u.to_status, \
               last_bank_code = COALESCE(u.bank_code, p.last_bank_code), \
               last_bank_message = COALESCE(u.bank_message, p.last_bank_message), \
               bank_payment_id = COALESCE(u.bank_payment_id, p.bank_payment_id), \
               ever_sent = p.ever_sent OR u.sends > 0, \
               first_sent_at = CASE WHEN u.sends > 0 \
                               THEN COALESCE(p.first_sent_at, u.first_send_at) \
                               ELSE p.first_sent_at END, \
               last_sent_at = CASE WHEN u.sends > 0 THEN u.last_send_at \
                              ELSE p.last_sent_at END, \
               send_attempts = p.send_attempts + u.sends, \
               next_attempt_at = u.next_attempt_at, \
               lease_owner = CASE WHEN u.release_lease THEN NULL ELSE p.lease_owner END, \
               lease_expires_at = CASE WHEN u.release_lease THEN NULL \
                                  ELSE p.lease_expires_at END, \
               updated_at = u.at, \
               version = p.version + u.steps \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                         $6::text[], $7::text[], $8::bigint[], $9::timestamptz[], \
                         $10::timestamptz[], $11::timestamptz[], $12::bool[], \
                         $13::timestamptz[], $14::bigint[]) \
                  AS u(id, from_status, to_status, fencing_token, bank_code, bank_message, \
                       bank_payment_id, sends, first_send_at, last_send_at, next_attempt_at, \
                       release_lease, at, steps) \
             WHERE p.id = u.id AND p.status = u.from_status \
               AND (u.fencing_token IS NULL OR p.fencing_token = u.fencing_token) \
             RETURNING {}",
            returning_payment_columns()
        )
    });
    let n = changes.len();
    let mut id = Vec::with_capacity(n);
    let mut from_status = Vec::with_capacity(n);
    let mut to_status = Vec::with_capacity(n);
    let mut fencing_token: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut bank_code: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut bank_message: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut bank_payment_id: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut sends = Vec::with_capacity(n);
    let mut first_send_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut last_send_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut next_attempt_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut release_lease = Vec::with_capacity(n);
    let mut at: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut steps_n = Vec::with_capacity(n);
    for steps in changes {
        let (Some(first), Some(f)) = (steps.first(), fold(steps)) else {
            continue;
        };
        id.push(first.id.as_str());
        from_status.push(first.guard.from_status.as_str());
        fencing_token.push(first.guard.fencing_token);
        to_status.push(f.to_status);
        bank_code.push(f.bank_code);
        bank_message.push(f.bank_message);
        bank_payment_id.push(f.bank_payment_id);
        sends.push(f.sends);
        first_send_at.push(f.first_send_at);
        last_send_at.push(f.last_send_at);
        next_attempt_at.push(f.next_attempt_at);
        release_lease.push(f.release_lease);
        at.push(f.at);
        steps_n.push(f.steps);
    }
    let rows = sqlx::query(sql)
        .bind(&id)
        .bind(&from_status)
        .bind(&to_status)
        .bind(&fencing_token)
        .bind(&bank_code)
        .bind(&bank_message)
        .bind(&bank_payment_id)
        .bind(&sends)
        .bind(&first_send_at)
        .bind(&last_send_at)
        .bind(&next_attempt_at)
        .bind(&release_lease)
        .bind(&at)
        .bind(&steps_n)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
    rows.iter()
        .map(|row| payment_from_row(row).map(|p| (p.instruction.id.as_str().to_owned(), p)))
        .collect()
}

/// Every step's history row in one statement, each payment's numbered on from its newest
/// (`step_no` 1, 2, … within its change; a payment appears once per group); returns each
/// payment's first new seq.
async fn insert_history(
    conn: &mut PgConnection,
    went: &[(usize, &[TransitionRows])],
) -> Result<HashMap<String, i64>, StoreError> {
    let n: usize = went.iter().map(|(_, steps)| steps.len()).sum();
    let mut payment_id = Vec::with_capacity(n);
    let mut step_no: Vec<i64> = Vec::with_capacity(n);
    let mut at: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut from_status = Vec::with_capacity(n);
    let mut to_status = Vec::with_capacity(n);
    let mut cause = Vec::with_capacity(n);
    let mut bank_code: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut bank_message: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut actor = Vec::with_capacity(n);
    let mut request_id: Vec<Option<&str>> = Vec::with_capacity(n);
    for (_, steps) in went {
        for (no, t) in (1_i64..).zip(steps.iter()) {
            payment_id.push(t.id.as_str());
            step_no.push(no);
            at.push(t.audit.at);
            from_status.push(t.guard.from_status.as_str());
            to_status.push(t.change.to_status.as_str());
            cause.push(t.change.cause.as_str());
            bank_code.push(t.change.bank_code.as_deref());
            bank_message.push(t.change.bank_message.as_deref());
            actor.push(t.actor.name.as_str());
            request_id.push(t.actor.request_id.as_deref());
        }
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO payment_history \
           (payment_id, seq, at, from_status, to_status, cause, bank_code, bank_message, \
            actor, request_id) \
         SELECT u.payment_id, \
                (SELECT COALESCE(MAX(h.seq), 0) FROM payment_history h \
                 WHERE h.payment_id = u.payment_id) + u.step_no, \
                u.at, u.from_status, u.to_status, u.cause, u.bank_code, u.bank_message, \
                u.actor, u.request_id \
         FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], \
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) \
              AS u(payment_id, step_no, at, from_status, to_status, cause, bank_code, \
                   bank_message, actor, request_id) \
         RETURNING payment_id, seq",
    )
    .bind(&payment_id)
    .bind(&step_no)
    .bind(&at)
    .bind(&from_status)
    .bind(&to_status)
    .bind(&cause)
    .bind(&bank_code)
    .bind(&bank_message)
    .bind(&actor)
    .bind(&request_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?;
    let mut first: HashMap<String, i64> = HashMap::with_capacity(went.len());
    for (payment, seq) in rows {
        let at = first.entry(payment).or_insert(seq);
        *at = (*at).min(seq);
    }
    Ok(first)
}

/// The status and token of the payments whose guard did not hold; a missing one does not
/// exist.
async fn read_current(
    conn: &mut PgConnection,
    ids: &[&str],
) -> Result<HashMap<String, Current>, StoreError> {
    let rows = sqlx::query("SELECT id, status, fencing_token FROM payments WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("id").map_err(err)?,
                Current {
                    status: row.try_get("status").map_err(err)?,
                    fencing_token: row.try_get("fencing_token").map_err(err)?,
                },
            ))
        })
        .collect()
}
