//! The SQLite single writer with group commit.
//!
//! One task, on a thread of its own (`bd-sqlite-writer`), owns the one write connection.
//! Callers send jobs over a bounded channel; the task waits for the first, takes whatever else is queued (up to `max_batch`), and runs the
//! lot in ONE `BEGIN IMMEDIATE` … `COMMIT`, each job inside its own `SAVEPOINT`. A job that
//! fails is rolled back to its savepoint and gets its own error; the rest still commit.
//! Answers go out only after `COMMIT` returned, so "Ok" always means "durable"; if the
//! transaction itself fails (begin, savepoint bookkeeping, commit) every job in it gets the
//! error and nothing of the batch is stored. Many callers thus share one fsync.
//!
//! A job is any `FnOnce(&mut SqliteConnection) -> BoxFuture<Result<T, StoreError>>`: new
//! kinds of writes need no change here. A *direct* job (`write_direct`) is a synchronous
//! `FnOnce(&mut DirectPayments)`: consecutive direct jobs of a batch run under ONE lock of
//! the connection with their statements — savepoints included — issued on the raw handle,
//! so they cost no round trip to sqlx's connection thread at all (see `direct.rs`); the
//! batch's `BEGIN`, audit chain and `COMMIT` ride in the same lock when the jobs next to
//! them are direct (`run_direct_segment`), so an all-direct batch takes one lock; the
//! statements they prepare stay cached for the writer's life and are finalized before the
//! connection closes. An all-direct batch first runs without a savepoint per job
//! ([`optimistic`]): when every job succeeds it commits as is; when one fails, the
//! transaction is rolled back, that job answered its own error, and the others run again
//! the usual way, each in its savepoint, so a direct job's work may run twice and must be
//! `Fn`. Erasing `T` takes small traits: [`Job`] (not yet run), [`DirectJob`] and
//! [`Answer`] (run, waiting for the batch's fate).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::direct::{self, DirectPayments};
use crate::audit::AuditChainOptions;
use crate::StoreError;

/// What a write job returns: borrowed from the writer's connection for the job's duration.
pub(crate) type WorkFuture<'c, T> = BoxFuture<'c, Result<T, StoreError>>;

/// Counters of the writer since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed (each carries one or more jobs).
    pub commits: u64,
    /// Jobs taken from the queue, whatever their outcome.
    pub jobs: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    jobs: AtomicU64,
}

/// A queued write that has not run yet.
trait Job: Send {
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Box<dyn Answer>>;
    /// Answers without running: the batch failed before the job's turn.
    fn refuse(self: Box<Self>, err: StoreError);
}

/// A write that has run inside the open transaction and waits for the batch's fate.
trait Answer: Send {
    fn failed(&self) -> bool;
    fn deliver(self: Box<Self>, batch: Option<&BatchFailure>);
}

struct TypedJob<F, T> {
    work: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Job for TypedJob<F, T>
where
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> WorkFuture<'c, T> + Send + 'static,
    T: Send + 'static,
{
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Box<dyn Answer>> {
        let TypedJob { work, reply } = *self;
        Box::pin(async move {
            // A panicking job is a bug, but it must not take the writer (and with it every
            // later write) down: its savepoint is rolled back like any failed job's.
            let result = AssertUnwindSafe(async move { work(conn).await })
                .catch_unwind()
                .await
                .unwrap_or(Err(StoreError::JobPanicked));
            Box::new(TypedAnswer { result, reply }) as Box<dyn Answer>
        })
    }

    fn refuse(self: Box<Self>, err: StoreError) {
        // The caller may have stopped waiting; then nobody needs the answer.
        let _ = self.reply.send(Err(err));
    }
}

/// A queued direct write (see the module documentation). It may run more than once: a
/// batch first runs its direct jobs without savepoints ([`optimistic`]) and, when one fails,
/// rolls back and runs the others again, each in its savepoint. Its answer is the last
/// run's.
trait DirectJob: Answer {
    /// Runs the work on the open transaction; true when it failed.
    fn attempt(&mut self, db: &mut DirectPayments) -> bool;
    fn refuse(self: Box<Self>, err: StoreError);
}

struct TypedDirectJob<F, T> {
    work: F,
    /// The last run's result; `None` before the first.
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Answer for TypedDirectJob<F, T>
where
    F: Fn(&mut DirectPayments) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    fn failed(&self) -> bool {
        !matches!(self.result, Some(Ok(_)))
    }

