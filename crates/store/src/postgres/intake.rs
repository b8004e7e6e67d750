//! Group commit of new payments on PostgreSQL.
//!
//! One payment alone is about ten statements and a commit, and its audit insert holds the
//! audit-order lock (`AUDIT_ORDER_LOCK_KEY`) until that commit has flushed: payments
//! created one per transaction pass that lock one at a time, so intake could not exceed
//! one payment per commit flush (BENCHMARKS.md, issue 5). Here `create_payment` hands its
//! checked rows to a few group tasks. Each takes whatever creates are queued (up to
//! [`GROUP_MAX`]) and writes them in ONE transaction with one statement per table, the rows
//! passed as arrays (`unnest`), so the SQL text never changes with the group's size and
//! stays prepared: the keys (inserted completed, with the answer they replay; their
//! reference to the payment is checked at commit), the payments (answered as inserted, not read back), their
//! history, the events, and last the audit records under one hold of the lock.
//! Every payment's rows commit together, and many payments share the commit, the lock and
//! the round trips. An answer goes out only after COMMIT returned.
//!
//! Only the plain case is grouped: a new key for a new payment. A create whose key already
//! exists (a replay, a reuse with another body, a request still in progress), whose
//! end-to-end id is taken, or that repeats a key or end-to-end id of an earlier create in
//! the same group, is answered `Alone` and its caller runs the one-payment
//! transaction of `payments.rs`, which answers each of those cases exactly as before; the
//! rows it was grouped with are not affected (its key row is deleted in the group's
//! transaction, its payment row never inserted). A group whose transaction fails before
//! COMMIT was rolled back, so every create in it is answered `Alone` too and tried again
//! on its own; only a COMMIT whose outcome is unknown (the connection broke while it was
//! in flight) answers `OutcomeUnknown`, as the one-payment path does.
//!
//! Concurrency: groups insert their keys and payments ordered by key, so two groups
//! racing for the same key wait on each other in one order; a group that waits for a
//! concurrent transaction holding one of its keys sees that row afterwards (`ON CONFLICT
//! DO NOTHING`) and sends that create `Alone`, like the one-payment path.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::group::{self, CommitFailed, GroupQueue};
use super::{append_audits, BACKEND};
use crate::codec::AuditRow;
use crate::error::statement_error;
use crate::events::EventRow;
use crate::payments::CreateRows;
use crate::{CreateOutcome, StoreError};

/// Most creates written in one transaction.
const GROUP_MAX: usize = 256;
/// Group tasks: while one waits for its COMMIT, another writes the next group.
const GROUP_TASKS: usize = 2;

const OP: &str = "creating payments in a group";

fn err(e: sqlx::Error) -> StoreError {
    statement_error(BACKEND, OP, e)
}

/// How a grouped create ended: committed with its group, or `Alone` (the caller runs the
/// one-payment transaction; see the module docs).
pub(super) type Grouped = group::Grouped<CreateOutcome, CreateRows>;
type Job = group::Job<CreateRows, CreateOutcome>;
/// The callers' side: a queue read by [`GROUP_TASKS`] group tasks.
pub(super) type GroupIntake = GroupQueue<CreateRows, CreateOutcome>;

/// Starts the group tasks (`group.rs`); they end when the store is dropped. Each group's
/// transaction opens with the keys' reference to their payments deferred to the commit: a
/// key goes in before its payment.
pub(super) fn spawn(pool: PgPool) -> GroupIntake {
    let begin = format!("BEGIN; {}", super::DEFER_KEY_REFERENCE);
    GroupQueue::spawn(pool, GROUP_TASKS, GROUP_MAX, begin, |tx, jobs| {
        Box::pin(write_group(tx, jobs))
    })
}

/// Splits off the creates that repeat a key or an end-to-end id of an earlier one in the
/// group: those go `Alone` (after the group, they find its rows and answer as usual).
fn split_repeats(jobs: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let mut keys = HashSet::with_capacity(jobs.len());
    let mut e2e = HashSet::with_capacity(jobs.len());
    let mut grouped = Vec::with_capacity(jobs.len());
    let mut alone = Vec::new();
    for job in jobs {
        let claim = &job.rows.claim;
        let key_new = keys.insert((claim.client_id.clone(), claim.key.clone()));
        let e2e_new = match &job.rows.payment.end_to_end_id {
            Some(id) => e2e.insert((job.rows.payment.debtor_account_id.clone(), id.clone())),
            None => true,
        };
        if key_new && e2e_new {
            grouped.push(job);
        } else {
            alone.push(job);
        }
    }
    (grouped, alone)
}

fn answer_alone(jobs: Vec<Job>) {
    jobs.into_iter().for_each(Job::alone);
}

