//! The queue behind PostgreSQL's group commits (`intake.rs`, `transitions.rs`,
//! `exchanges.rs`): callers queue checked rows and wait; one task or a few, each taking what
//! is queued (up to a maximum), opens what the group is written on ([`Opens`]: a transaction
//! begun for it, which the function it was given ends with [`commit`]; or a connection,
//! for a group written as one statement, which commits on its own) and writes it as one
//! group with that function. Each job is answered with its outcome in the group
//! ([`Grouped::Done`]) or handed back to run on its own ([`Grouped::Alone`]): every job of
//! a group that could not begin, or that the server refused, is handed back. See those
//! modules for what each group does.

use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::BACKEND;
use crate::StoreError;

/// Jobs waiting for a group task before callers wait to queue.
const QUEUE_CAPACITY: usize = 4_096;

/// How a grouped job ended.
pub(super) enum Grouped<D, R> {
    /// Decided with its group.
    Done(D),
    /// Not written: the caller runs it in a transaction of its own.
    Alone(Box<R>),
}

/// One queued job: its rows and where its answer goes.
pub(super) struct Job<R, D> {
    pub rows: Box<R>,
    reply: oneshot::Sender<Result<Grouped<D, R>, StoreError>>,
}

impl<R, D> Job<R, D> {
    /// Answers the caller (who may have stopped waiting: then nobody needs it).
    pub fn answer(self, answer: Result<Grouped<D, R>, StoreError>) {
        let _ = self.reply.send(answer);
    }

    /// Hands the job back to run on its own.
    pub fn alone(self) {
        let Job { rows, reply } = self;
        let _ = reply.send(Ok(Grouped::Alone(rows)));
    }

    /// Answers with its outcome in the group.
    pub fn done(self, outcome: D) {
        self.answer(Ok(Grouped::Done(outcome)));
    }
}

/// The `application_name` of the group pools' sessions (the store's own are `bankdirect`).
pub(super) const GROUP_APPLICATION_NAME: &str = "bankdirect-groups";

/// What a group task does with the jobs it took, on what was opened for them (`C`).
pub(super) type WriteGroup<R, D, C> = fn(C, Vec<Job<R, D>>) -> BoxFuture<'static, ()>;

/// What a group is written on, opened from the group pool before each group. The group
/// pool pings a connection as the store's pool does: when it has been idle for a second or
/// more (`PING_IF_IDLE_FOR`). A transaction's BEGIN finds a dead connection before
/// anything of the group is sent (the group then runs alone). A group that is one
/// statement, sent on a connection that broke within the second since its last use, fails
/// as any statement does ([`CommitFailed::of`]): its jobs run alone when the server's
/// goodbye arrives as an error (a restart, an ended session), and are answered
/// `OutcomeUnknown` when the socket was cut without one.
pub(super) trait Opens: Sized + Send + 'static {
    /// Opens it.
    fn open(pool: &PgPool) -> BoxFuture<'_, Result<Self, sqlx::Error>>;
}

/// A transaction; the group's function ends it with [`commit`].
impl Opens for Transaction<'static, Postgres> {
    fn open(pool: &PgPool) -> BoxFuture<'_, Result<Self, sqlx::Error>> {
        Box::pin(pool.begin())
    }
}

/// A connection with no transaction open: for a group written as ONE statement, which
/// the server commits as it ends (no BEGIN and no COMMIT to wait for).
impl Opens for PoolConnection<Postgres> {
    fn open(pool: &PgPool) -> BoxFuture<'_, Result<Self, sqlx::Error>> {
        Box::pin(pool.acquire())
    }
}

/// How a group's COMMIT failed, or the one statement a group is (the server commits it as
/// it ends).
pub(super) enum CommitFailed {
    /// The server answered and rolled the group back: nothing of it is stored.
    Refused,
    /// The connection broke while COMMIT (or the statement) was in flight: it may or may
    /// not have applied. Each job that was written is answered [`outcome_unknown`].
    Unknown(String),
}

impl CommitFailed {
    /// Classifies `e`, the error of a COMMIT or of a group's one statement, and logs it
    /// under `what` (e.g. "payment group commit") with the group's size.
    pub(super) fn of(e: sqlx::Error, what: &str, jobs: usize) -> CommitFailed {
        match e {
            sqlx::Error::Database(_) => {
                tracing::warn!(jobs, error = %e, "{what} refused; its jobs run alone");
                CommitFailed::Refused
            }
            e => {
                tracing::error!(jobs, error = %e, "{what} outcome unknown");
                CommitFailed::Unknown(e.to_string())
            }
        }
    }

    /// Answers every job of a group that failed so: each runs alone, or each is answered
    /// [`outcome_unknown`].
    pub(super) fn answer_all<R, D>(self, jobs: Vec<Job<R, D>>) {
        match self {
            CommitFailed::Refused => jobs.into_iter().for_each(Job::alone),
            CommitFailed::Unknown(reason) => {
                for job in jobs {
                    job.answer(Err(outcome_unknown(&reason)));
                }
            }
        }
    }
}

