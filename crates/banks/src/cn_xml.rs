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
//! The connector reports what the bank said and does not judge continuity:
//! whether opening + Σ entries = closing is the statement sync's check.
//!
//! Layout: the currency table, the connector and its settings check, the
//! call (transport, metrics, tracing), then the mapping of each function's
//! answer, balances first, then transaction details.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::{
    bank_local_to_utc, AccountNumber, BankTimeZone, BusinessDate, Currency, Direction, EntryStatus,
    Money, OsRandom, RandomSource,
};
use formats::cn_xml::messages::{
    self, AccountRecord, BalanceQueryItem, BalanceRecord, DayBalanceQuery, DayBalanceRecord,
    HistoryQuery, HistoryRecord, DIRECTION_CREDIT, DIRECTION_DEBIT, ENTRY_BOOKED, ENTRY_PENDING,
    FUNC_LIST_ACCOUNTS, FUNC_QUERY_BALANCE, FUNC_QUERY_DAY_BALANCE, FUNC_QUERY_HISTORY,
    MAX_ACCOUNTS_PER_BALANCE_QUERY, MAX_HISTORY_RANGE_DAYS, REC_FAILED, REC_SUCCESS, RET_OK,
    RET_SYSTEM_BUSY,
};
use formats::cn_xml::{decode, encode, Limits, Packet};

use crate::{
    mask_account, BalanceOutcome, BalanceQuery, BankAccountInfo, BankBalance, BankConnector,
    BankEntry, BankError, Capability, ConnectError, ConnectionSettings, DayBalance,
    DedupeKeyPolicy, Family, TransactionQuery, TransactionReport, UnknownCause,
};

/// Code of a failed balance record: the family carries no record-level code,
/// only a message.
pub const RECORD_FAILED: &str = "RECORD_FAILED";
/// Idle connections kept per front machine, and for how long. A front
/// machine is one host; a handful of warm connections serves bursts of
/// balance queries without holding sockets the bank may cut anyway.
pub const POOL_MAX_IDLE_PER_HOST: usize = 4;
pub const POOL_IDLE_TIMEOUT_MS: u64 = 30_000;
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
/// Characters of bank text (a serial) quoted in an error.
const MAX_QUOTED_CHARS: usize = 32;
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
    random: OsRandom,
}

