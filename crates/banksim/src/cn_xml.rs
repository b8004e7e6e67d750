//! The simulated cn-xml front machine: one GBK XML packet per `POST /`.
//!
//! A packet is decoded with strict limits, checked for the configured login,
//! and answered from the ledger (`ListAccounts`, `QueryBalance`,
//! `QueryHistory`, `QueryDayBalance`) or the payment book (`SubmitPayment`,
//! `QueryPayment`, see [`crate::payments`]; the batch functions
//! `SubmitBatch`, `SubmitPayroll` and `QueryBatch`, see [`crate::batches`]);
//! anything else gets a well-formed
//! packet with `RETCODE` `BAD_REQUEST`, never a panic and never a 500 (HTTP
//! status 200 carries every answered packet, as the family does). Then the
//! fault taken for the packet, if any, spoils the answer: in the packet
//! (`ErrorCode`, `RecordFailure`, `ContinuityBreak`, `DuplicatePage`) or in
//! the bytes and the connection (`Garbled`, `Truncated`, `WrongEncoding`,
//! `Oversized`, `TornBody`, `HttpStatus`, `HttpError`, `Reset`,
//! `ResponseLost`); `Delay` only waits. Faults "before" return before the
//! request is executed; the others spoil the answer after it was. A batch
//! submission is a payment-submitting function like `SubmitPayment`: an
//! "after" fault on it lets the whole chunk execute first.
//!
//! History requests are checked as a front machine would: a known account in
//! its own currency, `yyyyMMdd` dates, `ENDDAT` not before `BGNDAT`, at most
//! [`MAX_HISTORY_RANGE_DAYS`] days, a `CONTKEY` this bank handed out;
//! anything else is `BAD_REQUEST` with a Chinese message. The first page of
//! a `QueryHistory` (empty `CONTKEY`) after a whole sync of the account
//! (history, then day balances) makes its late entries visible (see
//! [`crate::history`]). Day balances are reported for the days of the range
//! up to today, none for the future.
//!
//! Per-bank quirk, chosen from the bank's seed ([`CnXmlQuirks`]): some front
//! ends write amounts with four decimals (`1234.5000`) instead of two, as real
//! ones do, so that connectors must parse amounts by value, not by shape.
//!
//! Layout: the currency table and quirks, then the request handler, then
//! the answers per function, then the byte-level faults.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::{BusinessDate, Currency, Direction, EntryStatus, Money};
use formats::cn_xml::messages::{
    self, AccountRecord, BalanceRecord, DayBalanceRecord, HistoryRecord, DIRECTION_CREDIT,
    DIRECTION_DEBIT, ENTRY_BOOKED, ENTRY_PENDING, FUNC_LIST_ACCOUNTS, FUNC_QUERY_BALANCE,
    FUNC_QUERY_BATCH, FUNC_QUERY_DAY_BALANCE, FUNC_QUERY_HISTORY, FUNC_QUERY_PAYMENT,
    FUNC_SUBMIT_BATCH, FUNC_SUBMIT_PAYMENT, FUNC_SUBMIT_PAYROLL, MAX_ACCOUNTS_PER_BALANCE_QUERY,
    MAX_HISTORY_RANGE_DAYS, REC_FAILED, REC_SUCCESS, RET_BAD_REQUEST, RET_LOGIN_FAILED, RET_OK,
    RET_SIGNATURE_INVALID, RET_SYSTEM_ERROR,
};
use formats::cn_xml::{decode, encode, Head, Limits, Packet};
use rand::Rng;

use crate::faults::{Fault, When};
use crate::history::{PagePosition, SimEntry};
use crate::ledger::{bank_rng, SimAccount};
use crate::{mask, SimState, MAX_REQUEST_BYTES};

/// Account status "active" in `ACCSTS`.
pub const ACCOUNT_ACTIVE: &str = "A";

