//! store-bench: what the database itself can commit, measured beside the
//! gateway in the same run (`benches/intake.sh`), plus two read-only probes
//! the script uses around the gateway runs.
//!
//! `commit-rate` opens the same kind of database the store opens, with the
//! same settings, through sqlx directly (the crate the store uses): SQLite
//! in WAL mode with `synchronous=FULL` (a file next to the gateway's, so on
//! the same file system), or a database on the same PostgreSQL server. It
//! then measures, each for a fixed time, on a table of its own:
//!
//! - single: one INSERT per transaction, committed one after another by
//!   each of `--writers` connections at once (1 = strictly one after
//!   another; on SQLite more writers contend for the one write lock, as
//!   they would without the store's single writer);
//! - batch: `--batch` INSERTs per transaction (separate statements, as the
//!   store's group commit runs each job's statements), one connection;
//!
//! and prints rows/s and commit latency percentiles, one `result` line per
//! measurement, after a `setting` line per durability setting as the
//! database reports it on the benchmark's own connection.
//!
//! `settings` prints what a database file or server holds (SQLite:
//! `journal_mode`, which is stored in the file; PostgreSQL: the server's
//! durability settings). `payments` prints a gateway database's payments by
//! status and, from `payment_history`, when the dispatcher first committed
//! `submitting` and last wrote a bank's answer back (for the dispatch rate).
//! `wait-dispatched` waits on one connection until nothing is left to send
//! (the dispatch phase's progress probe). All three only read.