    fn deliver(self: Box<Self>, batch: Option<&BatchFailure>) {
        let result = self.result.unwrap_or(Err(StoreError::WriterLost));
        let _ = self.reply.send(outcome(result, batch));
    }
}

impl<F, T> DirectJob for TypedDirectJob<F, T>
where
    F: Fn(&mut DirectPayments) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    fn attempt(&mut self, db: &mut DirectPayments) -> bool {
        let work = &self.work;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(db)))
            .unwrap_or(Err(StoreError::JobPanicked));
        let failed = result.is_err();
        self.result = Some(result);
        failed
    }

    fn refuse(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }
}

/// What the queue carries.
enum Queued {
    Sqlx(Box<dyn Job>),
    Direct(Box<dyn DirectJob>),
}

impl Queued {
    fn refuse(self, err: StoreError) {
        match self {
            Queued::Sqlx(job) => job.refuse(err),
            Queued::Direct(job) => job.refuse(err),
        }
    }
}

struct TypedAnswer<T> {
    result: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send> Answer for TypedAnswer<T> {
    fn failed(&self) -> bool {
        self.result.is_err()
    }

    fn deliver(self: Box<Self>, batch: Option<&BatchFailure>) {
        let _ = self.reply.send(outcome(self.result, batch));
    }
}

/// What a job's caller is told: its own result, unless the batch it ran in failed.
fn outcome<T>(
    result: Result<T, StoreError>,
    batch: Option<&BatchFailure>,
) -> Result<T, StoreError> {
    match (result, batch) {
        // The job's own error says more than the batch's; either way nothing is stored.
        (Err(err), _) => Err(err),
        (Ok(_), Some(failure)) => Err(failure.error()),
        (Ok(value), None) => Ok(value),
    }
}

/// Why a whole batch was not stored; shared by every job in it.
struct BatchFailure {
    op: &'static str,
    source: Arc<sqlx::Error>,
}

impl BatchFailure {
    fn new(op: &'static str, err: sqlx::Error) -> BatchFailure {
        BatchFailure {
            op,
            source: Arc::new(err),
        }
    }

    fn error(&self) -> StoreError {
        StoreError::batch_failed(self.op, &self.source)
    }

