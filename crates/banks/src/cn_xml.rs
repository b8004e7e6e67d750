//! The cn-xml connector: GBK XML packets over HTTP to a bank's front machine
//! (docs/families/cn-xml.md).
//!
//! One call is one `POST` of one packet with a fresh request serial. The
//! answer is read with a byte cap, decoded strictly as GB18030, checked to
//! echo our function code and serial, and only then believed. Every failure
//! is sorted into the three [`BankError`] kinds by what it proves about the
//! request:
//!
//! | what happened | kind |
//! |---|---|
//! | no connection (refused, name resolution, connect timeout, TLS) | `NotProcessed` |
//! | `RETCODE` `SYSTEM_BUSY` (refused before doing anything) | `NotProcessed` |
//! | any other `RETCODE` but `0` | `Rejected`, the bank's code and message kept |
//! | timeout after the request was sent | `OutcomeUnknown(Timeout)` |
//! | reset or broken body | `OutcomeUnknown(Transport)` |
//! | HTTP status other than 200 | `OutcomeUnknown(HttpStatus)` |
//! | anything in the answer that is not a well-formed packet for our request | `OutcomeUnknown(Protocol)` |
//! | (signing connection) the answer's signature missing or wrong | `OutcomeUnknown(Signature)`, counted and logged as an alert |
//! | (signing connection) no bank certificate valid now | `NotProcessed`, nothing sent |
//!
//! A connection with [`CnXmlOptions`] sends its password in `PASSWD` and,
//! with [`CnXmlSigning`], signs each packet's exact bytes and verifies each
//! answer's exact bytes before decoding them ([`signing`]).
//!
//! A failed record (`RECSTS` `F`) of an accepted balance query is not an
//! error of the call but [`BalanceOutcome::Failed`] for that account.
//!
//! Transaction details ([`BankConnector::transactions`]): the range is split
//! into chunks of at most [`HISTORY_CHUNK_DAYS`] days (the family's limit);
//! each chunk's `QueryHistory` pages are followed by `CONTKEY` until the bank
//! sends an empty one; then `QueryDayBalance` is asked for the same chunks.
//! Every page is one [`CnXmlConnector::call`] like any other, with the same
//! error mapping and metrics; a page that fails fails the whole call.
//! Because a broken bank must not keep us paging forever or hand us the same
//! entries twice, these are `OutcomeUnknown(Protocol)` errors:
//! - more than [`MAX_HISTORY_PAGES_PER_CALL`] pages in one call;
//! - a `CONTKEY` the bank already sent in the same chunk (it would loop);
//! - the same non-empty serial with the same status and booking date twice in
//!   one report (serials are unique per account and booking date, so this
//!   is a repeated page; a pending entry booked while we page shows up once
//!   pending and once booked, which is not a repeat);
//! - an entry or day balance dated outside the asked chunk, a day balance
//!   repeated, an amount that is not positive, an unknown `DIRECT` or
//!   `TRSSTS`, an unparseable amount or date.
//!
//! Payments ([`BankConnector::submit_payment`]) are classified more strictly
//! than reads: only a clean packet can make a submission `NotProcessed`
//! (`SYSTEM_BUSY`) or `Rejected`; `DUPLICATE_REFERENCE`, `SYSTEM_ERROR` and
//! every transport or protocol failure after the request may have been
//! written are `OutcomeUnknown`, and the caller queries by reference
//! ([`BankConnector::payment_status`], 50 references a call). The
//! instruction is checked against the bank's GBK byte lengths before
//! anything is sent. The two-level status maps as in [`map_payment_result`].
//!
//! Batch payments (`SubmitBatch` for supplier runs, `SubmitPayroll` for
//! payroll runs, `QueryBatch`) live in the child module [`batch`], with the
//! same discipline: checked before sending, the submit answer classified
//! like `SubmitPayment`'s, item flags mapped by [`map_payment_result`].
//!
//! The connector reports what the bank said and does not judge continuity:
//! whether opening + Σ entries = closing is the statement sync's check.
//!
//! Layout: the currency table, the connector and its settings check, the
//! call (transport, metrics, tracing), then the mapping of each function's
//! answer, balances first, then transaction details.

pub mod batch;
pub mod signing;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use async_trait::async_trait;
use domain::{
    bank_local_to_utc, AccountNumber, BankReference, BankTimeZone, BusinessDate, CreditorType,
    Currency, Direction, EntryStatus, Money, RandomSource, ThreadRandom, Urgency,
};
use formats::cn_xml::messages::{
    self, check_field, check_payment, AccountRecord, BalanceQueryItem, BalanceRecord,
    DayBalanceQuery, DayBalanceRecord, HistoryQuery, HistoryRecord, PaymentRequest, PaymentResult,
    CRTTYP_CORPORATE, CRTTYP_PERSONAL, DIRECTION_CREDIT, DIRECTION_DEBIT, ENTRY_BOOKED,
    ENTRY_PENDING, FIELD_BUSNAR, FIELD_CRTACC, FIELD_CRTBNM, FIELD_CRTNAM, FIELD_DBTACC,
    FIELD_NUSAGE, FIELD_YURREF, FUNC_LIST_ACCOUNTS, FUNC_QUERY_BALANCE, FUNC_QUERY_DAY_BALANCE,
    FUNC_QUERY_HISTORY, FUNC_QUERY_PAYMENT, FUNC_SUBMIT_PAYMENT, MAX_ACCOUNTS_PER_BALANCE_QUERY,
    MAX_BATCH_ITEMS, MAX_HISTORY_RANGE_DAYS, MAX_REFERENCES_PER_QUERY, REC_FAILED, REC_SUCCESS,
    REQSTS_ACCEPTED, REQSTS_FINISHED, REQSTS_WAITING, RET_BAD_REQUEST, RET_DUPLICATE_REFERENCE,
    RET_LOGIN_FAILED, RET_NO_PERMISSION, RET_OK, RET_SIGNATURE_INVALID, RET_SYSTEM_BUSY,
    RET_SYSTEM_ERROR, RTNFLG_CANCELLED, RTNFLG_EXPIRED, RTNFLG_FAILED, RTNFLG_REJECTED,
    RTNFLG_RETURNED, RTNFLG_SUCCESS, URGENT_NO, URGENT_YES,
};
use formats::cn_xml::{decode, encode, Limits, Packet};

pub use signing::{CnXmlOptions, CnXmlSigning, DEFAULT_SM2_ID};

use crate::transport::{self, quoted};
use crate::{
    mask_account, BalanceOutcome, BalanceQuery, BankAccountInfo, BankBalance, BankConnector,
    BankEntry, BankError, BankPaymentStatus, BatchInstruction, BatchItemInstruction, BatchKind,
    BatchReceipt, BatchStatusAnswer, Capability, ConnectError, ConnectionSettings, DayBalance,
    DedupeKeyPolicy, Family, PaymentInstruction, StatusAnswer, SubmitReceipt, TransactionQuery,
    TransactionReport, UnknownCause,
};