const MSG_LOGIN_FAILED: &str = "登录失败：用户名不存在";
const MSG_WRONG_PASSWORD: &str = "登录失败：密码错误";
const MSG_UNKNOWN_ACCOUNT: &str = "账户不存在";
const MSG_CURRENCY_MISMATCH: &str = "币种与账户不符";
const MSG_BAD_DATE: &str = "日期格式错误，应为yyyyMMdd";
const MSG_END_BEFORE_BEGIN: &str = "结束日期早于开始日期";
const MSG_BAD_CONTKEY: &str = "续查键无效";
const MSG_SYSTEM_ERROR: &str = "系统错误";

/// How long a torn body waits between its first half and breaking the
/// connection, so that the client has surely seen the status and headers.
const TORN_BODY_PAUSE_MS: u64 = 50;

/// The family's currency numbers (`CCYNBR`). The connector in `banks` has
/// its own copy: the simulator must not borrow the code it is testing.
const CURRENCY_CODES: &[(Currency, &str)] = &[
    (Currency::CNY, "10"),
    (Currency::HKD, "21"),
    (Currency::USD, "32"),
    (Currency::EUR, "35"),
    (Currency::GBP, "12"),
    (Currency::JPY, "38"),
];

/// The currency of a family number, if it is one.
pub fn currency_of_code(code: &str) -> Option<Currency> {
    CURRENCY_CODES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(currency, _)| *currency)
}

pub fn currency_code(currency: Currency) -> Option<&'static str> {
    CURRENCY_CODES
        .iter()
        .find(|(c, _)| *c == currency)
        .map(|(_, code)| *code)
}

/// The ways one simulated cn-xml bank differs from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CnXmlQuirks {
    /// Decimals written in `ONLBAL`/`AVLBAL`: 2, or 4 for front ends that pad
    /// (`1234.5000`). Never fewer than the currency's exponent.
    pub amount_decimals: u8,
}

impl CnXmlQuirks {
    /// The quirks of a bank, decided by its id and seed (about half of all
    /// seeds give a padding bank).
    pub fn for_bank(bank_id: &str, seed: u64) -> CnXmlQuirks {
        let mut rng = bank_rng(bank_id, seed, "cn-xml quirks");
        let amount_decimals = if rng.gen_range(0..2u8) == 0 { 2 } else { 4 };
        CnXmlQuirks { amount_decimals }
    }
}

fn request_limits() -> Limits {
    Limits {
        max_bytes: MAX_REQUEST_BYTES,
        ..Limits::default()
    }
}