    fn direct(op: &'static str, err: rusqlite::Error) -> BatchFailure {
        BatchFailure::new(op, direct::to_sqlx(err))
    }
}

/// The callers' side of the writer.
pub(crate) struct Writer {
    /// `None` once closing began: later writes fail fast with `Closed`.
    sender: Mutex<Option<mpsc::Sender<Queued>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer task on `conn`. Needs a tokio runtime.
    /// `chain`: the audit chainer's options (`chain.rs` runs at the end of every batch
    /// when it is enabled).
    pub(crate) fn spawn(
        conn: SqliteConnection,
        queue_capacity: usize,
        max_batch: usize,
        chain: AuditChainOptions,
    ) -> Writer {
        let (sender, receiver) = mpsc::channel(queue_capacity);
        let counters = Arc::new(Counters::default());
        let writer = run(conn, receiver, max_batch, chain, Arc::clone(&counters));
        // The writer has a thread and a runtime of its own: its direct jobs, and the COMMIT
        // of an all-direct batch with its fsync, run synchronously, which on a shared worker
        // would hold up the request handlers queued behind them. A plain thread, not
        // `spawn_blocking`: a runtime being dropped never waits for it.
        let (done, finished) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bd-sqlite-writer".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(writer),
                    Err(err) => {
                        // Dropping the receiver makes every write fail with `Closed`.
                        tracing::error!(error = %err, "the SQLite writer's runtime could not start");
                    }
                }
                let _ = done.send(());
            });
        if let Err(err) = thread {
            tracing::error!(error = %err, "the SQLite writer's thread could not start");
        }
        let task = tokio::spawn(async move {
            if finished.await.is_err() {
                tracing::error!("the SQLite writer's thread ended abnormally");
            }
        });
        Writer {
            sender: Mutex::new(Some(sender)),
            task: Mutex::new(Some(task)),
            counters,
        }
    }

    /// Runs `work` in the next batch and returns its value once the batch committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WorkFuture<'c, T> + Send + 'static,
        T: Send + 'static,
    {
        let answer = self.submit(work).await?;
        answer.await.unwrap_or(Err(StoreError::WriterLost))
    }

    /// Queues `work` (waiting while the queue is full) and returns where its answer will
    /// arrive. Split from [`Writer::write`] so tests can place jobs in one batch.
    pub(crate) async fn submit<T, F>(
        &self,
        work: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WorkFuture<'c, T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Queued::Sqlx(Box::new(TypedJob { work, reply })))
            .await?;
        Ok(answer)
    }

    /// Puts a job on the queue, waiting while it is full.
    async fn enqueue(&self, job: Queued) -> Result<(), StoreError> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Closed)?;
        // Fails only when the task has ended; the job was not taken, nothing was written.
        sender.send(job).await.map_err(|_| StoreError::Closed)
    }

    /// Runs a direct `work` in the next batch and returns its value once the batch
    /// committed.
    pub(crate) async fn write_direct<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: Fn(&mut DirectPayments) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let answer = self.submit_direct(work).await?;
        answer.await.unwrap_or(Err(StoreError::WriterLost))
    }

    /// [`Writer::submit`] for a direct `work`.
    pub(crate) async fn submit_direct<T, F>(
        &self,
        work: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        F: Fn(&mut DirectPayments) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedDirectJob {
            work,
            result: None,
            reply,
        };
        self.enqueue(Queued::Direct(Box::new(job))).await?;
        Ok(answer)
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
        }
    }

    /// Stops taking writes, lets the task finish what is queued, and waits for it to close
    /// the connection. Idempotent.
    pub(crate) async fn shutdown(&self) {
        stop_and_join(&self.sender, &self.task, "SQLite writer").await;
    }
}

/// Drops a task's stop signal (a sender whose closing ends it) and waits for the task to
/// end. Idempotent: both are taken out of their slots the first time.
pub(super) async fn stop_and_join<S>(
    signal: &Mutex<Option<S>>,
    task: &Mutex<Option<JoinHandle<()>>>,
    what: &'static str,
) {
    drop(signal.lock().unwrap_or_else(PoisonError::into_inner).take());
    let task = task.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(task) = task {
        if let Err(err) = task.await {
            tracing::error!(error = %err, task = what, "a store task ended abnormally");
        }
    }
}

/// The writer's connection and, once a direct job ran, the direct view of it. Fields drop
/// in order: the view (finalizing its cached statements) before the connection, also when
/// the task is dropped mid-batch.
struct WriterConn {
    direct: Option<DirectPayments>,
    conn: SqliteConnection,
    /// Direct audit appends link their records (the chain is on).
    link_audits: bool,
}