/// Commits a group's transaction; a failure is logged under `what` (e.g. "payment group")
/// with the group's size.
pub(super) async fn commit(
    tx: Transaction<'static, Postgres>,
    what: &str,
    jobs: usize,
) -> Result<(), CommitFailed> {
    tx.commit()
        .await
        .map_err(|e| CommitFailed::of(e, &format!("{what} commit"), jobs))
}

/// The answer of a written job whose group's COMMIT outcome is unknown.
pub(super) fn outcome_unknown(reason: &str) -> StoreError {
    StoreError::OutcomeUnknown {
        backend: BACKEND,
        source: sqlx::Error::Protocol(format!("group commit: {reason}")),
    }
}

/// The callers' side of a group queue.
pub(super) struct GroupQueue<R, D> {
    sender: mpsc::Sender<Job<R, D>>,
}

impl<R: Send + 'static, D: Send + 'static> GroupQueue<R, D> {
    /// Starts `tasks` tasks that write up to `max` jobs at a time with `write`, on a thread
    /// of their own; the tasks end when the queue is dropped.
    ///
    /// A status-change group is a short conversation with the server: BEGIN, a few
    /// statements, the audit append, COMMIT, each waiting for the one before, and the
    /// audit-order lock is held from the append to the end of COMMIT (intake's and the
    /// exchanges' groups are one statement each). On the shared runtime, each of those
    /// answers waited for a worker busy with requests and dispatch tasks before the next
    /// statement went out, and the server sat idle in the transaction meanwhile (most
    /// samples of `pg_stat_activity` during dispatch: `ClientRead`, idle in transaction).
    /// Here the group tasks run on one thread with a current-thread runtime and a pool of
    /// their own (the store's settings, `tasks` connections), so the connections' I/O is
    /// driven by that thread and an answer is taken up as soon as it arrives. The pool
    /// closes when the store's pool does. If the thread cannot start, the tasks run on the
    /// caller's runtime with the store's pool, as before.
    pub(super) fn spawn<C: Opens>(
        pool: PgPool,
        tasks: usize,
        max: usize,
        write: WriteGroup<R, D, C>,
    ) -> GroupQueue<R, D> {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let receiver = Arc::new(Mutex::new(receiver));
        let options = pool
            .options()
            .clone()
            .max_connections(u32::try_from(tasks.max(1)).unwrap_or(1))
            .min_connections(0);
        // Named apart in `pg_stat_activity`, so an operator (and a test) can tell the
        // write groups' sessions from the rest.
        let connect = (*pool.connect_options())
            .clone()
            .application_name(GROUP_APPLICATION_NAME);
        let closed = pool.close_event();
        let on_thread = Arc::clone(&receiver);
        let started = std::thread::Builder::new()
            .name("bd-pg-group".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        // The queue closes with this thread: every job runs alone.
                        tracing::error!(error = %e, "the PostgreSQL write-group thread has no runtime; writes run one by one");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let own = options.connect_lazy_with(connect);
                    let mut group_tasks = tokio::task::JoinSet::new();
                    for _ in 0..tasks {
                        group_tasks.spawn(run(own.clone(), Arc::clone(&on_thread), max, write));
                    }
                    drop(on_thread);
                    let ended = async { while group_tasks.join_next().await.is_some() {} };
                    tokio::pin!(ended);
                    let store_closed = tokio::select! {
                        () = &mut ended => false,
                        () = closed => true,
                    };
                    own.close().await;
                    if store_closed {
                        // No new group begins on the closed pool; the tasks end with the
                        // queue, answering what still comes `Alone`.
                        ended.await;
                    }
                });
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "no thread for PostgreSQL write groups; they run on the caller's runtime");
            for _ in 0..tasks {
                tokio::spawn(run(pool.clone(), Arc::clone(&receiver), max, write));
            }
        }
        GroupQueue { sender }
    }

    /// Queues `rows` for the next group and waits for its answer.
    pub(super) async fn submit(&self, rows: R) -> Result<Grouped<D, R>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            rows: Box::new(rows),
            reply,
        };
        if let Err(refused) = self.sender.send(job).await {
            // The tasks have ended (the runtime is shutting down): nothing was written.
            return Ok(Grouped::Alone(refused.0.rows));
        }
        answer.await.unwrap_or(Err(StoreError::WriterLost))
    }
}

async fn run<R, D, C: Opens>(
    pool: PgPool,
    receiver: Arc<Mutex<mpsc::Receiver<Job<R, D>>>>,
    max: usize,
    write: WriteGroup<R, D, C>,
) {
    let mut jobs = Vec::with_capacity(max);
    loop {
        // One task waits for the queue at a time; it takes what is there and lets the
        // others wait for the next group while it writes this one.
        let taken = receiver.lock().await.recv_many(&mut jobs, max).await;
        if taken == 0 {
            return;
        }
        let group = std::mem::replace(&mut jobs, Vec::with_capacity(max));
        match C::open(&pool).await {
            Ok(on) => write(on, group).await,
            Err(e) => {
                tracing::warn!(jobs = group.len(), error = %e, "a write group could not begin; its jobs run alone");
                group.into_iter().for_each(Job::alone);
            }
        }
    }
}