/// Answers one request body (`signature`: the request's signature header,
/// if any). Never panics on any input.
pub(crate) async fn serve_packet(
    state: &SimState,
    body: &[u8],
    signature: Option<&[u8]>,
) -> Response {
    let request = decode(body, &request_limits());
    let function = request.as_ref().ok().map(|packet| packet.head.func.clone());
    let fault = state.faults.take(function.as_deref());
    if let Some(fault) = &fault {
        tracing::info!(bank = %state.cfg.bank_id, function = ?function, ?fault, "applying injected fault");
    }

    if let Some(Fault::Delay { ms }) = &fault {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(*ms)) => {}
            () = state.stopped() => {
                // A bank going down mid-request: the client sees a broken
                // connection, not an answer.
                return torn_response(Bytes::new(), None);
            }
        }
    }
    // Faults before execution: nothing below runs, so nothing is executed.
    match &fault {
        Some(
            Fault::HttpStatus { status }
            | Fault::HttpError {
                status,
                when: When::Before,
            },
        ) => return status_response(*status),
        Some(Fault::Reset { when: When::Before }) => return dropped_response(),
        _ => {}
    }

    let answer = match &request {
        Err(error) => {
            tracing::warn!(bank = %state.cfg.bank_id, %error, "request packet does not decode");
            error_packet("", "", RET_BAD_REQUEST, &format!("报文无法解析：{error}"))
        }
        Ok(request) => match &fault {
            Some(Fault::ErrorCode { code, message }) => {
                error_packet(&request.head.func, &request.head.serial, code, message)
            }
            _ => match request_signature_refused(state, body, signature) {
                Some(message) => error_packet(
                    &request.head.func,
                    &request.head.serial,
                    RET_SIGNATURE_INVALID,
                    &message,
                ),
                None => answer(state, request, fault.as_ref()),
            },
        },
    };
    let bytes = encode_answer(state, &answer);
    // The bank signs the packet it made; the byte faults below then spoil
    // what is sent, and those that rewrite the body (garbled, wrong
    // encoding, oversized) are signed as sent, as a bank that signs its
    // own garbage would.
    let signed = |body: &[u8]| sign_answer(state, body, false);
    let full_signature = signed(&bytes);

    // Faults after execution: the request has had its effect.
    match fault {
        Some(Fault::HttpError {
            status,
            when: When::After,
        }) => status_response(status),
        Some(Fault::Reset { when: When::After }) => dropped_response(),
        Some(Fault::ResponseLost { hold_ms }) => {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(hold_ms)) => {}
                () = state.stopped() => {}
            }
            dropped_response()
        }
        Some(Fault::Garbled) => packet_response(Bytes::from_static(GARBLED), signed(GARBLED)),
        Some(Fault::Truncated) => {
            let half = bytes.len() / 2;
            packet_response(Bytes::from(bytes).slice(..half), full_signature)
        }
        Some(Fault::WrongEncoding) => {
            let spoiled = with_invalid_byte(bytes);
            let signature = signed(&spoiled);
            packet_response(Bytes::from(spoiled), signature)
        }
        Some(Fault::Oversized { bytes: size }) => {
            let spoiled = padded(bytes, size);
            let signature = signed(&spoiled);
            packet_response(Bytes::from(spoiled), signature)
        }
        Some(Fault::TornBody) => torn_response(Bytes::from(bytes), full_signature),
        Some(Fault::WrongSignature) => {
            let signature = sign_answer(state, &bytes, true);
            packet_response(Bytes::from(bytes), signature)
        }
        _ => packet_response(Bytes::from(bytes), full_signature),
    }
}

/// Why a request's signature is refused (a Chinese message for `RETMSG`),
/// or `None` when it verifies or requests are not checked.
fn request_signature_refused(
    state: &SimState,
    body: &[u8],
    signature: Option<&[u8]>,
) -> Option<String> {
    let signing = state.signing.as_ref()?;
    match signing.check_request(body, signature) {
        Ok(()) => None,
        Err(message) => {
            tracing::info!(bank = %state.cfg.bank_id, %message, "request signature refused");
            Some(message)
        }
    }
}

/// The signature header of an answer when the bank signs: by the bank's
/// key, or (`wrongly`) by a key that is not the bank's, for the
/// `wrong_signature` fault. A bank that does not sign sends a wrong one
/// only for that fault.
fn sign_answer(state: &SimState, body: &[u8], wrongly: bool) -> Option<String> {
    let (identity, sm2_id) = match &state.signing {
        Some(signing) if wrongly => (&signing.impostor, signing.sm2_id.as_str()),
        Some(signing) => (&signing.bank, signing.sm2_id.as_str()),
        // Well-formed DER (r = s = 1) that verifies under no key.
        None if wrongly => return Some("MAYCAQECAQE=".to_owned()),
        None => return None,
    };
    match identity.sign(body, sm2_id) {
        Ok(signature) => Some(signature),
        Err(error) => {
            tracing::warn!(bank = %state.cfg.bank_id, %error, "answer could not be signed; sent unsigned");
            None
        }
    }
}

fn status_response(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, "simulated HTTP failure").into_response()
}

/// No answer at all: a body stream that fails before its first byte makes
/// the HTTP server close the connection without flushing the status line.
fn dropped_response() -> Response {
    let chunks = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::other("simulated dropped connection"))
    });
    Response::new(Body::from_stream(chunks))
}

/// A record to fail on purpose (the `RecordFailure` fault).
struct RecordFailure<'a> {
    acc_no: &'a str,
    code: &'a str,
    message: &'a str,
}