async fn write_group(mut tx: Transaction<'static, Postgres>, jobs: Vec<Job>) {
    let (mut jobs, alone) = split_repeats(jobs);
    answer_alone(alone);
    // Ordered by key, so racing groups lock keys (and then payments) in one order.
    jobs.sort_by(|a, b| {
        (&a.rows.claim.client_id, &a.rows.claim.key)
            .cmp(&(&b.rows.claim.client_id, &b.rows.claim.key))
    });
    let written = match write_rows(&mut tx, &jobs).await {
        Ok(written) => written,
        Err(e) => {
            // Dropping `tx` rolls it back: nothing of the group is stored.
            drop(tx);
            tracing::warn!(creates = jobs.len(), error = %e, "payment group rolled back; each create runs alone");
            answer_alone(jobs);
            return;
        }
    };
    match group::commit(tx, "payment group", jobs.len()).await {
        Ok(()) => {
            let mut written = written;
            for job in jobs {
                match written.remove(&job.rows.payment.id) {
                    Some(stored) => job.done(stored),
                    None => job.alone(),
                }
            }
        }
        Err(CommitFailed::Refused) => answer_alone(jobs),
        Err(CommitFailed::Unknown(reason)) => {
            for job in jobs {
                job.answer(Err(group::outcome_unknown(&reason)));
            }
        }
    }
}

/// The group's statements; returns the outcome of each payment written, by payment id.
/// A create missing from the map was not written (its key or end-to-end id was taken).
async fn write_rows(
    conn: &mut PgConnection,
    jobs: &[Job],
) -> Result<HashMap<String, CreateOutcome>, StoreError> {
    // 1. Keys, already completed with the answer they replay: the transaction's other
    //    writers cannot see them before its commit, by which time the payment is in (its
    //    reference is checked then: migration 0013, deferred by the group's BEGIN). Those
    //    not inserted exist already: their creates go alone.
    let inserted_keys: HashSet<(String, String)> = {
        let n = jobs.len();
        let mut client_ids = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut hashes = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut bodies = Vec::with_capacity(n);
        let mut payment_ids = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut expires = Vec::with_capacity(n);
        for j in jobs {
            let c = &j.rows.claim;
            client_ids.push(c.client_id.as_str());
            keys.push(c.key.as_str());
            hashes.push(c.request_hash.as_str());
            statuses.push(i32::from(c.response_status));
            bodies.push(c.response_body.as_str());
            payment_ids.push(j.rows.payment.id.as_str());
            created.push(j.rows.audit.at);
            expires.push(c.expires_at);
        }
        sqlx::query_as(
            "INSERT INTO idempotency_keys \
               (client_id, key, request_hash, state, response_status, response_body, \
                payment_id, created_at, expires_at) \
             SELECT u.client_id, u.key, u.request_hash, 'completed', u.status, u.body, \
                    u.payment_id, u.created_at, u.expires_at \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], \
                         $6::text[], $7::timestamptz[], $8::timestamptz[]) WITH ORDINALITY \
                  AS u(client_id, key, request_hash, status, body, payment_id, created_at, \
                       expires_at, ord) \
             ORDER BY u.ord \
             ON CONFLICT (client_id, key) DO NOTHING \
             RETURNING client_id, key",
        )
        .bind(&client_ids)
        .bind(&keys)
        .bind(&hashes)
        .bind(&statuses)
        .bind(&bodies)
        .bind(&payment_ids)
        .bind(&created)
        .bind(&expires)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?
        .into_iter()
        .collect()
    };
    let keyed: Vec<&Job> = jobs
        .iter()
        .filter(|j| {
            inserted_keys.contains(&(j.rows.claim.client_id.clone(), j.rows.claim.key.clone()))
        })
        .collect();

    // 2. Payments. One not inserted collides on its end-to-end id (or, never in practice,
    //    its random id or reference): its key is deleted and it goes alone.
    //    Each is answered as its insert stores it (`CreateRows::created`), not read back.
    let inserted: HashSet<String> = insert_payments(conn, &keyed).await?;
    let (written, unwritten): (Vec<&Job>, Vec<&Job>) = keyed
        .into_iter()
        .partition(|j| inserted.contains(&j.rows.payment.id));
    if !unwritten.is_empty() {
        let client_ids: Vec<&str> = unwritten
            .iter()
            .map(|j| j.rows.claim.client_id.as_str())
            .collect();
        let keys: Vec<&str> = unwritten
            .iter()
            .map(|j| j.rows.claim.key.as_str())
            .collect();
        sqlx::query(
            "DELETE FROM idempotency_keys AS k USING unnest($1::text[], $2::text[]) AS u(c, k2) \
             WHERE k.client_id = u.c AND k.key = u.k2",
        )
        .bind(&client_ids)
        .bind(&keys)
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    }
    if written.is_empty() {
        return Ok(HashMap::new());
    }

    // 3. History: each payment's initial steps, seq 1.., the first from no status.
    insert_history(conn, &written).await?;

    // 4. The events, made with the rows (`create_rows`).
    let events: Vec<&EventRow> = written.iter().map(|j| &j.rows.event).collect();
    let outcomes: HashMap<String, CreateOutcome> = written
        .iter()
        .map(|j| {
            let created = CreateOutcome::Created(Box::new(j.rows.created()));
            (j.rows.payment.id.clone(), created)
        })
        .collect();
    insert_events(conn, &events).await?;

    // 5. Last, the audit records, under one hold of the audit-order lock.
    let audits: Vec<&AuditRow> = written.iter().map(|j| &j.rows.audit).collect();
    append_audits(conn, &audits).await?;
    Ok(outcomes)
}