async fn run(
    conn: SqliteConnection,
    mut receiver: mpsc::Receiver<Queued>,
    max_batch: usize,
    chain: AuditChainOptions,
    counters: Arc<Counters>,
) {
    let mut wc = WriterConn {
        direct: None,
        conn,
        link_audits: chain.enabled,
    };
    let mut batch: Vec<Queued> = Vec::with_capacity(max_batch);
    // `recv_many` waits for the first job, then takes what else is queued: exactly the
    // group-commit window, with no timer adding latency to a lone write.
    while receiver.recv_many(&mut batch, max_batch).await > 0 {
        let jobs = std::mem::replace(&mut batch, Vec::with_capacity(max_batch));
        run_batch(&mut wc, jobs, &chain, &counters).await;
    }
    let WriterConn { direct, conn, .. } = wc;
    drop(direct);
    if let Err(err) = conn.close().await {
        tracing::warn!(error = %err, "closing the SQLite write connection failed");
    }
}

/// Runs one job inside its own savepoint; `Err` when the savepoint could not be opened or
/// closed (the batch is then broken).
async fn run_sqlx_job(
    conn: &mut SqliteConnection,
    job: Box<dyn Job>,
    answers: &mut Vec<Box<dyn Answer>>,
) -> Result<(), BatchFailure> {
    if let Err(err) = execute(conn, "SAVEPOINT job").await {
        let failure = BatchFailure::new("opening a savepoint", err);
        job.refuse(failure.error());
        return Err(failure);
    }
    let answer = job.run(conn).await;
    let closed = if answer.failed() {
        match execute(conn, "ROLLBACK TO SAVEPOINT job").await {
            Ok(()) => execute(conn, "RELEASE SAVEPOINT job").await,
            Err(err) => Err(err),
        }
    } else {
        execute(conn, "RELEASE SAVEPOINT job").await
    };
    answers.push(answer);
    // SQLite rolls the whole transaction back on some errors (disk full, I/O), after which
    // the savepoint is gone: the earlier jobs' work is gone with it.
    closed.map_err(|err| BatchFailure::new("closing a savepoint", err))
}

/// The same for a direct job, on the direct view (the connection is locked).
fn run_direct_job(
    db: &mut DirectPayments,
    mut job: Box<dyn DirectJob>,
    answers: &mut Vec<Box<dyn Answer>>,
) -> Result<(), BatchFailure> {
    if let Err(err) = db.execute_fixed("SAVEPOINT job") {
        let failure = BatchFailure::direct("opening a savepoint", err);
        job.refuse(failure.error());
        return Err(failure);
    }
    let failed = job.attempt(db);
    let answer: Box<dyn Answer> = job;
    let closed = if failed {
        db.execute_fixed("ROLLBACK TO SAVEPOINT job")
            .and_then(|()| db.execute_fixed("RELEASE SAVEPOINT job"))
    } else {
        db.execute_fixed("RELEASE SAVEPOINT job")
    };
    answers.push(answer);
    closed.map_err(|err| BatchFailure::direct("closing a savepoint", err))
}

/// How a run of direct jobs under one lock of the connection ended.
enum Segment {
    /// Jobs follow; the transaction stays open.
    Open,
    /// The batch ended inside the segment (no job followed): `Ok` once committed.
    Ended(Result<(), BatchFailure>),
    /// A savepoint could not be opened or closed: the batch is broken.
    Broken(BatchFailure),
    /// `BEGIN` failed; nothing ran and the segment's first job was refused.
    NotBegun(BatchFailure),
}

/// Runs `first` and every direct job right after it under ONE lock of the connection.
/// `BEGIN` rides in the same lock when the batch has not begun, and so do the audit chain
/// and `COMMIT` when no job is left after the segment: an all-direct batch (payment intake)
/// costs one hand-off to sqlx's connection thread instead of four. The writer has a thread
/// of its own, so a `COMMIT`'s fsync here holds up no request handler.
async fn run_direct_segment(
    wc: &mut WriterConn,
    first: Box<dyn DirectJob>,
    run: &mut BatchRun<'_>,
) -> Segment {
    match on_direct(wc, first, |db, first| direct_segment(db, first, &mut *run)).await {
        Ok(end) => end,
        Err((failure, first)) => refused(first, failure, run.begun),
    }
}

