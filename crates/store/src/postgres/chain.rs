//! The PostgreSQL chainer (see `audit.rs` for the chain).
//!
//! Appends link their records themselves when every record before them is linked
//! (`append_audits` in `postgres.rs`); the chainer links the others: records of a store
//! with the chain off, of an older version, and appends made behind those. Ids ascend in
//! commit order, because every append draws its ids under the audit-order lock
//! (`AUDIT_ORDER_LOCK_KEY`) held until its commit: when id N is visible, every smaller id
//! is committed or will never be. A run of
//! the chainer is ONE transaction that first takes `pg_try_advisory_xact_lock` on a key of
//! its own: an instance that does not get it skips the run (another instance is linking),
//! so instances never wait on each other and never link the same record. Holding the lock
//! it reads the head, links up to [`CHAIN_LINK_BATCH_MAX`] records in id order with one
//! `UPDATE … FROM unnest(…)`, signs a checkpoint when one is due, and commits. The lock is
//! released with the transaction, so a chainer that dies leaves nothing held.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::BACKEND;
use crate::audit::{
    hash_from_column, record_hash, AuditChainOptions, AuditCheckpoint, AuditFields, ChainState,
    ChainTick, CHAIN_LINK_BATCH_MAX, GENESIS_HASH,
};
use crate::codec;
use crate::error::statement_error;
use crate::StoreError;

/// The advisory lock key of the one chainer ("bdchain" in ASCII).
const CHAIN_LOCK_KEY: i64 = 0x0062_6463_6861_696e;

const OP: &str = "linking the audit chain";

fn err(e: sqlx::Error) -> StoreError {
    statement_error(BACKEND, OP, e)
}

pub(super) fn fields_from_row(row: &PgRow) -> Result<AuditFields, StoreError> {
    const T: &str = "audit_log";
    Ok(AuditFields {
        id: codec::column(row, T, "id")?,
        at: codec::column::<_, DateTime<Utc>>(row, T, "at")?,
        actor: codec::column(row, T, "actor")?,
        action: codec::column(row, T, "action")?,
        object: codec::column(row, T, "object")?,
        request_id: codec::column(row, T, "request_id")?,
        outcome: codec::column(row, T, "outcome")?,
        details: codec::column(row, T, "details")?,
    })
}

pub(super) fn checkpoint_from_row(row: &PgRow) -> Result<AuditCheckpoint, StoreError> {
    const T: &str = "audit_checkpoints";
    Ok(AuditCheckpoint {
        position: codec::column(row, T, "position")?,
        hash: codec::column(row, T, "hash")?,
        at: codec::column::<_, DateTime<Utc>>(row, T, "at")?,
        key_id: codec::column(row, T, "key_id")?,
        signature: codec::column(row, T, "signature")?,
    })
}

async fn state(conn: &mut PgConnection) -> Result<ChainState, StoreError> {
    let head = sqlx::query(
        "SELECT position, hash FROM audit_log WHERE position IS NOT NULL \
         ORDER BY position DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(err)?;
    let (head_position, head_hash) = match head {
        None => (0, GENESIS_HASH),
        Some(r) => {
            let p: i64 = r.try_get(0).map_err(err)?;
            let h: Vec<u8> = r.try_get(1).map_err(err)?;
            (p, hash_from_column(&h, "hash")?)
        }
    };
    let cp =
        sqlx::query("SELECT position, at FROM audit_checkpoints ORDER BY position DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?;
    let (checkpoint_position, checkpoint_at) = match cp {
        None => (0, None),
        Some(r) => (
            r.try_get::<i64, _>(0).map_err(err)?,
            Some(r.try_get::<DateTime<Utc>, _>(1).map_err(err)?),
        ),
    };
    Ok(ChainState {
        head_position,
        head_hash,
        checkpoint_position,
        checkpoint_at,
    })
}

/// One chainer run in the caller's transaction (see the module documentation).
pub(super) async fn tick(
    conn: &mut PgConnection,
    opts: &AuditChainOptions,
) -> Result<ChainTick, StoreError> {
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(CHAIN_LOCK_KEY)
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    if !got {
        return Ok(ChainTick {
            skipped: true,
            ..ChainTick::default()
        });
    }
    let rows = sqlx::query(
        "SELECT id, at, actor, action, object, request_id, outcome, details::text AS details \
         FROM audit_log WHERE position IS NULL ORDER BY id LIMIT $1",
    )
    .bind(i64::try_from(CHAIN_LINK_BATCH_MAX).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?;
    let mut st = state(conn).await?;
    let mut tick = ChainTick::default();
    if !rows.is_empty() {
        let mut ids = Vec::with_capacity(rows.len());
        let mut positions = Vec::with_capacity(rows.len());
        let mut prevs: Vec<Vec<u8>> = Vec::with_capacity(rows.len());
        let mut hashes: Vec<Vec<u8>> = Vec::with_capacity(rows.len());
        for row in &rows {
            let f = fields_from_row(row)?;
            let position = st.head_position + 1;
            let hash = record_hash(&st.head_hash, position, &f);
            ids.push(f.id);
            positions.push(position);
            prevs.push(st.head_hash.to_vec());
            hashes.push(hash.to_vec());
            st.head_position = position;
            st.head_hash = hash;
        }
        let done = sqlx::query(
            "UPDATE audit_log AS a SET position = u.position, prev_hash = u.prev_hash, \
                    hash = u.hash \
             FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) \
                  AS u(id, position, prev_hash, hash) \
             WHERE a.id = u.id AND a.position IS NULL",
        )
        .bind(&ids)
        .bind(&positions)
        .bind(&prevs)
        .bind(&hashes)
        .execute(&mut *conn)
        .await
        .map_err(err)?;
        if done.rows_affected() != ids.len() as u64 {
            // Only the lock holder links: anything else is a foreign writer. Roll back.
            return Err(StoreError::Corrupt {
                table: "audit_log",
                column: "position",
                reason: format!(
                    "{} of {} records were linked by someone else meanwhile",
                    ids.len() as u64 - done.rows_affected(),
                    ids.len()
                ),
            });
        }
        tick.linked = ids.len() as u64;
    }
    if let Some((_, cp)) = st.due_checkpoint(opts, opts.clock.now()) {
        sqlx::query(
            "INSERT INTO audit_checkpoints (position, hash, at, key_id, signature) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(cp.position)
        .bind(&cp.hash)
        .bind(cp.at)
        .bind(&cp.key_id)
        .bind(&cp.signature)
        .execute(&mut *conn)
        .await
        .map_err(err)?;
        tick.checkpoint = Some(cp.position);
    }
    Ok(tick)
}
