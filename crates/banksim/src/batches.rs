//! Batch chunks at the simulated bank: `SubmitBatch` (supplier run) and
//! `SubmitPayroll` (代发工资) executed item by item against the ledger, with
//! partial rejections, and `QueryBatch` answering per item.
//!
//! What a submission does, in order, under the payment book's lock (the
//! same lock as single payments, so a batch and a payment cannot both spend
//! one balance, and no reference can execute twice between them):
//! 1. a malformed chunk (header or any item too long or unencodable, an
//!    unknown currency, an amount that is not positive, `TOTNUM` not the
//!    number of items, `TOTAMT` not their sum, one `ITMREF` twice in the
//!    chunk, a bad `EPTDAT`) is refused as a whole with `BAD_REQUEST`;
//!    nothing is recorded;
//! 2. a chunk `YURREF` already recorded is never executed again: the answer
//!    is `DUPLICATE_REFERENCE` with the original's current `SUMMARY`;
//! 3. each item, in order, is either a duplicate (its `ITMREF` already
//!    executed, as an item of any chunk or as a single payment: it fails
//!    with [`ERR_DUPLICATE_ITEM`], is not executed and is not counted as an
//!    execution), or goes through the single payment's business checks
//!    (creditor account starting `000`, name starting `错名` or listed,
//!    closed accounts, funds against the balance left by the items before
//!    it) and is recorded as a payment of its own that failed or executed.
//!
//! Money moves as the kind says: a supplier chunk books one debit per
//! executed item (remittance and `e2e_ref` the item's); a payroll chunk
//! books ONE debit for the sum of its executed items, remittance
//! `代发工资 <BATREF>` and `e2e_ref` the chunk reference, after all items
//! were checked. Items then settle, and may be returned (crediting the item's
//! amount back), exactly as single payments do. The chunk is finished when
//! every item is final; `QueryBatch` sees it only `ingest_delay_ms` after it
//! was executed and answers `NOT_FOUND` before.
//!
//! Layout: the chunk record and its views, then `submit_batch`,
//! `query_batch` and `batches` on [`PaymentBook`], then the request checks.

use std::collections::HashSet;
use std::time::Duration;

use domain::{BusinessDate, Direction, Money};
use formats::cn_xml::messages::{
    check_batch_header, check_batch_item, BatchFunction, BatchRequest, BatchSummary,
    PaymentRequest, PaymentResult, ERR_DUPLICATE_ITEM, FINFLG_NO, FINFLG_YES, REQSTS_ACCEPTED,
    REQSTS_FINISHED, RET_BAD_REQUEST, RET_DUPLICATE_REFERENCE, RET_OK, RET_SYSTEM_ERROR,
    RTNFLG_FAILED, URGENT_NO,
};
use tokio::time::Instant;

use crate::history::NewSimEntry;
use crate::mask;
use crate::payments::{check_request, Checked, PaymentBook, SimPayment, Stage, MAX_PAYMENTS};

/// Remittance prefix of a payroll chunk's single debit; the batch
/// reference follows.
pub const PAYROLL_REMITTANCE_PREFIX: &str = "代发工资 ";
/// The same at an iso20022 bank (the batch reference is the file's `MsgId`).
pub const ISO_PAYROLL_REMITTANCE_PREFIX: &str = "Payroll ";
/// Most chunks one simulated bank records; beyond it a submission is
/// refused with `SYSTEM_ERROR`.
pub const MAX_BATCHES: usize = 20_000;
/// `ERRCOD` of an item whose debit could not be booked (the item fails, no
/// money moves).
pub const ERR_SYSTEM: &str = "SYSTEM_ERROR";

const MSG_DUPLICATE_CHUNK: &str = "批次业务参考号重复，原批次结果见SUMMARY";
const MSG_DUPLICATE_ITEM: &str = "明细业务参考号已使用，本笔未支付";
const MSG_BATCH_NOT_FOUND: &str = "批次业务参考号不存在";
const MSG_SYSTEM: &str = "系统错误";

/// One item of a recorded chunk.
#[derive(Debug, Clone)]
pub(crate) enum ItemSlot {
    /// Recorded as the payment at this position of the book.
    Executed(usize),
    /// Its reference had already executed; failed, nothing paid.
    Duplicate { reference: String },
}