fn answer(state: &SimState, request: &Packet, fault: Option<&Fault>) -> Packet {
    let head = &request.head;
    if head.login.as_deref() != Some(state.cfg.login.as_str()) {
        tracing::info!(bank = %state.cfg.bank_id, function = %head.func, "login refused");
        return error_packet(&head.func, &head.serial, RET_LOGIN_FAILED, MSG_LOGIN_FAILED);
    }
    if let Some(password) = &state.password {
        if head.password.as_deref() != Some(password.expose_secret()) {
            // Never the password, given or expected, in the log.
            tracing::info!(bank = %state.cfg.bank_id, function = %head.func,
                given = head.password.is_some(), "password refused");
            return error_packet(
                &head.func,
                &head.serial,
                RET_LOGIN_FAILED,
                MSG_WRONG_PASSWORD,
            );
        }
    }
    match head.func.as_str() {
        FUNC_LIST_ACCOUNTS => list_accounts(state, head),
        FUNC_QUERY_BALANCE => {
            let failure = match fault {
                Some(Fault::RecordFailure {
                    acc_no,
                    code,
                    message,
                }) => Some(RecordFailure {
                    acc_no,
                    code,
                    message,
                }),
                _ => None,
            };
            query_balance(state, request, failure)
        }
        FUNC_QUERY_HISTORY => query_history(state, request, fault),
        FUNC_QUERY_DAY_BALANCE => query_day_balance(state, request),
        FUNC_SUBMIT_PAYMENT => submit_payment(state, request),
        FUNC_QUERY_PAYMENT => query_payment(state, request),
        FUNC_SUBMIT_BATCH | FUNC_SUBMIT_PAYROLL => submit_batch(state, request),
        FUNC_QUERY_BATCH => query_batch(state, request),
        _ => {
            tracing::info!(bank = %state.cfg.bank_id, "unknown function code");
            error_packet(
                &head.func,
                &head.serial,
                RET_BAD_REQUEST,
                "不支持的交易代码",
            )
        }
    }
}

fn list_accounts(state: &SimState, head: &Head) -> Packet {
    let records: Vec<AccountRecord> = state
        .ledger
        .accounts()
        .into_iter()
        .map(|account| AccountRecord {
            currency_code: code_of(account.currency),
            acc_no: account.number,
            name: account.name,
            branch: account.branch,
            status: ACCOUNT_ACTIVE.to_string(),
        })
        .collect();
    tracing::debug!(bank = %state.cfg.bank_id, accounts = records.len(), "ListAccounts answered");
    messages::list_accounts_response(&head.serial, RET_OK, "", &records)
}

fn query_balance(state: &SimState, request: &Packet, failure: Option<RecordFailure<'_>>) -> Packet {
    let head = &request.head;
    let items = match messages::parse_balance_request(request) {
        Ok(items) => items,
        Err(error) => {
            tracing::info!(bank = %state.cfg.bank_id, %error, "malformed balance request");
            return error_packet(
                &head.func,
                &head.serial,
                RET_BAD_REQUEST,
                &format!("查询请求格式错误：{error}"),
            );
        }
    };
    if items.is_empty() || items.len() > MAX_ACCOUNTS_PER_BALANCE_QUERY {
        tracing::info!(bank = %state.cfg.bank_id, accounts = items.len(), "balance request of the wrong size");
        return error_packet(
            &head.func,
            &head.serial,
            RET_BAD_REQUEST,
            &format!(
                "每次查询账户数应为1至{MAX_ACCOUNTS_PER_BALANCE_QUERY}个，实际{}个",
                items.len()
            ),
        );
    }

    let now = state.clock.now();
    let date = BusinessDate::of_instant(now, state.time_zone).to_compact();
    let time = now
        .with_timezone(&state.time_zone.tz())
        .format("%H%M%S")
        .to_string();

    let records: Vec<BalanceRecord> = items
        .iter()
        .map(|item| {
            let failed = |message: &str| BalanceRecord {
                acc_no: item.acc_no.clone(),
                currency_code: item.currency_code.clone().unwrap_or_default(),
                booked: String::new(),
                available: String::new(),
                date: date.clone(),
                time: time.clone(),
                rec_status: REC_FAILED.to_string(),
                rec_msg: message.to_string(),
            };
            let Some(account) = state.ledger.account(&item.acc_no) else {
                return failed(MSG_UNKNOWN_ACCOUNT);
            };
            let code = code_of(account.currency);
            if item
                .currency_code
                .as_deref()
                .is_some_and(|asked| asked != code)
            {
                return failed(MSG_CURRENCY_MISMATCH);
            }
            if let Some(failure) = failure.as_ref().filter(|f| f.acc_no == item.acc_no) {
                tracing::info!(bank = %state.cfg.bank_id, account = %mask(&item.acc_no),
                    code = failure.code, "failing balance record on purpose");
                return failed(failure.message);
            }
            success_record(state, &account, code, &date, &time)
        })
        .collect();
    tracing::debug!(bank = %state.cfg.bank_id, accounts = records.len(), "QueryBalance answered");
    messages::balance_response(&head.serial, RET_OK, "", &records)
}

