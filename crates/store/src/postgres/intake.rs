//! Group commit of new payments on PostgreSQL.
//!
//! One payment alone is about ten statements and a commit, and its audit insert holds the
//! audit-order lock (`AUDIT_ORDER_LOCK_KEY`) until that commit has flushed: payments
//! created one per transaction pass that lock one at a time, so intake could not exceed
//! one payment per commit flush (BENCHMARKS.md, issue 5). Here `create_payment` hands its
//! checked rows to a few group tasks. Each takes whatever creates are queued (up to
//! [`GROUP_MAX`]) and writes them with ONE statement ([`GROUP_SQL`]) outside any explicit
//! transaction, so the server commits it as it ends: the keys (inserted completed, with
//! the answer they replay), the payments (answered as inserted, not read back), their
//! history, the events, and last the audit records, which `audit_append_linked`
//! (migration 0016) links in the server under the audit-order lock. The rows go in as
//! arrays (`unnest`), so the SQL text never changes with the group's size and stays
//! prepared. Every payment's rows commit together, many payments share the commit, and a
//! group is one round trip: on a busy machine each round trip waits for the gateway's
//! thread and the server's process to be scheduled, and with BEGIN, a statement per table,
//! the audit head, the audit insert and COMMIT those waits, not the statements, were most
//! of a group's time, and the lock was held across two of them. An answer goes out only
//! after the statement, and so its commit, returned.
//!
//! Only the plain case is grouped: a new key for a new payment. A create whose key already
//! exists (a replay, a reuse with another body, a request still in progress), or that
//! repeats a key or end-to-end id of an earlier create in the same group, is answered
//! `Alone` and its caller runs the one-payment transaction of `payments.rs`, which answers
//! each of those cases exactly as before; the rows it was grouped with are not affected
//! (neither its key nor its payment is inserted). A group that the server refuses (its
//! statement failed: nothing of it was committed) answers every create `Alone` too, to be
//! tried again on its own; that is what a create whose end-to-end id is already taken does
//! to its group (its key's reference to a payment that did not go in fails the statement),
//! so such a create costs its group its shared commit, never a wrong answer. Only a
//! statement whose outcome is unknown (the connection broke while it was in flight) answers
//! `OutcomeUnknown`, as the one-payment path does.
//!
//! Concurrency: groups insert their keys and payments ordered by key, so two groups
//! racing for the same key wait on each other in one order; a group that waits for a
//! concurrent transaction holding one of its keys sees that row afterwards (`ON CONFLICT
//! DO NOTHING`) and sends that create `Alone`, like the one-payment path.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

use super::group::{self, GroupQueue};
use super::{AuditColumns, BACKEND};
use crate::error::statement_error;
use crate::events::EventRow;
use crate::payments::CreateRows;
use crate::{CreateOutcome, StoreError};

/// The keys' reference to their payments (migration 0013), which a group's statement
/// fails on when one of its creates has an end-to-end id that is already taken.
const KEY_REFERENCE: &str = "idempotency_keys_payment_id_fkey";

/// Most creates written in one statement.
const GROUP_MAX: usize = 256;
/// Group tasks: while one waits for its statement and its commit, another writes the next
/// group (three measured slower: BENCHMARKS.md).
const GROUP_TASKS: usize = 2;

/// How a grouped create ended: committed with its group, or `Alone` (the caller runs the
/// one-payment transaction; see the module docs).
pub(super) type Grouped = group::Grouped<CreateOutcome, CreateRows>;
type Job = group::Job<CreateRows, CreateOutcome>;
/// The callers' side: a queue read by [`GROUP_TASKS`] group tasks.
pub(super) type GroupIntake = GroupQueue<CreateRows, CreateOutcome>;

