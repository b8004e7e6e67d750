//! Batch payments of the cn-xml connector: a chunk goes to `SubmitBatch`
//! (supplier run) or `SubmitPayroll` (代发工资), and `QueryBatch` reports
//! the chunk and its items (docs/families/cn-xml.md).
//!
//! The discipline is the single payment's:
//! - everything the bank's format cannot carry is found before anything is
//!   sent (`NotProcessed`): GBK byte lengths and charset per field, an item
//!   in another currency than the chunk, an amount that is not positive,
//!   more than [`MAX_BATCH_ITEMS`] items or none, an item reference twice;
//!   the control sum is computed here in integer minor units;
//! - the submit answer is classified like `SubmitPayment`'s
//!   (`CnXmlConnector::submission_taken`): `DUPLICATE_REFERENCE` (a resent
//!   chunk), `SYSTEM_ERROR`, undocumented codes and every unclean answer are
//!   `OutcomeUnknown`, so the caller queries the chunk reference;
//! - the status query is a read (`CnXmlConnector::call`), and each item's
//!   `REQSTS`/`RTNFLG` maps through [`map_payment_result`] exactly like a
//!   single payment's. A summary the connector cannot believe (another
//!   reference, a `FINFLG` other than `Y`/`N`, "finished" with an item still
//!   processing or fewer items than `TOTNUM`, an item twice) is
//!   `OutcomeUnknown(Protocol)`.
//!
//! Item failures inside an accepted chunk are not errors of the call: they
//! are per-item `Failed` statuses in [`BatchStatusAnswer::Found`].

use std::collections::HashSet;

use domain::{AccountNumber, BankReference, CreditorType};
use formats::cn_xml::messages::{
    self, check_batch_header, check_batch_item, BatchFunction, BatchItemRequest, BatchRequest,
    CRTTYP_CORPORATE, CRTTYP_PERSONAL, FINFLG_NO, FINFLG_YES, FUNC_QUERY_BATCH, MAX_BATCH_ITEMS,
    REQSTS_ACCEPTED, REQSTS_FINISHED, REQSTS_WAITING,
};
use formats::cn_xml::Packet;

use super::{map_payment_result, quoted, CnXmlConnector};
use crate::{
    BankError, BankPaymentStatus, BatchInstruction, BatchItemInstruction, BatchItemResult,
    BatchKind, BatchReceipt, BatchStatusAnswer, IntakeProblem,
};

/// The submit function of a batch kind.
pub fn batch_function(kind: BatchKind) -> BatchFunction {
    match kind {
        BatchKind::Supplier => BatchFunction::Supplier,
        BatchKind::Payroll => BatchFunction::Payroll,
    }
}

/// An item as the family's text (amount in major units of its own currency).
fn item_request(item: &BatchItemInstruction) -> BatchItemRequest {
    BatchItemRequest {
        reference: item.reference.as_str().to_string(),
        amount: item.amount.to_decimal_string(),
        creditor_account: item.creditor_account.clone(),
        creditor_name: item.creditor_name.clone(),
        creditor_bank_code: item
            .creditor_bank_code
            .as_ref()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
        creditor_bic: item
            .creditor_bic
            .as_ref()
            .map(|b| b.as_str().to_string())
            .unwrap_or_default(),
        creditor_bank_name: item.creditor_bank_name.clone().unwrap_or_default(),
        creditor_type: match item.creditor_type {
            CreditorType::Corporate => CRTTYP_CORPORATE,
            CreditorType::Personal => CRTTYP_PERSONAL,
        }
        .to_string(),
        remittance: item.remittance.clone(),
        purpose: item.purpose.clone().unwrap_or_default(),
    }
}

/// Every problem of one item as intake problems named relative to the item.
pub(super) fn item_problems(kind: BatchKind, item: &BatchItemInstruction) -> Vec<IntakeProblem> {
    let mut problems = Vec::new();
    if super::currency_code(item.amount.currency()).is_none() {
        problems.push(IntakeProblem {
            field: "amount",
            detail: format!(
                "currency {} has no cn-xml currency number; expected one of CNY, HKD, USD, EUR, GBP, JPY",
                item.amount.currency().code()
            ),
        });
    }
    if !item.amount.is_positive() {
        problems.push(IntakeProblem {
            field: "amount",
            detail: format!("amount is {}; expected a positive amount", item.amount),
        });
    }
    if let Err(found) = check_batch_item(batch_function(kind), &item_request(item)) {
        problems.extend(found.into_iter().map(|p| IntakeProblem {
            field: p.field,
            detail: p.error.to_string(),
        }));
    }
    problems
}

impl CnXmlConnector {
    fn batch_refused(&self, batch: &BatchInstruction, reason: String) -> BankError {
        BankError::NotProcessed {
            bank: self.bank(),
            reason: format!("batch chunk {} not sent: {reason}", batch.reference),
        }
    }