use std::{
    process::ExitCode,
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use sqlx::{
    postgres::{PgConnectOptions, PgConnection},
    sqlite::{
        SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteLockingMode,
        SqliteSynchronous,
    },
    ConnectOptions, Connection, Row,
};

/// The store's busy timeout (`database.busy_timeout_ms` default).
const BUSY_TIMEOUT_MS: u64 = 5_000;
/// The store's prepared-statement cache per connection.
const STATEMENT_CACHE_CAPACITY: usize = 64;
/// Most concurrent writers and largest batch accepted (limits on everything).
const MAX_WRITERS: usize = 256;
const MAX_BATCH: usize = 100_000;
const MAX_SECONDS: u64 = 600;
/// Bound on opening a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(
    name = "store-bench",
    about = "Raw commit rates of the gateway's kind of database, and read-only probes of a gateway database.",
    after_help = "Examples:\n  \
store-bench commit-rate --sqlite /tmp/bench/commit.db --seconds 5 --writers 1,64 --batch 256\n  \
store-bench commit-rate --postgres postgres://bankdirect@127.0.0.1:54329/bench --seconds 5\n  \
store-bench settings --sqlite /tmp/bench/bankdirect.db\n  \
store-bench payments --postgres postgres://bankdirect@127.0.0.1:54329/bench"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure single-row and batched commit rates (creates and drops its own table).
    CommitRate {
        #[command(flatten)]
        db: Db,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent writers for the one-INSERT-per-transaction runs, comma separated.
        #[arg(long, default_value = "1,64", value_delimiter = ',')]
        writers: Vec<usize>,
        /// INSERTs per transaction for the batched runs, comma separated.
        #[arg(long, default_value = "256", value_delimiter = ',')]
        batch: Vec<usize>,
        /// Bytes of text per row (a stored payment row is about this size).
        #[arg(long, default_value_t = 400)]
        row_bytes: usize,
    },
    /// Print the database's durability settings (read only).
    Settings {
        #[command(flatten)]
        db: Db,
    },
    /// Print a gateway database's payments by status and the dispatch span (read only).
    Payments {
        #[command(flatten)]
        db: Db,
    },
    /// Wait, on one connection, until no payment is `queued` or `submitting` (read only).
    ///
    /// The dispatch phase's progress probe: one cheap count on the status index every
    /// `--interval-ms`, instead of a process and three full scans per poll. Exits 1 after
    /// `--timeout-s`, or once the process `--while-pid` (the gateway) has gone.
    ///
    /// Example: store-bench wait-dispatched --sqlite gw.db --timeout-s 300 --while-pid 4242
    WaitDispatched {
        #[command(flatten)]
        db: Db,
        /// Give up (exit 1) after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_s: u64,
        /// Milliseconds between two counts.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
        /// Give up (exit 1) once this process no longer exists.
        #[arg(long)]
        while_pid: Option<u32>,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct Db {
    /// SQLite database file.
    #[arg(long)]
    sqlite: Option<std::path::PathBuf>,
    /// PostgreSQL URL (loopback).
    #[arg(long)]
    postgres: Option<String>,
}

/// One open connection of either kind.
enum Conn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

/// The store's SQLite writer settings (crates/store/src/sqlite.rs, `write_options`).
fn sqlite_write_options(path: &std::path::Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .read_only(false)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .locking_mode(SqliteLockingMode::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
        .statement_cache_capacity(STATEMENT_CACHE_CAPACITY)
}

fn sqlite_read_options(path: &std::path::Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(true)
        .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
}

impl Db {
    async fn connect(&self, write: bool) -> Result<Conn, String> {
        let conn = async {
            match (&self.sqlite, &self.postgres) {
                (Some(path), _) => {
                    let opts = if write {
                        sqlite_write_options(path)
                    } else {
                        sqlite_read_options(path)
                    };
                    opts.connect()
                        .await
                        .map(Conn::Sqlite)
                        .map_err(|e| format!("cannot open {}: {e}", path.display()))
                }
                (None, Some(url)) => {
                    let opts = PgConnectOptions::from_str(url)
                        .map_err(|e| format!("not a PostgreSQL URL: {e}"))?
                        .statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
                    opts.connect()
                        .await
                        .map(Conn::Pg)
                        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))
                }
                (None, None) => Err("give --sqlite PATH or --postgres URL".to_owned()),
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, conn)
            .await
            .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
    }
}

// ---------------------------------------------------------------- settings

async fn print_settings(conn: &mut Conn, own_connection: bool) -> Result<(), String> {
    let err = |e: sqlx::Error| format!("reading settings: {e}");
    match conn {
        Conn::Sqlite(c) => {
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *c)
                .await
                .map_err(err)?;
            println!("setting sqlite journal_mode={journal} (stored in the file)");
            if own_connection {
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *c)
                    .await
                    .map_err(err)?;
                println!(
                    "setting sqlite synchronous={sync} ({}) on this benchmark's connection",
                    sync_name(sync)
                );
            }
            let version: String = sqlx::query_scalar("SELECT sqlite_version()")
                .fetch_one(&mut *c)
                .await
                .map_err(err)?;
            println!("setting sqlite version={version}");
        }
        Conn::Pg(c) => {
            for name in [
                "server_version",
                "fsync",
                "synchronous_commit",
                "wal_sync_method",
                "full_page_writes",
                "commit_delay",
                "max_connections",
            ] {
                let value: String = sqlx::query_scalar(&format!("SHOW {name}"))
                    .fetch_one(&mut *c)
                    .await
                    .map_err(err)?;
                println!("setting postgres {name}={value}");
            }
        }
    }
    Ok(())
}

fn sync_name(v: i64) -> &'static str {
    match v {
        0 => "OFF",
        1 => "NORMAL",
        2 => "FULL",
        3 => "EXTRA",
        _ => "?",
    }
}

// ---------------------------------------------------------------- commit rate

