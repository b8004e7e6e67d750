//! Payments at the simulated bank: instructions executed against the
//! ledger, settled after a delay, some returned (退票), queryable only after
//! an ingest delay, and each business reference executed at most once.
//!
//! What a `SubmitPayment` does, in order (under the book's lock, so that two
//! instructions cannot both spend the same balance):
//! 1. a malformed instruction (shape, lengths, amount, codes) is refused at
//!    request level with `BAD_REQUEST`; nothing is recorded;
//! 2. a reference already recorded is never executed again: the answer is
//!    `RETCODE` `DUPLICATE_REFERENCE` with the original's current result;
//! 3. the business checks (debtor and creditor account, name, funds) either
//!    fail the instruction (`RTNFLG` `B` or `F` with the codes below, no
//!    money moves) or debit the debtor by booking an entry in its statement
//!    history. Either way the reference is now used and the instruction is
//!    counted as executed once.
//!
//! Afterwards, in real (monotonic) time, not the injected clock, so that a
//! fixed test clock does not freeze settlement: a debited payment settles
//! after `settle_delay_ms`; a share of settled payments (decided by the seed
//! and the reference alone, so a replay returns the same ones) comes back
//! `return_delay_ms` later, crediting the debtor with a second entry. A
//! background tick and every access move payments along.
//!
//! A `QueryPayment` sees an instruction only `ingest_delay_ms` after it was
//! executed; before that it says `NOT_FOUND` although the money moved. This
//! is how real front machines behave and why a gateway must not believe
//! "none" for a young instruction.
//!
//! Batch chunks (`SubmitBatch`, `SubmitPayroll`, see [`crate::batches`])
//! are executed by the same book, under the same lock, item by item with
//! the same business checks: each executed item is a payment here (with its
//! chunk's reference), so settlement, returns, the executions view and the
//! at-most-once rule cover batch items and single payments alike.
//!
//! Layout: config, codes, the book (submit, query, advance), the executions
//! view.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use domain::{BusinessDate, Currency, Direction, Money};
use formats::cn_xml::messages::{
    check_payment, PaymentRequest, PaymentResult, CRTTYP_CORPORATE, CRTTYP_PERSONAL,
    REQSTS_ACCEPTED, REQSTS_FINISHED, RET_BAD_REQUEST, RET_DUPLICATE_REFERENCE, RET_OK,
    RET_SYSTEM_ERROR, RTNFLG_FAILED, RTNFLG_REJECTED, RTNFLG_RETURNED, RTNFLG_SUCCESS, URGENT_NO,
    URGENT_YES,
};
use rand::Rng;
use tokio::time::Instant;

use crate::batches::SimBatch;
use crate::history::NewSimEntry;
use crate::ledger::{bank_rng, Ledger};
use crate::{mask, SimError};

/// Longest settle, return or ingest delay, in milliseconds.
pub const MAX_PAYMENT_DELAY_MS: u64 = 600_000;
/// Most instructions one simulated bank records; beyond it a submission is
/// refused with `SYSTEM_ERROR` (a crash test sends a few thousand).
pub const MAX_PAYMENTS: usize = 200_000;
/// Most accounts or names in one config list.
pub const MAX_CONFIG_LIST: usize = 1_000;
/// Creditor account numbers starting with this do not exist.
pub const INVALID_CREDITOR_PREFIX: &str = "000";
/// Creditor names starting with this do not match the account's holder.
pub const NAME_MISMATCH_PREFIX: &str = "错名";

