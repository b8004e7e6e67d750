//! Four-eyes resolutions of `needs_review` (docs/approvals.md): an operator's resolution of
//! a payment or batch chunk in review is first a proposal, one open proposal per object in
//! `resolution_proposals`; a second, different operator proposing the same decision about
//! the same state of the object confirms it, and only then is it applied (by the caller,
//! with the usual compare-and-set transition). A different decision, or a proposal about an
//! earlier state (`snapshot`), replaces the open one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::codec::{self, AuditRow};
use crate::payments::{invalid, refuse_nul, PaymentTx};
use crate::{NewAuditRecord, StoreError};

/// Longest reason, in characters.
pub const RESOLUTION_REASON_MAX_CHARS: usize = 500;

pub(crate) const PROPOSALS_TABLE: &str = "resolution_proposals";

/// What a resolution is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolutionObject {
    /// `object_id` is the payment id.
    Payment,
    /// `object_id` is `<batch id>#<chunk no>`.
    Chunk,
}

impl ResolutionObject {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolutionObject::Payment => "payment",
            ResolutionObject::Chunk => "chunk",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ResolutionObject> {
        match text {
            "payment" => Some(ResolutionObject::Payment),
            "chunk" => Some(ResolutionObject::Chunk),
            _ => None,
        }
    }
}

/// One operator's proposed resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolutionProposal {
    pub object: ResolutionObject,
    pub object_id: String,
    /// `accepted`, `failed` or `queued`.
    pub decision: String,
    /// What the operator checked (1 to [`RESOLUTION_REASON_MAX_CHARS`] characters).
    pub reason: String,
    /// The proposing subject (`client:<id>` or `user:<id>`).
    pub proposed_by: String,
    /// The object's state when proposed; a confirmation must see the same.
    pub snapshot: String,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// What `Store::propose_resolution` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposalOutcome {
    /// Stored as the open proposal, waiting for a second operator (`replaced`: the open
    /// proposal it replaced, with another decision or about an earlier state). Audited.
    Stored {
        replaced: Option<ResolutionProposal>,
    },
    /// The same operator proposed the same already: nothing written.
    AlreadyProposed(ResolutionProposal),
    /// Another operator proposed the same decision about the same state: the proposal is
    /// removed and returned, for the caller to apply. No audit record is written here (the
    /// transition that applies it carries one).
    Confirmed(ResolutionProposal),
}

/// A proposal checked for the schema's limits, its instant at the stored precision.
pub(crate) fn proposal_rows(
    p: ResolutionProposal,
    audit: NewAuditRecord,
) -> Result<(ResolutionProposal, AuditRow), StoreError> {
    if !matches!(p.decision.as_str(), "accepted" | "failed" | "queued") {
        return Err(invalid(
            "a resolution decides accepted, failed or queued".to_owned(),
        ));
    }
    let reason_chars = p.reason.chars().count();
    if reason_chars == 0 || reason_chars > RESOLUTION_REASON_MAX_CHARS {
        return Err(invalid(format!(
            "a resolution reason takes 1 to {RESOLUTION_REASON_MAX_CHARS} characters"
        )));
    }
    for (what, text, max) in [
        ("resolution object id", p.object_id.as_str(), 64),
        ("resolution proposer", p.proposed_by.as_str(), 256),
        ("resolution snapshot", p.snapshot.as_str(), 128),
    ] {
        let n = text.chars().count();
        if n == 0 || n > max {
            return Err(invalid(format!("{what} takes 1 to {max} characters")));
        }
    }
    refuse_nul("resolution reason", Some(&p.reason))?;
    refuse_nul("resolution proposer", Some(&p.proposed_by))?;
    refuse_nul("resolution request id", p.request_id.as_deref())?;
    let at = codec::instant(p.at, "resolution at")?;
    Ok((ResolutionProposal { at, ..p }, AuditRow::new(audit)?))
}

/// The proposal statements a backend runs in its transaction.
#[async_trait]
pub(crate) trait ResolutionTx: PaymentTx {
    /// The open proposal of the object, locked until commit where the backend has row locks.
    async fn lock_proposal(
        &mut self,
        object: ResolutionObject,
        id: &str,
    ) -> Result<Option<ResolutionProposal>, StoreError>;
    /// Inserts or replaces the object's open proposal.
    async fn put_proposal(&mut self, p: &ResolutionProposal) -> Result<(), StoreError>;
    async fn delete_proposal(
        &mut self,
        object: ResolutionObject,
        id: &str,
    ) -> Result<(), StoreError>;
}

/// `Store::propose_resolution` (see there).
pub(crate) async fn propose<T: ResolutionTx>(
    tx: &mut T,
    p: &ResolutionProposal,
    audit: &AuditRow,
) -> Result<ProposalOutcome, StoreError> {
    let open = tx.lock_proposal(p.object, &p.object_id).await?;
    if let Some(open) = open {
        let same = open.decision == p.decision && open.snapshot == p.snapshot;
        if same && open.proposed_by == p.proposed_by {
            return Ok(ProposalOutcome::AlreadyProposed(open));
        }
        if same {
            tx.delete_proposal(p.object, &p.object_id).await?;
            return Ok(ProposalOutcome::Confirmed(open));
        }
        tx.put_proposal(p).await?;
        tx.insert_audit(audit).await?;
        return Ok(ProposalOutcome::Stored {
            replaced: Some(open),
        });
    }
    tx.put_proposal(p).await?;
    tx.insert_audit(audit).await?;
    Ok(ProposalOutcome::Stored { replaced: None })
}

/// Column values of one `resolution_proposals` row.
pub(crate) struct ProposalColumns {
    pub object_kind: String,
    pub object_id: String,
    pub decision: String,
    pub reason: String,
    pub proposed_by: String,
    pub snapshot: String,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

impl ProposalColumns {
    pub(crate) fn into_domain(self) -> Result<ResolutionProposal, StoreError> {
        let object = ResolutionObject::parse(&self.object_kind).ok_or_else(|| {
            crate::payments::corrupt(
                PROPOSALS_TABLE,
                "object_kind",
                "unknown object kind".to_owned(),
            )
        })?;
        Ok(ResolutionProposal {
            object,
            object_id: self.object_id,
            decision: self.decision,
            reason: self.reason,
            proposed_by: self.proposed_by,
            snapshot: self.snapshot,
            request_id: self.request_id,
            at: self.at,
        })
    }
}

pub(crate) const PROPOSAL_COLUMNS: &str =
    "object_kind, object_id, decision, reason, proposed_by, snapshot, request_id, at";