    /// The chunk as the family's text, checked against everything the bank
    /// would refuse about its shape; a refusal is `NotProcessed` because
    /// nothing was sent.
    pub(super) fn batch_request(
        &self,
        batch: &BatchInstruction,
    ) -> Result<BatchRequest, BankError> {
        let refused = |reason: String| self.batch_refused(batch, reason);
        let currency_code = self.currency_number(batch.currency)?;
        if batch.items.is_empty() || batch.items.len() > MAX_BATCH_ITEMS {
            return Err(refused(format!(
                "{} items; expected 1..={MAX_BATCH_ITEMS} (max_batch_items)",
                batch.items.len()
            )));
        }
        let mut seen = HashSet::new();
        let mut sum_minor: i64 = 0;
        let mut items = Vec::with_capacity(batch.items.len());
        for item in &batch.items {
            if let Some(reason) = batch.item_refusal(item, &mut seen) {
                return Err(refused(reason));
            }
            let problems = item_problems(batch.kind, item);
            if !problems.is_empty() {
                let details: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.detail))
                    .collect();
                return Err(refused(format!(
                    "item {}: {}",
                    item.reference,
                    details.join("; ")
                )));
            }
            sum_minor = sum_minor.checked_add(item.amount.minor()).ok_or_else(|| {
                refused("the items' sum overflows a signed 64-bit count of minor units".into())
            })?;
            items.push(item_request(item));
        }
        let request = BatchRequest {
            function: batch_function(batch.kind),
            reference: batch.reference.as_str().to_string(),
            batch_reference: batch.batch_reference.as_str().to_string(),
            debtor_account: batch.debtor_account.as_str().to_string(),
            currency_code: currency_code.to_string(),
            execution_date: batch.requested_execution_date.to_compact(),
            item_count: items.len().to_string(),
            control_sum: domain::Money::from_minor(sum_minor, batch.currency).to_decimal_string(),
            items,
        };
        check_batch_header(&request).map_err(|e| refused(e.to_string()))?;
        Ok(request)
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id,
        reference = %batch.reference, kind = batch.kind.as_str(),
        debtor = %batch.debtor_account.masked(), items = batch.items.len()))]
    pub(super) async fn submit_batch_chunk(
        &self,
        batch: &BatchInstruction,
    ) -> Result<BatchReceipt, BankError> {
        // Checked before anything is sent: a refusal here is provably
        // NotProcessed.
        let fields = self.batch_request(batch)?;
        let function = fields.function;
        let request =
            messages::submit_batch_request(&self.settings.login, &self.new_serial(), &fields);
        self.observed(
            function.code(),
            self.submit_batch_exchange(batch, function, request),
        )
        .await
    }

    /// One batch submission, classified like `SubmitPayment`.
    async fn submit_batch_exchange(
        &self,
        batch: &BatchInstruction,
        function: BatchFunction,
        request: Packet,
    ) -> Result<BatchReceipt, BankError> {
        let answer = self.exchange(function.code(), request).await?;
        let response = messages::parse_submit_batch(function, &answer)
            .map_err(|e| self.protocol(format!("batch answer: {e}")))?;
        self.submission_taken(
            &format!("batch chunk {}", batch.reference),
            &response.ret_code,
            &response.ret_msg,
        )?;
        let Some(summary) = response.summary else {
            return Err(self.protocol(
                "accepted batch answer has no SUMMARY block; expected exactly one".into(),
            ));
        };
        if summary.reference != batch.reference.as_str() {
            return Err(self.protocol(format!(
                "batch answer is for chunk {}; expected {}",
                quoted(&summary.reference),
                batch.reference
            )));
        }
        if ![REQSTS_ACCEPTED, REQSTS_WAITING, REQSTS_FINISHED]
            .contains(&summary.request_status.as_str())
        {
            return Err(self.protocol(format!(
                "batch answer REQSTS {}; expected ACC, AUT or FIN",
                quoted(&summary.request_status)
            )));
        }
        Ok(BatchReceipt {
            bank_batch_id: Some(summary.bank_ref.clone()).filter(|r| !r.is_empty()),
            bank_code: summary.request_status,
            bank_message: if summary.error_text.is_empty() {
                response.ret_msg
            } else {
                summary.error_text
            },
        })
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id,
        debtor = %debtor_account.masked(), reference = %reference))]
    pub(super) async fn batch_status_of(
        &self,
        debtor_account: &AccountNumber,
        reference: &BankReference,
    ) -> Result<BatchStatusAnswer, BankError> {
        // The family queries by the chunk reference alone; the debtor account
        // only names the chunk in logs, as for single payments.
        let _ = debtor_account;
        let request = messages::query_batch_request(
            &self.settings.login,
            &self.new_serial(),
            reference.as_str(),
        );
        let answer = self.call(FUNC_QUERY_BATCH, request).await?;
        let response = messages::parse_query_batch(&answer)
            .map_err(|e| self.protocol(format!("batch status answer: {e}")))?;
        let Some(summary) = response.summary else {
            return Err(
                self.protocol("accepted batch status answer has no SUMMARY; expected one".into())
            );
        };
        if summary.reference != reference.as_str() {
            return Err(self.protocol(format!(
                "batch status answer is for chunk {}; expected {reference}",
                quoted(&summary.reference)
            )));
        }
        if summary.is_not_found() {
            if !response.items.is_empty() {
                return Err(self.protocol(format!(
                    "batch status answer says chunk {reference} is unknown but lists {} items",
                    response.items.len()
                )));
            }
            return Ok(BatchStatusAnswer::NotFound);
        }
        if ![REQSTS_ACCEPTED, REQSTS_WAITING, REQSTS_FINISHED]
            .contains(&summary.request_status.as_str())
        {
            return Err(self.protocol(format!(
                "batch status REQSTS {}; expected ACC, AUT or FIN",
                quoted(&summary.request_status)
            )));
        }
        let finished = match summary.finished.as_str() {
            FINFLG_YES => true,
            FINFLG_NO => false,
            other => {
                return Err(self.protocol(format!(
                    "batch status FINFLG {}; expected Y or N",
                    quoted(other)
                )))
            }
        };
        let total: usize = summary.item_count.parse().map_err(|_| {
            self.protocol(format!(
                "batch status TOTNUM {}; expected a count of items",
                quoted(&summary.item_count)
            ))
        })?;
        if response.items.len() > total || (finished && response.items.len() != total) {
            return Err(self.protocol(format!(
                "batch status lists {} items of TOTNUM {total}{}",
                response.items.len(),
                if finished { " although finished" } else { "" }
            )));
        }
        let mut seen = HashSet::new();
        let mut items = Vec::with_capacity(response.items.len());
        for result in &response.items {
            let item_reference = BankReference::parse(&result.reference).map_err(|e| {
                self.protocol(format!(
                    "batch status item reference {}: {e}",
                    quoted(&result.reference)
                ))
            })?;
            if !seen.insert(result.reference.clone()) {
                return Err(self.protocol(format!(
                    "batch status lists item {} twice",
                    quoted(&result.reference)
                )));
            }
            let status = map_payment_result(result).map_err(|reason| {
                self.protocol(format!("status of item {}: {reason}", item_reference))
            })?;
            if finished && status == BankPaymentStatus::Processing {
                return Err(self.protocol(format!(
                    "batch status says finished but item {item_reference} is still processing"
                )));
            }
            items.push(BatchItemResult {
                reference: item_reference,
                status,
            });
        }
        Ok(BatchStatusAnswer::Found {
            finished,
            items,
            bank_batch_id: Some(summary.bank_ref.clone()).filter(|r| !r.is_empty()),
            bank_code: summary.request_status,
            bank_message: summary.error_text,
        })
    }

    /// The intake check of one item, all problems named relative to it.
    pub(super) fn check_item(
        &self,
        kind: BatchKind,
        item: &BatchItemInstruction,
    ) -> Result<(), Vec<IntakeProblem>> {
        let problems = item_problems(kind, item);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Currency, Money};

    fn item(reference: &str, minor: i64) -> BatchItemInstruction {
        BatchItemInstruction {
            reference: BankReference::parse(reference).unwrap(),
            amount: Money::from_minor(minor, Currency::CNY),
            creditor_name: "张伟".into(),
            creditor_account: "6222020200112233".into(),
            creditor_bank_code: None,
            creditor_bic: None,
            creditor_bank_name: None,
            creditor_type: CreditorType::Personal,
            remittance: "工资".into(),
            purpose: None,
        }
    }

    #[test]
    fn item_problems_name_fields_relative_to_the_item() {
        let mut bad = item("I1", 0);
        bad.creditor_name = "测".repeat(31);
        bad.remittance = "工资😀".into();
        bad.creditor_type = CreditorType::Corporate;
        let fields: Vec<&str> = item_problems(BatchKind::Payroll, &bad)
            .iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            vec!["amount", "creditor.name", "remittance", "creditor.type"]
        );
        assert!(item_problems(BatchKind::Supplier, &item("I2", 1)).is_empty());
        let numberless = Currency::all()
            .iter()
            .copied()
            .find(|c| super::super::currency_code(*c).is_none())
            .expect("a currency the family has no number for");
        let mut foreign = item("I3", 1);
        foreign.amount = Money::from_minor(1, numberless);
        assert_eq!(
            item_problems(BatchKind::Supplier, &foreign)[0].field,
            "amount"
        );
    }
}