/// Code of a failed balance record: the family carries no record-level code,
/// only a message.
pub const RECORD_FAILED: &str = "RECORD_FAILED";
/// How long an idle connection to the front machine is kept (how many:
/// [`crate::ConnectionSettings::max_idle_connections`]).
pub use crate::transport::POOL_IDLE_TIMEOUT_MS;
/// Longest date range of one `QueryHistory` or `QueryDayBalance` request,
/// in days with both ends counted: the family's documented limit. Longer
/// ranges are split into chunks of this size.
pub const HISTORY_CHUNK_DAYS: i64 = MAX_HISTORY_RANGE_DAYS as i64;
/// Most `QueryHistory` pages one [`BankConnector::transactions`] call
/// follows, over all its chunks (2 million entries at 200 a page). A bank
/// that keeps handing out keys beyond this is broken, not busy.
pub const MAX_HISTORY_PAGES_PER_CALL: usize = 10_000;
/// Longest range one [`BankConnector::transactions`] call accepts, in days
/// (about ten years); a longer one is refused before anything is sent.
pub const MAX_TRANSACTION_RANGE_DAYS: i64 = 3_660;
/// Length of the random part of a request serial, in hex digits.
const SERIAL_HEX_DIGITS: usize = 16;
const CONTENT_TYPE: &str = "text/xml; charset=GBK";

/// The family's currency numbers (`CCYNBR`), both directions from this one
/// table.
const CURRENCY_CODES: &[(Currency, &str)] = &[
    (Currency::CNY, "10"),
    (Currency::HKD, "21"),
    (Currency::USD, "32"),
    (Currency::EUR, "35"),
    (Currency::GBP, "12"),
    (Currency::JPY, "38"),
];

/// The family's number for a currency, if it has one.
pub fn currency_code(currency: Currency) -> Option<&'static str> {
    CURRENCY_CODES
        .iter()
        .find(|(c, _)| *c == currency)
        .map(|(_, code)| *code)
}

/// The currency of a family number, if it is one.
pub fn currency_of_code(code: &str) -> Option<Currency> {
    CURRENCY_CODES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(currency, _)| *currency)
}

/// A connection to one cn-xml front machine.
pub struct CnXmlConnector {
    settings: ConnectionSettings,
    endpoint: reqwest::Url,
    time_zone: BankTimeZone,
    client: reqwest::Client,
    limits: Limits,
    random: ThreadRandom,
    /// `PASSWD` of every request, when the connection has a password.
    password: Option<crypto::SecretString>,
    /// Request signatures and answer verification, when configured.
    signing: Option<CnXmlSigning>,
    /// Decides which bank certificates are valid.
    clock: std::sync::Arc<dyn domain::Clock>,
}

impl fmt::Debug for CnXmlConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CnXmlConnector")
            .field("bank_id", &self.settings.bank_id)
            .field("connection_id", &self.settings.connection_id)
            .field("endpoint", &self.endpoint.as_str())
            .field("signed", &self.signing.is_some())
            .finish_non_exhaustive()
    }
}

impl CnXmlConnector {
    /// Checks the settings and builds the HTTP client once; every option that
    /// matters is set explicitly rather than left to reqwest's defaults.
    pub fn new(settings: ConnectionSettings) -> Result<CnXmlConnector, ConnectError> {
        CnXmlConnector::with_options(settings, CnXmlOptions::default())
    }