impl fmt::Debug for CnXmlConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CnXmlConnector")
            .field("bank_id", &self.settings.bank_id)
            .field("connection_id", &self.settings.connection_id)
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl CnXmlConnector {
    /// Checks the settings and builds the HTTP client once; every option that
    /// matters is set explicitly rather than left to reqwest's defaults.
    pub fn new(settings: ConnectionSettings) -> Result<CnXmlConnector, ConnectError> {
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
        if settings.connect_timeout.is_zero() || settings.request_timeout.is_zero() {
            return Err(invalid(
                "connect and request timeouts must be above zero".into(),
            ));
        }
        if settings.max_response_bytes == 0 {
            return Err(invalid(
                "max_response_bytes is 0; expected a positive byte count".into(),
            ));
        }
        if !(1..=MAX_ACCOUNTS_PER_BALANCE_QUERY).contains(&settings.max_accounts_per_query) {
            return Err(invalid(format!(
                "max_accounts_per_query is {}; expected 1..={MAX_ACCOUNTS_PER_BALANCE_QUERY}, the family's limit",
                settings.max_accounts_per_query
            )));
        }
        let time_zone = BankTimeZone::parse(settings.time_zone.name())
            .map_err(|e| invalid(format!("time zone: {e}")))?;
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .no_proxy()
            // A redirect would resend the packet somewhere we were not told
            // to send it.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .pool_idle_timeout(Duration::from_millis(POOL_IDLE_TIMEOUT_MS))
            // Front machines speak HTTP/1.1; never negotiate anything else.
            .http1_only()
            .tcp_nodelay(true)
            .user_agent(concat!("bankdirect/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("HTTP client could not be built: {e}")))?;
        let limits = Limits {
            max_bytes: settings.max_response_bytes,
            ..Limits::default()
        };
        Ok(CnXmlConnector {
            settings,
            endpoint,
            time_zone,
            client,
            limits,
            random: OsRandom,
        })
    }

    fn bank(&self) -> String {
        self.settings.bank_id.clone()
    }

    fn protocol(&self, reason: String) -> BankError {
        BankError::OutcomeUnknown {
            bank: self.bank(),
            cause: UnknownCause::Protocol,
            reason,
        }
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
        let started = Instant::now();
        let result = self.exchange(function, request).await;
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.outcome_label(),
        };
        metrics::counter!("bank_calls_total",
            "bank" => self.bank(), "function" => function, "outcome" => outcome)
        .increment(1);
        metrics::histogram!("bank_call_duration_seconds",
            "bank" => self.bank(), "function" => function)
        .record(elapsed.as_secs_f64());
        match &result {
            Ok(_) => tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "bank call ok"),
            Err(error) => {
                tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, outcome, %error, "bank call failed")
            }
        }
        result
    }

    async fn exchange(&self, function: &'static str, request: Packet) -> Result<Packet, BankError> {
        let serial = request.head.serial.clone();
        let body = encode(&request).map_err(|e| BankError::NotProcessed {
            bank: self.bank(),
            reason: format!("{function} request cannot be encoded as GBK: {e}"),
        })?;
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
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
        let bytes = self.read_capped(response).await?;
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

    /// Reads the body chunk by chunk so that an oversized answer is refused
    /// without being held in memory.
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, BankError> {
        let cap = self.settings.max_response_bytes;
        let too_large = |seen: u64| {
            self.protocol(format!(
                "answer is at least {seen} bytes; expected at most {cap} (max_response_bytes)"
            ))
        };
        if let Some(length) = response.content_length() {
            if length > cap as u64 {
                return Err(too_large(length));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e, "reading the answer"))?
        {
            if body.len() + chunk.len() > cap {
                return Err(too_large((body.len() + chunk.len()) as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, error: &reqwest::Error, during: &str) -> BankError {
        // reqwest's Display of an error holds the URL but never the body.
        if error.is_connect() {
            BankError::NotProcessed {
                bank: self.bank(),
                reason: format!(
                    "could not connect to the front machine: {}",
                    source_chain(error)
                ),
            }
        } else if error.is_timeout() {
            BankError::OutcomeUnknown {
                bank: self.bank(),
                cause: UnknownCause::Timeout,
                reason: format!(
                    "no complete answer within {} ms while {during}",
                    self.settings.request_timeout.as_millis()
                ),
            }
        } else {
            BankError::OutcomeUnknown {
                bank: self.bank(),
                cause: UnknownCause::Transport,
                reason: format!("connection failed while {during}: {}", source_chain(error)),
            }
        }
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
        let refused = |reason: String| BankError::NotProcessed {
            bank: self.bank(),
            reason,
        };
        if query.to < query.from {
            return Err(refused(format!(
                "transaction query from {} to {}: the end is before the start; expected from <= to",
                query.from, query.to
            )));
        }
        let days = (query.to.naive() - query.from.naive()).num_days() + 1;
        if days > MAX_TRANSACTION_RANGE_DAYS {
            return Err(refused(format!(
                "transaction query covers {days} days; expected at most {MAX_TRANSACTION_RANGE_DAYS} (MAX_TRANSACTION_RANGE_DAYS)"
            )));
        }
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

/// What one [`BankConnector::transactions`] call has paged so far.
#[derive(Default)]
struct Paging {
    pages: usize,
    /// (status, booking date, serial) of every entry with a serial.
    serials: HashSet<(EntryStatus, BusinessDate, String)>,
}

/// Bank text for an error message: quoted and cut short.
fn quoted(text: &str) -> String {
    let mut short: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if text.chars().nth(MAX_QUOTED_CHARS).is_some() {
        short.push('…');
    }
    format!("{short:?}")
}

/// The error and its sources on one line: reqwest's own message alone says
/// only "error sending request", the cause ("connection refused") is deeper.
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Causes chains are short; the bound only guards against a cycle.
    for _ in 0..8 {
        let Some(cause) = source else { break };
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl BankConnector for CnXmlConnector {
    fn family(&self) -> Family {
        Family::CnXml
    }

    fn capabilities(&self) -> &'static [Capability] {
        &[Capability::Balances, Capability::Transactions]
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

    // Placeholder while the payment functions are written (issue 4): the
    // connector does not claim the payment capabilities, and a call is
    // refused before anything is sent.
    async fn submit_payment(
        &self,
        _payment: &crate::PaymentInstruction,
    ) -> Result<crate::SubmitReceipt, BankError> {
        Err(BankError::NotProcessed {
            bank: self.settings.bank_id.clone(),
            reason: "payments are not implemented for cn-xml yet".to_owned(),
        })
    }

    async fn payment_status(
        &self,
        _debtor_account: &AccountNumber,
        _references: &[domain::BankReference],
    ) -> Result<Vec<crate::StatusAnswer>, BankError> {
        Err(BankError::NotProcessed {
            bank: self.settings.bank_id.clone(),
            reason: "payments are not implemented for cn-xml yet".to_owned(),
        })
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

    #[test]
    fn quoted_bank_text_is_cut_short() {
        assert_eq!(quoted("000001"), "\"000001\"");
        let long = "9".repeat(100);
        let text = quoted(&long);
        assert!(text.chars().count() < 40, "{text}");
        assert!(text.contains('…'));
    }

    #[test]
    fn source_chain_joins_causes() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(Wrapper(inner));
        assert!(source_chain(&outer).contains("refused"));
    }

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