/// Failure codes (`ERRCOD`) and messages of the simulated bank.
pub const ERR_INSUFFICIENT_FUNDS: &str = "INSUFFICIENT_FUNDS";
pub const ERR_INVALID_ACCOUNT: &str = "INVALID_ACCOUNT";
pub const ERR_ACCOUNT_CLOSED: &str = "ACCOUNT_CLOSED";
pub const ERR_NAME_MISMATCH: &str = "NAME_MISMATCH";
pub const ERR_CURRENCY_MISMATCH: &str = "CURRENCY_MISMATCH";
pub const ERR_RETURNED: &str = "RETURNED";
const MSG_INSUFFICIENT_FUNDS: &str = "余额不足";
const MSG_INVALID_DEBTOR: &str = "付款账号不存在";
const MSG_INVALID_CREDITOR: &str = "收款账号不存在";
const MSG_DEBTOR_CLOSED: &str = "付款账户已销户";
const MSG_CREDITOR_CLOSED: &str = "收款账户已销户";
const MSG_NAME_MISMATCH: &str = "户名不符";
const MSG_CURRENCY_MISMATCH: &str = "币种与账户不符";
const MSG_RETURNED: &str = "收款行退票：收款账户状态异常";
const MSG_DUPLICATE: &str = "业务参考号重复，原交易结果见RESULT";
const MSG_NOT_FOUND: &str = "业务参考号不存在";
/// Remittance prefix of the credit a return books.
pub const RETURN_REMITTANCE_PREFIX: &str = "退票 ";
/// The same at an iso20022 bank.
pub const ISO_RETURN_REMITTANCE_PREFIX: &str = "Return ";

/// How the simulated bank treats payments. Every field has a default, so a
/// config file may name only what it changes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimPaymentConfig {
    /// From execution to settlement (`RTNFLG` `S`); 0 settles at once.
    pub settle_delay_ms: u64,
    /// From settlement to the return of a payment chosen to come back.
    pub return_delay_ms: u64,
    /// Share of settled payments returned, 0..=100, chosen by seed and
    /// reference.
    pub return_share_percent: u8,
    /// From execution until `QueryPayment` sees the instruction.
    pub ingest_delay_ms: u64,
    /// Debtor accounts that may overdraw.
    pub overdraft_accounts: Vec<String>,
    /// Accounts (debtor or creditor) that are closed.
    pub closed_accounts: Vec<String>,
    /// Creditor names that do not match their account, besides every name
    /// starting with [`NAME_MISMATCH_PREFIX`].
    pub mismatched_names: Vec<String>,
}

impl Default for SimPaymentConfig {
    fn default() -> SimPaymentConfig {
        SimPaymentConfig {
            settle_delay_ms: 200,
            return_delay_ms: 200,
            return_share_percent: 0,
            ingest_delay_ms: 0,
            overdraft_accounts: Vec::new(),
            closed_accounts: Vec::new(),
            mismatched_names: Vec::new(),
        }
    }
}

impl SimPaymentConfig {
    /// Checks the bounds; the error names the field.
    pub fn validate(&self) -> Result<(), SimError> {
        let invalid = |message: String| Err(SimError::InvalidConfig { message });
        for (field, ms) in [
            ("settle_delay_ms", self.settle_delay_ms),
            ("return_delay_ms", self.return_delay_ms),
            ("ingest_delay_ms", self.ingest_delay_ms),
        ] {
            if ms > MAX_PAYMENT_DELAY_MS {
                return invalid(format!(
                    "payments.{field} is {ms}; expected at most {MAX_PAYMENT_DELAY_MS}"
                ));
            }
        }
        if self.return_share_percent > 100 {
            return invalid(format!(
                "payments.return_share_percent is {}; expected 0..=100",
                self.return_share_percent
            ));
        }
        for (field, list) in [
            ("overdraft_accounts", &self.overdraft_accounts),
            ("closed_accounts", &self.closed_accounts),
            ("mismatched_names", &self.mismatched_names),
        ] {
            if list.len() > MAX_CONFIG_LIST {
                return invalid(format!(
                    "payments.{field} has {} items; expected at most {MAX_CONFIG_LIST}",
                    list.len()
                ));
            }
        }
        Ok(())
    }
}

/// Where an executed instruction stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Debited, not settled yet.
    Processing,
    Settled {
        at: Instant,
    },
    /// Settled, then credited back.
    Returned,
    /// Refused by the business checks; no money moved.
    Failed {
        flag: &'static str,
        code: &'static str,
        message: &'static str,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct SimPayment {
    pub(crate) reference: String,
    pub(crate) debtor: String,
    pub(crate) currency: Currency,
    pub(crate) amount_minor: i64,
    pub(crate) bank_ref: String,
    pub(crate) executed_at: Instant,
    pub(crate) stage: Stage,
    pub(crate) will_return: bool,
    /// How many times the bank executed this instruction: 1, and never more
    /// (a second would be a double payment). Counted, not assumed.
    pub(crate) executions: u32,
    /// How many packets carried this reference (`SubmitPayment`, or a batch
    /// chunk holding it as an item).
    pub(crate) submissions: u32,
    /// The chunk reference of a batch item; `None` for a single payment.
    pub(crate) batch: Option<String>,
}