    /// As [`CnXmlConnector::new`], with a password and signing
    /// ([`CnXmlOptions`]).
    pub fn with_options(
        settings: ConnectionSettings,
        options: CnXmlOptions,
    ) -> Result<CnXmlConnector, ConnectError> {
        let invalid = |message: String| ConnectError {
            connection: settings.connection_id.clone(),
            message,
        };
        let endpoint = reqwest::Url::parse(&settings.endpoint).map_err(|e| {
            invalid(format!(
                "endpoint is not a URL ({e}); expected e.g. http://127.0.0.1:8701/"
            ))
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "endpoint scheme is {:?}; expected http or https",
                endpoint.scheme()
            )));
        }
        if settings.login.is_empty() {
            return Err(invalid(
                "login is empty; expected the enterprise user name at the bank".into(),
            ));
        }
        transport::check_limits(&settings).map_err(invalid)?;
        if !(1..=MAX_ACCOUNTS_PER_BALANCE_QUERY).contains(&settings.max_accounts_per_query) {
            return Err(invalid(format!(
                "max_accounts_per_query is {}; expected 1..={MAX_ACCOUNTS_PER_BALANCE_QUERY}, the family's limit",
                settings.max_accounts_per_query
            )));
        }
        let time_zone = BankTimeZone::parse(settings.time_zone.name())
            .map_err(|e| invalid(format!("time zone: {e}")))?;
        // Front machines speak HTTP/1.1; the shared builder never
        // negotiates anything else.
        let client = transport::client_builder(&settings)
            .build()
            .map_err(|e| invalid(format!("HTTP client could not be built: {e}")))?;
        let limits = Limits {
            max_bytes: settings.max_response_bytes,
            ..Limits::default()
        };
        if options
            .password
            .as_ref()
            .is_some_and(crypto::SecretString::is_empty)
        {
            return Err(invalid(
                "password is empty; expected the login's password at the bank, or none".into(),
            ));
        }
        Ok(CnXmlConnector {
            settings,
            endpoint,
            time_zone,
            client,
            limits,
            random: ThreadRandom,
            password: options.password,
            signing: options.signing,
            clock: options.clock,
        })
    }

    fn bank(&self) -> String {
        self.settings.bank_id.clone()
    }

    fn protocol(&self, reason: String) -> BankError {
        transport::protocol(&self.settings.bank_id, reason)
    }

    /// A fresh request serial: `R` and 16 upper-case hex digits.
    fn new_serial(&self) -> String {
        format!(
            "R{:0width$X}",
            self.random.next_u64(),
            width = SERIAL_HEX_DIGITS
        )
    }

    /// Sends one packet and returns the bank's accepted answer (`RETCODE`
    /// `0`), with metrics and a trace span around it.
    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id, function = function))]
    async fn call(&self, function: &'static str, request: Packet) -> Result<Packet, BankError> {
        let result = async {
            let answer = self.exchange(function, request).await?;
            self.accepted(answer)
        };
        self.observed(function, result).await
    }

    /// Counts and times one call and logs its outcome.
    async fn observed<T>(
        &self,
        function: &'static str,
        call: impl std::future::Future<Output = Result<T, BankError>>,
    ) -> Result<T, BankError> {
        transport::observed(
            &self.settings.bank_id,
            function,
            crate::exchange::Charset::Gb18030,
            call,
        )
        .await
    }

    /// The request-level status of an answer, for reads: `0` passes,
    /// `SYSTEM_BUSY` was refused before anything was done, any other code is
    /// the bank's rejection of the request.
    fn accepted(&self, answer: Packet) -> Result<Packet, BankError> {
        match answer.head.ret_code.as_deref() {
            Some(RET_OK) => Ok(answer),
            Some(RET_SYSTEM_BUSY) => Err(BankError::NotProcessed {
                bank: self.bank(),
                reason: format!(
                    "front machine busy: {}",
                    answer.head.ret_msg.as_deref().unwrap_or_default()
                ),
            }),
            Some(code) => Err(BankError::Rejected {
                bank: self.bank(),
                code: code.to_string(),
                message: answer.head.ret_msg.clone().unwrap_or_default(),
            }),
            None => Err(self.protocol("answer has no RETCODE; expected a request status".into())),
        }
    }

    /// Sends one packet and returns the answer packet, whatever its
    /// `RETCODE`, once it is well-formed and echoes our function and serial.
    async fn exchange(
        &self,
        function: &'static str,
        mut request: Packet,
    ) -> Result<Packet, BankError> {
        let serial = request.head.serial.clone();
        request.head.password = self
            .password
            .as_ref()
            .map(|password| password.expose_secret().to_owned());
        let body = encode(&request).map_err(|e| BankError::NotProcessed {
            bank: self.bank(),
            reason: format!("{function} request cannot be encoded as GBK: {e}"),
        })?;
        drop(request);
        let signature = match &self.signing {
            None => None,
            Some(signing) => {
                let not_processed = |reason: String| BankError::NotProcessed {
                    bank: self.bank(),
                    reason: format!("{function} not sent: {reason}"),
                };
                signing
                    .check_certificates_valid(self.now())
                    .map_err(not_processed)?;
                Some(signing.sign(&body).map_err(not_processed)?)
            }
        };
        crate::exchange::note_request(&body);
        let mut post = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE);
        if let Some(signature) = signature {
            post = post.header(formats::cn_xml::SIGNATURE_HEADER, signature);
        }
        let response = post
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, "sending the request"))?;

        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(BankError::OutcomeUnknown {
                bank: self.bank(),
                cause: UnknownCause::HttpStatus(status.as_u16()),
                reason: format!("front machine answered HTTP {status}; expected 200 with a packet"),
            });
        }
        let signature = response
            .headers()
            .get(formats::cn_xml::SIGNATURE_HEADER)
            .map(|value| value.as_bytes().to_vec());
        let bytes = self.read_capped(response).await?;
        crate::exchange::note_response(&bytes);
        if let Some(signing) = &self.signing {
            signing
                .verify(&bytes, signature.as_deref(), self.now())
                .map_err(|reason| self.signature_failure(function, reason))?;
        }
        let answer = decode(&bytes, &self.limits).map_err(|e| {
            self.protocol(format!("answer is not a well-formed cn-xml packet: {e}"))
        })?;

        if answer.head.func != function {
            return Err(self.protocol(format!(
                "answer echoes function {:?}; expected {function}",
                answer.head.func
            )));
        }
        if answer.head.serial != serial {
            return Err(self.protocol(
                "answer echoes another request serial; expected the serial we sent".into(),
            ));
        }
        Ok(answer)
    }

    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::from(self.clock.now())
    }

    /// An answer whose signature is missing or wrong: nothing in it is
    /// believed, and the request may have been acted on. Raised as an
    /// alert (the metric and an error log naming the bank, never a key).
    fn signature_failure(&self, function: &'static str, reason: String) -> BankError {
        metrics::counter!("bank_signature_failures_total",
            "bank" => self.settings.bank_id.clone())
        .increment(1);
        tracing::error!(bank = %self.settings.bank_id, function, %reason,
            "bank answer signature check failed; the answer is not used");
        BankError::OutcomeUnknown {
            bank: self.bank(),
            cause: UnknownCause::Signature,
            reason: format!("{function} answer refused: {reason}"),
        }
    }

    /// Reads the body chunk by chunk so that an oversized answer is refused
    /// without being held in memory.
    async fn read_capped(&self, response: reqwest::Response) -> Result<Vec<u8>, BankError> {
        transport::read_capped(
            &self.settings.bank_id,
            response,
            self.settings.max_response_bytes,
            |e| self.transport_error(e, "reading the answer"),
        )
        .await
    }

    fn transport_error(&self, error: &reqwest::Error, during: &str) -> BankError {
        transport::transport_error(
            &self.settings.bank_id,
            error,
            during,
            "could not connect to the front machine",
            self.settings.request_timeout,
        )
    }

    /// The family's number of a currency we are asked about; a currency
    /// without one is refused before anything is sent.
    fn currency_number(&self, currency: Currency) -> Result<&'static str, BankError> {
        currency_code(currency).ok_or_else(|| BankError::NotProcessed {
            bank: self.bank(),
            reason: format!(
                "currency {} has no cn-xml currency number; expected one of CNY, HKD, USD, EUR, GBP, JPY",
                currency.code()
            ),
        })
    }

    /// The request items of a whole query, checked before anything is sent
    /// so that a bad currency late in the list does not waste earlier calls.
    fn balance_items(&self, accounts: &[BalanceQuery]) -> Result<Vec<BalanceQueryItem>, BankError> {
        accounts
            .iter()
            .map(|query| {
                let code = self.currency_number(query.currency)?;
                Ok(BalanceQueryItem {
                    acc_no: query.number.as_str().to_string(),
                    currency_code: Some(code.to_string()),
                })
            })
            .collect()
    }

    async fn balances_chunk(
        &self,
        chunk: &[BalanceQuery],
        items: &[BalanceQueryItem],
    ) -> Result<Vec<BalanceOutcome>, BankError> {
        let request = messages::balance_request(&self.settings.login, &self.new_serial(), items);
        let answer = self.call(FUNC_QUERY_BALANCE, request).await?;
        let response = messages::parse_balances(&answer)
            .map_err(|e| self.protocol(format!("balance answer: {e}")))?;
        self.match_balances(chunk, response.records)
    }

    /// Pairs each asked account with its record. The bank may answer in any
    /// order; an account asked twice gets its records in order.
    fn match_balances(
        &self,
        chunk: &[BalanceQuery],
        records: Vec<BalanceRecord>,
    ) -> Result<Vec<BalanceOutcome>, BankError> {
        let mut by_account: HashMap<String, VecDeque<BalanceRecord>> = HashMap::new();
        for record in records {
            by_account
                .entry(record.acc_no.clone())
                .or_default()
                .push_back(record);
        }
        let mut outcomes = Vec::with_capacity(chunk.len());
        for query in chunk {
            let record = by_account
                .get_mut(query.number.as_str())
                .and_then(VecDeque::pop_front)
                .ok_or_else(|| {
                    self.protocol(format!(
                        "balance answer has no record for account {}; expected one per account asked",
                        mask_account(query.number.as_str())
                    ))
                })?;
            outcomes.push(self.balance_outcome(query, &record)?);
        }
        if let Some((acc_no, _)) = by_account.iter().find(|(_, left)| !left.is_empty()) {
            return Err(self.protocol(format!(
                "balance answer has a record for account {} that was not asked for",
                mask_account(acc_no)
            )));
        }
        Ok(outcomes)
    }

    fn balance_outcome(
        &self,
        query: &BalanceQuery,
        record: &BalanceRecord,
    ) -> Result<BalanceOutcome, BankError> {
        let masked = mask_account(query.number.as_str());
        match record.rec_status.as_str() {
            REC_SUCCESS => {}
            REC_FAILED => {
                return Ok(BalanceOutcome::Failed {
                    number: query.number.clone(),
                    currency: query.currency,
                    code: RECORD_FAILED.to_string(),
                    message: record.rec_msg.clone(),
                })
            }
            other => {
                return Err(self.protocol(format!(
                    "RECSTS of account {masked} is {other:?}; expected S or F"
                )))
            }
        }
        let currency = currency_of_code(&record.currency_code).ok_or_else(|| {
            self.protocol(format!(
                "CCYNBR of account {masked} is {:?}; expected a known currency number",
                record.currency_code
            ))
        })?;
        if currency != query.currency {
            return Err(self.protocol(format!(
                "account {masked} answered in {}; expected {}",
                currency.code(),
                query.currency.code()
            )));
        }
        let amount = |field: &str, text: &str| {
            Money::parse_bank_decimal(text, currency)
                .map_err(|e| self.protocol(format!("{field} of account {masked}: {e}")))
        };
        let booked = amount("ONLBAL", &record.booked)?;
        let available = amount("AVLBAL", &record.available)?;
        let date = BusinessDate::parse_compact(&record.date)
            .map_err(|e| self.protocol(format!("BALDAT of account {masked}: {e}")))?;
        let as_of = bank_local_to_utc(date, &record.time, self.time_zone)
            .map_err(|e| self.protocol(format!("BALTIM of account {masked}: {e}")))?;
        Ok(BalanceOutcome::Ok(BankBalance {
            number: query.number.clone(),
            currency,
            booked,
            available,
            as_of,
        }))
    }

    /// `from..=to` in chunks the bank accepts, in order; refuses a range
    /// that is backwards or longer than [`MAX_TRANSACTION_RANGE_DAYS`].
    fn history_chunks(
        &self,
        query: &TransactionQuery,
    ) -> Result<Vec<(BusinessDate, BusinessDate)>, BankError> {
        query.checked_days(&self.settings.bank_id, MAX_TRANSACTION_RANGE_DAYS)?;
        let mut chunks = Vec::new();
        let mut start = query.from;
        loop {
            let end = start
                .add_days(HISTORY_CHUNK_DAYS - 1)
                .map_or(query.to, |end| end.min(query.to));
            chunks.push((start, end));
            if end >= query.to {
                return Ok(chunks);
            }
            // end < to, so the next day is a valid date.
            match end.add_days(1) {
                Ok(next) => start = next,
                Err(_) => return Ok(chunks),
            }
        }
    }

    /// Follows one chunk's pages to the last, appending its entries.
    async fn history_chunk(
        &self,
        query: &TransactionQuery,
        currency_number: &str,
        (from, to): (BusinessDate, BusinessDate),
        paging: &mut Paging,
        entries: &mut Vec<BankEntry>,
    ) -> Result<(), BankError> {
        let masked = query.number.masked();
        let mut cont_key = String::new();
        let mut keys_seen: HashSet<String> = HashSet::new();
        loop {
            if paging.pages >= MAX_HISTORY_PAGES_PER_CALL {
                return Err(self.protocol(format!(
                    "history of account {masked} did not end after {MAX_HISTORY_PAGES_PER_CALL} pages (MAX_HISTORY_PAGES_PER_CALL); expected an empty CONTKEY on the last page"
                )));
            }
            paging.pages += 1;
            let page_number = paging.pages;
            let request = messages::history_request(
                &self.settings.login,
                &self.new_serial(),
                &HistoryQuery {
                    acc_no: query.number.as_str().to_string(),
                    currency_code: currency_number.to_string(),
                    from: from.to_compact(),
                    to: to.to_compact(),
                    cont_key: cont_key.clone(),
                },
            );
            let answer = self.call(FUNC_QUERY_HISTORY, request).await?;
            let page = messages::parse_history(&answer)
                .map_err(|e| self.protocol(format!("history answer page {page_number}: {e}")))?;
            for (position, record) in page.response.records.iter().enumerate() {
                let at = format!("TRANS[{}] of history page {page_number}", position + 1);
                let entry = self.bank_entry(query, (from, to), record, &at)?;
                if let Some(serial) = &entry.bank_transaction_id {
                    let key = (entry.status, entry.booking_date, serial.clone());
                    if !paging.serials.insert(key) {
                        return Err(self.protocol(format!(
                            "{at}: serial {} booked on {} appears twice for account {masked}; expected serials unique per account and booking date (a repeated page?)",
                            quoted(serial),
                            entry.booking_date
                        )));
                    }
                }
                entries.push(entry);
            }
            if page.cont_key.is_empty() {
                return Ok(());
            }
            if !keys_seen.insert(page.cont_key.clone()) {
                return Err(self.protocol(format!(
                    "history page {page_number} of account {masked} hands out a CONTKEY it already sent; expected a new key per page (following it would loop)"
                )));
            }
            cont_key = page.cont_key;
        }
    }

    /// One `TRANS` record as a [`BankEntry`]; `at` names it in errors.
    fn bank_entry(
        &self,
        query: &TransactionQuery,
        (from, to): (BusinessDate, BusinessDate),
        record: &HistoryRecord,
        at: &str,
    ) -> Result<BankEntry, BankError> {
        let currency = query.currency;
        let date = |field: &str, text: &str| {
            BusinessDate::parse_compact(text)
                .map_err(|e| self.protocol(format!("{at}: {field}: {e}")))
        };
        let money = |field: &str, text: &str| {
            Money::parse_bank_decimal(text, currency)
                .map_err(|e| self.protocol(format!("{at}: {field}: {e}")))
        };
        let direction = match record.direction.as_str() {
            DIRECTION_CREDIT => Direction::Credit,
            DIRECTION_DEBIT => Direction::Debit,
            other => {
                return Err(self.protocol(format!(
                    "{at}: DIRECT is {}; expected C (credit) or D (debit)",
                    quoted(other)
                )))
            }
        };
        let status = match record.status.as_str() {
            ENTRY_BOOKED => EntryStatus::Booked,
            ENTRY_PENDING => EntryStatus::Pending,
            other => {
                return Err(self.protocol(format!(
                    "{at}: TRSSTS is {}; expected B (booked) or P (pending)",
                    quoted(other)
                )))
            }
        };
        let amount = money("TRSAMT", &record.amount)?;
        if !amount.is_positive() {
            return Err(self.protocol(format!(
                "{at}: TRSAMT is {amount}; expected a positive amount (DIRECT carries the sign)"
            )));
        }
        let booking_date = date("BOKDAT", &record.booking_date)?;
        if booking_date < from || booking_date > to {
            return Err(self.protocol(format!(
                "{at}: BOKDAT {booking_date} is outside the asked range {from} to {to}"
            )));
        }
        let value_date = date("VALDAT", &record.value_date)?;
        // A pending entry is not in the balance yet, so a running balance on
        // it would mean nothing; some front ends repeat the current balance
        // there, which is ignored rather than believed.
        let running_balance = match status {
            EntryStatus::Booked if !record.balance.is_empty() => {
                Some(money("BALAMT", &record.balance)?)
            }
            _ => None,
        };
        let text = |value: &str| Some(value.to_string()).filter(|v| !v.is_empty());
        Ok(BankEntry {
            direction,
            amount,
            booking_date,
            value_date,
            status,
            counterparty_name: text(&record.ctp_name),
            counterparty_account: text(&record.ctp_account),
            counterparty_bank: text(&record.ctp_bank),
            remittance: text(&record.narrative),
            bank_transaction_id: text(&record.serial),
            end_to_end_id: text(&record.e2e_ref),
            running_balance,
        })
    }

    /// The day balances of one chunk; `seen` catches a day reported twice.
    async fn day_balances_chunk(
        &self,
        query: &TransactionQuery,
        currency_number: &str,
        (from, to): (BusinessDate, BusinessDate),
        seen: &mut HashSet<BusinessDate>,
    ) -> Result<Vec<DayBalance>, BankError> {
        let request = messages::day_balance_request(
            &self.settings.login,
            &self.new_serial(),
            &DayBalanceQuery {
                acc_no: query.number.as_str().to_string(),
                currency_code: currency_number.to_string(),
                from: from.to_compact(),
                to: to.to_compact(),
            },
        );
        let answer = self.call(FUNC_QUERY_DAY_BALANCE, request).await?;
        let response = messages::parse_day_balances(&answer)
            .map_err(|e| self.protocol(format!("day balance answer: {e}")))?;
        response
            .records
            .iter()
            .enumerate()
            .map(|(position, record)| {
                let at = format!("DAYBAL[{}]", position + 1);
                let day = self.day_balance(query.currency, record, &at)?;
                if day.date < from || day.date > to {
                    return Err(self.protocol(format!(
                        "{at}: BALDAT {} is outside the asked range {from} to {to}",
                        day.date
                    )));
                }
                if !seen.insert(day.date) {
                    return Err(self.protocol(format!(
                        "{at}: day {} is reported twice; expected one balance per day",
                        day.date
                    )));
                }
                Ok(day)
            })
            .collect()
    }

    fn day_balance(
        &self,
        currency: Currency,
        record: &DayBalanceRecord,
        at: &str,
    ) -> Result<DayBalance, BankError> {
        let money = |field: &str, text: &str| {
            Money::parse_bank_decimal(text, currency)
                .map_err(|e| self.protocol(format!("{at}: {field}: {e}")))
        };
        Ok(DayBalance {
            date: BusinessDate::parse_compact(&record.date)
                .map_err(|e| self.protocol(format!("{at}: BALDAT: {e}")))?,
            opening: money("OPNBAL", &record.opening)?,
            closing: money("CLSBAL", &record.closing)?,
        })
    }

    fn account_info(
        &self,
        position: usize,
        record: &AccountRecord,
    ) -> Result<BankAccountInfo, BankError> {
        let number = AccountNumber::parse(&record.acc_no)
            .map_err(|e| self.protocol(format!("ACCNO of account record {position}: {e}")))?;
        let masked = mask_account(&record.acc_no);
        let currency = currency_of_code(&record.currency_code).ok_or_else(|| {
            self.protocol(format!(
                "CCYNBR of account {masked} is {:?}; expected a known currency number",
                record.currency_code
            ))
        })?;
        let active = match record.status.as_str() {
            "A" => true,
            "C" => false,
            other => {
                return Err(self.protocol(format!(
                    "ACCSTS of account {masked} is {other:?}; expected A (active) or C (closed)"
                )))
            }
        };
        Ok(BankAccountInfo {
            number,
            name: record.name.clone(),
            currency,
            branch: Some(record.branch.clone()).filter(|b| !b.is_empty()),
            active,
        })
    }
}

