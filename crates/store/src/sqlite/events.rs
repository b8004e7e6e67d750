//! The SQLite statements of the event outbox: the insert every change writes inside its own
//! transaction, and the reader.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::BACKEND;
use crate::codec;
use crate::error::statement_error;
use crate::events::{EventColumns, EventQuery, EventRow, StoredEvent, EVENTS_TABLE, EVENT_COLUMNS};
use crate::StoreError;

/// Appends one event; `direct.rs` runs the same statement.
pub(super) const INSERT_EVENT_SQL: &str = "INSERT INTO events \
           (id, type, version, object_type, object_id, object_seq, account_id, occurred_at, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

pub(super) async fn insert(conn: &mut SqliteConnection, row: &EventRow) -> Result<(), StoreError> {
    sqlx::query(INSERT_EVENT_SQL)
        .bind(&row.id)
        .bind(row.event_type.as_str())
        .bind(row.event_type.version())
        .bind(row.event_type.object_type())
        .bind(&row.object_id)
        .bind(row.object_seq)
        .bind(&row.account_id)
        .bind(codec::instant_text(row.occurred_at))
        .bind(&row.data)
        .execute(&mut *conn)
        .await
        .map_err(|e| statement_error(BACKEND, "appending an event", e))?;
    Ok(())
}

pub(super) async fn list(
    pool: &SqlitePool,
    q: &EventQuery,
) -> Result<Vec<StoredEvent>, StoreError> {
    q.check()?;
    let mut query =
        QueryBuilder::<Sqlite>::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > "));
    query.push_bind(q.after_seq);
    if let Some(object_id) = &q.object_id {
        query.push(" AND object_id = ").push_bind(object_id);
    }
    if let Some(t) = q.event_type {
        query.push(" AND type = ").push_bind(t.as_str());
    }
    query
        .push(" ORDER BY seq LIMIT ")
        .push_bind(i64::from(q.effective_limit()));
    let rows = query
        .build()
        .fetch_all(pool)
        .await
        .map_err(|e| statement_error(BACKEND, "listing events", e))?;
    rows.iter().map(event_from_row).collect()
}

pub(super) fn event_from_row(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    let get = |e: sqlx::Error| statement_error(BACKEND, "reading an event", e);
    let data: String = row.try_get("data").map_err(get)?;
    let occurred_at: String = row.try_get("occurred_at").map_err(get)?;
    EventColumns {
        seq: row.try_get("seq").map_err(get)?,
        id: row.try_get("id").map_err(get)?,
        event_type: row.try_get("type").map_err(get)?,
        version: row.try_get("version").map_err(get)?,
        object_type: row.try_get("object_type").map_err(get)?,
        object_id: row.try_get("object_id").map_err(get)?,
        object_seq: row.try_get("object_seq").map_err(get)?,
        account_id: row.try_get("account_id").map_err(get)?,
        occurred_at: codec::instant_from_text(&occurred_at, EVENTS_TABLE, "occurred_at")?,
        data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt {
            table: EVENTS_TABLE,
            column: "data",
            reason: format!("not JSON ({e})"),
        })?,
    }
    .into_domain()
}
