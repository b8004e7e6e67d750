//! Payment batches (DESIGN.md, "Batches"): the item status vocabulary, how
//! an item moves on the bank's word, and how a batch's own status follows
//! from its chunks and items.
//!
//! A batch is split into chunks, each sent to the bank as one submission
//! under its own business reference; a chunk walks the payment state machine
//! of `payment.rs` (queued → submitting → accepted → settled, unknown,
//! needs_review…), so the guarantees of single payments hold per chunk. The
//! items carry what the bank reports for each of them. The batch's status is
//! never set directly: [`aggregate`] derives it after every change.

use std::fmt;

use crate::payment::PaymentStatus;
use crate::DomainError;

/// Where one item of a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemStatus {
    /// Not (yet) known to the bank: its chunk is queued, being sent, or its
    /// outcome is unknown.
    Pending,
    /// The bank took it in and is processing it.
    Accepted,
    Settled,
    /// The bank rejected it (the whole chunk, or this item alone).
    Failed,
    /// Settled, then sent back by the creditor's bank (退票).
    Returned,
    /// Cancelled with its batch before anything was sent.
    Cancelled,
    /// Its chunk's outcome stayed unknown past the maximum age: a person
    /// decides.
    NeedsReview,
}

impl ItemStatus {
    pub const ALL: [ItemStatus; 7] = [
        ItemStatus::Pending,
        ItemStatus::Accepted,
        ItemStatus::Settled,
        ItemStatus::Failed,
        ItemStatus::Returned,
        ItemStatus::Cancelled,
        ItemStatus::NeedsReview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::Accepted => "accepted",
            ItemStatus::Settled => "settled",
            ItemStatus::Failed => "failed",
            ItemStatus::Returned => "returned",
            ItemStatus::Cancelled => "cancelled",
            ItemStatus::NeedsReview => "needs_review",
        }
    }

    pub fn parse(text: &str) -> Result<ItemStatus, DomainError> {
        ItemStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| DomainError::InvalidIdentifier {
                kind: "batch item status",
                detail: format!("{text:?} is not one of pending, accepted, settled, failed, returned, cancelled, needs_review"),
            })
    }

    /// Settled (which may still become returned), failed, returned or
    /// cancelled.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ItemStatus::Settled | ItemStatus::Failed | ItemStatus::Returned | ItemStatus::Cancelled
        )
    }

    /// Whether the bank's word may move an item from `self` to `to`. Items
    /// only move forward: a late "processing" never undoes a settlement, a
    /// failure is final, and only a settled item can be returned. An item in
    /// review moves only by a person's decision, never here.
    pub fn may_become(self, to: ItemStatus) -> bool {
        use ItemStatus::*;
        matches!(
            (self, to),
            (Pending, Accepted | Settled | Failed | Returned)
                | (Accepted, Settled | Failed | Returned)
                | (Settled, Returned)
        )
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A batch's own status, derived by [`aggregate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchStatus {
    Received,
    PendingApproval,
    /// Every chunk waits to be sent.
    Queued,
    /// Some chunk is being sent, or some are sent and others still queued.
    Submitting,
    /// Every chunk is with the bank; not every item is final yet.
    Accepted,
    /// Some chunk's outcome is unknown (being found out by reference).
    Unknown,
    /// Some chunk needs a person.
    NeedsReview,
    /// Every item is final and at least one was paid.
    Completed,
    /// Every item is final and none was paid.
    Failed,
    /// Cancelled before anything was sent.
    Cancelled,
    /// Declined by an approver: nothing was sent, nothing ever will be.
    Declined,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 11] = [
        BatchStatus::Received,
        BatchStatus::PendingApproval,
        BatchStatus::Queued,
        BatchStatus::Submitting,
        BatchStatus::Accepted,
        BatchStatus::Unknown,
        BatchStatus::NeedsReview,
        BatchStatus::Completed,
        BatchStatus::Failed,
        BatchStatus::Cancelled,
        BatchStatus::Declined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Received => "received",
            BatchStatus::PendingApproval => "pending_approval",
            BatchStatus::Queued => "queued",
            BatchStatus::Submitting => "submitting",
            BatchStatus::Accepted => "accepted",
            BatchStatus::Unknown => "unknown",
            BatchStatus::NeedsReview => "needs_review",
            BatchStatus::Completed => "completed",
            BatchStatus::Failed => "failed",
            BatchStatus::Cancelled => "cancelled",
            BatchStatus::Declined => "declined",
        }
    }

    pub fn parse(text: &str) -> Result<BatchStatus, DomainError> {
        BatchStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| DomainError::InvalidIdentifier {
                kind: "batch status",
                detail: format!("{text:?} is not a batch status"),
            })
    }

    /// Every item is final (completed, failed) or the batch was cancelled
    /// or declined.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BatchStatus::Completed
                | BatchStatus::Failed
                | BatchStatus::Cancelled
                | BatchStatus::Declined
        )
    }
}