// ---------------------------------------------------------------------------
// payments
// ---------------------------------------------------------------------------

/// `ERRCOD`-less failure codes, one per failing result flag, so that a
/// failure always carries a code.
const FLAG_CODES: &[(&str, &str, &str)] = &[
    (RTNFLG_FAILED, "BANK_FAILED", "银行处理失败"),
    (RTNFLG_REJECTED, "BANK_REJECTED", "银行拒绝"),
    (RTNFLG_EXPIRED, "BANK_EXPIRED", "指令过期"),
    (RTNFLG_CANCELLED, "BANK_CANCELLED", "指令已撤销"),
    (RTNFLG_RETURNED, "BANK_RETURNED", "退票"),
];

/// Maps the family's two-level status onto [`BankPaymentStatus`]
/// (DESIGN.md, "Payment state machine"): request status `ACC` or `AUT` is
/// `Processing` whatever its flag, any other than those and `FIN` cannot be
/// believed; `FIN` with `S` is `Settled`, with
/// `F`/`B`/`E`/`C` `Failed` with the bank's code and text (a code made from
/// the flag when `ERRCOD` is empty), with `R` `Returned`. `FIN` with any
/// other flag, an empty one included, cannot be believed: the error is the
/// reason.
pub fn map_payment_result(result: &PaymentResult) -> Result<BankPaymentStatus, String> {
    match result.request_status.as_str() {
        REQSTS_FINISHED => {}
        REQSTS_ACCEPTED | REQSTS_WAITING => return Ok(BankPaymentStatus::Processing),
        other => {
            return Err(format!(
                "REQSTS {}; expected ACC, AUT or FIN",
                quoted(other)
            ))
        }
    }
    let flag = result.result_flag.as_str();
    if flag == RTNFLG_SUCCESS {
        return Ok(BankPaymentStatus::Settled);
    }
    let Some((_, default_code, default_text)) = FLAG_CODES.iter().find(|(f, _, _)| *f == flag)
    else {
        return Err(format!(
            "REQSTS is FIN with RTNFLG {}; expected one of S, F, R, B, E, C",
            quoted(flag)
        ));
    };
    let code = if result.error_code.is_empty() {
        (*default_code).to_string()
    } else {
        result.error_code.clone()
    };
    let message = if result.error_text.is_empty() {
        (*default_text).to_string()
    } else {
        result.error_text.clone()
    };
    Ok(if flag == RTNFLG_RETURNED {
        BankPaymentStatus::Returned { code, message }
    } else {
        BankPaymentStatus::Failed { code, message }
    })
}