/// A chunk the bank took in.
#[derive(Debug, Clone)]
pub(crate) struct SimBatch {
    pub(crate) reference: String,
    pub(crate) batch_reference: String,
    pub(crate) function: BatchFunction,
    pub(crate) debtor: String,
    pub(crate) bank_ref: String,
    pub(crate) executed_at: Instant,
    pub(crate) items: Vec<ItemSlot>,
    /// Packets that carried the chunk reference (resends included).
    pub(crate) submissions: u32,
    /// What the payroll run's single debit was (0 for a supplier chunk,
    /// or when no item executed).
    pub(crate) payroll_debit_minor: i64,
}

/// How one item of a chunk ended, for the iso20022 status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemOutcome {
    Stage(Stage),
    /// Its reference had executed before; failed, nothing paid.
    Duplicate,
}

/// One chunk, for `GET /_sim/batches`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchView {
    /// The chunk reference (`YURREF`).
    pub reference: String,
    pub batch_reference: String,
    /// `supplier` or `payroll`.
    pub kind: String,
    pub items: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub finished: bool,
    /// Packets that carried the chunk reference (resends included).
    pub submissions: u32,
    /// Decimal string: the payroll run's single debit (`"0.00"` for a
    /// supplier chunk, whose items are debited one by one).
    pub payroll_debit: String,
}

/// The answer to one batch submission, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchAnswer {
    pub(crate) ret_code: String,
    pub(crate) ret_msg: String,
    pub(crate) summary: Option<BatchSummary>,
}

impl BatchAnswer {
    fn refused(code: &str, message: String) -> BatchAnswer {
        BatchAnswer {
            ret_code: code.to_string(),
            ret_msg: message,
            summary: None,
        }
    }
}

/// Counts of a chunk's items by how they ended.
struct Tally {
    succeeded: usize,
    failed: usize,
    finished: bool,
}

fn tally(batch: &SimBatch, payments: &[SimPayment]) -> Tally {
    let mut tally = Tally {
        succeeded: 0,
        failed: 0,
        finished: true,
    };
    for slot in &batch.items {
        match slot {
            ItemSlot::Duplicate { .. } => tally.failed += 1,
            ItemSlot::Executed(position) => match payments.get(*position).map(|p| &p.stage) {
                Some(Stage::Settled { .. }) => tally.succeeded += 1,
                Some(Stage::Failed { .. } | Stage::Returned) => tally.failed += 1,
                // A position outside the book cannot happen (payments are
                // never removed); read it as still processing.
                Some(Stage::Processing) | None => tally.finished = false,
            },
        }
    }
    tally
}

fn summary(batch: &SimBatch, payments: &[SimPayment]) -> BatchSummary {
    let tally = tally(batch, payments);
    BatchSummary {
        reference: batch.reference.clone(),
        batch_reference: batch.batch_reference.clone(),
        request_status: if tally.finished {
            REQSTS_FINISHED
        } else {
            REQSTS_ACCEPTED
        }
        .to_string(),
        finished: if tally.finished {
            FINFLG_YES
        } else {
            FINFLG_NO
        }
        .to_string(),
        item_count: batch.items.len().to_string(),
        success_count: tally.succeeded.to_string(),
        failed_count: tally.failed.to_string(),
        error_code: String::new(),
        error_text: String::new(),
        bank_ref: batch.bank_ref.clone(),
    }
}

fn item_result(slot: &ItemSlot, payments: &[SimPayment]) -> Option<PaymentResult> {
    match slot {
        ItemSlot::Executed(position) => payments.get(*position).map(SimPayment::result),
        ItemSlot::Duplicate { reference } => Some(PaymentResult {
            reference: reference.clone(),
            request_status: REQSTS_FINISHED.to_string(),
            result_flag: RTNFLG_FAILED.to_string(),
            error_code: ERR_DUPLICATE_ITEM.to_string(),
            error_text: MSG_DUPLICATE_ITEM.to_string(),
            bank_ref: String::new(),
        }),
    }
}

