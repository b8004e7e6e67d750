//! The simulated iso20022 host-to-host gateway: ISO 20022 files over HTTPS
//! with mutual TLS, one order type per path (`/h2h/{order}`), as
//! docs/families/iso20022.md describes.
//!
//! - `HTD` lists the partner's accounts (JSON);
//! - `CCT` takes a pain.001 (.09 or .03): each `PmtInf` with one
//!   transaction is a single payment, one with several a batch chunk
//!   (payroll when `BtchBookg` is true and `CtgyPurp/Cd` is `SALA`), both
//!   executed by the shared [`PaymentBook`](crate::PaymentBook) exactly as
//!   cn-xml's `SubmitPayment` and `SubmitBatch`/`SubmitPayroll` are (the
//!   front translates into the book's request types and makes ISO's
//!   request-level checks itself). Several `PmtInf` in one file are each
//!   handled that way, in order, after the whole file passed its checks; a
//!   file that fails them (malformed, count or control sum, a duplicate id
//!   inside it) is refused with `422 FILE_REJECTED` and nothing is taken. A
//!   `MsgId` seen before is `409 DUPLICATE_MESSAGE` with the original
//!   `order_id` and is not executed again;
//! - `PSR` reports a file's status as pain.002 (.12, or .03 with
//!   `version=03`), mapping the book's stages and codes to ISO statuses and
//!   reason codes; a file younger than the book's `ingest_delay_ms` is
//!   `404 NOT_FOUND`, as an unknown one;
//! - `C53` (camt.053 .08, or .02 with `version=02`), `C52` (camt.052) and
//!   `C54` (camt.054) report the ledger's entries and balances, paged by
//!   `GrpHdr/MsgPgntn` with the bank's page size ([`DEFAULT_PAGE_SIZE`]
//!   entries unless configured); a day (or report) split across pages
//!   repeats its header.
//!
//! Entry references (`AcctSvcrRef`) come from each entry's origin in the
//! account's history (unique per account, kept from pending to booked);
//! about a tenth of the booked entries that were never pending carry none
//! (those without a cn-xml serial, and a seeded ~5 % more).
//!
//! Faults are cn-xml's, matched by order type instead of function code (see
//! [`crate::faults`]): `Delay`, `HttpStatus`, `HttpError`, `Reset` and
//! `ResponseLost` act on the exchange; `ErrorCode` answers `503` with the
//! rule's code and `processed: false` before anything is executed;
//! `Garbled`, `Truncated`, `WrongEncoding` (UTF-16LE without XML
//! declaration or BOM), `Oversized` and `TornBody` spoil the computed
//! answer, so "after" on `CCT` lets the file execute first. `RecordFailure`
//! leaves its account out of a `C52`, `ContinuityBreak` drops the last
//! booked entry of its account's latest day with entries from a `C53`
//! (balances stay true), and `DuplicatePage` answers page N (N > 1) with
//! page N − 1's entries under the number N.
//!
//! Layout: constants and state, the endpoint (faults), the order types
//! (HTD, CCT, PSR, C52, C53, C54), paging, then helpers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use domain::{BusinessDate, Currency, Direction, EntryStatus, Money};
use formats::cn_xml::messages::{
    BatchFunction, BatchItemRequest, BatchRequest, PaymentRequest, CRTTYP_CORPORATE,
    CRTTYP_PERSONAL, RET_DUPLICATE_REFERENCE, RET_OK, URGENT_NO,
};
use formats::iso20022::camt053::{
    self, Balance, BalanceType, CreditDebit, GroupHeader, Pagination, Statement, StatementHeader,
    TransactionDetails,
};
use formats::iso20022::pain002::{
    self, CustomerPaymentStatusReport, DecimalNumber, OriginalGroupStatus, OriginalPaymentStatus,
    Reason, Status, StatusReason, TransactionStatus,
};
use formats::iso20022::{camt052, camt054, pain001, AccountIdentification, Party, MAX140, MAX35};
use rand::Rng;
use tokio::time::Instant;

use crate::batches::{CheckedBatch, ItemOutcome};
use crate::faults::{Fault, When};
use crate::history::{DayTotals, OriginEntry};
use crate::ledger::{bank_rng, IsoSnapshot};
use crate::payments::{
    Checked, Stage, ERR_ACCOUNT_CLOSED, ERR_CURRENCY_MISMATCH, ERR_INSUFFICIENT_FUNDS,
    ERR_INVALID_ACCOUNT, ERR_NAME_MISMATCH,
};
use crate::{mask, SimState, MAX_REQUEST_BYTES};

/// Order types (the path segment after `/h2h/`).
pub const ORDER_HTD: &str = "HTD";
pub const ORDER_CCT: &str = "CCT";
pub const ORDER_PSR: &str = "PSR";
pub const ORDER_C52: &str = "C52";
pub const ORDER_C53: &str = "C53";
pub const ORDER_C54: &str = "C54";
/// Every order type the simulated gateway knows.
pub const ORDER_TYPES: [&str; 6] = [
    ORDER_HTD, ORDER_CCT, ORDER_PSR, ORDER_C52, ORDER_C53, ORDER_C54,
];
/// The header naming the partner (the connection's login).
pub const PARTNER_HEADER: &str = "x-h2h-partner";

/// Entries per report page unless configured.
pub const DEFAULT_PAGE_SIZE: usize = 200;
/// Largest configurable page size.
pub const MAX_PAGE_SIZE: usize = 10_000;
/// Most days one C53 or C54 request may span.
pub const MAX_REPORT_DAYS: i64 = 100;
/// Most `account` parameters of one C52.
pub const MAX_C52_ACCOUNTS: usize = 50;
/// Most files one simulated gateway records; beyond it CCT answers 503.
pub const MAX_FILES: usize = 20_000;
/// Most transactions in one uploaded file.
pub const MAX_FILE_TRANSACTIONS: usize = 5_000;

/// `error` codes of the error document.
pub const ERR_UNKNOWN_PARTNER: &str = "UNKNOWN_PARTNER";
pub const ERR_BAD_REQUEST: &str = "BAD_REQUEST";
pub const ERR_NOT_FOUND: &str = "NOT_FOUND";
pub const ERR_DUPLICATE_MESSAGE: &str = "DUPLICATE_MESSAGE";
pub const ERR_FILE_REJECTED: &str = "FILE_REJECTED";
pub const ERR_SYSTEM_BUSY: &str = "SYSTEM_BUSY";
pub const ERR_SYSTEM_ERROR: &str = "SYSTEM_ERROR";
pub const ERR_UNKNOWN_ORDER_TYPE: &str = "UNKNOWN_ORDER_TYPE";
pub const ERR_METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";

/// ISO reason codes of the simulated gateway.
pub const REASON_INVALID_FORMAT: &str = "FF01";
pub const REASON_CONTROL_SUM: &str = "AM10";
pub const REASON_COUNT: &str = "AM18";
pub const REASON_DUPLICATE_IN_FILE: &str = "DU01";
pub const REASON_ACCOUNT_UNKNOWN: &str = "AC01";
pub const REASON_ACCOUNT_CLOSED: &str = "AC04";
pub const REASON_INSUFFICIENT_FUNDS: &str = "AM04";
pub const REASON_NAME_MISMATCH: &str = "BE01";
pub const REASON_CURRENCY: &str = "AM03";
pub const REASON_DUPLICATE: &str = "AM05";
/// Anything else (a payment the simulator could not book).
pub const REASON_NARRATIVE: &str = "NARR";
/// `Rsn/Prtry` of a payment returned by the creditor's bank.
pub const REASON_RETURNED: &str = "RTRN";
/// `CtgyPurp/Cd` that, with `BtchBookg` true, makes a chunk a payroll run.
pub const CATEGORY_SALARY: &str = "SALA";