/// The account and dates of a history or day-balance request, checked.
struct CheckedRange {
    account: SimAccount,
    from: BusinessDate,
    to: BusinessDate,
}

/// Checks what both history functions ask; the error is the Chinese
/// message of the `BAD_REQUEST` answer.
fn checked_range(
    state: &SimState,
    acc_no: &str,
    currency_code: &str,
    from: &str,
    to: &str,
) -> Result<CheckedRange, String> {
    let account = state
        .ledger
        .account(acc_no)
        .ok_or_else(|| MSG_UNKNOWN_ACCOUNT.to_string())?;
    if code_of(account.currency) != currency_code {
        return Err(MSG_CURRENCY_MISMATCH.to_string());
    }
    let (Ok(from), Ok(to)) = (
        BusinessDate::parse_compact(from),
        BusinessDate::parse_compact(to),
    ) else {
        return Err(MSG_BAD_DATE.to_string());
    };
    if to < from {
        return Err(MSG_END_BEFORE_BEGIN.to_string());
    }
    let days = (to.naive() - from.naive()).num_days() + 1;
    if days > MAX_HISTORY_RANGE_DAYS as i64 {
        return Err(format!(
            "查询区间为{days}天，不能超过{MAX_HISTORY_RANGE_DAYS}天"
        ));
    }
    Ok(CheckedRange { account, from, to })
}

fn query_history(state: &SimState, request: &Packet, fault: Option<&Fault>) -> Packet {
    let head = &request.head;
    let refuse = |message: &str| {
        tracing::info!(bank = %state.cfg.bank_id, message, "history request refused");
        error_packet(&head.func, &head.serial, RET_BAD_REQUEST, message)
    };
    let query = match messages::parse_history_request(request) {
        Ok(query) => query,
        Err(error) => return refuse(&format!("查询请求格式错误：{error}")),
    };
    let range = match checked_range(
        state,
        &query.acc_no,
        &query.currency_code,
        &query.from,
        &query.to,
    ) {
        Ok(range) => range,
        Err(message) => return refuse(&message),
    };
    let Some(position) = PagePosition::from_key(&query.cont_key) else {
        return refuse(MSG_BAD_CONTKEY);
    };
    let number = range.account.number.as_str();
    let omit = matches!(fault, Some(Fault::ContinuityBreak { acc_no }) if acc_no == number);
    let starts_session = query.cont_key.is_empty();
    let page = match state.ledger.history_page(
        number,
        range.from,
        range.to,
        position,
        starts_session,
        omit,
    ) {
        Ok(page) => page,
        Err(error) => {
            tracing::warn!(bank = %state.cfg.bank_id, %error, "history page cannot be computed");
            return error_packet(&head.func, &head.serial, RET_SYSTEM_ERROR, MSG_SYSTEM_ERROR);
        }
    };
    let cont_key = if matches!(fault, Some(Fault::DuplicatePage)) {
        position.to_key()
    } else {
        page.next.map(PagePosition::to_key).unwrap_or_default()
    };
    let records: Vec<HistoryRecord> = page
        .entries
        .iter()
        .map(|entry| history_record(state, range.account.currency, entry))
        .collect();
    tracing::debug!(bank = %state.cfg.bank_id, account = %mask(number), entries = records.len(),
        last_page = cont_key.is_empty(), "QueryHistory answered");
    messages::history_response(&head.serial, RET_OK, "", &records, &cont_key)
}