impl fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many chunks and items of a batch are in each status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub chunks: Vec<(PaymentStatus, u32)>,
    pub items: Vec<(ItemStatus, u32)>,
}

impl BatchCounts {
    fn chunks_in(&self, status: PaymentStatus) -> u32 {
        self.chunks
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    fn items_in(&self, pred: impl Fn(ItemStatus) -> bool) -> u32 {
        self.items
            .iter()
            .filter(|(s, _)| pred(*s))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The batch's status from its chunks and items. Final statuses first: when
/// every item is final the batch is declined (all items cancelled because
/// every chunk was declined), cancelled (all cancelled), failed (none paid)
/// or completed. Otherwise the most urgent chunk state wins: a chunk in
/// review, then one whose outcome is unknown, then one being sent; chunks
/// partly sent and partly queued are still `submitting`; all queued is
/// `queued`; all waiting for approval is `pending_approval`; all with the
/// bank is `accepted`. A batch with no chunks yet, or whose chunks are only
/// received or approved, keeps `waiting`.
pub fn aggregate(counts: &BatchCounts, waiting: BatchStatus) -> BatchStatus {
    use PaymentStatus as P;
    let items = counts.items_in(|_| true);
    let final_items = counts.items_in(ItemStatus::is_final);
    if items > 0 && final_items == items {
        let cancelled = counts.items_in(|s| s == ItemStatus::Cancelled);
        let paid = counts.items_in(|s| matches!(s, ItemStatus::Settled | ItemStatus::Returned));
        let chunks: u32 = counts.chunks.iter().map(|(_, n)| n).sum();
        return if cancelled == items && chunks > 0 && counts.chunks_in(P::Declined) == chunks {
            BatchStatus::Declined
        } else if cancelled == items {
            BatchStatus::Cancelled
        } else if paid == 0 {
            BatchStatus::Failed
        } else {
            BatchStatus::Completed
        };
    }
    let chunks: u32 = counts.chunks.iter().map(|(_, n)| n).sum();
    if chunks == 0 {
        return waiting;
    }
    if counts.chunks_in(P::NeedsReview) > 0 {
        return BatchStatus::NeedsReview;
    }
    if counts.chunks_in(P::Unknown) > 0 {
        return BatchStatus::Unknown;
    }
    let queued = counts.chunks_in(P::Queued);
    if counts.chunks_in(P::Submitting) > 0 || (queued > 0 && queued < chunks) {
        return BatchStatus::Submitting;
    }
    if queued == chunks {
        return BatchStatus::Queued;
    }
    if counts.chunks_in(P::PendingApproval) == chunks {
        return BatchStatus::PendingApproval;
    }
    if counts.chunks_in(P::Received)
        + counts.chunks_in(P::PendingApproval)
        + counts.chunks_in(P::Approved)
        == chunks
    {
        return waiting;
    }
    BatchStatus::Accepted
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentStatus as P;

    fn counts(chunks: &[(P, u32)], items: &[(ItemStatus, u32)]) -> BatchCounts {
        BatchCounts {
            chunks: chunks.to_vec(),
            items: items.to_vec(),
        }
    }

    #[test]
    fn final_batches_follow_their_items() {
        let done = counts(
            &[(P::Settled, 2)],
            &[(ItemStatus::Settled, 5), (ItemStatus::Failed, 1)],
        );
        assert_eq!(
            aggregate(&done, BatchStatus::Queued),
            BatchStatus::Completed
        );
        let none_paid = counts(&[(P::Failed, 1)], &[(ItemStatus::Failed, 3)]);
        assert_eq!(
            aggregate(&none_paid, BatchStatus::Queued),
            BatchStatus::Failed
        );
        let cancelled = counts(&[(P::Cancelled, 1)], &[(ItemStatus::Cancelled, 3)]);
        assert_eq!(
            aggregate(&cancelled, BatchStatus::Queued),
            BatchStatus::Cancelled
        );
        let declined = counts(&[(P::Declined, 2)], &[(ItemStatus::Cancelled, 3)]);
        assert_eq!(
            aggregate(&declined, BatchStatus::PendingApproval),
            BatchStatus::Declined
        );
        let returned = counts(&[(P::Settled, 1)], &[(ItemStatus::Returned, 1)]);
        assert_eq!(
            aggregate(&returned, BatchStatus::Queued),
            BatchStatus::Completed
        );
    }

    #[test]
    fn the_most_urgent_chunk_wins_while_items_are_open() {
        let open = [(ItemStatus::Pending, 4)];
        assert_eq!(
            aggregate(&counts(&[(P::Queued, 2)], &open), BatchStatus::Received),
            BatchStatus::Queued
        );
        assert_eq!(
            aggregate(
                &counts(&[(P::Queued, 1), (P::Accepted, 1)], &open),
                BatchStatus::Received
            ),
            BatchStatus::Submitting
        );
        assert_eq!(
            aggregate(
                &counts(&[(P::Submitting, 1), (P::Accepted, 1)], &open),
                BatchStatus::Received
            ),
            BatchStatus::Submitting
        );
        assert_eq!(
            aggregate(
                &counts(&[(P::Unknown, 1), (P::Submitting, 1)], &open),
                BatchStatus::Received
            ),
            BatchStatus::Unknown
        );
        assert_eq!(
            aggregate(
                &counts(&[(P::NeedsReview, 1), (P::Unknown, 1)], &open),
                BatchStatus::Received
            ),
            BatchStatus::NeedsReview
        );
        assert_eq!(
            aggregate(
                &counts(&[(P::Accepted, 1), (P::Settled, 1)], &open),
                BatchStatus::Received
            ),
            BatchStatus::Accepted
        );
        assert_eq!(
            aggregate(&counts(&[], &open), BatchStatus::PendingApproval),
            BatchStatus::PendingApproval
        );
        // Chunks created waiting for approvers make the batch wait for them,
        // whatever it was stored as before.
        assert_eq!(
            aggregate(
                &counts(&[(P::PendingApproval, 2)], &open),
                BatchStatus::Received
            ),
            BatchStatus::PendingApproval
        );
    }

    #[test]
    fn items_only_move_forward() {
        use ItemStatus::*;
        assert!(Pending.may_become(Accepted));
        assert!(Accepted.may_become(Settled));
        assert!(Settled.may_become(Returned));
        assert!(!Settled.may_become(Accepted));
        assert!(!Failed.may_become(Settled));
        assert!(!NeedsReview.may_become(Settled));
        assert!(!Cancelled.may_become(Accepted));
        for s in ItemStatus::ALL {
            assert_eq!(ItemStatus::parse(s.as_str()).unwrap(), s);
            assert!(!s.may_become(s));
        }
        for s in BatchStatus::ALL {
            assert_eq!(BatchStatus::parse(s.as_str()).unwrap(), s);
        }
    }
}