/// Share of booked, never-pending entries with a serial that still get no
/// `AcctSvcrRef`, in percent.
const NO_REFERENCE_PERCENT: u8 = 5;
/// How long a torn body waits before breaking the connection.
const TORN_BODY_PAUSE_MS: u64 = 50;
const CONTENT_JSON: &str = "application/json";
const CONTENT_XML: &str = "application/xml";

/// Text that is neither XML nor JSON a client could read.
const GARBLED: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document><GrpHdr><MsgId>&&garbled</Grp>{\"accounts\":[";

/// What the iso20022 front keeps besides the ledger and the payment book.
#[derive(Debug)]
pub(crate) struct IsoState {
    page_size: AtomicUsize,
    files: Mutex<Files>,
    answers: AtomicU64,
}

impl IsoState {
    pub(crate) fn new(page_size: usize) -> IsoState {
        IsoState {
            page_size: AtomicUsize::new(page_size),
            files: Mutex::new(Files::default()),
            answers: AtomicU64::new(0),
        }
    }

    pub(crate) fn page_size(&self) -> usize {
        self.page_size.load(Ordering::Relaxed)
    }

    pub(crate) fn set_page_size(&self, size: usize) {
        self.page_size.store(size, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Files> {
        // Every update checks before it writes; a poisoned lock is usable.
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Checks a page size for [`IsoState::set_page_size`].
pub(crate) fn check_page_size(size: usize) -> Result<(), crate::SimError> {
    if (1..=MAX_PAGE_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(crate::SimError::InvalidConfig {
            message: format!("iso20022 page_size is {size}; expected 1..={MAX_PAGE_SIZE}"),
        })
    }
}

#[derive(Debug, Default)]
struct Files {
    by_message_id: HashMap<String, usize>,
    files: Vec<FileRecord>,
}

/// One file taken by `CCT`.
#[derive(Debug, Clone)]
struct FileRecord {
    order_id: String,
    message_id: String,
    /// `pain.001.001.09` or `pain.001.001.03`.
    name_id: &'static str,
    received_at: Instant,
    count: u64,
    control_sum: Option<DecimalNumber>,
    payments: Vec<PaymentRecord>,
}

#[derive(Debug, Clone)]
struct PaymentRecord {
    id: String,
    /// The chunk reference of a batch chunk; `None` for a single payment.
    chunk: Option<String>,
    /// Set when the book did not take the instruction (or chunk) at all.
    intake: Intake,
    txs: Vec<TxRecord>,
}

#[derive(Debug, Clone)]
struct TxRecord {
    instruction_id: Option<String>,
    end_to_end_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Intake {
    /// Executed by the book; its stage tells the rest.
    Executed,
    /// The reference was executed before (another file); not paid again.
    Duplicate,
    /// The book could not take it (its capacity); nothing paid.
    Failed,
}

/// A computed answer before faults spoil it.
struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn xml(body: Vec<u8>) -> Answer {
        Answer {
            status: StatusCode::OK,
            content_type: CONTENT_XML,
            body,
        }
    }

    fn json(status: StatusCode, value: &serde_json::Value) -> Answer {
        Answer {
            status,
            content_type: CONTENT_JSON,
            body: serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }
}

/// A non-200 answer given on purpose: the error document.
#[derive(Debug, Clone)]
struct IsoError {
    status: StatusCode,
    error: &'static str,
    message: String,
    order_id: Option<String>,
    reason_code: Option<&'static str>,
    parameter: Option<String>,
}

impl IsoError {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> IsoError {
        IsoError {
            status,
            error,
            message: message.into(),
            order_id: None,
            reason_code: None,
            parameter: None,
        }
    }

    fn bad_parameter(parameter: &str, message: impl Into<String>) -> IsoError {
        let mut error = IsoError::new(
            StatusCode::BAD_REQUEST,
            ERR_BAD_REQUEST,
            format!("{parameter}: {}", message.into()),
        );
        error.parameter = Some(clip(parameter, 64));
        error
    }

    fn rejected(reason: &'static str, message: impl Into<String>) -> IsoError {
        let mut error = IsoError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ERR_FILE_REJECTED,
            format!("{reason}: {}", message.into()),
        );
        error.reason_code = Some(reason);
        error
    }

    fn system(message: impl Into<String>) -> IsoError {
        IsoError::new(StatusCode::INTERNAL_SERVER_ERROR, ERR_SYSTEM_ERROR, message)
    }

    fn answer(&self) -> Answer {
        let mut doc = serde_json::json!({
            "error": self.error,
            "message": self.message,
            "processed": false,
        });
        if let Some(map) = doc.as_object_mut() {
            if let Some(order_id) = &self.order_id {
                map.insert("order_id".into(), order_id.clone().into());
            }
            if let Some(reason) = self.reason_code {
                map.insert("reason_code".into(), reason.into());
            }
            if let Some(parameter) = &self.parameter {
                map.insert("parameter".into(), parameter.clone().into());
            }
        }
        Answer::json(self.status, &doc)
    }
}

// ---------------------------------------------------------------------------
// the endpoint
// ---------------------------------------------------------------------------

/// `/h2h/{order}`: every order type, any method. Never panics on any input.
pub(crate) async fn endpoint(
    State(state): State<std::sync::Arc<SimState>>,
    Path(order): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.served.fetch_add(1, Ordering::Relaxed);
    let order = clip(&order, 16);
    let fault = state.faults.take(Some(order.as_str()));
    if let Some(fault) = &fault {
        tracing::info!(bank = %state.cfg.bank_id, order = %order, ?fault, "applying injected fault");
    }
    if let Some(Fault::Delay { ms }) = &fault {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(*ms)) => {}
            () = state.stopped() => return torn_response(Bytes::new(), CONTENT_JSON),
        }
    }
    match &fault {
        Some(
            Fault::HttpStatus { status }
            | Fault::HttpError {
                status,
                when: When::Before,
            },
        ) => return status_response(*status),
        Some(Fault::Reset { when: When::Before }) => return dropped_response(),
        Some(Fault::ErrorCode { code, message }) => {
            let doc = serde_json::json!({"error": code, "message": message, "processed": false});
            return into_response(Answer::json(StatusCode::SERVICE_UNAVAILABLE, &doc));
        }
        _ => {}
    }

    let answer = match answer(
        &state,
        &order,
        &method,
        &uri,
        &headers,
        &body,
        fault.as_ref(),
    ) {
        Ok(answer) => answer,
        Err(error) => {
            tracing::info!(bank = %state.cfg.bank_id, order = %order, status = %error.status,
                error = error.error, message = %error.message, "order refused");
            error.answer()
        }
    };

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
        Some(Fault::Garbled) => into_response(Answer {
            body: GARBLED.to_vec(),
            ..answer
        }),
        Some(Fault::Truncated) => {
            let half = answer.body.len() / 2;
            let mut body = answer.body;
            body.truncate(half);
            into_response(Answer { body, ..answer })
        }
        Some(Fault::WrongEncoding) => {
            let body = utf16_without_declaration(&answer.body);
            into_response(Answer { body, ..answer })
        }
        Some(Fault::Oversized { bytes }) => {
            let mut body = answer.body;
            if body.len() < bytes {
                body.resize(bytes, b' ');
            }
            into_response(Answer { body, ..answer })
        }
        Some(Fault::TornBody) => torn_response(Bytes::from(answer.body), answer.content_type),
        _ => into_response(answer),
    }
}

#[allow(clippy::too_many_arguments)]
fn answer(
    state: &SimState,
    order: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    fault: Option<&Fault>,
) -> Result<Answer, IsoError> {
    if !ORDER_TYPES.contains(&order) {
        return Err(IsoError::new(
            StatusCode::NOT_FOUND,
            ERR_UNKNOWN_ORDER_TYPE,
            format!(
                "order type {order:?} is not one of {}",
                ORDER_TYPES.join(", ")
            ),
        ));
    }
    let partner = headers
        .get(PARTNER_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if partner != state.cfg.login {
        return Err(IsoError::new(
            StatusCode::FORBIDDEN,
            ERR_UNKNOWN_PARTNER,
            format!("partner {:?} is not known to this bank", clip(partner, 64)),
        ));
    }
    let expected = if order == ORDER_CCT {
        Method::POST
    } else {
        Method::GET
    };
    if *method != expected {
        return Err(IsoError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ERR_METHOD_NOT_ALLOWED,
            format!("{order} is asked with {expected}"),
        ));
    }
    let params = Params::of(uri)?;
    match order {
        ORDER_HTD => {
            params.only(&[])?;
            Ok(accounts(state))
        }
        ORDER_CCT => {
            params.only(&[])?;
            submit_file(state, body)
        }
        ORDER_PSR => status_report(state, &params),
        ORDER_C52 => intraday(state, &params, fault),
        ORDER_C53 => statements(state, &params, fault),
        ORDER_C54 => notifications(state, &params, fault),
        _ => Err(IsoError::system("order type without handler")),
    }
}

/// The query parameters, in order, repeated ones kept.
struct Params(Vec<(String, String)>);

impl Params {
    fn of(uri: &Uri) -> Result<Params, IsoError> {
        match Query::<Vec<(String, String)>>::try_from_uri(uri) {
            Ok(Query(pairs)) => Ok(Params(pairs)),
            Err(error) => Err(IsoError::bad_parameter(
                "query",
                format!("cannot be read: {error}"),
            )),
        }
    }

    /// Refuses any parameter not in `known`.
    fn only(&self, known: &[&str]) -> Result<(), IsoError> {
        match self
            .0
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            Some((name, _)) => Err(IsoError::bad_parameter(
                name,
                if known.is_empty() {
                    "this order type takes no parameters".to_string()
                } else {
                    format!("unknown parameter; expected {}", known.join(", "))
                },
            )),
            None => Ok(()),
        }
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of a parameter given at most once.
    fn one(&self, name: &str) -> Result<Option<&str>, IsoError> {
        match self.all(name).as_slice() {
            [] => Ok(None),
            [value] => Ok(Some(value)),
            _ => Err(IsoError::bad_parameter(name, "given more than once")),
        }
    }

    fn required(&self, name: &str) -> Result<&str, IsoError> {
        self.one(name)?
            .ok_or_else(|| IsoError::bad_parameter(name, "required"))
    }

    fn date(&self, name: &str) -> Result<BusinessDate, IsoError> {
        let text = self.required(name)?;
        BusinessDate::parse_iso(text).map_err(|_| {
            IsoError::bad_parameter(
                name,
                format!("{:?} is not a date YYYY-MM-DD", clip(text, 32)),
            )
        })
    }

    fn page(&self) -> Result<usize, IsoError> {
        match self.one("page")? {
            None => Ok(1),
            Some(text) => match text.parse::<usize>() {
                Ok(page) if (1..=99_999).contains(&page) => Ok(page),
                _ => Err(IsoError::bad_parameter(
                    "page",
                    format!("{:?} is not a page number 1..=99999", clip(text, 32)),
                )),
            },
        }
    }
}

// ---------------------------------------------------------------------------
// HTD
// ---------------------------------------------------------------------------

fn accounts(state: &SimState) -> Answer {
    let bic = bank_bic(&state.cfg.bank_id);
    let accounts: Vec<serde_json::Value> = state
        .ledger
        .accounts()
        .into_iter()
        .map(|account| {
            serde_json::json!({
                "iban": account.number,
                "currency": account.currency.code(),
                "name": account.name,
                "bic": bic,
                "active": true,
            })
        })
        .collect();
    Answer::json(StatusCode::OK, &serde_json::json!({ "accounts": accounts }))
}

/// The bank's BIC: four letters from its id, then `DEFF` and `XXX`.
pub fn bank_bic(bank_id: &str) -> String {
    let mut code: String = bank_id
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .take(4)
        .collect();
    while code.len() < 4 {
        code.push('X');
    }
    format!("{code}DEFFXXX")
}

// ---------------------------------------------------------------------------
// CCT
// ---------------------------------------------------------------------------

/// One `PmtInf` translated to the book's request types.
enum Planned {
    Single {
        request: PaymentRequest,
        checked: Checked,
    },
    Batch {
        request: BatchRequest,
        checked: CheckedBatch,
    },
}

fn submit_file(state: &SimState, body: &[u8]) -> Result<Answer, IsoError> {
    let limits = formats::iso20022::Limits {
        max_bytes: MAX_REQUEST_BYTES,
        ..formats::iso20022::Limits::default()
    };
    let (version, file) = pain001::parse_any_with_limits(body, &limits).map_err(|error| {
        let reason = match &error {
            formats::iso20022::ParseError::Mismatch { path, .. } if path.ends_with("CtrlSum") => {
                REASON_CONTROL_SUM
            }
            formats::iso20022::ParseError::Mismatch { path, .. } if path.ends_with("NbOfTxs") => {
                REASON_COUNT
            }
            _ => REASON_INVALID_FORMAT,
        };
        IsoError::rejected(reason, error.to_string())
    })?;
    check_file(&file)?;
    let plan = plan_file(&file)?;

    // One file at a time from here: the MsgId check and the execution must
    // not interleave with another upload of the same MsgId.
    let mut files = state.iso.lock();
    if let Some(original) = files
        .by_message_id
        .get(&file.message_id)
        .and_then(|at| files.files.get(*at))
    {
        let mut error = IsoError::new(
            StatusCode::CONFLICT,
            ERR_DUPLICATE_MESSAGE,
            format!(
                "a file with MsgId {:?} was taken before as order {}; it is not executed again",
                file.message_id, original.order_id
            ),
        );
        error.order_id = Some(original.order_id.clone());
        return Err(error);
    }
    let transactions: usize = file.payments.iter().map(|p| p.transactions.len()).sum();
    if files.files.len() >= MAX_FILES
        || state.payments.len().saturating_add(transactions) > crate::payments::MAX_PAYMENTS
    {
        return Err(IsoError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ERR_SYSTEM_BUSY,
            "the simulated gateway holds as many files and payments as it can",
        ));
    }

    let mut payments = Vec::with_capacity(file.payments.len());
    for (payment, planned) in file.payments.iter().zip(plan) {
        let txs = payment
            .transactions
            .iter()
            .map(|tx| TxRecord {
                instruction_id: tx.instruction_id.clone(),
                end_to_end_id: tx.end_to_end_id.clone(),
            })
            .collect();
        let (chunk, intake) = match planned {
            Planned::Single { request, checked } => {
                let answer = state.payments.submit_checked(&request, &checked);
                (None, intake_of(&answer.ret_code))
            }
            Planned::Batch { request, checked } => {
                let answer = state.payments.submit_batch_checked(&request, &checked);
                (Some(request.reference), intake_of(&answer.ret_code))
            }
        };
        payments.push(PaymentRecord {
            id: payment.id.clone(),
            chunk,
            intake,
            txs,
        });
    }
    let order_id = format!("ORD{:012}", files.files.len() + 1);
    let control_sum = control_sum(&file);
    let record = FileRecord {
        order_id: order_id.clone(),
        message_id: file.message_id.clone(),
        name_id: match version {
            pain001::Version::V03 => "pain.001.001.03",
            pain001::Version::V09 => "pain.001.001.09",
        },
        received_at: Instant::now(),
        count: u64::try_from(transactions).unwrap_or(u64::MAX),
        control_sum,
        payments,
    };
    let position = files.files.len();
    files
        .by_message_id
        .insert(record.message_id.clone(), position);
    files.files.push(record);
    drop(files);
    tracing::info!(bank = %state.cfg.bank_id, order_id = %order_id, message_id = %file.message_id,
        payments = file.payments.len(), transactions, "file taken");
    Ok(Answer::json(
        StatusCode::OK,
        &serde_json::json!({
            "order_id": order_id,
            "message_id": file.message_id,
            "status": "RCVD",
        }),
    ))
}

fn intake_of(ret_code: &str) -> Intake {
    if ret_code == RET_OK {
        Intake::Executed
    } else if ret_code == RET_DUPLICATE_REFERENCE {
        Intake::Duplicate
    } else {
        Intake::Failed
    }
}

/// The file's control sum as `OrgnlCtrlSum` (amounts of one currency
/// exponent add up exactly; mixed exponents are left out).
fn control_sum(file: &pain001::CustomerCreditTransferInitiation) -> Option<DecimalNumber> {
    let amounts: Vec<&Money> = file
        .payments
        .iter()
        .flat_map(|p| p.transactions.iter().map(|t| &t.amount))
        .collect();
    let exponent = amounts.first()?.currency().exponent();
    if amounts.iter().any(|m| m.currency().exponent() != exponent) {
        return None;
    }
    let total: i128 = amounts.iter().map(|m| i128::from(m.minor())).sum();
    DecimalNumber::from_parts(u64::try_from(total).ok()?, u32::from(exponent))
}

/// File-level checks beyond the parser's: ids unique in the file, sizes.
fn check_file(file: &pain001::CustomerCreditTransferInitiation) -> Result<(), IsoError> {
    let too_long = |what: &str, text: &str| {
        (text.chars().count() > MAX35).then(|| {
            IsoError::rejected(
                REASON_INVALID_FORMAT,
                format!("{what} {:?} is longer than 35 characters", clip(text, 40)),
            )
        })
    };
    if let Some(error) = too_long("MsgId", &file.message_id) {
        return Err(error);
    }
    let transactions: usize = file.payments.iter().map(|p| p.transactions.len()).sum();
    if transactions > MAX_FILE_TRANSACTIONS {
        return Err(IsoError::rejected(
            REASON_INVALID_FORMAT,
            format!("{transactions} transactions; the gateway takes at most {MAX_FILE_TRANSACTIONS} per file"),
        ));
    }
    let mut payment_ids = HashSet::new();
    let mut end_to_end_ids = HashSet::new();
    let mut instruction_ids = HashSet::new();
    for (index, payment) in file.payments.iter().enumerate() {
        if let Some(error) = too_long("PmtInfId", &payment.id) {
            return Err(error);
        }
        if !payment_ids.insert(payment.id.as_str()) {
            return Err(IsoError::rejected(
                REASON_DUPLICATE_IN_FILE,
                format!(
                    "PmtInf[{}]/PmtInfId {:?} appears twice in the file",
                    index + 1,
                    payment.id
                ),
            ));
        }
        for (tx_index, tx) in payment.transactions.iter().enumerate() {
            let path = format!("PmtInf[{}]/CdtTrfTxInf[{}]", index + 1, tx_index + 1);
            if let Some(error) = too_long("EndToEndId", &tx.end_to_end_id) {
                return Err(error);
            }
            if !end_to_end_ids.insert(tx.end_to_end_id.as_str()) {
                return Err(IsoError::rejected(
                    REASON_DUPLICATE_IN_FILE,
                    format!(
                        "{path}/PmtId/EndToEndId {:?} appears twice in the file",
                        tx.end_to_end_id
                    ),
                ));
            }
            if let Some(id) = &tx.instruction_id {
                if let Some(error) = too_long("InstrId", id) {
                    return Err(error);
                }
                if !instruction_ids.insert(id.as_str()) {
                    return Err(IsoError::rejected(
                        REASON_DUPLICATE_IN_FILE,
                        format!("{path}/PmtId/InstrId {id:?} appears twice in the file"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn account_text(id: &AccountIdentification) -> String {
    match id {
        AccountIdentification::Iban(iban) => iban.as_str().to_string(),
        AccountIdentification::Other(other) => other.clone(),
    }
}

/// Translates every `PmtInf` into the book's requests, or refuses the file.
fn plan_file(file: &pain001::CustomerCreditTransferInitiation) -> Result<Vec<Planned>, IsoError> {
    let mut plan = Vec::with_capacity(file.payments.len());
    for (index, payment) in file.payments.iter().enumerate() {
        let debtor = account_text(&payment.debtor_account);
        let execution_date = payment.requested_execution_date.to_compact();
        let payroll = is_payroll(payment);
        let mut items: Vec<(PaymentRequest, Checked)> =
            Vec::with_capacity(payment.transactions.len());
        for tx in &payment.transactions {
            let request = PaymentRequest {
                reference: tx.end_to_end_id.clone(),
                debtor_account: debtor.clone(),
                currency_code: tx.amount.currency().code().to_string(),
                amount: tx.amount.to_decimal_string(),
                creditor_account: account_text(&tx.creditor_account),
                creditor_name: tx.creditor.name.clone().unwrap_or_default(),
                creditor_bank_code: String::new(),
                creditor_bic: tx
                    .creditor_agent
                    .as_ref()
                    .map(|bic| bic.as_str().to_string())
                    .unwrap_or_default(),
                creditor_bank_name: String::new(),
                creditor_type: if payroll {
                    CRTTYP_PERSONAL
                } else {
                    CRTTYP_CORPORATE
                }
                .to_string(),
                remittance: tx.remittance.join(" "),
                purpose: String::new(),
                urgent: URGENT_NO.to_string(),
                execution_date: execution_date.clone(),
            };
            let checked = Checked {
                currency: tx.amount.currency(),
                amount_minor: tx.amount.minor(),
            };
            items.push((request, checked));
        }
        if items.len() == 1 {
            if let Some((request, checked)) = items.pop() {
                plan.push(Planned::Single { request, checked });
            }
            continue;
        }
        let Some(currency) = items.first().map(|(_, c)| c.currency) else {
            return Err(IsoError::rejected(
                REASON_INVALID_FORMAT,
                format!("PmtInf[{}] has no transaction", index + 1),
            ));
        };
        if items.iter().any(|(_, c)| c.currency != currency) {
            return Err(IsoError::rejected(
                REASON_INVALID_FORMAT,
                format!(
                    "PmtInf[{}] mixes currencies; a batch is in one currency",
                    index + 1
                ),
            ));
        }
        let total: i128 = items.iter().map(|(_, c)| i128::from(c.amount_minor)).sum();
        let control = i64::try_from(total).map_err(|_| {
            IsoError::rejected(
                REASON_CONTROL_SUM,
                format!("PmtInf[{}] sums beyond any amount", index + 1),
            )
        })?;
        let request = BatchRequest {
            function: if payroll {
                BatchFunction::Payroll
            } else {
                BatchFunction::Supplier
            },
            reference: payment.id.clone(),
            batch_reference: file.message_id.clone(),
            debtor_account: debtor,
            currency_code: currency.code().to_string(),
            execution_date,
            item_count: items.len().to_string(),
            control_sum: Money::from_minor(control, currency).to_decimal_string(),
            items: items
                .iter()
                .map(|(r, _)| BatchItemRequest {
                    reference: r.reference.clone(),
                    amount: r.amount.clone(),
                    creditor_account: r.creditor_account.clone(),
                    creditor_name: r.creditor_name.clone(),
                    creditor_bank_code: String::new(),
                    creditor_bic: r.creditor_bic.clone(),
                    creditor_bank_name: String::new(),
                    creditor_type: r.creditor_type.clone(),
                    remittance: r.remittance.clone(),
                    purpose: String::new(),
                })
                .collect(),
        };
        plan.push(Planned::Batch {
            request,
            checked: CheckedBatch { currency, items },
        });
    }
    Ok(plan)
}

/// A payroll run: a block of several transactions booked as one debit
/// (`BtchBookg` true) for salaries (`PmtTpInf/CtgyPurp/Cd` `SALA`). A
/// transaction's own payment type is not looked at.
fn is_payroll(payment: &pain001::PaymentInformation) -> bool {
    payment.transactions.len() > 1
        && payment.batch_booking == Some(true)
        && payment.category_purpose.as_deref() == Some(CATEGORY_SALARY)
}

// ---------------------------------------------------------------------------
// PSR
// ---------------------------------------------------------------------------

fn status_report(state: &SimState, params: &Params) -> Result<Answer, IsoError> {
    params.only(&["message_id", "version"])?;
    let message_id = params.required("message_id")?;
    let version = match params.one("version")? {
        None | Some("12") => pain002::Version::V12,
        Some("03") => pain002::Version::V03,
        Some(other) => {
            return Err(IsoError::bad_parameter(
                "version",
                format!("{:?} is not 12 or 03", clip(other, 16)),
            ))
        }
    };
    let ingest = Duration::from_millis(state.payments.config().ingest_delay_ms);
    let file = {
        let files = state.iso.lock();
        files
            .by_message_id
            .get(message_id)
            .and_then(|at| files.files.get(*at))
            .filter(|f| f.received_at.elapsed() >= ingest)
            .cloned()
    };
    let Some(file) = file else {
        return Err(IsoError::new(
            StatusCode::NOT_FOUND,
            ERR_NOT_FOUND,
            format!("no file with MsgId {:?}", clip(message_id, 40)),
        ));
    };

    let mut all = Vec::new();
    let mut original_payments = Vec::with_capacity(file.payments.len());
    for payment in &file.payments {
        let outcomes: Vec<Outcome> = match (&payment.intake, &payment.chunk) {
            (Intake::Duplicate, _) => vec![Outcome::Duplicate; payment.txs.len()],
            (Intake::Failed, _) => vec![Outcome::NotTaken; payment.txs.len()],
            (Intake::Executed, None) => payment
                .txs
                .iter()
                .map(|tx| {
                    state
                        .payments
                        .stage_of(&tx.end_to_end_id)
                        .map_or(Outcome::NotTaken, Outcome::Stage)
                })
                .collect(),
            (Intake::Executed, Some(chunk)) => {
                let items = state.payments.chunk_outcomes(chunk).unwrap_or_default();
                (0..payment.txs.len())
                    .map(|i| match items.get(i) {
                        Some(ItemOutcome::Stage(stage)) => Outcome::Stage(stage.clone()),
                        Some(ItemOutcome::Duplicate) => Outcome::Duplicate,
                        None => Outcome::NotTaken,
                    })
                    .collect()
            }
        };
        let transactions: Vec<TransactionStatus> = payment
            .txs
            .iter()
            .zip(&outcomes)
            .map(|(tx, outcome)| {
                let (status, reasons) = tx_status(outcome);
                TransactionStatus {
                    original_instruction_id: tx.instruction_id.clone(),
                    original_end_to_end_id: Some(tx.end_to_end_id.clone()),
                    status: Some(status),
                    reasons,
                    accepted_at: None,
                }
            })
            .collect();
        let statuses: Vec<Status> = transactions
            .iter()
            .filter_map(|t| t.status.clone())
            .collect();
        all.extend(statuses.iter().cloned());
        original_payments.push(OriginalPaymentStatus {
            original_payment_information_id: payment.id.clone(),
            status: Some(aggregate(&statuses)),
            reasons: Vec::new(),
            transactions,
        });
    }
    let report = CustomerPaymentStatusReport {
        message_id: answer_id(state, ORDER_PSR),
        created_at: now_text(state),
        original_group: OriginalGroupStatus {
            original_message_id: file.message_id.clone(),
            original_message_name_id: file.name_id.to_string(),
            original_count: Some(file.count),
            original_control_sum: file.control_sum,
            status: Some(aggregate(&all)),
            reasons: Vec::new(),
        },
        original_payments,
    };
    pain002::render(&report, version)
        .map(Answer::xml)
        .map_err(|error| IsoError::system(format!("status report cannot be rendered: {error}")))
}

#[derive(Debug, Clone)]
enum Outcome {
    Stage(Stage),
    Duplicate,
    NotTaken,
}

fn reason(code: &str, text: &str) -> Vec<StatusReason> {
    vec![StatusReason {
        reason: Some(Reason::Code(code.to_string())),
        additional_info: vec![text.to_string()],
    }]
}

fn tx_status(outcome: &Outcome) -> (Status, Vec<StatusReason>) {
    match outcome {
        Outcome::Stage(Stage::Processing) => (Status::AcceptedSettlementInProcess, Vec::new()),
        Outcome::Stage(Stage::Settled { .. }) => (Status::AcceptedSettlementCompleted, Vec::new()),
        Outcome::Stage(Stage::Returned) => (
            Status::Rejected,
            vec![StatusReason {
                reason: Some(Reason::Proprietary(REASON_RETURNED.to_string())),
                additional_info: vec![
                    "Returned by the creditor's bank: account cannot take the credit".to_string(),
                ],
            }],
        ),
        Outcome::Stage(Stage::Failed { code, .. }) => {
            let (iso, text) = match *code {
                ERR_INVALID_ACCOUNT => (REASON_ACCOUNT_UNKNOWN, "Account unknown"),
                ERR_ACCOUNT_CLOSED => (REASON_ACCOUNT_CLOSED, "Account closed"),
                ERR_INSUFFICIENT_FUNDS => (REASON_INSUFFICIENT_FUNDS, "Insufficient funds"),
                ERR_NAME_MISMATCH => (
                    REASON_NAME_MISMATCH,
                    "Creditor name does not match the account",
                ),
                ERR_CURRENCY_MISMATCH => (
                    REASON_CURRENCY,
                    "Currency not allowed for the debtor account",
                ),
                _ => (REASON_NARRATIVE, "The payment could not be booked"),
            };
            (Status::Rejected, reason(iso, text))
        }
        Outcome::Duplicate => (
            Status::Rejected,
            reason(
                REASON_DUPLICATE,
                "Duplicate: this reference was executed before and is not paid again",
            ),
        ),
        Outcome::NotTaken => (
            Status::Rejected,
            reason(REASON_NARRATIVE, "The bank could not take the payment"),
        ),
    }
}

/// The group or payment-information status of these transaction statuses.
fn aggregate(statuses: &[Status]) -> Status {
    let rejected = statuses.iter().filter(|s| **s == Status::Rejected).count();
    if statuses.is_empty() {
        Status::Received
    } else if rejected == statuses.len() {
        Status::Rejected
    } else if rejected > 0 {
        Status::PartiallyAccepted
    } else if statuses
        .iter()
        .all(|s| *s == Status::AcceptedSettlementCompleted)
    {
        Status::AcceptedSettlementCompleted
    } else {
        Status::AcceptedSettlementInProcess
    }
}

// ---------------------------------------------------------------------------
// C52, C53, C54
// ---------------------------------------------------------------------------

/// One `Stmt`, `Rpt` or `Ntfctn` before paging.
struct Block {
    header: StatementHeader,
    entries: Vec<camt053::Entry>,
}

/// Which part of which block each page holds: `(block, first entry, end)`.
type PagePlan = Vec<(usize, usize, usize)>;

/// Cuts blocks into pages of at most `page_size` entries. A block without
/// entries sits on the page where it falls; a block cut across pages is on
/// each of them (its header repeated). Always at least one page when there
/// is a block.
fn paginate(blocks: &[Block], page_size: usize) -> Vec<PagePlan> {
    let page_size = page_size.max(1);
    let mut pages = Vec::new();
    let mut current: PagePlan = Vec::new();
    let mut count = 0usize;
    for (index, block) in blocks.iter().enumerate() {
        let total = block.entries.len();
        if total == 0 {
            current.push((index, 0, 0));
            continue;
        }
        let mut start = 0;
        while start < total {
            if count == page_size {
                pages.push(std::mem::take(&mut current));
                count = 0;
            }
            let take = (page_size - count).min(total - start);
            current.push((index, start, start + take));
            count += take;
            start += take;
        }
    }
    if !current.is_empty() || pages.is_empty() {
        pages.push(current);
    }
    pages
}

/// The statements of page `page` (1-based) and the pagination to write.
fn page_of(
    blocks: &[Block],
    page_size: usize,
    page: usize,
    fault: Option<&Fault>,
) -> Result<(Vec<Statement>, Pagination), IsoError> {
    let pages = paginate(blocks, page_size);
    let Some(plan) = pages.get(page - 1) else {
        return Err(IsoError::bad_parameter(
            "page",
            format!("page {page} does not exist; the report has {}", pages.len()),
        ));
    };
    // DuplicatePage: page N (N > 1) carries page N-1's entries again.
    let plan = match fault {
        Some(Fault::DuplicatePage) if page > 1 => pages.get(page - 2).unwrap_or(plan),
        _ => plan,
    };
    let statements = plan
        .iter()
        .filter_map(|(index, start, end)| {
            let block = blocks.get(*index)?;
            Some(Statement {
                header: block.header.clone(),
                entries: block.entries.get(*start..*end)?.to_vec(),
            })
        })
        .collect();
    let pagination = Pagination {
        page_number: u32::try_from(page).unwrap_or(u32::MAX),
        last_page: page == pages.len(),
    };
    Ok((statements, pagination))
}

fn statements(
    state: &SimState,
    params: &Params,
    fault: Option<&Fault>,
) -> Result<Answer, IsoError> {
    params.only(&["account", "from", "to", "page", "version"])?;
    let number = params.required("account")?;
    let version = match params.one("version")? {
        None | Some("08") => camt053::Version::V08,
        Some("02") => camt053::Version::V02,
        Some(other) => {
            return Err(IsoError::bad_parameter(
                "version",
                format!("{:?} is not 08 or 02", clip(other, 16)),
            ))
        }
    };
    let (from, to) = range(params)?;
    let page = params.page()?;
    let today = state.ledger.today();
    let yesterday = today
        .add_days(-1)
        .map_err(|_| IsoError::system("no day before today"))?;
    let last = to.min(yesterday);
    if from > last {
        return Err(IsoError::bad_parameter(
            "from",
            format!("C53 reports days before today ({today}) only; the range has none"),
        ));
    }
    let snapshot = snapshot(state, number, from, last, page == 1)?;
    let currency = snapshot.account.currency;
    let created_at = now_text(state);
    let omitted = match fault {
        Some(Fault::ContinuityBreak { acc_no }) if *acc_no == snapshot.account.number => snapshot
            .entries
            .iter()
            .filter(|e| e.entry.status == EntryStatus::Booked)
            .map(|e| e.origin)
            .next_back(),
        _ => None,
    };
    let mut blocks = Vec::with_capacity(snapshot.days.len());
    for day in &snapshot.days {
        let entries = snapshot
            .entries
            .iter()
            .filter(|e| e.entry.booking_date == day.date && e.entry.status == EntryStatus::Booked)
            .filter(|e| Some(e.origin) != omitted)
            .map(|e| iso_entry(state, &snapshot.account.number, currency, e))
            .collect();
        blocks.push(Block {
            header: StatementHeader {
                id: block_id(&snapshot.account.number, day.date, ""),
                electronic_sequence_number: None,
                created_at: Some(created_at.clone()),
                account: account_id(&snapshot.account.number),
                currency: Some(currency),
                balances: vec![
                    balance(
                        BalanceType::OpeningBooked,
                        day.opening_minor,
                        currency,
                        day.date,
                    ),
                    balance(
                        BalanceType::ClosingBooked,
                        day.closing_minor,
                        currency,
                        day.date,
                    ),
                ],
            },
            entries,
        });
    }
    let (statements, pagination) = page_of(&blocks, state.iso.page_size(), page, fault)?;
    let message = camt053::BankToCustomerStatement {
        group_header: GroupHeader {
            message_id: message_id(ORDER_C53, &[number, &from.to_string(), &to.to_string()]),
            created_at,
            pagination: Some(pagination),
        },
        statements,
    };
    camt053::render_version(&message, version)
        .map(Answer::xml)
        .map_err(|error| IsoError::system(format!("statement cannot be rendered: {error}")))
}

fn intraday(state: &SimState, params: &Params, fault: Option<&Fault>) -> Result<Answer, IsoError> {
    params.only(&["account", "entries", "page"])?;
    let asked = params.all("account");
    if asked.is_empty() {
        return Err(IsoError::bad_parameter("account", "required"));
    }
    if asked.len() > MAX_C52_ACCOUNTS {
        return Err(IsoError::bad_parameter(
            "account",
            format!("{} given; expected at most {MAX_C52_ACCOUNTS}", asked.len()),
        ));
    }
    let with_entries = match params.one("entries")? {
        None => true,
        Some("none") => false,
        Some(other) => {
            return Err(IsoError::bad_parameter(
                "entries",
                format!("{:?} is not none", clip(other, 16)),
            ))
        }
    };
    let page = params.page()?;
    let today = state.ledger.today();
    let created_at = now_text(state);
    let mut blocks = Vec::new();
    let mut seen = HashSet::new();
    for number in &asked {
        if !seen.insert(*number) {
            continue;
        }
        if matches!(fault, Some(Fault::RecordFailure { acc_no, .. }) if acc_no == number) {
            tracing::info!(bank = %state.cfg.bank_id, account = %mask(number),
                "leaving the account out of the report on purpose");
            continue;
        }
        if state.ledger.account(number).is_none() {
            continue;
        }
        let snapshot = snapshot(state, number, today, today, page == 1)?;
        let account = &snapshot.account;
        let currency = account.currency;
        let opening = snapshot
            .days
            .first()
            .map_or(account.booked_minor, |d: &DayTotals| d.opening_minor);
        let entries = if with_entries {
            snapshot
                .entries
                .iter()
                .filter(|e| e.entry.status == EntryStatus::Booked)
                .chain(snapshot.pending.iter())
                .map(|e| iso_entry(state, &account.number, currency, e))
                .collect()
        } else {
            Vec::new()
        };
        blocks.push(Block {
            header: StatementHeader {
                id: block_id(&account.number, today, "I"),
                electronic_sequence_number: None,
                created_at: Some(created_at.clone()),
                account: account_id(&account.number),
                currency: Some(currency),
                balances: vec![
                    balance(BalanceType::OpeningBooked, opening, currency, today),
                    balance(
                        BalanceType::InterimBooked,
                        account.booked_minor,
                        currency,
                        today,
                    ),
                    balance(
                        BalanceType::InterimAvailable,
                        account.available_minor,
                        currency,
                        today,
                    ),
                ],
            },
            entries,
        });
    }
    if blocks.is_empty() {
        return Err(IsoError::bad_parameter(
            "account",
            "none of the accounts asked for is one this partner may see",
        ));
    }
    let (reports, pagination) = page_of(&blocks, state.iso.page_size(), page, fault)?;
    let mut key: Vec<&str> = asked.clone();
    let today_text = today.to_string();
    key.push(&today_text);
    let message = camt052::BankToCustomerAccountReport {
        group_header: GroupHeader {
            message_id: message_id(ORDER_C52, &key),
            created_at,
            pagination: Some(pagination),
        },
        reports,
    };
    camt052::render(&message)
        .map(Answer::xml)
        .map_err(|error| IsoError::system(format!("report cannot be rendered: {error}")))
}

fn notifications(
    state: &SimState,
    params: &Params,
    fault: Option<&Fault>,
) -> Result<Answer, IsoError> {
    params.only(&["account", "from", "to", "page"])?;
    let number = params.required("account")?;
    let (from, to) = range(params)?;
    let page = params.page()?;
    let today = state.ledger.today();
    let last = to.min(today);
    if from > last {
        return Err(IsoError::bad_parameter(
            "from",
            format!("is after today ({today})"),
        ));
    }
    let snapshot = snapshot(state, number, from, last, page == 1)?;
    let currency = snapshot.account.currency;
    let created_at = now_text(state);
    let blocks: Vec<Block> = snapshot
        .days
        .iter()
        .map(|day| Block {
            header: StatementHeader {
                id: block_id(&snapshot.account.number, day.date, "N"),
                electronic_sequence_number: None,
                created_at: Some(created_at.clone()),
                account: account_id(&snapshot.account.number),
                currency: Some(currency),
                balances: Vec::new(),
            },
            entries: snapshot
                .entries
                .iter()
                .filter(|e| {
                    e.entry.booking_date == day.date && e.entry.status == EntryStatus::Booked
                })
                .map(|e| iso_entry(state, &snapshot.account.number, currency, e))
                .collect(),
        })
        .collect();
    let (notifications, pagination) = page_of(&blocks, state.iso.page_size(), page, fault)?;
    let message = camt054::BankToCustomerDebitCreditNotification {
        group_header: GroupHeader {
            message_id: message_id(ORDER_C54, &[number, &from.to_string(), &to.to_string()]),
            created_at,
            pagination: Some(pagination),
        },
        notifications,
    };
    camt054::render(&message)
        .map(Answer::xml)
        .map_err(|error| IsoError::system(format!("notification cannot be rendered: {error}")))
}

/// `from` and `to`, checked: `to` not before `from`, at most
/// [`MAX_REPORT_DAYS`] days.
fn range(params: &Params) -> Result<(BusinessDate, BusinessDate), IsoError> {
    let from = params.date("from")?;
    let to = params.date("to")?;
    if to < from {
        return Err(IsoError::bad_parameter(
            "to",
            format!("{to} is before from {from}"),
        ));
    }
    let days = (to.naive() - from.naive()).num_days() + 1;
    if days > MAX_REPORT_DAYS {
        return Err(IsoError::bad_parameter(
            "to",
            format!("the range is {days} days; expected at most {MAX_REPORT_DAYS}"),
        ));
    }
    Ok((from, to))
}

fn snapshot(
    state: &SimState,
    number: &str,
    from: BusinessDate,
    to: BusinessDate,
    starts_session: bool,
) -> Result<IsoSnapshot, IsoError> {
    if state.ledger.account(number).is_none() {
        return Err(IsoError::bad_parameter(
            "account",
            format!("{} is not an account of this partner", mask(number)),
        ));
    }
    state
        .ledger
        .iso_snapshot(number, from, to, starts_session)
        .map_err(|error| IsoError::system(format!("report cannot be computed: {error}")))
}

fn account_id(number: &str) -> AccountIdentification {
    match domain::Iban::parse(number) {
        Ok(iban) => AccountIdentification::Iban(iban),
        Err(_) => AccountIdentification::Other(clip(number, 34)),
    }
}

/// A block `Id`: the account, the day and a kind letter, at most 35
/// characters, the same on every page.
fn block_id(number: &str, date: BusinessDate, kind: &str) -> String {
    let id = format!("{number}{}{kind}", date.to_compact());
    let count = id.chars().count();
    id.chars().skip(count.saturating_sub(MAX35)).collect()
}

fn balance(kind: BalanceType, minor: i64, currency: Currency, date: BusinessDate) -> Balance {
    let magnitude = i64::try_from(minor.unsigned_abs()).unwrap_or(i64::MAX);
    Balance {
        kind,
        amount: Money::from_minor(magnitude, currency),
        indicator: if minor < 0 {
            CreditDebit::Debit
        } else {
            CreditDebit::Credit
        },
        date,
    }
}

/// The bank's `AcctSvcrRef` for an entry, or `None` for the share that
/// carries none (see the module doc).
fn servicer_reference(state: &SimState, number: &str, entry: &OriginEntry) -> Option<String> {
    if !entry.was_pending {
        if entry.entry.serial.is_empty() {
            return None;
        }
        let mut rng = bank_rng(
            &state.cfg.bank_id,
            state.cfg.seed,
            &format!("acctsvcrref {number} {}", entry.origin),
        );
        if rng.gen_range(0..100u8) < NO_REFERENCE_PERCENT {
            return None;
        }
    }
    Some(format!("SIMR{:012}", entry.origin))
}

fn text(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| clip(value, MAX140))
}

fn iso_entry(
    state: &SimState,
    number: &str,
    currency: Currency,
    item: &OriginEntry,
) -> camt053::Entry {
    let entry = &item.entry;
    let booked = entry.status == EntryStatus::Booked;
    let counterparty = Party {
        name: text(&entry.counterparty_name),
        address_lines: Vec::new(),
    };
    let (debtor, creditor) = match entry.direction {
        Direction::Credit => (counterparty, Party::default()),
        Direction::Debit => (Party::default(), counterparty),
    };
    let end_to_end_id = text(&entry.e2e_ref).filter(|id| id.chars().count() <= MAX35);
    camt053::Entry {
        reference: None,
        amount: Money::from_minor(entry.amount_minor, currency),
        indicator: match entry.direction {
            Direction::Credit => CreditDebit::Credit,
            Direction::Debit => CreditDebit::Debit,
        },
        status: if booked {
            camt053::EntryStatus::Booked
        } else {
            camt053::EntryStatus::Pending
        },
        booking_date: booked.then_some(entry.booking_date),
        value_date: Some(entry.value_date),
        account_servicer_reference: servicer_reference(state, number, item),
        bank_transaction_code: None,
        transactions: vec![TransactionDetails {
            end_to_end_id,
            debtor,
            creditor,
            remittance: text(&entry.remittance).into_iter().collect(),
        }],
    }
}

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// A report `MsgId` that is the same for every page of one request: the
/// order type and a hash of the request's key fields.
fn message_id(order: &str, key: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in key {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{order}{hash:016X}")
}

/// A fresh `MsgId` for a status report.
fn answer_id(state: &SimState, order: &str) -> String {
    let n = state.iso.answers.fetch_add(1, Ordering::Relaxed) + 1;
    format!("{order}{n:012}")
}

/// Now, in the bank's zone, as an ISO date-time with offset.
fn now_text(state: &SimState) -> String {
    state
        .clock
        .now()
        .with_timezone(&state.time_zone.tz())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// At most `max` characters of `text`.
fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The text re-encoded as UTF-16LE with its XML declaration removed and no
/// byte order mark: what a misconfigured gateway sends.
fn utf16_without_declaration(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let body = match (text.starts_with("<?xml"), text.find("?>")) {
        (true, Some(end)) => text.get(end + 2..).unwrap_or_default().trim_start(),
        _ => &text,
    };
    body.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn into_response(answer: Answer) -> Response {
    (
        answer.status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(answer.content_type),
        )],
        answer.body,
    )
        .into_response()
}

fn status_response(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, "simulated HTTP failure").into_response()
}

/// No answer at all: the connection closes before the status line.
fn dropped_response() -> Response {
    let chunks = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::other("simulated dropped connection"))
    });
    Response::new(Body::from_stream(chunks))
}

/// Status, headers and the first half of the body, then a broken
/// connection.
fn torn_response(bytes: Bytes, content_type: &'static str) -> Response {
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
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Body::from_stream(chunks),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(entries: usize) -> Block {
        Block {
            header: StatementHeader {
                id: "X".into(),
                electronic_sequence_number: None,
                created_at: None,
                account: AccountIdentification::Other("1".into()),
                currency: None,
                balances: Vec::new(),
            },
            entries: (0..entries)
                .map(|_| camt053::Entry {
                    reference: None,
                    amount: Money::from_minor(1, Currency::EUR),
                    indicator: CreditDebit::Credit,
                    status: camt053::EntryStatus::Booked,
                    booking_date: None,
                    value_date: None,
                    account_servicer_reference: None,
                    bank_transaction_code: None,
                    transactions: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn pages_split_blocks_and_keep_empty_ones() {
        let blocks = vec![block(0), block(3), block(0), block(4), block(0)];
        let pages = paginate(&blocks, 3);
        assert_eq!(
            pages,
            vec![
                vec![(0, 0, 0), (1, 0, 3), (2, 0, 0)],
                vec![(3, 0, 3)],
                vec![(3, 3, 4), (4, 0, 0)],
            ]
        );
        assert_eq!(paginate(&[block(0)], 3), vec![vec![(0, 0, 0)]]);
        let total: usize = paginate(&blocks, 1)
            .iter()
            .flatten()
            .map(|(_, a, b)| b - a)
            .sum();
        assert_eq!(total, 7);
    }

    #[test]
    fn statuses_aggregate() {
        use Status::*;
        assert_eq!(
            aggregate(&[AcceptedSettlementCompleted]),
            AcceptedSettlementCompleted
        );
        assert_eq!(aggregate(&[Rejected, Rejected]), Rejected);
        assert_eq!(
            aggregate(&[Rejected, AcceptedSettlementInProcess]),
            PartiallyAccepted
        );
        assert_eq!(
            aggregate(&[AcceptedSettlementCompleted, AcceptedSettlementInProcess]),
            AcceptedSettlementInProcess
        );
    }

    #[test]
    fn only_a_salary_block_booked_as_one_is_payroll() {
        let xml = br#"<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"><CstmrCdtTrfInitn>
<GrpHdr><MsgId>M</MsgId><CreDtTm>2026-11-28T10:00:00</CreDtTm><NbOfTxs>8</NbOfTxs></GrpHdr>
PAYMENTS</CstmrCdtTrfInitn></Document>"#;
        let block = |id: &str, flags: &str, transactions: usize| {
            let tx = |n: usize| {
                format!("<CdtTrfTxInf><PmtId><EndToEndId>{id}-{n}</EndToEndId></PmtId><Amt><InstdAmt Ccy=\"EUR\">1.00</InstdAmt></Amt><CdtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></CdtrAcct></CdtTrfTxInf>")
            };
            format!(
                "<PmtInf><PmtInfId>{id}</PmtInfId><PmtMtd>TRF</PmtMtd>{flags}<ReqdExctnDt><Dt>2026-11-30</Dt></ReqdExctnDt><DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct><DbtrAgt><FinInstnId><BICFI>BANKDEFFXXX</BICFI></FinInstnId></DbtrAgt>{}</PmtInf>",
                (1..=transactions).map(tx).collect::<String>()
            )
        };
        let salary = "<PmtTpInf><CtgyPurp><Cd>SALA</Cd></CtgyPurp></PmtTpInf>";
        let payments = [
            block("A", &format!("<BtchBookg>true</BtchBookg>{salary}"), 2),
            block("B", "<BtchBookg>true</BtchBookg><PmtTpInf><CtgyPurp><Cd>SUPP</Cd></CtgyPurp></PmtTpInf>", 2),
            block("C", &format!("<BtchBookg>false</BtchBookg>{salary}"), 2),
            block("D", &format!("<BtchBookg>true</BtchBookg>{salary}"), 1),
            block("E", "", 1),
        ]
        .concat();
        let text = String::from_utf8_lossy(xml).replace("PAYMENTS", &payments);
        let file = pain001::parse(text.as_bytes()).unwrap();
        let payroll: Vec<bool> = file.payments.iter().map(is_payroll).collect();
        assert_eq!(payroll, [true, false, false, false, false]);
    }

    #[test]
    fn wrong_encoding_drops_the_declaration() {
        let bytes = utf16_without_declaration(b"<?xml version=\"1.0\"?>\n<A/>");
        assert_eq!(bytes, b"<\0A\0/\0>\0");
        assert!(std::str::from_utf8(&bytes).is_ok_and(|t| !t.contains("<A/>")));
    }

    #[test]
    fn ids_fit_iso_limits() {
        assert_eq!(bank_bic("bank-7"), "BANKDEFFXXX");
        assert_eq!(bank_bic("db"), "DBXXDEFFXXX");
        let date = BusinessDate::parse_iso("2026-11-28").unwrap();
        let id = block_id("DE89370400440532013000", date, "I");
        assert!(id.chars().count() <= MAX35);
        assert!(id.ends_with("20261128I"));
        assert!(message_id("C53", &["a", "b"]).len() <= MAX35);
        assert_ne!(
            message_id("C53", &["ab", ""]),
            message_id("C53", &["a", "b"])
        );
    }
}