async fn insert_payments(
    conn: &mut PgConnection,
    jobs: &[&Job],
) -> Result<HashSet<String>, StoreError> {
    let n = jobs.len();
    if n == 0 {
        return Ok(HashSet::new());
    }
    let mut id = Vec::with_capacity(n);
    let mut client_id = Vec::with_capacity(n);
    let mut debtor = Vec::with_capacity(n);
    let mut amount = Vec::with_capacity(n);
    let mut currency = Vec::with_capacity(n);
    let mut cred_name = Vec::with_capacity(n);
    let mut cred_account = Vec::with_capacity(n);
    let mut cred_bank_code: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut cred_bic: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut cred_bank_name: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut cred_type = Vec::with_capacity(n);
    let mut remittance = Vec::with_capacity(n);
    let mut purpose: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut e2e: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut exec_date: Vec<NaiveDate> = Vec::with_capacity(n);
    let mut urgency = Vec::with_capacity(n);
    let mut reference = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut next_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut at = Vec::with_capacity(n);
    let mut behalf: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut approvals = Vec::with_capacity(n);
    for j in jobs {
        let p = &j.rows.payment;
        id.push(p.id.as_str());
        client_id.push(p.client_id.as_str());
        debtor.push(p.debtor_account_id.as_str());
        amount.push(p.amount_minor);
        currency.push(p.currency);
        cred_name.push(p.creditor_name.as_str());
        cred_account.push(p.creditor_account.as_str());
        cred_bank_code.push(p.creditor_bank_code.as_deref());
        cred_bic.push(p.creditor_bic.as_deref());
        cred_bank_name.push(p.creditor_bank_name.as_deref());
        cred_type.push(p.creditor_type);
        remittance.push(p.remittance.as_str());
        purpose.push(p.purpose.as_deref());
        e2e.push(p.end_to_end_id.as_deref());
        exec_date.push(p.requested_execution_date.naive());
        urgency.push(p.urgency);
        reference.push(p.business_reference.as_str());
        status.push(p.status.as_str());
        next_at.push(p.next_attempt_at);
        at.push(j.rows.audit.at);
        behalf.push(p.on_behalf_of.as_deref());
        approvals.push(i32::try_from(p.approvals_required).unwrap_or(i32::MAX));
    }
    let ids: Vec<String> = sqlx::query_scalar(
        "INSERT INTO payments \
           (id, client_id, debtor_account_id, amount_minor, currency, creditor_name, \
            creditor_account, creditor_bank_code, creditor_bic, creditor_bank_name, \
            creditor_type, remittance, purpose, end_to_end_id, requested_execution_date, \
            urgency, business_reference, status, ever_sent, send_attempts, \
            next_attempt_at, fencing_token, created_at, updated_at, version, on_behalf_of, \
            approvals_required) \
         SELECT u.id, u.client_id, u.debtor, u.amount, u.currency, u.cred_name, \
                u.cred_account, u.cred_bank_code, u.cred_bic, u.cred_bank_name, u.cred_type, \
                u.remittance, u.purpose, u.e2e, u.exec_date, u.urgency, u.reference, \
                u.status, FALSE, 0, u.next_at, 0, u.at, u.at, 1, u.behalf, u.approvals \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
                     $11::text[], $12::text[], $13::text[], $14::text[], $15::date[], \
                     $16::text[], $17::text[], $18::text[], $19::timestamptz[], \
                     $20::timestamptz[], $21::text[], $22::int[]) WITH ORDINALITY \
              AS u(id, client_id, debtor, amount, currency, cred_name, cred_account, \
                   cred_bank_code, cred_bic, cred_bank_name, cred_type, remittance, purpose, \
                   e2e, exec_date, urgency, reference, status, next_at, at, behalf, \
                   approvals, ord) \
         ORDER BY u.ord \
         ON CONFLICT DO NOTHING \
         RETURNING id",
    )
    .bind(&id)
    .bind(&client_id)
    .bind(&debtor)
    .bind(&amount)
    .bind(&currency)
    .bind(&cred_name)
    .bind(&cred_account)
    .bind(&cred_bank_code)
    .bind(&cred_bic)
    .bind(&cred_bank_name)
    .bind(&cred_type)
    .bind(&remittance)
    .bind(&purpose)
    .bind(&e2e)
    .bind(&exec_date)
    .bind(&urgency)
    .bind(&reference)
    .bind(&status)
    .bind(&next_at)
    .bind(&at)
    .bind(&behalf)
    .bind(&approvals)
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?;
    Ok(ids.into_iter().collect())
}