fn submit_payment(state: &SimState, request: &Packet) -> Packet {
    let head = &request.head;
    let payment = match messages::parse_submit_payment_request(request) {
        Ok(payment) => payment,
        Err(error) => {
            tracing::info!(bank = %state.cfg.bank_id, %error, "malformed payment request");
            return error_packet(
                &head.func,
                &head.serial,
                RET_BAD_REQUEST,
                &format!("指令格式错误：{error}"),
            );
        }
    };
    let answer = state.payments.submit(&payment);
    messages::submit_payment_response(
        &head.serial,
        &answer.ret_code,
        &answer.ret_msg,
        answer.result.as_ref(),
    )
}

fn query_payment(state: &SimState, request: &Packet) -> Packet {
    let head = &request.head;
    let references = match messages::parse_query_payment_request(request) {
        Ok(references) => references,
        Err(error) => {
            tracing::info!(bank = %state.cfg.bank_id, %error, "malformed payment query");
            return error_packet(
                &head.func,
                &head.serial,
                RET_BAD_REQUEST,
                &format!("查询请求格式错误：{error}"),
            );
        }
    };
    let results = state.payments.query(&references);
    messages::query_payment_response(&head.serial, RET_OK, "", &results)
}

fn submit_batch(state: &SimState, request: &Packet) -> Packet {
    let head = &request.head;
    let batch = match messages::parse_submit_batch_request(request) {
        Ok(batch) => batch,
        Err(error) => {
            tracing::info!(bank = %state.cfg.bank_id, %error, "malformed batch request");
            return error_packet(
                &head.func,
                &head.serial,
                RET_BAD_REQUEST,
                &format!("批次格式错误：{error}"),
            );
        }
    };
    let answer = state.payments.submit_batch(&batch);
    messages::submit_batch_response(
        batch.function,
        &head.serial,
        &answer.ret_code,
        &answer.ret_msg,
        answer.summary.as_ref(),
    )
}

fn query_batch(state: &SimState, request: &Packet) -> Packet {
    let head = &request.head;
    let reference = match messages::parse_query_batch_request(request) {
        Ok(reference) => reference,
        Err(error) => {
            tracing::info!(bank = %state.cfg.bank_id, %error, "malformed batch query");
            return error_packet(
                &head.func,
                &head.serial,
                RET_BAD_REQUEST,
                &format!("查询请求格式错误：{error}"),
            );
        }
    };
    let (summary, items) = state.payments.query_batch(&reference);
    messages::query_batch_response(&head.serial, RET_OK, "", Some(&summary), &items)
}

fn history_record(state: &SimState, currency: Currency, entry: &SimEntry) -> HistoryRecord {
    HistoryRecord {
        serial: entry.serial.clone(),
        booking_date: entry.booking_date.to_compact(),
        value_date: entry.value_date.to_compact(),
        direction: match entry.direction {
            Direction::Credit => DIRECTION_CREDIT,
            Direction::Debit => DIRECTION_DEBIT,
        }
        .to_string(),
        amount: amount_text(state, entry.amount_minor, currency),
        status: match entry.status {
            EntryStatus::Booked => ENTRY_BOOKED,
            EntryStatus::Pending => ENTRY_PENDING,
        }
        .to_string(),
        balance: entry
            .balance_after_minor
            .map(|minor| amount_text(state, minor, currency))
            .unwrap_or_default(),
        ctp_name: entry.counterparty_name.clone(),
        ctp_account: entry.counterparty_account.clone(),
        ctp_bank: entry.counterparty_bank.clone(),
        narrative: entry.remittance.clone(),
        e2e_ref: entry.e2e_ref.clone(),
    }
}