/// The bank's raw status as kept in a payment's history: `ERRCOD` when the
/// bank gave one, else `REQSTS` and `RTNFLG`, e.g. `FIN/S` or `ACC`.
fn raw_code(result: &PaymentResult) -> String {
    if !result.error_code.is_empty() {
        result.error_code.clone()
    } else if result.result_flag.is_empty() {
        result.request_status.clone()
    } else {
        format!("{}/{}", result.request_status, result.result_flag)
    }
}

impl CnXmlConnector {
    /// The instruction as the family's text, checked against the bank's
    /// field lengths (GBK bytes) and charset; a refusal is `NotProcessed`
    /// because nothing was sent.
    fn payment_request(&self, payment: &PaymentInstruction) -> Result<PaymentRequest, BankError> {
        let request = self.build_payment_request(payment)?;
        check_payment(&request).map_err(|e| BankError::NotProcessed {
            bank: self.bank(),
            reason: format!("payment {} not sent: {e}", payment.reference),
        })?;
        Ok(request)
    }

    /// The instruction as the family's text, before the length and charset check.
    fn build_payment_request(
        &self,
        payment: &PaymentInstruction,
    ) -> Result<PaymentRequest, BankError> {
        let refused = |reason: String| BankError::NotProcessed {
            bank: self.bank(),
            reason: format!("payment {} not sent: {reason}", payment.reference),
        };
        let currency_code = self.currency_number(payment.amount.currency())?;
        if !payment.amount.is_positive() {
            return Err(refused(format!(
                "amount is {}; expected a positive amount",
                payment.amount
            )));
        }
        let request = PaymentRequest {
            reference: payment.reference.as_str().to_string(),
            debtor_account: payment.debtor_account.as_str().to_string(),
            currency_code: currency_code.to_string(),
            amount: payment.amount.to_decimal_string(),
            creditor_account: payment.creditor_account.clone(),
            creditor_name: payment.creditor_name.clone(),
            creditor_bank_code: payment
                .creditor_bank_code
                .as_ref()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            creditor_bic: payment
                .creditor_bic
                .as_ref()
                .map(|b| b.as_str().to_string())
                .unwrap_or_default(),
            creditor_bank_name: payment.creditor_bank_name.clone().unwrap_or_default(),
            creditor_type: match payment.creditor_type {
                CreditorType::Corporate => CRTTYP_CORPORATE,
                CreditorType::Personal => CRTTYP_PERSONAL,
            }
            .to_string(),
            remittance: payment.remittance.clone(),
            purpose: payment.purpose.clone().unwrap_or_default(),
            urgent: match payment.urgency {
                Urgency::Urgent => URGENT_YES,
                Urgency::Normal => URGENT_NO,
            }
            .to_string(),
            execution_date: payment.requested_execution_date.to_compact(),
        };
        Ok(request)
    }

