//! WAL checkpoints off the writer's path.
//!
//! In WAL mode a commit appends pages to the `-wal` file, and a checkpoint copies them back
//! into the database file (and syncs it). Left to SQLite, the checkpoint runs inside the
//! commit that takes the WAL past `wal_autocheckpoint` pages: on the single writer, while
//! every caller of the batch waits. Here a task of its own, on a connection of its own (so on
//! sqlx's thread for that connection, beside the writer's), runs a PASSIVE checkpoint every
//! [`INTERVAL`]: it copies what no reader still needs without blocking the writer or the
//! readers, and the writer only appends. The writer keeps a much larger
//! `wal_autocheckpoint` ([`WRITER_AUTOCHECKPOINT_PAGES`]) as the backstop should this task
//! fall behind or stop, so the WAL stays bounded either way.
//!
//! Durability is unchanged: a commit is durable once its WAL frames are synced
//! (`synchronous=FULL`), whoever checkpoints them later; the checkpoint connection also runs
//! with `synchronous=FULL`, so it syncs the database file before the WAL is reused.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::connect_error;
use crate::StoreError;

/// How often the checkpointer copies the WAL back.
pub(super) const INTERVAL: Duration = Duration::from_millis(100);
/// The writer's own `wal_autocheckpoint`, a backstop (pages; SQLite's default is 1000).
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: &str = "20000";

/// The running checkpointer; see the module documentation.
pub(super) struct Checkpointer {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Opens its connection (with the writer's options) and starts the task.
    pub(super) async fn spawn(options: &SqliteConnectOptions) -> Result<Checkpointer, StoreError> {
        let conn = options.connect().await.map_err(connect_error)?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(conn, stopped));
        Ok(Checkpointer {
            stop: Mutex::new(Some(stop)),
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops the task and closes its connection. Idempotent.
    pub(super) async fn shutdown(&self) {
        super::writer::stop_and_join(&self.stop, &self.task, "SQLite checkpointer").await;
    }
}

async fn run(mut conn: SqliteConnection, mut stopped: oneshot::Receiver<()>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Stopped, or the store was dropped without closing.
            _ = &mut stopped => break,
            _ = tick.tick() => {}
        }
        // (busy, frames in the WAL, frames copied back)
        let done: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut conn)
                .await;
        if let Err(err) = done {
            // Harmless for data: the writer's backstop checkpoints; logged so a stuck
            // checkpointer (a WAL that keeps growing) has a cause in the log.
            tracing::warn!(error = %err, "SQLite WAL checkpoint failed; trying again");
        }
    }
    if let Err(err) = conn.close().await {
        tracing::warn!(error = %err, "closing the SQLite checkpoint connection failed");
    }
}
