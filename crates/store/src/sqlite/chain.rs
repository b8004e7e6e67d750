//! The SQLite chainer: links unlinked audit records and signs due checkpoints, on the
//! writer's connection inside its open transaction (see `audit.rs` for the chain).
//!
//! It runs at the end of every group commit, after the jobs and before `COMMIT`, so the
//! records a batch wrote are linked in the batch's own transaction: the chain costs no
//! commit of its own and never forks (there is one writer). Ids ascend in commit order
//! here, so linking in id order is linking in commit order. Its statements run on the raw
//! handle (`direct.rs`), prepared once.

use rusqlite::{params, OptionalExtension};

use super::direct::to_sqlx;
use super::BACKEND;
use crate::audit::{
    hash_from_column, record_hash, AuditChainOptions, AuditCheckpoint, AuditFields, ChainState,
    ChainTick, CHAIN_LINK_BATCH_MAX, GENESIS_HASH,
};
use crate::codec;
use crate::error::statement_error;
use crate::StoreError;

const OP: &str = "linking the audit chain";

fn err(e: rusqlite::Error) -> StoreError {
    statement_error(BACKEND, OP, to_sqlx(e))
}

const UNLINKED_SQL: &str = "SELECT id, at, actor, action, object, request_id, outcome, details \
     FROM audit_log WHERE position IS NULL ORDER BY id LIMIT ?1";
const HEAD_SQL: &str =
    "SELECT position, hash FROM audit_log WHERE position IS NOT NULL ORDER BY position DESC LIMIT 1";
const LAST_CHECKPOINT_SQL: &str =
    "SELECT position, at FROM audit_checkpoints ORDER BY position DESC LIMIT 1";
const LINK_SQL: &str = "UPDATE audit_log SET position = ?1, prev_hash = ?2, hash = ?3 \
     WHERE id = ?4 AND position IS NULL";
pub(super) const INSERT_CHECKPOINT_SQL: &str =
    "INSERT INTO audit_checkpoints (position, hash, at, key_id, signature) \
     VALUES (?1, ?2, ?3, ?4, ?5)";

fn state(db: &rusqlite::Connection) -> Result<ChainState, StoreError> {
    let head: Option<(i64, Vec<u8>)> = db
        .prepare_cached(HEAD_SQL)
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(err)?;
    let (head_position, head_hash) = match head {
        None => (0, GENESIS_HASH),
        Some((p, h)) => (p, hash_from_column(&h, "hash")?),
    };
    let checkpoint: Option<(i64, String)> = db
        .prepare_cached(LAST_CHECKPOINT_SQL)
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(err)?;
    let (checkpoint_position, checkpoint_at) = match checkpoint {
        None => (0, None),
        Some((p, at)) => (
            p,
            Some(codec::instant_from_text(&at, "audit_checkpoints", "at")?),
        ),
    };
    Ok(ChainState {
        head_position,
        head_hash,
        checkpoint_position,
        checkpoint_at,
    })
}

/// Links up to [`CHAIN_LINK_BATCH_MAX`] unlinked records after the head, then stores a
/// checkpoint if one is due. Runs inside the caller's transaction.
pub(super) fn link(
    db: &rusqlite::Connection,
    opts: &AuditChainOptions,
) -> Result<ChainTick, StoreError> {
    let limit = i64::try_from(CHAIN_LINK_BATCH_MAX).unwrap_or(i64::MAX);
    let mut unlinked = Vec::new();
    {
        let mut stmt = db.prepare_cached(UNLINKED_SQL).map_err(err)?;
        let mut rows = stmt.query(params![limit]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let at: String = r.get(1).map_err(err)?;
            unlinked.push(AuditFields {
                id: r.get(0).map_err(err)?,
                at: codec::instant_from_text(&at, "audit_log", "at")?,
                actor: r.get(2).map_err(err)?,
                action: r.get(3).map_err(err)?,
                object: r.get(4).map_err(err)?,
                request_id: r.get(5).map_err(err)?,
                outcome: r.get(6).map_err(err)?,
                details: r.get(7).map_err(err)?,
            });
        }
    }
    let mut st = state(db)?;
    let mut tick = ChainTick::default();
    if !unlinked.is_empty() {
        let mut update = db.prepare_cached(LINK_SQL).map_err(err)?;
        for f in &unlinked {
            let position = st.head_position + 1;
            let hash = record_hash(&st.head_hash, position, f);
            let n = update
                .execute(params![position, &st.head_hash[..], &hash[..], f.id])
                .map_err(err)?;
            // The writer is the only chainer and holds the write lock: anything else is a
            // bug or a foreign writer, and must not be linked past.
            if n != 1 {
                return Err(StoreError::Corrupt {
                    table: "audit_log",
                    column: "position",
                    reason: format!("record id {} was linked by someone else meanwhile", f.id),
                });
            }
            st.head_position = position;
            st.head_hash = hash;
            tick.linked += 1;
        }
    }
    if let Some((_, cp)) = st.due_checkpoint(opts, opts.clock.now()) {
        insert_checkpoint(db, &cp)?;
        tick.checkpoint = Some(cp.position);
    }
    Ok(tick)
}

fn insert_checkpoint(db: &rusqlite::Connection, cp: &AuditCheckpoint) -> Result<(), StoreError> {
    db.prepare_cached(INSERT_CHECKPOINT_SQL)
        .and_then(|mut s| {
            s.execute(params![
                cp.position,
                cp.hash,
                codec::instant_text(cp.at),
                cp.key_id,
                cp.signature
            ])
        })
        .map_err(err)?;
    Ok(())
}

/// [`link`] in a savepoint of the writer's open batch: if it fails, its own work is rolled
/// back and logged, and the batch still commits; the records stay unlinked and the next
/// batch links them (the chain is late, never wrong).
pub(super) fn link_in_batch(db: &rusqlite::Connection, opts: &AuditChainOptions) {
    let fixed = |sql: &str| {
        db.prepare_cached(sql)
            .and_then(|mut s| s.execute([]).map(|_| ()))
    };
    if let Err(e) = fixed("SAVEPOINT chain") {
        tracing::warn!(error = %e, "audit chain: could not open a savepoint; linking later");
        return;
    }
    // A panic (a signer's, say) must not take the writer down: it rolls back like an error.
    let linked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| link(db, opts)))
        .unwrap_or(Err(StoreError::JobPanicked));
    match linked {
        Ok(_) => {
            if let Err(e) = fixed("RELEASE SAVEPOINT chain") {
                tracing::warn!(error = %e, "audit chain: could not release its savepoint");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "audit chain: linking failed; the records stay unlinked until the next batch");
            if let Err(e) =
                fixed("ROLLBACK TO SAVEPOINT chain").and_then(|()| fixed("RELEASE SAVEPOINT chain"))
            {
                tracing::warn!(error = %e, "audit chain: could not roll its savepoint back");
            }
        }
    }
}