impl PaymentBook {
    /// Executes one chunk, or answers why not (see the module doc).
    pub(crate) fn submit_batch(&self, request: &BatchRequest) -> BatchAnswer {
        let checked = match check_batch_request(request) {
            Ok(checked) => checked,
            Err(message) => {
                tracing::info!(bank = %self.bank_id, %message, "batch refused as malformed");
                return BatchAnswer::refused(RET_BAD_REQUEST, message);
            }
        };
        self.submit_batch_checked(request, &checked)
    }

    /// Executes one chunk whose request-level checks the caller made (the
    /// iso20022 front checks ISO's limits): steps 2 and 3 of the module doc.
    /// `checked.items` is parallel to `request.items`.
    pub(crate) fn submit_batch_checked(
        &self,
        request: &BatchRequest,
        checked: &CheckedBatch,
    ) -> BatchAnswer {
        self.advance();
        let config = self.config();
        let mut book = self.lock();
        if let Some(position) = book.batch_by_reference.get(&request.reference).copied() {
            let book = &mut *book;
            if let Some(original) = book.batches.get_mut(position) {
                original.submissions = original.submissions.saturating_add(1);
                for slot in &original.items {
                    if let ItemSlot::Executed(at) = slot {
                        if let Some(item) = book.payments.get_mut(*at) {
                            item.submissions = item.submissions.saturating_add(1);
                        }
                    }
                }
                tracing::info!(bank = %self.bank_id, reference = %request.reference,
                    "reused chunk reference answered with the original summary, not executed");
                return BatchAnswer {
                    ret_code: RET_DUPLICATE_REFERENCE.to_string(),
                    ret_msg: MSG_DUPLICATE_CHUNK.to_string(),
                    summary: Some(summary(original, &book.payments)),
                };
            }
        }
        if book.batches.len() >= MAX_BATCHES
            || book.payments.len().saturating_add(request.items.len()) > MAX_PAYMENTS
        {
            return BatchAnswer::refused(
                RET_SYSTEM_ERROR,
                format!("模拟银行最多记录{MAX_PAYMENTS}笔指令、{MAX_BATCHES}个批次"),
            );
        }

        let now = Instant::now();
        let payroll = request.function == BatchFunction::Payroll;
        let first_position = book.payments.len();
        let mut new_payments: Vec<SimPayment> = Vec::with_capacity(request.items.len());
        let mut slots = Vec::with_capacity(request.items.len());
        let mut reserved_minor: i64 = 0;
        for (item, (synthetic, item_checked)) in request.items.iter().zip(&checked.items) {
            if let Some(original) = book.by_reference.get(&item.reference).copied() {
                if let Some(original) = book.payments.get_mut(original) {
                    original.submissions = original.submissions.saturating_add(1);
                }
                tracing::info!(bank = %self.bank_id, chunk = %request.reference,
                    item = %item.reference, "item reference already executed; item fails unpaid");
                slots.push(ItemSlot::Duplicate {
                    reference: item.reference.clone(),
                });
                continue;
            }
            let stage = match self.business_check(&config, synthetic, item_checked, reserved_minor)
            {
                Err(stage) => stage,
                Ok(()) if payroll => {
                    reserved_minor = reserved_minor.saturating_add(item_checked.amount_minor);
                    processing_or_settled(config.settle_delay_ms, now)
                }
                Ok(()) => match self.debit(synthetic, item_checked) {
                    Ok(()) => processing_or_settled(config.settle_delay_ms, now),
                    Err(error) => {
                        tracing::warn!(bank = %self.bank_id, %error, "batch item debit failed");
                        Stage::Failed {
                            flag: RTNFLG_FAILED,
                            code: ERR_SYSTEM,
                            message: MSG_SYSTEM,
                        }
                    }
                },
            };
            let will_return = matches!(stage, Stage::Processing | Stage::Settled { .. })
                && self.chosen_for_return(&item.reference, config.return_share_percent);
            let position = first_position + new_payments.len();
            new_payments.push(SimPayment {
                reference: item.reference.clone(),
                debtor: request.debtor_account.clone(),
                currency: checked.currency,
                amount_minor: item_checked.amount_minor,
                bank_ref: format!("SIM{:012}", position + 1),
                executed_at: now,
                stage,
                will_return,
                executions: 1,
                submissions: 1,
                batch: Some(request.reference.clone()),
            });
            slots.push(ItemSlot::Executed(position));
        }
        if payroll && reserved_minor > 0 {
            let mut debit = NewSimEntry::booked(Direction::Debit, reserved_minor);
            let prefix = if self.ledger.is_iso20022() {
                ISO_PAYROLL_REMITTANCE_PREFIX
            } else {
                PAYROLL_REMITTANCE_PREFIX
            };
            debit.remittance = Some(format!("{prefix}{}", request.batch_reference));
            debit.e2e_ref = Some(request.reference.clone());
            if let Err(error) = self.ledger.add_entry(&request.debtor_account, debit) {
                // Nothing was recorded or booked yet: the chunk is refused
                // as a whole and may be sent again.
                tracing::warn!(bank = %self.bank_id, %error, "payroll debit failed");
                return BatchAnswer::refused(RET_SYSTEM_ERROR, MSG_SYSTEM.to_string());
            }
        }

        let batch = SimBatch {
            reference: request.reference.clone(),
            batch_reference: request.batch_reference.clone(),
            function: request.function,
            debtor: request.debtor_account.clone(),
            bank_ref: format!("SIMB{:08}", book.batches.len() + 1),
            executed_at: now,
            items: slots,
            submissions: 1,
            payroll_debit_minor: if payroll { reserved_minor } else { 0 },
        };
        for payment in new_payments {
            book.record(payment);
        }
        let answer = summary(&batch, &book.payments);
        tracing::info!(bank = %self.bank_id, chunk = %batch.reference,
            debtor = %mask(&batch.debtor), kind = batch.function.code(), items = batch.items.len(),
            succeeded = %answer.success_count, failed = %answer.failed_count, "batch executed");
        let position = book.batches.len();
        book.batch_by_reference
            .insert(batch.reference.clone(), position);
        book.batches.push(batch);
        BatchAnswer {
            ret_code: RET_OK.to_string(),
            ret_msg: String::new(),
            summary: Some(answer),
        }
    }