impl SimPayment {
    /// Whether time can still change this payment: it is processing, or
    /// settled and chosen to come back.
    fn may_move_on(&self) -> bool {
        match self.stage {
            Stage::Processing => true,
            Stage::Settled { .. } => self.will_return,
            Stage::Returned | Stage::Failed { .. } => false,
        }
    }

    pub(crate) fn result(&self) -> PaymentResult {
        let (request_status, flag, code, text) = match &self.stage {
            Stage::Processing => (REQSTS_ACCEPTED, "", "", ""),
            Stage::Settled { .. } => (REQSTS_FINISHED, RTNFLG_SUCCESS, "", ""),
            Stage::Returned => (REQSTS_FINISHED, RTNFLG_RETURNED, ERR_RETURNED, MSG_RETURNED),
            Stage::Failed {
                flag,
                code,
                message,
            } => (REQSTS_FINISHED, *flag, *code, *message),
        };
        PaymentResult {
            reference: self.reference.clone(),
            request_status: request_status.to_string(),
            result_flag: flag.to_string(),
            error_code: code.to_string(),
            error_text: text.to_string(),
            bank_ref: self.bank_ref.clone(),
        }
    }

    pub(crate) fn status_label(&self) -> &'static str {
        match self.stage {
            Stage::Processing => "processing",
            Stage::Settled { .. } => "settled",
            Stage::Returned => "returned",
            Stage::Failed { .. } => "failed",
        }
    }
}

/// One instruction the bank executed, for `GET /_sim/executions`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecutionView {
    pub reference: String,
    /// Times the bank executed it; anything but 1 is a double payment.
    pub count: u32,
    /// Decimal string in the payment's currency.
    pub amount: String,
    pub currency: String,
    /// `processing`, `settled`, `returned` or `failed` (refused by the
    /// business checks; no money moved).
    pub status: String,
    /// Packets that carried the reference (resends included): `SubmitPayment`
    /// for a single payment, `SubmitBatch`/`SubmitPayroll` for a batch item.
    pub submissions: u32,
    /// The chunk reference (`YURREF` of the batch chunk) of a batch item;
    /// absent for a single payment, so older readers parse the view as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_reference: Option<String>,
}

/// The answer to one `SubmitPayment`, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubmitAnswer {
    pub(crate) ret_code: String,
    pub(crate) ret_msg: String,
    pub(crate) result: Option<PaymentResult>,
}