async fn insert_history(conn: &mut PgConnection, jobs: &[&Job]) -> Result<(), StoreError> {
    let mut payment_id = Vec::new();
    let mut seq = Vec::new();
    let mut at = Vec::new();
    let mut from: Vec<Option<&str>> = Vec::new();
    let mut to = Vec::new();
    let mut cause = Vec::new();
    let mut actor = Vec::new();
    let mut request_id: Vec<Option<&str>> = Vec::new();
    for j in jobs {
        let r = &j.rows;
        let mut previous: Option<&str> = None;
        for (index, step) in r.steps.iter().enumerate() {
            payment_id.push(r.payment.id.as_str());
            seq.push(i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1));
            at.push(r.audit.at);
            from.push(previous);
            to.push(step.to_status.as_str());
            cause.push(step.cause.as_str());
            actor.push(r.audit.actor.as_str());
            request_id.push(r.audit.request_id.as_deref());
            previous = Some(step.to_status.as_str());
        }
    }
    sqlx::query(
        "INSERT INTO payment_history \
           (payment_id, seq, at, from_status, to_status, cause, bank_code, bank_message, \
            actor, request_id) \
         SELECT u.payment_id, u.seq, u.at, u.from_status, u.to_status, u.cause, NULL, NULL, \
                u.actor, u.request_id \
         FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], \
                     $6::text[], $7::text[], $8::text[]) \
              AS u(payment_id, seq, at, from_status, to_status, cause, actor, request_id)",
    )
    .bind(&payment_id)
    .bind(&seq)
    .bind(&at)
    .bind(&from)
    .bind(&to)
    .bind(&cause)
    .bind(&actor)
    .bind(&request_id)
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    Ok(())
}

pub(super) async fn insert_events(
    conn: &mut PgConnection,
    events: &[&EventRow],
) -> Result<(), StoreError> {
    let n = events.len();
    let mut id = Vec::with_capacity(n);
    let mut event_type = Vec::with_capacity(n);
    let mut version = Vec::with_capacity(n);
    let mut object_type = Vec::with_capacity(n);
    let mut object_id = Vec::with_capacity(n);
    let mut object_seq = Vec::with_capacity(n);
    let mut account_id = Vec::with_capacity(n);
    let mut occurred_at = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n);
    for e in events {
        id.push(e.id.as_str());
        event_type.push(e.event_type.as_str());
        version.push(e.event_type.version());
        object_type.push(e.event_type.object_type());
        object_id.push(e.object_id.as_str());
        object_seq.push(e.object_seq);
        account_id.push(e.account_id.as_str());
        occurred_at.push(e.occurred_at);
        data.push(e.data.as_str());
    }
    // In the order given, so the outbox's seq follows the group's order.
    sqlx::query(
        "INSERT INTO events \
           (id, type, version, object_type, object_id, object_seq, account_id, occurred_at, \
            data) \
         SELECT u.id, u.type, u.version, u.object_type, u.object_id, u.object_seq, \
                u.account_id, u.occurred_at, u.data::jsonb \
         FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], \
                     $6::bigint[], $7::text[], $8::timestamptz[], $9::text[]) WITH ORDINALITY \
              AS u(id, type, version, object_type, object_id, object_seq, account_id, \
                   occurred_at, data, ord) \
         ORDER BY u.ord",
    )
    .bind(&id)
    .bind(&event_type)
    .bind(&version)
    .bind(&object_type)
    .bind(&object_id)
    .bind(&object_seq)
    .bind(&account_id)
    .bind(&occurred_at)
    .bind(&data)
    .execute(&mut *conn)
    .await
    .map_err(|e| statement_error(BACKEND, "appending events", e))?;
    Ok(())
}