    /// The chunk's summary and item results; a chunk younger than the
    /// ingest delay, or unknown, is `NOT_FOUND` with no items.
    pub(crate) fn query_batch(&self, reference: &str) -> (BatchSummary, Vec<PaymentResult>) {
        self.advance();
        let ingest = Duration::from_millis(self.config().ingest_delay_ms);
        let now = Instant::now();
        let book = self.lock();
        let found = book
            .batch_by_reference
            .get(reference)
            .and_then(|position| book.batches.get(*position))
            .filter(|batch| now.duration_since(batch.executed_at) >= ingest);
        match found {
            None => (
                BatchSummary::not_found(reference, MSG_BATCH_NOT_FOUND),
                Vec::new(),
            ),
            Some(batch) => (
                summary(batch, &book.payments),
                batch
                    .items
                    .iter()
                    .filter_map(|slot| item_result(slot, &book.payments))
                    .collect(),
            ),
        }
    }

    /// How each item of the chunk with this reference ended so far, in item
    /// order, regardless of the ingest delay; `None` for an unknown chunk.
    pub(crate) fn chunk_outcomes(&self, reference: &str) -> Option<Vec<ItemOutcome>> {
        self.advance();
        let book = self.lock();
        let batch = book
            .batch_by_reference
            .get(reference)
            .and_then(|position| book.batches.get(*position))?;
        Some(
            batch
                .items
                .iter()
                .map(|slot| match slot {
                    ItemSlot::Duplicate { .. } => ItemOutcome::Duplicate,
                    ItemSlot::Executed(at) => book
                        .payments
                        .get(*at)
                        .map_or(ItemOutcome::Stage(Stage::Processing), |p| {
                            ItemOutcome::Stage(p.stage.clone())
                        }),
                })
                .collect(),
        )
    }