impl SubmitAnswer {
    fn refused(code: &str, message: String) -> SubmitAnswer {
        SubmitAnswer {
            ret_code: code.to_string(),
            ret_msg: message,
            result: None,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Book {
    /// Every executed reference, single payments' and batch items' alike.
    pub(crate) by_reference: HashMap<String, usize>,
    pub(crate) payments: Vec<SimPayment>,
    pub(crate) batch_by_reference: HashMap<String, usize>,
    pub(crate) batches: Vec<SimBatch>,
    /// Positions of the payments whose stage may still move on (processing,
    /// or settled and to be returned), in execution order: what
    /// [`PaymentBook::advance`] looks at, so that a bank holding thousands
    /// of final payments does not walk them all on every call.
    open: Vec<usize>,
    /// Told when a payment joins `open`, so that the ticker that applies
    /// settlements and returns sleeps while none is in flight
    /// ([`PaymentBook::recorded`]).
    opened: Arc<tokio::sync::Notify>,
}

impl Book {
    /// Records an executed instruction under its reference.
    pub(crate) fn record(&mut self, payment: SimPayment) {
        let position = self.payments.len();
        if payment.may_move_on() {
            self.open.push(position);
            self.opened.notify_one();
        }
        self.by_reference
            .insert(payment.reference.clone(), position);
        self.payments.push(payment);
    }
}

/// Every payment instruction of one simulated bank.
#[derive(Debug)]
pub struct PaymentBook {
    pub(crate) bank_id: String,
    seed: u64,
    pub(crate) ledger: Arc<Ledger>,
    config: Mutex<SimPaymentConfig>,
    book: Mutex<Book>,
    /// The book's `opened`, waited on without its lock.
    opened: Arc<tokio::sync::Notify>,
}

impl PaymentBook {
    pub(crate) fn new(
        bank_id: &str,
        seed: u64,
        ledger: Arc<Ledger>,
        config: SimPaymentConfig,
    ) -> PaymentBook {
        let book = Book::default();
        PaymentBook {
            bank_id: bank_id.to_string(),
            seed,
            ledger,
            config: Mutex::new(config),
            opened: Arc::clone(&book.opened),
            book: Mutex::new(book),
        }
    }

    // A poisoned lock is recovered: every update below checks before it
    // writes, so the book is consistent after any panic elsewhere.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The payment behaviour now in force.
    pub fn config(&self) -> SimPaymentConfig {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the payment behaviour; applies to instructions executed from
    /// now on (and to the settlement of earlier ones still processing).
    pub fn set_config(&self, config: SimPaymentConfig) -> Result<(), SimError> {
        config.validate()?;
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// Every instruction the bank executed, in execution order.
    pub fn executions(&self) -> Vec<ExecutionView> {
        self.advance();
        self.lock()
            .payments
            .iter()
            .map(|p| ExecutionView {
                reference: p.reference.clone(),
                count: p.executions,
                amount: Money::from_minor(p.amount_minor, p.currency).to_decimal_string(),
                currency: p.currency.code().to_string(),
                status: p.status_label().to_string(),
                submissions: p.submissions,
                batch_reference: p.batch.clone(),
            })
            .collect()
    }

    /// Executes one instruction, or answers why not (see the module doc).
    pub(crate) fn submit(&self, request: &PaymentRequest) -> SubmitAnswer {
        let checked = match check_request(request) {
            Ok(checked) => checked,
            Err(message) => {
                tracing::info!(bank = %self.bank_id, %message, "payment refused as malformed");
                return SubmitAnswer::refused(RET_BAD_REQUEST, message);
            }
        };
        self.submit_checked(request, &checked)
    }

    /// Executes one instruction whose request-level checks the caller made
    /// (the iso20022 front checks ISO's limits, not cn-xml's GBK ones): steps
    /// 2 and 3 of the module doc.
    pub(crate) fn submit_checked(
        &self,
        request: &PaymentRequest,
        checked: &Checked,
    ) -> SubmitAnswer {
        self.advance();
        let config = self.config();
        let mut book = self.lock();
        if let Some(position) = book.by_reference.get(&request.reference).copied() {
            if let Some(original) = book.payments.get_mut(position) {
                original.submissions = original.submissions.saturating_add(1);
                tracing::info!(bank = %self.bank_id, reference = %request.reference,
                    "reused reference answered with the original result, not executed");
                return SubmitAnswer {
                    ret_code: RET_DUPLICATE_REFERENCE.to_string(),
                    ret_msg: MSG_DUPLICATE.to_string(),
                    result: Some(original.result()),
                };
            }
        }
        if book.payments.len() >= MAX_PAYMENTS {
            return SubmitAnswer::refused(
                RET_SYSTEM_ERROR,
                format!("模拟银行最多记录{MAX_PAYMENTS}笔指令"),
            );
        }
        let now = Instant::now();
        let bank_ref = format!("SIM{:012}", book.payments.len() + 1);
        let stage = match self.business_check(&config, request, checked, 0) {
            Err(stage) => stage,
            Ok(()) => match self.debit(request, checked) {
                Ok(()) if config.settle_delay_ms == 0 => Stage::Settled { at: now },
                Ok(()) => Stage::Processing,
                Err(error) => {
                    tracing::warn!(bank = %self.bank_id, %error, "payment debit failed");
                    return SubmitAnswer::refused(RET_SYSTEM_ERROR, "系统错误".to_string());
                }
            },
        };
        let will_return = matches!(stage, Stage::Processing | Stage::Settled { .. })
            && self.chosen_for_return(&request.reference, config.return_share_percent);
        let payment = SimPayment {
            reference: request.reference.clone(),
            debtor: request.debtor_account.clone(),
            currency: checked.currency,
            amount_minor: checked.amount_minor,
            bank_ref,
            executed_at: now,
            stage,
            will_return,
            executions: 1,
            submissions: 1,
            batch: None,
        };
        tracing::info!(bank = %self.bank_id, reference = %payment.reference,
            debtor = %mask(&payment.debtor), status = payment.status_label(), "payment executed");
        let result = payment.result();
        book.record(payment);
        SubmitAnswer {
            ret_code: RET_OK.to_string(),
            ret_msg: String::new(),
            result: Some(result),
        }
    }

    /// The results for these references, in order; an instruction younger
    /// than the ingest delay, or unknown, is `NOT_FOUND`.
    pub(crate) fn query(&self, references: &[String]) -> Vec<PaymentResult> {
        self.advance();
        let ingest = Duration::from_millis(self.config().ingest_delay_ms);
        let now = Instant::now();
        let book = self.lock();
        references
            .iter()
            .map(|reference| {
                book.by_reference
                    .get(reference)
                    .and_then(|position| book.payments.get(*position))
                    .filter(|p| now.duration_since(p.executed_at) >= ingest)
                    .map_or_else(
                        || PaymentResult::not_found(reference, MSG_NOT_FOUND),
                        SimPayment::result,
                    )
            })
            .collect()
    }

    /// Where the instruction with this reference stands, if the bank
    /// executed one (batch items included), regardless of the ingest delay.
    pub(crate) fn stage_of(&self, reference: &str) -> Option<Stage> {
        self.advance();
        let book = self.lock();
        book.by_reference
            .get(reference)
            .and_then(|position| book.payments.get(*position))
            .map(|p| p.stage.clone())
    }

    /// How many instructions the book holds.
    pub(crate) fn len(&self) -> usize {
        self.lock().payments.len()
    }

    /// Waits until a payment that may still move on is recorded after the
    /// last wait (at once if one was recorded since).
    pub(crate) async fn recorded(&self) {
        self.opened.notified().await;
    }

    /// Settles and returns what is due. Whether some payment may still move
    /// on (processing, or settled and to be returned).
    pub(crate) fn advance(&self) -> bool {
        let config = self.config();
        let settle = Duration::from_millis(config.settle_delay_ms);
        let back = Duration::from_millis(config.return_delay_ms);
        let now = Instant::now();
        let mut guard = self.lock();
        let book = &mut *guard;
        let mut open = std::mem::take(&mut book.open);
        open.retain(|&position| {
            let Some(payment) = book.payments.get_mut(position) else {
                return false;
            };
            if payment.stage == Stage::Processing && now >= payment.executed_at + settle {
                payment.stage = Stage::Settled {
                    at: payment.executed_at + settle,
                };
            }
            if let Stage::Settled { at } = payment.stage {
                if payment.will_return && now >= at + back {
                    let mut credit = NewSimEntry::booked(Direction::Credit, payment.amount_minor);
                    let prefix = if self.ledger.is_iso20022() {
                        ISO_RETURN_REMITTANCE_PREFIX
                    } else {
                        RETURN_REMITTANCE_PREFIX
                    };
                    credit.remittance = Some(format!("{prefix}{}", payment.reference));
                    credit.e2e_ref = Some(payment.reference.clone());
                    match self.ledger.add_entry(&payment.debtor, credit) {
                        Ok(_) => {
                            payment.stage = Stage::Returned;
                            tracing::info!(bank = %self.bank_id, reference = %payment.reference,
                                "payment returned");
                        }
                        // Left settled; the next tick tries again.
                        Err(error) => {
                            tracing::warn!(bank = %self.bank_id, %error, "return cannot be booked")
                        }
                    }
                }
            }
            payment.may_move_on()
        });
        let in_flight = !open.is_empty();
        book.open = open;
        in_flight
    }

    pub(crate) fn chosen_for_return(&self, reference: &str, share_percent: u8) -> bool {
        if share_percent == 0 {
            return false;
        }
        let mut rng = bank_rng(&self.bank_id, self.seed, &format!("return {reference}"));
        rng.gen_range(0..100u8) < share_percent
    }

    /// The business checks; `Err` is the failed stage to record.
    /// `reserved_minor` is what earlier items of the same payroll chunk will
    /// debit at its end, already spoken for out of the available balance.
    pub(crate) fn business_check(
        &self,
        config: &SimPaymentConfig,
        request: &PaymentRequest,
        checked: &Checked,
        reserved_minor: i64,
    ) -> Result<(), Stage> {
        let fail = |flag, code, message| {
            Err(Stage::Failed {
                flag,
                code,
                message,
            })
        };
        let closed = |number: &str| config.closed_accounts.iter().any(|c| c == number);
        let Some(debtor) = self.ledger.account(&request.debtor_account) else {
            return fail(RTNFLG_REJECTED, ERR_INVALID_ACCOUNT, MSG_INVALID_DEBTOR);
        };
        if closed(&debtor.number) {
            return fail(RTNFLG_REJECTED, ERR_ACCOUNT_CLOSED, MSG_DEBTOR_CLOSED);
        }
        if debtor.currency != checked.currency {
            return fail(
                RTNFLG_REJECTED,
                ERR_CURRENCY_MISMATCH,
                MSG_CURRENCY_MISMATCH,
            );
        }
        if request
            .creditor_account
            .starts_with(INVALID_CREDITOR_PREFIX)
        {
            return fail(RTNFLG_REJECTED, ERR_INVALID_ACCOUNT, MSG_INVALID_CREDITOR);
        }
        if closed(&request.creditor_account) {
            return fail(RTNFLG_REJECTED, ERR_ACCOUNT_CLOSED, MSG_CREDITOR_CLOSED);
        }
        if request.creditor_name.starts_with(NAME_MISMATCH_PREFIX)
            || config.mismatched_names.contains(&request.creditor_name)
        {
            return fail(RTNFLG_FAILED, ERR_NAME_MISMATCH, MSG_NAME_MISMATCH);
        }
        let may_overdraw = config.overdraft_accounts.contains(&debtor.number);
        let available = debtor.available_minor.saturating_sub(reserved_minor);
        if !may_overdraw && available < checked.amount_minor {
            return fail(
                RTNFLG_FAILED,
                ERR_INSUFFICIENT_FUNDS,
                MSG_INSUFFICIENT_FUNDS,
            );
        }
        Ok(())
    }

    /// Books the debit in the debtor's statement history (which moves its
    /// balances in the same critical section).
    pub(crate) fn debit(
        &self,
        request: &PaymentRequest,
        checked: &Checked,
    ) -> Result<(), SimError> {
        let mut entry = NewSimEntry::booked(Direction::Debit, checked.amount_minor);
        entry.counterparty_name = Some(request.creditor_name.clone());
        entry.counterparty_account = Some(request.creditor_account.clone());
        entry.counterparty_bank = Some(request.creditor_bank_name.clone());
        entry.remittance = Some(request.remittance.clone());
        entry.e2e_ref = Some(request.reference.clone());
        self.ledger
            .add_entry(&request.debtor_account, entry)
            .map(|_| ())
    }
}

/// What the request-level checks found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checked {
    pub(crate) currency: Currency,
    pub(crate) amount_minor: i64,
}

/// The checks a front machine makes before it takes an instruction; the
/// error is the Chinese `RETMSG` of the `BAD_REQUEST`.
pub(crate) fn check_request(request: &PaymentRequest) -> Result<Checked, String> {
    check_payment(request).map_err(|e| format!("指令格式错误：{e}"))?;
    let currency = crate::cn_xml::currency_of_code(&request.currency_code)
        .ok_or_else(|| format!("币种代码无效：{}", request.currency_code))?;
    let amount = Money::parse_bank_decimal(&request.amount, currency)
        .map_err(|e| format!("金额格式错误：{e}"))?;
    if !amount.is_positive() {
        return Err("金额必须大于零".to_string());
    }
    if ![CRTTYP_CORPORATE, CRTTYP_PERSONAL].contains(&request.creditor_type.as_str()) {
        return Err("收款人类型应为C或P".to_string());
    }
    if ![URGENT_YES, URGENT_NO].contains(&request.urgent.as_str()) {
        return Err("加急标志应为Y或N".to_string());
    }
    BusinessDate::parse_compact(&request.execution_date)
        .map_err(|_| "期望日格式错误，应为yyyyMMdd".to_string())?;
    Ok(Checked {
        currency,
        amount_minor: amount.minor(),
    })
}