/// Runs `work` with `input` on the direct view of the writer's connection, under one lock
/// of it (the view is opened the first time and kept for the writer's life). When the
/// connection cannot be locked or viewed, `work` does not run and `input` comes back with
/// the failure.
async fn on_direct<I, R>(
    wc: &mut WriterConn,
    input: I,
    work: impl FnOnce(&mut DirectPayments, I) -> R,
) -> Result<R, (BatchFailure, I)> {
    let mut lock = match direct::lock(&mut wc.conn).await {
        Ok(lock) => lock,
        Err(err) => return Err((BatchFailure::new("locking the connection", err), input)),
    };
    let mut db = match wc.direct.take() {
        Some(db) => db,
        None => match DirectPayments::open(&mut lock, wc.link_audits) {
            Ok(db) => db,
            Err(err) => {
                return Err((BatchFailure::direct("opening the direct view", err), input));
            }
        },
    };
    let out = work(&mut db, input);
    wc.direct = Some(db);
    drop(lock);
    Ok(out)
}

/// The segment's first job refused for `failure`: the batch is broken when it had begun,
/// and never began otherwise.
fn refused(first: Box<dyn DirectJob>, failure: BatchFailure, begun: bool) -> Segment {
    first.refuse(failure.error());
    if begun {
        Segment::Broken(failure)
    } else {
        Segment::NotBegun(failure)
    }
}

/// [`run_direct_segment`] once the connection is locked and viewed.
fn direct_segment(
    db: &mut DirectPayments,
    first: Box<dyn DirectJob>,
    run: &mut BatchRun<'_>,
) -> Segment {
    if !run.begun {
        if let Err(err) = db.execute_fixed("BEGIN IMMEDIATE") {
            let failure = BatchFailure::direct("beginning the transaction", err);
            return refused(first, failure, false);
        }
        run.begun = true;
    }
    let mut step = run_direct_job(db, first, &mut run.answers);
    while step.is_ok() && matches!(run.pending.peek(), Some(Queued::Direct(_))) {
        if let Some(Queued::Direct(job)) = run.pending.next() {
            step = run_direct_job(db, job, &mut run.answers);
        }
    }
    if let Err(failure) = step {
        return Segment::Broken(failure);
    }
    if run.pending.peek().is_some() {
        return Segment::Open;
    }
    if run.chain.enabled {
        super::chain::link_in_batch(db.connection(), run.chain);
    }
    match db.execute_fixed("COMMIT") {
        Ok(()) => Segment::Ended(Ok(())),
        Err(err) => {
            // A failed COMMIT may leave the transaction open (SQLITE_BUSY); end it so the
            // next batch starts clean and this one is certainly not stored.
            if let Err(err) = db.execute_fixed("ROLLBACK") {
                tracing::debug!(error = %err, "ROLLBACK after a failed SQLite commit");
            }
            Segment::Ended(Err(BatchFailure::direct("committing", err)))
        }
    }
}

/// How the savepoint-free first run of an all-direct batch ended.
enum Optimistic {
    /// Every job was answered: the batch committed (`true`) or failed as a whole.
    Done(bool),
    /// One job failed and was answered its own error; the transaction was rolled back, and
    /// these (the others, in order) run again the usual way, each in its savepoint.
    Again(Vec<Queued>),
}

fn requeue(jobs: Vec<Box<dyn DirectJob>>) -> Vec<Queued> {
    jobs.into_iter().map(Queued::Direct).collect()
}

