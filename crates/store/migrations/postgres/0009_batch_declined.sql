-- bankdirect schema 9 (PostgreSQL): a batch can be `declined` by an approver (docs/approvals.md).
ALTER TABLE payment_batches DROP CONSTRAINT batch_status;
ALTER TABLE payment_batches ADD CONSTRAINT batch_status CHECK (status IN (
    'received', 'pending_approval', 'queued', 'submitting', 'accepted',
    'unknown', 'needs_review', 'completed', 'failed', 'cancelled', 'declined'));