fn query_day_balance(state: &SimState, request: &Packet) -> Packet {
    let head = &request.head;
    let refuse = |message: &str| {
        tracing::info!(bank = %state.cfg.bank_id, message, "day balance request refused");
        error_packet(&head.func, &head.serial, RET_BAD_REQUEST, message)
    };
    let query = match messages::parse_day_balance_request(request) {
        Ok(query) => query,
        Err(error) => return refuse(&format!("查询请求格式错误：{error}")),
    };
    let range = match checked_range(
        state,
        &query.acc_no,
        &query.currency_code,
        &query.from,
        &query.to,
    ) {
        Ok(range) => range,
        Err(message) => return refuse(&message),
    };
    // A day that has not begun has no balances yet.
    let to = range.to.min(state.ledger.today());
    let totals = if range.from > to {
        Vec::new()
    } else {
        match state
            .ledger
            .day_totals(&range.account.number, range.from, to)
        {
            Ok(totals) => totals,
            Err(error) => {
                tracing::warn!(bank = %state.cfg.bank_id, %error, "day balances cannot be computed");
                return error_packet(&head.func, &head.serial, RET_SYSTEM_ERROR, MSG_SYSTEM_ERROR);
            }
        }
    };
    let currency = range.account.currency;
    let records: Vec<DayBalanceRecord> = totals
        .iter()
        .map(|day| DayBalanceRecord {
            date: day.date.to_compact(),
            opening: amount_text(state, day.opening_minor, currency),
            closing: amount_text(state, day.closing_minor, currency),
        })
        .collect();
    tracing::debug!(bank = %state.cfg.bank_id, account = %mask(&range.account.number),
        days = records.len(), "QueryDayBalance answered");
    messages::day_balance_response(&head.serial, RET_OK, "", &records)
}

/// An amount as this bank writes it (see [`CnXmlQuirks::amount_decimals`]).
fn amount_text(state: &SimState, minor: i64, currency: Currency) -> String {
    pad_decimals(
        Money::from_minor(minor, currency).to_decimal_string(),
        state.quirks.amount_decimals,
    )
}

fn success_record(
    state: &SimState,
    account: &SimAccount,
    code: String,
    date: &str,
    time: &str,
) -> BalanceRecord {
    let amount = |minor: i64| amount_text(state, minor, account.currency);
    BalanceRecord {
        acc_no: account.number.clone(),
        currency_code: code,
        booked: amount(account.booked_minor),
        available: amount(account.available_minor),
        date: date.to_string(),
        time: time.to_string(),
        rec_status: REC_SUCCESS.to_string(),
        rec_msg: String::new(),
    }
}

/// The ledger only holds CNY and USD, both in the table; an empty code would
/// show up as a protocol error in the connector under test, not a panic here.
fn code_of(currency: Currency) -> String {
    currency_code(currency).unwrap_or_default().to_string()
}

/// Appends zeros until `text` has at least `decimals` decimals.
fn pad_decimals(mut text: String, decimals: u8) -> String {
    let have = match text.find('.') {
        Some(point) => text.len() - point - 1,
        None if decimals > 0 => {
            text.push('.');
            0
        }
        None => 0,
    };
    for _ in have..usize::from(decimals) {
        text.push('0');
    }
    text
}

fn error_packet(func: &str, serial: &str, code: &str, message: &str) -> Packet {
    Packet {
        head: Head {
            func: func.to_string(),
            login: None,
            password: None,
            data_type: None,
            serial: serial.to_string(),
            ret_code: Some(code.to_string()),
            ret_msg: Some(message.to_string()),
        },
        body: Vec::new(),
    }
}

/// Encodes an answer. Text echoed from a request (a serial, a function code)
/// may hold characters GB18030 has and GBK lacks; such an answer falls back
/// to a plain `BAD_REQUEST` packet instead of failing the HTTP exchange.
fn encode_answer(state: &SimState, answer: &Packet) -> Vec<u8> {
    match encode(answer) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(bank = %state.cfg.bank_id, %error, "answer cannot be encoded; sending BAD_REQUEST");
            let fallback = error_packet("", "", RET_BAD_REQUEST, "请求包含无法编码的字符");
            encode(&fallback).unwrap_or_else(|_| GARBLED.to_vec())
        }
    }
}