/// Runs an all-direct batch (payment intake, dispatch) under one lock of the connection
/// WITHOUT a savepoint per job: a savepoint makes SQLite copy every page a job touches
/// into its statement journal first, about a tenth of the writer's time (BENCHMARKS.md).
/// Jobs rarely fail, and when one does the transaction is rolled back, that job is
/// answered its own error, and the others run again with savepoints ([`Optimistic::Again`])
/// in the same order on the same data, so every job gets the answer the savepoint path
/// would have given. When SQLite itself dropped the transaction inside a job, the batch
/// ends as on the savepoint path: nothing stored, each job answered the batch's failure.
/// A lock or `BEGIN` that fails hands the batch to the usual path, which reports it.
async fn optimistic(
    wc: &mut WriterConn,
    jobs: Vec<Box<dyn DirectJob>>,
    chain: &AuditChainOptions,
) -> Optimistic {
    match on_direct(wc, jobs, |db, jobs| optimistic_in(db, jobs, chain)).await {
        Ok(outcome) => outcome,
        Err((_, jobs)) => Optimistic::Again(requeue(jobs)),
    }
}

fn optimistic_in(
    db: &mut DirectPayments,
    mut jobs: Vec<Box<dyn DirectJob>>,
    chain: &AuditChainOptions,
) -> Optimistic {
    if db.execute_fixed("BEGIN IMMEDIATE").is_err() {
        return Optimistic::Again(requeue(jobs));
    }
    if let Some(n) = jobs.iter_mut().position(|job| job.attempt(db)) {
        // A job that fails on SQLite's own error (disk full, I/O) may have ended the
        // transaction with it.
        let dropped = db.connection().is_autocommit();
        if !dropped {
            if let Err(err) = db.execute_fixed("ROLLBACK") {
                tracing::debug!(error = %err, "ROLLBACK after a failed direct job");
            }
        }
        let failed = jobs.remove(n);
        // Its own error, whatever else happens.
        failed.deliver(None);
        if !dropped {
            return Optimistic::Again(requeue(jobs));
        }
        let failure = BatchFailure::new(
            "running a job",
            sqlx::Error::Protocol("SQLite rolled the batch's transaction back in a job".into()),
        );
        tracing::warn!(
            jobs = jobs.len() + 1,
            "SQLite write batch rolled back by SQLite in a job"
        );
        for (i, job) in jobs.into_iter().enumerate() {
            if i < n {
                job.deliver(Some(&failure));
            } else {
                job.refuse(failure.error());
            }
        }
        return Optimistic::Done(false);
    }
    if chain.enabled {
        super::chain::link_in_batch(db.connection(), chain);
    }
    match db.execute_fixed("COMMIT") {
        Ok(()) => {
            tracing::debug!(jobs = jobs.len(), "SQLite write batch committed");
            for job in jobs {
                job.deliver(None);
            }
            Optimistic::Done(true)
        }
        Err(err) => {
            if let Err(err) = db.execute_fixed("ROLLBACK") {
                tracing::debug!(error = %err, "ROLLBACK after a failed SQLite commit");
            }
            let failure = BatchFailure::direct("committing", err);
            tracing::warn!(jobs = jobs.len(), error = %failure.source, "SQLite write batch commit failed");
            for job in jobs {
                job.deliver(Some(&failure));
            }
            Optimistic::Done(false)
        }
    }
}

/// A batch while it runs: the jobs not yet taken, the answers of those that ran (delivered
/// once the batch's fate is known), and whether its transaction has begun.
struct BatchRun<'a> {
    pending: std::iter::Peekable<std::vec::IntoIter<Queued>>,
    answers: Vec<Box<dyn Answer>>,
    begun: bool,
    chain: &'a AuditChainOptions,
}