    /// The request-level verdict on a submission (a payment or a batch
    /// chunk, named by `what` in errors), classified strictly: only a clean
    /// packet that says "not taken" (`SYSTEM_BUSY`, `LOGIN_FAILED`,
    /// `SIGNATURE_INVALID`) is
    /// `NotProcessed`, the family's documented refusals (`NO_PERMISSION`,
    /// `BAD_REQUEST`) `Rejected`; `SYSTEM_ERROR`, `DUPLICATE_REFERENCE` and
    /// any code this connector does not know are `OutcomeUnknown`.
    fn submission_taken(&self, what: &str, ret_code: &str, ret_msg: &str) -> Result<(), BankError> {
        match ret_code {
            RET_OK => Ok(()),
            RET_SYSTEM_BUSY => Err(BankError::NotProcessed {
                bank: self.bank(),
                reason: format!("front machine busy: {ret_msg}"),
            }),
            RET_DUPLICATE_REFERENCE | RET_SYSTEM_ERROR => Err(BankError::OutcomeUnknown {
                bank: self.bank(),
                cause: UnknownCause::Protocol,
                reason: format!(
                    "{what} answered RETCODE {ret_code}: {}; query the reference before anything else",
                    quoted(ret_msg)
                ),
            }),
            // The front machine refused the login before looking at the
            // submission: nothing was processed.
            RET_LOGIN_FAILED => Err(BankError::NotProcessed {
                bank: self.bank(),
                reason: format!("login refused: {ret_msg}"),
            }),
            // So did a request whose signature the bank refused.
            RET_SIGNATURE_INVALID => Err(BankError::NotProcessed {
                bank: self.bank(),
                reason: format!(
                    "the bank refused the request's signature: {ret_msg}; check the connection's signing key and the certificate the bank holds"
                ),
            }),
            // The family's documented refusals of the request itself: final,
            // the submission was not taken.
            RET_NO_PERMISSION | RET_BAD_REQUEST => Err(BankError::Rejected {
                bank: self.bank(),
                code: ret_code.to_string(),
                message: ret_msg.to_string(),
            }),
            // A code this connector does not know cannot be read as a
            // rejection: the bank may have taken the submission. Ask.
            code => Err(BankError::OutcomeUnknown {
                bank: self.bank(),
                cause: UnknownCause::Protocol,
                reason: format!(
                    "{what} answered an undocumented RETCODE {}: {}; query the reference",
                    quoted(code),
                    quoted(ret_msg)
                ),
            }),
        }
    }

    /// One `SubmitPayment` exchange, classified strictly: only a clean
    /// packet that says "not taken" (`SYSTEM_BUSY`) is `NotProcessed`, a
    /// packet with another refusal code `Rejected`; `SYSTEM_ERROR` and
    /// `DUPLICATE_REFERENCE` and everything without a clean answer are
    /// `OutcomeUnknown`.
    async fn submit_exchange(
        &self,
        payment: &PaymentInstruction,
        request: Packet,
    ) -> Result<SubmitReceipt, BankError> {
        let answer = self.exchange(FUNC_SUBMIT_PAYMENT, request).await?;
        let response = messages::parse_submit_payment(&answer)
            .map_err(|e| self.protocol(format!("payment answer: {e}")))?;
        self.submission_taken(
            &format!("payment {}", payment.reference),
            &response.ret_code,
            &response.ret_msg,
        )?;
        let [result] = response.records.as_slice() else {
            return Err(self.protocol(format!(
                "accepted payment answer has {} RESULT blocks; expected exactly one",
                response.records.len()
            )));
        };
        if result.reference != payment.reference.as_str() {
            return Err(self.protocol(format!(
                "payment answer is for reference {}; expected {}",
                quoted(&result.reference),
                payment.reference
            )));
        }
        let status = map_payment_result(result)
            .map_err(|reason| self.protocol(format!("payment answer: {reason}")))?;
        if let BankPaymentStatus::Failed { code, message } = status {
            return Err(BankError::Rejected {
                bank: self.bank(),
                code,
                message,
            });
        }
        Ok(SubmitReceipt {
            status,
            bank_payment_id: Some(result.bank_ref.clone()).filter(|r| !r.is_empty()),
            bank_code: raw_code(result),
            bank_message: result.error_text.clone(),
        })
    }

    /// One `QueryPayment` of at most [`MAX_REFERENCES_PER_QUERY`]
    /// references; answers in the order asked, whatever the bank's order.
    async fn status_chunk(
        &self,
        references: &[BankReference],
    ) -> Result<Vec<StatusAnswer>, BankError> {
        let asked: Vec<String> = references.iter().map(|r| r.as_str().to_string()).collect();
        let request =
            messages::query_payment_request(&self.settings.login, &self.new_serial(), &asked);
        let answer = self.call(FUNC_QUERY_PAYMENT, request).await?;
        let response = messages::parse_query_payment(&answer)
            .map_err(|e| self.protocol(format!("payment status answer: {e}")))?;
        let mut by_reference: HashMap<String, VecDeque<PaymentResult>> = HashMap::new();
        for result in response.records {
            by_reference
                .entry(result.reference.clone())
                .or_default()
                .push_back(result);
        }
        let mut answers = Vec::with_capacity(asked.len());
        for reference in &asked {
            let result = by_reference
                .get_mut(reference)
                .and_then(VecDeque::pop_front)
                .ok_or_else(|| {
                    self.protocol(format!(
                        "payment status answer has no RESULT for reference {reference}; expected one per reference asked"
                    ))
                })?;
            if result.is_not_found() {
                answers.push(StatusAnswer::NotFound);
                continue;
            }
            let status = map_payment_result(&result).map_err(|reason| {
                self.protocol(format!("status of reference {reference}: {reason}"))
            })?;
            answers.push(StatusAnswer::Found {
                status,
                bank_payment_id: Some(result.bank_ref.clone()).filter(|r| !r.is_empty()),
                bank_code: raw_code(&result),
                bank_message: result.error_text.clone(),
            });
        }
        if let Some((reference, _)) = by_reference.iter().find(|(_, left)| !left.is_empty()) {
            return Err(self.protocol(format!(
                "payment status answer has a RESULT for reference {} that was not asked for",
                quoted(reference)
            )));
        }
        Ok(answers)
    }
}

/// What one [`BankConnector::transactions`] call has paged so far.
#[derive(Default)]
struct Paging {
    pages: usize,
    /// (status, booking date, serial) of every entry with a serial.
    serials: HashSet<(EntryStatus, BusinessDate, String)>,
}