    /// Every chunk the bank took in, in order.
    pub fn batches(&self) -> Vec<BatchView> {
        self.advance();
        let book = self.lock();
        book.batches
            .iter()
            .map(|batch| {
                let tally = tally(batch, &book.payments);
                let currency = batch
                    .items
                    .iter()
                    .find_map(|slot| match slot {
                        ItemSlot::Executed(at) => book.payments.get(*at).map(|p| p.currency),
                        ItemSlot::Duplicate { .. } => None,
                    })
                    .unwrap_or(domain::Currency::CNY);
                BatchView {
                    reference: batch.reference.clone(),
                    batch_reference: batch.batch_reference.clone(),
                    kind: match batch.function {
                        BatchFunction::Supplier => "supplier",
                        BatchFunction::Payroll => "payroll",
                    }
                    .to_string(),
                    items: batch.items.len(),
                    succeeded: tally.succeeded,
                    failed: tally.failed,
                    finished: tally.finished,
                    submissions: batch.submissions,
                    payroll_debit: Money::from_minor(batch.payroll_debit_minor, currency)
                        .to_decimal_string(),
                }
            })
            .collect()
    }
}

fn processing_or_settled(settle_delay_ms: u64, now: Instant) -> Stage {
    if settle_delay_ms == 0 {
        Stage::Settled { at: now }
    } else {
        Stage::Processing
    }
}

/// A chunk that passed the request-level checks: its currency and, per
/// item, the single payment it amounts to (for the business checks and the
/// debit) with its amount.
pub(crate) struct CheckedBatch {
    pub(crate) currency: domain::Currency,
    pub(crate) items: Vec<(PaymentRequest, Checked)>,
}

/// The checks a front machine makes before it takes a chunk; the error is
/// the Chinese `RETMSG` of the `BAD_REQUEST`.
fn check_batch_request(request: &BatchRequest) -> Result<CheckedBatch, String> {
    check_batch_header(request).map_err(|e| format!("批次格式错误：{e}"))?;
    for (index, item) in request.items.iter().enumerate() {
        if let Err(problems) = check_batch_item(request.function, item) {
            let detail: Vec<String> = problems.iter().map(|p| p.error.to_string()).collect();
            return Err(format!(
                "第{}笔明细格式错误：{}",
                index + 1,
                detail.join("；")
            ));
        }
    }
    let currency = crate::cn_xml::currency_of_code(&request.currency_code)
        .ok_or_else(|| format!("币种代码无效：{}", request.currency_code))?;
    BusinessDate::parse_compact(&request.execution_date)
        .map_err(|_| "期望日格式错误，应为yyyyMMdd".to_string())?;
    if request.item_count != request.items.len().to_string() {
        return Err(format!(
            "总笔数{}与明细笔数{}不符",
            request.item_count,
            request.items.len()
        ));
    }
    let control = Money::parse_bank_decimal(&request.control_sum, currency)
        .map_err(|e| format!("总金额格式错误：{e}"))?;
    let mut seen = HashSet::new();
    let mut items = Vec::with_capacity(request.items.len());
    let mut sum_minor: i64 = 0;
    for (index, item) in request.items.iter().enumerate() {
        if !seen.insert(item.reference.as_str()) {
            return Err(format!("第{}笔明细业务参考号在本批次中重复", index + 1));
        }
        let synthetic = PaymentRequest {
            reference: item.reference.clone(),
            debtor_account: request.debtor_account.clone(),
            currency_code: request.currency_code.clone(),
            amount: item.amount.clone(),
            creditor_account: item.creditor_account.clone(),
            creditor_name: item.creditor_name.clone(),
            creditor_bank_code: item.creditor_bank_code.clone(),
            creditor_bic: item.creditor_bic.clone(),
            creditor_bank_name: item.creditor_bank_name.clone(),
            creditor_type: item.creditor_type.clone(),
            remittance: item.remittance.clone(),
            purpose: item.purpose.clone(),
            urgent: URGENT_NO.to_string(),
            execution_date: request.execution_date.clone(),
        };
        let checked =
            check_request(&synthetic).map_err(|e| format!("第{}笔明细：{e}", index + 1))?;
        sum_minor = sum_minor
            .checked_add(checked.amount_minor)
            .ok_or_else(|| "总金额超出范围".to_string())?;
        items.push((synthetic, checked));
    }
    if sum_minor != control.minor() {
        return Err(format!(
            "总金额{}与明细合计{}不符",
            request.control_sum,
            Money::from_minor(sum_minor, currency).to_decimal_string()
        ));
    }
    Ok(CheckedBatch { currency, items })
}