async fn run_batch(
    wc: &mut WriterConn,
    jobs: Vec<Queued>,
    chain: &AuditChainOptions,
    counters: &Counters,
) {
    let job_count = jobs.len();
    counters.jobs.fetch_add(
        u64::try_from(job_count).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );

    let jobs = if jobs.iter().all(|q| matches!(q, Queued::Direct(_))) {
        let direct = jobs
            .into_iter()
            .filter_map(|q| match q {
                Queued::Direct(job) => Some(job),
                Queued::Sqlx(_) => None,
            })
            .collect();
        match optimistic(wc, direct, chain).await {
            Optimistic::Done(committed) => {
                if committed {
                    counters.commits.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Optimistic::Again(rest) => rest,
        }
    } else {
        jobs
    };
    let mut run = BatchRun {
        pending: jobs.into_iter().peekable(),
        answers: Vec::with_capacity(job_count),
        begun: false,
        chain,
    };
    let mut broken: Option<BatchFailure> = None;
    let mut ended: Option<Result<(), BatchFailure>> = None;
    while let Some(next) = run.pending.next() {
        let failure = match next {
            Queued::Sqlx(job) => {
                if !run.begun {
                    if let Err(err) = execute(&mut wc.conn, "BEGIN IMMEDIATE").await {
                        let failure = BatchFailure::new("beginning the transaction", err);
                        job.refuse(failure.error());
                        refuse_unbegun(run.pending, &failure, job_count);
                        return;
                    }
                    run.begun = true;
                }
                run_sqlx_job(&mut wc.conn, job, &mut run.answers)
                    .await
                    .err()
            }
            Queued::Direct(first) => match run_direct_segment(wc, first, &mut run).await {
                Segment::Open => None,
                Segment::Ended(result) => {
                    ended = Some(result);
                    None
                }
                Segment::Broken(failure) => Some(failure),
                Segment::NotBegun(failure) => {
                    refuse_unbegun(run.pending, &failure, job_count);
                    return;
                }
            },
        };
        if let Some(failure) = failure {
            broken = Some(failure);
            break;
        }
    }

    if let Some(failure) = broken {
        rollback(&mut wc.conn).await;
        tracing::warn!(jobs = job_count, op = failure.op, error = %failure.source, "SQLite write batch rolled back");
        for job in run.pending {
            job.refuse(failure.error());
        }
        for answer in run.answers {
            answer.deliver(Some(&failure));
        }
        return;
    }

    let committed = match ended {
        Some(result) => result,
        None => {
            // The batch ended with a sqlx job: the chain and COMMIT go the sqlx way.
            if chain.enabled {
                link_chain(wc, chain).await;
            }
            match execute(&mut wc.conn, "COMMIT").await {
                Ok(()) => Ok(()),
                Err(err) => {
                    rollback(&mut wc.conn).await;
                    Err(BatchFailure::new("committing", err))
                }
            }
        }
    };
    match committed {
        Ok(()) => {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(jobs = job_count, "SQLite write batch committed");
            for answer in run.answers {
                answer.deliver(None);
            }
        }
        Err(failure) => {
            tracing::warn!(jobs = job_count, error = %failure.source, "SQLite write batch commit failed");
            for answer in run.answers {
                answer.deliver(Some(&failure));
            }
        }
    }
}

/// Refuses the jobs of a batch whose transaction never began (nothing of it ran).
fn refuse_unbegun(pending: impl Iterator<Item = Queued>, failure: &BatchFailure, job_count: usize) {
    tracing::warn!(jobs = job_count, error = %failure.source, "SQLite write batch could not begin");
    for job in pending {
        job.refuse(failure.error());
    }
}

/// Links the batch's audit records (and any left unlinked before) in the open transaction,
/// on the direct view. A failure is logged and leaves them for the next batch.
async fn link_chain(wc: &mut WriterConn, chain: &AuditChainOptions) {
    let linked = on_direct(wc, (), |db, ()| {
        super::chain::link_in_batch(db.connection(), chain);
    })
    .await;
    if let Err((failure, ())) = linked {
        tracing::warn!(op = failure.op, error = %failure.source, "audit chain: could not reach the connection; linking later");
    }
}

async fn execute(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(&mut *conn).await.map(|_| ())
}

async fn rollback(conn: &mut SqliteConnection) {
    // Fails harmlessly when SQLite already rolled the transaction back itself.
    if let Err(err) = execute(conn, "ROLLBACK").await {
        tracing::debug!(error = %err, "ROLLBACK after a failed SQLite batch");
    }
}