#[async_trait]
impl BankConnector for CnXmlConnector {
    fn family(&self) -> Family {
        Family::CnXml
    }

    fn capabilities(&self) -> &'static [Capability] {
        &[
            Capability::Balances,
            Capability::Transactions,
            Capability::SinglePayment,
            Capability::BatchPayment,
            Capability::StatusByReference,
            Capability::SignedMessages,
        ]
    }

    async fn list_accounts(&self) -> Result<Vec<BankAccountInfo>, BankError> {
        let request = messages::list_accounts_request(&self.settings.login, &self.new_serial());
        let answer = self.call(FUNC_LIST_ACCOUNTS, request).await?;
        let response = messages::parse_list_accounts(&answer)
            .map_err(|e| self.protocol(format!("account list answer: {e}")))?;
        response
            .records
            .iter()
            .enumerate()
            .map(|(position, record)| self.account_info(position, record))
            .collect()
    }

    async fn balances(&self, accounts: &[BalanceQuery]) -> Result<Vec<BalanceOutcome>, BankError> {
        let mut outcomes = Vec::with_capacity(accounts.len());
        // Sequential on purpose: per-bank concurrency is the gateway's to
        // spend, and a front machine counts each request against its limits.
        let items = self.balance_items(accounts)?;
        let size = self.settings.max_accounts_per_query;
        for (chunk, chunk_items) in accounts.chunks(size).zip(items.chunks(size)) {
            outcomes.extend(self.balances_chunk(chunk, chunk_items).await?);
        }
        Ok(outcomes)
    }

    fn dedupe_policy(&self) -> DedupeKeyPolicy {
        // TRSSEQ is unique per account and booking date only.
        DedupeKeyPolicy::BankIdPerAccountAndDate
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id,
        reference = %payment.reference, debtor = %payment.debtor_account.masked()))]
    fn check_payment(&self, payment: &PaymentInstruction) -> Result<(), Vec<crate::IntakeProblem>> {
        let request = self.build_payment_request(payment).map_err(|e| {
            vec![crate::IntakeProblem {
                field: "currency",
                detail: e.to_string(),
            }]
        })?;
        let mut problems = Vec::new();
        for (wire, text, api) in [
            (FIELD_CRTNAM, &request.creditor_name, "creditor.name"),
            (FIELD_CRTACC, &request.creditor_account, "creditor.account"),
            (
                FIELD_CRTBNM,
                &request.creditor_bank_name,
                "creditor.bank_name",
            ),
            (FIELD_NUSAGE, &request.remittance, "remittance"),
            (FIELD_BUSNAR, &request.purpose, "purpose"),
            (FIELD_DBTACC, &request.debtor_account, "debtor_account_id"),
            (FIELD_YURREF, &request.reference, "business_reference"),
        ] {
            if text.is_empty() {
                continue;
            }
            if let Err(e) = check_field(wire, text) {
                problems.push(crate::IntakeProblem {
                    field: api,
                    detail: format!("{e} (the bank's field {wire})"),
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    async fn submit_payment(
        &self,
        payment: &PaymentInstruction,
    ) -> Result<SubmitReceipt, BankError> {
        // Checked before anything is sent: a refusal here is provably
        // NotProcessed.
        let fields = self.payment_request(payment)?;
        let request =
            messages::submit_payment_request(&self.settings.login, &self.new_serial(), &fields);
        self.observed(FUNC_SUBMIT_PAYMENT, self.submit_exchange(payment, request))
            .await
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id,
        debtor = %debtor_account.masked(), references = references.len()))]
    async fn payment_status(
        &self,
        debtor_account: &AccountNumber,
        references: &[BankReference],
    ) -> Result<Vec<StatusAnswer>, BankError> {
        // The family queries by reference alone; the debtor account only
        // names the payments in logs. Sequential, like every other read.
        let mut answers = Vec::with_capacity(references.len());
        for chunk in references.chunks(MAX_REFERENCES_PER_QUERY) {
            answers.extend(self.status_chunk(chunk).await?);
        }
        Ok(answers)
    }

    fn max_batch_items(&self) -> usize {
        MAX_BATCH_ITEMS
    }

    fn check_batch_item(
        &self,
        kind: BatchKind,
        item: &BatchItemInstruction,
    ) -> Result<(), Vec<crate::IntakeProblem>> {
        self.check_item(kind, item)
    }

    async fn submit_batch(&self, batch: &BatchInstruction) -> Result<BatchReceipt, BankError> {
        self.submit_batch_chunk(batch).await
    }

    async fn batch_status(
        &self,
        debtor_account: &AccountNumber,
        reference: &BankReference,
    ) -> Result<BatchStatusAnswer, BankError> {
        self.batch_status_of(debtor_account, reference).await
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id,
        account = %query.number.masked(), from = %query.from, to = %query.to))]
    async fn transactions(&self, query: &TransactionQuery) -> Result<TransactionReport, BankError> {
        let currency_number = self.currency_number(query.currency)?;
        let chunks = self.history_chunks(query)?;
        let mut report = TransactionReport::default();
        // Sequential on purpose, like balances: pages must be read in order,
        // and per-bank concurrency is the gateway's to spend.
        let mut paging = Paging::default();
        for chunk in &chunks {
            self.history_chunk(
                query,
                currency_number,
                *chunk,
                &mut paging,
                &mut report.entries,
            )
            .await?;
        }
        let mut days_seen = HashSet::new();
        for chunk in &chunks {
            let days = self
                .day_balances_chunk(query, currency_number, *chunk, &mut days_seen)
                .await?;
            report.day_balances.extend(days);
        }
        tracing::debug!(
            chunks = chunks.len(),
            pages = paging.pages,
            entries = report.entries.len(),
            days = report.day_balances.len(),
            "transactions read"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn currency_table_goes_both_ways() {
        for (currency, code) in CURRENCY_CODES {
            assert_eq!(currency_code(*currency), Some(*code));
            assert_eq!(currency_of_code(code), Some(*currency));
        }
        assert_eq!(currency_of_code("99"), None);
        assert_eq!(currency_of_code(""), None);
    }

    fn test_connector() -> CnXmlConnector {
        CnXmlConnector::new(ConnectionSettings {
            bank_id: "unit".into(),
            connection_id: "unit-main".into(),
            endpoint: "http://127.0.0.1:9/".into(),
            login: "DEMO01".into(),
            time_zone: chrono_tz::Asia::Shanghai,
            connect_timeout: Duration::from_millis(100),
            request_timeout: Duration::from_millis(100),
            max_response_bytes: 1024,
            max_accounts_per_query: 50,
            max_idle_connections: 4,
            tls: None,
        })
        .unwrap()
    }

    fn date(text: &str) -> BusinessDate {
        BusinessDate::parse_compact(text).unwrap()
    }

    fn query(from: &str, to: &str) -> TransactionQuery {
        TransactionQuery {
            number: AccountNumber::parse("755900012310001").unwrap(),
            currency: Currency::CNY,
            from: date(from),
            to: date(to),
        }
    }

    fn record() -> HistoryRecord {
        HistoryRecord {
            serial: "000001".into(),
            booking_date: "20261127".into(),
            value_date: "20261126".into(),
            direction: "D".into(),
            amount: "8500.0000".into(),
            status: "B".into(),
            balance: "-80.00".into(),
            ctp_name: "张伟".into(),
            ctp_account: String::new(),
            ctp_bank: String::new(),
            narrative: "工资".into(),
            e2e_ref: String::new(),
        }
    }

    fn map(record: &HistoryRecord) -> Result<BankEntry, BankError> {
        let range = (date("20261120"), date("20261129"));
        test_connector().bank_entry(&query("20261120", "20261129"), range, record, "TRANS[1]")
    }

    fn assert_protocol(result: Result<BankEntry, BankError>, mentions: &str) {
        match result {
            Err(BankError::OutcomeUnknown {
                cause: UnknownCause::Protocol,
                reason,
                ..
            }) => assert!(reason.contains(mentions), "{reason}"),
            other => panic!("expected a protocol error mentioning {mentions}, got {other:?}"),
        }
    }

    #[test]
    fn a_record_maps_with_empty_text_as_none() {
        let entry = map(&record()).unwrap();
        assert_eq!(entry.direction, Direction::Debit);
        assert_eq!(entry.amount, Money::from_minor(850_000, Currency::CNY));
        assert_eq!(entry.booking_date, date("20261127"));
        assert_eq!(entry.value_date, date("20261126"));
        assert_eq!(entry.status, EntryStatus::Booked);
        assert_eq!(
            entry.running_balance,
            Some(Money::from_minor(-8_000, Currency::CNY))
        );
        assert_eq!(entry.counterparty_name.as_deref(), Some("张伟"));
        assert_eq!(entry.counterparty_account, None);
        assert_eq!(entry.end_to_end_id, None);
        assert_eq!(entry.bank_transaction_id.as_deref(), Some("000001"));
        let no_serial = HistoryRecord {
            serial: String::new(),
            balance: String::new(),
            ..record()
        };
        let entry = map(&no_serial).unwrap();
        assert_eq!(entry.bank_transaction_id, None);
        assert_eq!(entry.running_balance, None, "an empty BALAMT is no balance");
    }

    #[test]
    fn a_pending_record_has_no_running_balance_even_if_the_bank_writes_one() {
        let pending = HistoryRecord {
            status: "P".into(),
            ..record()
        };
        let entry = map(&pending).unwrap();
        assert_eq!(entry.status, EntryStatus::Pending);
        assert_eq!(entry.running_balance, None);
    }

    #[test]
    fn records_the_connector_cannot_believe_are_protocol_errors() {
        let cases = [
            (
                HistoryRecord {
                    direction: "X".into(),
                    ..record()
                },
                "DIRECT",
            ),
            (
                HistoryRecord {
                    status: "R".into(),
                    ..record()
                },
                "TRSSTS",
            ),
            (
                HistoryRecord {
                    amount: "0.00".into(),
                    ..record()
                },
                "positive",
            ),
            (
                HistoryRecord {
                    amount: "-5.00".into(),
                    ..record()
                },
                "positive",
            ),
            (
                HistoryRecord {
                    amount: "5.001".into(),
                    ..record()
                },
                "TRSAMT",
            ),
            (
                HistoryRecord {
                    amount: String::new(),
                    ..record()
                },
                "TRSAMT",
            ),
            (
                HistoryRecord {
                    booking_date: "2026-11-27".into(),
                    ..record()
                },
                "BOKDAT",
            ),
            (
                HistoryRecord {
                    booking_date: "20261119".into(),
                    ..record()
                },
                "outside",
            ),
            (
                HistoryRecord {
                    booking_date: "20261130".into(),
                    ..record()
                },
                "outside",
            ),
            (
                HistoryRecord {
                    value_date: "20261131".into(),
                    ..record()
                },
                "VALDAT",
            ),
            (
                HistoryRecord {
                    balance: "abc".into(),
                    ..record()
                },
                "BALAMT",
            ),
        ];
        for (bad, mentions) in cases {
            assert_protocol(map(&bad), mentions);
        }
    }

    #[test]
    fn long_ranges_split_into_contiguous_chunks_of_the_family_limit() {
        let connector = test_connector();
        let chunks = connector
            .history_chunks(&query("20260101", "20260910"))
            .unwrap();
        assert_eq!(
            chunks,
            vec![
                (date("20260101"), date("20260410")),
                (date("20260411"), date("20260719")),
                (date("20260720"), date("20260910")),
            ]
        );
        for (from, to) in &chunks {
            assert!((to.naive() - from.naive()).num_days() < HISTORY_CHUNK_DAYS);
        }
        assert_eq!(
            connector
                .history_chunks(&query("20261129", "20261129"))
                .unwrap(),
            vec![(date("20261129"), date("20261129"))]
        );
        assert_eq!(
            connector
                .history_chunks(&query("20260101", "20260410"))
                .unwrap()
                .len(),
            1,
            "exactly one hundred days is one chunk"
        );
        assert!(connector
            .history_chunks(&query("20261129", "20261128"))
            .is_err());
        assert!(connector
            .history_chunks(&query("20000101", "20261128"))
            .is_err());
    }

    fn result(request_status: &str, flag: &str, code: &str) -> PaymentResult {
        PaymentResult {
            reference: "R1".into(),
            request_status: request_status.into(),
            result_flag: flag.into(),
            error_code: code.into(),
            error_text: String::new(),
            bank_ref: String::new(),
        }
    }

    #[test]
    fn every_result_flag_maps_per_the_design() {
        let failed = |code: &str, message: &str| BankPaymentStatus::Failed {
            code: code.into(),
            message: message.into(),
        };
        let cases = [
            (result("ACC", "", ""), BankPaymentStatus::Processing),
            (result("AUT", "", ""), BankPaymentStatus::Processing),
            (result("FIN", "S", ""), BankPaymentStatus::Settled),
            (
                result("FIN", "F", "INSUFFICIENT_FUNDS"),
                failed("INSUFFICIENT_FUNDS", "银行处理失败"),
            ),
            (result("FIN", "B", ""), failed("BANK_REJECTED", "银行拒绝")),
            (result("FIN", "E", ""), failed("BANK_EXPIRED", "指令过期")),
            (
                result("FIN", "C", ""),
                failed("BANK_CANCELLED", "指令已撤销"),
            ),
            (
                result("FIN", "R", "RETURNED"),
                BankPaymentStatus::Returned {
                    code: "RETURNED".into(),
                    message: "退票".into(),
                },
            ),
        ];
        for (result, expected) in cases {
            assert_eq!(map_payment_result(&result), Ok(expected), "{result:?}");
        }
        let mut with_text = result("FIN", "F", "X1");
        with_text.error_text = "户名不符".into();
        assert_eq!(map_payment_result(&with_text), Ok(failed("X1", "户名不符")));
        assert!(map_payment_result(&result("FIN", "", "")).is_err());
        // A request status the family does not document is not "processing".
        assert!(map_payment_result(&result("NTE", "S", "")).is_err());
        assert!(map_payment_result(&result("", "", "")).is_err());
        assert!(map_payment_result(&result("FIN", "Z", "")).is_err());
    }

    #[test]
    fn raw_code_keeps_both_levels() {
        assert_eq!(raw_code(&result("FIN", "S", "")), "FIN/S");
        assert_eq!(raw_code(&result("ACC", "", "")), "ACC");
        assert_eq!(raw_code(&result("FIN", "F", "E1")), "E1");
    }
}