/// Starts the group tasks (`group.rs`); they end when the store is dropped. Each group is
/// written on a connection with no transaction open: its one statement commits as it ends.
pub(super) fn spawn(pool: PgPool) -> GroupIntake {
    GroupQueue::spawn(pool, GROUP_TASKS, GROUP_MAX, |conn, jobs| {
        Box::pin(write_group(conn, jobs))
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

async fn write_group(mut conn: PoolConnection<Postgres>, jobs: Vec<Job>) {
    let (mut jobs, alone) = split_repeats(jobs);
    answer_alone(alone);
    // Ordered by key, so racing groups lock keys (and then payments) in one order.
    jobs.sort_by(|a, b| {
        (&a.rows.claim.client_id, &a.rows.claim.key)
            .cmp(&(&b.rows.claim.client_id, &b.rows.claim.key))
    });
    let written = match insert_group(&mut conn, &jobs).await {
        Ok(written) => written,
        Err(sqlx::Error::Database(e)) if e.constraint() == Some(KEY_REFERENCE) => {
            // A create whose end-to-end id is taken: a client's mistake, answered as such
            // when its create runs alone (the module docs). Nothing of the group is stored.
            tracing::debug!(creates = jobs.len(), error = %e, "payment group refused: an end-to-end id is taken; each create runs alone");
            answer_alone(jobs);
            return;
        }
        Err(e) => {
            // Refused by the server (nothing stored: each create runs alone), or sent with
            // no answer back (committed or not, nobody knows), as `group::commit` says.
            group::CommitFailed::of(e, "payment group", jobs.len()).answer_all(jobs);
            return;
        }
    };
    let written: HashSet<String> = written.into_iter().collect();
    for job in jobs {
        if written.contains(&job.rows.payment.id) {
            let created = CreateOutcome::Created(Box::new(job.rows.created()));
            job.done(created);
        } else {
            job.alone();
        }
    }
}

/// The group's rows in one statement, each table's rows passed as arrays (`unnest`):
///
/// 1. `k`: the keys, already completed with the answer they replay. Those not inserted
///    exist already: their creates go alone. A key's reference to its payment is checked
///    as the statement ends, when the payments are in.
/// 2. `p`: the payments of the keys inserted, each answered as its insert stores it
///    (`CreateRows::created`), not read back. One not inserted collides on its
///    end-to-end id (or, never in practice, its random id or reference): its key then
///    refers to no payment, the statement fails as it ends, and the whole group goes
///    alone, where that create is answered as taken. (Leaving such creates out of the
///    group beforehand took a look-up per create that the planner, on a young table,
///    made a scan of the account's payments: BENCHMARKS.md.)
/// 3. `h`, `e`: the history (each payment's initial steps, seq 1.., the first from no
///    status) and the events (in the group's order, so the outbox's seq follows it) of
///    the payments inserted.
/// 4. Last, once every insert has run (the call reads their counts), the audit records
///    of the payments inserted, in the group's order: `audit_append_linked` (migration
///    0016) takes the audit-order lock, links them after the chain's head and inserts
///    them. The lock is held from there to the end of the commit.
///
/// The sub-statements of one statement share its snapshot, so each filters on what the
/// one before it returned, never on the tables.
const GROUP_SQL: &str = "\
WITH k AS (
    INSERT INTO idempotency_keys
        (client_id, key, request_hash, state, response_status, response_body, payment_id,
         created_at, expires_at)
    SELECT u.client_id, u.key, u.request_hash, 'completed', u.status, u.body, u.payment_id,
           u.created_at, u.expires_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $7::text[],
                $26::timestamptz[], $6::timestamptz[]) WITH ORDINALITY
         AS u(client_id, key, request_hash, status, body, payment_id, created_at,
              expires_at, ord)
    ORDER BY u.ord
    ON CONFLICT (client_id, key) DO NOTHING
    RETURNING payment_id
), p AS (
    INSERT INTO payments
        (id, client_id, debtor_account_id, amount_minor, currency, creditor_name,
         creditor_account, creditor_bank_code, creditor_bic, creditor_bank_name,
         creditor_type, remittance, purpose, end_to_end_id, requested_execution_date,
         urgency, business_reference, status, ever_sent, send_attempts, next_attempt_at,
         fencing_token, created_at, updated_at, version, on_behalf_of, approvals_required)
    SELECT u.id, u.client_id, u.debtor, u.amount, u.currency, u.cred_name, u.cred_account,
           u.cred_bank_code, u.cred_bic, u.cred_bank_name, u.cred_type, u.remittance,
           u.purpose, u.e2e, u.exec_date, u.urgency, u.reference, u.status, FALSE, 0,
           u.next_at, 0, u.at, u.at, 1, u.behalf, u.approvals
    FROM unnest($7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[],
                $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                $17::text[], $18::text[], $19::text[], $20::text[], $21::date[],
                $22::text[], $23::text[], $24::text[], $25::timestamptz[],
                $26::timestamptz[], $27::text[], $28::int[]) WITH ORDINALITY
         AS u(id, client_id, debtor, amount, currency, cred_name, cred_account,
              cred_bank_code, cred_bic, cred_bank_name, cred_type, remittance, purpose,
              e2e, exec_date, urgency, reference, status, next_at, at, behalf, approvals,
              ord)
    WHERE u.id IN (SELECT k.payment_id FROM k)
    ORDER BY u.ord
    ON CONFLICT DO NOTHING
    RETURNING id
), h AS (
    INSERT INTO payment_history
        (payment_id, seq, at, from_status, to_status, cause, bank_code, bank_message,
         actor, request_id)
    SELECT u.payment_id, u.seq, u.at, u.from_status, u.to_status, u.cause, NULL, NULL,
           u.actor, u.request_id
    FROM unnest($29::text[], $30::bigint[], $31::timestamptz[], $32::text[], $33::text[],
                $34::text[], $35::text[], $36::text[])
         AS u(payment_id, seq, at, from_status, to_status, cause, actor, request_id)
    WHERE u.payment_id IN (SELECT p.id FROM p)
    RETURNING 1
), e AS (
    INSERT INTO events
        (id, type, version, object_type, object_id, object_seq, account_id, occurred_at,
         data)
    SELECT u.id, u.type, u.version, u.object_type, u.object_id, u.object_seq, u.account_id,
           u.occurred_at, u.data::jsonb
    FROM unnest($37::text[], $38::text[], $39::int[], $40::text[], $41::text[],
                $42::bigint[], $43::text[], $44::timestamptz[], $45::text[], $7::text[])
         WITH ORDINALITY
         AS u(id, type, version, object_type, object_id, object_seq, account_id,
              occurred_at, data, payment_id, ord)
    WHERE u.payment_id IN (SELECT p.id FROM p)
    ORDER BY u.ord
    RETURNING 1
), a AS (
    SELECT array_agg(u.at ORDER BY u.ord) AS ats,
           array_agg(u.actor ORDER BY u.ord) AS actors,
           array_agg(u.action ORDER BY u.ord) AS actions,
           array_agg(u.object ORDER BY u.ord) AS objects,
           array_agg(u.request_id ORDER BY u.ord) AS request_ids,
           array_agg(u.outcome ORDER BY u.ord) AS outcomes,
           array_agg(u.details ORDER BY u.ord) AS details
    FROM unnest($7::text[], $46::timestamptz[], $47::text[], $48::text[], $49::text[],
                $50::text[], $51::text[], $52::text[]) WITH ORDINALITY
         AS u(payment_id, at, actor, action, object, request_id, outcome, details, ord)
    WHERE u.payment_id IN (SELECT p.id FROM p)
)
SELECT pp.ids,
       audit_append_linked($53, a.ats, a.actors, a.actions, a.objects, a.request_ids,
                           a.outcomes, a.details)
FROM (SELECT coalesce(array_agg(p.id), '{}') FROM p) AS pp(ids),
     -- Read here so that every insert has run before the lock is taken.
     (SELECT count(*) FROM h) AS hh(n),
     (SELECT count(*) FROM e) AS ee(n),
     a";

/// Runs `GROUP_SQL` for `jobs`; answers the ids of the payments that went in.
async fn insert_group(conn: &mut PgConnection, jobs: &[Job]) -> Result<Vec<String>, sqlx::Error> {
    let n = jobs.len();
    // 1. Keys.
    let mut k_client = Vec::with_capacity(n);
    let mut k_key = Vec::with_capacity(n);
    let mut k_hash = Vec::with_capacity(n);
    let mut k_status = Vec::with_capacity(n);
    let mut k_body = Vec::with_capacity(n);
    let mut k_expires = Vec::with_capacity(n);
    // 2. Payments.
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
    // 3. History.
    let mut h_payment = Vec::with_capacity(2 * n);
    let mut h_seq = Vec::with_capacity(2 * n);
    let mut h_at = Vec::with_capacity(2 * n);
    let mut h_from: Vec<Option<&str>> = Vec::with_capacity(2 * n);
    let mut h_to = Vec::with_capacity(2 * n);
    let mut h_cause = Vec::with_capacity(2 * n);
    let mut h_actor = Vec::with_capacity(2 * n);
    let mut h_request: Vec<Option<&str>> = Vec::with_capacity(2 * n);
    // 4. Events.
    let events = EventColumns::of(jobs.iter().map(|j| &j.rows.event));
    for j in jobs {
        let r = &j.rows;
        let (c, p) = (&r.claim, &r.payment);
        k_client.push(c.client_id.as_str());
        k_key.push(c.key.as_str());
        k_hash.push(c.request_hash.as_str());
        k_status.push(i32::from(c.response_status));
        k_body.push(c.response_body.as_str());
        k_expires.push(c.expires_at);

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
        at.push(r.audit.at);
        behalf.push(p.on_behalf_of.as_deref());
        approvals.push(i32::try_from(p.approvals_required).unwrap_or(i32::MAX));

        let mut previous: Option<&str> = None;
        for (index, step) in r.steps.iter().enumerate() {
            h_payment.push(p.id.as_str());
            h_seq.push(i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1));
            h_at.push(r.audit.at);
            h_from.push(previous);
            h_to.push(step.to_status.as_str());
            h_cause.push(step.cause.as_str());
            h_actor.push(r.audit.actor.as_str());
            h_request.push(r.audit.request_id.as_deref());
            previous = Some(step.to_status.as_str());
        }
    }
    // 5. Audit records, one per create, filtered with the payments in the statement.
    let audits = AuditColumns::of(jobs.iter().map(|j| &j.rows.audit));
    // The first column: the ids of the payments that went in (the second, the audit ids,
    // follows from them).
    sqlx::query_scalar::<_, Vec<String>>(GROUP_SQL)
        .bind(&k_client)
        .bind(&k_key)
        .bind(&k_hash)
        .bind(&k_status)
        .bind(&k_body)
        .bind(&k_expires)
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
        .bind(&h_payment)
        .bind(&h_seq)
        .bind(&h_at)
        .bind(&h_from)
        .bind(&h_to)
        .bind(&h_cause)
        .bind(&h_actor)
        .bind(&h_request)
        .bind(&events.id)
        .bind(&events.event_type)
        .bind(&events.version)
        .bind(&events.object_type)
        .bind(&events.object_id)
        .bind(&events.object_seq)
        .bind(&events.account_id)
        .bind(&events.occurred_at)
        .bind(&events.data)
        .bind(&audits.at)
        .bind(&audits.actor)
        .bind(&audits.action)
        .bind(&audits.object)
        .bind(&audits.request_id)
        .bind(&audits.outcome)
        .bind(&audits.details)
        .bind(super::AUDIT_ORDER_LOCK_KEY)
        .fetch_one(&mut *conn)
        .await
}

