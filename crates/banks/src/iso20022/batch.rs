//! Batch chunks of the iso20022 connector: one pain.001 per chunk with one
//! `PmtInf` (`MsgId` and `PmtInfId` the chunk reference) and one
//! `CdtTrfTxInf` per item (`InstrId` and `EndToEndId` the item's
//! reference); a payroll chunk carries `BtchBookg` true and
//! `PmtTpInf/CtgyPurp/Cd` `SALA` (the bank books one debit for the run).
//!
//! The discipline is the single payment's: every item is checked before
//! anything is sent (`NotProcessed`), the upload's answer is classified the
//! same way (`409 DUPLICATE_MESSAGE` on a resent chunk is
//! `OutcomeUnknown`, so the caller asks), and the status (`PSR` by the
//! chunk reference) maps each transaction by its `OrgnlInstrId` through
//! [`map_transaction_status`]. The chunk is finished when the bank lists
//! every transaction (as many as `OrgnlNbOfTxs` where given) and each is
//! `ACSC` or `RJCT`. A report the connector cannot believe (a transaction
//! twice, a reference that is not one, more transactions than the file
//! had, the whole file rejected without its transactions) is
//! `OutcomeUnknown(Protocol)`.

use std::collections::HashSet;

use domain::{AccountNumber, BankReference, MoneyTotal};
use formats::iso20022::pain002::Status;

use super::{
    additional_info, intake, is_final_status, map_transaction_status, quoted, raw_status_code,
    FileParts, Iso20022Connector,
};
use crate::{
    BankError, BatchInstruction, BatchItemResult, BatchKind, BatchReceipt, BatchStatusAnswer,
};

impl Iso20022Connector {
    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id,
        reference = %batch.reference, kind = batch.kind.as_str(),
        debtor = %batch.debtor_account.masked(), items = batch.items.len()))]
    pub(super) async fn submit_batch_chunk(
        &self,
        batch: &BatchInstruction,
    ) -> Result<BatchReceipt, BankError> {
        let what = format!("batch chunk {}", batch.reference);
        let refused = |reason: String| BankError::NotProcessed {
            bank: self.bank(),
            reason: format!("{what} not sent: {reason}"),
        };
        let max = self.options.max_batch_items;
        if batch.items.is_empty() || batch.items.len() > max {
            return Err(refused(format!(
                "{} items; expected 1..={max} (max_batch_items)",
                batch.items.len()
            )));
        }
        if let Err(detail) = super::account_identification(batch.debtor_account.as_str()) {
            return Err(refused(format!("debtor account: {detail}")));
        }
        let mut seen = HashSet::new();
        let mut total = MoneyTotal::zero(batch.currency);
        let mut transactions = Vec::with_capacity(batch.items.len());
        for item in &batch.items {
            // Before the shared checks, to the same effect: an item with the
            // chunk's reference is refused at its first occurrence, where
            // it cannot be a repeat yet.
            if item.reference == batch.reference {
                return Err(refused(format!(
                    "item reference {} is the chunk's own reference",
                    item.reference
                )));
            }
            if let Some(reason) = batch.item_refusal(item, &mut seen) {
                return Err(refused(reason));
            }
            let problems = intake::item_problems(batch.kind, item, &self.options);
            if !problems.is_empty() {
                return Err(refused(format!(
                    "item {}: {}",
                    item.reference,
                    intake::describe(&problems)
                )));
            }
            total
                .add(item.amount)
                .map_err(|e| refused(format!("the items' sum: {e}")))?;
            transactions.push(
                intake::credit_transfer(
                    &item.reference,
                    item.amount,
                    &item.creditor_name,
                    &item.creditor_account,
                    item.creditor_bic.as_ref(),
                    &item.remittance,
                )
                .map_err(|e| refused(format!("item {}: {e}", item.reference)))?,
            );
        }
        let listing = self.debtor_listing(&batch.debtor_account, &what).await?;
        let file = self.render_file(FileParts {
            what: &what,
            message_id: batch.reference.as_str(),
            debtor: &batch.debtor_account,
            listing: &listing,
            execution_date: batch.requested_execution_date,
            transactions,
            payroll: batch.kind == BatchKind::Payroll,
        })?;
        tracing::debug!(control_sum = %total.to_decimal_string(), "uploading batch chunk");
        let upload = self.upload(batch.reference.as_str(), file).await?;
        Ok(BatchReceipt {
            bank_batch_id: upload.order_id,
            bank_code: upload.status,
            bank_message: String::new(),
        })
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id,
        debtor = %debtor_account.masked(), reference = %reference))]
    pub(super) async fn batch_status_of(
        &self,
        debtor_account: &AccountNumber,
        reference: &BankReference,
    ) -> Result<BatchStatusAnswer, BankError> {
        // PSR asks by message id alone; the debtor only names the chunk in logs.
        let _ = debtor_account;
        let Some(report) = self.status_report(reference.as_str()).await? else {
            return Ok(BatchStatusAnswer::NotFound);
        };
        let group = &report.original_group;
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        let mut all_final = true;
        for payment in &report.original_payments {
            if payment.original_payment_information_id != reference.as_str() {
                return Err(self.protocol(format!(
                    "PSR answer for chunk {reference} reports on PmtInf {}",
                    quoted(&payment.original_payment_information_id)
                )));
            }
            for tx in &payment.transactions {
                let id = tx
                    .original_instruction_id
                    .as_deref()
                    .or(tx.original_end_to_end_id.as_deref())
                    .unwrap_or_default();
                let item_reference = BankReference::parse(id.trim()).map_err(|e| {
                    self.protocol(format!(
                        "PSR answer for chunk {reference}: OrgnlInstrId {}: {e}",
                        quoted(id)
                    ))
                })?;
                if !seen.insert(item_reference.clone()) {
                    return Err(self.protocol(format!(
                        "PSR answer for chunk {reference} lists item {item_reference} twice"
                    )));
                }
                all_final &= is_final_status(tx.status.as_ref());
                items.push(BatchItemResult {
                    reference: item_reference,
                    status: map_transaction_status(tx.status.as_ref(), &tx.reasons),
                });
            }
        }
        if let Some(count) = group.original_count {
            if items.len() as u64 > count {
                return Err(self.protocol(format!(
                    "PSR answer for chunk {reference} lists {} transactions; the file had {count}",
                    items.len()
                )));
            }
        }
        if items.is_empty() && group.status == Some(Status::Rejected) {
            return Err(self.protocol(format!(
                "PSR answer rejects chunk {reference} as a whole ({}) without listing its transactions; expected 422 FILE_REJECTED for a refused file",
                raw_status_code(group.status.as_ref(), &group.reasons)
            )));
        }
        let complete = group
            .original_count
            .is_none_or(|count| items.len() as u64 == count);
        let finished = !items.is_empty() && all_final && complete;
        Ok(BatchStatusAnswer::Found {
            finished,
            items,
            bank_batch_id: None,
            bank_code: raw_status_code(group.status.as_ref(), &group.reasons),
            bank_message: additional_info(&group.reasons),
        })
    }
}
