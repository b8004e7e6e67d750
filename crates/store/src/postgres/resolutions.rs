//! The PostgreSQL statements behind four-eyes resolutions (`crate::resolutions`). The open
//! proposal is read `FOR UPDATE`, so of two operators confirming at once one takes it and
//! the other finds it gone.

use async_trait::async_trait;
use sqlx::postgres::PgRow;

use super::payments::PgPayments;
use super::BACKEND;
use crate::codec;
use crate::error::statement_error;
use crate::resolutions::{
    ProposalColumns, ResolutionObject, ResolutionProposal, ResolutionTx, PROPOSALS_TABLE,
    PROPOSAL_COLUMNS,
};
use crate::StoreError;

fn err(e: sqlx::Error) -> StoreError {
    statement_error(BACKEND, "writing a resolution proposal", e)
}

#[async_trait]
impl ResolutionTx for PgPayments<'_> {
    async fn lock_proposal(
        &mut self,
        object: ResolutionObject,
        id: &str,
    ) -> Result<Option<ResolutionProposal>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PROPOSAL_COLUMNS} FROM resolution_proposals \
             WHERE object_kind = $1 AND object_id = $2 FOR UPDATE"
        ))
        .bind(object.as_str())
        .bind(id)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(err)?;
        row.as_ref().map(proposal_from_row).transpose()
    }

    async fn put_proposal(&mut self, p: &ResolutionProposal) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO resolution_proposals \
               (object_kind, object_id, decision, reason, proposed_by, snapshot, request_id, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (object_kind, object_id) DO UPDATE SET \
               decision = excluded.decision, reason = excluded.reason, \
               proposed_by = excluded.proposed_by, snapshot = excluded.snapshot, \
               request_id = excluded.request_id, at = excluded.at",
        )
        .bind(p.object.as_str())
        .bind(&p.object_id)
        .bind(&p.decision)
        .bind(&p.reason)
        .bind(&p.proposed_by)
        .bind(&p.snapshot)
        .bind(&p.request_id)
        .bind(p.at)
        .execute(&mut *self.conn)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn delete_proposal(
        &mut self,
        object: ResolutionObject,
        id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM resolution_proposals WHERE object_kind = $1 AND object_id = $2")
            .bind(object.as_str())
            .bind(id)
            .execute(&mut *self.conn)
            .await
            .map_err(err)?;
        Ok(())
    }
}

pub(super) fn proposal_from_row(row: &PgRow) -> Result<ResolutionProposal, StoreError> {
    const T: &str = PROPOSALS_TABLE;
    ProposalColumns {
        object_kind: codec::column(row, T, "object_kind")?,
        object_id: codec::column(row, T, "object_id")?,
        decision: codec::column(row, T, "decision")?,
        reason: codec::column(row, T, "reason")?,
        proposed_by: codec::column(row, T, "proposed_by")?,
        snapshot: codec::column(row, T, "snapshot")?,
        request_id: codec::column(row, T, "request_id")?,
        at: codec::column(row, T, "at")?,
    }
    .into_domain()
}