fn packet_response(body: Bytes, signature: Option<String>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=GBK"),
        )],
        body,
    )
        .into_response();
    add_signature(&mut response, signature);
    response
}

fn add_signature(response: &mut Response, signature: Option<String>) {
    if let Some(value) = signature.and_then(|s| HeaderValue::from_str(&s).ok()) {
        response
            .headers_mut()
            .insert(formats::cn_xml::SIGNATURE_HEADER, value);
    }
}

/// Text that is valid GBK but not a packet: a tag soup with mismatched ends
/// and a bare ampersand.
const GARBLED: &[u8] =
    b"<?xml version=\"1.0\" encoding=\"GBK\"?>\n<CNXML><HEAD><FUNC>Qu@@ery&&Bal</HEAD>\x20#%garbled%#</BODY>";

/// Puts a 0xFF byte (never valid in GB18030) into the first account name,
/// else into the message or the function code.
fn with_invalid_byte(mut bytes: Vec<u8>) -> Vec<u8> {
    let position = [&b"<ACCNAM>"[..], b"<RETMSG>", b"<FUNC>"]
        .iter()
        .find_map(|tag| {
            bytes
                .windows(tag.len())
                .position(|window| window == *tag)
                .map(|at| at + tag.len())
        })
        .unwrap_or(bytes.len());
    bytes.insert(position, 0xFF);
    bytes
}

/// Pads a valid packet with trailing whitespace (still well-formed XML) up to
/// `size` bytes, so that only a size limit can reject it.
fn padded(mut bytes: Vec<u8>, size: usize) -> Vec<u8> {
    if bytes.len() < size {
        bytes.resize(size, b' ');
    }
    bytes
}

/// Status and headers, the first half of the body, then a broken connection:
/// a body stream that errors makes the HTTP server abort the exchange.
fn torn_response(bytes: Bytes, signature: Option<String>) -> Response {
    let half = bytes.slice(..bytes.len() / 2);
    let chunks = futures::stream::unfold(0u8, move |step| {
        let half = half.clone();
        async move {
            match step {
                0 => Some((Ok(half), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_millis(TORN_BODY_PAUSE_MS)).await;
                    Some((Err(std::io::Error::other("simulated torn body")), 2))
                }
                _ => None,
            }
        }
    });
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=GBK"),
        )],
        Body::from_stream(chunks),
    )
        .into_response();
    add_signature(&mut response, signature);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_padded_to_the_quirk() {
        assert_eq!(pad_decimals("1234.50".into(), 4), "1234.5000");
        assert_eq!(pad_decimals("-80.00".into(), 2), "-80.00");
        assert_eq!(pad_decimals("1234".into(), 4), "1234.0000");
        assert_eq!(pad_decimals("1234".into(), 0), "1234");
    }

    #[test]
    fn quirks_are_deterministic_and_both_occur() {
        assert_eq!(
            CnXmlQuirks::for_bank("cmb", 5),
            CnXmlQuirks::for_bank("cmb", 5)
        );
        let decimals: Vec<u8> = (0..32)
            .map(|seed| CnXmlQuirks::for_bank("cmb", seed).amount_decimals)
            .collect();
        assert!(
            decimals.contains(&2) && decimals.contains(&4),
            "{decimals:?}"
        );
    }

    #[test]
    fn invalid_byte_lands_in_a_name() {
        let bytes = with_invalid_byte(b"<A><ACCNAM>x</ACCNAM></A>".to_vec());
        assert_eq!(bytes, b"<A><ACCNAM>\xFFx</ACCNAM></A>");
        let bytes = with_invalid_byte(b"<A/>".to_vec());
        assert_eq!(bytes, b"<A/>\xFF");
    }

    #[test]
    fn garbled_bytes_do_not_decode() {
        assert!(decode(GARBLED, &Limits::default()).is_err());
    }

    #[test]
    fn currency_codes_are_unique() {
        for (currency, code) in CURRENCY_CODES {
            assert_eq!(currency_code(*currency), Some(*code));
            assert_eq!(CURRENCY_CODES.iter().filter(|(_, c)| c == code).count(), 1);
        }
    }
}