/// A row id unique across writers and runs of this process.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn next_id() -> String {
    format!("r{:012}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

const TABLE: &str = "store_bench_rows";

async fn create_table(conn: &mut Conn) -> Result<(), String> {
    let err = |e: sqlx::Error| format!("creating {TABLE}: {e}");
    match conn {
        Conn::Sqlite(c) => {
            sqlx::query(&format!("DROP TABLE IF EXISTS {TABLE}"))
                .execute(&mut *c)
                .await
                .map_err(err)?;
            sqlx::query(&format!(
                "CREATE TABLE {TABLE} (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, amount_minor INTEGER NOT NULL, payload TEXT NOT NULL)"
            ))
            .execute(&mut *c)
            .await
            .map_err(err)?;
        }
        Conn::Pg(c) => {
            sqlx::query(&format!("DROP TABLE IF EXISTS {TABLE}"))
                .execute(&mut *c)
                .await
                .map_err(err)?;
            sqlx::query(&format!(
                "CREATE TABLE {TABLE} (id TEXT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL, amount_minor BIGINT NOT NULL, payload TEXT NOT NULL)"
            ))
            .execute(&mut *c)
            .await
            .map_err(err)?;
        }
    }
    Ok(())
}

async fn drop_table(conn: &mut Conn) -> Result<(), String> {
    let sql = format!("DROP TABLE IF EXISTS {TABLE}");
    let r = match conn {
        Conn::Sqlite(c) => sqlx::query(&sql).execute(&mut *c).await.map(|_| ()),
        Conn::Pg(c) => sqlx::query(&sql).execute(&mut *c).await.map(|_| ()),
    };
    r.map_err(|e| format!("dropping {TABLE}: {e}"))
}

/// One transaction of `rows` INSERTs, committed. SQLite's `BEGIN IMMEDIATE`
/// is what the store's writer uses (the write lock up front).
async fn commit_rows(conn: &mut Conn, rows: usize, payload: &str) -> Result<(), sqlx::Error> {
    let insert = format!(
        "INSERT INTO {TABLE} (id, created_at, amount_minor, payload) VALUES ($1, $2, $3, $4)"
    );
    match conn {
        Conn::Sqlite(c) => {
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *c).await?;
            let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            for i in 0..rows {
                let r = sqlx::query(&insert)
                    .bind(next_id())
                    .bind(&now)
                    .bind(i as i64 + 1)
                    .bind(payload)
                    .execute(&mut *c)
                    .await;
                if let Err(e) = r {
                    let _ = sqlx::query("ROLLBACK").execute(&mut *c).await;
                    return Err(e);
                }
            }
            sqlx::query("COMMIT").execute(&mut *c).await?;
        }
        Conn::Pg(c) => {
            let mut tx = c.begin().await?;
            let now = Utc::now();
            for i in 0..rows {
                sqlx::query(&insert)
                    .bind(next_id())
                    .bind(now)
                    .bind(i as i64 + 1)
                    .bind(payload)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// What one measurement saw.
struct Measured {
    txns: u64,
    rows: u64,
    errors: u64,
    elapsed: Duration,
    /// Per-transaction latency, microseconds.
    latencies_us: Vec<u64>,
}

/// `writers` connections each commit transactions of `rows` rows until
/// `seconds` have passed.
async fn measure(
    db: &Db,
    writers: usize,
    rows: usize,
    seconds: u64,
    payload: &str,
) -> Result<Measured, String> {
    let mut conns = Vec::with_capacity(writers);
    for _ in 0..writers {
        conns.push(db.connect(true).await?);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let tasks = conns.into_iter().map(|mut conn| {
        let payload = payload.to_owned();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0_u64;
            let mut first_error = None;
            while Instant::now() < deadline {
                let t = Instant::now();
                match commit_rows(&mut conn, rows, &payload).await {
                    Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (lat, errors, first_error, conn)
        })
    });
    let mut m = Measured {
        txns: 0,
        rows: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    let mut first_error = None;
    let mut finished = Vec::new();
    for r in futures_join(tasks.collect()).await {
        let (lat, errors, err, conn) = r.map_err(|e| format!("a writer task failed: {e}"))?;
        m.txns += lat.len() as u64;
        m.errors += errors;
        m.latencies_us.extend(lat);
        if first_error.is_none() {
            first_error = err;
        }
        finished.push(conn);
    }
    m.elapsed = start.elapsed();
    m.rows = m.txns * rows as u64;
    if let Some(e) = first_error {
        eprintln!(
            "store-bench: {} failed transactions; the first: {e}",
            m.errors
        );
    }
    for conn in finished {
        let _ = match conn {
            Conn::Sqlite(c) => c.close().await,
            Conn::Pg(c) => c.close().await,
        };
    }
    Ok(m)
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<Result<T, String>> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.map_err(|e| e.to_string()));
    }
    out
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us[idx] as f64 / 1000.0
}

fn report(mode: &str, writers: usize, batch: usize, mut m: Measured) {
    m.latencies_us.sort_unstable();
    let secs = m.elapsed.as_secs_f64();
    println!(
        "result mode={mode} writers={writers} rows_per_txn={batch} txns={} rows={} errors={} seconds={secs:.2} txns_per_s={:.0} rows_per_s={:.0} p50_ms={:.3} p99_ms={:.3}",
        m.txns,
        m.rows,
        m.errors,
        m.txns as f64 / secs,
        m.rows as f64 / secs,
        percentile_ms(&m.latencies_us, 50.0),
        percentile_ms(&m.latencies_us, 99.0),
    );
}

async fn commit_rate(
    db: &Db,
    seconds: u64,
    writers: &[usize],
    batches: &[usize],
    row_bytes: usize,
) -> Result<(), String> {
    if !(1..=MAX_SECONDS).contains(&seconds) {
        return Err(format!("--seconds: expected 1 to {MAX_SECONDS}"));
    }
    if let Some(w) = writers.iter().find(|w| !(1..=MAX_WRITERS).contains(*w)) {
        return Err(format!("--writers: {w} is not in 1..={MAX_WRITERS}"));
    }
    if let Some(b) = batches.iter().find(|b| !(1..=MAX_BATCH).contains(*b)) {
        return Err(format!("--batch: {b} is not in 1..={MAX_BATCH}"));
    }
    if !(1..=100_000).contains(&row_bytes) {
        return Err("--row-bytes: expected 1 to 100000".to_owned());
    }
    let payload = "x".repeat(row_bytes);
    let mut admin = db.connect(true).await?;
    print_settings(&mut admin, true).await?;
    create_table(&mut admin).await?;
    for &w in writers {
        let m = measure(db, w, 1, seconds, &payload).await?;
        report("single", w, 1, m);
    }
    for &b in batches {
        let m = measure(db, 1, b, seconds, &payload).await?;
        report("batch", 1, b, m);
    }
    drop_table(&mut admin).await?;
    Ok(())
}

// ---------------------------------------------------------------- payments

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an instant: {text:?}: {e}"))
}

async fn payments(db: &Db) -> Result<(), String> {
    let err = |e: sqlx::Error| format!("reading payments: {e}");
    let mut conn = db.connect(false).await?;
    const COUNTS: &str =
        "SELECT status, count(*) AS n FROM payments GROUP BY status ORDER BY status";
    // The first `submitting` committed, and the last answer written back
    // (any step out of `submitting`), with how many answers there were.
    const FIRST: &str = "SELECT min(at) AS t FROM payment_history WHERE to_status = 'submitting'";
    const LAST: &str =
        "SELECT max(at) AS t, count(*) AS n FROM payment_history WHERE from_status = 'submitting'";
    let (counts, first, last, answered) = match &mut conn {
        Conn::Sqlite(c) => {
            let counts: Vec<(String, i64)> = sqlx::query(COUNTS)
                .fetch_all(&mut *c)
                .await
                .map_err(err)?
                .iter()
                .map(|r| (r.get("status"), r.get("n")))
                .collect();
            let first: Option<String> = sqlx::query(FIRST)
                .fetch_one(&mut *c)
                .await
                .map_err(err)?
                .get("t");
            let row = sqlx::query(LAST).fetch_one(&mut *c).await.map_err(err)?;
            let last: Option<String> = row.get("t");
            let n: i64 = row.get("n");
            (
                counts,
                first.as_deref().map(parse_instant).transpose()?,
                last.as_deref().map(parse_instant).transpose()?,
                n,
            )
        }
        Conn::Pg(c) => {
            let counts: Vec<(String, i64)> = sqlx::query(COUNTS)
                .fetch_all(&mut *c)
                .await
                .map_err(err)?
                .iter()
                .map(|r| (r.get("status"), r.get("n")))
                .collect();
            let first: Option<DateTime<Utc>> = sqlx::query(FIRST)
                .fetch_one(&mut *c)
                .await
                .map_err(err)?
                .get("t");
            let row = sqlx::query(LAST).fetch_one(&mut *c).await.map_err(err)?;
            (counts, first, row.get("t"), row.get("n"))
        }
    };
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let line: Vec<String> = counts.iter().map(|(s, n)| format!("{s}={n}")).collect();
    println!("payments total={total} {}", line.join(" "));
    match (first, last) {
        (Some(f), Some(l)) => {
            let span_s = (l - f).num_microseconds().unwrap_or(0) as f64 / 1e6;
            let rate = if span_s > 0.0 {
                answered as f64 / span_s
            } else {
                f64::NAN
            };
            println!(
                "dispatch answered={answered} first_submitting={} last_answer={} span_s={span_s:.3} answered_per_s={rate:.0}",
                f.format("%H:%M:%S%.6f"),
                l.format("%H:%M:%S%.6f"),
            );
        }
        _ => println!("dispatch answered=0"),
    }
    Ok(())
}

/// Payments the dispatcher still has to send: `queued` or `submitting`.
const UNSENT: &str = "SELECT count(*) FROM payments WHERE status IN ('queued', 'submitting')";

async fn wait_dispatched(
    db: &Db,
    timeout_s: u64,
    interval_ms: u64,
    while_pid: Option<u32>,
) -> Result<(), String> {
    let err = |e: sqlx::Error| format!("counting unsent payments: {e}");
    let mut conn = db.connect(false).await?;
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    loop {
        let left: i64 = match &mut conn {
            Conn::Sqlite(c) => sqlx::query_scalar(UNSENT).fetch_one(&mut *c).await,
            Conn::Pg(c) => sqlx::query_scalar(UNSENT).fetch_one(&mut *c).await,
        }
        .map_err(err)?;
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{left} payments still queued or submitting after {timeout_s} s"
            ));
        }
        if let Some(pid) = while_pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(format!(
                    "process {pid} (the gateway) exited with {left} payments unsent"
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
}

// ---------------------------------------------------------------- main

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::CommitRate {
            db,
            seconds,
            writers,
            batch,
            row_bytes,
        } => commit_rate(&db, seconds, &writers, &batch, row_bytes).await,
        Command::Settings { db } => {
            let mut conn = db.connect(false).await?;
            print_settings(&mut conn, false).await
        }
        Command::Payments { db } => payments(&db).await,
        Command::WaitDispatched {
            db,
            timeout_s,
            interval_ms,
            while_pid,
        } => wait_dispatched(&db, timeout_s, interval_ms, while_pid).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("store-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&[7000], 99.0), 7.0);
        assert!(percentile_ms(&[], 50.0).is_nan());
    }

    #[test]
    fn store_instants_parse() {
        let t = parse_instant("2026-11-28T22:57:21.123456Z").unwrap();
        assert_eq!(t.timestamp_subsec_micros(), 123_456);
        assert!(parse_instant("yesterday").is_err());
    }

    #[test]
    fn lists_and_exclusive_database_flags() {
        let cli = Cli::try_parse_from([
            "store-bench",
            "commit-rate",
            "--sqlite",
            "x.db",
            "--writers",
            "1,10,64",
        ])
        .unwrap();
        match cli.command {
            Command::CommitRate { writers, batch, .. } => {
                assert_eq!(writers, vec![1, 10, 64]);
                assert_eq!(batch, vec![256]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from([
            "store-bench",
            "payments",
            "--sqlite",
            "x.db",
            "--postgres",
            "postgres://h/db"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["store-bench", "payments"]).is_err());
    }
}