/// Events as the arrays their inserts `unnest`, in the order given.
struct EventColumns<'a> {
    id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    version: Vec<i32>,
    object_type: Vec<&'a str>,
    object_id: Vec<&'a str>,
    object_seq: Vec<i64>,
    account_id: Vec<&'a str>,
    occurred_at: Vec<DateTime<Utc>>,
    data: Vec<&'a str>,
}

impl<'a> EventColumns<'a> {
    fn of(events: impl ExactSizeIterator<Item = &'a EventRow>) -> Self {
        let n = events.len();
        let mut c = EventColumns {
            id: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            object_type: Vec::with_capacity(n),
            object_id: Vec::with_capacity(n),
            object_seq: Vec::with_capacity(n),
            account_id: Vec::with_capacity(n),
            occurred_at: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
        };
        for e in events {
            c.id.push(e.id.as_str());
            c.event_type.push(e.event_type.as_str());
            c.version.push(e.event_type.version());
            c.object_type.push(e.event_type.object_type());
            c.object_id.push(e.object_id.as_str());
            c.object_seq.push(e.object_seq);
            c.account_id.push(e.account_id.as_str());
            c.occurred_at.push(e.occurred_at);
            c.data.push(e.data.as_str());
        }
        c
    }
}

pub(super) async fn insert_events(
    conn: &mut PgConnection,
    events: &[&EventRow],
) -> Result<(), StoreError> {
    let c = EventColumns::of(events.iter().copied());
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
    .bind(&c.id)
    .bind(&c.event_type)
    .bind(&c.version)
    .bind(&c.object_type)
    .bind(&c.object_id)
    .bind(&c.object_seq)
    .bind(&c.account_id)
    .bind(&c.occurred_at)
    .bind(&c.data)
    .execute(&mut *conn)
    .await
    .map_err(|e| statement_error(BACKEND, "appending events", e))?;
    Ok(())
}
